import ArgumentParser
import CommandLineSupport
import Foundation
import Match
import PlaneGeometry
import Rules
import SwiftProtobuf
import VigilSchema
import WorkerRuntime

/// Rule evaluations per second on one core: vigil-match's stage in process (no Kafka) on N
/// cameras × M rules, against the bare geometry of the same evaluations measured in the same run.
struct MatchBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "match",
        abstract: "vigil-match rule evaluations per second per core, in process: N cameras × M rules.",
        discussion: """
            Builds M rules watching every one of N cameras (zone intrusion, line crossing, hazard dwell and crowd density in turn, plus one camera-tamper and one camera-offline rule), and frames of --objects moving persons per camera, 200 ms apart. The stage judges every frame as the worker does once a record is taken — decoding the detections, looking up the rules in force at the frame's time, updating the camera's state, publishing incident revisions — with no Kafka and no changelog.

            An object-rule evaluation is one object judged by one rule that looks at objects. stage = evaluations per second; floor = the same evaluations as bare geometry (the point-in-zone or side-of-line test alone), the most any engine could do on this core. Goal: stage ≥ 5 million per second per core.
            """
    )

    @Option(help: "Cameras.") var cameras = 100
    @Option(help: "Rules, each watching every camera (2 of them camera rules).") var rules = 20
    @Option(help: "Persons per frame.") var objects = 10
    @Option(help: "Frames per camera.") var frames = 200

    func run() async throws {
        let table = RuleTable.make()
        let ruleSet = benchRules()
        for rule in ruleSet {
            _ = table.apply(TableRecord(
                topic: RuleTable.topic, key: Array(rule.ruleID.utf8), value: try rule.serializedBytes(),
                headers: [RecordHeader(key: TableHeaders.effectiveTime, value: "0")]
            ))
        }
        let stage = MatchStage(rules: RuleBook(rules: table, cameras: nil), lateness: .zero)
        let objectRules = ruleSet.filter { ![.cameraTamper, .cameraOffline].contains($0.kind) }
        let start: Int64 = 1_800_000_000_000
        // One frame sequence per camera, serialized up front: the stage decodes each, as on the cluster.
        let walkers = WalkingPersons(persons: objects)
        var inputs: [[StageInput]] = []
        for camera in 0..<cameras {
            let id = "cam-\(camera)"
            inputs.append(try (0..<frames).map { step in
                let time = start + Int64(step) * 200
                let frame = walkers.frame(camera: camera, id: id, step: step, time: time)
                return StageInput(
                    topic: MatchStage.detectionsTopic, offset: Int64(step), key: Array(id.utf8), value: try frame.serializedBytes(),
                    headers: [RecordHeader(key: RecordHeaders.eventTime, value: String(time))], timestampMilliseconds: time
                )
            })
        }
        let evaluations = Double(cameras * frames * objects * objectRules.count)
        writeLine("vigil bench match — \(cameras) cameras × \(ruleSet.count) rules (\(objectRules.count) on objects), \(objects) persons per frame, \(frames) frames per camera, 1 core")

        var states: [MatchStage.State?] = Array(repeating: nil, count: cameras)
        var timers = Array(repeating: Timers(), count: cameras)
        var incidents = 0
        let stageStart = ContinuousClock.now
        for step in 0..<frames {
            for camera in 0..<cameras {
                incidents += try await stage.process(
                    inputs[camera][step], key: "cam-\(camera)", eventTime: start + Int64(step) * 200, state: &states[camera], timers: &timers[camera]
                ).count
            }
        }
        let stageSeconds = elapsedSeconds(since: stageStart)

        let geometry = objectRules.map { rule -> (zone: [PlanePoint], line: (PlanePoint, PlanePoint)?) in
            if case .line(let line) = rule.geometry { return ([], (PlanePoint(line.start), PlanePoint(line.end))) }
            return (rule.zone.vertices.map(PlanePoint.init), nil)
        }
        let decoded = try inputs.map { try $0.map { try Vigil_V1_FrameDetections(serializedBytes: $0.value) } }
        var hits = 0
        let floorStart = ContinuousClock.now
        for step in 0..<frames {
            for camera in 0..<cameras {
                for object in decoded[camera][step].objects {
                    let point = groundPoint(of: object.box)
                    for shape in geometry {
                        if let line = shape.line {
                            if PlaneGeometry.side(of: point, from: line.0, to: line.1) > 0 { hits += 1 }
                        } else if PlaneGeometry.covers(shape.zone, point) {
                            hits += 1
                        }
                    }
                }
            }
        }
        let floorSeconds = elapsedSeconds(since: floorStart)
        let stageRate = evaluations / stageSeconds, floorRate = evaluations / floorSeconds
        writeLine("stage  \(format(stageRate)) evaluations/s  (\(format(Double(cameras * frames) / stageSeconds)) frames/s, \(incidents) incident revisions)")
        writeLine("floor  \(format(floorRate)) evaluations/s  bare point-in-zone / side-of-line tests (\(hits) hits)")
        writeLine(String(format: "stage / floor = %.2f; goal: stage ≥ 5,000,000/s per core (%.2f× the goal)", stageRate / floorRate, stageRate / 5_000_000))
    }

    /// Zone intrusion, line crossing, hazard dwell and crowd density in turn, plus a tamper and an offline rule.
    private func benchRules() -> [Vigil_V1_Rule] {
        let cameraIDs = (0..<cameras).map { "cam-\($0)" }
        func point(_ x: Float, _ y: Float) -> Vigil_V1_Point { .with { $0.x = x; $0.y = y } }
        let persons = Vigil_V1_ObjectFilter.with { $0.classLabels = ["person"]; $0.minScore = 0.5 }
        return (0..<rules).map { index in
            var rule = Vigil_V1_Rule()
            rule.ruleID = String(format: "rule-%02d", index)
            rule.version = 1
            rule.enabled = true
            rule.cameraIds = cameraIDs
            let left = Float(index % 5) * 0.18
            rule.zone.vertices = [point(left, 0.2), point(left + 0.3, 0.25), point(left + 0.28, 0.9), point(left + 0.02, 0.85)]
            switch index {
            case rules - 1:
                rule.kind = .cameraOffline
                rule.cameraOffline = .init()
            case rules - 2:
                rule.kind = .cameraTamper
                rule.cameraTamper = .init()
            default:
                switch index % 4 {
                case 0:
                    rule.kind = .zoneIntrusion
                    rule.zoneIntrusion = .with { $0.objects = persons; $0.confirmAfter = .init(seconds: 1) }
                case 1:
                    rule.kind = .lineCrossing
                    rule.line = .with { $0.start = point(left + 0.1, 0); $0.end = point(left + 0.1, 1) }
                    rule.lineCrossing = .with { $0.objects = persons; $0.direction = .both }
                case 2:
                    rule.kind = .hazardDwell
                    rule.hazardDwell = .with { $0.objects = persons; $0.dwell = .init(seconds: 5) }
                default:
                    rule.kind = .crowdDensity
                    rule.crowdDensity = .with { $0.objects = persons; $0.maxCount = 3; $0.sustainedFor = .init(seconds: 2) }
                }
            }
            return rule
        }
    }

    private func format(_ rate: Double) -> String {
        rate >= 1_000_000 ? String(format: "%.2f M", rate / 1_000_000) : String(format: "%.0f", rate)
    }
}
