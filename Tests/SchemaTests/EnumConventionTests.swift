import SwiftProtobuf
import Testing
import VigilSchema

/// A line for each enum whose zero value is not `<ENUM_NAME>_UNSPECIFIED` listed first: proto3
/// uses zero for "not set", so it must never mean a real state.
func enumZeroValueProblems(_ enums: [SchemaEnum]) -> [String] {
    enums.compactMap { enumeration in
        let expected = "\(upperSnakeCase(enumeration.name))_UNSPECIFIED"
        guard let first = enumeration.values.first else {
            return "\(enumeration.file): enum \(enumeration.fullName) has no values"
        }
        guard first.number == 0, first.name.hasSuffix("_UNSPECIFIED"), first.name == expected else {
            return "\(enumeration.file): enum \(enumeration.fullName) starts with \(first.name) = \(first.number), expected \(expected) = 0"
        }
        return nil
    }
}

@Suite("Enum conventions")
struct EnumConventionTests {
    @Test("every enum's zero value is <ENUM_NAME>_UNSPECIFIED")
    func zeroValuesAreUnspecified() throws {
        let enums = schemaEnums(in: try SchemaDescriptors.load())
        #expect(enums.contains { $0.fullName == "vigil.v1.AlertState" }, "the walk must reach the schema's enums")
        let problems = enumZeroValueProblems(enums)
        #expect(problems.isEmpty, Comment(rawValue: problems.joined(separator: "\n")))
    }

    @Test("an enum whose zero value is a real state is reported")
    func reportsMeaningfulZero() {
        let good = SchemaEnum(fullName: "vigil.v1.CameraState", name: "CameraState", file: "camera.proto",
                              values: [("CAMERA_STATE_UNSPECIFIED", 0), ("CAMERA_STATE_ONLINE", 1)])
        let meaningfulZero = SchemaEnum(fullName: "vigil.v1.CameraState", name: "CameraState", file: "camera.proto",
                                        values: [("CAMERA_STATE_ONLINE", 0)])
        let wrongPrefix = SchemaEnum(fullName: "vigil.v1.AlertState", name: "AlertState", file: "alert.proto",
                                     values: [("STATE_UNSPECIFIED", 0)])
        #expect(enumZeroValueProblems([good]).isEmpty)
        #expect(enumZeroValueProblems([meaningfulZero]) == [
            "camera.proto: enum vigil.v1.CameraState starts with CAMERA_STATE_ONLINE = 0, expected CAMERA_STATE_UNSPECIFIED = 0",
        ])
        #expect(enumZeroValueProblems([wrongPrefix]).count == 1)
    }

    @Test("generated Swift agrees: every enum defaults to .unspecified")
    func generatedDefaults() {
        #expect(Vigil_V1_Frame().pixelFormat == .unspecified)
        #expect(Vigil_V1_DetectedObject().posture == .unspecified)
        #expect(Vigil_V1_CameraHealth().state == .unspecified)
        #expect(Vigil_V1_Alert().state == .unspecified)
        #expect(Vigil_V1_Rule().kind == .unspecified)
        #expect(Vigil_V1_AuditEvent().kind == .unspecified)
    }
}
