import Foundation
import WorkerRuntime
import Logging

/// Runs a stateful stage in memory, the way the runtime runs it on Kafka: feed inputs, let
/// caught-up time pass for silence timers, write checkpoints, and read what would have been
/// produced, dead-lettered and written to the changelog. The changed state is flushed after
/// every record and timer (on Kafka, changes are flushed together every 100 ms or so). A driver made `restoredFrom` another's
/// changelog is the replica that takes over a partition (after a crash or a rebalance).
public final class StatefulStageTestDriver<S: StatefulStage>: @unchecked Sendable {
    private let engine: KeyedStateEngine<S>
    private let offsets = FedOffsets()
    private let lock = NSLock()
    private var produced: [StageOutput] = []
    private var deadLettered: [StageOutput] = []
    private var skipped: [StageInput] = []
    private var snapshots: [StageOutput] = []
    private var generation: UInt64 = 1

    /// - Parameters:
    ///   - inputs: the worker's inputs; timer firings that fail are dead-lettered to the first one's DLQ.
    ///   - outputs: the topics the stage may write; nil allows any.
    ///   - outageLimit: how long a timer handler may be unavailable before `feed` throws (the worker would stop).
    ///   - restoredFrom: changelog records (another driver's `changelog`) to restore from.
    public init(
        stage: S, worker: String = "test-worker", inputs: [String] = ["detections"], outputs: [String]? = nil,
        changelogTopic: String = "test-worker.state.changelog", limits: StateLimits = StateLimits(), maxAge: Duration? = nil,
        outageLimit: Duration = .seconds(60), restoredFrom changelog: [StageOutput] = []
    ) {
        var logger = Logger(label: "stateful-test-driver")
        logger.logLevel = .critical
        let handler = RecordHandler(
            worker: worker, stage: nil, maxAge: maxAge, deadLetterSuffix: ".dlq", declaredOutputs: outputs.map { Set($0 + [changelogTopic]) }
        )
        engine = KeyedStateEngine(
            stage: stage, handler: handler, changelogTopic: changelogTopic, timerDeadLetters: inputs[0] + ".dlq", limits: limits,
            outage: (outageLimit, {}), logger: logger
        )
        for partition in Set(changelog.compactMap(\.partition)) {
            let records = changelog.enumerated().filter { $0.element.partition == partition }.map { index, record in
                (key: String(decoding: record.key ?? [], as: UTF8.self), value: record.value, offset: Int64(index))
            }
            engine.restore(partition: partition, generations: [generation], snapshots: records)
        }
    }

    /// Feeds one record; offsets count up per topic unless the input sets them.
    @discardableResult
    public func feed(_ input: StageInput, nowMilliseconds: Int64? = nil) async throws -> RecordOutcome {
        let input = offsets.assign(input)
        if !engine.isRestored(partition: input.partition, generation: generation) {
            engine.restore(partition: input.partition, generations: [generation], snapshots: [])
        }
        let outcome = try await engine.handle(input, nowMilliseconds: nowMilliseconds ?? input.timestampMilliseconds ?? 0)
        try record(outcome, input: input)
        return outcome
    }

    /// Lets `duration` of caught-up time pass on `partitions` (default: every one held).
    public func advanceSilence(by duration: Duration, partitions: Set<Int32>? = nil) async throws {
        for outputs in try await engine.advanceSilence(caughtUp: partitions ?? engine.ownedPartitions, elapsedMilliseconds: duration.milliseconds) {
            try record(.processed(outputs), input: nil)
        }
    }

    /// Writes a snapshot of every key, as the periodic checkpoint does.
    public func checkpoint() throws {
        let records = try engine.checkpoint(olderThan: .zero)
        lock.withLock { snapshots += records }
    }

    public var outputs: [StageOutput] { lock.withLock { produced } }

    /// Outputs for one topic, in production order.
    public func outputs(topic: String) -> [StageOutput] {
        outputs.filter { $0.topic == topic }
    }
    public var deadLetters: [StageOutput] { lock.withLock { deadLettered } }
    public var skippedInputs: [StageInput] { lock.withLock { skipped } }
    /// The changelog records written, in order.
    public var changelog: [StageOutput] { lock.withLock { snapshots } }

    public func state(of key: String, partition: Int32 = 0) -> S.State? {
        engine.state(of: key, partition: partition)
    }

    public func timers(of key: String, partition: Int32 = 0) -> Timers? {
        engine.timers(of: key, partition: partition)
    }

    private func record(_ outcome: RecordOutcome, input: StageInput?) throws {
        try lock.withLock {
            switch outcome {
            case .processed(let records): produced += records
            case .deadLettered(let copy, _): deadLettered.append(copy)
            case .partlyProcessed(let records, let copy, _):
                produced += records
                deadLettered.append(copy)
            case .skipped: if let input { skipped.append(input) }
            case .retryLater: break
            }
            snapshots += try engine.flush()
        }
    }
}
