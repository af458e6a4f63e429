import Foundation
import Kafka
import Logging
import ServiceLifecycle

/// The worker loop: consume → stage → produce → store the input's offset once every output
/// it caused was acknowledged → (the consumer) commit.
///
/// Records are processed one at a time in consumption order, so per-partition (per-camera)
/// order holds; deliveries are awaited in the background, in the same order, so processing
/// does not wait for the network. On graceful shutdown it stops taking records, lets the
/// in-flight ones finish and stores their offsets; the consumer then commits as it leaves.
final class StageRunner: Service, @unchecked Sendable {
    private let consumer: KafkaConsumer
    private let producer: KafkaProducer
    private let handler: RecordHandler
    private let metrics: WorkerMetrics
    private let logger: Logger
    private let inFlight: InFlightLimiter
    private let inFlightCount = NSLock()
    private var inFlightRecords = 0  // guarded by `inFlightCount`

    init(consumer: KafkaConsumer, producer: KafkaProducer, handler: RecordHandler, maxInFlightRecords: Int, metrics: WorkerMetrics, logger: Logger) {
        self.consumer = consumer
        self.producer = producer
        self.handler = handler
        self.metrics = metrics
        self.logger = logger
        self.inFlight = InFlightLimiter(limit: maxInFlightRecords)
    }

    /// An input whose outputs are on their way.
    struct PendingRecord: Sendable {
        var partition: KafkaTopicPartition
        var offset: Int64
        var deliveries: [KafkaPendingDelivery]
    }

    func run() async throws {
        let (pending, pendingInput) = AsyncStream<PendingRecord>.makeStream()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await self.storeOffsetsInOrder(pending) }
            do {
                try await withGracefulShutdownHandler {
                    for try await message in self.consumer.messages {
                        try await self.inFlight.acquire()
                        self.changeInFlight(by: 1)
                        pendingInput.yield(try await self.handle(message))
                    }
                } onGracefulShutdown: {
                    self.consumer.endMessages()
                }
            } catch {
                pendingInput.finish()
                throw error
            }
            pendingInput.finish()
            try await group.waitForAll()
        }
        logger.info("worker loop finished; every processed record's offset is stored")
    }

    private func handle(_ message: KafkaConsumerMessage) async throws -> PendingRecord {
        metrics.recordIn(topic: message.topic)
        let started = ContinuousClock.now
        let input = StageInput(message)
        var outcome = await handler.handle(input, nowMilliseconds: Int64(Date().timeIntervalSince1970 * 1_000))
        var deliveries: [KafkaPendingDelivery] = []
        if case .processed(let outputs) = outcome {
            do {
                for output in outputs { deliveries.append(try await producer.enqueue(output)) }
                for output in outputs { metrics.recordOut(topic: output.topic) }
            } catch let error as KafkaError where error.kind == .messageTooLarge {
                // This record's output can never be sent: a problem of the record, so it goes to the DLQ.
                outcome = handler.deadLetter(input, reason: RecordHandler.safeReason(error))
            }
        }
        switch outcome {
        case .processed:
            break
        case .deadLettered(let copy, let reason):
            logger.warning("record dead-lettered", metadata: [
                "topic": "\(message.topic)", "partition": "\(message.partition)", "offset": "\(message.offset)",
                "dlq": "\(copy.topic)", "error": "\(reason)",
            ])
            deliveries.append(try await producer.enqueue(copy))
            metrics.deadLettered(topic: message.topic)
        case .skipped(let reason):
            logger.debug("record skipped", metadata: ["topic": "\(message.topic)", "offset": "\(message.offset)", "reason": "\(reason.rawValue)"])
            metrics.skipped(topic: message.topic, reason: reason)
        }
        metrics.processed(in: ContinuousClock.now - started)
        return PendingRecord(partition: message.topicPartition, offset: message.offset, deliveries: deliveries)
    }

    private func storeOffsetsInOrder(_ pending: AsyncStream<PendingRecord>) async throws {
        for await record in pending {
            for delivery in record.deliveries {
                do {
                    _ = try await delivery.report()
                } catch {
                    // Not delivered after librdkafka's retries: an outage, not a bad record. Stop
                    // without storing this offset, so the input is processed again after restart.
                    logger.critical("an output was not delivered; stopping so its input is reprocessed after restart", metadata: [
                        "topic": "\(record.partition.topic)", "partition": "\(record.partition.partition)", "offset": "\(record.offset)",
                        "error": "\(error)",
                    ])
                    throw error
                }
            }
            do {
                try consumer.storeOffset(of: record.partition, processedOffset: record.offset)
            } catch {
                // The partition moved to another member in a rebalance; it reprocesses from its commit.
                logger.debug("offset not stored", metadata: ["error": "\(error)"])
            }
            inFlight.release()
            changeInFlight(by: -1)
        }
    }

    private func changeInFlight(by delta: Int) {
        let count = inFlightCount.withLock {
            inFlightRecords += delta
            return inFlightRecords
        }
        metrics.setInFlight(count)
    }
}
