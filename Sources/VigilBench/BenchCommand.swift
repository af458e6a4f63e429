import ArgumentParser
import CommandLineSupport
import Foundation
import Kafka
import Logging

/// `vigil-bench`, which `vigil bench` runs: its own executable, since only the benchmarks need
/// FFmpeg, the detect models and every stage in one process.
@main
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vigil bench",
        abstract: "Benchmarks that print a ratio against an anchor measured in the same run.",
        subcommands: [KafkaBench.self, RuntimeBench.self, DetectBench.self, DecodeBench.self, IngestBench.self, MatchBench.self, MatchClusterBench.self, AlertBench.self]
    )
}

/// Produce and consume throughput of vigil's Kafka layer against kcat, both on one mock
/// cluster in the same run, with the same producer settings (idempotent, acks=all, zstd).
struct KafkaBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kafka",
        abstract: "Kafka produce/consume throughput vs kcat on the same dev cluster.",
        discussion: """
            For each value size, vigil and kcat each produce the same records to their own topic, then each consumes them as a new consumer group. Times are wall-clock from start to the last acknowledgement (produce) or the last record (consume), group join included for both. The ratio is vigil / kcat: above 1 means vigil is faster.
            """
    )

    @Option(help: "Records of 1 KiB.") var smallRecords = 200_000
    @Option(help: "Records of 100 KiB.") var largeRecords = 2_000
    @Option(help: "Partitions per topic (each mock partition keeps only 5 MiB: keep this × 5 MiB above the data).")
    var partitions = 64
    @Option(help: "Path of kcat.") var kcat = "/usr/bin/kcat"
    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        var logger = logging.bootstrap(label: "vigil.bench")
        logger.logLevel = max(logger.logLevel, .warning)
        let cluster = try KafkaMockCluster(brokers: 3, logger: logger)
        defer { cluster.shutdown() }
        writeLine("vigil bench kafka — mock cluster of 3 brokers, \(partitions) partitions per topic, idempotent + acks=all + zstd on both sides")
        writeLine("")
        writeLine("size    records  side    produce rec/s  produce MB/s  consume rec/s  consume MB/s")
        var ratios: [String] = []
        for (size, count) in [(1_024, smallRecords), (102_400, largeRecords)] where count > 0 {
            let workload = Workload(size: size, count: count)
            let ours = try await measureVigil(workload, cluster: cluster, logger: logger)
            let anchor = try await measureKcat(workload, cluster: cluster)
            for (side, result) in [("vigil", ours), ("kcat", anchor)] {
                writeLine(row(workload, side: side, result))
            }
            let produceRatio = anchor.produceSeconds / ours.produceSeconds
            let consumeRatio = anchor.consumeSeconds / ours.consumeSeconds
            ratios.append("\(workload.label): produce \(format(produceRatio, 2))× kcat, consume \(format(consumeRatio, 2))× kcat")
        }
        writeLine("")
        for ratio in ratios { writeLine("ratio  \(ratio)") }
    }

    struct Workload {
        let size: Int
        let count: Int
        var label: String { size >= 1_024 * 100 ? "100 KiB" : "1 KiB" }
        var megabytes: Double { Double(size * count) / 1_000_000 }

        func key(_ index: Int) -> String { "camera-\(index % 64)" }

        /// Letters a compressor cannot shrink much, different per record (no newline: kcat reads lines).
        func value(_ index: Int) -> [UInt8] {
            var state = UInt64(index) &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return (0..<size).map { _ in
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                return UInt8(ascii: "a") + UInt8((state >> 33) % 26)
            }
        }
    }

    struct Result {
        var produceSeconds: Double
        var consumeSeconds: Double
    }

    private func row(_ workload: Workload, side: String, _ result: Result) -> String {
        let count = Double(workload.count)
        return [
            workload.label.padding(toLength: 8, withPad: " ", startingAt: 0),
            String(workload.count).padding(toLength: 9, withPad: " ", startingAt: 0),
            side.padding(toLength: 8, withPad: " ", startingAt: 0),
            format(count / result.produceSeconds, 0).padding(toLength: 15, withPad: " ", startingAt: 0),
            format(workload.megabytes / result.produceSeconds, 1).padding(toLength: 14, withPad: " ", startingAt: 0),
            format(count / result.consumeSeconds, 0).padding(toLength: 15, withPad: " ", startingAt: 0),
            format(workload.megabytes / result.consumeSeconds, 1),
        ].joined()
    }

    private func format(_ value: Double, _ decimals: Int) -> String {
        String(format: "%.\(decimals)f", value)
    }

    private func measureVigil(_ workload: Workload, cluster: KafkaMockCluster, logger: Logger) async throws -> Result {
        let topic = "bench.vigil.\(workload.size)"
        try cluster.createTopic(topic, partitions: partitions, replicationFactor: 1)
        let common = KafkaConfiguration(bootstrapServers: cluster.bootstrapServers, clientID: "vigil-bench")
        let values = (0..<workload.count).map(workload.value)

        let produceStart = ContinuousClock.now
        let producer = try KafkaProducer(
            configuration: .init(cluster: common, maxMessageBytes: max(1_000_000, workload.size * 2)), logger: logger
        )
        var pending: [KafkaPendingDelivery] = []
        pending.reserveCapacity(workload.count)
        for index in 0..<workload.count {
            pending.append(try await producer.enqueue(KafkaProducerMessage(topic: topic, key: workload.key(index), value: values[index])))
        }
        for delivery in pending { _ = try await delivery.report() }
        await producer.close()
        let produceSeconds = elapsedSeconds(since: produceStart)

        let consumeStart = ContinuousClock.now
        let consumer = try KafkaConsumer(configuration: .init(cluster: common, groupID: "bench-vigil-\(workload.size)", topics: [topic]), logger: logger)
        var received = 0
        for try await message in consumer.messages {
            try consumer.storeOffset(message)
            received += 1
            if received == workload.count { break }
        }
        let consumeSeconds = elapsedSeconds(since: consumeStart)
        await consumer.close()
        guard received == workload.count else { throw ValidationError("vigil consumed \(received) of \(workload.count) records") }
        return Result(produceSeconds: produceSeconds, consumeSeconds: consumeSeconds)
    }

    private func measureKcat(_ workload: Workload, cluster: KafkaMockCluster) async throws -> Result {
        let topic = "bench.kcat.\(workload.size)"
        try cluster.createTopic(topic, partitions: partitions, replicationFactor: 1)
        let input = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-bench-\(workload.size).txt")
        defer { try? FileManager.default.removeItem(at: input) }
        var lines = Data()
        lines.reserveCapacity((workload.size + 16) * workload.count)
        for index in 0..<workload.count {
            lines.append(contentsOf: Array("\(workload.key(index)):".utf8) + workload.value(index) + [UInt8(ascii: "\n")])
        }
        try lines.write(to: input)

        let settings = ["-X", "enable.idempotence=true", "-X", "acks=all", "-X", "compression.codec=zstd", "-X", "linger.ms=5",
                        "-X", "message.max.bytes=\(max(1_000_000, workload.size * 2))"]
        let produceSeconds = try await runKcat(["-P", "-b", cluster.bootstrapServers, "-t", topic, "-K:", "-l", input.path] + settings)
        let consumeSeconds = try await runKcat([
            "-b", cluster.bootstrapServers, "-G", "bench-kcat-\(workload.size)", "-o", "beginning", "-c", String(workload.count),
            "-q", "-f", "%o\n", topic,
        ])
        return Result(produceSeconds: produceSeconds, consumeSeconds: consumeSeconds)
    }

    /// Runs kcat to completion and returns its wall time; its output goes nowhere.
    private func runKcat(_ arguments: [String]) async throws -> Double {
        try timedRun(kcat, arguments)
    }
}
