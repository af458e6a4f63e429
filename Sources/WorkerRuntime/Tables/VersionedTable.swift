/// A table's values per key, versioned by the time each takes effect, so a record is judged
/// by the version in force at its event time: decode masks a frame with the camera
/// configuration of its capture time, the rule engine applies the rule version of the event's
/// time, and a replay gives the same answers while the versions it needs are kept.
///
/// Groundwork for the table readers of "Runtime III" (`cameras.v1`, `rules.v1`): this is the
/// in-memory part, free of Kafka. Writers republish whole sets idempotently (the dev cluster
/// neither compacts nor keeps old records), so applying a version already held changes nothing.
public struct VersionedTable<Value: Sendable & Equatable>: Sendable {
    /// One version of a key: `value` nil is a deletion (a tombstone).
    public struct Version: Sendable, Equatable {
        public var effectiveFromMilliseconds: Int64
        public var value: Value?
    }

    /// What a lookup found.
    public enum Lookup: Sendable, Equatable {
        /// The version in force at the time asked.
        case value(Value)
        /// No version was in force then: the key did not exist yet, or was deleted.
        case absent
        /// The time asked is before the oldest version still kept for this key: the answer is
        /// unknown (older versions were dropped to bound memory, or never read).
        case beforeRetainedHistory(oldestKeptMilliseconds: Int64)
    }

    /// A change of a key's current value, for a table's change callback.
    public struct Change: Sendable, Equatable {
        public var key: String
        public var previous: Value?
        public var current: Value?
    }

    /// Versions kept per key, newest first dropped last.
    public private(set) var maxVersionsPerKey: Int
    /// Per key, ascending by effective time.
    private var versions: [String: [Version]] = [:]
    /// Keys whose history was cut by `maxVersionsPerKey`: before their oldest kept version the
    /// answer is unknown, not "absent".
    private var truncated: Set<String> = []

    public init(maxVersionsPerKey: Int = 16) {
        precondition(maxVersionsPerKey > 0, "a table keeps at least the current version of each key")
        self.maxVersionsPerKey = maxVersionsPerKey
    }

    /// Keeps at most `count` versions per key from now on, dropping the oldest beyond it.
    public mutating func limit(versionsPerKey count: Int) {
        precondition(count > 0, "a table keeps at least the current version of each key")
        maxVersionsPerKey = count
        for (key, history) in versions where history.count > count {
            versions[key] = Array(history.suffix(count))
            truncated.insert(key)
        }
    }

    /// Keys with a current (not deleted) value.
    public var keys: [String] {
        versions.compactMap { key, history in history.last?.value == nil ? nil : key }.sorted()
    }

    /// Keys with any version held, deleted ones included (a lookup at an earlier time may
    /// still find them), sorted.
    public var keysWithHistory: [String] {
        versions.keys.sorted()
    }

    /// Every version held of `key`, oldest first, and whether older ones were dropped.
    public func history(_ key: String) -> (versions: [Version], truncated: Bool) {
        (versions[key] ?? [], truncated.contains(key))
    }

    /// Whether any version of `key` is held (a deleted key keeps its history).
    public func hasHistory(_ key: String) -> Bool {
        versions[key] != nil
    }

    /// The version in force now (nil if the key was never seen; its value is nil if deleted).
    public func currentVersion(_ key: String) -> Version? {
        versions[key]?.last
    }

    /// The newest value held, even if the key was deleted since (nil if none is held): what a
    /// new value replaces.
    public func lastValue(_ key: String) -> Value? {
        versions[key]?.last(where: { $0.value != nil })?.value ?? nil
    }

    /// The value in force now: the version with the latest effective time.
    public func current(_ key: String) -> Value? {
        versions[key]?.last?.value ?? nil
    }

    /// The version in force at `milliseconds` (event time).
    public func value(_ key: String, asOf milliseconds: Int64) -> Lookup {
        guard let history = versions[key], let oldest = history.first else { return .absent }
        guard let inForce = history.last(where: { $0.effectiveFromMilliseconds <= milliseconds }) else {
            return truncated.contains(key) ? .beforeRetainedHistory(oldestKeptMilliseconds: oldest.effectiveFromMilliseconds) : .absent
        }
        return inForce.value.map(Lookup.value) ?? .absent
    }

    /// Records one version. A version with the same effective time replaces the one held
    /// (the newest write wins); one already held unchanged is a no-op. Returns the change of the
    /// key's current value, or nil when the current value stayed the same.
    @discardableResult
    public mutating func apply(key: String, effectiveFromMilliseconds: Int64, value: Value?) -> Change? {
        let previous = current(key)
        var history = versions[key] ?? []
        let version = Version(effectiveFromMilliseconds: effectiveFromMilliseconds, value: value)
        if let index = history.firstIndex(where: { $0.effectiveFromMilliseconds == effectiveFromMilliseconds }) {
            guard history[index] != version else { return nil }
            history[index] = version
        } else {
            // Versions may arrive out of effective-time order (a change scheduled for later,
            // then a correction effective earlier): keep them sorted.
            let index = history.firstIndex { $0.effectiveFromMilliseconds > effectiveFromMilliseconds } ?? history.endIndex
            history.insert(version, at: index)
        }
        if history.count > maxVersionsPerKey {
            history.removeFirst(history.count - maxVersionsPerKey)
            truncated.insert(key)
        }
        versions[key] = history
        let now = current(key)
        return now == previous ? nil : Change(key: key, previous: previous, current: now)
    }
}
