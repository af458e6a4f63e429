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

            The two sides take turns for --rounds rounds (each round a new consumer group and output topic per side), so a slow moment of the machine does not land on one side only; the ratio reported is the median of the rounds'.
            """
    )

    @Option(help: "Records per side.") var records = 100_000
    @Option(help: "Value size in bytes.") var valueSize = 1_024
    @Option(help: "Partitions per topic.") var partitions = 12
    @Option(help: "Rounds of raw loop then runtime; the median ratio is reported.") var rounds = 3
    @OptionGroup var logging: LoggingOptions

    struct Forward: Stage {
        let output: String

        func process(_ input: StageInput) async throws -> [StageOutput] {
            [StageOutput(topic: output, key: input.key, value: input.value, headers: input.headers)]
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
        let outputs = (0..<rounds).flatMap { ["bench.raw.out.\($0)", "bench.runtime.out.\($0)"] }
        for topic in ["bench.raw.in", "bench.runtime.in", "bench.runtime.in.dlq"] + outputs {
            try cluster.createTopic(topic, partitions: partitions, replicationFactor: 1)
        }
        let common = KafkaConfiguration(bootstrapServers: cluster.bootstrapServers, clientID: "vigil-bench")
        try await fill(["bench.raw.in", "bench.runtime.in"], common: common, logger: logger)
        let admin = try KafkaAdmin(configuration: common, logger: logger)

        writeLine("vigil bench runtime — \(records) records of \(valueSize) B, \(partitions) partitions, mock cluster of 3 brokers, \(rounds) rounds")
        var ratios: [Double] = []
        for round in 0..<rounds {
            let raw = try await measure(output: "bench.raw.out.\(round)", admin: admin) {
                try await rawLoop(group: "bench-raw-\(round)", output: "bench.raw.out.\(round)", common: common, logger: logger)
            }
            let runtime = try await measure(output: "bench.runtime.out.\(round)", admin: admin) {
                try await Worker.run(
                    stage: Forward(output: "bench.runtime.out.\(round)"),
                    configuration: WorkerConfiguration(
                        name: "bench-runtime", groupID: "bench-runtime-\(round)", inputs: ["bench.runtime.in"], outputs: ["bench.runtime.out.\(round)"],
                        kafka: common, httpHost: "127.0.0.1", httpPort: 0
                    ),
                    registry: registry, logger: logger
                )
            }
            let rawMicros = raw / Double(records) * 1e6
            let runtimeMicros = runtime / Double(records) * 1e6
            ratios.append(raw / runtime)
            writeLine(String(
                format: "round %d: raw loop %.2f s (%.1f µs/record, %.0f records/s); runtime %.2f s (%.1f µs/record, %.0f records/s); overhead %.1f µs/record; ratio %.2f×",
                round + 1, raw, rawMicros, Double(records) / raw, runtime, runtimeMicros, Double(records) / runtime, runtimeMicros - rawMicros, raw / runtime
            ))
        }
        let median = ratios.sorted()[ratios.count / 2]
        let perRound = ratios.map { String(format: "%.2f", $0) }.joined(separator: ", ")
        writeLine(String(format: "ratio runtime/raw throughput: median %.2f×", median) + " (rounds: \(perRound))")
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
    private func rawLoop(group: String, output: String, common: KafkaConfiguration, logger: Logger) async throws {
        let consumer = try KafkaConsumer(configuration: .init(cluster: common, groupID: group, topics: ["bench.raw.in"]), logger: logger)
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
                    KafkaProducerMessage(topic: output, key: message.key, value: message.value, headers: message.headers)
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
