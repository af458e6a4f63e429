import Foundation
import Synchronization
import Testing
@testable import WorkerRuntime
import WorkerRuntimeTesting

/// Counts records per camera and per one-second event-time window; each window's count is
/// emitted when the camera's watermark passes the window's end, and "silent" after 5 s of
/// caught-up time without a record.
struct WindowCounter: StatefulStage {
    struct Counts: StageState {
        var total = 0
        /// Window end (ms) → records in that window.
        var windows: [Int64: Int] = [:]
        /// A state its encoding refuses (a stage's bug), to test what the runtime does then.
        var unencodable = false

        init() {}

        init(stateBytes: [UInt8]) throws {
            let text = String(decoding: stateBytes, as: UTF8.self)
            let parts = text.split(separator: ";", omittingEmptySubsequences: false)
            guard parts.count == 2, let total = Int(parts[0]) else { throw Malformed() }
            self.total = total
            for entry in parts[1].split(separator: ",") {
                let pair = entry.split(separator: ":")
                guard pair.count == 2, let end = Int64(pair[0]), let count = Int(pair[1]) else { throw Malformed() }
                windows[end] = count
            }
        }

        var stateBytes: [UInt8] {
            get throws {
                guard !unencodable else { throw Unencodable() }
                return Array("\(total);\(windows.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }.joined(separator: ","))".utf8)
            }
        }
    }

    struct Malformed: Error {}
    struct Unencodable: Error, CustomStringConvertible {
        var description: String { "this state cannot be encoded" }
    }

    var allowedLateness: Duration = .seconds(1)
    /// Stuffs this many bytes of padding into the state per record (to test the cap).
    var padding = 0
    /// The state of a key becomes unencodable at its record number `unencodableAt` (1-based).
    var unencodableAt: Int?

    func process(_ input: StageInput, key: String, eventTime: Int64, state: inout Counts?, timers: inout Timers) async throws -> [StageOutput] {
        var counts = state ?? Counts()
        counts.total += 1
        let windowEnd = (eventTime / 1_000 + 1) * 1_000
        counts.windows[windowEnd, default: 0] += 1
        if padding > 0 { counts.windows[-Int64(counts.total)] = padding }
        if counts.total == unencodableAt { counts.unencodable = true }
        state = counts
        timers.schedule("window-\(windowEnd)", atEventTime: windowEnd)
        timers.scheduleSilence("silent", after: .seconds(5))
        return []
    }

    func timerFired(_ timer: FiredTimer, key: String, state: inout Counts?, timers: inout Timers) async throws -> [StageOutput] {
        switch timer.kind {
        case .eventTime:
            let count = state?.windows.removeValue(forKey: timer.scheduledMilliseconds) ?? 0
            return [StageOutput(topic: "counts", key: Array(key.utf8), value: Array("\(key) window \(timer.scheduledMilliseconds) count \(count)".utf8))]
        case .silence:
            return [StageOutput(topic: "counts", key: Array(key.utf8), value: Array("\(key) silent".utf8))]
        }
    }
}

@Suite("Stateful stages in memory: state, timers, restore, dedup")
struct StatefulStageTests {
    static func event(_ camera: String, at milliseconds: Int64, offset: Int64 = 0, partition: Int32 = 0) -> StageInput {
        StageInput(
            topic: "detections", partition: partition, offset: offset, key: Array(camera.utf8), value: [],
            headers: [RecordHeader(key: RecordHeaders.eventTime, value: String(milliseconds))]
        )
    }

    static func texts(_ records: [StageOutput]) -> [String] {
        records.map { String(decoding: $0.value, as: UTF8.self) }
    }

    static func recordIDs(_ records: [StageOutput]) -> [String] {
        records.compactMap { $0.header(RecordHeaders.recordID).map { String(decoding: $0, as: UTF8.self) } }
    }

    @Test("event-time timers fire once the key's watermark passes them, in time order, with ids and event time from their schedule")
    func eventTimeTimers() async throws {
        let driver = StatefulStageTestDriver(stage: WindowCounter())
        for time: Int64 in [10_100, 10_500, 11_200, 10_900] { try await driver.feed(Self.event("cam-1", at: time)) }
        #expect(driver.outputs.isEmpty, "watermark 10 200 (11 200 − 1 s lateness) has not reached 11 000")
        try await driver.feed(Self.event("cam-1", at: 13_500))
        #expect(Self.texts(driver.outputs) == ["cam-1 window 11000 count 3", "cam-1 window 12000 count 1"])
        #expect(Self.recordIDs(driver.outputs) == ["timer/cam-1/window-11000/11000/0", "timer/cam-1/window-12000/12000/0"])
        #expect(driver.outputs.map { $0.header(RecordHeaders.eventTime).map { String(decoding: $0, as: UTF8.self) } } == ["11000", "12000"])
        #expect(driver.state(of: "cam-1")?.total == 5)
        #expect(driver.changelog.count == 5, "a snapshot per state change")
        #expect(driver.changelog.allSatisfy { $0.partition == 0 && $0.key == Array("cam-1".utf8) })
    }

    @Test("a record behind the watermark is late: dead-lettered with the reason, the state untouched")
    func lateRecord() async throws {
        let driver = StatefulStageTestDriver(stage: WindowCounter())
        try await driver.feed(Self.event("cam-1", at: 20_000))
        let outcome = try await driver.feed(Self.event("cam-1", at: 18_500))
        guard case .deadLettered(let copy, let reason) = outcome else {
            Issue.record("expected the late record to be dead-lettered, got \(outcome)")
            return
        }
        #expect(reason.hasPrefix("late: event time 18500 is 500 ms behind the watermark of key cam-1"))
        #expect(copy.topic == "detections.dlq")
        try await driver.feed(Self.event("cam-1", at: 19_200))
        #expect(driver.state(of: "cam-1")?.total == 2, "within the allowed lateness still counts")
    }

    @Test("after a crash, a replica restored from the changelog skips redelivered records it already reflects and counts each record once")
    func redeliveryAfterRestore() async throws {
        let first = StatefulStageTestDriver(stage: WindowCounter())
        for offset in 0..<10 { try await first.feed(Self.event("cam-1", at: 1_000 + Int64(offset) * 100, offset: Int64(offset) + 1)) }
        let second = StatefulStageTestDriver(stage: WindowCounter(), restoredFrom: first.changelog)
        #expect(second.state(of: "cam-1") == first.state(of: "cam-1"))
        // The committed offset lagged: offsets 6…10 come again, then new ones.
        for offset in 6..<15 { try await second.feed(Self.event("cam-1", at: 1_000 + Int64(offset - 1) * 100, offset: Int64(offset))) }
        #expect(second.skippedInputs.map(\.offset) == [6, 7, 8, 9, 10])
        #expect(second.state(of: "cam-1")?.total == 14)
    }

    @Test("outputs acknowledged but the snapshot lost: the input is applied again, and its outputs repeat with the same record ids")
    func lostSnapshotRepeatsOutputs() async throws {
        let first = StatefulStageTestDriver(stage: WindowCounter())
        try await first.feed(Self.event("cam-1", at: 1_100, offset: 1))
        try await first.feed(Self.event("cam-1", at: 3_500, offset: 2))
        let fired = first.outputs
        #expect(Self.texts(fired) == ["cam-1 window 2000 count 1"])
        // The crash came after the outputs of offset 2 were acknowledged, before its snapshot.
        let second = StatefulStageTestDriver(stage: WindowCounter(), restoredFrom: Array(first.changelog.dropLast()))
        try await second.feed(Self.event("cam-1", at: 3_500, offset: 2))
        #expect(Self.recordIDs(second.outputs) == Self.recordIDs(fired), "same ids: consumers drop the repeat")
        #expect(second.state(of: "cam-1") == first.state(of: "cam-1"))
    }

    @Test("timers are part of the state: restored, each fires once at the right time")
    func timersSurviveRestore() async throws {
        let first = StatefulStageTestDriver(stage: WindowCounter())
        try await first.feed(Self.event("cam-1", at: 5_300, offset: 1))
        let second = StatefulStageTestDriver(stage: WindowCounter(), restoredFrom: first.changelog)
        #expect(second.timers(of: "cam-1")?.eventTimers == ["window-6000": 6_000])
        try await second.feed(Self.event("cam-1", at: 6_500, offset: 2))
        #expect(second.outputs.isEmpty, "watermark 5 500 is before 6 000")
        try await second.feed(Self.event("cam-1", at: 7_000, offset: 3))
        try await second.feed(Self.event("cam-1", at: 7_100, offset: 4))
        #expect(Self.texts(second.outputs) == ["cam-1 window 6000 count 1"])
    }

    @Test("silence timers count only caught-up time, fire once, and restart counting after a restore")
    func silenceTimers() async throws {
        let driver = StatefulStageTestDriver(stage: WindowCounter())
        try await driver.feed(Self.event("cam-1", at: 1_000, offset: 1))
        try await driver.advanceSilence(by: .seconds(3))
        try await driver.advanceSilence(by: .seconds(10), partitions: [])
        #expect(driver.outputs.isEmpty, "time while not caught up does not count")
        try await driver.advanceSilence(by: .seconds(2))
        #expect(Self.texts(driver.outputs) == ["cam-1 silent"])
        #expect(Self.recordIDs(driver.outputs) == ["timer/cam-1/silent/6000/0"], "scheduled at the newest event time + 5 s")
        try await driver.advanceSilence(by: .seconds(60))
        #expect(driver.outputs.count == 1, "fired once")

        try await driver.feed(Self.event("cam-1", at: 2_000, offset: 2))
        try await driver.advanceSilence(by: .seconds(4))
        let restored = StatefulStageTestDriver(stage: WindowCounter(), restoredFrom: driver.changelog)
        try await restored.advanceSilence(by: .seconds(4))
        #expect(restored.outputs.isEmpty, "the 4 s before the restore do not count on the new replica")
        try await restored.advanceSilence(by: .seconds(1))
        #expect(Self.texts(restored.outputs) == ["cam-1 silent"])
    }

    @Test("state over its caps: the record is dead-lettered with the reason and the state keeps what it held")
    func stateCaps() async throws {
        let bytes = StatefulStageTestDriver(stage: WindowCounter(padding: 1), limits: StateLimits(maxKeys: 10, maxKeyBytes: 120))
        var outcomes: [RecordOutcome] = []
        for offset in 1...12 { outcomes.append(try await bytes.feed(Self.event("cam-1", at: 1_000, offset: Int64(offset)))) }
        guard case .deadLettered(_, let reason) = outcomes.last else {
            Issue.record("a state past 120 bytes was kept")
            return
        }
        #expect(reason.contains("over the 120-byte cap"))
        let kept = try #require(bytes.state(of: "cam-1"))
        #expect(try kept.total < 12 && kept.stateBytes.count <= 120)

        // A large cap approached by small records: the state is measured exactly once it may be
        // near the cap, so it stops within one record of it (timers and offsets take the rest).
        let large = StatefulStageTestDriver(stage: WindowCounter(padding: 1), limits: StateLimits(maxKeys: 10, maxKeyBytes: 3_000))
        var firstRefused: Int?
        for offset in 1...600 where firstRefused == nil {
            if case .deadLettered = try await large.feed(Self.event("cam-1", at: 1_000, offset: Int64(offset))) { firstRefused = offset }
        }
        let near = try #require(large.state(of: "cam-1"))
        let nearBytes = try near.stateBytes.count
        #expect(firstRefused != nil && nearBytes <= 3_000 && nearBytes > 3_000 - 120, "stopped at \(nearBytes) bytes")

        let keys = StatefulStageTestDriver(stage: WindowCounter(), limits: StateLimits(maxKeys: 2, maxKeyBytes: 1_000))
        try await keys.feed(Self.event("cam-1", at: 1_000))
        try await keys.feed(Self.event("cam-2", at: 1_000))
        let third = try await keys.feed(Self.event("cam-3", at: 1_000))
        guard case .deadLettered(_, let keyReason) = third else {
            Issue.record("a third key was added past the cap of 2")
            return
        }
        #expect(keyReason.contains("cap of 2 keys"))
        try await keys.feed(Self.event("cam-1", at: 1_100))
        #expect(keys.state(of: "cam-1")?.total == 2, "existing keys still work at the cap")
    }

    @Test("a malformed changelog record is skipped on restore: the key keeps its previous snapshot and others restore")
    func malformedChangelogRecord() async throws {
        let first = StatefulStageTestDriver(stage: WindowCounter())
        try await first.feed(Self.event("cam-1", at: 1_000, offset: 1))
        try await first.feed(Self.event("cam-2", at: 1_000, offset: 2))
        var corrupt = first.changelog[0]
        corrupt.value = [0xFF, 0xFF, 0x01]
        let second = StatefulStageTestDriver(stage: WindowCounter(), restoredFrom: first.changelog + [corrupt])
        #expect(second.state(of: "cam-1")?.total == 1)
        #expect(second.state(of: "cam-2")?.total == 1)
    }

    @Test("a checkpoint writes every key again, so the newest records alone restore everything")
    func checkpointSuffices() async throws {
        let driver = StatefulStageTestDriver(stage: WindowCounter())
        for (offset, camera) in ["cam-1", "cam-2", "cam-3"].enumerated() { try await driver.feed(Self.event(camera, at: 1_000, offset: Int64(offset) + 1)) }
        let before = driver.changelog.count
        try driver.checkpoint()
        let newest = Array(driver.changelog.dropFirst(before))
        #expect(newest.count == 3)
        let restored = StatefulStageTestDriver(stage: WindowCounter(), restoredFrom: newest)
        for camera in ["cam-1", "cam-2", "cam-3"] { #expect(restored.state(of: camera) == driver.state(of: camera)) }
    }

    @Test("a state that cannot be encoded stops the stage with the key and the reason; no snapshot is written, so a restore keeps the last good one (never an empty record, which would delete the key)")
    func unencodableStateStops() async throws {
        let driver = StatefulStageTestDriver(stage: WindowCounter(unencodableAt: 3))
        for offset: Int64 in 1...2 { try await driver.feed(Self.event("cam-1", at: 1_000 + offset * 100, offset: offset)) }
        let error = await #expect(throws: StateEncodingFailed.self) {
            try await driver.feed(Self.event("cam-1", at: 1_300, offset: 3))
        }
        #expect(error?.key == "cam-1" && "\(error.map { "\($0)" } ?? "")".contains("this state cannot be encoded"))
        #expect(driver.changelog.count == 2 && driver.changelog.allSatisfy { !$0.value.isEmpty })
        let restored = StatefulStageTestDriver(stage: WindowCounter(), restoredFrom: driver.changelog)
        #expect(restored.state(of: "cam-1")?.total == 2, "the last snapshot written")
    }

    @Test("a restore keeps each key's newest readable snapshot while the changelog streams past: an unreadable newer one is reported and the older kept; a deletion wins; a log cut by retention is noticed")
    func changelogAccumulatorKeepsTheNewest() throws {
        let rejected = Mutex<[Int64]>([])
        let accumulator = ChangelogAccumulator(problem: { $0 == [0xFF] ? WindowCounter.Malformed() : nil }) { _, _, offset, _ in rejected.withLock { $0.append(offset) } }
        for offset in Int64(0)..<10_000 {
            accumulator.add(partition: 0, key: Array("cam-\(offset % 4)".utf8), value: Array("state \(offset)".utf8), offset: offset, timestampMilliseconds: nil)
        }
        accumulator.add(partition: 0, key: Array("cam-1".utf8), value: [0xFF], offset: 10_000, timestampMilliseconds: nil)
        accumulator.add(partition: 0, key: Array("cam-2".utf8), value: [], offset: 10_001, timestampMilliseconds: nil)
        accumulator.add(partition: 1, key: Array("cam-9".utf8), value: Array("state".utf8), offset: 42, timestampMilliseconds: 1_234)
        let read = accumulator.result
        let kept = Dictionary(uniqueKeysWithValues: (read.snapshots[0] ?? []).map { ($0.key, String(decoding: $0.value, as: UTF8.self)) })
        #expect(kept == ["cam-0": "state 9996", "cam-1": "state 9997", "cam-2": "", "cam-3": "state 9999"], "\(kept)")
        #expect(rejected.withLock { $0 } == [10_000])
        #expect(read.recordsRead == 10_003 && read.truncatedSince == [1: 1_234])
    }

    @Test("a record without a key cannot have state: dead-lettered with the reason")
    func keylessRecord() async throws {
        let driver = StatefulStageTestDriver(stage: WindowCounter())
        let outcome = try await driver.feed(StageInput(topic: "detections", key: nil, value: []))
        guard case .deadLettered(_, let reason) = outcome else {
            Issue.record("a keyless record was processed")
            return
        }
        #expect(reason.contains("no key"))
    }
}
