import SwiftProtobuf
import Testing

@Suite("No identity in the schema")
struct PrivacyGuardTests {
    @Test("no message, field, oneof or enum in proto/ names identity or biometric data")
    func schemaHasNoIdentityFields() throws {
        let descriptors = try SchemaDescriptors.load()
        let names = schemaNames(in: descriptors)

        // The guard must have seen every file and real fields, or an empty walk would pass.
        #expect(Set(descriptors.file.map(\.name)) == (try protoFilesOnDisk()), "buf build must cover every .proto under proto/")
        #expect(names.contains { $0.fullName == "vigil.v1.DetectedObject.track_id" })
        #expect(names.contains { $0.fullName == "vigil.v1.AlertAction.actor" })

        let violations = identityViolations(in: names)
        #expect(violations.isEmpty, Comment(rawValue: "\(vigilIdentityRule)\n\nFound:\n  " + violations.joined(separator: "\n  ")))
    }

    @Test(
        "the guard catches identity and biometric names in every spelling",
        arguments: [
            "face_embedding", "FaceEmbedding", "embedding", "person_id", "PersonId", "face_id",
            "identity", "IdentityRecord", "person_name", "first_name", "watchlist", "WatchList",
            "plate_text", "LicensePlate", "biometric_template", "keypoints", "KeyPoint", "gait_signature",
            "reid_vector", "ReID", "re_id", "global_track_id", "face_crop", "POSE_LANDMARKS",
        ]
    )
    func catchesForbiddenNames(_ identifier: String) {
        #expect(forbiddenTerm(in: identifier) != nil, "'\(identifier)' must be rejected")
    }

    @Test(
        "the guard leaves ordinary names alone",
        arguments: [
            "track_id", "codec_name", "template", "redacted_jpeg", "REDACTION_TARGET_FACES",
            "POSTURE_LYING", "RULE_KIND_PERSON_DOWN", "approved_by", "keyframe", "operator_account",
            "actor", "assignee", "AuditEvent", "masked_region_count", "time_zone", "platform",
        ]
    )
    func acceptsOrdinaryNames(_ identifier: String) {
        #expect(forbiddenTerm(in: identifier) == nil, "'\(identifier)' is not identity data")
    }

    @Test("a schema with a face embedding field fails, naming the file and field")
    func reportsViolationsWithLocation() {
        var field = Google_Protobuf_FieldDescriptorProto()
        field.name = "face_embedding"
        var message = Google_Protobuf_DescriptorProto()
        message.name = "DetectedObject"
        message.field = [field]
        var file = Google_Protobuf_FileDescriptorProto()
        file.name = "vigil/v1/detection.proto"
        file.package = "vigil.v1"
        file.messageType = [message]
        var set = Google_Protobuf_FileDescriptorSet()
        set.file = [file]

        let violations = identityViolations(in: schemaNames(in: set))
        #expect(violations == ["vigil/v1/detection.proto: field vigil.v1.DetectedObject.face_embedding — contains 'embedding'"])
    }
}
