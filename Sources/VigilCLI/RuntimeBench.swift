import ArgumentParser
import Foundation
import Kafka
import Logging
import Metrics
import Prometheus
import WorkerRuntime

/// The worker runtime's cost per record: a pass-through stage run by the runtime against a
/// hand-written consume → produce → store-offset loop, on one mock cluster in the same run.
struct RuntimeBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "runtime",
        abstract: "Worker runtime overhead per record vs a raw consumer→producer loop.",
        discussion: """
            Both sides read the same records from their own input topic and forward each to an output topic, storing offsets only after delivery. The clock runs from the first output record to the last, read from the output topic's watermarks, so group joins are not counted. The runtime side adds the DLQ/shedding decision, trace headers, record ids, metrics (Prometheus) and in-order offset storing.
            """
    )

    @Option(help: "Records per side.") var records = 100_000
    @Option(help: "Value size in bytes.") var valueSize = 1_024
    @Option(help: "Partitions per topic.") var partitions = 12
    @OptionGroup var logging: LoggingOptions

    struct Forward: Stage {
        func process(_ input: StageInput) async throws -> [StageOutput] {
            [StageOutput(topic: "bench.runtime.out", key: input.key, value: input.value, headers: input.headers)]
        }
    }

    func run() async throws {
        var quiet = logging.bootstrap(label: "vigil.bench")
        quiet.logLevel = max(quiet.logLevel, .warning)
        let logger = quiet
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        let cluster = try KafkaMockCluster(brokers: 3, logger: logger)
        defer { cluster.shutdown() }
        for topic in ["bench.raw.in", "bench.raw.out", "bench.runtime.in", "bench.runtime.out", "bench.runtime.in.dlq"] {
            try cluster.createTopic(topic, partitions: partitions, replicationFactor: 1)
        }
        let common = KafkaConfiguration(bootstrapServers: cluster.bootstrapServers, clientID: "vigil-bench")
        try await fill(["bench.raw.in", "bench.runtime.in"], common: common, logger: logger)
        let admin = try KafkaAdmin(configuration: common, logger: logger)

        let raw = try await measure(output: "bench.raw.out", admin: admin) {
            try await rawLoop(common: common, logger: logger)
        }
        let runtime = try await measure(output: "bench.runtime.out", admin: admin) {
            try await Worker.run(
                stage: Forward(),
                configuration: WorkerConfiguration(
                    name: "bench-runtime", inputs: ["bench.runtime.in"], outputs: ["bench.runtime.out"], kafka: common, httpHost: "127.0.0.1", httpPort: 0
                ),
                registry: registry, logger: logger
            )
        }
        let rawMicros = raw / Double(records) * 1e6
        let runtimeMicros = runtime / Double(records) * 1e6
        writeLine("vigil bench runtime — \(records) records of \(valueSize) B, \(partitions) partitions, mock cluster of 3 brokers")
        writeLine(String(format: "raw consumer→producer loop: %.2f s, %.1f µs/record, %.0f records/s", raw, rawMicros, Double(records) / raw))
        writeLine(String(format: "worker runtime (pass-through): %.2f s, %.1f µs/record, %.0f records/s", runtime, runtimeMicros, Double(records) / runtime))
        writeLine(String(format: "overhead: %.1f µs/record; ratio runtime/raw throughput %.2f×", runtimeMicros - rawMicros, raw / runtime))
    }

    private func fill(_ topics: [String], common: KafkaConfiguration, logger: Logger) async throws {
        let producer = try KafkaProducer(configuration: .init(cluster: common), logger: logger)
        var pending: [KafkaPendingDelivery] = []
        for topic in topics {
            for index in 0..<records {
                let value = [UInt8](repeating: UInt8(ascii: "a") + UInt8(index % 26), count: valueSize)
                pending.append(try await producer.enqueue(KafkaProducerMessage(topic: topic, key: "camera-\(index % 100)", value: value)))
            }
        }
        for delivery in pending { _ = try await delivery.report() }
        await producer.close()
    }

    /// The same semantics without the runtime: forward, await delivery in order, store offset.
    private func rawLoop(common: KafkaConfiguration, logger: Logger) async throws {
        let consumer = try KafkaConsumer(configuration: .init(cluster: common, groupID: "bench-raw", topics: ["bench.raw.in"]), logger: logger)
        let producer = try KafkaProducer(configuration: .init(cluster: common), logger: logger)
        let (pending, input) = AsyncStream<(KafkaConsumerMessage, KafkaPendingDelivery)>.makeStream()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for await (message, delivery) in pending {
                    _ = try await delivery.report()
                    try consumer.storeOffset(message)
                }
            }
            // Ends when the benchmark cancels this task.
            for try await message in consumer.messages {
                let delivery = try await producer.enqueue(
                    KafkaProducerMessage(topic: "bench.raw.out", key: message.key, value: message.value, headers: message.headers)
                )
                input.yield((message, delivery))
            }
            input.finish()
            try await group.waitForAll()
        }
        await producer.close()
        await consumer.close()
    }

    /// Runs `body` until `output` holds every record; seconds from its first record to its last.
    private func measure(output: String, admin: KafkaAdmin, _ body: @escaping @Sendable () async throws -> Void) async throws -> Double {
        let task = Task { try await body() }
        defer { task.cancel() }
        // Clients close before the cluster goes away, so teardown is quiet.
        func stop() async {
            task.cancel()
            _ = try? await task.value
        }
        var first: ContinuousClock.Instant?
        let deadline = ContinuousClock.now + .seconds(600)
        while ContinuousClock.now < deadline {
            var total: Int64 = 0
            for partition in 0..<partitions {
                total += try await admin.watermarks(KafkaTopicPartition(topic: output, partition: Int32(partition))).high
            }
            if total > 0 && first == nil { first = .now }
            if total >= records, let first {
                let elapsed = ContinuousClock.now - first
                await stop()
                return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw ValidationError("\(output) did not receive \(records) records within 10 minutes")
    }
}
