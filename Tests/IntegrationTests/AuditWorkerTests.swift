import ChildProcesses
import Foundation
import Kafka
import Logging
import SwiftProtobuf
import Testing
import VigilSchema

/// vigil-audit on the dev cluster, and `vigil audit verify|export` as an auditor runs them:
/// every event chained once across a crash, heads signed, an export verified offline,
/// tampering with the topic found.
@Suite("vigil-audit and vigil audit across processes", .serialized, .timeLimit(.minutes(6)))
struct AuditWorkerTests {
    static let topics = ["audit.events.v1:3", "audit.events.v1.dlq:1", "audit.log.v1:3", "audit.heads.v1:3"]

    static func event(_ number: Int) throws -> [UInt8] {
        var event = Vigil_V1_AuditEvent()
        event.eventID = "test-\(number)"
        event.kind = number % 20 == 19 ? .headRequested : .ruleChanged
        event.actor = "admin-\(number % 3)"
        event.subject = "rule:r\(number % 7)"
        event.detail = "added: version \(number)"
        event.eventTime = Google_Protobuf_Timestamp(date: Date())
        return try event.serializedBytes()
    }

    static func vigil(_ arguments: [String]) async throws -> ChildProcess {
        let run = try ChildProcess("vigil", arguments + (arguments[1] == "keygen" ? [] : ["--log-level", "warning"]))
        try await run.waitForExit(timeout: .seconds(60))
        return run
    }

    @Test("each event is chained once across a SIGKILL; the chains and their signed heads verify, also offline from an export; a forged record and a cut-off chain are found")
    func chainedOnce() async throws {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-audit-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let keyFile = scratch.appendingPathComponent("signing.key").path
        let keygen = try await Self.vigil(["audit", "keygen", "--out", keyFile])
        #expect(keygen.exitStatus == 0, "\(keygen.standardError)")
        let publicKey = try #require(keygen.output.first { $0.hasPrefix("public key") }?.split(separator: " ").last.map(String.init))
        #expect(try String(contentsOfFile: keyFile, encoding: .utf8).count > 40 && !keygen.output.joined().contains(try String(contentsOfFile: keyFile, encoding: .utf8).trimmingCharacters(in: .newlines)), "the private key is written, never printed")

        let cluster = try await DevClusterProcess(topics: Self.topics)
        let kafka = KafkaConfiguration(bootstrapServers: cluster.bootstrapServers)
        let environment = [
            "WORKER_INPUTS": "audit.events.v1", "WORKER_OUTPUTS": "audit.log.v1,audit.heads.v1", "WORKER_NAME": "vigil-audit",
            "AUDIT_SIGNING_KEY_FILE": keyFile, "AUDIT_HEAD_INTERVAL_S": "1",
        ]
        var worker = try await PassThroughWorkerProcess.start(cluster, environment: environment, executable: "vigil-audit")
        let producer = try KafkaProducer(configuration: .init(cluster: kafka), logger: Logger(label: "test"))
        func logCount() async throws -> Int {
            try await KafkaTableReader.readPartitions(cluster: kafka, topic: "audit.log.v1", partitions: nil, logger: Logger(label: "test")).count
        }
        // 60 events and one that is not an event; the worker is killed once half are chained.
        for number in 0..<30 { _ = try await producer.enqueue(KafkaProducerMessage(topic: "audit.events.v1", key: Array("r\(number % 7)".utf8), value: try Self.event(number))).report() }
        _ = try await producer.enqueue(KafkaProducerMessage(topic: "audit.events.v1", key: Array("bad".utf8), value: [0xFF, 0x01, 0x02])).report()
        try await eventually(timeout: .seconds(60), "half the events are chained") { try await logCount() >= 25 }
        worker.process.signal(SIGKILL)
        try await worker.process.waitForExit()
        for number in 30..<60 { _ = try await producer.enqueue(KafkaProducerMessage(topic: "audit.events.v1", key: Array("r\(number % 7)".utf8), value: try Self.event(number))).report() }
        await producer.close()
        worker = try await PassThroughWorkerProcess.start(cluster, environment: environment, executable: "vigil-audit")
        try await eventually(timeout: .seconds(60), "every event is chained") { try await logCount() >= 60 }
        try await cluster.waitUntilCommitted(topic: "audit.events.v1", group: "vigil-audit")
        #expect(try await logCount() == 60, "each event once, none twice after the crash")
        // On demand: a head for every chain at its newest record (the request is chained too).
        let request = try await Self.vigil(["audit", "request-head", "--bootstrap", cluster.bootstrapServers, "--actor", "auditor-1"])
        #expect(request.exitStatus == 0 && request.output.contains { $0.contains("asked for the heads of 3 chains") }, "\(request.output) \(request.standardError)")
        try await eventually(timeout: .seconds(60), "the requested heads are signed at the chains' newest records") {
            let log = try await KafkaTableReader.readPartitions(cluster: kafka, topic: "audit.log.v1", partitions: nil, logger: Logger(label: "test"))
            let heads = try await KafkaTableReader.readPartitions(cluster: kafka, topic: "audit.heads.v1", partitions: nil, logger: Logger(label: "test"))
                .compactMap { try? Vigil_V1_AuditChainHead(serializedBytes: $0.value) }
            return log.count == 63 && (Int32(0)..<3).allSatisfy { partition in
                let newest = UInt64(log.filter { $0.partition == partition }.count - 1)
                return heads.contains { $0.partition == partition && $0.sequence == newest }
            }
        }
        #expect(try await cluster.kcatRecords("audit.events.v1.dlq").count == 1, "the record that is not an event is dead-lettered")

        let verify = try await Self.vigil(["audit", "verify", "--bootstrap", cluster.bootstrapServers, "--public-key", publicKey])
        #expect(verify.exitStatus == 0, "\(verify.output) \(verify.standardError)")
        #expect(verify.output.filter { $0.hasPrefix("partition ") && $0.hasSuffix(": ok") && $0.contains("signed head") }.count == 3, "\(verify.output)")

        // An auditor exports the log and its heads, and checks them with no cluster.
        let export = scratch.appendingPathComponent("export")
        let exported = try await Self.vigil(["audit", "export", export.path, "--bootstrap", cluster.bootstrapServers])
        #expect(exported.exitStatus == 0 && exported.output.contains { $0.contains("exported 63 records of 3 chains") }, "\(exported.output)")
        let offline = try await Self.vigil(["audit", "verify", "--from", export.path, "--public-key", publicKey])
        #expect(offline.exitStatus == 0, "\(offline.output)")
        // The same export with its newest records cut off, against the heads the auditor kept.
        let cut = scratch.appendingPathComponent("cut")
        try FileManager.default.createDirectory(at: cut, withIntermediateDirectories: true)
        let lines = try String(contentsOf: export.appendingPathComponent("log.jsonl"), encoding: .utf8).split(separator: "\n")
        // Partition 0 keeps only its first record; the restarted worker signed a later head of it.
        let partitionZero = lines.filter { $0.contains("\"partition\":0") }
        try (lines.filter { !partitionZero.dropFirst().contains($0) }.joined(separator: "\n") + "\n").write(to: cut.appendingPathComponent("log.jsonl"), atomically: true, encoding: .utf8)
        try "\n".write(to: cut.appendingPathComponent("heads.jsonl"), atomically: true, encoding: .utf8)
        let truncated = try await Self.vigil(["audit", "verify", "--from", cut.path, "--head", export.appendingPathComponent("heads.jsonl").path, "--public-key", publicKey])
        #expect(truncated.exitStatus == 1 && truncated.output.contains { $0.contains("truncated") && $0.contains("cut off") }, "\(truncated.output)")
        // The same export with partition 1 deleted whole: the heads the cluster published still name it.
        let deleted = scratch.appendingPathComponent("deleted")
        try FileManager.default.createDirectory(at: deleted, withIntermediateDirectories: true)
        try (lines.filter { !$0.contains("\"partition\":1") }.joined(separator: "\n") + "\n").write(to: deleted.appendingPathComponent("log.jsonl"), atomically: true, encoding: .utf8)
        try FileManager.default.copyItem(at: export.appendingPathComponent("heads.jsonl"), to: deleted.appendingPathComponent("heads.jsonl"))
        let wholeChain = try await Self.vigil(["audit", "verify", "--from", deleted.path, "--public-key", publicKey])
        #expect(wholeChain.exitStatus == 1 && wholeChain.output.contains { $0.hasPrefix("partition 1: 0 records") }, "\(wholeChain.output)")
        #expect(wholeChain.output.contains { $0.contains("truncated") && $0.contains("the whole chain up to it was deleted") }, "\(wholeChain.output)")

        // Someone with write access appends a record of their own to partition 0.
        var forged = Vigil_V1_AuditRecord()
        forged.sequence = 1_000
        forged.previousHash = Data(repeating: 1, count: 32)
        forged.serializedEvent = Data(try Self.event(999))
        forged.hash = Data(repeating: 2, count: 32)
        let writer = try KafkaProducer(configuration: .init(cluster: kafka), logger: Logger(label: "test"))
        let forgedBytes: [UInt8] = try forged.serializedBytes()
        _ = try await writer.enqueue(KafkaProducerMessage(topic: "audit.log.v1", partition: 0, key: Array("forged".utf8), value: forgedBytes)).report()
        await writer.close()
        let tampered = try await Self.vigil(["audit", "verify", "--bootstrap", cluster.bootstrapServers, "--public-key", publicKey])
        #expect(tampered.exitStatus == 1, "\(tampered.output)")
        #expect(tampered.output.contains { $0.contains("modified") } && tampered.output.contains { $0.contains("missing") }, "\(tampered.output)")

        worker.process.signal(SIGTERM)
        try await worker.process.waitForExit()
        try await cluster.stop()
    }
}
