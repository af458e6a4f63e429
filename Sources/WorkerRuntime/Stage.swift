/// A record header as stages see it. The runtime's own type: a stage needs no Kafka import.
public struct RecordHeader: Sendable, Hashable {
    public var key: String
    /// Bytes; nil is a header with no value.
    public var value: [UInt8]?

    public init(key: String, value: [UInt8]?) {
        self.key = key
        self.value = value
    }

    public init(key: String, value: String) {
        self.init(key: key, value: Array(value.utf8))
    }
}

/// One input record, as a stage sees it.
public struct StageInput: Sendable {
    public var topic: String
    public var partition: Int32
    public var offset: Int64
    /// The camera id on every vigil topic.
    public var key: [UInt8]?
    public var value: [UInt8]
    public var headers: [RecordHeader]
    public var timestampMilliseconds: Int64?

    public init(
        topic: String, partition: Int32 = 0, offset: Int64 = 0, key: [UInt8]?, value: [UInt8],
        headers: [RecordHeader] = [], timestampMilliseconds: Int64? = nil
    ) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.key = key
        self.value = value
        self.headers = headers
        self.timestampMilliseconds = timestampMilliseconds
    }

    public func header(_ key: String) -> [UInt8]? {
        headers.first { $0.key == key }?.value ?? nil
    }
}

/// One record a stage wants produced. Keep the input's key (camera id) unless the output
/// topic is keyed otherwise, so per-camera order holds downstream. The runtime produces the
/// same shape with its headers added, and writes dead letters and changelog records in it.
public struct StageOutput: Sendable {
    public var topic: String
    /// Set only where the partition is given by something other than the key (a state
    /// changelog: partition i holds the state of input partition i); nil lets the key decide.
    public var partition: Int32?
    public var key: [UInt8]?
    public var value: [UInt8]
    /// The stage's own headers (`content-type`, schema version…); the runtime adds
    /// `traceparent`, stage timing and the record id.
    public var headers: [RecordHeader]

    public init(topic: String, partition: Int32? = nil, key: [UInt8]?, value: [UInt8], headers: [RecordHeader] = []) {
        self.topic = topic
        self.partition = partition
        self.key = key
        self.value = value
        self.headers = headers
    }

    /// The first header with this key, if any.
    public func header(_ key: String) -> [UInt8]? {
        headers.first { $0.key == key }?.value ?? nil
    }
}

/// A worker's logic: turns one input record into zero or more output records.
///
/// Stages are pure-ish: no Kafka, no clocks they do not get from the input, state only
/// where the stage declares it, so `StageTestDriver` can test them in memory.
///
/// What a stage throws decides what happens to the input:
/// - `StageUnavailable`: the stage cannot work now (a model failed to load, an endpoint is
///   down). The runtime retries the same record with backoff and, if the outage lasts,
///   stops the worker without storing the record's offset. Nothing is dead-lettered.
/// - `CancellationError` (the worker is shutting down): the record is left unprocessed and
///   its offset unstored; the next owner of the partition processes it.
/// - anything else: the record itself is bad (malformed, breaks a rule). It goes to
///   `<topic>.dlq` with its origin and the error, and the worker moves on.
public protocol Stage: Sendable {
    func process(_ input: StageInput) async throws -> [StageOutput]

    /// Output topics whose records are already compressed media (H.264 chunks, JPEG images):
    /// the producer sends them without its zstd, which would cost CPU and save nothing.
    var alreadyCompressedOutputs: Set<String> { get }

    /// What the dead-letter copy of `input` keeps as its value. By default the whole record; a
    /// stage whose inputs carry identifiable pixels keeps only what is not (metadata), or
    /// nothing when the record cannot be read: a DLQ is never a third place with raw pixels.
    func deadLetterValue(of input: StageInput) -> [UInt8]

    /// The oldest offset of `partition` whose outputs the stage still owes (a frame it keeps in
    /// memory until later records complete it). The runtime stores no offset at or past it, so
    /// after a crash or a rebalance that record is read again: what the stage held is lost,
    /// never its outputs. Asked after each record; nil (the default): nothing held.
    func oldestHeldOffset(topic: String, partition: Int32) -> Int64?

    /// Where `process` runs: nil (the default) on Swift's cooperative threads, fine for work
    /// that awaits; a `StageThread` for heavy synchronous work (decode, inference), which would
    /// otherwise hold a cooperative thread the runtime's own tasks need.
    var executor: (any TaskExecutor)? { get }
}

extension Stage {
    public var alreadyCompressedOutputs: Set<String> { [] }
    public var executor: (any TaskExecutor)? { nil }
    public func deadLetterValue(of input: StageInput) -> [UInt8] { input.value }
    public func oldestHeldOffset(topic: String, partition: Int32) -> Int64? { nil }
}

/// Thrown by a stage that cannot work right now for reasons outside the record: the record
/// is retried, never dead-lettered. `reason` is logged; keep secrets and payloads out of it.
public struct StageUnavailable: Error, CustomStringConvertible {
    public var reason: String

    public init(_ reason: String) {
        self.reason = reason
    }

    public var description: String { "stage unavailable: \(reason)" }
}
