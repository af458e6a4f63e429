import Foundation
import Synchronization
import Testing
@testable import WorkerRuntime

@Suite("Tables (records applied the way the table reader applies them)")
struct TableTests {
    /// A table of text values whose records must start with their key, like a vigil message
    /// that carries its own id.
    static func makeTable() -> Table<String> {
        Table(topic: "settings.v1", maxVersionsPerKey: 4) { key, bytes in
            let text = String(decoding: bytes, as: UTF8.self)
            guard text.hasPrefix(key + ":") else { throw BadValue(text: "value for another key") }
            return text
        }
    }

    struct BadValue: Error, CustomStringConvertible {
        var text: String
        var description: String { text }
    }

    static func record(_ key: String?, _ value: String, at effective: Int64?, offset: Int64 = 0, timestamp: Int64? = nil) -> TableRecord {
        TableRecord(
            topic: "settings.v1", offset: offset, key: key.map { Array($0.utf8) }, value: Array(value.utf8),
            headers: effective.map { [RecordHeader(key: TableHeaders.effectiveTime, value: String($0))] } ?? [],
            timestampMilliseconds: timestamp
        )
    }

    @Test("the effective-time header decides which version an event time sees; without it, the record timestamp")
    func effectiveTime() {
        let table = Self.makeTable()
        #expect(table.apply(Self.record("cam-1", "cam-1:a", at: 1_000, timestamp: 9_999)) == .changed)
        #expect(table.apply(Self.record("cam-1", "cam-1:b", at: nil, timestamp: 2_000)) == .changed)
        #expect(table.value("cam-1", asOf: 1_500) == .value("cam-1:a"))
        #expect(table.value("cam-1", asOf: 2_000) == .value("cam-1:b"))
        #expect(table.currentVersion("cam-1")?.effectiveFromMilliseconds == 2_000)
    }

    @Test("a malformed record is rejected with its place and the key keeps its value; the next good record applies")
    func malformedRecordKeepsPreviousValue() {
        let table = Self.makeTable()
        _ = table.apply(Self.record("cam-1", "cam-1:a", at: 1_000))
        let outcome = table.apply(Self.record("cam-1", "cam-2:x", at: 2_000, offset: 7))
        guard case .rejected(let reason) = outcome else {
            Issue.record("expected a rejection, got \(outcome)")
            return
        }
        #expect(reason.contains("settings.v1[0] offset 7") && reason.contains("cam-1") && reason.contains("value for another key"))
        #expect(table.current("cam-1") == "cam-1:a")
        #expect(table.value("cam-1", asOf: 2_500) == .value("cam-1:a"))
        #expect(table.apply(Self.record("cam-1", "cam-1:c", at: 3_000)) == .changed)
        #expect(table.current("cam-1") == "cam-1:c")
    }

    @Test("records without a key, or with no time to take effect from, are rejected")
    func unusableRecords() {
        let table = Self.makeTable()
        guard case .rejected(let noKey) = table.apply(Self.record(nil, "x:1", at: 1)) else {
            Issue.record("a keyless record was applied")
            return
        }
        #expect(noKey.contains("no key"))
        guard case .rejected(let noTime) = table.apply(Self.record("cam-1", "cam-1:a", at: nil, timestamp: nil)) else {
            Issue.record("a record with no time was applied")
            return
        }
        #expect(noTime.contains(TableHeaders.effectiveTime))
        #expect(table.keys.isEmpty)
    }

    @Test("a tombstone for a key never seen is ignored; one for a known key deletes it from its effective time")
    func tombstones() {
        let table = Self.makeTable()
        #expect(table.apply(Self.record("ghost", "", at: 1_000)) == .ignoredTombstone)
        #expect(table.keys.isEmpty)
        _ = table.apply(Self.record("cam-1", "cam-1:a", at: 1_000))
        #expect(table.apply(Self.record("cam-1", "", at: 2_000)) == .changed)
        #expect(table.current("cam-1") == nil)
        #expect(table.value("cam-1", asOf: 1_500) == .value("cam-1:a"))
        #expect(table.keys.isEmpty)
    }

    @Test("change callbacks run once per change of a current value, not for a republished version")
    func changeCallbacks() {
        let table = Self.makeTable()
        let changes = Mutex<[Table<String>.Change]>([])
        table.onChange { change in changes.withLock { $0.append(change) } }
        _ = table.apply(Self.record("cam-1", "cam-1:a", at: 1_000))
        #expect(table.apply(Self.record("cam-1", "cam-1:a", at: 1_000)) == .unchanged)
        _ = table.apply(Self.record("cam-1", "cam-1:b", at: 2_000))
        _ = table.apply(Self.record("cam-1", "", at: 3_000))
        #expect(changes.withLock { $0 } == [
            .init(key: "cam-1", previous: nil, current: "cam-1:a"),
            .init(key: "cam-1", previous: "cam-1:a", current: "cam-1:b"),
            .init(key: "cam-1", previous: "cam-1:b", current: nil),
        ])
    }
}
