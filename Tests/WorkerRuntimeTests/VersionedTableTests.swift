import Testing
@testable import WorkerRuntime

@Suite("Versioned tables (values by effective time)")
struct VersionedTableTests {
    @Test("a lookup as of an event time returns the version in force then; before the first version, nothing")
    func asOfEventTime() {
        var table = VersionedTable<String>()
        table.apply(key: "camera-1", effectiveFromMilliseconds: 1_000, value: "mask v1")
        table.apply(key: "camera-1", effectiveFromMilliseconds: 5_000, value: "mask v2")
        #expect(table.value("camera-1", asOf: 999) == .absent)
        #expect(table.value("camera-1", asOf: 1_000) == .value("mask v1"))
        #expect(table.value("camera-1", asOf: 4_999) == .value("mask v1"))
        #expect(table.value("camera-1", asOf: 5_000) == .value("mask v2"))
        #expect(table.current("camera-1") == "mask v2")
        #expect(table.value("camera-2", asOf: 5_000) == .absent)
    }

    @Test("a tombstone deletes from its effective time on; earlier events still see the old value")
    func tombstone() {
        var table = VersionedTable<String>()
        table.apply(key: "rule-7", effectiveFromMilliseconds: 100, value: "zone A")
        let change = table.apply(key: "rule-7", effectiveFromMilliseconds: 200, value: nil)
        #expect(change == .init(key: "rule-7", previous: "zone A", current: nil))
        #expect(table.value("rule-7", asOf: 150) == .value("zone A"))
        #expect(table.value("rule-7", asOf: 250) == .absent)
        #expect(table.keys.isEmpty)
    }

    @Test("republishing the same versions changes nothing and reports no change")
    func republishIsIdempotent() {
        var table = VersionedTable<String>()
        #expect(table.apply(key: "camera-1", effectiveFromMilliseconds: 10, value: "a") != nil)
        #expect(table.apply(key: "camera-1", effectiveFromMilliseconds: 10, value: "a") == nil)
        #expect(table.apply(key: "camera-1", effectiveFromMilliseconds: 10, value: "b") == .init(key: "camera-1", previous: "a", current: "b"),
                "the same effective time with another value: the newest write wins")
    }

    @Test("versions arriving out of effective-time order are kept in order; a past correction does not change the current value")
    func outOfOrder() {
        var table = VersionedTable<String>()
        table.apply(key: "camera-1", effectiveFromMilliseconds: 300, value: "v3")
        let change = table.apply(key: "camera-1", effectiveFromMilliseconds: 100, value: "v1")
        #expect(change == nil, "v3 is still current")
        #expect(table.value("camera-1", asOf: 200) == .value("v1"))
        #expect(table.value("camera-1", asOf: 300) == .value("v3"))
    }

    @Test("history is bounded per key; before the oldest kept version the answer is unknown, not absent")
    func boundedHistory() {
        var table = VersionedTable<Int>(maxVersionsPerKey: 2)
        for (time, value) in [(100, 1), (200, 2), (300, 3)] {
            table.apply(key: "camera-1", effectiveFromMilliseconds: Int64(time), value: value)
        }
        #expect(table.value("camera-1", asOf: 150) == .beforeRetainedHistory(oldestKeptMilliseconds: 200))
        #expect(table.value("camera-1", asOf: 250) == .value(2))
        #expect(table.value("camera-1", asOf: 350) == .value(3))
    }

    @Test("a lowered bound (worker.table-versions, applied when the worker starts reading) trims every key's history")
    func lowerBound() {
        var table = VersionedTable<Int>(maxVersionsPerKey: 16)
        for time in 1...4 { table.apply(key: "camera-1", effectiveFromMilliseconds: Int64(time) * 100, value: time) }
        table.limit(versionsPerKey: 2)
        #expect(table.value("camera-1", asOf: 250) == .beforeRetainedHistory(oldestKeptMilliseconds: 300))
        #expect(table.value("camera-1", asOf: 450) == .value(4))
        table.apply(key: "camera-1", effectiveFromMilliseconds: 500, value: 5)
        #expect(table.value("camera-1", asOf: 350) == .beforeRetainedHistory(oldestKeptMilliseconds: 400), "the new bound holds for later versions")
    }
}
