import Foundation
import Kafka
import Logging
import Metrics

/// Headers every table record carries.
public enum TableHeaders {
    /// Milliseconds since the epoch from which the record's value (or deletion) is in force,
    /// as decimal text. A record without it takes effect at its Kafka timestamp.
    public static let effectiveTime = "vigil-effective-time-ms"
}

/// One record of a table topic, as the runtime hands it to a table: the same fields as a
/// stage's input. An empty value is a tombstone (a deletion); a table's values are never
/// empty, as every vigil table message carries at least its own id.
public typealias TableRecord = StageInput

/// What a table did with one record.
public enum TableApplyOutcome: Sendable, Equatable {
    /// The key's current value changed (change callbacks ran).
    case changed
    /// A version was recorded, or one already held was seen again: the current value stayed.
    case unchanged
    /// A deletion of a key the table never held: nothing to delete.
    case ignoredTombstone
    /// Not applied; the key keeps its previous versions. The reason names the record and
    /// what is wrong, never its content.
    case rejected(String)
    /// Readable but refused by the table's admission policy (a camera change without the
    /// approvals it needs); the key keeps its previous versions.
    case refused(TableRefusal)

    var metricLabel: String {
        switch self {
        case .changed: "changed"
        case .unchanged: "unchanged"
        case .ignoredTombstone: "ignored_tombstone"
        case .rejected: "rejected"
        case .refused: "refused"
        }
    }
}

/// Why a table's admission policy refused a record it could read.
public struct TableRefusal: Sendable, Equatable {
    /// For the operator: what the record lacks and what to do; never the record's content.
    public var reason: String
    /// Records announcing the refusal beyond the log and the metric (an audit event, a camera
    /// health record), made for the refusing worker; the runtime sends them.
    public var notices: @Sendable (_ worker: String) -> [StageOutput]

    public init(reason: String, notices: @escaping @Sendable (_ worker: String) -> [StageOutput] = { _ in [] }) {
        self.reason = reason
        self.notices = notices
    }

    public static func == (lhs: TableRefusal, rhs: TableRefusal) -> Bool { lhs.reason == rhs.reason }
}

/// A table as the runtime drives it: whatever its value type.
public protocol WorkerTable: AnyObject, Sendable {
    /// The table topic it reads.
    var topic: String { get }
    /// Applies one record read from the topic (on the reader's thread, in offset order per partition).
    func apply(_ record: TableRecord) -> TableApplyOutcome
    /// Keeps at most `count` versions per key (the worker's `worker.table-versions`).
    func limit(versionsPerKey count: Int)
}

/// A table every replica of a worker reads whole (`rules.v1`, `cameras.v1`): typed lookup of
/// the current value and of the version in force at an event time, and a change callback.
///
/// Create it in the worker's `main`, give it to the stage that looks things up in it and to
/// `Worker.run(stage:tables:…)`, which reads the topic and keeps the worker unready until the
/// table holds everything written before the worker started.
public final class Table<Value: Sendable & Equatable>: WorkerTable, @unchecked Sendable {
    public typealias Change = VersionedTable<Value>.Change
    public typealias Lookup = VersionedTable<Value>.Lookup
    /// Decides whether a readable record may change the table: `value` is the record's, `last`
    /// the key's last value held; `readWholePartition` says whether this reader read every
    /// record of the record's partition before it, from offset 0 with no gap (false when the
    /// cluster dropped or compacted earlier ones: what the reader does not know may have been
    /// there). nil admits it.
    public typealias Admission = @Sendable (
        _ key: String, _ value: Value, _ last: Value?, _ record: TableRecord, _ readWholePartition: Bool
    ) -> TableRefusal?

    /// A table whose deletions are values like any other, so admission judges them (a camera
    /// removed only by an admin's signed deletion): empty-value tombstones are refused.
    public struct SignedDeletions: Sendable {
        /// Whether an admitted value deletes its key.
        public var isDeletion: @Sendable (Value) -> Bool
        /// Why an empty-value tombstone of `key` is refused.
        public var refuseTombstone: @Sendable (_ key: String, _ record: TableRecord) -> TableRefusal

        public init(isDeletion: @escaping @Sendable (Value) -> Bool, refuseTombstone: @escaping @Sendable (String, TableRecord) -> TableRefusal) {
            self.isDeletion = isDeletion
            self.refuseTombstone = refuseTombstone
        }
    }

    public let topic: String
    private let decode: @Sendable (_ key: String, _ value: [UInt8]) throws -> Value
    private let admit: Admission?
    private let signedDeletions: SignedDeletions?
    private let lock = NSLock()
    private var versions: VersionedTable<Value>  // guarded by `lock`
    private var observers: [@Sendable (Change) -> Void] = []  // guarded by `lock`
    /// Per partition, the offset after the last record read, and the partitions where a record
    /// was missing (the first read was not offset 0, or offsets jumped); guarded by `lock`.
    private var nextOffsets: [Int32: Int64] = [:]
    private var partitionsWithGaps: Set<Int32> = []

    /// - Parameters:
    ///   - maxVersionsPerKey: versions kept per key for lookups by event time; a lookup before
    ///     the oldest kept one answers `.beforeRetainedHistory`. A worker sets it from its
    ///     configuration (`worker.table-versions`) when it starts reading.
    ///   - decode: parses a record's value for its key; throw to reject a record (a malformed
    ///     value, or one whose own id disagrees with its key).
    ///   - admit: the table's admission policy, asked for every value (not for tombstones)
    ///     with the key's last value held, deleted ones included (nil: none known); a refusal
    ///     keeps the key's previous versions.
    ///   - signedDeletions: set when deletions must pass admission too (see `SignedDeletions`).
    public init(
        topic: String, maxVersionsPerKey: Int = 16, decode: @escaping @Sendable (_ key: String, _ value: [UInt8]) throws -> Value,
        admit: Admission? = nil, signedDeletions: SignedDeletions? = nil
    ) {
        self.topic = topic
        self.decode = decode
        self.admit = admit
        self.signedDeletions = signedDeletions
        versions = VersionedTable(maxVersionsPerKey: maxVersionsPerKey)
    }

    /// The value in force now, nil if the key is unknown or deleted.
    public func current(_ key: String) -> Value? {
        lock.withLock { versions.current(key) }
    }

    /// The current version with the time it took effect (nil if the key was never seen).
    public func currentVersion(_ key: String) -> VersionedTable<Value>.Version? {
        lock.withLock { versions.currentVersion(key) }
    }

    /// The newest value held, even if the key was deleted since: what a new value replaces.
    public func lastValue(_ key: String) -> Value? {
        lock.withLock { versions.lastValue(key) }
    }

    /// The version in force at `milliseconds` (an event time).
    public func value(_ key: String, asOf milliseconds: Int64) -> Lookup {
        lock.withLock { versions.value(key, asOf: milliseconds) }
    }

    /// Keys with a current value, sorted.
    public var keys: [String] {
        lock.withLock { versions.keys }
    }

    /// Every version held of each key, oldest first, and whether older ones were dropped: for
    /// readers that keep their own copy for lookups (rebuilt from `onChange`).
    public var histories: [String: (versions: [VersionedTable<Value>.Version], truncated: Bool)] {
        lock.withLock { Dictionary(uniqueKeysWithValues: versions.keysWithHistory.map { ($0, versions.history($0)) }) }
    }

    /// Keys with any version held, deleted ones included, sorted: for lookups by time.
    public var keysWithHistory: [String] {
        lock.withLock { versions.keysWithHistory }
    }

    public func limit(versionsPerKey count: Int) {
        lock.withLock { versions.limit(versionsPerKey: count) }
    }

    /// Calls `observer` after each change of a key's current value, on the table reader's
    /// thread: keep it short, and hand longer work to a task of your own.
    public func onChange(_ observer: @escaping @Sendable (Change) -> Void) {
        lock.withLock { observers.append(observer) }
    }

    public func apply(_ record: TableRecord) -> TableApplyOutcome {
        let readWholePartition = lock.withLock { noteOffset(of: record) }
        let place = "\(record.topic)[\(record.partition)] offset \(record.offset)"
        guard let keyBytes = record.key, !keyBytes.isEmpty, let key = String(validating: keyBytes, as: UTF8.self) else {
            return .rejected("\(place) has no key (or one that is not UTF-8): a table record is keyed by the id it configures")
        }
        guard let effective = TableRecords.effectiveMilliseconds(of: record) else {
            return .rejected("\(place) (key \(key)) has neither a \(TableHeaders.effectiveTime) header nor a Kafka timestamp: no time to take effect from")
        }
        let value: Value?
        if record.value.isEmpty {
            value = nil
        } else {
            do {
                value = try decode(key, record.value)
            } catch {
                return .rejected("\(place) (key \(key)) cannot be read: \(error)")
            }
        }
        let (outcome, change, observers): (TableApplyOutcome, Change?, [@Sendable (Change) -> Void]) = lock.withLock {
            if value == nil, let signedDeletions {
                return (.refused(signedDeletions.refuseTombstone(key, record)), nil, [])
            }
            if value == nil, !versions.hasHistory(key) {
                return (.ignoredTombstone, nil, [])
            }
            // Judged against the last value held under the same lock that applies it: records
            // of a key come in offset order, so each is judged against the one before it.
            if let value, let admit, let refusal = admit(key, value, versions.lastValue(key), record, readWholePartition) {
                return (.refused(refusal), nil, [])
            }
            let stored = value.flatMap { signedDeletions?.isDeletion($0) == true ? nil : $0 }
            let change = versions.apply(key: key, effectiveFromMilliseconds: effective, value: stored)
            return (change == nil ? .unchanged : .changed, change, self.observers)
        }
        if let change { observers.forEach { $0(change) } }
        return outcome
    }

    /// Notes `record`'s offset; whether every record of its partition before it was read.
    /// Under `lock`. An offset read again (a reader starting over) is no gap.
    private func noteOffset(of record: TableRecord) -> Bool {
        let expected = nextOffsets[record.partition] ?? 0
        if record.offset > expected { partitionsWithGaps.insert(record.partition) }
        nextOffsets[record.partition] = max(expected, record.offset + 1)
        return !partitionsWithGaps.contains(record.partition)
    }

}

extension Table {
    /// Reads `topic` once, to the high watermark it has now: for tools (`vigil cameras
    /// list|apply`) that need the current values, not a live view.
    public func load(cluster: KafkaConfiguration, logger: Logger) async throws {
        let applier = TableApplier(tables: [self], worker: cluster.clientID, logger: logger)
        for message in try await KafkaTableReader.readPartitions(cluster: cluster, topic: topic, partitions: nil, logger: logger) {
            applier.apply(TableRecord(message))
        }
    }
}

/// Applies table records read from Kafka to the worker's tables, with a log line and a
/// metric for every record it cannot apply.
struct TableApplier: Sendable {
    let tables: [String: any WorkerTable]
    let worker: String
    let logger: Logger
    /// Sends the records that announce a refusal (the worker's producer).
    let announce: @Sendable ([StageOutput]) -> Void

    init(tables: [any WorkerTable], worker: String, logger: Logger, announce: @escaping @Sendable ([StageOutput]) -> Void = { _ in }) {
        self.tables = Dictionary(tables.map { ($0.topic, $0) }, uniquingKeysWith: { first, _ in first })
        self.worker = worker
        self.logger = logger
        self.announce = announce
    }

    func apply(_ record: TableRecord) {
        guard let table = tables[record.topic] else { return }
        Self.report(table.apply(record), of: record, worker: worker, logger: logger, announce: announce)
    }

    /// Counts what became of a table record, logs the records a table could not apply, and
    /// announces refusals.
    static func report(
        _ outcome: TableApplyOutcome, of record: TableRecord, worker: String, logger: Logger, announce: @Sendable ([StageOutput]) -> Void = { _ in }
    ) {
        Counter(label: "vigil_table_records_total", dimensions: [("worker", worker), ("table", record.topic), ("outcome", outcome.metricLabel)]).increment()
        switch outcome {
        case .rejected(let reason):
            // Every replica reads the same record, so none dead-letters it (that would make one
            // copy per replica); the writer (`vigil cameras apply`, `vigil rules apply`) validates
            // before publishing, and republishing a corrected set fixes it.
            logger.error("table record rejected; the key keeps its previous value", metadata: ["table": "\(record.topic)", "reason": "\(reason)"])
        case .refused(let refusal):
            // Every replica refuses it and says so: the notices' ids name the worker and the
            // record, so consumers can count each refusal once per worker.
            logger.error("table record refused; the key keeps its previous value", metadata: [
                "table": "\(record.topic)", "partition": "\(record.partition)", "offset": "\(record.offset)", "reason": "\(refusal.reason)",
            ])
            announce(refusal.notices(worker))
        case .ignoredTombstone:
            logger.info("table tombstone for a key never seen; nothing to delete", metadata: [
                "table": "\(record.topic)", "partition": "\(record.partition)", "offset": "\(record.offset)",
            ])
        case .changed, .unchanged:
            break
        }
    }
}
