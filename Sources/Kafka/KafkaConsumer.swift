import CRdKafka
import Foundation
import Logging
import Metrics
import ServiceLifecycle

/// Something that happened to a consumer's membership or data, for logs, metrics and tests.
public enum KafkaConsumerEvent: Sendable, Hashable {
    /// The group gave this member these partitions.
    case assigned([KafkaTopicPartition])
    /// The group took these partitions away; stored offsets were committed first
    /// (`commitError` says why not, when that failed).
    case revoked([KafkaTopicPartition], commitError: String?)
    /// The broker no longer had records this consumer expected.
    case recordsLost(KafkaRecordLoss)
}

/// A consumer-group member: reads its partitions' records in order, and commits only the
/// offsets the application stored after processing them (at-least-once).
///
/// Iterate `messages`, call `storeOffset(_:)` once a record is fully processed (for a
/// worker: after every output was acknowledged), and stored offsets are committed every
/// `commitInterval`, before partitions are revoked, and on close. Run it as a `Service`
/// (graceful shutdown closes it) or call `close()`. Only one task may iterate at a time.
public final class KafkaConsumer: Service, @unchecked Sendable {
    private let client: RDKafkaClient
    private let configuration: KafkaConsumerConfiguration
    private let logger: Logger
    private let buffer: ConsumerBuffer
    private let pollThread: PollingThread
    private let membership: ConsumerMembership
    private static let maxBatch = 256
    private let closeState = NSLock()
    private var isClosed = false  // guarded by `closeState`

    public init(
        configuration: KafkaConsumerConfiguration,
        logger: Logger,
        eventHandler: @escaping @Sendable (KafkaConsumerEvent) -> Void = { _ in }
    ) throws(KafkaError) {
        try KafkaConfiguration.checkPassThrough(configuration.cluster.properties)
        self.configuration = configuration
        self.logger = logger
        let buffer = ConsumerBuffer(capacity: configuration.bufferedMessages, byteCapacity: configuration.bufferedBytes)
        let membership = ConsumerMembership(
            logger: logger, gapsAreLoss: configuration.offsetGapsAreLoss, requestTimeout: configuration.cluster.requestTimeout,
            worker: configuration.cluster.clientID, buffer: buffer, eventHandler: eventHandler
        )
        let client = try RDKafkaClient(
            role: .consumer,
            properties: configuration.librdkafkaProperties,
            callbacks: RDKafkaCallbacks(logger: logger) { handle, code, partitions in
                membership.rebalance(handle: handle, code: code, partitions: partitions)
            }
        ) { configuration in
            // The periodic commits are asynchronous: their outcome arrives here, on the poll thread.
            rd_kafka_conf_set_offset_commit_cb(configuration) { handle, code, _, _ in
                guard code != RD_KAFKA_RESP_ERR_NO_ERROR, code != RD_KAFKA_RESP_ERR__NO_OFFSET else { return }
                RDKafkaCallbacks.from(handle)?.logger.warning(
                    "offset commit failed; it is retried at the next interval, and uncommitted records would be redelivered",
                    metadata: ["error": "\(String(cString: rd_kafka_err2str(code)))"]
                )
            }
        }
        // Serve the group's events (rebalances) from the same queue as the records.
        rd_kafka_poll_set_consumer(client.handle)
        let subscribeCode = RDKafkaTopicPartitionList.withList(configuration.topics.map {
            (KafkaTopicPartition(topic: $0, partition: RD_KAFKA_PARTITION_UA), nil)
        }) { rd_kafka_subscribe(client.handle, $0) }
        guard subscribeCode == RD_KAFKA_RESP_ERR_NO_ERROR else {
            client.destroy(skipConsumerClose: true)
            throw KafkaError.rdKafka(subscribeCode, kind: .consumerFailed, context: "cannot subscribe to \(configuration.topics)")
        }
        self.client = client
        self.buffer = buffer
        self.membership = membership
        let commitInterval = configuration.commitInterval
        let loop = PollLoopState(nextCommit: ContinuousClock.now + commitInterval)
        self.pollThread = PollingThread(name: "vigil.kafka.consumer.poll") {
            // Through `withHandle` like every call: close() stops this thread before it destroys
            // the handle, and a round that finds it gone anyway waits instead of using freed memory.
            do {
                try client.withHandle("poll") { handle in
                    Self.pollRound(handle: handle, loop: loop, commitInterval: commitInterval, buffer: buffer, membership: membership)
                }
            } catch {
                Thread.sleep(forTimeInterval: 0.1)
            }
        }
    }

    /// One round of the poll thread: commit what was stored when due, then fetch a batch into
    /// the buffer (or, draining for shutdown, only serve the group).
    private static func pollRound(
        handle: OpaquePointer, loop: PollLoopState, commitInterval: Duration, buffer: ConsumerBuffer, membership: ConsumerMembership
    ) {
        if ContinuousClock.now >= loop.nextCommit {
            // Asynchronous: the stored offsets go to the coordinator without blocking the fetch.
            _ = rd_kafka_commit(handle, nil, 1)
            loop.nextCommit = ContinuousClock.now + commitInterval
        }
        if buffer.isFinished {
            // Draining for shutdown: fetch nothing more, but keep serving the group (rebalance
            // callbacks) without spinning. Records still polled were never handed out, so
            // their offsets are never stored and their next owner reads them again.
            if !loop.drainStarted {
                loop.drainStarted = true
                membership.pauseAll(handle: handle)
            }
            if let message = rd_kafka_consumer_poll(handle, 100) { rd_kafka_message_destroy(message) }
            return
        }
        guard let room = buffer.waitForSpace() else { return }
        // Take what one fetch brought in a single hand-over: waking the reading task once
        // per batch, not once per record, is most of the consumer's throughput. The batch
        // stops at the buffer's free bytes, so large records cannot overshoot the budget.
        var batch: [KafkaConsumerMessage] = []
        var batchBytes = 0
        var timeout: Int32 = 100
        while batch.count < maxBatch, batchBytes < room, let message = rd_kafka_consumer_poll(handle, timeout) {
            if let record = membership.received(message, handle: handle) {
                batch.append(record)
                batchBytes += record.byteCount
            }
            rd_kafka_message_destroy(message)
            timeout = 0
        }
        // A rebalance during the polls above may have revoked some of these partitions.
        buffer.append(contentsOf: membership.keepingAssigned(batch))
    }

    /// Waits until a broker answers, or throws `.brokersUnreachable` after the request timeout.
    public func checkConnectivity() async throws {
        try await client.checkConnectivity(configuration.cluster)
    }

    /// The records of the assigned partitions, in offset order per partition. Ends when the
    /// consumer is closed or the iterating task is cancelled; throws on a fatal consumer error.
    public var messages: KafkaConsumerMessages { KafkaConsumerMessages(buffer: buffer) }

    /// The partitions this member owns right now.
    public var assignment: [KafkaTopicPartition] { membership.assignment }

    /// Whether the partition that delivered `message` is still assigned under the same
    /// assignment: false once it was revoked, even if assigned back since.
    public func isCurrent(_ message: KafkaConsumerMessage) -> Bool {
        membership.generation(of: message.topicPartition) == message.assignmentGeneration
    }

    /// Runs `prepare` on the poll thread when the group takes partitions away, before the
    /// offsets stored so far are committed. It blocks the rebalance: keep it bounded (the group
    /// waits for this member up to its rebalance timeout).
    public func onRevoke(_ prepare: @escaping @Sendable ([KafkaTopicPartition]) -> Void) {
        membership.setBeforeRevoke(prepare)
    }

    /// The partitions this member owns right now, each with the generation of its assignment
    /// (the one its records carry in `assignmentGeneration`).
    public var assignmentGenerations: [KafkaTopicPartition: UInt64] { membership.assignmentGenerations }

    /// Marks `message` as processed: its offset + 1 will be committed. Throws
    /// `.partitionNotAssigned` when the partition was revoked since the record was read (its
    /// new owner processes it again); any other error means offsets cannot be stored at all.
    public func storeOffset(_ message: KafkaConsumerMessage) throws(KafkaError) {
        try storeOffset(of: message.topicPartition, processedOffset: message.offset, generation: message.assignmentGeneration)
    }

    /// Marks the record at `processedOffset` of `partition` (and all before it) as processed,
    /// if `generation` is still the partition's current assignment.
    public func storeOffset(of partition: KafkaTopicPartition, processedOffset: Int64, generation: UInt64) throws(KafkaError) {
        try client.withHandle("store an offset") { handle throws(KafkaError) in
            try membership.store(handle: handle, partition: partition, processedOffset: processedOffset, generation: generation)
        }
    }

    /// Commits every stored offset now and waits for the coordinator's answer.
    public func commit() async throws {
        let client = client
        let code = try await onBlockingThread { () throws(KafkaError) in try client.withHandle("commit") { rd_kafka_commit($0, nil, 0) } }
        guard code == RD_KAFKA_RESP_ERR_NO_ERROR || code == RD_KAFKA_RESP_ERR__NO_OFFSET else {
            throw KafkaError.rdKafka(code, kind: .offsetCommitFailed, context: "commit failed")
        }
    }

    /// Records fetched and waiting for the application (for liveness: is there input the loop is not taking?).
    public var bufferedRecords: Int { buffer.bufferedCount }

    /// Ends `messages` without leaving the group: the first step of a graceful shutdown, so
    /// the application can finish what it holds and store its offsets before `close` commits.
    public func endMessages() {
        buffer.finish()
    }

    /// Per assigned partition, how far behind the high watermark of the last fetch this member
    /// is, read and processed. Needs no broker request.
    public func lag() -> [KafkaTopicPartition: ConsumerLag] {
        let partitions = assignment
        guard !partitions.isEmpty else { return [:] }
        return (try? client.withHandle("read lag") { handle in lag(handle, partitions) }) ?? [:]
    }

    private func lag(_ handle: OpaquePointer, _ partitions: [KafkaTopicPartition]) -> [KafkaTopicPartition: ConsumerLag] {
        guard let positions = RDKafkaOffsets.positions(handle, partitions) else { return [:] }
        var lag: [KafkaTopicPartition: ConsumerLag] = [:]
        for partition in partitions {
            guard let (low, high) = RDKafkaOffsets.cachedWatermarks(handle, partition) else { continue }
            // Nothing read or stored yet in this assignment: reading starts at the committed
            // offset, else at the oldest retained record.
            let start = membership.startOffset(of: partition) ?? low
            let position = positions[partition] ?? start
            let processed = membership.storedOffset(of: partition) ?? start
            lag[partition] = ConsumerLag(unread: max(0, high - position), unprocessed: max(0, high - processed))
        }
        return lag
    }

    /// The oldest and next offset of each assigned partition as of its last fetch (no broker
    /// request); partitions not fetched yet are missing.
    public func cachedWatermarks() -> [KafkaTopicPartition: (low: Int64, high: Int64)] {
        let partitions = assignment
        return (try? client.withHandle("read watermarks") { handle in
            var watermarks: [KafkaTopicPartition: (low: Int64, high: Int64)] = [:]
            for partition in partitions {
                if let (low, high) = RDKafkaOffsets.cachedWatermarks(handle, partition), low >= 0 { watermarks[partition] = (low, high) }
            }
            return watermarks
        }) ?? [:]
    }

    /// Whether every record of `partition` that the broker has now was handed out: nothing
    /// waits in the buffer and the position reached the high watermark of the last fetch. True
    /// for a partition this member does not own (nothing of it will come here).
    public func isReadToEnd(_ partition: KafkaTopicPartition) -> Bool {
        guard membership.generation(of: partition) != nil else { return true }
        guard buffer.buffered(partition) == 0 else { return false }
        return (try? client.withHandle("read a position") { handle in
            guard let positions = RDKafkaOffsets.positions(handle, [partition]),
                  let (low, high) = RDKafkaOffsets.cachedWatermarks(handle, partition) else { return false }
            // No position yet: read to the end if reading starts at the end (the committed
            // offset, else the oldest retained record).
            return (positions[partition] ?? membership.startOffset(of: partition) ?? low) >= high
        }) ?? false
    }

    /// Stops fetching from these partitions until `resume`; records already buffered are still delivered.
    public func pause(_ partitions: [KafkaTopicPartition]) throws(KafkaError) {
        try changeFetching(partitions, pause: true)
    }

    public func resume(_ partitions: [KafkaTopicPartition]) throws(KafkaError) {
        try changeFetching(partitions, pause: false)
    }

    private func changeFetching(_ partitions: [KafkaTopicPartition], pause: Bool) throws(KafkaError) {
        let code = try client.withHandle(pause ? "pause" : "resume") { handle in
            RDKafkaTopicPartitionList.withList(partitions.map { ($0, nil) }) { list in
                pause ? rd_kafka_pause_partitions(handle, list) : rd_kafka_resume_partitions(handle, list)
            }
        }
        guard code == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw KafkaError.rdKafka(code, kind: .consumerFailed, context: pause ? "pause failed" : "resume failed")
        }
    }

    /// A consumer dropped without `close()` (a bug in its owner) must not stay a group member
    /// that holds its partitions for ever: its poll thread stops and the client leaves the
    /// group, committing what was stored, on a thread of its own (a deinit cannot wait).
    deinit {
        let dropped = closeState.withLock { !isClosed }
        guard dropped else { return }
        logger.warning("a Kafka consumer was dropped without close(); stopping it and leaving the group", metadata: [
            "topics": "\(configuration.topics)",
        ])
        buffer.finish()
        let (client, pollThread, membership, logger) = (client, pollThread, membership, logger)
        Thread.detachNewThread {
            pollThread.stop()
            Self.closeGroupMembership(client, membership: membership, timeout: .seconds(30), logger: logger)
            client.destroy(skipConsumerClose: true)
        }
    }

    /// Leaves the group cleanly: ends `messages`, commits stored offsets, revokes and leaves,
    /// waiting at most `timeout` for the group coordinator (librdkafka 2.0.2's close can hang
    /// when its queue is not served; this one serves it and gives up at the deadline).
    public func close(timeout: Duration = .seconds(30)) async {
        let firstClose = closeState.withLock {
            defer { isClosed = true }
            return !isClosed
        }
        guard firstClose else { return }
        buffer.finish()
        let client = client
        let pollThread = pollThread
        let logger = logger
        let membership = membership
        await onBlockingThread {
            pollThread.stop()
            Self.closeGroupMembership(client, membership: membership, timeout: timeout, logger: logger)
            client.destroy(skipConsumerClose: true)
        }
    }

    private static func closeGroupMembership(_ client: RDKafkaClient, membership: ConsumerMembership, timeout: Duration, logger: Logger) {
        do {
            try client.withHandle("leave the group") { handle in leaveGroup(handle, membership: membership, timeout: timeout, logger: logger) }
        } catch {
            logger.error("consumer close: the Kafka client was already destroyed; uncommitted records will be redelivered")
        }
    }

    private static func leaveGroup(_ handle: OpaquePointer, membership: ConsumerMembership, timeout: Duration, logger: Logger) {
        let queue = rd_kafka_queue_new(handle)!
        defer { rd_kafka_queue_destroy(queue) }
        if let error = rd_kafka_consumer_close_queue(handle, queue) {
            logger.error("consumer close failed", metadata: ["error": "\(KafkaError.consuming(error, kind: .consumerFailed, context: "close"))"])
            return
        }
        let deadline = ContinuousClock.now + timeout
        while rd_kafka_consumer_closed(handle) == 0 {
            guard ContinuousClock.now < deadline else {
                logger.error("consumer did not leave its group within \(timeout); uncommitted records will be redelivered")
                return
            }
            // Serving the queue runs the rebalance callback, which commits before revoking.
            guard let event = rd_kafka_queue_poll(queue, 100) else { continue }
            defer { rd_kafka_event_destroy(event) }
            // The final revoke arrives here as an event, not through the rebalance callback:
            // handle it the same way (commit, then unassign), or the close never completes.
            if rd_kafka_event_type(event) == RD_KAFKA_EVENT_REBALANCE, let partitions = rd_kafka_event_topic_partition_list(event) {
                membership.rebalance(handle: handle, code: rd_kafka_event_error(event), partitions: partitions)
            }
        }
    }

    /// Service entry point: runs until graceful shutdown, then closes.
    public func run() async throws {
        try? await gracefulShutdown()
        await close()
    }
}

/// The records of a consumer's partitions.
/// How far one partition's consumer is behind the partition's high watermark.
public struct ConsumerLag: Sendable, Equatable {
    /// Records not yet fetched: the high watermark minus the consumer's position.
    public var unread: Int64
    /// Records not yet processed: the high watermark minus the next offset the application has
    /// not stored as processed. Includes what was fetched and waits in buffers, is in the
    /// stage, or awaits its outputs' acknowledgement: the backlog.
    public var unprocessed: Int64

    public init(unread: Int64, unprocessed: Int64) {
        self.unread = unread
        self.unprocessed = unprocessed
    }

    /// Fetched into this process but not processed yet.
    public var fetchedUnprocessed: Int64 { max(0, unprocessed - unread) }
}

public struct KafkaConsumerMessages: AsyncSequence, Sendable {
    public typealias Element = KafkaConsumerMessage
    fileprivate let buffer: ConsumerBuffer

    public struct AsyncIterator: AsyncIteratorProtocol {
        fileprivate let buffer: ConsumerBuffer

        public mutating func next() async throws -> KafkaConsumerMessage? {
            try await buffer.next()
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(buffer: buffer) }
}

/// What the consumer's poll thread remembers between rounds; touched only by that thread.
private final class PollLoopState: @unchecked Sendable {
    var nextCommit: ContinuousClock.Instant
    var drainStarted = false

    init(nextCommit: ContinuousClock.Instant) {
        self.nextCommit = nextCommit
    }
}

/// Group membership and per-partition bookkeeping, driven from the poll thread:
/// rebalances (commit on revoke), received records (loss detection), assignment.
private final class ConsumerMembership: @unchecked Sendable {
    private let logger: Logger
    private let gapsAreLoss: Bool
    private let requestTimeout: Duration
    private let worker: String
    private let buffer: ConsumerBuffer
    private let eventHandler: @Sendable (KafkaConsumerEvent) -> Void
    /// Called on the poll thread before a revoke commits; guarded by `lock`.
    private var beforeRevoke: (@Sendable ([KafkaTopicPartition]) -> Void)?
    /// Guards the assignment, and is held while librdkafka's assignment changes and while an
    /// offset is stored, so a store never lands in a partition's next assignment.
    private let lock = NSLock()
    /// The assignment generation each owned partition was given.
    private var assigned: [KafkaTopicPartition: UInt64] = [:]
    /// Where each owned partition's reading started: its committed offset at assignment.
    private var startOffsets: [KafkaTopicPartition: Int64] = [:]
    /// The next offset to process of each owned partition, as last stored in this assignment.
    private var storedOffsets: [KafkaTopicPartition: Int64] = [:]
    private var lastGeneration: UInt64 = 0
    private var gaps = OffsetGapDetector()  // touched only on the poll thread

    init(
        logger: Logger, gapsAreLoss: Bool, requestTimeout: Duration, worker: String, buffer: ConsumerBuffer,
        eventHandler: @escaping @Sendable (KafkaConsumerEvent) -> Void
    ) {
        self.logger = logger
        self.gapsAreLoss = gapsAreLoss
        self.requestTimeout = requestTimeout
        self.worker = worker
        self.buffer = buffer
        self.eventHandler = eventHandler
    }

    var assignment: [KafkaTopicPartition] { lock.withLock { assigned.keys.sorted() } }

    var assignmentGenerations: [KafkaTopicPartition: UInt64] { lock.withLock { assigned } }

    func generation(of partition: KafkaTopicPartition) -> UInt64? { lock.withLock { assigned[partition] } }

    /// The committed offset the partition's assignment started from; nil when the group had
    /// none (reading starts where `auto.offset.reset` says).
    func startOffset(of partition: KafkaTopicPartition) -> Int64? { lock.withLock { startOffsets[partition] } }

    /// The offset after the last one stored as processed in this assignment; nil before the first.
    func storedOffset(of partition: KafkaTopicPartition) -> Int64? { lock.withLock { storedOffsets[partition] } }

    func setBeforeRevoke(_ prepare: @escaping @Sendable ([KafkaTopicPartition]) -> Void) {
        lock.withLock { beforeRevoke = prepare }
    }

    func rebalance(handle: OpaquePointer, code: rd_kafka_resp_err_t, partitions: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) {
        let topicPartitions = RDKafkaTopicPartitionList.entries(partitions).map(\.0)
        if String(cString: rd_kafka_rebalance_protocol(handle)) == "COOPERATIVE" {
            // Refused in the configuration; should a broker-side setting bring it anyway, stop
            // loudly instead of consuming nothing while looking healthy.
            failAssignment(KafkaError(kind: .consumerFailed, detail: "the group uses the cooperative rebalance protocol, which this consumer does not support"))
            return
        }
        switch code {
        case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
            let committed = committedOffsets(handle: handle, partitions: partitions)
            for partition in topicPartitions {
                gaps.assigned(partition, committedOffset: committed[partition])
            }
            let assignCode = lock.withLock { () -> rd_kafka_resp_err_t in
                let assignCode = rd_kafka_assign(handle, partitions)
                if assignCode == RD_KAFKA_RESP_ERR_NO_ERROR {
                    for partition in topicPartitions {
                        lastGeneration += 1
                        assigned[partition] = lastGeneration
                        startOffsets[partition] = committed[partition]
                        storedOffsets[partition] = nil
                    }
                }
                return assignCode
            }
            guard assignCode == RD_KAFKA_RESP_ERR_NO_ERROR else {
                failAssignment(KafkaError.rdKafka(assignCode, kind: .consumerFailed, context: "cannot take the assigned partitions \(topicPartitions.sorted())"))
                return
            }
            logger.info("partitions assigned", metadata: ["partitions": "\(topicPartitions.sorted())"])
            eventHandler(.assigned(topicPartitions.sorted()))
        case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
            // Let the application finish what it can (a stateful worker writes its state and
            // stores the offsets it reflects), then commit before the partitions move on.
            lock.withLock { beforeRevoke }?(topicPartitions.sorted())
            let commitCode = rd_kafka_commit(handle, nil, 0)
            let commitError = commitCode == RD_KAFKA_RESP_ERR_NO_ERROR || commitCode == RD_KAFKA_RESP_ERR__NO_OFFSET
                ? nil : String(cString: rd_kafka_err2str(commitCode))
            let revoked = Set(topicPartitions)
            let unassignCode = lock.withLock { () -> rd_kafka_resp_err_t in
                for partition in revoked {
                    assigned[partition] = nil
                    startOffsets[partition] = nil
                    storedOffsets[partition] = nil
                }
                return rd_kafka_assign(handle, nil)
            }
            buffer.discard { revoked.contains($0.topicPartition) }
            for partition in topicPartitions { gaps.revoked(partition) }
            if let commitError {
                logger.warning("commit on revoke failed; uncommitted records will be redelivered", metadata: ["error": "\(commitError)"])
            }
            if unassignCode != RD_KAFKA_RESP_ERR_NO_ERROR {
                logger.warning("unassign after revoke failed", metadata: ["error": "\(String(cString: rd_kafka_err2str(unassignCode)))"])
            }
            logger.info("partitions revoked", metadata: ["partitions": "\(topicPartitions.sorted())"])
            eventHandler(.revoked(topicPartitions.sorted(), commitError: commitError))
        default:
            logger.error("rebalance failed; dropping the assignment", metadata: ["error": "\(String(cString: rd_kafka_err2str(code)))"])
            lock.withLock {
                assigned = [:]
                startOffsets = [:]
                storedOffsets = [:]
                _ = rd_kafka_assign(handle, nil)
            }
            buffer.discard { _ in true }
        }
    }

    private func failAssignment(_ error: KafkaError) {
        logger.critical("consumer cannot take its assignment", metadata: ["error": "\(error)"])
        lock.withLock {
            assigned = [:]
            startOffsets = [:]
            storedOffsets = [:]
        }
        buffer.fail(error)
    }

    /// Stops fetching every owned partition (shutdown drain).
    func pauseAll(handle: OpaquePointer) {
        let partitions = assignment
        guard !partitions.isEmpty else { return }
        _ = RDKafkaTopicPartitionList.withList(partitions.map { ($0, nil) }) { rd_kafka_pause_partitions(handle, $0) }
    }

    /// Stores `processedOffset + 1` for `partition`, if it is still in the assignment that
    /// delivered the record.
    func store(handle: OpaquePointer, partition: KafkaTopicPartition, processedOffset: Int64, generation: UInt64) throws(KafkaError) {
        let code = lock.withLock { () -> rd_kafka_resp_err_t in
            guard let current = assigned[partition], current == generation else { return RD_KAFKA_RESP_ERR__STATE }
            let code = RDKafkaTopicPartitionList.withList([(partition, processedOffset + 1)]) { list -> rd_kafka_resp_err_t in
                let code = rd_kafka_offsets_store(handle, list)
                return code != RD_KAFKA_RESP_ERR_NO_ERROR ? code : list.pointee.elems[0].err
            }
            if code == RD_KAFKA_RESP_ERR_NO_ERROR { storedOffsets[partition] = max(storedOffsets[partition] ?? 0, processedOffset + 1) }
            return code
        }
        switch code {
        case RD_KAFKA_RESP_ERR_NO_ERROR:
            return
        case RD_KAFKA_RESP_ERR__STATE, RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
            throw KafkaError.rdKafka(
                code, kind: .partitionNotAssigned,
                context: "offset \(processedOffset + 1) of \(partition) not stored: the partition was revoked; its new owner reads the record again"
            )
        default:
            throw KafkaError(
                kind: .offsetCommitFailed, code: Int32(code.rawValue), isFatal: true,
                detail: "cannot store offset \(processedOffset + 1) of \(partition): \(String(cString: rd_kafka_err2str(code)))"
            )
        }
    }

    /// The group's committed offset per partition (nil where none is committed).
    private func committedOffsets(handle: OpaquePointer, partitions: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) -> [KafkaTopicPartition: Int64] {
        guard let copy = rd_kafka_topic_partition_list_copy(partitions) else { return [:] }
        defer { rd_kafka_topic_partition_list_destroy(copy) }
        let code = rd_kafka_committed(handle, copy, Int32(requestTimeout.milliseconds))
        guard code == RD_KAFKA_RESP_ERR_NO_ERROR else {
            logger.warning("cannot read committed offsets; record loss before the first record of this assignment goes unnoticed",
                           metadata: ["error": "\(String(cString: rd_kafka_err2str(code)))"])
            return [:]
        }
        var offsets: [KafkaTopicPartition: Int64] = [:]
        for (partition, offset, error) in RDKafkaTopicPartitionList.entries(copy) where error == RD_KAFKA_RESP_ERR_NO_ERROR && offset >= 0 {
            offsets[partition] = offset
        }
        return offsets
    }

    /// The records of `batch` still in the assignment that delivered them: a rebalance during
    /// the batch's polls may have revoked their partition, or revoked and assigned it again
    /// (the new assignment reads those records again from the committed offset).
    func keepingAssigned(_ batch: [KafkaConsumerMessage]) -> [KafkaConsumerMessage] {
        guard !batch.isEmpty else { return batch }
        let owned = lock.withLock { assigned }
        return batch.filter { owned[$0.topicPartition] == $0.assignmentGeneration }
    }

    /// Converts one polled message into a record (checking for lost records before it);
    /// nil for consumer errors, which are logged and counted here.
    func received(_ pointer: UnsafeMutablePointer<rd_kafka_message_t>, handle: OpaquePointer) -> KafkaConsumerMessage? {
        let message = pointer.pointee
        guard message.err == RD_KAFKA_RESP_ERR_NO_ERROR else {
            consumerError(pointer)
            return nil
        }
        var record = KafkaConsumerMessage(polled: pointer)
        // Stamped now: rebalance callbacks run inside the polls, so this is the assignment that delivered it.
        record.assignmentGeneration = lock.withLock { assigned[record.topicPartition] } ?? 0
        if gapsAreLoss, let gap = gaps.received(record.topicPartition, offset: record.offset),
           let loss = confirmedLoss(gap, handle: handle) {
            logger.error("\(loss)", metadata: [
                "topic": "\(loss.topicPartition.topic)", "partition": "\(loss.topicPartition.partition)",
                "first_missing_offset": "\(loss.firstMissingOffset)", "resumed_at_offset": "\(loss.resumedAtOffset)",
            ])
            Counter(label: "vigil_records_lost_total", dimensions: [
                ("worker", worker), ("topic", loss.topicPartition.topic), ("partition", String(loss.topicPartition.partition)),
            ]).increment(by: loss.count)
            eventHandler(.recordsLost(loss))
        }
        return record
    }

    /// A jump in offsets is a loss only where the broker deleted records: its log now starts
    /// after the expected offset. Compaction and transaction markers also leave jumps, with
    /// the log start still before them.
    private func confirmedLoss(_ gap: KafkaRecordLoss, handle: OpaquePointer) -> KafkaRecordLoss? {
        var low: Int64 = -1
        var high: Int64 = -1
        let partition = gap.topicPartition
        // The cached log start comes with every fetch response; ask the broker when there is none.
        if rd_kafka_get_watermark_offsets(handle, partition.topic, partition.partition, &low, &high) != RD_KAFKA_RESP_ERR_NO_ERROR || low < 0 {
            let code = rd_kafka_query_watermark_offsets(handle, partition.topic, partition.partition, &low, &high, Int32(requestTimeout.milliseconds))
            guard code == RD_KAFKA_RESP_ERR_NO_ERROR else {
                logger.warning("offsets jumped but the log start is unknown; counted as lost", metadata: ["partition": "\(partition)"])
                return gap
            }
        }
        guard let loss = gap.confirmed(byLogStart: low) else {
            logger.debug("offsets jumped over records the log still holds (compaction or transaction markers)", metadata: ["partition": "\(partition)"])
            return nil
        }
        return loss
    }

    private func consumerError(_ pointer: UnsafeMutablePointer<rd_kafka_message_t>) {
        let message = pointer.pointee
        if message.err == RD_KAFKA_RESP_ERR__PARTITION_EOF { return }
        let topic = message.rkt.map { String(cString: rd_kafka_topic_name($0)) } ?? "-"
        let error = KafkaError.rdKafka(message.err, kind: .consumerFailed, context: "consuming \(topic)[\(message.partition)]")
        if message.err == RD_KAFKA_RESP_ERR__FATAL {
            logger.critical("consumer failed fatally", metadata: ["error": "\(error)"])
            buffer.fail(error)
        } else {
            logger.warning("consumer error; librdkafka keeps retrying", metadata: ["error": "\(error)"])
            Counter(label: "vigil_kafka_consumer_errors_total", dimensions: [("topic", topic)]).increment()
        }
    }
}

extension KafkaConsumerMessage {
    /// A copy of a message polled from librdkafka (the caller still destroys the message).
    init(polled pointer: UnsafeMutablePointer<rd_kafka_message_t>) {
        let message = pointer.pointee
        var timestampType = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
        let timestamp = rd_kafka_message_timestamp(pointer, &timestampType)
        self.init(
            topic: String(cString: rd_kafka_topic_name(message.rkt)),
            partition: message.partition,
            offset: message.offset,
            key: message.key.map { Array(UnsafeRawBufferPointer(start: $0, count: message.key_len)) },
            value: message.payload.map { Array(UnsafeRawBufferPointer(start: $0, count: message.len)) } ?? [],
            headers: Self.headers(pointer),
            timestampMilliseconds: timestampType == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? nil : timestamp
        )
    }

    private static func headers(_ pointer: UnsafeMutablePointer<rd_kafka_message_t>) -> [KafkaHeader] {
        var list: OpaquePointer?
        guard rd_kafka_message_headers(pointer, &list) == RD_KAFKA_RESP_ERR_NO_ERROR, let list else { return [] }
        var headers: [KafkaHeader] = []
        var index = 0
        var name: UnsafePointer<CChar>?
        var value: UnsafeRawPointer?
        var size = 0
        while rd_kafka_header_get_all(list, index, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR {
            headers.append(KafkaHeader(
                key: String(cString: name!),
                value: value.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) }
            ))
            index += 1
        }
        return headers
    }
}

/// The hand-over between the poll thread and the iterating task: a queue bounded in records
/// and bytes, at most one waiting reader, and the end-of-stream state.
final class ConsumerBuffer: @unchecked Sendable {
    private let condition = NSCondition()
    private let capacity: Int
    private let byteCapacity: Int
    /// Handed-out records are set to nil at once, so their bytes are freed before the array is
    /// compacted: with frame-sized records, keeping them until then would defeat the budget.
    private var records: [KafkaConsumerMessage?] = []
    private var head = 0
    private var bytes = 0
    /// Records waiting per partition, for `buffered(_:)`.
    private var perPartition: [KafkaTopicPartition: Int] = [:]
    private var waiter: CheckedContinuation<KafkaConsumerMessage?, any Error>?
    private var pendingCancel = false
    private var finished = false
    private var failure: KafkaError?

    init(capacity: Int, byteCapacity: Int) {
        self.capacity = max(1, capacity)
        self.byteCapacity = max(1, byteCapacity)
    }

    private var count: Int { records.count - head }

    var bufferedCount: Int { condition.withLock { count } }

    func buffered(_ partition: KafkaTopicPartition) -> Int { condition.withLock { perPartition[partition] ?? 0 } }

    var isFinished: Bool { condition.withLock { finished } }

    /// Poll thread: blocks up to 100 ms while the buffer is full. The bytes that may be added
    /// now (an empty buffer takes one record of any size), or nil when there is still no room.
    func waitForSpace() -> Int? {
        condition.lock()
        defer { condition.unlock() }
        if isFull && !finished {
            _ = condition.wait(until: Date(timeIntervalSinceNow: 0.1))
        }
        guard !isFull && !finished else { return nil }
        return count == 0 ? max(1, byteCapacity) : byteCapacity - bytes
    }

    private var isFull: Bool { count >= capacity || (count > 0 && bytes >= byteCapacity) }

    func append(contentsOf batch: [KafkaConsumerMessage]) {
        guard !batch.isEmpty else { return }
        condition.lock()
        guard !finished else {
            condition.unlock()
            return
        }
        if let waiter {
            // The waiting reader takes the first record; the rest wait in the buffer.
            self.waiter = nil
            for record in batch.dropFirst() {
                bytes += record.byteCount
                perPartition[record.topicPartition, default: 0] += 1
            }
            records.append(contentsOf: batch.dropFirst().map { $0 })
            condition.unlock()
            waiter.resume(returning: batch[0])
            return
        }
        for record in batch {
            bytes += record.byteCount
            perPartition[record.topicPartition, default: 0] += 1
        }
        records.append(contentsOf: batch.map { $0 })
        condition.unlock()
    }

    /// Drops buffered records that match, e.g. those of revoked partitions (never processed,
    /// so never stored: the partition's next owner reads them again).
    func discard(where matches: (KafkaConsumerMessage) -> Bool) {
        condition.lock()
        records = records[head...].filter { !matches($0!) }
        head = 0
        bytes = records.reduce(0) { $0 + $1!.byteCount }
        perPartition = [:]
        for record in records { perPartition[record!.topicPartition, default: 0] += 1 }
        condition.signal()
        condition.unlock()
    }

    func fail(_ error: KafkaError) {
        condition.lock()
        failure = error
        let waiting = waiter
        waiter = nil
        condition.unlock()
        waiting?.resume(throwing: error)
    }

    /// Ends the stream (again: no effect).
    func finish() {
        condition.lock()
        finished = true
        records = []
        head = 0
        bytes = 0
        perPartition = [:]
        let waiting = waiter
        waiter = nil
        condition.broadcast()
        condition.unlock()
        waiting?.resume(returning: nil)
    }

    func next() async throws -> KafkaConsumerMessage? {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                condition.lock()
                if pendingCancel || finished {
                    pendingCancel = false
                    condition.unlock()
                    continuation.resume(returning: nil)
                } else if count > 0 {
                    let record = records[head]!
                    records[head] = nil
                    head += 1
                    bytes -= record.byteCount
                    perPartition[record.topicPartition, default: 1] -= 1
                    if head >= 64 && head * 2 > records.count {
                        records.removeFirst(head)
                        head = 0
                    }
                    condition.signal()
                    condition.unlock()
                    continuation.resume(returning: record)
                } else if let failure {
                    condition.unlock()
                    continuation.resume(throwing: failure)
                } else {
                    precondition(waiter == nil, "KafkaConsumer.messages supports one iterating task at a time")
                    waiter = continuation
                    condition.unlock()
                }
            }
        } onCancel: {
            condition.lock()
            let waiting = waiter
            waiter = nil
            if waiting == nil { pendingCancel = true }
            condition.unlock()
            waiting?.resume(returning: nil)
        }
    }
}
