import Foundation
import Kafka
import Logging
import Prometheus
import Synchronization
import Testing
@testable import WorkerRuntime

/// Log lines at warning or above, whoever logs them (the runner, Hummingbird, librdkafka).
final class LoudLines: Sendable {
    private let lines = Mutex<[String]>([])
    var all: [String] { lines.withLock { $0 } }
    func append(_ line: String) { lines.withLock { $0.append(line) } }

    var logger: Logger {
        Logger(label: "stop-test") { _ in Handler(sink: self) }
    }

    struct Handler: LogHandler {
        let sink: LoudLines
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String, file: String, function: String, line: UInt) {
            if level >= .warning { sink.append("\(level) [\(source)] \(message) \(metadata ?? [:])") }
        }
    }
}

/// Forwards each record after `delay`.
struct DelayedForward: Stage {
    let delay: Duration
    func process(_ input: StageInput) async throws -> [StageOutput] {
        if delay > .zero { try await Task.sleep(for: delay) }
        return [StageOutput(topic: "out", key: input.key, value: input.value)]
    }
}

@Suite("A worker's normal stop (in-process mock cluster)", .serialized, .timeLimit(.minutes(3)))
struct WorkerStopTests {
    /// Runs a worker over 200 records in `in`, stops it (cancels its task, as a benchmark or
    /// a supervisor does) once `stopWhen` holds for the records in `out`, and returns what it
    /// logged at warning or above and how many records of `in` its group left uncommitted.
    func stop(delay: Duration, stopWhen: @escaping (Int64) -> Bool) async throws -> (loud: [String], uncommitted: Int64, delivered: Int64) {
        let logger = quietLogger()
        let cluster = try KafkaMockCluster(brokers: 1, logger: logger)
        defer { cluster.shutdown() }
        for topic in ["in", "out", "in.dlq"] { try cluster.createTopic(topic, partitions: 1, replicationFactor: 1) }
        let common = KafkaConfiguration(bootstrapServers: cluster.bootstrapServers)
        let producer = try KafkaProducer(configuration: .init(cluster: common), logger: logger)
        for index in 0..<200 { try await producer.send(KafkaProducerMessage(topic: "in", key: "k", value: Array("r\(index)".utf8))) }
        await producer.close()
        let loud = LoudLines()
        let configuration = WorkerConfiguration(
            name: "stop-test", inputs: ["in"], outputs: ["out"], kafka: common, commitInterval: .milliseconds(100), httpHost: "127.0.0.1", httpPort: 0
        )
        let worker = Task {
            try await Worker.run(stage: DelayedForward(delay: delay), configuration: configuration, registry: PrometheusCollectorRegistry(), logger: loud.logger)
        }
        let admin = try KafkaAdmin(configuration: common, logger: logger)
        let out = KafkaTopicPartition(topic: "out", partition: 0)
        let deadline = ContinuousClock.now + .seconds(60)
        while try await !stopWhen(admin.watermarks(out).high), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        worker.cancel()
        try await worker.value
        let delivered = try await admin.watermarks(out).high
        let committed = try await admin.committedOffsets(group: "stop-test", partitions: [KafkaTopicPartition(topic: "in", partition: 0)])
        let uncommitted = 200 - ((committed.values.first ?? nil) ?? 0)
        return (loud.all, uncommitted, delivered)
    }

    func quietLogger() -> Logger {
        var logger = Logger(label: "stop-test-cluster")
        logger.logLevel = .critical
        return logger
    }

    @Test("stopped while idle (every record processed): nothing logged at warning or above, everything committed")
    func idleStopIsQuiet() async throws {
        let result = try await stop(delay: .zero) { $0 >= 200 }
        #expect(result.loud.isEmpty, "\(result.loud)")
        #expect(result.uncommitted == 0)
    }

    @Test("stopped mid-batch (a slow stage with records in flight): the records in flight finish, nothing logged at warning or above, and exactly what was delivered is committed")
    func midBatchStopIsQuiet() async throws {
        let result = try await stop(delay: .milliseconds(20)) { $0 >= 20 }
        #expect(result.loud.isEmpty, "\(result.loud)")
        #expect(result.delivered < 200, "stopped mid-batch: \(result.delivered) delivered")
        #expect(200 - result.uncommitted == result.delivered, "committed \(200 - result.uncommitted), delivered \(result.delivered)")
    }
}
