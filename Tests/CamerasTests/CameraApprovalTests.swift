import Crypto
import Foundation
import SwiftProtobuf
import Testing
import VigilSchema
import WorkerRuntime
@testable import Cameras

/// The two-person rule as every reader of `cameras.v1` applies it, on records made in memory:
/// each refusal names its cause, and the camera keeps its previous configuration.
@Suite("Camera approvals: signatures, the configuration replaced, two admins to mask less")
struct CameraApprovalTests {
    static let alice = CameraSigner(account: "alice", key: Curve25519.Signing.PrivateKey())
    static let bob = CameraSigner(account: "bob", key: Curve25519.Signing.PrivateKey())
    static let mallory = CameraSigner(account: "mallory", key: Curve25519.Signing.PrivateKey())
    /// Alice and Bob are admins; Mallory is not.
    static let admins = CameraAdmins([("alice", alice.key.publicKey), ("bob", bob.key.publicKey)])

    static let masked = CameraPlanTests.camera("cam-1", masks: ["window": CameraPlanTests.square])
    static let unmasked = CameraPlanTests.camera("cam-1")

    /// `config` as version `version`, replacing `replaces` (nil: a new camera), signed by `signers`.
    static func signed(_ config: Vigil_V1_CameraConfig, version: UInt64, replaces: Vigil_V1_CameraConfig?, by signers: [CameraSigner]) throws -> Vigil_V1_CameraConfig {
        var config = config
        config.version = version
        if let replaces { config.replaces = replaces.privacy }
        for signer in signers { try CameraSignatures.sign(&config, account: signer.account, key: signer.key) }
        return config
    }

    static func refusal(_ config: Vigil_V1_CameraConfig, last: Vigil_V1_CameraConfig?) -> String? {
        CameraAdmission.refusal(of: config, last: last, admins: admins)?.description
    }

    @Test("a record must carry verifying signatures of trusted admins: unsigned, untrusted, altered after signing and misattributed ones are refused")
    func signatures() throws {
        let first = try Self.signed(Self.masked, version: 1, replaces: nil, by: [Self.alice])
        #expect(Self.refusal(first, last: nil) == nil, "one admin may add a camera")

        var unsigned = first
        unsigned.signatures = []
        #expect(Self.refusal(unsigned, last: nil)?.contains("is not signed by any admin") == true)

        let untrusted = try Self.signed(Self.masked, version: 1, replaces: nil, by: [Self.mallory])
        #expect(Self.refusal(untrusted, last: nil)?.contains("not among the trusted admin keys") == true)

        var altered = first
        altered.sourceURL = "rtsp://elsewhere/stream"
        #expect(Self.refusal(altered, last: nil)?.contains("does not verify") == true)

        // Mallory's record carrying a copy of Alice's signature from another record.
        var borrowed = try Self.signed(Self.unmasked, version: 1, replaces: nil, by: [])
        borrowed.signatures = first.signatures
        #expect(Self.refusal(borrowed, last: nil)?.contains("does not verify") == true)

        var misattributed = first
        misattributed.signatures[0].admin = "bob"
        #expect(Self.refusal(misattributed, last: nil)?.contains("naming bob made with alice's key") == true)
    }

    @Test("masking less needs two distinct admins; masking more or the same needs one")
    func twoAdminsToMaskLess() throws {
        let current = try Self.signed(Self.masked, version: 1, replaces: nil, by: [Self.alice])
        let fps = try Self.signed(CameraPlanTests.camera("cam-1", masks: ["window": CameraPlanTests.square], fps: 5), version: 2, replaces: current, by: [Self.alice])
        #expect(Self.refusal(fps, last: current) == nil, "a change that masks the same needs one admin")

        let removedByOne = try Self.signed(Self.unmasked, version: 2, replaces: current, by: [Self.alice])
        let reason = try #require(Self.refusal(removedByOne, last: current))
        #expect(reason.contains("removes privacy mask window") && reason.contains("signed by one admin (alice)"), "\(reason)")

        // Two signatures by the same admin count once.
        let aliceAgain = CameraSigner(account: "alice", key: Curve25519.Signing.PrivateKey())
        let twoKeys = CameraAdmins([("alice", Self.alice.key.publicKey), ("alice", aliceAgain.key.publicKey)])
        let removedTwiceByAlice = try Self.signed(Self.unmasked, version: 2, replaces: current, by: [Self.alice, aliceAgain])
        #expect(CameraAdmission.refusal(of: removedTwiceByAlice, last: current, admins: twoKeys) != nil, "one admin with two keys is still one admin")

        let removedByTwo = try Self.signed(Self.unmasked, version: 2, replaces: current, by: [Self.alice, Self.bob])
        #expect(Self.refusal(removedByTwo, last: current) == nil)

        let faces = try Self.signed(CameraPlanTests.camera("cam-1", masks: ["window": CameraPlanTests.square], target: .faces), version: 2, replaces: current, by: [Self.bob])
        #expect(Self.refusal(faces, last: current)?.contains("switches redaction from whole persons to faces only") == true)
    }

    @Test("a record must replace the configuration the reader knows: a deleted camera re-created, or one prepared against another version, is refused")
    func replacesWhatTheReaderKnows() throws {
        let current = try Self.signed(Self.masked, version: 3, replaces: nil, by: [Self.alice])
        // Deleted, then re-created without its mask as if it were new.
        let recreated = try Self.signed(Self.unmasked, version: 1, replaces: nil, by: [Self.alice])
        #expect(Self.refusal(recreated, last: current)?.contains("judged against its last configuration") == true)
        // Claiming to replace a configuration that never had the mask.
        let wrongBase = try Self.signed(Self.unmasked, version: 4, replaces: Self.unmasked, by: [Self.alice])
        #expect(Self.refusal(wrongBase, last: current)?.contains("prepared against another configuration than version 3") == true)
        // A reader that lost the history judges by the signed claim: the claim itself says it masks less.
        let honest = try Self.signed(Self.unmasked, version: 4, replaces: current, by: [Self.alice])
        #expect(Self.refusal(honest, last: nil)?.contains("signed by one admin") == true)
        // The same record again (a writer republishing its set) is admitted as it is.
        #expect(Self.refusal(current, last: current) == nil)
    }

    @Test("through the table: a refused record leaves the previous configuration in force, and its notices are a health record and an audit event")
    func tableKeepsPreviousConfiguration() throws {
        let table = CameraTable.make(admins: Self.admins)
        func record(_ config: Vigil_V1_CameraConfig, offset: Int64, effective: Int64) throws -> TableRecord {
            let plain = try CameraTable.record(cameraID: config.cameraID, config: config, effectiveMilliseconds: effective)
            return TableRecord(topic: CameraTable.topic, partition: 2, offset: offset, key: plain.key, value: plain.value, headers: plain.headers)
        }
        let first = try Self.signed(Self.masked, version: 1, replaces: nil, by: [Self.alice])
        #expect(table.apply(try record(first, offset: 0, effective: 1_000)) == .changed)
        let removedByOne = try Self.signed(Self.unmasked, version: 2, replaces: first, by: [Self.alice])
        guard case .refused(let refusal) = table.apply(try record(removedByOne, offset: 1, effective: 2_000)) else {
            Issue.record("a privacy reduction signed by one admin was not refused")
            return
        }
        #expect(refusal.reason.contains("camera cam-1 version 2 (cameras.v1[2] offset 1)"))
        #expect(table.current("cam-1") == first, "the previous configuration stays in force")
        #expect(try table.camera("cam-1", atMilliseconds: 5_000).privacyMasks.count == 1)

        let notices = refusal.notices("vigil-decode")
        #expect(notices.map(\.topic) == ["camera.health.v1", "audit.events.v1"])
        let health = try Vigil_V1_CameraHealth(serializedBytes: notices[0].value)
        #expect(health.cameraID == "cam-1" && health.state == .unspecified && health.configRefusal.refusedVersion == 2 && health.configRefusal.worker == "vigil-decode")
        let event = try Vigil_V1_AuditEvent(serializedBytes: notices[1].value)
        #expect(event.kind == .privacyChangeRejected && event.eventID == "camera-refused:vigil-decode:cameras.v1[2] offset 1" && event.cameraID == "cam-1")
        #expect(notices.allSatisfy { $0.key == Array("cam-1".utf8) })

        // Deleted, then re-created with fewer masks by one admin: still refused.
        #expect(table.apply(TableRecord(topic: CameraTable.topic, partition: 2, offset: 2, key: Array("cam-1".utf8), value: [], headers: [
            RecordHeader(key: TableHeaders.effectiveTime, value: "3000"),
        ])) == .changed)
        let recreated = try Self.signed(Self.unmasked, version: 3, replaces: first, by: [Self.alice])
        guard case .refused = table.apply(try record(recreated, offset: 3, effective: 4_000)) else {
            Issue.record("a deleted camera re-created with fewer masks by one admin was admitted")
            return
        }
        let approved = try Self.signed(Self.unmasked, version: 3, replaces: first, by: [Self.alice, Self.bob])
        #expect(table.apply(try record(approved, offset: 4, effective: 4_000)) == .changed)
        #expect(table.current("cam-1")?.privacyMasks.isEmpty == true)
    }

    @Test("a proposal: the proposer cannot approve it, a second admin can, and an altered proposal is refused on approval")
    func proposals() throws {
        let current = try Self.signed(Self.masked, version: 1, replaces: nil, by: [Self.alice])
        var plan = CameraPlan(
            current: ["cam-1": StoredCamera(config: current, effectiveMilliseconds: 1_000)], desired: [Self.unmasked], deleteMissing: false,
            actor: "alice", now: 2_000
        )
        plan.stampReplaced(last: ["cam-1": current])
        #expect(plan.privacyReducing.map(\.id) == ["cam-1"])
        try plan.sign(with: Self.alice)
        var proposal = try CameraProposal(plan: plan, proposer: "alice", created: Date())
        #expect(Self.refusal(try proposal.changes[0].config(), last: current)?.contains("signed by one admin (alice)") == true)

        #expect(throws: SelfApproval.self) { try proposal.approve(by: Self.alice, admins: Self.admins) }

        var altered = proposal
        var config = try altered.changes[0].config()
        config.sourceURL = "rtsp://elsewhere/stream"
        altered.changes[0].record = try config.serializedData().base64EncodedString()
        #expect(throws: CameraRefusalReason.self) { try altered.approve(by: Self.bob, admins: Self.admins) }

        try proposal.approve(by: Self.bob, admins: Self.admins)
        #expect(Self.refusal(try proposal.changes[0].config(), last: current) == nil, "approved by two distinct admins, the change is admitted")

        // Written and read back, the proposal is the same.
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("proposal-\(UUID().uuidString).json").path
        try proposal.write(to: file)
        #expect(try CameraProposal.load(file).changes.map(\.record) == proposal.changes.map(\.record))
    }

    @Test("the trusted admin keys file: one `<account> <key>` per line; a bad line is named")
    func adminKeysFile() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("admins-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let good = directory.appendingPathComponent("good.txt").path
        try "# admins\nalice \(Self.alice.key.publicKey.rawRepresentation.base64EncodedString())\n\nbob \(Self.bob.key.publicKey.rawRepresentation.base64EncodedString())  # on call\n"
            .write(toFile: good, atomically: true, encoding: .utf8)
        #expect(try CameraAdmins.load(file: good).accounts == ["alice", "bob"])
        let bad = directory.appendingPathComponent("bad.txt").path
        try "alice \(Self.alice.key.publicKey.rawRepresentation.base64EncodedString())\nbob not-a-key\n".write(toFile: bad, atomically: true, encoding: .utf8)
        #expect { try CameraAdmins.load(file: bad) } throws: { "\($0)".contains("bad.txt:2:") }
        #expect { try CameraAdmins.fromEnvironment([:]) } throws: { "\($0)".contains("CAMERA_ADMIN_KEYS_FILE is not set") }
        // A signer whose key is trusted for another account is refused before signing anything.
        let key = directory.appendingPathComponent("bob.key").path
        try Self.bob.key.rawRepresentation.base64EncodedString().write(toFile: key, atomically: true, encoding: .utf8)
        #expect { try CameraSigner.load(keyFile: key, account: "alice", admins: Self.admins) } throws: { "\($0)".contains("belongs to admin bob, not alice") }
    }
}
