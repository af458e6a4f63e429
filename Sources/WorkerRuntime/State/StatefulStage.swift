import SwiftProtobuf

/// A stage that keeps state per key (camera), held by the runtime: vigil-match's rule state,
/// vigil-alert's open alerts.
///
/// The runtime gives `process` the key's state and timers and keeps what it leaves there:
/// partitioned like the input, written to the worker's changelog after the record's outputs
/// were acknowledged and before its offset is stored, restored on assignment before the
/// partition's first record, and never applied twice for one input record. Records are
/// judged in event time (`vigil-event-time-ms`, else the Kafka timestamp): the key's watermark
/// is its newest event time minus `allowedLateness`; a record older than the watermark is
/// late and dead-lettered with the reason.
///
/// Throwing from `process` works as for `Stage` (`StageUnavailable` retries, anything else
/// dead-letters the record); the state and timers keep what they held before the record.
public protocol StatefulStage: Sendable {
    associatedtype State: StageState

    /// How far behind the key's newest event time a record may arrive and still count.
    var allowedLateness: Duration { get }

    /// Processes one record of `key` at `eventTime` (milliseconds since the epoch).
    func process(_ input: StageInput, key: String, eventTime: Int64, state: inout State?, timers: inout Timers) async throws -> [StageOutput]

    /// A timer of `key` fired: an event-time timer once the key's watermark reached it, a
    /// silence timer once the key had no record for its duration (counted only while the
    /// worker was caught up on the partition). Outputs carry the timer's scheduled time, so
    /// a firing repeated after a crash has the same record ids.
    func timerFired(_ timer: FiredTimer, key: String, state: inout State?, timers: inout Timers) async throws -> [StageOutput]

    /// Output topics whose records are already compressed media (H.264 chunks, JPEG images):
    /// the producer sends them without its zstd, which would cost CPU and save nothing.
    var alreadyCompressedOutputs: Set<String> { get }
}

extension StatefulStage {
    public var alreadyCompressedOutputs: Set<String> { [] }
}

/// A stage's state of one key, in the stage's own encoding (a protobuf message serializes
/// itself; anything deterministic will do). Encoding may throw: the worker then stops, since
/// a snapshot it cannot write would lose the key's state on the next restore.
public protocol StageState: Sendable, Equatable {
    init(stateBytes: [UInt8]) throws
    var stateBytes: [UInt8] { get throws }
}

/// A stage state kept as one protobuf message (vigil-match's and vigil-alert's per-camera
/// state): encoded with deterministic ordering, so the same state always gives the same bytes.
public protocol ProtobufStageState: StageState {
    associatedtype Message: SwiftProtobuf.Message
    var message: Message { get }
    init(message: Message)
}

extension ProtobufStageState {
    public init(stateBytes: [UInt8]) throws {
        self.init(message: try Message(serializedBytes: stateBytes))
    }

    public var stateBytes: [UInt8] {
        get throws {
            var options = BinaryEncodingOptions()
            options.useDeterministicOrdering = true
            return try message.serializedBytes(options: options)
        }
    }
}

/// The timers of one key. Names identify timers: scheduling a name again moves it.
public struct Timers: Sendable, Equatable {
    /// The key's watermark (milliseconds since the epoch): event-time timers at or before it
    /// fire. `Int64.min` before the key's first record.
    public internal(set) var watermark: Int64
    /// Event-time timers: name → the event time they fire at.
    public internal(set) var eventTimers: [String: Int64]
    /// Silence timers: name → milliseconds without a record after which they fire.
    public internal(set) var silenceTimers: [String: Int64]

    public init(watermark: Int64 = .min, eventTimers: [String: Int64] = [:], silenceTimers: [String: Int64] = [:]) {
        self.watermark = watermark
        self.eventTimers = eventTimers
        self.silenceTimers = silenceTimers
    }

    /// Fires once the key's watermark reaches `milliseconds`.
    public mutating func schedule(_ name: String, atEventTime milliseconds: Int64) {
        silenceTimers[name] = nil
        eventTimers[name] = milliseconds
    }

    /// Fires once the key has had no record for `duration`, counted only while the worker is
    /// caught up on the partition: time a replica spent away or catching up never counts.
    public mutating func scheduleSilence(_ name: String, after duration: Duration) {
        eventTimers[name] = nil
        silenceTimers[name] = max(1, duration.milliseconds)
    }

    public mutating func cancel(_ name: String) {
        eventTimers[name] = nil
        silenceTimers[name] = nil
    }
}

/// A timer that fired.
public struct FiredTimer: Sendable, Equatable {
    public enum Kind: String, Sendable {
        case eventTime = "event-time"
        case silence
    }

    public var name: String
    public var kind: Kind
    /// For an event-time timer, the event time it was scheduled at; for a silence timer, the
    /// key's newest event time plus the silence duration. Deterministic either way: the same
    /// inputs give the same firings, whenever they are replayed.
    public var scheduledMilliseconds: Int64
}
