import Foundation
import Kafka
import W3CTraceContext

/// What became of one input record. The same decision is made in memory
/// (`StageTestDriver`) and on Kafka (`StageRunner`).
public enum RecordOutcome: Sendable {
    /// The stage's outputs, headers completed by the runtime.
    case processed([KafkaProducerMessage])
    /// The stage refused the record: this copy goes to `<topic>.dlq`.
    case deadLettered(KafkaProducerMessage, reason: String)
    /// Older than the configured maximum age: load shedding; counted, never produced.
    case skipped(reason: SkipReason)

    public enum SkipReason: String, Sendable {
        case tooOld = "too_old"
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
    public static let originTopic = "vigil-dlq-origin-topic"
    public static let originPartition = "vigil-dlq-origin-partition"
    public static let originOffset = "vigil-dlq-origin-offset"
    public static let error = "vigil-dlq-error"
    public static let worker = "vigil-dlq-worker"
}

/// The runtime's per-record logic, free of Kafka clients and clocks.
struct RecordHandler: Sendable {
    let worker: String
    let stage: any Stage
    /// Records older than this (by record timestamp) are skipped; nil: never.
    let maxAge: Duration?
    let deadLetterSuffix: String

    /// - Parameter now: milliseconds since the epoch, for the age check.
    func handle(_ input: StageInput, nowMilliseconds: Int64) async -> RecordOutcome {
        if let maxAge, let timestamp = input.timestampMilliseconds, nowMilliseconds - timestamp > maxAge.milliseconds {
            return .skipped(reason: .tooOld)
        }
        let trace = Self.childTrace(of: input)
        let started = ContinuousClock.now
        do {
            let outputs = try await stage.process(input)
            let elapsed = ContinuousClock.now - started
            let timing = Self.appendTiming(input.header(RecordHeaders.stageTiming), worker: worker, elapsed: elapsed)
            let messages = outputs.enumerated().map { index, output in
                var headers = output.headers.filter { ![RecordHeaders.traceParent, RecordHeaders.stageTiming, RecordHeaders.recordID].contains($0.key) }
                headers.append(KafkaHeader(key: RecordHeaders.traceParent, value: trace.traceParentHeaderValue))
                if let state = trace.traceStateHeaderValue { headers.append(KafkaHeader(key: RecordHeaders.traceState, value: state)) }
                headers.append(KafkaHeader(key: RecordHeaders.stageTiming, value: timing))
                headers.append(KafkaHeader(key: RecordHeaders.recordID, value: "\(input.topic)/\(input.partition)/\(input.offset)/\(index)"))
                return KafkaProducerMessage(topic: output.topic, key: output.key, value: output.value, headers: headers)
            }
            return .processed(messages)
        } catch {
            return deadLetter(input, reason: Self.safeReason(error))
        }
    }

    /// The input, unchanged, addressed to its dead-letter topic with where it came from and why it failed.
    func deadLetter(_ input: StageInput, reason: String) -> RecordOutcome {
        let headers = input.headers + [
            KafkaHeader(key: RecordHeaders.originTopic, value: input.topic),
            KafkaHeader(key: RecordHeaders.originPartition, value: String(input.partition)),
            KafkaHeader(key: RecordHeaders.originOffset, value: String(input.offset)),
            KafkaHeader(key: RecordHeaders.error, value: reason),
            KafkaHeader(key: RecordHeaders.worker, value: worker),
        ]
        return .deadLettered(
            KafkaProducerMessage(topic: input.topic + deadLetterSuffix, key: input.key, value: input.value, headers: headers),
            reason: reason
        )
    }

    /// The input's trace continued with a new span for this stage, or a new trace when the
    /// input carried none (or an unreadable one).
    static func childTrace(of input: StageInput) -> TraceContext {
        if let parent = input.header(RecordHeaders.traceParent).map({ String(decoding: $0, as: UTF8.self) }),
           let context = try? TraceContext(
               traceParentHeaderValue: parent,
               traceStateHeaderValue: input.header(RecordHeaders.traceState).map { String(decoding: $0, as: UTF8.self) }
           ) {
            return TraceContext(traceID: context.traceID, spanID: .random(), flags: context.flags, state: context.state)
        }
        return TraceContext(traceID: .random(), spanID: .random(), flags: .sampled, state: TraceState())
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
    var milliseconds: Int64 {
        components.seconds * 1_000 + components.attoseconds / 1_000_000_000_000_000
    }
}
