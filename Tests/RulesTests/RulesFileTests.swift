import DeclarationFiles
import Foundation
import PlaneGeometry
import SwiftProtobuf
import Testing
import VigilSchema
@testable import Rules

@Suite("Rules file: parsing and checks")
struct RulesFileTests {
    static let valid = """
        rules:
          platform-2-edge:
            cameras: [platform-2]
            kind: hazard_dwell
            zone: [[0.05, 0.80], [0.95, 0.75], [0.95, 0.95], [0.05, 0.95]]
            objects: {classes: [person], min_score: 0.6}
            dwell: 10s
            severity: critical
            purpose: Nobody stays on the track side of the platform edge
          gate-count:
            camera_labels: {site: north}
            kind: line_crossing
            line: {from: [0.5, 0.1], to: [0.5, 0.9]}
            direction: forward
          hall-capacity:
            cameras: [hall-1, hall-2]
            kind: crowd_density
            zone: [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]]
            area_m2: 40
            max_per_m2: 2.5
            sustained_for: 30s
            purpose: Capacity of the hall for fire safety (100 people)
          dock-tamper:
            cameras: [dock-1]
            kind: camera_tamper
            tamper_kinds: [covered, moved]
            sustained_for: 5s
            alert: {confirm_revisions: 2, confirm_within: 20s, escalate_after: 0s}
          dock-offline:
            cameras: [dock-1]
            kind: camera_offline
            sustained_for: 1m
            enabled: false
          fence-intrusion:
            cameras: [yard]
            kind: zone_intrusion
            zone: [[0.0, 0.0], [0.3, 0.0], [0.3, 0.3]]
            confirm_after: 500ms
        """

    static func errors(_ yaml: String, classes: Set<String> = RulesFile.builtInClasses) -> [DeclarationProblem] {
        do {
            _ = try RulesFile.parse(yaml: yaml, file: "rules.yaml", knownClasses: classes)
            return []
        } catch {
            return error.errors
        }
    }

    @Test("every key of a valid file lands in the rule")
    func validFile() throws {
        let rules = Dictionary(uniqueKeysWithValues: try RulesFile.parse(yaml: Self.valid, file: "rules.yaml").map { ($0.ruleID, $0) })
        #expect(rules.count == 6)
        let dwell = try #require(rules["platform-2-edge"])
        #expect(dwell.kind == .hazardDwell && dwell.cameraIds == ["platform-2"] && dwell.severity == .critical && dwell.enabled)
        #expect(dwell.zone.vertices.count == 4 && dwell.hazardDwell.dwell.seconds == 10)
        #expect(dwell.hazardDwell.objects.classLabels == ["person"] && dwell.hazardDwell.objects.minScore == 0.6)
        let line = try #require(rules["gate-count"])
        #expect(line.cameraSelector == ["site": "north"] && line.line.end.y == 0.9 && line.lineCrossing.direction == .forward)
        #expect(line.severity == .warning, "warning when not given")
        let crowd = try #require(rules["hall-capacity"])
        #expect(crowd.crowdDensity.maxCount == 100 && crowd.crowdDensity.zoneAreaSquareMetres == 40 && crowd.crowdDensity.sustainedFor.seconds == 30)
        #expect(rules["dock-tamper"]?.cameraTamper.kinds == [.covered, .moved])
        let policy = try #require(rules["dock-tamper"]?.alertPolicy)
        #expect(policy.confirmRevisions == 2 && policy.confirmWithin.seconds == 20 && policy.hasEscalateAfter && policy.escalateAfter.seconds == 0)
        #expect(rules["gate-count"]?.hasAlertPolicy == false, "no policy when not given: the kind's defaults apply")
        #expect(rules["dock-offline"]?.enabled == false && rules["dock-offline"]?.cameraOffline.sustainedFor.seconds == 60)
        #expect(rules["fence-intrusion"]?.zoneIntrusion.confirmAfter.nanos == 500_000_000)
    }

    @Test("bad input gives clear errors with file, line, rule and key, all of them at once",
          arguments: [
              ("self-intersecting zone", "kind: hazard_dwell\n    dwell: 5s\n    zone: [[0.1, 0.1], [0.9, 0.9], [0.9, 0.1], [0.1, 0.9]]", "rules.r.zone", "crosses itself"),
              ("zone outside the frame", "kind: hazard_dwell\n    dwell: 5s\n    zone: [[0.1, 0.1], [1.4, 0.1], [0.9, 0.9]]", "rules.r.zone[1]", "from 0 to 1"),
              ("zone without area", "kind: zone_intrusion\n    zone: [[0.1, 0.1], [0.5, 0.5], [0.9, 0.9]]", "rules.r.zone", "no area"),
              ("unknown class", "kind: zone_intrusion\n    zone: [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9]]\n    objects: {classes: [fire]}", "rules.r.objects.classes", "\"fire\" is not a class detect publishes"),
              ("crowd rule without a purpose", "kind: crowd_density\n    zone: [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9]]\n    max_count: 5\n    sustained_for: 10s", "rules.r.purpose", "safety purpose"),
              ("crowd rule with count and density", "kind: crowd_density\n    purpose: capacity of the room\n    zone: [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9]]\n    max_count: 5\n    area_m2: 10\n    max_per_m2: 1\n    sustained_for: 10s", "rules.r", "not both"),
              ("a key of another kind", "kind: line_crossing\n    line: {from: [0.1, 0.1], to: [0.9, 0.9]}\n    dwell: 5s", "rules.r.dwell", "belongs to hazard_dwell"),
              ("unknown kind", "kind: loitering", "rules.r.kind", "not a rule kind"),
              ("a line of one point", "kind: line_crossing\n    line: {from: [0.5, 0.5], to: [0.5, 0.5]}", "rules.r.line", "same point"),
              ("a bad duration", "kind: hazard_dwell\n    zone: [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9]]\n    dwell: soon", "rules.r.dwell", "duration"),
              ("a detector class no loaded model has", "kind: detector_class\n    objects: {classes: [fire]}", "rules.r.objects.classes", "\"fire\" is not a class detect publishes"),
              ("a detector-class rule without classes", "kind: detector_class", "rules.r.objects", "the classes to watch"),
              ("more frames than the window", "kind: detector_class\n    objects: {classes: [person]}\n    min_frames: 6\n    of_last_frames: 5", "rules.r.min_frames", "more than of_last_frames"),
              ("sudden motion without a purpose", "kind: sudden_motion\n    min_speed: 1", "rules.r.purpose", "not a fight detector"),
              ("sudden motion without a threshold", "kind: sudden_motion\n    purpose: a rush towards the exits", "rules.r", "min_speed"),
              ("wrong way without a direction", "kind: wrong_way\n    zone: [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9]]", "rules.r.direction", "the way traffic should go"),
              ("wrong way with a zero direction", "kind: wrong_way\n    zone: [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9]]\n    direction: [0, 0]", "rules.r.direction", "not [0, 0]"),
              ("abandoned persons", "kind: abandoned_object\n    stationary_for: 30s\n    objects: {classes: [person]}", "rules.r.objects.classes", "cannot include person"),
              ("person down without its time", "kind: person_down", "rules.r.lying_for", "is missing"),
              ("an invalid time zone", "kind: camera_offline\n    schedule: {time_zone: Europe/Atlantis, windows: [{days: [mon], from: \"08:00\", to: \"18:00\"}]}", "rules.r.schedule.time_zone", "not an IANA time zone"),
              ("a schedule without windows", "kind: camera_offline\n    schedule: {time_zone: UTC}", "rules.r.schedule.windows", "at least one window"),
              ("a bad weekday", "kind: camera_offline\n    schedule: {time_zone: UTC, windows: [{days: [mon, someday], from: \"08:00\", to: \"18:00\"}]}", "rules.r.schedule.windows[0].days", "\"someday\" is not a weekday"),
              ("an unknown alert policy key", "kind: camera_offline\n    alert: {confirm: 2}", "rules.r.alert.confirm", "confirm_revisions, confirm_within"),
              ("a fractional confirmation", "kind: camera_offline\n    alert: {confirm_revisions: 1.5}", "rules.r.alert.confirm_revisions", "whole number"),
              ("a bad escalation time", "kind: camera_offline\n    alert: {escalate_after: later}", "rules.r.alert.escalate_after", "duration"),
              ("a bad time of day", "kind: camera_offline\n    schedule: {time_zone: UTC, windows: [{days: [mon], from: \"8h\", to: \"25:00\"}]}", "rules.r.schedule.windows[0].from", "not a time of day"),
          ])
    func badInput(what: String, body: String, keyPath: String, message: String) {
        let found = Self.errors("rules:\n  r:\n    cameras: [c1]\n    \(body)\n")
        #expect(found.contains { $0.keyPath == keyPath && $0.message.contains(message) && $0.line != nil }, "\(what): \(found.map(\.description))")
    }

    @Test("Rule engine II's kinds and schedules: every key lands in the rule")
    func engineTwoKeys() throws {
        let yaml = """
            rules:
              fall:
                cameras: [yard-1]
                kind: person_down
                lying_for: 5s
                min_width_to_height: 1.5
                schedule:
                  time_zone: Europe/Berlin
                  windows:
                    - {days: [mon, friday], from: "22:00", to: "06:00"}
                    - {days: [sun], from: "00:00", to: "24:00"}
              bag:
                cameras: [hall-1]
                kind: abandoned_object
                zone: [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9]]
                stationary_for: 60s
              one-way:
                cameras: [gate-1]
                kind: wrong_way
                zone: [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9]]
                direction: [0, -1]
                min_displacement: 0.2
              smoke:
                cameras: [plant-1]
                kind: detector_class
                objects: {classes: [smoke], min_score: 0.7}
                min_frames: 4
                of_last_frames: 6
              rush:
                cameras: [hall-1]
                kind: sudden_motion
                min_motion_fraction: 0.5
                sustained_for: 1s
                purpose: A rush towards the exits of the hall
              privacy:
                camera_labels: {site: north}
                kind: redaction_health
                max_snapshot_gap: 2m
            """
        let rules = Dictionary(uniqueKeysWithValues: try RulesFile.parse(yaml: yaml, file: "r.yaml", knownClasses: ["person", "smoke"]).map { ($0.ruleID, $0) })
        let fall = try #require(rules["fall"])
        #expect(fall.kind == .personDown && fall.personDown.lyingFor.seconds == 5 && fall.personDown.minWidthToHeight == 1.5 && fall.personDown.minScore == 0.5)
        // 22:00 to 06:00 runs over midnight: Monday evening and Tuesday morning, Friday evening and Saturday morning.
        #expect(fall.schedule.timeZone == "Europe/Berlin")
        #expect(fall.schedule.windows.map { "\($0.day) \($0.startMinute)-\($0.endMinute)" } == [
            "monday 1320-1440", "tuesday 0-360", "friday 1320-1440", "saturday 0-360", "sunday 0-1440",
        ])
        #expect(rules["bag"]?.abandonedObject.stationaryFor.seconds == 60 && rules["bag"]?.abandonedObject.clearance == 0.1)
        #expect(rules["bag"]?.abandonedObject.objects.classLabels == [], "static regions only")
        #expect(rules["one-way"]?.wrongWay.direction.y == -1 && rules["one-way"]?.wrongWay.minDisplacement == 0.2)
        #expect(rules["smoke"]?.detectorClass.minFrames == 4 && rules["smoke"]?.detectorClass.ofLastFrames == 6 && rules["smoke"]?.detectorClass.objects.minScore == 0.7)
        #expect(rules["rush"]?.suddenMotion.minMotionFraction == 0.5 && rules["rush"]?.suddenMotion.minSpeed == 0)
        #expect(rules["privacy"]?.redactionHealth.maxSnapshotGap.seconds == 120 && rules["privacy"]?.redactionHealth.sustainedFor.seconds == 2)
    }

    @Test("a rule without cameras, and every problem of a file is listed, not just the first")
    func allProblems() {
        let found = Self.errors("""
            rules:
              no-cameras:
                kind: camera_offline
              Bad Id:
                cameras: [c1]
                kind: camera_offline
              two:
                cameras: [c1]
                kind: camera_tamper
                tamper_kinds: [sprayed]
            """)
        #expect(found.count == 3, "\(found.map(\.description))")
        #expect(found.contains { $0.keyPath == "rules.no-cameras.cameras" })
        #expect(found.contains { $0.message.contains("not a valid rule id") })
        #expect(found.contains { $0.message.contains("\"sprayed\" is not a tamper kind") })
        #expect(found.map(\.line) == found.map(\.line).sorted { ($0 ?? 0) < ($1 ?? 0) }, "in file order")
    }

    @Test("an operator model's classes are accepted once its slot names them")
    func slotClasses() {
        let rule = "rules:\n  r:\n    cameras: [c1]\n    kind: zone_intrusion\n    zone: [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9]]\n    objects: {classes: [fire, smoke]}\n"
        #expect(!Self.errors(rule).isEmpty)
        #expect(Self.errors(rule, classes: ["person", "fire", "smoke"]).isEmpty)
    }

    @Test("the repository's example rules are valid")
    func examples() throws {
        let examples = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("rules/examples.yaml")
        let rules = try RulesFile.load(paths: [examples.path])
        #expect(Set(rules.map(\.kind)) == [.hazardDwell, .lineCrossing, .zoneIntrusion, .crowdDensity, .cameraTamper, .cameraOffline])
    }

    @Test("rule ids are unique across files")
    func uniqueAcrossFiles() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-rules-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let rule = "rules:\n  same:\n    cameras: [c1]\n    kind: camera_offline\n"
        for name in ["a.yaml", "b.yaml"] { try rule.write(to: directory.appendingPathComponent(name), atomically: true, encoding: .utf8) }
        let error = #expect(throws: DeclarationProblems.self) {
            try RulesFile.load(paths: ["a.yaml", "b.yaml"].map { directory.appendingPathComponent($0).path })
        }
        #expect(error?.errors.first?.message.contains("unique") == true)
    }
}

@Suite("Plane geometry")
struct PlaneGeometryTests {
    static func points(_ pairs: [(Double, Double)]) -> [PlanePoint] { pairs.map { PlanePoint(x: $0.0, y: $0.1) } }

    @Test("the right of a directed line as seen in the image (y down)")
    func sides() {
        let from = PlanePoint(x: 0.5, y: 0.1), to = PlanePoint(x: 0.5, y: 0.9)  // pointing down the image
        #expect(PlaneGeometry.side(of: PlanePoint(x: 0.2, y: 0.5), from: from, to: to) > 0, "walking down the image, x < 0.5 is on the right")
        #expect(PlaneGeometry.side(of: PlanePoint(x: 0.8, y: 0.5), from: from, to: to) < 0)
        #expect(PlaneGeometry.side(of: PlanePoint(x: 0.5, y: 0.3), from: from, to: to) == 0)
    }

    @Test("a bow tie crosses itself; a concave polygon does not; containment with the boundary")
    func polygons() {
        #expect(PlaneGeometry.selfIntersection(Self.points([(0.1, 0.1), (0.9, 0.9), (0.9, 0.1), (0.1, 0.9)])) != nil)
        let concave = Self.points([(0.1, 0.1), (0.9, 0.1), (0.9, 0.9), (0.5, 0.4), (0.1, 0.9)])
        #expect(PlaneGeometry.selfIntersection(concave) == nil)
        #expect(PlaneGeometry.covers(concave, PlanePoint(x: 0.2, y: 0.5)))
        #expect(!PlaneGeometry.covers(concave, PlanePoint(x: 0.5, y: 0.7)), "the notch is outside")
        #expect(PlaneGeometry.covers(concave, PlanePoint(x: 0.5, y: 0.1)), "the boundary counts")
    }
}
