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

    /// `config` as version `version`, replacing `replaces` (nil: a new camera), in force from
    /// `effective`, signed by `signers`.
    static func signed(
        _ config: Vigil_V1_CameraConfig, version: UInt64, replaces: Vigil_V1_CameraConfig?, by signers: [CameraSigner], effective: Int64 = 1_000
    ) throws -> Vigil_V1_CameraConfig {
        var config = config
        config.version = version
        config.stamp(replacing: replaces, effectiveMilliseconds: effective)
        for signer in signers { try CameraSignatures.sign(&config, account: signer.account, key: signer.key) }
        return config
    }

    static func refusal(_ config: Vigil_V1_CameraConfig, last: Vigil_V1_CameraConfig?, readWholePartition: Bool = true) -> String? {
        CameraAdmission.refusal(of: config, last: last, readWholePartition: readWholePartition, admins: admins)?.description
    }

    /// `config`'s record at `offset` of partition 2, its header saying `header` (default: its
    /// signed effective time).
    static func record(_ config: Vigil_V1_CameraConfig, offset: Int64, header: Int64? = nil) throws -> TableRecord {
        let plain = try CameraTable.record(config)
        let headers = header.map { [RecordHeader(key: TableHeaders.effectiveTime, value: String($0))] } ?? plain.headers
        return TableRecord(topic: CameraTable.topic, partition: 2, offset: offset, key: plain.key, value: plain.value, headers: headers)
    }

    /// `config` marked deleted as the next version after it, signed by `signers`.
    static func deletion(of config: Vigil_V1_CameraConfig, by signers: [CameraSigner], effective: Int64) throws -> Vigil_V1_CameraConfig {
        var deleted = config
        deleted.deleted = true
        return try signed(deleted, version: config.version + 1, replaces: config, by: signers, effective: effective)
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
        let recreated = try Self.signed(Self.unmasked, version: 4, replaces: nil, by: [Self.alice])
        #expect(Self.refusal(recreated, last: current)?.contains("judged against its last configuration") == true)
        let renumbered = try Self.signed(Self.unmasked, version: 1, replaces: nil, by: [Self.alice])
        #expect(Self.refusal(renumbered, last: current)?.contains("not newer than version 3") == true)
        // Claiming to replace a configuration that never had the mask.
        let wrongBase = try Self.signed(Self.unmasked, version: 4, replaces: Self.unmasked, by: [Self.alice])
        #expect(Self.refusal(wrongBase, last: current)?.contains("prepared against another configuration than version 3") == true)
        // A reader that lost the history never takes the record's word for what it replaces.
        let honest = try Self.signed(Self.unmasked, version: 4, replaces: current, by: [Self.alice])
        #expect(Self.refusal(honest, last: nil)?.contains("replaces a configuration this reader never read") == true)
        // The same record again (a writer republishing its set) is admitted as it is.
        #expect(Self.refusal(current, last: current) == nil)
    }

    @Test("through the table: a refused record leaves the previous configuration in force, and its notices are a health record and an audit event")
    func tableKeepsPreviousConfiguration() throws {
        let table = CameraTable.make(admins: Self.admins)
        let record = Self.record
        let first = try Self.signed(Self.masked, version: 1, replaces: nil, by: [Self.alice], effective: 1_000)
        #expect(table.apply(try record(first, 0, nil)) == .changed)
        let removedByOne = try Self.signed(Self.unmasked, version: 2, replaces: first, by: [Self.alice], effective: 2_000)
        guard case .refused(let refusal) = table.apply(try record(removedByOne, 1, nil)) else {
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

        // Deleted (signed by one admin), then re-created with fewer masks by one admin: still refused.
        #expect(table.apply(try record(Self.deletion(of: first, by: [Self.alice], effective: 3_000), 2, nil)) == .changed)
        #expect(table.current("cam-1") == nil)
        let recreated = try Self.signed(Self.unmasked, version: 3, replaces: first, by: [Self.alice], effective: 4_000)
        guard case .refused = table.apply(try record(recreated, 3, nil)) else {
            Issue.record("a deleted camera re-created with fewer masks by one admin was admitted")
            return
        }
        let approved = try Self.signed(Self.unmasked, version: 3, replaces: first, by: [Self.alice, Self.bob], effective: 4_000)
        #expect(table.apply(try record(approved, 4, nil)) == .changed)
        #expect(table.current("cam-1")?.privacyMasks.isEmpty == true)
    }

    @Test("an old approval cannot be replayed: a two-admin reduction re-sent after a restore, or re-sent for another time, is refused")
    func replayedApproval() throws {
        let table = CameraTable.make(admins: Self.admins)
        let v1 = try Self.signed(Self.masked, version: 1, replaces: nil, by: [Self.alice], effective: 1_000)
        let v2 = try Self.signed(Self.unmasked, version: 2, replaces: v1, by: [Self.alice, Self.bob], effective: 2_000)
        let v3 = try Self.signed(Self.masked, version: 3, replaces: v2, by: [Self.alice], effective: 3_000)
        #expect(table.apply(try Self.record(v1, offset: 0)) == .changed)
        #expect(table.apply(try Self.record(v2, offset: 1)) == .changed)
        #expect(table.apply(try Self.record(v3, offset: 2)) == .changed, "restoring the mask needs one admin")

        // v2's bytes again, as `apply --proposal` or kcat would send them, at its signed time and at a later one.
        guard case .refused(let replay) = table.apply(try Self.record(v2, offset: 3)) else {
            Issue.record("a replayed two-admin reduction was admitted")
            return
        }
        #expect(replay.reason.contains("version 2, not newer than version 3"), "\(replay.reason)")
        guard case .refused(let moved) = table.apply(try Self.record(v2, offset: 4, header: 9_000)) else {
            Issue.record("a replayed reduction re-sent to take effect later was admitted")
            return
        }
        #expect(moved.reason.contains("not newer than version 3"), "\(moved.reason)")
        #expect(table.current("cam-1") == v3)
        #expect(try table.camera("cam-1", atMilliseconds: 10_000).privacyMasks.count == 1)

        // A fresh change whose header says another time than its admins signed.
        let v4 = try Self.signed(CameraPlanTests.camera("cam-1", masks: ["window": CameraPlanTests.square], fps: 5), version: 4, replaces: v3, by: [Self.alice], effective: 4_000)
        guard case .refused(let retimed) = table.apply(try Self.record(v4, offset: 5, header: 3_500)) else {
            Issue.record("a record whose effective-time header differs from its signed time was admitted")
            return
        }
        #expect(retimed.reason.contains("its admins signed 4000"), "\(retimed.reason)")
        #expect(table.apply(try Self.record(v4, offset: 6)) == .changed)
    }

    @Test("deletions are signed: an empty tombstone is refused and the camera stays; a signed deletion removes it")
    func signedDeletions() throws {
        let table = CameraTable.make(admins: Self.admins)
        let v1 = try Self.signed(Self.masked, version: 1, replaces: nil, by: [Self.alice], effective: 1_000)
        #expect(table.apply(try Self.record(v1, offset: 0)) == .changed)
        let tombstone = TableRecord(
            topic: CameraTable.topic, partition: 2, offset: 1, key: Array("cam-1".utf8), value: [],
            headers: [RecordHeader(key: TableHeaders.effectiveTime, value: "2000")]
        )
        guard case .refused(let refusal) = table.apply(tombstone) else {
            Issue.record("an unsigned tombstone was applied")
            return
        }
        #expect(refusal.reason.contains("unsigned deletion"))
        #expect(table.current("cam-1") == v1)
        var forged = try Self.deletion(of: v1, by: [Self.alice], effective: 2_000)
        forged.signatures[0].signature = Data(repeating: 7, count: 64)
        guard case .refused = table.apply(try Self.record(forged, offset: 2)) else {
            Issue.record("a deletion with a forged signature was applied")
            return
        }
        #expect(table.apply(try Self.record(Self.deletion(of: v1, by: [Self.alice], effective: 2_000), offset: 3)) == .changed)
        #expect(table.current("cam-1") == nil && table.lastValue("cam-1") == v1)
    }

    @Test("a reader without history: the newest records alone (compacted away or dropped) never let one admin mask less")
    func readerWithoutHistory() throws {
        // What the topic held: v1 masked, then a two-admin v2; then Mallory-with-Alice's-key writes
        // a one-admin reduction v3, honest about what it replaces, and a forged "new camera" record.
        let v1 = try Self.signed(Self.masked, version: 1, replaces: nil, by: [Self.alice], effective: 1_000)
        let v2 = try Self.signed(CameraPlanTests.camera("cam-1", masks: ["window": CameraPlanTests.square], fps: 5), version: 2, replaces: v1, by: [Self.alice, Self.bob], effective: 2_000)
        let honest = try Self.signed(Self.unmasked, version: 3, replaces: v2, by: [Self.alice], effective: 3_000)
        let claimsNew = try Self.signed(Self.unmasked, version: 1, replaces: nil, by: [Self.alice], effective: 3_000)

        // A reader of the whole history refuses both.
        let whole = CameraTable.make(admins: Self.admins)
        for (offset, config) in [v1, v2].enumerated() { #expect(whole.apply(try Self.record(config, offset: Int64(offset))) == .changed) }
        guard case .refused = whole.apply(try Self.record(honest, offset: 2)), case .refused = whole.apply(try Self.record(claimsNew, offset: 3)) else {
            Issue.record("a reader with the history admitted a one-admin reduction")
            return
        }

        // Fresh readers of a partition whose earlier records are gone: each sees only the newest record.
        for newest in [honest, claimsNew] {
            let fresh = CameraTable.make(admins: Self.admins)
            guard case .refused(let refusal) = fresh.apply(try Self.record(newest, offset: 7)) else {
                Issue.record("a fresh reader admitted a one-admin record it cannot judge: \(newest.replacesDigest.isEmpty ? "claims a new camera" : "names a predecessor")")
                continue
            }
            #expect(refusal.reason.contains(newest.replacesDigest.isEmpty ? "earlier records of its partition are gone" : "never read"), "\(refusal.reason)")
            #expect(fresh.current("cam-1") == nil, "the camera stays unconfigured: never weaker")
        }
        // Two admins may make a change nobody can judge; a genuinely new camera on a whole partition needs one.
        let approved = try Self.signed(Self.unmasked, version: 3, replaces: v2, by: [Self.alice, Self.bob], effective: 3_000)
        #expect(CameraTable.make(admins: Self.admins).apply(try Self.record(approved, offset: 7)) == .changed)
        #expect(CameraTable.make(admins: Self.admins).apply(try Self.record(v1, offset: 0)) == .changed)
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

        // The approver is shown what the signed record does, never the proposal's text.
        let table = CameraTable.make(admins: Self.admins)
        #expect(table.apply(try Self.record(current, offset: 0)) == .changed)
        #expect(try proposal.checked(against: table).map(\.reductions) == [["removes privacy mask window"]])
        var understated = proposal
        understated.changes[0].reductions = []
        understated.changes[0].differences = ["labels: none → site=north"]
        #expect { try understated.checked(against: table) } throws: {
            "\($0)".contains("does not say what its signed record does") && "\($0)".contains("removes privacy mask window")
        }
        // Once published, the same proposal no longer applies.
        #expect(table.apply(try Self.record(proposal.changes[0].config(), offset: 1)) == .changed)
        #expect { try proposal.checked(against: table) } throws: { "\($0)".contains("already published or superseded") }

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
