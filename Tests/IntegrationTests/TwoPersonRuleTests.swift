import Cameras
import ChildProcesses
import Foundation
import Kafka
import Logging
import SigningKeys
import SwiftProtobuf
import Testing
import VigilSchema
import WorkerRuntime

/// The two-person rule where camera configuration takes effect: vigil-decode and vigil-detect
/// read `cameras.v1` on the dev cluster; records written straight to the topic with kcat, as
/// anyone with write access could, are refused by both and announced; a change approved by a
/// second admin through `vigil cameras propose|approve|apply --proposal` takes effect in both.
@Suite("Two-person rule on the dev cluster", .serialized, .timeLimit(.minutes(6)))
struct TwoPersonRuleTests {
    static let topics = [
        "cameras.v1:3", "audit.events.v1:3", "camera.health.v1:3", "video.packets.v1:3", "video.packets.v1.dlq:1", "frames.v1:3",
        "frames.v1.dlq:1", "detections.v1:3", "snapshots.v1:3",
    ]
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func file(_ text: String, _ suffix: String = "yaml") throws -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-two-person-\(UUID().uuidString).\(suffix)")
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url.path
    }

    static let masked = "cameras:\n  cam-0:\n    source: /media/cam-0.mp4\n    privacy_masks:\n      window: [[0.1, 0.1], [0.4, 0.1], [0.4, 0.4], [0.1, 0.4]]\n"
    static let unmasked = "cameras:\n  cam-0:\n    source: /media/cam-0.mp4\n"

    static func vigil(_ arguments: [String], _ cluster: DevClusterProcess) async throws -> ChildProcess {
        let command = try ChildProcess("vigil", arguments + ["--bootstrap", cluster.bootstrapServers], name: "vigil \(arguments.prefix(2).joined(separator: " "))")
        try await command.waitForExit(timeout: .seconds(120))
        return command
    }

    /// Writes `value` to `cameras.v1` with kcat, keyed by the camera, in force from `effective`
    /// (default: now); nil writes a tombstone (kcat's -Z turns the empty value into a null one).
    static func kcatWrite(_ value: [UInt8]?, effective: Int64? = nil, _ cluster: DevClusterProcess) async throws {
        let time = effective ?? Int64(Date().timeIntervalSince1970 * 1_000)
        let common = ["-P", "-b", cluster.bootstrapServers, "-t", "cameras.v1", "-H", "vigil-effective-time-ms=\(time)"]
        let kcat: ChildProcess
        if let value {
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-camera-record-\(UUID().uuidString).bin")
            try Data(value).write(to: path)
            kcat = try ChildProcess("/usr/bin/kcat", common + ["-k", "cam-0", path.path], name: "kcat -P")
        } else {
            kcat = try ChildProcess("/usr/bin/kcat", common + ["-K", ":", "-Z"], name: "kcat -P", standardInput: Data("cam-0:\n".utf8))
        }
        try await kcat.waitForExit(timeout: .seconds(60))
        #expect(kcat.exitStatus == 0, "kcat: \(kcat.standardError)")
    }

    static func signer(_ account: String) throws -> CameraSigner {
        CameraSigner(account: account, key: try SigningKeys.privateKey(file: TestAdmins.files.keyFile(account)))
    }

    static func records(_ topic: String, _ cluster: DevClusterProcess) async throws -> [KafkaConsumerMessage] {
        try await KafkaTableReader.readPartitions(
            cluster: KafkaConfiguration(bootstrapServers: cluster.bootstrapServers), topic: topic, partitions: nil, logger: Logger(label: "test")
        )
    }

    static func tableRecords(_ worker: PassThroughWorkerProcess, _ name: String, outcome: String) async throws -> Double {
        try await worker.metric("vigil_table_records_total{worker=\"\(name)\",table=\"cameras.v1\",outcome=\"\(outcome)\"}") ?? 0
    }

    @Test("kcat writes (unsigned, one approval to mask less, a forged signature, another previous configuration, an unsigned delete, a re-create with fewer masks, a replayed approval) are refused by decode and detect and audited; a self-approval, an approval of an altered or understated proposal, and a proposal published twice are refused; two admins' change takes effect in both")
    func refusalsAndApprovals() async throws {
        let cluster = try await DevClusterProcess(topics: Self.topics)
        let first = try await Self.vigil(["cameras", "apply", try Self.file(Self.masked), "--actor", TestAdmins.first], cluster)
        #expect(first.exitStatus == 0, "\(first.standardError.suffix(2_000))")

        let decode = try await PassThroughWorkerProcess.start(cluster, environment: [
            "WORKER_INPUTS": "video.packets.v1", "WORKER_OUTPUTS": "frames.v1,camera.health.v1,audit.events.v1", "WORKER_TABLES": "cameras.v1",
        ], executable: "vigil-decode")
        let detect = try await PassThroughWorkerProcess.start(cluster, environment: [
            "WORKER_INPUTS": "frames.v1", "WORKER_OUTPUTS": "detections.v1,snapshots.v1,camera.health.v1,audit.events.v1", "WORKER_TABLES": "cameras.v1",
            "DETECT_MODELS_DIR": Self.repository.appendingPathComponent("models").path,
        ], executable: "vigil-detect")
        let workers = [("vigil-decode", decode), ("vigil-detect", detect)]
        for (name, worker) in workers {
            try await eventually(timeout: .seconds(60), "\(name) holds the masked camera") { try await Self.tableRecords(worker, name, outcome: "changed") >= 1 }
        }

        // What anyone with write access to the topic could send, each judged against version 1 (masked).
        let (_, current, _) = try await Self.vigilCurrent(cluster)
        let now = Int64(Date().timeIntervalSince1970 * 1_000)
        let admin = try Self.signer(TestAdmins.first)
        var withoutMask = current
        withoutMask.privacyMasks = []
        withoutMask.version = 2
        withoutMask.stamp(replacing: current, effectiveMilliseconds: now)
        let unsigned = withoutMask
        var oneApproval = withoutMask
        try CameraSignatures.sign(&oneApproval, account: admin.account, key: admin.key)
        var forged = current
        forged.version = 2
        forged.stamp(replacing: current, effectiveMilliseconds: now)
        try CameraSignatures.sign(&forged, account: TestAdmins.first, key: admin.key)
        try CameraSignatures.sign(&forged, account: TestAdmins.second, key: try Self.signer(TestAdmins.second).key)
        forged.privacyMasks[0].area.vertices.removeLast()  // shrunk after both signed
        var otherPrevious = withoutMask
        otherPrevious.replaces = Vigil_V1_CameraPrivacy()  // claims the camera had no mask
        otherPrevious.replacesDigest = Data(repeating: 1, count: 32)
        try CameraSignatures.sign(&otherPrevious, account: admin.account, key: admin.key)
        var recreated = withoutMask
        recreated.stamp(replacing: nil, effectiveMilliseconds: now)  // as if the camera were new
        try CameraSignatures.sign(&recreated, account: admin.account, key: admin.key)

        for config in [unsigned, oneApproval, forged, otherPrevious] { try await Self.kcatWrite(try config.serializedBytes(), effective: now, cluster) }
        try await Self.kcatWrite(nil, cluster)  // the camera deleted by an unsigned tombstone
        try await Self.kcatWrite(try recreated.serializedBytes(), effective: now, cluster)

        for (name, worker) in workers {
            try await eventually(timeout: .seconds(60), "\(name) refuses the six records") { try await Self.tableRecords(worker, name, outcome: "refused") >= 6 }
            #expect(try await Self.tableRecords(worker, name, outcome: "refused") == 6)
            #expect(try await Self.tableRecords(worker, name, outcome: "changed") == 1, "\(name) keeps version 1")
            let log = worker.process.standardError
            for reason in [
                "is not signed by any admin", "signed by one admin (test-admin)", "does not verify", "prepared against another configuration than version 1",
                "unsigned deletion", "judged against its last configuration",
            ] {
                #expect(log.contains(reason), "\(name) says why: \(reason)")
            }
        }

        // The CLI refuses a self-approval (audited) and an approval of a proposal altered after it was signed.
        let proposal = try Self.file("", "json")
        let propose = try await Self.vigil(["cameras", "propose", try Self.file(Self.unmasked), "--out", proposal] + TestAdmins.acting(as: TestAdmins.first), cluster)
        #expect(propose.exitStatus == 0, "\(propose.standardError.suffix(2_000))")
        #expect(propose.output.contains { $0.contains("1 of them reducing privacy") }, "\(propose.output)")
        let selfApproval = try await Self.vigil(["cameras", "approve", proposal] + TestAdmins.acting(as: TestAdmins.first), cluster)
        #expect(selfApproval.exitStatus == 1)
        #expect(selfApproval.standardError.contains("needs a second, distinct admin"), "\(selfApproval.standardError.suffix(2_000))")
        var altered = try CameraProposal.load(proposal)
        var alteredConfig = try altered.changes[0].config()
        alteredConfig.sourceURL = "/media/elsewhere.mp4"
        altered.changes[0].record = try alteredConfig.serializedData().base64EncodedString()
        let alteredFile = try Self.file("", "json")
        try altered.write(to: alteredFile)
        let wrongApproval = try await Self.vigil(["cameras", "approve", alteredFile] + TestAdmins.acting(as: TestAdmins.second), cluster)
        #expect(wrongApproval.exitStatus == 1)
        #expect(wrongApproval.standardError.contains("does not verify"), "\(wrongApproval.standardError.suffix(2_000))")
        let unapproved = try await Self.vigil(["cameras", "apply", "--proposal", proposal] + TestAdmins.acting(as: TestAdmins.first), cluster)
        #expect(unapproved.exitStatus == 1, "an unapproved proposal is not published")

        // A proposal whose text understates what its signed record does (says it reduces nothing).
        var understated = try CameraProposal.load(proposal)
        understated.changes[0].reductions = []
        let understatedFile = try Self.file("", "json")
        try understated.write(to: understatedFile)
        let misled = try await Self.vigil(["cameras", "approve", understatedFile] + TestAdmins.acting(as: TestAdmins.second), cluster)
        #expect(misled.exitStatus == 1)
        #expect(misled.standardError.contains("does not say what its signed record does"), "\(misled.standardError.suffix(2_000))")

        // Approved by the second admin, the change takes effect in both workers.
        let approve = try await Self.vigil(["cameras", "approve", proposal] + TestAdmins.acting(as: TestAdmins.second), cluster)
        #expect(approve.exitStatus == 0, "\(approve.standardError.suffix(2_000))")
        #expect(approve.output.contains { $0.contains("reduces privacy: it removes privacy mask window") }, "\(approve.output)")
        let apply = try await Self.vigil(["cameras", "apply", "--proposal", proposal] + TestAdmins.acting(as: TestAdmins.first), cluster)
        #expect(apply.exitStatus == 0, "\(apply.standardError.suffix(2_000))")
        for (name, worker) in workers {
            try await eventually(timeout: .seconds(60), "\(name) takes the approved change") { try await Self.tableRecords(worker, name, outcome: "changed") >= 2 }
        }

        // One admin restores the mask; then the approved reduction is replayed: the proposal
        // published again (refused by the CLI), and its record sent again with kcat.
        let restore = try await Self.vigil(["cameras", "apply", try Self.file(Self.masked), "--actor", TestAdmins.first], cluster)
        #expect(restore.exitStatus == 0, "\(restore.standardError.suffix(2_000))")
        for (name, worker) in workers {
            try await eventually(timeout: .seconds(60), "\(name) takes the restore") { try await Self.tableRecords(worker, name, outcome: "changed") >= 3 }
        }
        let republished = try await Self.vigil(["cameras", "apply", "--proposal", proposal] + TestAdmins.acting(as: TestAdmins.first), cluster)
        #expect(republished.exitStatus == 1)
        #expect(republished.standardError.contains("already published or superseded"), "\(republished.standardError.suffix(2_000))")
        let approved = try CameraProposal.load(proposal).changes[0].config()
        try await Self.kcatWrite(try approved.serializedBytes(), effective: approved.effectiveTime.milliseconds, cluster)
        for (name, worker) in workers {
            try await eventually(timeout: .seconds(60), "\(name) refuses the replay") { try await Self.tableRecords(worker, name, outcome: "refused") >= 7 }
            #expect(try await Self.tableRecords(worker, name, outcome: "refused") == 7, "nothing else refused")
            #expect(worker.process.standardError.contains("not newer than version 3"), "\(name) says why the replay is refused")
        }
        let list = try await Self.vigil(["cameras", "list"], cluster)
        let row = list.output.first { $0.hasPrefix("cam-0") } ?? ""
        #expect(row.contains(" v3 ") && row.split(separator: " ").contains("1"), "the cluster holds the restored version with its mask: \(row)")

        // Announced: a health record and an audit event per refusal and worker; the approvals audited.
        let refusals = try await Self.records("camera.health.v1", cluster).compactMap { try? Vigil_V1_CameraHealth(serializedBytes: $0.value) }.filter(\.hasConfigRefusal)
        for name in ["vigil-decode", "vigil-detect"] {
            #expect(Set(refusals.filter { $0.configRefusal.worker == name }.map(\.configRefusal.record)).count == 7, "\(name)'s refusals on camera.health.v1")
        }
        let events = try await Self.records("audit.events.v1", cluster).compactMap { try? Vigil_V1_AuditEvent(serializedBytes: $0.value) }
        let rejected = events.filter { $0.kind == .privacyChangeRejected }
        for name in ["vigil-decode", "vigil-detect"] {
            #expect(Set(rejected.filter { $0.actor == name }.map(\.eventID)).count == 7, "\(name)'s refusals audited")
        }
        #expect(rejected.contains { $0.origin == "vigil cameras approve" && $0.actor == TestAdmins.first }, "the self-approval is audited")
        #expect(events.contains { $0.kind == .privacyChangeRequested && $0.actor == TestAdmins.first })
        #expect(events.contains { $0.kind == .privacyChangeApproved && $0.actor == TestAdmins.second })
        #expect(events.contains { $0.kind == .cameraConfigChanged && $0.approvers == [TestAdmins.second] }, "the published change names its approver")

        for (_, worker) in workers {
            worker.process.signal(SIGTERM)
            try await worker.process.waitForExit()
        }
        try await cluster.stop()
    }

    @Test("a fresh reader of a partition whose oldest records are gone (the dev cluster keeps a partition's newest 5 MiB) refuses one admin's reduction it cannot judge, written with kcat, and leaves the camera unconfigured — never weaker")
    func readerWithoutHistory() async throws {
        let cluster = try await DevClusterProcess(topics: Self.topics)
        let first = try await Self.vigil(["cameras", "apply", try Self.file(Self.masked), "--actor", TestAdmins.first], cluster)
        #expect(first.exitStatus == 0, "\(first.standardError.suffix(2_000))")
        let (_, current, _) = try await Self.vigilCurrent(cluster)
        let partition = try #require(try await Self.records("cameras.v1", cluster).first { $0.key == Array("cam-0".utf8) }).partition

        // 6.4 MB of other records in cam-0's partition: the dev cluster drops its history, as
        // compaction or a retention limit would on a production cluster.
        let producer = try KafkaProducer(configuration: .init(cluster: KafkaConfiguration(bootstrapServers: cluster.bootstrapServers)), logger: Logger(label: "test"))
        // Random bytes: the producer compresses, and the cluster counts what it stores.
        var random = SystemRandomNumberGenerator()
        let fillers = (0..<32).map { _ in (0..<200_000).map { _ in UInt8.random(in: 0...255, using: &random) } }
        try await producer.send(all: fillers.map { KafkaProducerMessage(topic: "cameras.v1", partition: partition, key: "filler", value: $0) })
        await producer.close()
        #expect(try await Self.records("cameras.v1", cluster).first { $0.partition == partition }.map(\.offset) ?? 0 > 0, "the partition's first records are gone")

        // One admin's mask removal, honest about what it replaces.
        let now = Int64(Date().timeIntervalSince1970 * 1_000)
        var removal = current
        removal.privacyMasks = []
        removal.version = current.version + 1
        removal.stamp(replacing: current, effectiveMilliseconds: now)
        let admin = try Self.signer(TestAdmins.first)
        try CameraSignatures.sign(&removal, account: admin.account, key: admin.key)
        try await Self.kcatWrite(try removal.serializedBytes(), effective: now, cluster)

        // A fresh reader (`vigil cameras list` reads the topic from its start) cannot judge it.
        let list = try await Self.vigil(["cameras", "list"], cluster)
        #expect(list.exitStatus == 0, "\(list.standardError.suffix(2_000))")
        #expect(!list.output.contains { $0.hasPrefix("cam-0") }, "the camera is left unconfigured, not without its mask: \(list.output)")
        #expect(list.standardError.contains("replaces a configuration this reader never read"), "\(list.standardError.suffix(2_000))")
        try await cluster.stop()
    }

    /// The cluster's current cam-0 as `vigil cameras` reads it.
    static func vigilCurrent(_ cluster: DevClusterProcess) async throws -> (Table<Vigil_V1_CameraConfig>, Vigil_V1_CameraConfig, Int64) {
        let table = CameraTable.make(admins: try CameraAdmins.load(file: TestAdmins.files.keysFile))
        try await table.load(cluster: KafkaConfiguration(bootstrapServers: cluster.bootstrapServers), logger: Logger(label: "test"))
        let version = try #require(table.currentVersion("cam-0"))
        return (table, try #require(version.value), version.effectiveFromMilliseconds)
    }
}
