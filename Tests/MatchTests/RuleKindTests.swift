import Foundation
import Testing
import VigilSchema
import WorkerRuntime
import WorkerRuntimeTesting
@testable import Match

/// Each rule kind on synthetic tracks through the stage, frames 200 ms apart: when it opens
/// (not a frame early), when it updates, when it closes.
@Suite("Rule kinds on synthetic tracks")
struct RuleKindTests {
    @Test("zone intrusion opens once a track has been inside for confirm_after, updates when another is confirmed, closes after close_after")
    func zoneIntrusion() async throws {
        let match = try MatchHarness("""
        rules:
          door:
            cameras: [cam-1]
            kind: zone_intrusion
            zone: [[0.5, 0.5], [1.0, 0.5], [1.0, 1.0], [0.5, 1.0]]
            confirm_after: 1s
        """)
        try await match.frame(0, [object(7, at: 0.3, 0.8)])
        for time in stride(from: Int64(200), through: 1_000, by: 200) {
            try await match.frame(time, [object(7, at: 0.7, 0.8)])
        }
        #expect(match.incidents.isEmpty, "800 ms inside is not yet 1 s")
        try await match.frame(1_200, [object(7, at: 0.7, 0.8)])
        #expect(match.lifecycle == ["OPENED r1 200..1200 tracks [7]"])

        // Track 8 enters at 1400, is confirmed at 2400; a low-score detection never counts.
        for time in stride(from: Int64(1_400), through: 2_800, by: 200) {
            try await match.frame(time, [object(7, at: 0.7, 0.8), object(8, at: 0.6, 0.6), object(9, at: 0.8, 0.8, score: 0.3)])
        }
        #expect(match.lifecycle == ["OPENED r1 200..1200 tracks [7]", "UPDATED r2 200..2400 tracks [7, 8]"])

        // Both leave; the incident closes 5 s (the default close_after) after they were last inside.
        for time in stride(from: Int64(3_000), through: 7_600, by: 200) {
            try await match.frame(time, [object(7, at: 0.2, 0.8)])
        }
        #expect(match.incidents.count == 2, "4.8 s after the last sighting it is still open")
        try await match.frame(7_800)
        #expect(match.lifecycle.last == "CLOSED r3 200..2800 tracks [7, 8]")
        let closed = try #require(match.incidents.last)
        #expect(closed.incidentID == match.incidents[0].incidentID, "one incident, three revisions")
        #expect(closed.ruleID == "door" && closed.ruleVersion == 1 && closed.kind == .zoneIntrusion && closed.cameraID == "cam-1")
        #expect(closed.summary.contains("2 persons in the zone of rule door"), "\(closed.summary)")
    }

    @Test("line crossing counts each crossing once in its direction, on one incident with per-direction counts")
    func lineCrossing() async throws {
        // A line down the middle, top to bottom: forward is from the frame's right half to its left.
        let yaml = """
        rules:
          gate:
            cameras: [cam-1]
            kind: line_crossing
            line: {from: [0.5, 0.0], to: [0.5, 1.0]}
            direction: DIRECTION
            close_after: 2s
        """
        // Track 1 walks right to left (forward), stopping on the line for two frames; track 2
        // walks left to right (backward); track 3 comes close and turns back (no crossing).
        let paths: [UInt64: [Double]] = [
            1: [0.8, 0.6, 0.5, 0.5, 0.4, 0.2],
            2: [0.1, 0.3, 0.45, 0.55, 0.7, 0.9],
            3: [0.9, 0.7, 0.55, 0.7, 0.9, 0.9],
        ]
        var counts: [String: (UInt64, UInt64, Int)] = [:]
        for direction in ["both", "forward", "backward"] {
            let match = try MatchHarness(yaml.replacingOccurrences(of: "DIRECTION", with: direction))
            for step in 0..<6 {
                try await match.frame(Int64(step) * 200, paths.keys.sorted().map { object($0, at: paths[$0]![step], 0.7) })
            }
            try await match.frame(5_000)
            let last = try #require(match.incidents.last)
            #expect(last.state == .closed)
            counts[direction] = (last.forwardCrossings, last.backwardCrossings, match.incidents.count)
        }
        #expect(counts["both"]! == (1, 1, 3), "opened by track 2 at 600 ms, updated by track 1 at 800 ms, closed")
        #expect(counts["forward"]! == (1, 0, 2))
        #expect(counts["backward"]! == (0, 1, 2))
    }

    @Test("hazard dwell opens when one track has stayed dwell long, not a frame early; a missed frame keeps its time, leaving restarts it")
    func hazardDwell() async throws {
        let match = try MatchHarness("""
        rules:
          edge:
            cameras: [cam-1]
            kind: hazard_dwell
            zone: [[0.0, 0.8], [1.0, 0.8], [1.0, 1.0], [0.0, 1.0]]
            dwell: 3s
        """)
        // Track 4 steps in at 0, leaves at 2000 (outside at 2000), is back at 2200.
        for time in stride(from: Int64(0), through: 1_800, by: 200) {
            try await match.frame(time, [object(4, at: 0.5, 0.9)])
        }
        try await match.frame(2_000, [object(4, at: 0.5, 0.6)])
        // From 2200 it stays; at 3000 and 3200 the detector misses it.
        for time in stride(from: Int64(2_200), through: 5_000, by: 200) {
            try await match.frame(time, time == 3_000 || time == 3_200 ? [] : [object(4, at: 0.5, 0.9)])
        }
        #expect(match.incidents.isEmpty, "2.8 s since it came back")
        try await match.frame(5_200, [object(4, at: 0.5, 0.9)])
        #expect(match.lifecycle == ["OPENED r1 2200..5200 tracks [4]"])
        #expect(match.incidents[0].summary.hasPrefix("1 person in the hazardous zone of rule edge for 3 s (limit 3 s)"), "\(match.incidents[0].summary)")
    }

    @Test("a dwell survives the tracker giving a standing person a new id where they stood; a new track elsewhere starts its own time")
    func dwellAcrossAnIDSwitch() async throws {
        let match = try MatchHarness("""
        rules:
          edge:
            cameras: [cam-1]
            kind: hazard_dwell
            zone: [[0.0, 0.8], [1.0, 0.8], [1.0, 1.0], [0.0, 1.0]]
            dwell: 3s
        """)
        // Track 4 stands at (0.3, 0.9) from 0; from 1800 the tracker calls it 9, 2 cm off.
        // Track 5 stands at (0.8, 0.9) from 1000 and is lost at 1600; track 6 appears at
        // (0.5, 0.9) at 1800, too far from where 5 was to be 5.
        for time in stride(from: Int64(0), through: 2_800, by: 200) {
            var objects = [time < 1_800 ? object(4, at: 0.3, 0.9) : object(9, at: 0.32, 0.9)]
            if (1_000..<1_600).contains(time) { objects.append(object(5, at: 0.8, 0.9)) }
            if time >= 1_800 { objects.append(object(6, at: 0.5, 0.9)) }
            try await match.frame(time, objects)
        }
        #expect(match.incidents.isEmpty)
        try await match.frame(3_000, [object(9, at: 0.32, 0.9), object(6, at: 0.5, 0.9)])
        #expect(match.lifecycle == ["OPENED r1 0..3000 tracks [9]"], "track 9 continues track 4's 3 s; track 6 has been there 1.2 s")
    }

    @Test("crowd density opens after sustained_for at or above the limit, updates on a new peak, rides over short dips, clears")
    func crowdDensity() async throws {
        let match = try MatchHarness("""
        rules:
          hall:
            cameras: [cam-1]
            kind: crowd_density
            zone: [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]
            max_count: 3
            sustained_for: 2s
            close_after: 1s
            purpose: Crush risk at the hall's exit
        """)
        func people(_ count: Int) -> [Vigil_V1_DetectedObject] {
            (0..<count).map { object(UInt64($0 + 1), at: 0.1 + Double($0) * 0.1, 0.5) }
        }
        // 3 people from 0; a dip to 2 at 1000 (shorter than close_after) does not break the stretch.
        for time in stride(from: Int64(0), through: 1_800, by: 200) {
            try await match.frame(time, people(time == 1_000 ? 2 : 3))
        }
        #expect(match.incidents.isEmpty)
        try await match.frame(2_000, people(3))
        try await match.frame(2_200, people(4))
        try await match.frame(2_400, people(3))
        #expect(match.lifecycle == ["OPENED r1 0..2000 tracks [1, 2, 3]", "UPDATED r2 0..2200 tracks [1, 2, 3, 4]"])
        #expect(match.incidents[1].peakCount == 4 && match.incidents[1].limitCount == 3)
        #expect(match.incidents[1].purpose == "Crush risk at the hall's exit")
        #expect(match.incidents[1].summary.hasPrefix("4 persons in the zone of rule hall (limit 3) for 2.2 s"), "\(match.incidents[1].summary)")
        for time in stride(from: Int64(2_600), through: 3_200, by: 200) {
            try await match.frame(time, people(1))
        }
        #expect(match.incidents.count == 2)
        try await match.frame(3_400, people(1))
        #expect(match.lifecycle.last == "CLOSED r3 0..2400 tracks [1, 2, 3, 4]")
        // A new stretch needs its own sustained_for.
        for time in stride(from: Int64(3_600), through: 5_400, by: 200) {
            try await match.frame(time, people(3))
        }
        #expect(match.incidents.count == 3)
        try await match.frame(5_600, people(3))
        #expect(match.lifecycle.last == "OPENED r1 3600..5600 tracks [1, 2, 3]")
    }

    @Test("camera tamper opens on signals sustained for the rule's time, names the kinds, closes when they stop")
    func cameraTamper() async throws {
        let match = try MatchHarness("""
        rules:
          lens:
            cameras: [cam-1]
            kind: camera_tamper
            tamper_kinds: [covered, moved]
            sustained_for: 600ms
            close_after: 1s
        """)
        try await match.frame(0, tamper: [.defocused])
        try await match.frame(200, tamper: [.covered])
        try await match.frame(400, tamper: [.covered])
        try await match.frame(600, tamper: [.covered])
        #expect(match.incidents.isEmpty, "defocused is not counted by this rule; covered for 400 ms")
        try await match.frame(800, tamper: [.covered])
        try await match.frame(1_000, tamper: [.covered, .moved])
        #expect(match.lifecycle == ["OPENED r1 200..800 tracks []", "UPDATED r2 200..1000 tracks []"])
        #expect(match.incidents[1].tamperKinds == [.covered, .moved])
        try await match.frame(1_800)
        try await match.frame(2_000)
        #expect(match.lifecycle.last == "CLOSED r3 200..1000 tracks []")
    }

    @Test("camera offline opens once OFFLINE has lasted sustained_for, from a later record or from silence alike, and closes when the camera is back")
    func cameraOffline() async throws {
        let yaml = """
        rules:
          down:
            cameras: [cam-1]
            kind: camera_offline
            sustained_for: 3s
        """
        // By a later health record, on a camera that never streamed (its health sets the pace).
        let byRecords = try MatchHarness(yaml)
        try await byRecords.health(1_000, .offline, reason: "connection refused")
        try await byRecords.health(3_000, .offline, reason: "connection refused")
        #expect(byRecords.incidents.isEmpty)
        try await byRecords.health(4_500, .offline, reason: "connection refused")
        #expect(byRecords.lifecycle == ["OPENED r1 1000..4000 tracks []"])
        #expect(byRecords.incidents[0].cameraState == .offline)
        #expect(byRecords.incidents[0].summary == "camera offline for 3 s (connection refused)")
        try await byRecords.health(9_000, .online)
        #expect(byRecords.lifecycle.last == "CLOSED r2 1000..9000 tracks []")

        // By silence, on a camera whose stream stopped: its OFFLINE record waits for frames
        // (detect may still be working on some), none come, and the same revision opens.
        let bySilence = try MatchHarness(yaml)
        try await bySilence.frame(0)
        try await bySilence.health(1_000, .offline, reason: "connection refused")
        // The camera is taken to have stopped after 10 s of silence (the stage's `silence`).
        try await bySilence.driver.advanceSilence(by: .milliseconds(9_900))
        #expect(bySilence.incidents.isEmpty, "9.9 s of silence")
        try await bySilence.driver.advanceSilence(by: .milliseconds(100))
        #expect(bySilence.incidents == [byRecords.incidents[0]])
    }
}
