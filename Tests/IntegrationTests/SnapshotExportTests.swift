import ChildProcesses
import Foundation
import Kafka
import Logging
import SwiftProtobuf
import Testing
import VigilSchema
import Vision

/// `vigil snapshots export` as an operator runs it: every exported image is audited first.
@Suite("vigil snapshots export across processes", .serialized, .timeLimit(.minutes(3)))
struct SnapshotExportTests {
    /// A redacted snapshot as detect publishes it: a real JPEG of a gradient.
    static func snapshot(_ number: Int) throws -> Vigil_V1_Snapshot {
        let (width, height) = (64, 48)
        var pixels: [UInt8] = []
        for y in 0..<height {
            for x in 0..<width { pixels += [UInt8(x * 4), UInt8(y * 5), UInt8(number * 60)] }
        }
        var snapshot = Vigil_V1_Snapshot()
        snapshot.snapshotID = "snapshot-\(number)"
        snapshot.cameraID = "lobby-1"
        snapshot.captureTime = Google_Protobuf_Timestamp(milliseconds: 1_800_000_000_000 + Int64(number) * 1_000)
        snapshot.redactedJpeg = Data(try RGBImage(width: width, height: height, pixels: pixels).jpeg(quality: 90))
        return snapshot
    }

    @Test("an export whose audit events are not acknowledged writes no image file and exits 1 saying so; once they are, it writes them")
    func unauditedExportWritesNothing() async throws {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-snapshots-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let cluster = try await DevClusterProcess(brokers: 1, topics: ["snapshots.v1:1", "audit.events.v1:1"])
        let kafka = KafkaConfiguration(bootstrapServers: cluster.bootstrapServers)
        let producer = try KafkaProducer(configuration: .init(cluster: kafka), logger: Logger(label: "test"))
        for number in 0..<3 {
            let value: [UInt8] = try Self.snapshot(number).serializedBytes()
            _ = try await producer.enqueue(KafkaProducerMessage(topic: "snapshots.v1", key: Array("lobby-1".utf8), value: value)).report()
        }
        await producer.close()
        func export() async throws -> ChildProcess {
            let run = try ChildProcess("vigil", ["snapshots", "export", scratch.path, "--actor", "auditor-1", "--bootstrap", cluster.bootstrapServers, "--log-level", "warning"])
            try await run.waitForExit(timeout: .seconds(60))
            return run
        }
        func files() -> [String] { ((try? FileManager.default.contentsOfDirectory(atPath: scratch.path)) ?? []).sorted() }

        // The audit events' produce request fails with TOPIC_AUTHORIZATION_FAILED, which is not retried.
        try await cluster.control(["request-errors", "--api", "0", "--error", "29"])
        let refused = try await export()
        #expect(refused.exitStatus == 1, "\(refused.output) \(refused.standardError)")
        #expect(files().isEmpty, "no snapshot written before its audit event was acknowledged: \(files())")
        #expect(refused.standardError.contains("cannot write audit events to audit.events.v1") && refused.standardError.contains("nothing was exported"), "\(refused.standardError)")

        // The fault is spent: the same export is audited, then written.
        let exported = try await export()
        #expect(exported.exitStatus == 0, "\(exported.standardError)")
        #expect(files() == (0..<3).map { "lobby-1-\(1_800_000_000_000 + $0 * 1_000).jpg" })
        let audited = try await KafkaTableReader.readPartitions(cluster: kafka, topic: "audit.events.v1", partitions: nil, logger: Logger(label: "test"))
            .compactMap { try? Vigil_V1_AuditEvent(serializedBytes: $0.value) }.filter { $0.kind == .snapshotExported && $0.actor == "auditor-1" }
        #expect(Set(audited.map(\.subject)).isSuperset(of: (0..<3).map { "snapshot:snapshot-\($0)" }), "\(audited.map(\.subject))")
        try await cluster.stop()
    }
}
