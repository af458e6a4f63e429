import Foundation
import WorkerRuntime

/// Runs a stage in memory, the way the worker runtime runs it on Kafka, without a broker:
/// feed inputs, read what would have been produced, dead-lettered or skipped (the idea of
/// Kafka Streams' TopologyTestDriver).
public final class StageTestDriver: @unchecked Sendable {
    private let handler: RecordHandler
    private let offsets = FedOffsets()
    private let lock = NSLock()
    private var produced: [StageOutput] = []
    private var deadLettered: [StageOutput] = []
    private var skipped: [StageInput] = []
    private var retried: [StageInput] = []

    /// - Parameters:
    ///   - outputs: the topics the stage may write, as the worker declares them; nil allows any.
    ///   - maxRecordBytes: the record size limit outputs and dead letters must fit.
    public init(
        stage: any Stage, worker: String = "test-worker", outputs: [String]? = nil, maxAge: Duration? = nil,
        deadLetterSuffix: String = ".dlq", maxRecordBytes: Int = 1_000_000
    ) {
        handler = RecordHandler(
            worker: worker, stage: stage, maxAge: maxAge, deadLetterSuffix: deadLetterSuffix,
            declaredOutputs: outputs.map { Set($0) }, maxRecordBytes: maxRecordBytes
        )
    }

    /// Feeds one record; offsets count up per topic unless the input sets them.
    /// - Parameter nowMilliseconds: the clock for the age check (default: the input's own timestamp, never too old).
    /// - Throws: `UndeclaredOutput` when the stage writes to a topic not in `outputs`, and
    ///   `CancellationError` when cancelled, as the worker would stop.
    @discardableResult
    public func feed(_ input: StageInput, nowMilliseconds: Int64? = nil) async throws -> RecordOutcome {
        let input = offsets.assign(input)
        let outcome = try await handler.handle(input, nowMilliseconds: nowMilliseconds ?? input.timestampMilliseconds ?? 0)
        lock.withLock {
            switch outcome {
            case .processed(let messages): produced += messages
            case .deadLettered(let message, _): deadLettered.append(message)
            case .partlyProcessed(let messages, let message, _):
                produced += messages
                deadLettered.append(message)
            case .skipped: skipped.append(input)
            case .retryLater: retried.append(input)
            }
        }
        return outcome
    }

    public var outputs: [StageOutput] { lock.withLock { produced } }
    public var deadLetters: [StageOutput] { lock.withLock { deadLettered } }
    public var skippedInputs: [StageInput] { lock.withLock { skipped } }
    /// Inputs the stage could not handle for an outage (`StageUnavailable`); the worker retries them.
    public var retriedInputs: [StageInput] { lock.withLock { retried } }

    /// The offset the worker would commit for `partition` of `topic` after the records fed so
    /// far: the next one to read, kept at the oldest record the stage still holds.
    public func committableOffset(topic: String, partition: Int32 = 0) -> Int64 {
        let next = offsets.next(topic: topic)
        guard let held = handler.stage?.oldestHeldOffset(topic: topic, partition: partition) else { return next }
        return min(next, held)
    }

    /// Outputs for one topic, in production order.
    public func outputs(topic: String) -> [StageOutput] {
        outputs.filter { $0.topic == topic }
    }
}

/// Offsets for records fed to a test driver: counting up per topic from 0, unless the input
/// sets its own (a non-zero offset).
final class FedOffsets: @unchecked Sendable {
    private let lock = NSLock()
    private var next: [String: Int64] = [:]

    func assign(_ input: StageInput) -> StageInput {
        guard input.offset == 0 else { return input }
        var input = input
        input.offset = lock.withLock {
            defer { next[input.topic, default: 0] += 1 }
            return next[input.topic, default: 0]
        }
        return input
    }

    /// The offset the next counted record of `topic` gets.
    func next(topic: String) -> Int64 {
        lock.withLock { next[topic, default: 0] }
    }
}
