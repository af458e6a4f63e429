import Foundation
import Rules
import SwiftProtobuf
import Testing
import VigilSchema
import WorkerRuntime
import WorkerRuntimeTesting
@testable import Match

/// Rule engine II's kinds on synthetic tracks through the stage, frames 200 ms apart unless
/// said otherwise: each opens exactly when it should, not a frame early.
@Suite("Rule engine II kinds on synthetic tracks")
struct SafetyKindTests {
    @Test("person down opens once a person has lain for lying_for; a frame whose posture was not called keeps the time, standing up restarts it")
    func personDown() async throws {
        let match = try MatchHarness("""
        rules:
          fall:
            cameras: [cam-1]
            kind: person_down
            lying_for: 3s
        """)
        for time in stride(from: Int64(0), through: 1_000, by: 200) { try await match.frame(time, [object(1, at: 0.5, 0.8, posture: .upright)]) }
        // Down at 1.2 s; posture not called at 2 s.
        for time in stride(from: Int64(1_200), through: 4_000, by: 200) {
            try await match.frame(time, [object(1, at: 0.5, 0.8, posture: time == 2_000 ? .unknown : .lying)])
        }
        #expect(match.incidents.isEmpty, "2.8 s lying is not yet 3 s")
        try await match.frame(4_200, [object(1, at: 0.5, 0.8, posture: .lying)])
        #expect(match.lifecycle == ["OPENED r1 1200..4200 tracks [1]"])
        #expect(match.incidents[0].summary.hasPrefix("1 person lying down for 3 s (limit 3 s)"), "\(match.incidents[0].summary)")

        // Track 2 lies 2 s, stands up, lies again: its time restarts.
        let again = try MatchHarness("rules:\n  fall:\n    cameras: [cam-1]\n    kind: person_down\n    lying_for: 3s\n")
        for time in stride(from: Int64(0), through: 8_000, by: 200) {
            let posture: Vigil_V1_Posture = (2_000...2_200).contains(time) ? .upright : .lying
            try await again.frame(time, [object(2, at: 0.5, 0.8, posture: posture)])
        }
        #expect(again.lifecycle == ["OPENED r1 2400..5400 tracks [2]"])
    }

    @Test("person down by box shape counts only where no posture was assessed, when the rule asks for it")
    func personDownByShape() async throws {
        var lying = object(3, at: 0.5, 0.8)
        lying.box = box(0.3, 0.7, 0.6, 0.8)  // three times wider than tall
        let byShape = try MatchHarness("rules:\n  fall:\n    cameras: [cam-1]\n    kind: person_down\n    lying_for: 1s\n    min_width_to_height: 2\n")
        let postureOnly = try MatchHarness("rules:\n  fall:\n    cameras: [cam-1]\n    kind: person_down\n    lying_for: 1s\n")
        for time in stride(from: Int64(0), through: 2_000, by: 200) {
            try await byShape.frame(time, [lying])
            try await postureOnly.frame(time, [lying])
        }
        #expect(byShape.lifecycle == ["OPENED r1 0..1000 tracks [3]"])
        #expect(postureOnly.incidents.isEmpty)
    }

    @Test("wrong way opens when a track has gone min_displacement against the zone's direction, not before; going with it never counts")
    func wrongWay() async throws {
        let match = try MatchHarness("""
        rules:
          one-way:
            cameras: [cam-1]
            kind: wrong_way
            zone: [[0.0, 0.5], [1.0, 0.5], [1.0, 1.0], [0.0, 1.0]]
            direction: [1, 0]
            min_displacement: 0.1
        """)
        let against: [Double] = [0.8, 0.75, 0.68, 0.6]
        for (step, x) in against.enumerated() {
            let time = Int64(step) * 200
            try await match.frame(time, [object(1, at: 0.2 + 0.1 * Double(step), 0.8), object(2, at: x, 0.8)])
            if time == 200 { #expect(match.incidents.isEmpty, "0.05 against is not yet 0.1") }
        }
        #expect(match.lifecycle == ["OPENED r1 400..400 tracks [2]"])
    }

    @Test("detector class opens when the class was seen in min_frames of the last of_last_frames frames, and closes after close_after")
    func detectorClass() async throws {
        let match = try MatchHarness("""
        rules:
          smoke:
            cameras: [cam-1]
            kind: detector_class
            objects: {classes: [smoke], min_score: 0.6}
            min_frames: 3
            of_last_frames: 5
            close_after: 2s
        """)
        let smoke = object(5, at: 0.4, 0.4, label: "smoke", score: 0.9)
        let faint = object(6, at: 0.4, 0.4, label: "smoke", score: 0.4)
        try await match.frame(0, [smoke])
        try await match.frame(200, [faint])
        try await match.frame(400, [smoke])
        try await match.frame(600, [object(1, at: 0.5, 0.8)])
        #expect(match.incidents.isEmpty, "2 of the last 4 frames")
        try await match.frame(800, [smoke])
        #expect(match.lifecycle == ["OPENED r1 800..800 tracks [5]"])
        for time in stride(from: Int64(1_000), through: 3_000, by: 200) { try await match.frame(time) }
        #expect(match.lifecycle.last == "CLOSED r2 800..800 tracks [5]", "last held at 800: from 1 s, 2 of the last 5 frames")
    }

    @Test("sudden motion opens on a track faster than min_speed or on motion over min_motion_fraction of the zone; walking does not")
    func suddenMotion() async throws {
        let match = try MatchHarness("""
        rules:
          rush:
            cameras: [cam-1]
            kind: sudden_motion
            min_speed: 1.0
            purpose: A rush towards the exits of the hall
        """)
        // Track 1 walks 0.05 per 200 ms (0.25 of the frame per second); track 2 runs from 1 s to
        // 1.6 s, 0.25 per 200 ms (1.25 per second), then stands.
        for step in 0...10 {
            let time = Int64(step) * 200
            let running = 0.1 + 0.25 * Double(min(max(step - 5, 0), 3))
            try await match.frame(time, [object(1, at: 0.1 + 0.05 * Double(step), 0.8), object(2, at: running, 0.5)])
            if time == 1_000 { #expect(match.incidents.isEmpty, "track 2 has no speed yet at its first moving frame's start") }
        }
        #expect(match.lifecycle.first == "OPENED r1 1200..1200 tracks [2]", "\(match.lifecycle)")
        let rush = try #require(match.incidents.first)
        #expect(abs(rush.peakSpeed - 1.25) < 0.01 && rush.summary.contains("sudden motion (a heuristic): a track at 1.25 of the frame per second"), "\(rush.summary)")

        let burst = try MatchHarness("""
        rules:
          rush:
            cameras: [cam-1]
            kind: sudden_motion
            zone: [[0.0, 0.0], [0.5, 0.0], [0.5, 0.5], [0.0, 0.5]]
            min_motion_fraction: 0.6
            sustained_for: 400ms
            purpose: A rush towards the exits of the hall
        """)
        try await burst.frame(0, motion: [box(0, 0, 0.25, 0.5)])  // half the zone
        try await burst.frame(200, motion: [box(0, 0, 0.4, 0.5)])  // 80 %
        try await burst.frame(400, motion: [box(0, 0, 0.4, 0.5)])
        #expect(burst.incidents.isEmpty, "200 ms of it is not 400 ms")
        try await burst.frame(600, motion: [box(0, 0, 0.2, 0.5), box(0.1, 0, 0.5, 0.5)])  // overlapping: the whole zone
        #expect(burst.lifecycle == ["OPENED r1 200..600 tracks []"])
        #expect(abs(burst.incidents[0].peakMotionFraction - 1) < 0.01)
    }

    @Test("abandoned object opens once a still thing has had nobody within clearance for stationary_for; a person standing still never counts")
    func abandonedObject() async throws {
        let yaml = "rules:\n  left-bag:\n    cameras: [cam-1]\n    kind: abandoned_object\n    stationary_for: 10s\n    clearance: 0.1\n"
        let match = try MatchHarness(yaml)
        let bag = box(0.45, 0.62, 0.5, 0.7)
        // The bag appears at 1 s beside its owner, who walks away at 3 s; a passer-by at 0.9 keeps far.
        for time in stride(from: Int64(0), through: 13_000, by: 200) {
            var people = [object(9, at: 0.9, 0.9)]
            if time <= 3_000 { people.append(object(1, at: 0.53, 0.72)) }
            try await match.frame(time, people, still: time >= 1_000 ? [bag] : [])
            if time == 12_800 { #expect(match.incidents.isEmpty, "9.8 s unattended is not yet 10 s") }
        }
        #expect(match.lifecycle == ["OPENED r1 3000..13000 tracks []"])
        #expect(match.incidents[0].keyObjects.first?.box == bag)

        // Someone standing still is a static region too, with a person on it.
        let standing = try MatchHarness(yaml)
        for time in stride(from: Int64(0), through: 20_000, by: 200) {
            try await standing.frame(time, [object(2, at: 0.475, 0.7)], still: [box(0.445, 0.5, 0.505, 0.7)])
        }
        #expect(standing.incidents.isEmpty)
    }

    @Test("redaction health is quiet on normal frames and opens on each failure signal, judged by the camera's policy")
    func redactionHealth() async throws {
        let yaml = "rules:\n  privacy:\n    camera_labels: {site: yard}\n    kind: redaction_health\n    sustained_for: 1s\n"
        func harness(_ target: Vigil_V1_RedactionTarget) throws -> MatchHarness {
            let match = try MatchHarness(yaml)
            try match.declareCamera(.with {
                $0.labels = ["site": "yard"]
                $0.redactionPolicy.target = target
                $0.snapshotsPerMinute = 12
            }, at: -1_000)
            return match
        }
        let person = object(1, at: 0.5, 0.8)
        // Normal: persons masked, a snapshot every 5 s.
        let normal = try harness(.wholePersons)
        for time in stride(from: Int64(0), through: 30_000, by: 200) {
            try await normal.frame(time, [person], snapshot: time % 5_000 == 0 ? "cam-1/\(time)" : "")
        }
        #expect(normal.incidents.isEmpty, "\(normal.lifecycle)")

        // Whole-person camera, nothing masked from 2 s.
        let unmasked = try harness(.wholePersons)
        for time in stride(from: Int64(0), through: 4_000, by: 200) {
            try await unmasked.frame(time, [person], snapshot: time == 0 ? "cam-1/0" : "", masked: time >= 2_000 ? 0 : 1)
            if time == 2_800 { #expect(unmasked.incidents.isEmpty) }
        }
        #expect(unmasked.lifecycle == ["OPENED r1 2000..3000 tracks [1]"])
        #expect(unmasked.incidents[0].redactionFailure == "persons tracked and nothing masked under whole-person redaction")
        // The same frames on a face-redaction camera: nothing masked is normal there (no face seen).
        let faces = try harness(.faces)
        for time in stride(from: Int64(0), through: 4_000, by: 200) {
            try await faces.frame(time, [person], snapshot: time == 0 ? "cam-1/0" : "", masked: time >= 2_000 ? 0 : 1)
        }
        #expect(faces.incidents.isEmpty)

        // Either policy: the redactor not running on frames with persons.
        let notRun = try harness(.faces)
        for time in stride(from: Int64(0), through: 4_000, by: 200) {
            try await notRun.frame(time, [person], snapshot: time == 0 ? "cam-1/0" : "", redaction: time >= 1_000 ? .notRun : .ran)
        }
        #expect(notRun.lifecycle == ["OPENED r1 1000..2000 tracks [1]"])
        #expect(notRun.incidents[0].summary.hasPrefix("redaction may be failing on camera cam-1: the redactor did not run"))

        // Either policy: masks covering part of the persons' protected area. Fully covered, and
        // frames from a detect that does not report it, are normal.
        for (target, protected) in [(Vigil_V1_RedactionTarget.faces, "the persons' head regions"), (.wholePersons, "the persons")] {
            let shrunk = try harness(target)
            for time in stride(from: Int64(0), through: 4_000, by: 200) {
                let fraction: Float? = time < 1_000 ? nil : time < 2_000 ? 1 : 0.6
                try await shrunk.frame(time, [person], snapshot: time == 0 ? "cam-1/0" : "", maskedPersonFraction: fraction)
            }
            #expect(shrunk.lifecycle == ["OPENED r1 2000..3000 tracks [1]"], "\(target)")
            #expect(shrunk.incidents.first?.redactionFailure == "masks covered only 60 % of \(protected)")
        }

        // Objects seen with no snapshot for three snapshot intervals (15 s at 12 a minute).
        let noSnapshots = try harness(.wholePersons)
        for time in stride(from: Int64(0), through: 17_000, by: 200) {
            try await noSnapshots.frame(time, [person], snapshot: time == 0 ? "cam-1/0" : "")
        }
        #expect(noSnapshots.lifecycle == ["OPENED r1 15000..16000 tracks [1]"])
        #expect(noSnapshots.incidents[0].redactionFailure == "no snapshot for 15 s while objects were seen")
    }

    @Test("every camera cameras.v1 holds is judged by the built-in redaction health, with no rule for it: vigil-detect restarting over and over, frames not reaching detections while ingest reports the camera online")
    func builtInRedactionHealth() async throws {
        func harness() throws -> MatchHarness {
            let match = try MatchHarness("rules:\n  elsewhere:\n    cameras: [cam-9]\n    kind: camera_offline\n    sustained_for: 5s\n")
            try match.declareCamera(.with { $0.snapshotsPerMinute = 60 }, at: -1_000)
            return match
        }
        // A person whose track ids carry a new detector epoch (start time) at 0, 20, 40 and 60 s.
        let restarting = try harness()
        for time in stride(from: Int64(0), through: 80_000, by: 1_000) {
            let epoch = UInt64(1_000 + min(time / 20_000, 3))
            try await restarting.frame(time, [object(epoch << 20 | 1, at: 0.5, 0.8)], snapshot: "cam-1/\(time)")
        }
        let restarts = restarting.incidents.filter { $0.ruleID == "vigil-redaction-health" }
        #expect(restarts.first.map(MatchHarness.line) == "OPENED r1 60000..70000 tracks [\(1_003 << 20 | 1)]", "\(restarting.lifecycle)")
        #expect(restarts.first?.redactionFailure == "vigil-detect restarted (or the camera moved, or its frame size changed) 3 times in 10 min")
        #expect(restarts.first?.severity == .critical)

        // Frames for 10 s, then none while ingest keeps reporting the camera online at 5 frames/s.
        let starved = try harness()
        for time in stride(from: Int64(0), through: 10_000, by: 1_000) {
            try await starved.frame(time, [object(1_000 << 20 | 1, at: 0.5, 0.8)], snapshot: "cam-1/\(time)")
        }
        for time in stride(from: Int64(15_000), through: 60_000, by: 5_000) {
            try await starved.health(time, .online, framesPerSecond: 5)
        }
        try await starved.driver.advanceSilence(by: .seconds(10))
        let missing = starved.incidents.filter { $0.ruleID == "vigil-redaction-health" }
        #expect(missing.first.map(MatchHarness.line) == "OPENED r1 40000..50000 tracks []", "\(starved.lifecycle)")
        #expect(missing.first?.redactionFailure == "ingest reports the camera online and receiving frames, but none has reached detections for 30 s or more")

        // A camera cameras.v1 does not hold gets no built-in check; a normal stream raises nothing.
        let normal = try harness()
        for time in stride(from: Int64(0), through: 80_000, by: 1_000) {
            try await normal.frame(time, [object(1_000 << 20 | 1, at: 0.5, 0.8)], snapshot: "cam-1/\(time)")
            try await normal.health(time, .online, framesPerSecond: 5)
        }
        #expect(normal.incidents.isEmpty, "\(normal.lifecycle)")
    }

    @Test("rules files cannot use the reserved vigil- prefix: the built-in checks cannot be shadowed")
    func reservedRuleIDs() throws {
        #expect { try RulesFile.parse(yaml: "rules:\n  vigil-redaction-health:\n    cameras: [cam-1]\n    kind: redaction_health\n", file: "r.yaml") } throws: {
            "\($0)".contains("uses the reserved prefix vigil-")
        }
    }
}
