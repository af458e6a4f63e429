import ArgumentParser
import CommandLineSupport
import Foundation
import Kafka
import Logging
import Metrics
import Prometheus
import SwiftProtobuf
import VigilSchema
import WorkerRuntime

/// The worker runtime's cost per record: a pass-through stage run by the runtime against a
/// hand-written consume → produce → store-offset loop, and a stateful stage (a count per key,
/// updated and written to the changelog for every record), on one mock cluster in the same
/// run; then the rate at which a replica restores state from a changelog.
struct RuntimeBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "runtime",
        abstract: "Worker runtime overhead per record vs a raw consumer→producer loop.",
        discussion: """
            Both sides read the same records from their own input topic and forward each to an output topic, storing offsets only after delivery. The clock runs from the first output record to the last, read from the output topic's watermarks, so group joins are not counted. The runtime side adds the DLQ/shedding decision, trace headers, record ids, metrics (Prometheus) and in-order offset storing.

            The stateful side runs a stage that keeps a count per key: every record updates the key's state and writes its snapshot to a changelog after the output is acknowledged and before the offset is stored. Its ratio against the stateless runtime is the cost of state.

            The sides take turns for --rounds rounds (each round a new consumer group, output and changelog topic per side), so a slow moment of the machine does not land on one side only; the ratios reported are the medians of the rounds'.

            Restore: --restore-keys snapshots are written to a changelog of --partitions partitions, then read and decoded the way a replica restores its partitions on assignment; reported as keys per second and seconds.
            """
    )

    @Option(help: "Records per side.") var records = 100_000
    @Option(help: "Value size in bytes.") var valueSize = 1_024
    @Option(help: "Partitions per topic.") var partitions = 12
    @Option(help: "Rounds of raw loop, runtime and stateful runtime; the median ratios are reported.") var rounds = 3
    @Option(help: "Keys in the changelog the restore is timed on.") var restoreKeys = 50_000
    @OptionGroup var logging: LoggingOptions

    struct Forward: Stage {
        let output: String

        func process(_ input: StageInput) async throws -> [StageOutput] {
            [StageOutput(topic: output, key: input.key, value: input.value, headers: input.headers)]
        }
    }

    /// Counts records per key: a state update and a changelog snapshot for every record, and
    /// the record forwarded so the output topic shows progress.
    struct CountPerKey: StatefulStage {
        struct Count: StageState {
            var value: Int

            init(value: Int) {
                self.value = value
            }

            init(stateBytes: [UInt8]) throws {
                guard let value = Int(String(decoding: stateBytes, as: UTF8.self)) else { throw ValidationError("not a count") }
                self.value = value
            }

            var stateBytes: [UInt8] { Array(String(value).utf8) }
        }

        let output: String
        var allowedLateness: Duration { .seconds(3_600) }

        func process(_ input: StageInput, key: String, eventTime: Int64, state: inout Count?, timers: inout Timers) async throws -> [StageOutput] {
            state = Count(value: (state?.value ?? 0) + 1)
            return [StageOutput(topic: output, key: input.key, value: input.value, headers: input.headers)]
        }

        func timerFired(_ timer: FiredTimer, key: String, state: inout Count?, timers: inout Timers) async throws -> [StageOutput] { [] }
    }

    func run() async throws {
        var quiet = logging.bootstrap(label: "vigil.bench")
        quiet.logLevel = max(quiet.logLevel, .warning)
        let logger = quiet
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        let cluster = try KafkaMockCluster(brokers: 3, logger: logger)
        defer { cluster.shutdown() }
        let outputs = (0..<rounds).flatMap {
            ["bench.raw.out.\($0)", "bench.runtime.out.\($0)", "bench.stateful.out.\($0)", "bench.stateful.changelog.\($0)"]
        }
        for topic in ["bench.raw.in", "bench.runtime.in", "bench.runtime.in.dlq", "bench.stateful.in", "bench.stateful.in.dlq", "bench.restore.changelog"] + outputs {
            try cluster.createTopic(topic, partitions: partitions, replicationFactor: 1)
        }
        let common = KafkaConfiguration(bootstrapServers: cluster.bootstrapServers, clientID: "vigil-bench")
        try await fill(["bench.raw.in", "bench.runtime.in", "bench.stateful.in"], common: common, logger: logger)
        let admin = try KafkaAdmin(configuration: common, logger: logger)

        writeLine("vigil bench runtime — \(records) records of \(valueSize) B, \(partitions) partitions, mock cluster of 3 brokers, \(rounds) rounds")
        var ratios: [Double] = []
        var statefulRatios: [Double] = []
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
            let changelog = "bench.stateful.changelog.\(round)"
            let stateful = try await measure(output: "bench.stateful.out.\(round)", admin: admin) {
                try await Worker.run(
                    statefulStage: CountPerKey(output: "bench.stateful.out.\(round)"),
                    configuration: WorkerConfiguration(
                        name: "bench-stateful", groupID: "bench-stateful-\(round)", inputs: ["bench.stateful.in"],
                        outputs: ["bench.stateful.out.\(round)", changelog], stateChangelog: changelog, kafka: common,
                        httpHost: "127.0.0.1", httpPort: 0
                    ),
                    registry: registry, logger: logger
                )
            }
            let rawMicros = raw / Double(records) * 1e6
            let runtimeMicros = runtime / Double(records) * 1e6
            let statefulMicros = stateful / Double(records) * 1e6
            ratios.append(raw / runtime)
            statefulRatios.append(runtime / stateful)
            writeLine(String(
                format: "round %d: raw loop %.2f s (%.1f µs/record, %.0f records/s); runtime %.2f s (%.1f µs/record, %.0f records/s); overhead %.1f µs/record; ratio %.2f×",
                round + 1, raw, rawMicros, Double(records) / raw, runtime, runtimeMicros, Double(records) / runtime, runtimeMicros - rawMicros, raw / runtime
            ))
            writeLine(String(
                format: "         stateful %.2f s (%.1f µs/record, %.0f records/s); state costs %.1f µs/record; stateful/runtime ratio %.2f×",
                stateful, statefulMicros, Double(records) / stateful, statefulMicros - runtimeMicros, runtime / stateful
            ))
        }
        writeLine(String(format: "ratio runtime/raw throughput: median %.2f×", Self.median(ratios)) + " (rounds: \(Self.list(ratios)))")
        writeLine(String(format: "ratio stateful/runtime throughput: median %.2f×", Self.median(statefulRatios)) + " (rounds: \(Self.list(statefulRatios)))")
        try await benchRestore(common: common, logger: logger)
    }

    static func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
    static func list(_ values: [Double]) -> String { values.map { String(format: "%.2f", $0) }.joined(separator: ", ") }

    /// Writes `restoreKeys` snapshots, then times a restore of every partition.
    private func benchRestore(common: KafkaConfiguration, logger: Logger) async throws {
        let producer = try KafkaProducer(configuration: .init(cluster: common), logger: logger)
        var pending: [KafkaPendingDelivery] = []
        for index in 0..<restoreKeys {
            var snapshot = Vigil_V1_KeyStateSnapshot()
            snapshot.state = Data(String(index).utf8)
            snapshot.maxEventTime = 1_000_000 + Int64(index)
            snapshot.nextOffsets = ["bench.stateful.in": Int64(index)]
            snapshot.eventTimers = ["window": 1_001_000 + Int64(index)]
            pending.append(try await producer.enqueue(KafkaProducerMessage(
                topic: "bench.restore.changelog", partition: Int32(index % partitions), key: "camera-\(index)", value: try snapshot.serializedBytes()
            )))
        }
        for delivery in pending { _ = try await delivery.report() }
        await producer.close()
        let started = ContinuousClock.now
        let keys = try await Worker.restoreState(
            of: CountPerKey(output: "unused"), changelog: "bench.restore.changelog", partitions: Set((0..<Int32(partitions))),
            cluster: common, logger: logger
        )
        let elapsed = ContinuousClock.now - started
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        guard keys == restoreKeys else { throw ValidationError("restored \(keys) keys of \(restoreKeys)") }
        writeLine(String(format: "restore: %d keys (one snapshot each) from %d partitions in %.2f s, %.0f keys/s", keys, partitions, seconds, Double(keys) / seconds))
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
