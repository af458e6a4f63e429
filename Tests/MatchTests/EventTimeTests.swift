import Crypto
import Foundation
import Testing
import VigilSchema
import WorkerRuntime
import WorkerRuntimeTesting
@testable import Match

/// What makes match's incidents reproducible: event-time order whatever the arrival order
/// within the lateness, late records refused, rule versions by event time, restores that
/// continue where the crashed replica stopped, silence that closes what records would have.
@Suite("Match in event time")
struct EventTimeTests {
    static let rules = """
    rules:
      edge:
        cameras: [cam-1]
        kind: hazard_dwell
        zone: [[0.0, 0.5], [1.0, 0.5], [1.0, 1.0], [0.0, 1.0]]
        dwell: 2s
        close_after: 1s
      gate:
        cameras: [cam-1]
        kind: line_crossing
        line: {from: [0.5, 0.0], to: [0.5, 1.0]}
        close_after: 1s
    """

    /// 10 s of frames, 200 ms apart: track 1 walks across the gate and stays in the dwell
    /// zone 3 s; track 2 crosses back and forth; tracks 3 and 4 cross later.
    static let frames: [(time: Int64, objects: [Vigil_V1_DetectedObject])] = (0..<50).map { step in
        let time = Int64(step) * 200
        var objects: [Vigil_V1_DetectedObject] = []
        if step < 30 { objects.append(object(1, at: step < 10 ? 0.9 - Double(step) * 0.05 : 0.4, step < 10 ? 0.3 : 0.7)) }
        if step < 40 { objects.append(object(2, at: step % 10 < 5 ? 0.3 : 0.7, 0.2)) }
        if step >= 35 { objects.append(object(3, at: 0.9 - Double(step - 35) * 0.06, 0.4)) }
        if step >= 42 { objects.append(object(4, at: 0.1 + Double(step - 42) * 0.1, 0.3)) }
        return (time, objects)
    }

    /// The incidents of feeding `order` (indexes into `frames`), then letting the camera go quiet.
    static func run(_ order: [Int], lateness: Duration) async throws -> (MatchHarness, [Vigil_V1_Incident]) {
        let match = try MatchHarness(rules, lateness: lateness)
        // Offsets count in arrival order, as in a partition.
        for (offset, index) in order.enumerated() {
            try await match.frame(frames[index].time, frames[index].objects, offset: Int64(offset))
        }
        try await match.driver.advanceSilence(by: .seconds(10))
        return (match, match.incidents)
    }

    @Test("a frame and an OFFLINE report with the same event time are judged in one order whatever order they arrive in, and after a restart from the changelog")
    func equalEventTimesInEitherArrivalOrder() async throws {
        let yaml = "rules:\n  down:\n    cameras: [cam-1]\n    kind: camera_offline\n    sustained_for: 2s\n"
        func run(healthFirst: Bool, restartAt restart: Int64? = nil) async throws -> [String] {
            var match = try MatchHarness(yaml, lateness: .seconds(1))
            var before: [String] = []
            try await match.frame(0, offset: 10)
            try await match.frame(500, offset: 11)
            // The tie: the stream's last frame and the OFFLINE report naming it, both at 1 s.
            if healthFirst {
                try await match.health(1_000, .offline, lastFrame: 1_000)
                try await match.frame(1_000, offset: 12)
            } else {
                try await match.frame(1_000, offset: 12)
                try await match.health(1_000, .offline, lastFrame: 1_000)
            }
            for time in stride(from: Int64(2_000), through: 6_000, by: 1_000) {
                if time == restart {
                    try match.driver.checkpoint()
                    before = match.lifecycle
                    match = try MatchHarness(yaml, lateness: .seconds(1), restoredFrom: match.driver.changelog)
                }
                try await match.health(time, .offline, lastFrame: 1_000)
            }
            try await match.driver.advanceSilence(by: .seconds(10))
            return before + match.lifecycle
        }
        let frameFirst = try await run(healthFirst: false)
        #expect(!frameFirst.isEmpty, "the camera went offline")
        #expect(try await run(healthFirst: true) == frameFirst)
        #expect(try await run(healthFirst: true, restartAt: 3_000) == frameFirst, "a replica restored from the changelog judges the same")
    }

    @Test("records out of order within the allowed lateness give the incidents of the in-order run")
    func outOfOrder() async throws {
        let (_, inOrder) = try await Self.run(Array(0..<50), lateness: .seconds(1))
        #expect(inOrder.count >= 6, "dwell and crossings open, update and close: \(inOrder.map(MatchHarness.line))")
        #expect(inOrder.contains { $0.kind == .hazardDwell && $0.state == .opened })
        // Swap neighbours and move records up to 4 frames (800 ms) later.
        var shuffled = Array(0..<50)
        for index in stride(from: 0, to: 46, by: 5) {
            shuffled.swapAt(index, index + 1)
            shuffled.insert(shuffled.remove(at: index + 2), at: index + 4)
        }
        #expect(shuffled != Array(0..<50))
        let (_, reordered) = try await Self.run(shuffled, lateness: .seconds(1))
        #expect(reordered == inOrder, "\(reordered.map(MatchHarness.line)) vs \(inOrder.map(MatchHarness.line))")
    }

    @Test("health reported ahead of the frames detect is still working on makes no frame late: the frames set the pace")
    func healthAheadOfFrames() async throws {
        let (_, alone) = try await Self.run(Array(0..<50), lateness: .milliseconds(400))
        let match = try MatchHarness(Self.rules, lateness: .milliseconds(400))
        for index in 0..<50 {
            // Ingest reports the camera online at 8 s while detect has only reached frame 10 (2 s).
            if index == 10 { try await match.health(8_000, .online) }
            let outcome = try await match.frame(Self.frames[index].time, Self.frames[index].objects)
            if case .deadLettered(_, let reason) = outcome { Issue.record("frame \(index) dead-lettered: \(reason)") }
        }
        try await match.driver.advanceSilence(by: .seconds(10))
        #expect(match.incidents == alone)
    }

    @Test("a stream that stopped: its OFFLINE reports, stamped when observed, wait for its last frames, then the offline time grows with each report, without waiting for silence")
    func stoppedStream() async throws {
        let match = try MatchHarness("""
        rules:
          down:
            cameras: [cam-1]
            kind: camera_offline
            sustained_for: 3s
        """, lateness: .seconds(2))
        for time in stride(from: Int64(0), through: 8_500, by: 500) { try await match.frame(time) }
        // The stream dropped after its frame at 9.8 s; ingest says so at 10.3 s, while detect
        // still works on the frames of 9 and 9.5 s (decode sampled 2 per second).
        try await match.health(10_300, .offline, reason: "connection refused", lastFrame: 9_800)
        for time: Int64 in [9_000, 9_500] {
            if case .deadLettered(_, let reason) = try await match.frame(time) { Issue.record("frame \(time) dead-lettered: \(reason)") }
        }
        // Reconnect attempts, each reported: the camera has been down for longer each time.
        try await match.health(12_300, .offline, reason: "connection refused", lastFrame: 9_800)
        try await match.health(15_300, .offline, reason: "connection refused", lastFrame: 9_800)
        #expect(match.incidents.isEmpty, "the newest report waits for stragglers (2 s)")
        try await match.driver.advanceSilence(by: .seconds(2))
        #expect(match.lifecycle == ["OPENED r1 10300..13300 tracks []"])
        #expect(match.driver.deadLetters.isEmpty)
    }

    @Test("a record later than the lateness is dead-lettered and counted, and changes nothing")
    func late() async throws {
        let (match, _) = try await Self.run(Array(0..<30), lateness: .milliseconds(400))
        let before = match.incidents
        let outcome = try await match.frame(Self.frames[20].time, [object(9, at: 0.1, 0.1)], offset: 1_000)
        guard case .deadLettered(_, let reason) = outcome else {
            Issue.record("a record 1.8 s behind the newest, lateness 400 ms, was \(outcome)")
            return
        }
        #expect(reason.contains("late"))
        #expect(match.driver.deadLetters.count == 1)
        #expect(match.incidents == before)
    }

    @Test("a replica that restores the changelog mid-dwell continues as if nothing happened; redelivered records change nothing")
    func restore() async throws {
        let (_, uninterrupted) = try await Self.run(Array(0..<50), lateness: .milliseconds(400))
        // The first replica processes 25 frames (4.8 s; with 400 ms lateness it has judged 4.4 s:
        // track 1 has been in the zone since 2 s, past its dwell, so the incident is open) and
        // dies; the next one restores and gets the partition from the last committed offset,
        // so frames 21…24 come again.
        let first = try MatchHarness(Self.rules, lateness: .milliseconds(400))
        for index in 0..<25 {
            try await first.frame(Self.frames[index].time, Self.frames[index].objects, offset: Int64(index))
        }
        #expect(first.incidents.contains { $0.kind == .hazardDwell }, "the dwell incident is open when the replica dies")
        let second = try MatchHarness(Self.rules, lateness: .milliseconds(400), restoredFrom: first.driver.changelog)
        for index in 21..<50 {
            let outcome = try await second.frame(Self.frames[index].time, Self.frames[index].objects, offset: Int64(index))
            if index < 25, case .skipped = outcome {} else if index < 25 { Issue.record("frame \(index) was already applied, yet: \(outcome)") }
        }
        try await second.driver.advanceSilence(by: .seconds(10))
        #expect(first.incidents + second.incidents == uninterrupted)
    }

    @Test("a rule version applies to events from its effective time; removing a rule closes its incident")
    func ruleVersions() async throws {
        let match = try MatchHarness("""
        rules:
          door:
            cameras: [cam-1]
            kind: zone_intrusion
            zone: [[0.5, 0.0], [1.0, 0.0], [1.0, 1.0], [0.5, 1.0]]
        """)
        // Version 2 moves the zone to the left half from 2 s; the rule is deleted from 4 s.
        try match.publish("""
        rules:
          door:
            cameras: [cam-1]
            kind: zone_intrusion
            zone: [[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]]
        """, version: 2, at: 2_000)
        match.delete("door", at: 4_000)
        // Track 5 stands on the right, track 6 on the left, all along.
        for time in stride(from: Int64(0), through: 5_000, by: 500) {
            try await match.frame(time, [object(5, at: 0.8, 0.5), object(6, at: 0.2, 0.5)])
        }
        #expect(match.lifecycle == [
            "OPENED r1 0..0 tracks [5]",
            "CLOSED r2 0..1500 tracks [5]",
            "OPENED r1 2000..2000 tracks [6]",
            "CLOSED r2 2000..3500 tracks [6]",
        ])
        #expect(match.incidents.map(\.ruleVersion) == [1, 1, 2, 2])
        #expect(match.incidents[1].summary.hasSuffix("closed: rule version 2 replaced version 1"), "\(match.incidents[1].summary)")
        #expect(match.incidents[3].summary.hasSuffix("closed: the rule was removed, disabled, left its schedule or no longer watches this camera"))
    }

    @Test("a camera that goes quiet closes its incidents with the revision a later record would have closed them with")
    func silenceCloses() async throws {
        let yaml = """
        rules:
          door:
            cameras: [cam-1]
            kind: zone_intrusion
            zone: [[0.5, 0.0], [1.0, 0.0], [1.0, 1.0], [0.5, 1.0]]
            close_after: 2s
        """
        let byRecord = try MatchHarness(yaml)
        let bySilence = try MatchHarness(yaml)
        for match in [byRecord, bySilence] {
            try await match.frame(0, [object(5, at: 0.8, 0.5)])
            try await match.frame(200, [object(5, at: 0.8, 0.5)])
        }
        try await byRecord.frame(2_200)
        // Taken to have stopped after 10 s of silence (a stall upstream, shorter, closes nothing).
        try await bySilence.driver.advanceSilence(by: .milliseconds(9_900))
        #expect(bySilence.incidents.count == 1, "9.9 s of silence: still open")
        try await bySilence.driver.advanceSilence(by: .milliseconds(100))
        #expect(byRecord.lifecycle == ["OPENED r1 0..0 tracks [5]", "CLOSED r2 0..200 tracks [5]"])
        #expect(bySilence.incidents == byRecord.incidents)
        // A record from before what the silence judged comes too late to change it.
        let outcome = try await bySilence.frame(1_000, [object(5, at: 0.8, 0.5)])
        guard case .deadLettered(_, let reason) = outcome else {
            Issue.record("a record older than what silence judged was \(outcome)")
            return
        }
        #expect(reason.contains("already judged"), "\(reason)")
        #expect(bySilence.incidents == byRecord.incidents)
    }

    @Test("an incident points at the snapshot of its key frame, else a recent one, else the first taken while it is open")
    func snapshots() async throws {
        let yaml = """
        rules:
          door:
            cameras: [cam-1]
            kind: zone_intrusion
            zone: [[0.5, 0.0], [1.0, 0.0], [1.0, 1.0], [0.5, 1.0]]
            close_after: 1s
        """
        let match = try MatchHarness(yaml)
        try await match.frame(0, [object(5, at: 0.2, 0.5)], snapshot: "cam-1/old")
        try await match.frame(11_000, [object(5, at: 0.8, 0.5)])
        #expect(match.incidents.last?.snapshot.target == nil, "the only snapshot is 11 s old")
        try await match.frame(11_200, [object(5, at: 0.9, 0.5)], snapshot: "cam-1/a")
        #expect(match.incidents.last?.snapshot.snapshotID == "cam-1/a")
        #expect(match.lifecycle.last == "UPDATED r2 11000..11200 tracks [5]")
        try await match.frame(13_000)
        try await match.frame(14_000, [object(6, at: 0.2, 0.5)], snapshot: "cam-1/b")
        try await match.frame(14_200, [object(6, at: 0.8, 0.5)])
        #expect(match.incidents.last?.snapshot.snapshotID == "cam-1/b", "a snapshot 200 ms before the key frame")
    }

    @Test("incident ids follow the documented formula")
    func incidentID() {
        let id = IncidentText.id(ruleID: "door", cameraID: "cam-1", windowStartMilliseconds: 1_800_000_000_000)
        // python3 -c "import hashlib; print(hashlib.sha256(b'door\0cam-1\0' + b'1800000000000000000').hexdigest()[:32])"
        #expect(id == "428178e673e35519202b526a9a3d9170")
    }
}
