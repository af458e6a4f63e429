import CRdKafka
import Foundation
import Logging
import Metrics

/// How a `KafkaTableReader` reads.
public struct KafkaTableReaderConfiguration: Sendable {
    public var cluster: KafkaConfiguration
    /// The table topics, read whole: every partition, from the oldest retained record.
    public var topics: [String]
    /// Only these partitions of the topics, when given (a state changelog's partition for a restore).
    public var partitions: Set<Int32>?
    /// Bytes librdkafka may prefetch. Tables are small; this bounds a large one while it loads.
    public var prefetchBytes: Int
    /// Only the newest this many records of each partition (a chain's tail); nil: all.
    public var newest: Int64?

    public init(cluster: KafkaConfiguration, topics: [String], partitions: Set<Int32>? = nil, prefetchBytes: Int = 4 << 20, newest: Int64? = nil) {
        self.cluster = cluster
        self.topics = topics
        self.partitions = partitions
        self.prefetchBytes = prefetchBytes
        self.newest = newest
    }

    var librdkafkaProperties: [(String, String)] {
        cluster.commonProperties + [
            // librdkafka wants a group id before it assigns partitions; this reader never joins
            // the group and never commits, so every replica reads every partition whole.
            ("group.id", cluster.clientID + ".tables"),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("auto.offset.reset", "earliest"),
            ("enable.partition.eof", "false"),
            // A table change should reach every replica within a second: do not let a broker
            // hold an empty fetch for librdkafka's default 500 ms.
            ("fetch.wait.max.ms", "100"),
            ("queued.max.messages.kbytes", String(max(1, min(2_097_151, prefetchBytes / 1_024)))),
        ] + cluster.properties.sorted { $0.key < $1.key }
    }
}

/// Reads table topics (`rules.v1`, `cameras.v1`): every partition from the beginning, outside
/// any consumer group, and keeps reading as long as it runs. Each record goes to `apply`, on
/// the reader's own thread, in offset order per partition.
///
/// `start()` notes each partition's high watermark at that moment; the reader is caught up
/// once it has read to all of them, so a worker can stay unready until its tables hold at
/// least what was written before it started.
public final class KafkaTableReader: @unchecked Sendable {
    private let client: RDKafkaClient
    private let configuration: KafkaTableReaderConfiguration
    private let logger: Logger
    private let apply: @Sendable (KafkaConsumerMessage) -> Void
    private let catchUp = TableCatchUp()
    private let lifecycle = NSLock()
    private var pollThread: PollingThread?  // guarded by `lifecycle`
    private var isClosed = false  // guarded by `lifecycle`
    private static let maxBatch = 256

    public init(
        configuration: KafkaTableReaderConfiguration, logger: Logger, apply: @escaping @Sendable (KafkaConsumerMessage) -> Void
    ) throws(KafkaError) {
        try KafkaConfiguration.checkPassThrough(configuration.cluster.properties)
        self.configuration = configuration
        self.logger = logger
        self.apply = apply
        client = try RDKafkaClient(role: .consumer, properties: configuration.librdkafkaProperties, callbacks: RDKafkaCallbacks(logger: logger))
    }

    /// Finds the tables' partitions and their high watermarks, then starts reading. Throws when
    /// a table topic does not exist or no broker answers within the request timeout.
    public func start() async throws {
        let client = client
        let configuration = configuration
        let targets = try await onBlockingThread { () throws(KafkaError) -> [KafkaTopicPartition: Int64] in
            try Self.highWatermarks(client, configuration)
        }
        catchUp.begin(targets: targets)
        logger.info("reading tables", metadata: [
            "topics": "\(configuration.topics)", "records_before_start": "\(targets.values.reduce(0, +))",
        ])
        let start = configuration.newest.map { Int64(RD_KAFKA_OFFSET_TAIL_BASE) - $0 } ?? Int64(RD_KAFKA_OFFSET_BEGINNING)
        let code = try client.withHandle("assign table partitions") { handle in
            RDKafkaTopicPartitionList.withList(targets.keys.sorted().map { ($0, start) }) { rd_kafka_assign(handle, $0) }
        }
        guard code == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw KafkaError.rdKafka(code, kind: .consumerFailed, context: "cannot assign the partitions of \(configuration.topics)")
        }
        let thread = PollingThread(name: "vigil.kafka.tables.poll") { [self] in pollOnce() }
        let closedMeanwhile = lifecycle.withLock {
            if !isClosed { pollThread = thread }
            return isClosed
        }
        if closedMeanwhile { thread.stop() }
    }

    /// Whether every partition was read up to its high watermark at `start()`.
    public var isCaughtUp: Bool { catchUp.isComplete }

    /// Why the reader is not caught up yet (records left per table), or nil when it is.
    public var catchUpProblem: String? { catchUp.problem }

    /// Waits until the reader is caught up: true then (at once if it already is), false if the
    /// waiting task was cancelled first.
    public func waitUntilCaughtUp() async -> Bool {
        await catchUp.wait()
    }

    /// Reads `partitions` of `topic` (nil: all) from their oldest retained record to their end
    /// as of now, and returns their records, in offset order per partition: a tool's look at a
    /// table. Holds every record: for a topic of any size, stream it with `forEachRecord`.
    public static func readPartitions(
        cluster: KafkaConfiguration, topic: String, partitions: Set<Int32>?, newest: Int64? = nil, within deadline: Duration = defaultDeadline,
        logger: Logger
    ) async throws -> [KafkaConsumerMessage] {
        let collected = LockedRecords()
        try await forEachRecord(cluster: cluster, topic: topic, partitions: partitions, newest: newest, within: deadline, logger: logger) {
            collected.append($0)
        }
        return collected.records
    }

    /// How long a read to the end may take by default: minutes of records at a broker's pace,
    /// short enough that a reader stuck on an unreachable cluster says so.
    public static let defaultDeadline: Duration = .seconds(300)

    /// Reads `partitions` of `topic` (nil: all) from their oldest retained record to their end
    /// as of now, handing each record to `body` on the reader's thread, in offset order per
    /// partition, and keeping none: a state changelog's restore keeps only each key's newest.
    /// Throws `KafkaError` (`.timedOut`) when the end is not reached within `deadline`.
    public static func forEachRecord(
        cluster: KafkaConfiguration, topic: String, partitions: Set<Int32>?, newest: Int64? = nil, within deadline: Duration = defaultDeadline,
        logger: Logger, _ body: @escaping @Sendable (KafkaConsumerMessage) -> Void
    ) async throws {
        let reader = try KafkaTableReader(
            configuration: KafkaTableReaderConfiguration(cluster: cluster, topics: [topic], partitions: partitions, newest: newest), logger: logger,
            apply: body
        )
        do {
            try await reader.start()
        } catch {
            await reader.close()
            throw error
        }
        let outcome = await reader.waitUntilCaughtUp(within: deadline)
        let left = reader.catchUpProblem
        await reader.close()
        switch outcome {
        case .caughtUp: return
        case .cancelled: throw CancellationError()
        case .timedOut:
            throw KafkaError(kind: .timedOut, isRetriable: true, detail: "\(topic) was not read to its end within \(deadline) from \(cluster.bootstrapServers): \(left ?? "records left")")
        }
    }

    /// How a bounded wait for the end ended.
    public enum CatchUpOutcome: Sendable {
        case caughtUp, timedOut, cancelled
    }

    /// Waits until the reader is caught up, for at most `deadline`.
    public func waitUntilCaughtUp(within deadline: Duration) async -> CatchUpOutcome {
        await withTaskGroup(of: CatchUpOutcome.self) { group in
            group.addTask { await self.waitUntilCaughtUp() ? .caughtUp : .cancelled }
            group.addTask {
                do {
                    try await Task.sleep(for: deadline)
                    return .timedOut
                } catch {
                    return .cancelled
                }
            }
            let first = await group.next() ?? .cancelled
            group.cancelAll()
            return first
        }
    }

    /// Stops reading. Lookups of what was read stay valid.
    public func close() async {
        let thread: PollingThread? = lifecycle.withLock {
            defer { isClosed = true; pollThread = nil }
            return isClosed ? nil : pollThread
        }
        let client = client
        await onBlockingThread {
            thread?.stop()
            client.destroy(skipConsumerClose: true)
        }
    }

    private func pollOnce() {
        _ = try? client.withHandle("poll tables") { handle in
            var timeout: Int32 = 100
            var count = 0
            while count < Self.maxBatch, let message = rd_kafka_consumer_poll(handle, timeout) {
                defer { rd_kafka_message_destroy(message) }
                count += 1
                timeout = 0
                guard message.pointee.err == RD_KAFKA_RESP_ERR_NO_ERROR else {
                    let error = KafkaError.rdKafka(message.pointee.err, kind: .consumerFailed, context: "reading a table")
                    logger.warning("table read error; librdkafka keeps retrying", metadata: ["error": "\(error)"])
                    Counter(label: "vigil_kafka_consumer_errors_total", dimensions: [("topic", "tables")]).increment()
                    continue
                }
                apply(KafkaConsumerMessage(polled: message))
            }
            // Positions, not record offsets, decide: they also move past offsets that hold no
            // record (compacted away, transaction markers).
            catchUp.update { partitions in RDKafkaOffsets.positions(handle, partitions) ?? [:] }
        }
    }

    private static func highWatermarks(_ client: RDKafkaClient, _ configuration: KafkaTableReaderConfiguration) throws(KafkaError) -> [KafkaTopicPartition: Int64] {
        let timeout = configuration.cluster.requestTimeout
        let metadata = try client.metadata(timeout: timeout, only: Set(configuration.topics), context: "table metadata")
        var targets: [KafkaTopicPartition: Int64] = [:]
        for name in configuration.topics {
            guard let topic = metadata.topic(name), topic.error == nil, !topic.partitions.isEmpty else {
                throw KafkaError(
                    kind: .consumerFailed,
                    detail: "table topic \(name) does not exist on \(configuration.cluster.bootstrapServers); create it with `vigil topics apply`"
                )
            }
            for partition in topic.partitions where configuration.partitions?.contains(partition.id) ?? true {
                let topicPartition = KafkaTopicPartition(topic: name, partition: partition.id)
                var low: Int64 = 0
                var high: Int64 = 0
                let code = try client.withHandle("table watermarks") { handle in
                    rd_kafka_query_watermark_offsets(handle, name, partition.id, &low, &high, Int32(timeout.milliseconds))
                }
                guard code == RD_KAFKA_RESP_ERR_NO_ERROR else {
                    throw KafkaError.rdKafka(code, kind: .consumerFailed, context: "watermarks of \(topicPartition)")
                }
                // Nothing retained (low == high): nothing to wait for.
                targets[topicPartition] = high > low ? high : 0
            }
        }
        return targets
    }
}

/// Records collected by a reader's thread.
final class LockedRecords: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [KafkaConsumerMessage] = []

    func append(_ record: KafkaConsumerMessage) { lock.withLock { stored.append(record) } }
    var records: [KafkaConsumerMessage] { lock.withLock { stored } }
}

/// The partitions a table reader still has to read up to their start-time high watermark.
final class TableCatchUp: @unchecked Sendable {
    private let lock = NSLock()
    private var remaining: [KafkaTopicPartition: Int64]?  // nil until `begin`
    private var latest: [KafkaTopicPartition: Int64] = [:]
    private var waiters: [UUID: CheckedContinuation<Bool, Never>] = [:]

    func begin(targets: [KafkaTopicPartition: Int64]) {
        let ready = lock.withLock {
            remaining = targets.filter { $0.value > 0 }
            return takeWaitersIfComplete()
        }
        ready.forEach { $0.resume(returning: true) }
    }

    var isComplete: Bool { lock.withLock { remaining?.isEmpty ?? false } }

    var problem: String? {
        lock.withLock {
            guard let remaining else { return "tables not opened yet" }
            guard !remaining.isEmpty else { return nil }
            let left = remaining.sorted { $0.key < $1.key }.map { partition, target in
                "\(partition): \(target - (latest[partition] ?? 0)) records"
            }
            return "tables still loading (\(left.joined(separator: ", ")) to read)"
        }
    }

    /// Marks partitions whose position reached their target; `positions` is asked only for
    /// the partitions still loading, so a caught-up reader does no work here.
    func update(_ positions: ([KafkaTopicPartition]) -> [KafkaTopicPartition: Int64]) {
        guard let pending = lock.withLock({ remaining.map { Array($0.keys) } }), !pending.isEmpty else { return }
        let now = positions(pending)
        let ready = lock.withLock {
            for (partition, position) in now {
                latest[partition] = position
                if let target = remaining?[partition], position >= target { remaining?[partition] = nil }
            }
            return takeWaitersIfComplete()
        }
        ready.forEach { $0.resume(returning: true) }
    }

    func wait() async -> Bool {
        let id = UUID()
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let answer: Bool? = lock.withLock {
                    if remaining?.isEmpty == true { return true }
                    if Task.isCancelled { return false }
                    waiters[id] = continuation
                    return nil
                }
                if let answer { continuation.resume(returning: answer) }
            }
        } onCancel: {
            lock.withLock { waiters.removeValue(forKey: id) }?.resume(returning: false)
        }
    }

    /// Call with `lock` held.
    private func takeWaitersIfComplete() -> [CheckedContinuation<Bool, Never>] {
        guard remaining?.isEmpty == true else { return [] }
        defer { waiters = [:] }
        return Array(waiters.values)
    }
}
