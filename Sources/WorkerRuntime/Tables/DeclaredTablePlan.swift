import Foundation

/// A value of a table as it was stored: the value and when it took effect.
public struct StoredTableValue<Value: Sendable & Equatable>: Sendable, Equatable {
    public var value: Value
    public var effectiveMilliseconds: Int64

    public init(value: Value, effectiveMilliseconds: Int64) {
        self.value = value
        self.effectiveMilliseconds = effectiveMilliseconds
    }
}

/// How one kind of declared table value (a camera, a rule) is named, versioned and compared:
/// what `DeclaredTablePlan` needs to know of it.
public struct DeclaredValueKind<Value: Sendable & Equatable>: Sendable {
    /// "camera", "rule".
    public var noun: String
    public var id: @Sendable (Value) -> String
    public var version: @Sendable (Value) -> UInt64
    /// Sets the bookkeeping of a new version: its number, author and time (ms since the epoch).
    public var stamp: @Sendable (_ value: inout Value, _ version: UInt64, _ author: String, _ milliseconds: Int64) -> Void
    /// What changed from `old` to `new`, one line each, bookkeeping ignored; empty when nothing did.
    public var differences: @Sendable (_ old: Value, _ new: Value) -> [String]
    /// One line describing a new value.
    public var summary: @Sendable (Value) -> String
    /// One line saying what a removal does.
    public var removal: String
    /// Why a change reduces privacy, one line each; empty when it does not.
    public var privacyReductions: @Sendable (_ old: Value, _ new: Value) -> [String]

    public init(
        noun: String, id: @escaping @Sendable (Value) -> String, version: @escaping @Sendable (Value) -> UInt64,
        stamp: @escaping @Sendable (inout Value, UInt64, String, Int64) -> Void, differences: @escaping @Sendable (Value, Value) -> [String],
        summary: @escaping @Sendable (Value) -> String, removal: String, privacyReductions: @escaping @Sendable (Value, Value) -> [String] = { _, _ in [] }
    ) {
        self.noun = noun
        self.id = id
        self.version = version
        self.stamp = stamp
        self.differences = differences
        self.summary = summary
        self.removal = removal
        self.privacyReductions = privacyReductions
    }
}

/// What applying a declared set (`vigil cameras apply`, `vigil rules apply`) would do to a
/// table: per id, the change and the record to publish.
///
/// Unchanged values are republished as stored (same value, same effective time): the dev
/// cluster drops old records and nothing compacts, so a writer republishes its whole set, and
/// a reader that already holds that version ignores it.
public struct DeclaredTablePlan<Value: Sendable & Equatable>: Sendable {
    public enum Kind: String, Sendable {
        case added, changed, unchanged, removed
        /// In the table but not in the file, and removal was not asked for.
        case notInFile = "not in file"
    }

    public struct Entry: Sendable {
        public var id: String
        public var kind: Kind
        /// What changed, one line each, e.g. "sampling: 2 fps → keyframes only".
        public var differences: [String]
        /// The value to publish; nil for a removal (a tombstone).
        public var publish: Value?
        /// When the published record takes effect.
        public var effectiveMilliseconds: Int64
        /// Why this change reduces privacy, one line each; empty when it does not.
        public var privacyReductions: [String]

        public init(id: String, kind: Kind, differences: [String], publish: Value?, effectiveMilliseconds: Int64, privacyReductions: [String]) {
            self.id = id
            self.kind = kind
            self.differences = differences
            self.publish = publish
            self.effectiveMilliseconds = effectiveMilliseconds
            self.privacyReductions = privacyReductions
        }
    }

    public var entries: [Entry]

    /// A plan of entries prepared elsewhere (a proposal's signed changes).
    public init(entries: [Entry]) {
        self.entries = entries
    }

    /// The entries that reduce privacy.
    public var privacyReducing: [Entry] { entries.filter { !$0.privacyReductions.isEmpty } }

    /// The entries an audit event is written for: every real change.
    public var changes: [Entry] { entries.filter { [.added, .changed, .removed].contains($0.kind) } }

    /// Compares the table's values with the file's.
    /// - Parameters:
    ///   - deleteMissing: remove values the file does not list (otherwise they are kept and listed).
    ///   - actor: the operator account recorded as the author of new versions.
    ///   - now: the effective time of new versions, milliseconds since the epoch.
    public init(
        _ kind: DeclaredValueKind<Value>, current: [String: StoredTableValue<Value>], desired: [Value], deleteMissing: Bool, actor: String, now: Int64
    ) {
        var entries: [Entry] = []
        let desiredIDs = Set(desired.map(kind.id))
        for wanted in desired {
            let id = kind.id(wanted)
            guard let stored = current[id] else {
                var value = wanted
                kind.stamp(&value, 1, actor, now)
                entries.append(Entry(
                    id: id, kind: .added, differences: ["new \(kind.noun): \(kind.summary(value))"], publish: value, effectiveMilliseconds: now, privacyReductions: []
                ))
                continue
            }
            let differences = kind.differences(stored.value, wanted)
            if differences.isEmpty {
                entries.append(Entry(
                    id: id, kind: .unchanged, differences: [], publish: stored.value, effectiveMilliseconds: stored.effectiveMilliseconds, privacyReductions: []
                ))
                continue
            }
            var value = wanted
            kind.stamp(&value, kind.version(stored.value) + 1, actor, now)
            entries.append(Entry(
                id: id, kind: .changed, differences: differences, publish: value, effectiveMilliseconds: now,
                privacyReductions: kind.privacyReductions(stored.value, wanted)
            ))
        }
        for (id, stored) in current where !desiredIDs.contains(id) {
            entries.append(Entry(
                id: id, kind: deleteMissing ? .removed : .notInFile, differences: deleteMissing ? [kind.removal] : [],
                publish: deleteMissing ? nil : stored.value, effectiveMilliseconds: deleteMissing ? now : stored.effectiveMilliseconds, privacyReductions: []
            ))
        }
        self.entries = entries.sorted { $0.id < $1.id }
    }
}

extension Table {
    /// Every key's current value with the time it took effect (deleted keys left out).
    public var currentValues: [String: StoredTableValue<Value>] {
        var values: [String: StoredTableValue<Value>] = [:]
        for key in keys {
            if let version = currentVersion(key), let value = version.value {
                values[key] = StoredTableValue(value: value, effectiveMilliseconds: version.effectiveFromMilliseconds)
            }
        }
        return values
    }
}

/// Records for table topics, as writers publish them.
public enum TableRecords {
    /// When a table record takes effect: its `vigil-effective-time-ms` header, else its Kafka
    /// timestamp; nil when it has neither (or the header is not a number).
    public static func effectiveMilliseconds(of record: TableRecord) -> Int64? {
        if let header = record.headers.first(where: { $0.key == TableHeaders.effectiveTime })?.value {
            return Int64(String(decoding: header, as: UTF8.self))
        }
        return record.timestampMilliseconds
    }

    /// The record that publishes `value` for `key` (nil: a tombstone), in force from `effectiveMilliseconds`.
    public static func record(key: String, value: [UInt8]?, effectiveMilliseconds: Int64) -> (key: [UInt8], value: [UInt8], headers: [RecordHeader]) {
        (Array(key.utf8), value ?? [], [RecordHeader(key: TableHeaders.effectiveTime, value: String(effectiveMilliseconds))])
    }
}
