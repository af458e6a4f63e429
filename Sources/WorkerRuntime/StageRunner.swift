import Foundation
import Kafka
import Logging
import ServiceLifecycle

/// The worker loop: consume → stage → produce → store the input's offset once every output
/// it caused was acknowledged → (the consumer) commit.
///
/// Records are processed one at a time in consumption order, so per-partition (per-camera)
/// order holds; deliveries are awaited in the background, in the same order, so processing
/// does not wait for the network. The runner owns the consumer and producer and closes them
/// itself, in order, however it ends:
/// - graceful shutdown: stop taking records, finish the in-flight ones, store their offsets,
///   flush the producer, commit and leave the group;
/// - an output not delivered, an offset that cannot be stored, a stage outage that outlasts
///   `outageLimit`, a stage writing to an undeclared topic: stop taking records at once and
///   throw, without storing the failed input's offset, so a restarted worker redoes it.
///
/// For a stateful stage the offsets wait for the flush of the state they changed;
/// `StageRunner+State.swift` holds that part.
final class StageRunner: Service, @unchecked Sendable {
    let consumer: KafkaConsumer
    let producer: KafkaProducer
    /// Sent apart from the stage's outputs; drained before the producer closes.
    private let announcements: Announcements
    private let shutdown: ShutdownBudget
    let handler: RecordHandler
    private let tables: KafkaTableReader?
    let stateful: StatefulRuntime?
    let metrics: WorkerMetrics
    let progress: LoopProgress
    private let outageLimit: Duration
    let logger: Logger
    let inFlight: InFlightLimiter
    /// Orders several inputs by event time; touched only inside `stateful.gate`.
    var merger: EventTimeMerger?
    /// Records processed since the last flush of changed state; touched only inside `stateful.gate`.
    var recordsSinceFlush = 0
    /// Set once the loop has ended (its last flush queued): a revoke then has nothing to flush.
    let loopEnded = NSLock()
    var isLoopEnded = false  // guarded by `loopEnded`

    init(
        consumer: KafkaConsumer, producer: KafkaProducer, announcements: Announcements, shutdown: ShutdownBudget, handler: RecordHandler, tables: KafkaTableReader? = nil, stateful: StatefulRuntime? = nil,
        maxInFlightRecords: Int,
        outageLimit: Duration, metrics: WorkerMetrics, progress: LoopProgress, logger: Logger
    ) {
        self.consumer = consumer
        self.producer = producer
        self.announcements = announcements
        self.shutdown = shutdown
        self.handler = handler
        self.tables = tables
        self.stateful = stateful
        self.metrics = metrics
        self.progress = progress
        self.outageLimit = outageLimit
        self.logger = logger
        self.inFlight = InFlightLimiter(limit: maxInFlightRecords)
        if let stateful, stateful.inputs.count > 1 {
            merger = EventTimeMerger(topics: stateful.inputs)
        }
    }

    /// An input whose outputs are on their way; or, for a stateful stage, a timer firing's
    /// outputs (no input: `holdsSlot` false) or a flush of changed state (`changelog`).
    struct PendingRecord: Sendable {
        var partition: KafkaTopicPartition
        var offset: Int64
        var generation: UInt64
        var deliveries: [KafkaPendingDelivery]
        var holdsSlot = true
        /// The oldest offset of the partition the stage still held after this record
        /// (`Stage.oldestHeldOffset`): the offset stored for it stays below.
        var heldFrom: Int64? = nil
        /// A flush: snapshots of the keys changed by the records before it, written once their
        /// outputs are acknowledged; those records' offsets are stored once these are.
        var changelog: [StageOutput]? = nil
        /// Signalled once the offsets a flush reflects are stored.
        var stored: DispatchSemaphore? = nil

        /// A timer firing's outputs or a flush: no input, so nothing to store and no slot held.
        static func withoutInput(
            deliveries: [KafkaPendingDelivery], changelog: [StageOutput]? = nil, stored: DispatchSemaphore? = nil
        ) -> PendingRecord {
            PendingRecord(
                partition: KafkaTopicPartition(topic: "", partition: -1), offset: -1, generation: 0, deliveries: deliveries, holdsSlot: false,
                changelog: changelog, stored: stored
            )
        }
    }

    /// A pending record whose outputs were acknowledged and whose snapshots are on their way.
    struct PendingChangelog: Sendable {
        var record: PendingRecord
        var deliveries: [KafkaPendingDelivery]
    }

    func run() async throws {
        let failure: (any Error)?
        do {
            try await processUntilStopped()
            failure = nil
        } catch {
            failure = error
        }
        // The one owner of the clients closes them in order, within what is left of the
        // shutdown timeout: announcements (a refusal noticed while stopping) and outputs
        // flushed first, then the consumer commits the offsets stored by the loop and leaves.
        await shutdown.close(announcements: announcements, producer: producer, consumer: consumer)
        if failure is CancellationError {
            // The shutdown timeout ran out while the stage still held a record.
            logger.warning("shutdown timed out with records still in the stage; their offsets are not stored, so the partitions' next owners process them again")
            return
        }
        if let failure { throw failure }
        logger.info("worker loop finished; every processed record's offset is stored")
    }

    private func processUntilStopped() async throws {
        let (pending, pendingInput) = AsyncStream<PendingRecord>.makeStream()
        if let stateful {
            consumer.onRevoke { [weak self] revoked in self?.flushBeforeRevoke(revoked, stateful, into: pendingInput) }
        }
        let (changelog, changelogInput) = AsyncStream<PendingChangelog>.makeStream()
        try await withThrowingTaskGroup(of: Void.self) { group in
            // Two steps in order, each pipelined: outputs acknowledged → snapshots sent; snapshots
            // acknowledged → offset stored. A crash can repeat outputs, never lose one.
            group.addTask {
                do {
                    defer { changelogInput.finish() }
                    try await self.writeChangelogInOrder(pending, into: changelogInput)
                } catch {
                    self.stopTaking(error)
                    throw error
                }
            }
            group.addTask {
                do {
                    try await self.storeOffsetsInOrder(changelog)
                } catch {
                    self.stopTaking(error)
                    throw error
                }
            }
            group.addTask {
                defer {
                    self.loopEnded.withLock { self.isLoopEnded = true }
                    pendingInput.finish()
                }
                try await withGracefulShutdownHandler {
                    try await withThrowingTaskGroup(of: Void.self) { loops in
                        loops.addTask { try await self.consume(into: pendingInput) }
                        if let stateful = self.stateful {
                            loops.addTask { try await self.runTimersAndCheckpoints(stateful, into: pendingInput) }
                        }
                        // The consume loop ends the group: at shutdown, or when the consumer stops.
                        try await loops.next()
                        loops.cancelAll()
                    }
                } onGracefulShutdown: {
                    self.shutdown.begin()
                    self.consumer.endMessages()
                }
            }
            try await group.waitForAll()
        }
    }

    /// Stops taking records at once: a waiting acquire fails and the stream ends.
    func stopTaking(_ error: any Error) {
        inFlight.close(with: error)
        consumer.endMessages()
    }

    private func consume(into pending: AsyncStream<PendingRecord>.Continuation) async throws {
        // A record is judged by the tables as written before the worker started (a frame is
        // masked with its camera's masks), never by a half-loaded table.
        if let tables {
            // Throws when a table topic is missing: the worker stops, saying which.
            try await tables.start()
            logger.info("waiting for the tables to load before taking records")
            let loaded = await cancelWhenGracefulShutdown { await tables.waitUntilCaughtUp() }
            guard loaded else { return }
            logger.info("tables loaded")
        }
        for try await message in consumer.messages {
            if let stateful {
                // Timers and checkpoints touch the same state: one at a time, and yielded in the
                // order the state changed, so a key's snapshots reach the changelog in order.
                try await stateful.gate.run {
                    if merger == nil {
                        try await process(message, into: pending)
                    } else {
                        merger!.add(message)
                        try await processMerged(into: pending)
                    }
                }
            } else {
                try await process(message, into: pending)
            }
        }
        // Stopping: the state of everything processed is written, so every offset can be stored.
        if let stateful {
            try await stateful.gate.run { try flush(stateful, into: pending) }
        }
    }



    func process(_ message: KafkaConsumerMessage, into pending: AsyncStream<PendingRecord>.Continuation) async throws {
        try await inFlight.acquire()
        progress.began()
        metrics.setInFlight(progress.inFlight)
        pending.yield(try await handle(message))
        guard let stateful else { return }
        // Records hold their in-flight slot until a flush after them is written: flush well
        // before the limit, so the next acquire never waits for a flush nobody queued.
        recordsSinceFlush += 1
        if recordsSinceFlush >= stateful.flushEvery { try flush(stateful, into: pending) }
    }


    private func handle(_ message: KafkaConsumerMessage) async throws -> PendingRecord {
        metrics.recordIn(topic: message.topic)
        let started = ContinuousClock.now
        let input = StageInput(message)
        if stateful != nil, !consumer.isCurrent(message) {
            // Processed here, it would meet state this replica no longer holds (or restore a
            // stale copy) and could emit outputs that differ from the next owner's under the same ids.
            metrics.skipped(topic: message.topic, reason: .partitionRevoked)
            return PendingRecord(partition: message.topicPartition, offset: message.offset, generation: message.assignmentGeneration, deliveries: [])
        }
        if let stateful, !stateful.engine.isRestored(partition: message.partition, generation: message.assignmentGeneration) {
            try await restore(partition: message.partition, generation: message.assignmentGeneration, stateful)
        }
        let outcome = try await outcomeRetryingOutages(input)
        var deliveries: [KafkaPendingDelivery] = []
        switch outcome {
        case .processed(let outputs):
            deliveries = try await enqueue(outputs)
        case .deadLettered(let copy, let reason):
            deliveries.append(try await deadLetter(copy, reason: reason, of: message))
        case .partlyProcessed(let outputs, let copy, let reason):
            deliveries = try await enqueue(outputs)
            deliveries.append(try await deadLetter(copy, reason: reason, of: message))
        case .skipped(let reason):
            logger.debug("record skipped", metadata: ["topic": "\(message.topic)", "offset": "\(message.offset)", "reason": "\(reason.rawValue)"])
            metrics.skipped(topic: message.topic, reason: reason)
        case .retryLater:
            preconditionFailure("outcomeRetryingOutages returns only final outcomes")
        }
        metrics.processed(in: ContinuousClock.now - started)
        return PendingRecord(
            partition: message.topicPartition, offset: message.offset, generation: message.assignmentGeneration, deliveries: deliveries,
            heldFrom: handler.stage?.oldestHeldOffset(topic: message.topic, partition: message.partition)
        )
    }

    /// Queues a dead letter, saying so in the log and the metrics.
    private func deadLetter(_ copy: StageOutput, reason: String, of message: KafkaConsumerMessage) async throws -> KafkaPendingDelivery {
        logger.warning("record dead-lettered", metadata: [
            "topic": "\(message.topic)", "partition": "\(message.partition)", "offset": "\(message.offset)",
            "dlq": "\(copy.topic)", "error": "\(reason)",
        ])
        metrics.deadLettered(topic: message.topic)
        return try await producer.enqueue(KafkaProducerMessage(copy))
    }

    /// Queues `outputs` for delivery, in order, counting each.
    func enqueue(_ outputs: [StageOutput]) async throws -> [KafkaPendingDelivery] {
        var deliveries: [KafkaPendingDelivery] = []
        deliveries.reserveCapacity(outputs.count)
        for output in outputs {
            deliveries.append(try await producer.enqueue(KafkaProducerMessage(output)))
            metrics.recordOut(topic: output.topic)
        }
        return deliveries
    }

    /// The stage's outcome for `input`, retrying with capped exponential backoff while the stage
    /// reports an outage; throws `StageOutage` once the outage has lasted `outageLimit`.
    private func outcomeRetryingOutages(_ input: StageInput) async throws -> RecordOutcome {
        // A stateful stage takes the clock as the event time of records that carry none.
        let now = handler.maxAge == nil && stateful == nil ? 0 : Int64(Date().timeIntervalSince1970 * 1_000)
        var backoff = OutageBackoff(limit: outageLimit)
        while true {
            let outcome = if let stateful {
                try await stateful.engine.handle(input, nowMilliseconds: now)
            } else {
                try await handler.handle(input, nowMilliseconds: now)
            }
            guard case .retryLater(let reason) = outcome else { return outcome }
            if let lasted = backoff.exhausted {
                throw StageOutage(reason: reason, lasted: lasted, topic: input.topic, partition: input.partition, offset: input.offset)
            }
            logger.warning("stage unavailable; retrying the record", metadata: [
                "topic": "\(input.topic)", "partition": "\(input.partition)", "offset": "\(input.offset)",
                "reason": "\(reason)", "retry_in": "\(backoff.delay)",
            ])
            metrics.retried(topic: input.topic)
            progress.touch()  // waiting out an outage on purpose is not a stuck loop
            try await backoff.wait()
        }
    }

    /// Waits for each record's outputs in order, then sends its state snapshots.
    private func writeChangelogInOrder(_ pending: AsyncStream<PendingRecord>, into next: AsyncStream<PendingChangelog>.Continuation) async throws {
        for await record in pending {
            for delivery in record.deliveries {
                do {
                    _ = try await delivery.report()
                } catch {
                    // Not delivered after librdkafka's retries: an outage, not a bad record.
                    logger.critical("an output was not delivered; stopping without storing its input's offset, so the input is processed again after restart", metadata: [
                        "topic": "\(record.partition.topic)", "partition": "\(record.partition.partition)", "offset": "\(record.offset)",
                        "error": "\(error)",
                    ])
                    throw error
                }
            }
            var snapshots: [KafkaPendingDelivery] = []
            for snapshot in record.changelog ?? [] {
                snapshots.append(try await producer.enqueue(KafkaProducerMessage(snapshot)))
            }
            next.yield(PendingChangelog(record: record, deliveries: snapshots))
        }
    }

    /// Stores offsets in order: a stateless stage's at once; a stateful stage's once the flush
    /// after them — the snapshots of the state they changed — is acknowledged.
    private func storeOffsetsInOrder(_ changelog: AsyncStream<PendingChangelog>) async throws {
        var awaitingFlush: [PendingRecord] = []
        for await pending in changelog {
            let record = pending.record
            for delivery in pending.deliveries {
                do {
                    _ = try await delivery.report()
                } catch {
                    logger.critical("a state snapshot was not delivered; stopping without storing the offsets of the records it reflects, so they are processed again after restart", metadata: [
                        "error": "\(error)",
                    ])
                    throw error
                }
            }
            if record.changelog != nil {
                for reflected in awaitingFlush { try store(reflected) }
                awaitingFlush.removeAll(keepingCapacity: true)
                record.stored?.signal()
            } else if record.holdsSlot {
                if stateful == nil { try store(record) } else { awaitingFlush.append(record) }
            }
        }
    }

    private func store(_ record: PendingRecord) throws {
        if let error = storeOffset(of: record) {
            guard error.kind == .partitionNotAssigned else { throw error }
            // The partition moved to another member in a rebalance; it reprocesses from its commit.
            logger.debug("offset not stored", metadata: ["error": "\(error)"])
        }
        inFlight.release()
        progress.completed()
        metrics.setInFlight(progress.inFlight)
    }
}

extension StageInput {
    init(_ message: KafkaConsumerMessage) {
        self.init(
            topic: message.topic, partition: message.partition, offset: message.offset, key: message.key,
            value: message.value, headers: message.headers.map { RecordHeader(key: $0.key, value: $0.value) },
            timestampMilliseconds: message.timestampMilliseconds
        )
    }
}

extension KafkaProducerMessage {
    public init(_ record: StageOutput) {
        self.init(
            topic: record.topic, partition: record.partition, key: record.key, value: record.value,
            headers: record.headers.map { KafkaHeader(key: $0.key, value: $0.value) }
        )
    }
}

extension StageRunner {
    /// Stores the record's offset; the error when it could not be stored. Returned, not thrown:
    /// a typed-throws `do`/`catch where` inside the async store loop crashes Swift 6.3.1's SIL
    /// optimizer (MandatoryAllocBoxToStack).
    fileprivate func storeOffset(of record: PendingRecord) -> KafkaError? {
        // Records the stage still holds (and all after them) stay unstored: read again after a restart.
        let processed = record.heldFrom.map { min(record.offset, $0 - 1) } ?? record.offset
        guard processed >= 0 else { return nil }
        do {
            try consumer.storeOffset(of: record.partition, processedOffset: processed, generation: record.generation)
            return nil
        } catch {
            return error
        }
    }
}

/// The stage reported an outage for longer than the worker waits: it stops without storing
/// the record's offset; restarted, it retries the record.
struct StageOutage: Error, CustomStringConvertible {
    var reason: String
    var lasted: Duration
    var topic: String
    var partition: Int32
    var offset: Int64

    var description: String {
        "the stage was unavailable for \(lasted) (\(reason)) while processing \(topic)[\(partition)] offset \(offset); "
            + "stopping without storing its offset: fix what the stage depends on, or raise worker.outage-timeout-ms"
    }
}
