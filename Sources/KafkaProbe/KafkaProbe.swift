import ArgumentParser
import Foundation
import Kafka
import Logging
import ServiceLifecycle
import UnixSignals

/// A small Kafka client process for the multi-process tests and for diagnostics.
///
/// Everything it observes goes to standard output as one JSON object per line
/// (`produced`, `delivered`, `message`, `assigned`, `revoked`, `lost`, `stopped`), so a test can
/// follow it while it runs. Logs go to standard error.
@main
struct KafkaProbe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vigil-kafka-probe",
        abstract: "Produce or consume test records, reporting each as a JSON line.",
        subcommands: [Produce.self, Consume.self, Lag.self]
    )
}

struct ClusterOptions: ParsableArguments {
    @Option(help: "Bootstrap servers, host:port[,host:port].")
    var bootstrap: String

    @Option(help: "Kafka topic.")
    var topic: String

    @Option(name: .customLong("property"), help: "Extra librdkafka property NAME=VALUE. Repeatable.")
    var properties: [String] = []

    @Option(help: "Request timeout in seconds (connectivity check, metadata).")
    var requestTimeout = 10

    @Option(help: "Log level for standard error.")
    var logLevel: String = "warning"

    func cluster() throws -> KafkaConfiguration {
        KafkaConfiguration(
            bootstrapServers: bootstrap, clientID: "vigil-kafka-probe", requestTimeout: .seconds(requestTimeout),
            properties: try KafkaConfiguration.properties(fromAssignments: properties)
        )
    }

    func logger() -> Logger {
        let level = Logger.Level(rawValue: logLevel) ?? .warning
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        return Logger(label: "vigil.kafka-probe")
    }
}

/// One JSON object per line on standard output, written unbuffered.
func emit(_ fields: [String: Any]) {
    guard let data = try? JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys]) else { return }
    FileHandle.standardOutput.write(data + Data("\n".utf8))
}

extension KafkaProbe {
    struct Produce: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Produce records seq FIRST..FIRST+COUNT-1 with key key-(seq % KEYS) and a `seq` header."
        )

        @OptionGroup var options: ClusterOptions
        @Option(help: "Number of records.") var count = 1_000
        @Option(help: "First sequence number.") var first = 0
        @Option(help: "Distinct keys.") var keys = 10
        @Option(help: "Value size in bytes: the seq number, a '.', then letters zstd cannot shrink much.") var valueSize = 16
        @Option(help: "Message timeout in seconds (librdkafka retries until then).") var deliveryTimeout = 120
        @Flag(help: "Report every delivery as a `delivered` line.") var reportDeliveries = false
        @Option(help: "Milliseconds between records (0: as fast as the producer takes them).") var paceMs = 0
        @Option(help: "Event time step: with a value above 0, each record carries vigil-event-time-ms = start + seq × step.") var eventTimeStepMs = 0
        @Option(help: "Event time of seq 0, milliseconds since the epoch (with --event-time-step-ms).") var eventTimeStartMs = 1_000_000

        func run() async throws {
            let logger = options.logger()
            let producer = try KafkaProducer(
                configuration: .init(cluster: options.cluster(), deliveryTimeout: .seconds(deliveryTimeout)), logger: logger
            )
            var pending: [(Int, KafkaPendingDelivery)] = []
            var failures = 0
            for seq in first..<(first + count) {
                let padded = Self.value(seq: seq, size: valueSize)
                var headers = [KafkaHeader(key: "seq", value: String(seq))]
                if eventTimeStepMs > 0 {
                    headers.append(KafkaHeader(key: "vigil-event-time-ms", value: String(eventTimeStartMs + seq * eventTimeStepMs)))
                }
                let message = KafkaProducerMessage(topic: options.topic, key: "key-\(seq % keys)", value: padded, headers: headers)
                do {
                    pending.append((seq, try await producer.enqueue(message)))
                } catch {
                    failures += 1
                    emit(["event": "failed", "seq": seq, "error": "\(error)"])
                }
                // Await reports in windows so memory stays bounded for large counts.
                if pending.count >= 1_000 { failures += await drain(&pending) }
                if paceMs > 0 { try await Task.sleep(for: .milliseconds(paceMs)) }
            }
            failures += await drain(&pending)
            await producer.close()
            emit(["event": "produced", "count": count - failures, "failed": failures])
            if failures > 0 { throw ExitCode(1) }
        }

        /// `"<seq>."` followed by pseudo-random letters, so compressed size stays close to `size`
        /// (tests that fill a partition past the broker's retention depend on it).
        static func value(seq: Int, size: Int) -> [UInt8] {
            var bytes = Array("\(seq).".utf8)
            var state = UInt64(seq) &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            while bytes.count < size {
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                bytes.append(UInt8(ascii: "a") + UInt8((state >> 33) % 26))
            }
            return bytes
        }

        private func drain(_ pending: inout [(Int, KafkaPendingDelivery)]) async -> Int {
            var failures = 0
            for (seq, delivery) in pending {
                do {
                    let report = try await delivery.report()
                    if reportDeliveries {
                        emit(["event": "delivered", "seq": seq, "partition": report.partition, "offset": report.offset])
                    }
                } catch {
                    failures += 1
                    emit(["event": "failed", "seq": seq, "error": "\(error)"])
                }
            }
            pending.removeAll(keepingCapacity: true)
            return failures
        }
    }

    struct Consume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Join a consumer group and report every record; runs until SIGTERM/SIGINT or --max."
        )

        @OptionGroup var options: ClusterOptions
        @Option(help: "Consumer group.") var group: String
        @Option(help: "Stop after this many records (0: never).") var max = 0
        @Option(help: "Store offsets of processed records: all, or none (simulates a worker that never finishes).")
        var store: StoreMode = .all
        @Option(help: "Commit interval in milliseconds.") var commitIntervalMs = 500
        @Option(help: "Milliseconds to spend on each record after reporting it (a slow consumer holds fetched records longer).")
        var delayMs = 0
        @Option(help: "Records fetched ahead of processing, at most.") var buffered = 1_000

        enum StoreMode: String, ExpressibleByArgument { case all, none }

        func run() async throws {
            let logger = options.logger()
            let consumer = try KafkaConsumer(
                configuration: .init(
                    cluster: options.cluster(), groupID: group, topics: [options.topic],
                    commitInterval: .milliseconds(commitIntervalMs), sessionTimeout: .seconds(6), bufferedMessages: buffered
                ),
                logger: logger
            ) { event in
                switch event {
                case .assigned(let partitions):
                    emit(["event": "assigned", "partitions": partitions.map { Int($0.partition) }])
                case .revoked(let partitions, let commitError):
                    emit(["event": "revoked", "partitions": partitions.map { Int($0.partition) }, "commitError": commitError ?? ""])
                case .recordsLost(let loss):
                    emit([
                        "event": "lost", "partition": Int(loss.topicPartition.partition),
                        "firstMissingOffset": loss.firstMissingOffset, "resumedAtOffset": loss.resumedAtOffset, "count": loss.count,
                    ])
                }
            }
            let reader = RecordReader(consumer: consumer, max: max, store: store == .all, delay: .milliseconds(delayMs))
            let group = ServiceGroup(
                configuration: .init(
                    services: [
                        .init(service: consumer),
                        .init(service: reader, successTerminationBehavior: .gracefullyShutdownGroup),
                    ],
                    gracefulShutdownSignals: [.sigterm, .sigint],
                    logger: logger
                )
            )
            try await group.run()
            emit(["event": "stopped", "count": reader.count])
        }
    }
}

extension KafkaProbe {
    struct Lag: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Report a group's committed offset, high watermark and lag for every partition of the topic."
        )

        @OptionGroup var options: ClusterOptions
        @Option(help: "Consumer group.") var group: String

        func run() async throws {
            let admin = try KafkaAdmin(configuration: options.cluster(), logger: options.logger())
            for partition in try await admin.lag(group: group, topics: [options.topic]) {
                emit([
                    "event": "lag", "partition": Int(partition.topicPartition.partition),
                    "committed": partition.committedOffset ?? -1, "high": partition.highWatermark, "lag": partition.lag,
                ])
            }
        }
    }
}

/// Reads records, reports each, then stores its offset: "processing" is reporting it.
final class RecordReader: Service, @unchecked Sendable {
    private let consumer: KafkaConsumer
    private let max: Int
    private let store: Bool
    private let delay: Duration
    private let lock = NSLock()
    private var processed = 0

    init(consumer: KafkaConsumer, max: Int, store: Bool, delay: Duration) {
        self.consumer = consumer
        self.max = max
        self.store = store
        self.delay = delay
    }

    var count: Int { lock.withLock { processed } }

    func run() async throws {
        try await cancelWhenGracefulShutdown {
            for try await message in self.consumer.messages {
                let seq = message.header("seq").map { String(decoding: $0, as: UTF8.self) } ?? ""
                emit([
                    "event": "message", "partition": Int(message.partition), "offset": message.offset,
                    "key": String(decoding: message.key ?? [], as: UTF8.self), "seq": seq,
                    "value": String(decoding: message.value.prefix(64), as: UTF8.self),
                    "headers": Dictionary(message.headers.map { ($0.key, String(decoding: $0.value ?? [], as: UTF8.self)) }) { first, _ in first },
                ])
                if self.delay > .zero { try await Task.sleep(for: self.delay) }
                if self.store {
                    do {
                        try self.consumer.storeOffset(message)
                    } catch let error as KafkaError where error.kind == .partitionNotAssigned {
                        // Revoked while this record was processed: its new owner reads it again.
                    }
                }
                let total = self.lock.withLock {
                    self.processed += 1
                    return self.processed
                }
                if self.max > 0 && total >= self.max { return }
            }
        }
    }
}
