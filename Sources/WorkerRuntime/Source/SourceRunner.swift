import Foundation
import Kafka
import Logging
import Metrics
import ServiceLifecycle

/// What a source worker owns, for `/readyz`: ready once it has joined its group and read each
/// assigned partition of the owned table to its end (an empty assignment is an assignment too:
/// more replicas than partitions leaves some with nothing to do).
final class SourceOwnership: @unchecked Sendable {
    private let lock = NSLock()
    private var joined = false
    private var loading: Set<KafkaTopicPartition> = []

    func assigned(_ partitions: [KafkaTopicPartition]) {
        lock.withLock {
            joined = true
            loading.formUnion(partitions)
        }
    }

    func revoked(_ partitions: [KafkaTopicPartition]) {
        lock.withLock { loading.subtract(partitions) }
    }

    func loaded(_ partition: KafkaTopicPartition) {
        lock.withLock { _ = loading.remove(partition) }
    }

    /// nil when ready, else why not.
    var problem: String? {
        lock.withLock {
            if !joined { return "joining the group that assigns the owned keys" }
            if !loading.isEmpty { return "reading the owned partitions \(loading.sorted()) to their end" }
            return nil
        }
    }
}

/// Runs a `Source`: follows the group's assignment of the owned table's partitions, reads each
/// assigned partition whole (offsets are never committed, so every assignment starts from the
/// beginning) into a table of its own, and keeps one run of the source per owned key.
///
/// Everything that changes ownership — assignments, revocations, records — goes through one
/// event stream, handled in order by one task, so starting and stopping runs never race.
final class SourceRunner<S: Source>: Service, @unchecked Sendable {
    enum Event: Sendable {
        case assigned([KafkaTopicPartition])
        case revoked([KafkaTopicPartition])
        case record(KafkaConsumerMessage)
        /// Re-check which assigned partitions have been read to their end.
        case tick
    }

    private struct Run {
        var value: S.Value
        var task: Task<Void, Never>
    }

    private let source: S
    private let consumer: KafkaConsumer
    private let producer: KafkaProducer
    /// Table refusal notices, sent apart from the runs' records; drained before the producer closes.
    private let announcements: Announcements
    private let shutdown: ShutdownBudget
    private let events: AsyncStream<Event>
    private let eventInput: AsyncStream<Event>.Continuation
    private let makeTable: @Sendable () -> Table<S.Value>
    private let ownership: SourceOwnership
    private let metrics: WorkerMetrics
    private let worker: String
    private let declaredOutputs: Set<String>
    private let maxRecordBytes: Int
    private let logger: Logger
    private let failureLock = NSLock()
    private var failure: (any Error)?  // guarded by `failureLock`: the first error that stops the worker

    // Touched only by the event task.
    private var tables: [KafkaTopicPartition: Table<S.Value>] = [:]
    private var nextOffset: [KafkaTopicPartition: Int64] = [:]
    private var loaded: Set<KafkaTopicPartition> = []
    private var runs: [String: Run] = [:]

    init(
        source: S, consumer: KafkaConsumer, producer: KafkaProducer, announcements: Announcements, shutdown: ShutdownBudget, events: (AsyncStream<Event>, AsyncStream<Event>.Continuation),
        makeTable: @escaping @Sendable () -> Table<S.Value>, ownership: SourceOwnership, metrics: WorkerMetrics, worker: String,
        declaredOutputs: Set<String>, maxRecordBytes: Int, logger: Logger
    ) {
        self.source = source
        self.consumer = consumer
        self.producer = producer
        self.announcements = announcements
        self.shutdown = shutdown
        (self.events, self.eventInput) = events
        self.makeTable = makeTable
        self.ownership = ownership
        self.metrics = metrics
        self.worker = worker
        self.declaredOutputs = declaredOutputs
        self.maxRecordBytes = maxRecordBytes
        self.logger = logger
    }

    /// The consumer's event handler: ownership changes join the record stream, in order.
    static func forward(_ input: AsyncStream<Event>.Continuation, ownership: SourceOwnership) -> @Sendable (KafkaConsumerEvent) -> Void {
        { event in
            switch event {
            case .assigned(let partitions):
                ownership.assigned(partitions)
                input.yield(.assigned(partitions))
            case .revoked(let partitions, _):
                ownership.revoked(partitions)
                input.yield(.revoked(partitions))
            case .recordsLost:
                break
            }
        }
    }

    func run() async throws {
        let (deliveries, deliveryInput) = AsyncStream<(topic: String, delivery: KafkaPendingDelivery)>.makeStream()
        let emitter = SourceEmitter(
            producer: producer, declaredOutputs: declaredOutputs, maxRecordBytes: maxRecordBytes, metrics: metrics, deliveries: deliveryInput
        )
        let ticker = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(200))
                eventInput.yield(.tick)
            }
        }
        var thrown: (any Error)?
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    do {
                        try await self.watch(deliveries)
                    } catch {
                        self.stop(with: error)
                        throw error
                    }
                }
                group.addTask {
                    do {
                        for try await message in self.consumer.messages { self.eventInput.yield(.record(message)) }
                    } catch {
                        self.stop(with: error)
                    }
                }
                await withGracefulShutdownHandler {
                    await self.handleEvents(emitter)
                } onGracefulShutdown: {
                    self.shutdown.begin()
                    self.consumer.endMessages()
                    self.eventInput.finish()
                }
                ticker.cancel()
                consumer.endMessages()
                await stopAllRuns()
                // Every run has stopped: no more records come, and the watcher drains what is in flight.
                deliveryInput.finish()
                try await group.waitForAll()
            }
        } catch {
            thrown = error
        }
        ticker.cancel()
        await shutdown.close(announcements: announcements, producer: producer, consumer: consumer)
        if let error = thrown ?? failureLock.withLock({ failure }) { throw error }
        logger.info("source stopped; every run ended and its records were delivered")
    }

    /// Ends the event loop because the worker cannot go on (an undelivered record, an undeclared output).
    private func stop(with error: any Error) {
        failureLock.withLock { if failure == nil { failure = error } }
        consumer.endMessages()
        eventInput.finish()
    }

    private func watch(_ deliveries: AsyncStream<(topic: String, delivery: KafkaPendingDelivery)>) async throws {
        for await (topic, delivery) in deliveries {
            do {
                _ = try await delivery.report()
            } catch {
                logger.critical("a source record was not delivered; stopping so the worker restarts and its sources produce again", metadata: [
                    "topic": "\(topic)", "error": "\(error)",
                ])
                throw error
            }
        }
    }

    private func handleEvents(_ emitter: SourceEmitter) async {
        for await event in events {
            switch event {
            case .assigned(let partitions):
                for partition in partitions {
                    tables[partition] = makeTable()
                    nextOffset[partition] = nil
                    loaded.remove(partition)
                }
            case .revoked(let partitions):
                for partition in partitions {
                    tables[partition] = nil
                    nextOffset[partition] = nil
                    loaded.remove(partition)
                }
                await reconcile(emitter)
            case .record(let message):
                // A record of a partition revoked meanwhile has no table: its next owner reads it.
                guard let table = tables[message.topicPartition] else { continue }
                let outcome = table.apply(TableRecord(message))
                TableApplier.report(outcome, of: TableRecord(message), worker: worker, logger: logger, announce: announcements.announce)
                nextOffset[message.topicPartition] = message.offset + 1
                if loaded.contains(message.topicPartition) { await reconcile(emitter) } else { await checkLoaded(emitter) }
            case .tick:
                await checkLoaded(emitter)
            }
        }
    }

    /// Marks partitions read to the end they had when last fetched, and starts their keys' runs.
    /// The last record of a partition is never compacted away (it sits in the active segment),
    /// and vigil's table writers use no transactions, so the end is always a record's offset + 1.
    private func checkLoaded(_ emitter: SourceEmitter) async {
        let loading = tables.keys.filter { !loaded.contains($0) }
        guard !loading.isEmpty else { return }
        let watermarks = consumer.cachedWatermarks()
        var changed = false
        for partition in loading {
            guard let (low, high) = watermarks[partition] else { continue }
            if high <= low || (nextOffset[partition] ?? low) >= high {
                loaded.insert(partition)
                ownership.loaded(partition)
                changed = true
            }
        }
        if changed { await reconcile(emitter) }
    }

    /// Starts, restarts and stops runs so that exactly the keys of the loaded partitions run,
    /// each with its current value. A run is stopped (and awaited) before its replacement starts.
    private func reconcile(_ emitter: SourceEmitter) async {
        var desired: [String: S.Value] = [:]
        for (partition, table) in tables where loaded.contains(partition) {
            for key in table.keys {
                if let value = table.current(key) { desired[key] = value }
            }
        }
        for (key, run) in runs where desired[key] != run.value {
            run.task.cancel()
            await run.task.value
            runs[key] = nil
            logger.info(desired[key] == nil ? "stopped a source run: key no longer owned" : "restarting a source run: its configuration changed", metadata: ["key": "\(key)"])
        }
        for (key, value) in desired.sorted(by: { $0.key < $1.key }) where runs[key] == nil {
            runs[key] = Run(value: value, task: Task { await self.runUntilDone(key: key, value: value, emitter: emitter) })
            logger.info("started a source run", metadata: ["key": "\(key)"])
        }
        metrics.setKeysOwned(runs.count)
    }

    private func runUntilDone(key: String, value: S.Value, emitter: SourceEmitter) async {
        var delay = Duration.seconds(1)
        while !Task.isCancelled {
            do {
                try await source.run(key: key, value: value, output: SourceOutput(emitter: emitter))
                logger.info("source run finished; it starts again when its configuration changes", metadata: ["key": "\(key)"])
                return
            } catch let error as UndeclaredOutput {
                stop(with: error)
                return
            } catch {
                if Task.isCancelled || error is CancellationError { return }
                logger.warning("source run failed; restarting it", metadata: ["key": "\(key)", "error": "\(RecordHandler.safeReason(error))", "retry_in": "\(delay)"])
                metrics.sourceRunFailed()
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(30))
            }
        }
    }

    private func stopAllRuns() async {
        for run in runs.values { run.task.cancel() }
        for run in runs.values { await run.task.value }
        runs = [:]
        metrics.setKeysOwned(0)
    }
}
