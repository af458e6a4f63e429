import Foundation
import Kafka
import Synchronization
import W3CTraceContext

/// What became of one input record. The same decision is made in memory
/// (`StageTestDriver`) and on Kafka (`StageRunner`).
public enum RecordOutcome: Sendable {
    /// The stage's outputs, headers completed by the runtime.
    case processed([StageOutput])
    /// The stage refused the record: this copy goes to `<topic>.dlq`.
    case deadLettered(StageOutput, reason: String)
    /// The stage produced `outputs` before finding the rest of the record bad
    /// (`PartiallyProcessed`): the outputs are produced and the copy goes to `<topic>.dlq`.
    case partlyProcessed([StageOutput], deadLetter: StageOutput, reason: String)
    /// Older than the configured maximum age: load shedding; counted, never produced.
    case skipped(reason: SkipReason)
    /// The stage cannot work now (`StageUnavailable`): try the same record again later.
    case retryLater(reason: String)

    public enum SkipReason: String, Sendable {
        case tooOld = "too_old"
        /// Redelivered to a stateful stage whose state already reflects it.
        case alreadyApplied = "already_applied"
        /// Its partition was revoked before a stateful stage took it: the state went with the
        /// partition, and the next owner processes the record.
        case partitionRevoked = "partition_revoked"
    }
}

/// A stage wrote to a topic the worker did not declare: a defect of the stage or of the
/// worker's configuration, never of the record, so the worker stops instead of dead-lettering.
public struct UndeclaredOutput: Error, CustomStringConvertible {
    public var topic: String
    public var declared: [String]

    public var description: String {
        "the stage produced to topic \"\(topic)\", which this worker does not declare as an output (declared: \(declared.joined(separator: ", "))); "
            + "add it to the worker's outputs in Topology/topology.yaml (worker.outputs) or fix the stage"
    }
}

/// Header names the runtime writes.
public enum RecordHeaders {
    public static let traceParent = "traceparent"
    public static let traceState = "tracestate"
    /// `worker:microseconds` for every stage the record passed, comma-separated, oldest first.
    public static let stageTiming = "vigil-stage-timing"
    /// `topic/partition/offset/index` of the input that caused this output: the same input
    /// always yields the same id, so consumers can drop redelivered duplicates.
    public static let recordID = "vigil-record-id"
    /// The capture time of the frame a record derives from, milliseconds since the epoch as
    /// decimal text: stamped at ingest, copied to every output by the runtime.
    public static let eventTime = "vigil-event-time-ms"
    public static let originTopic = "vigil-dlq-origin-topic"
    public static let originPartition = "vigil-dlq-origin-partition"
    public static let originOffset = "vigil-dlq-origin-offset"
    public static let error = "vigil-dlq-error"
    public static let worker = "vigil-dlq-worker"
    /// On a dead-lettered timer firing (no input record): its kind and name.
    public static let timer = "vigil-dlq-timer"
    /// On a dead letter whose value was cut to fit the record size limit: the original size in bytes.
    public static let truncatedFrom = "vigil-dlq-value-truncated-from"
    /// On a dead letter that had to leave the input's own headers out to fit: how many there were.
    public static let headersDropped = "vigil-dlq-headers-dropped"
    /// On a dead letter whose stage left the pixels out (`Stage.deadLetterValue`): the input
    /// value's size in bytes.
    public static let pixelsRemovedFrom = "vigil-dlq-pixels-removed-from"
}

/// Thrown by a stage that produced some outputs before finding the rest of the record bad (a
/// video chunk corrupt halfway through): the runtime produces `outputs` and dead-letters the
/// record with `reason`, so what could be used is not lost and what could not is kept.
public struct PartiallyProcessed: Error, CustomStringConvertible {
    public var outputs: [StageOutput]
    public var reason: String

    public init(outputs: [StageOutput], reason: String) {
        self.outputs = outputs
        self.reason = reason
    }

    public var description: String { reason }
}

/// An output over the producer's record size limit.
struct OversizedOutput: Error, CustomStringConvertible {
    var index: Int
    var topic: String
    var bytes: Int
    var limit: Int

    var description: String { "output \(index) for topic \(topic) is \(bytes) bytes, over the \(limit)-byte record limit" }
}

extension StageInput {
    /// The capture time from the `vigil-event-time-ms` header, if the record carries one.
    public var eventTimeMilliseconds: Int64? {
        header(RecordHeaders.eventTime).flatMap { Int64(String(decoding: $0, as: UTF8.self)) }
    }
}

/// The runtime's per-record logic, free of Kafka clients and clocks. `package`: the test drivers
/// (WorkerRuntimeTesting) run it in memory.
package struct RecordHandler: Sendable {
    let worker: String
    /// The stateless stage; nil for a stateful one, which the state engine runs through
    /// `handle(_:nowMilliseconds:process:)`.
    package let stage: (any Stage)?
    /// Records older than this (by record timestamp) are skipped; nil: never.
    let maxAge: Duration?
    let deadLetterSuffix: String
    /// The topics the stage may write; nil allows any (in-memory tests that do not care).
    let declaredOutputs: Set<String>?
    /// The largest record the producer accepts (key, value and headers).
    let maxRecordBytes: Int
    private let spanIDs = SpanIDGenerator()

    package init(
        worker: String, stage: (any Stage)?, maxAge: Duration?, deadLetterSuffix: String,
        declaredOutputs: Set<String>?, maxRecordBytes: Int = 1_000_000
    ) {
        self.worker = worker
        self.stage = stage
        self.maxAge = maxAge
        self.deadLetterSuffix = deadLetterSuffix
        self.declaredOutputs = declaredOutputs
        self.maxRecordBytes = maxRecordBytes
    }

    /// Runs the stage on one record and decides what becomes of it.
    /// - Parameter now: milliseconds since the epoch, for the age check.
    /// - Throws: `CancellationError` when the worker is stopping (the record stays
    ///   unprocessed), `UndeclaredOutput` when the stage wrote where it may not.
    package func handle(_ input: StageInput, nowMilliseconds: Int64) async throws -> RecordOutcome {
        guard let stage else { preconditionFailure("a stateful stage runs through its state engine") }
        return try await handle(input, nowMilliseconds: nowMilliseconds) { input in
            guard let executor = stage.executor else { return try await stage.process(input) }
            return try await withTaskExecutorPreference(executor) { try await stage.process(input) }
        }
    }

    /// `handle(_:nowMilliseconds:)` with `process` in the stage's place: a stateful stage runs
    /// with its key's state this way, and gets the same age check, dead-lettering and headers.
    func handle(
        _ input: StageInput, nowMilliseconds: Int64, process: (StageInput) async throws -> [StageOutput]
    ) async throws -> RecordOutcome {
        // Load shedding judges the capture time where the record carries it, else the Kafka timestamp.
        if let maxAge, let timestamp = input.eventTimeMilliseconds ?? input.timestampMilliseconds, nowMilliseconds - timestamp > maxAge.milliseconds {
            return .skipped(reason: .tooOld)
        }
        let started = ContinuousClock.now
        let outputs: [StageOutput]
        var damage: String?
        do {
            outputs = try await process(input)
        } catch let partial as PartiallyProcessed {
            outputs = partial.outputs
            damage = Self.safeReason(partial)
        } catch let error as StageUnavailable {
            return .retryLater(reason: Self.safeReason(error))
        } catch {
            // A stage interrupted by shutdown has not judged the record: never dead-letter it.
            if error is CancellationError || Task.isCancelled { throw CancellationError() }
            return deadLetter(input, reason: Self.safeReason(error))
        }
        let messages = try complete(
            outputs, trace: childTrace(of: input), previousTiming: input.header(RecordHeaders.stageTiming), elapsed: ContinuousClock.now - started,
            recordIDPrefix: "\(input.topic)/\(input.partition)/\(input.offset)/", eventTime: input.header(RecordHeaders.eventTime)
        )
        switch messages {
        case .success(let messages):
            guard let damage else { return .processed(messages) }
            return .partlyProcessed(messages, deadLetter: deadLetterCopy(input, reason: damage), reason: damage)
        case .failure(let oversized): return deadLetter(input, reason: oversized.description)
        }
    }

    /// A stage's outputs with the runtime's headers: trace, stage timing, the record id
    /// (`recordIDPrefix` + index) and the event time (the stage's own, else `eventTime`).
    /// Checked before anything is produced: a record's outputs go out whole or not at all.
    func complete(
        _ outputs: [StageOutput], trace: TraceContext, previousTiming: [UInt8]?, elapsed: Duration, recordIDPrefix: String, eventTime: [UInt8]?
    ) throws -> Result<[StageOutput], OversizedOutput> {
        if let declaredOutputs, let undeclared = outputs.first(where: { !declaredOutputs.contains($0.topic) }) {
            throw UndeclaredOutput(topic: undeclared.topic, declared: declaredOutputs.sorted())
        }
        let traceParent = RecordHeader(key: RecordHeaders.traceParent, value: trace.traceParentHeaderValue)
        let traceState = trace.traceStateHeaderValue.map { RecordHeader(key: RecordHeaders.traceState, value: $0) }
        let timing = RecordHeader(key: RecordHeaders.stageTiming, value: Self.appendTiming(previousTiming, worker: worker, elapsed: elapsed))
        var messages: [StageOutput] = []
        messages.reserveCapacity(outputs.count)
        for (index, output) in outputs.enumerated() {
            var headers = output.headers.filter { !Self.runtimeHeaders.contains($0.key) }
            headers.append(traceParent)
            if let traceState { headers.append(traceState) }
            headers.append(timing)
            headers.append(RecordHeader(key: RecordHeaders.recordID, value: recordIDPrefix + String(index)))
            // Event time travels with everything derived from a frame, unless the stage set its own.
            if let eventTime, !headers.contains(where: { $0.key == RecordHeaders.eventTime }) {
                headers.append(RecordHeader(key: RecordHeaders.eventTime, value: eventTime))
            }
            let message = StageOutput(topic: output.topic, partition: output.partition, key: output.key, value: output.value, headers: headers)
            let size = Self.byteCount(key: message.key, value: message.value, headers: message.headers)
            guard size <= maxRecordBytes else {
                return .failure(OversizedOutput(index: index, topic: output.topic, bytes: size, limit: maxRecordBytes))
            }
            messages.append(message)
        }
        return .success(messages)
    }

    /// Headers the runtime sets on every output, replacing any the stage copied from its input.
    private static let runtimeHeaders: Set<String> = [RecordHeaders.traceParent, RecordHeaders.traceState, RecordHeaders.stageTiming, RecordHeaders.recordID]

    /// The input refused: its copy goes to the dead-letter topic.
    func deadLetter(_ input: StageInput, reason: String) -> RecordOutcome {
        .deadLettered(deadLetterCopy(input, reason: reason), reason: reason)
    }

    /// The input, addressed to its dead-letter topic with where it came from and why it failed.
    /// A copy that would exceed the record limit keeps its key and origin but loses the
    /// value's tail (and, if still too large, the input's own headers), saying so in headers.
    func deadLetterCopy(_ input: StageInput, reason: String) -> StageOutput {
        var origin: [RecordHeader] = [
            RecordHeader(key: RecordHeaders.originTopic, value: input.topic),
            RecordHeader(key: RecordHeaders.originPartition, value: String(input.partition)),
            RecordHeader(key: RecordHeaders.originOffset, value: String(input.offset)),
            RecordHeader(key: RecordHeaders.error, value: reason),
            RecordHeader(key: RecordHeaders.worker, value: worker),
        ]
        var input = input
        if let kept = stage?.deadLetterValue(of: input), kept != input.value {
            origin.append(RecordHeader(key: RecordHeaders.pixelsRemovedFrom, value: String(input.value.count)))
            input.value = kept
        }
        let topic = input.topic + deadLetterSuffix
        var copy = StageOutput(topic: topic, key: input.key, value: input.value, headers: input.headers + origin)
        if Self.byteCount(key: copy.key, value: copy.value, headers: copy.headers) > maxRecordBytes {
            var headers = input.headers + origin + [RecordHeader(key: RecordHeaders.truncatedFrom, value: String(input.value.count))]
            var fixed = Self.byteCount(key: input.key, value: [], headers: headers)
            if fixed > maxRecordBytes {
                headers = origin + [
                    RecordHeader(key: RecordHeaders.truncatedFrom, value: String(input.value.count)),
                    RecordHeader(key: RecordHeaders.headersDropped, value: String(input.headers.count)),
                ]
                fixed = Self.byteCount(key: input.key, value: [], headers: headers)
            }
            copy = StageOutput(topic: topic, key: input.key, value: Array(input.value.prefix(max(0, maxRecordBytes - fixed))), headers: headers)
        }
        return copy
    }

    /// What a record counts for against the producer's size limit (key, value, headers with
    /// their framing), as the Kafka layer counts it.
    static func byteCount(key: [UInt8]?, value: [UInt8], headers: [RecordHeader]) -> Int {
        KafkaRecordSize.bytes(key: key, value: value, headers: headers) { ($0.key, $0.value) }
    }

    /// The input's trace continued with a new span for this stage, or a new trace when the
    /// input carried none (or an unreadable one).
    func childTrace(of input: StageInput) -> TraceContext {
        var generator = spanIDs
        if let parent = input.header(RecordHeaders.traceParent).map({ String(decoding: $0, as: UTF8.self) }),
           let context = try? TraceContext(
               traceParentHeaderValue: parent,
               traceStateHeaderValue: input.header(RecordHeaders.traceState).map { String(decoding: $0, as: UTF8.self) }
           ) {
            return TraceContext(traceID: context.traceID, spanID: .random(using: &generator), flags: context.flags, state: context.state)
        }
        return spanIDs.newTrace()
    }

    /// A trace of its own, for outputs no input caused (a timer's).
    func newTrace() -> TraceContext {
        spanIDs.newTrace()
    }

    static func appendTiming(_ previous: [UInt8]?, worker: String, elapsed: Duration) -> String {
        let microseconds = elapsed.components.seconds * 1_000_000 + elapsed.components.attoseconds / 1_000_000_000_000
        let entry = "\(worker):\(microseconds)"
        guard let previous, !previous.isEmpty else { return entry }
        return String(decoding: previous, as: UTF8.self) + "," + entry
    }

    /// An error's text for headers and logs: one line, bounded, no payload.
    static func safeReason(_ error: any Error) -> String {
        let text = String(describing: error).replacingOccurrences(of: "\n", with: " ")
        return text.count > 512 ? String(text.prefix(512)) + "…" : text
    }
}

extension Duration {
    /// Whole milliseconds (truncated), as event times and timers count.
    public var milliseconds: Int64 {
        components.seconds * 1_000 + components.attoseconds / 1_000_000_000_000_000
    }
}

/// Span and trace ids, unique per worker process without a system call per record: SplitMix64
/// over a counter seeded once from the system's generator. Ids need to be unique, not secret.
struct SpanIDGenerator: RandomNumberGenerator, Sendable {
    private let state: Atomic64 = {
        var system = SystemRandomNumberGenerator()
        return Atomic64(system.next())
    }()

    /// A new trace, for a record nothing traced before (a source's, a timer's, or an input
    /// without a readable `traceparent`).
    func newTrace() -> TraceContext {
        var generator = self
        return TraceContext(traceID: .random(using: &generator), spanID: .random(using: &generator), flags: .sampled, state: TraceState())
    }

    mutating func next() -> UInt64 {
        var z = state.add(0x9E37_79B9_7F4A_7C15)
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A shared 64-bit counter.
final class Atomic64: Sendable {
    private let value: Atomic<UInt64>

    init(_ initial: UInt64) {
        value = Atomic(initial)
    }

    /// Adds `delta` (wrapping) and returns the new value.
    func add(_ delta: UInt64) -> UInt64 {
        value.wrappingAdd(delta, ordering: .relaxed).newValue
    }
}
