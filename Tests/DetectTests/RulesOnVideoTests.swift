import Foundation
import Match
import Rules
import SwiftProtobuf
import Testing
import VigilSchema
import WorkerRuntime
import WorkerRuntimeTesting
@testable import Detect

/// Real video through detect → match: vtest.avi frames 0–449 at 5 frames/s, judged by a line,
/// a dwell and a crowd rule whose ground truth was counted by hand (`vtest-rules.json`).
@Suite("Rules on vtest.avi", .serialized)
struct RulesOnVideoTests {
    struct Truth: Decodable {
        struct Line: Decodable {
            struct Crossing: Decodable {
                var frame: Int
                var direction: String
            }

            var from: [Double]
            var to: [Double]
            var crossings: [Crossing]
        }

        struct Dwell: Decodable {
            var name: String
            var zone: [[Double]]
            var stood_from_frame: Int
            var stood_until_frame: Int
        }

        struct Crowd: Decodable {
            var zone: [[Double]]
            var at_least_3_from_frame: Int
            var at_least_3_until_frame: Int
        }

        var line: Line
        var dwells: [Dwell]
        var crowd: Crowd
    }

    /// The source frame (10 frames/s) of an event time.
    static func frame(_ timestamp: Google_Protobuf_Timestamp) -> Int {
        Int((timestamp.milliseconds - DetectStageTests.captureMilliseconds) / 100)
    }

    /// The rules of a rules file, each at version 1 and in force long before the test frames.
    static func ruleBook(yaml: String, file: String, cameras: Table<Vigil_V1_CameraConfig>? = nil) throws -> RuleBook {
        let rules = RuleTable.make()
        for var rule in try RulesFile.parse(yaml: yaml, file: file) {
            rule.version = 1
            _ = rules.apply(TableRecord(
                topic: RuleTable.topic, key: Array(rule.ruleID.utf8), value: try rule.serializedBytes(),
                headers: [RecordHeader(key: TableHeaders.effectiveTime, value: String(DetectStageTests.captureMilliseconds - 60_000))]
            ))
        }
        return RuleBook(rules: rules, cameras: cameras)
    }

    /// Every incident record vigil-match publishes for `frames` (one camera's, in order), after
    /// which the camera stays silent for `quiet`, so that open incidents close.
    static func incidents(of frames: [Vigil_V1_FrameDetections], camera: String, rules: RuleBook, quiet: Duration = .seconds(70)) async throws -> [Vigil_V1_Incident] {
        let driver = StatefulStageTestDriver(stage: MatchStage(rules: rules, lateness: .zero))
        for frame in frames {
            let time = frame.captureTime.milliseconds
            try await driver.feed(StageInput(
                topic: MatchStage.detectionsTopic, key: Array(camera.utf8), value: try frame.serializedBytes(),
                headers: [RecordHeader(key: RecordHeaders.eventTime, value: String(time))], timestampMilliseconds: time
            ))
        }
        for _ in 0..<Int(quiet.components.seconds) { try await driver.advanceSilence(by: .seconds(1)) }
        return try driver.outputs.map { try Vigil_V1_Incident(serializedBytes: $0.value) }
    }

    @Test("line crossings against a hand count, a dwell and a crowd where people stood and gathered", .enabled(if: FileManager.default.fileExists(atPath: TrackingTests.video)))
    func rulesOnVtest() async throws {
        let truth = try JSONDecoder().decode(Truth.self, from: Data(contentsOf: fixtures.appendingPathComponent("vtest-rules.json")))
        func polygon(_ points: [[Double]]) -> String { "[" + points.map { "[\($0[0]), \($0[1])]" }.joined(separator: ", ") + "]" }
        var yaml = """
        rules:
          path-line:
            cameras: [vtest]
            kind: line_crossing
            line: {from: [\(truth.line.from[0]), \(truth.line.from[1])], to: [\(truth.line.to[0]), \(truth.line.to[1])]}
            close_after: 60s
          path-crowd:
            cameras: [vtest]
            kind: crowd_density
            zone: \(polygon(truth.crowd.zone))
            max_count: 3
            sustained_for: 1s
            purpose: Crowding test on the path

        """
        for zone in truth.dwells {
            yaml += "  \(zone.name)-dwell:\n    cameras: [vtest]\n    kind: hazard_dwell\n    zone: \(polygon(zone.zone))\n    dwell: 5s\n"
        }
        let rules = try Self.ruleBook(yaml: yaml, file: "vtest-rules.yaml")
        // Every second frame (5 frames/s) of frames 0–449.
        let frames = try TrackingTests.analyzedFrames(select: "lt(n\\,450)*not(mod(n\\,2))", expecting: 225)
        let incidents = try await Self.incidents(of: frames, camera: "vtest", rules: rules)
        let final = Dictionary(incidents.map { ($0.incidentID, $0) }, uniquingKeysWith: { $0.revision > $1.revision ? $0 : $1 })
        #expect(final.values.allSatisfy { $0.state == .closed }, "every incident closed once the camera went quiet")

        // Line crossings: every line incident's counts, against the hand count.
        let lineIncidents = final.values.filter { $0.ruleID == "path-line" }
        let forward = lineIncidents.reduce(0) { $0 + Int($1.forwardCrossings) }
        let backward = lineIncidents.reduce(0) { $0 + Int($1.backwardCrossings) }
        let truthForward = truth.line.crossings.filter { $0.direction == "forward" }.count
        let truthBackward = truth.line.crossings.filter { $0.direction == "backward" }.count
        let error = abs(forward - truthForward) + abs(backward - truthBackward)
        print("line crossings on vtest.avi frames 0–449: counted forward \(forward), backward \(backward); by hand \(truthForward) and \(truthBackward); error \(error) of \(truthForward + truthBackward)")

        // Dwells: where people stood, by hand; nobody else stays 5 s in those zones.
        var dwells: [String: [Vigil_V1_Incident]] = [:]
        for zone in truth.dwells {
            dwells[zone.name] = final.values.filter { $0.ruleID == "\(zone.name)-dwell" }.sorted { $0.windowStart.seconds < $1.windowStart.seconds }
            let windows = dwells[zone.name]!.map { "frames \(Self.frame($0.windowStart))–\(Self.frame($0.windowEnd)) tracks \($0.trackIds)" }
            print("\(zone.name) dwell incidents: \(windows) (by hand: standing from frame \(zone.stood_from_frame) to \(zone.stood_until_frame))")
        }
        // Crowd: three or more on the path from frame 285 to 330.
        let crowds = final.values.filter { $0.ruleID == "path-crowd" }.sorted { $0.windowStart.seconds < $1.windowStart.seconds }
        let crowdWindows = crowds.map { "frames \(Self.frame($0.windowStart))–\(Self.frame($0.windowEnd)) peak \($0.peakCount)" }
        print("crowd incidents: \(crowdWindows) (by hand: ≥ 3 from frame \(truth.crowd.at_least_3_from_frame) to \(truth.crowd.at_least_3_until_frame))")

        // Measured when this was written: 2 forward and 1 backward of 4 and 2 (error 3): one
        // person lost for the two frames in which she crossed (a new track id on the other
        // side), one not detected while crossing, two crossing together seen as one.
        #expect(error <= 3, "line crossing count no further from the hand count than measured")
        #expect(forward <= truthForward && backward <= truthBackward, "no crossing nobody made")
        // The man alone on the pavement is found; the group by the sign was missed when this
        // was written (the standing man vanishes for 2.5 s at a time behind the others).
        #expect(dwells["pavement"]?.isEmpty == false, "the man standing alone dwells")
        for zone in truth.dwells {
            for dwell in dwells[zone.name] ?? [] {
                // A dwell starts when a person entered the zone: while someone stood there.
                #expect((zone.stood_from_frame - 20...zone.stood_until_frame).contains(Self.frame(dwell.windowStart)), "a dwell in \(zone.name) nobody stood for: frame \(Self.frame(dwell.windowStart))")
            }
        }
        for crowd in crowds {
            #expect((truth.crowd.at_least_3_from_frame - 20...truth.crowd.at_least_3_until_frame).contains(Self.frame(crowd.windowStart)), "a crowd where there was none: \(crowdWindows)")
        }
    }
}
