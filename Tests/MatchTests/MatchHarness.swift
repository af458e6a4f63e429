import Cameras
import Foundation
import Rules
import SwiftProtobuf
import VigilSchema
import WorkerRuntime
import WorkerRuntimeTesting
@testable import Match

/// vigil-match's stage in memory, the way the runtime runs it: rules declared in YAML as an
/// operator writes them, frames and health records fed with event times relative to `start`,
/// and the incident revisions it publishes.
final class MatchHarness {
    /// Event time 0 of a test: 2027-01-15 08:00:00 UTC.
    static let start: Int64 = 1_800_000_000_000
    static let camera = "cam-1"

    let rules = RuleTable.make()
    let admins = LocalAdmins()
    let cameras: Table<Vigil_V1_CameraConfig>
    let driver: StatefulStageTestDriver<MatchStage>

    /// - Parameters:
    ///   - yaml: a rules file (`rules:` …), in force from event time 0 as version 1.
    ///   - restoredFrom: another harness's changelog, as a replica taking over the partition.
    init(_ yaml: String, lateness: Duration = .zero, restoredFrom changelog: [StageOutput] = []) throws {
        cameras = admins.table()
        driver = StatefulStageTestDriver(
            stage: MatchStage(rules: RuleBook(rules: rules, cameras: cameras), lateness: lateness),
            worker: "vigil-match", restoredFrom: changelog
        )
        try publish(yaml, version: 1, at: 0)
    }

    /// Publishes every rule of `yaml` as `version`, in force from event time `at`.
    func publish(_ yaml: String, version: UInt64, at time: Int64) throws {
        for var rule in try RulesFile.parse(yaml: yaml, file: "test.yaml", knownClasses: ["person", "smoke"]) {
            rule.version = version
            apply(key: rule.ruleID, value: try rule.serializedBytes(), at: time)
        }
    }

    /// Declares camera `camera` (its redaction policy, snapshot rate) from event time `at`.
    func declareCamera(_ config: Vigil_V1_CameraConfig, at time: Int64) throws {
        var config = config
        if config.cameraID.isEmpty { config.cameraID = Self.camera }
        let outcome = try admins.apply(config, to: cameras, effectiveMilliseconds: Self.start + time)
        precondition(outcome == .changed, "camera record not applied: \(outcome)")
    }

    /// Deletes rule `id` from event time `at`.
    func delete(_ id: String, at time: Int64) {
        apply(key: id, value: [], at: time)
    }

    private func apply(key: String, value: [UInt8], at time: Int64) {
        let outcome = rules.apply(TableRecord(
            topic: RuleTable.topic, key: Array(key.utf8), value: value,
            headers: [RecordHeader(key: TableHeaders.effectiveTime, value: String(Self.start + time))]
        ))
        precondition(outcome == .changed || outcome == .unchanged, "rule record not applied: \(outcome)")
    }

    /// Feeds the detections of one frame captured at `time` ms after the start.
    @discardableResult
    func frame(
        _ time: Int64, _ objects: [Vigil_V1_DetectedObject] = [], tamper: [Vigil_V1_TamperKind] = [], snapshot: String = "",
        motion: [Vigil_V1_BoundingBox] = [], still: [Vigil_V1_BoundingBox] = [], redaction: Vigil_V1_RedactionStatus = .ran, masked: UInt32? = nil,
        maskedPersonFraction: Float? = nil, camera: String = camera, offset: Int64? = nil
    ) async throws -> RecordOutcome {
        var frame = Vigil_V1_FrameDetections()
        frame.cameraID = camera
        frame.captureTime = Google_Protobuf_Timestamp(milliseconds: Self.start + time)
        frame.objects = objects
        frame.motionRegions = motion
        frame.staticRegions = still
        frame.tamperSignals = tamper.map { kind in
            var signal = Vigil_V1_TamperSignal()
            signal.kind = kind
            signal.score = 0.9
            return signal
        }
        frame.snapshotID = snapshot
        frame.redaction = redaction
        frame.redactedRegionCount = masked ?? UInt32(objects.filter { $0.classLabel == "person" }.count)
        if let maskedPersonFraction { frame.maskedPersonFraction = maskedPersonFraction }
        return try await feed(MatchStage.detectionsTopic, camera: camera, time: time, value: try frame.serializedBytes(), offset: offset)
    }

    /// Feeds a health record observed at `time`.
    @discardableResult
    func health(
        _ time: Int64, _ state: Vigil_V1_CameraState, reason: String = "", lastFrame: Int64? = nil, framesPerSecond: Double = 0, camera: String = camera
    ) async throws -> RecordOutcome {
        var health = Vigil_V1_CameraHealth()
        health.cameraID = camera
        health.state = state
        health.framesPerSecond = framesPerSecond
        health.reason = reason
        if let lastFrame { health.lastFrameTime = Google_Protobuf_Timestamp(milliseconds: Self.start + lastFrame) }
        return try await feed(MatchStage.healthTopic, camera: camera, time: time, value: try health.serializedBytes(), offset: nil)
    }

    func feed(_ topic: String, camera: String, time: Int64, value: [UInt8], offset: Int64?) async throws -> RecordOutcome {
        var input = StageInput(
            topic: topic, key: Array(camera.utf8), value: value,
            headers: [RecordHeader(key: RecordHeaders.eventTime, value: String(Self.start + time))], timestampMilliseconds: Self.start + time
        )
        if let offset { input.offset = offset }
        return try await driver.feed(input)
    }

    /// Every incident revision published so far, in order.
    var incidents: [Vigil_V1_Incident] {
        driver.outputs.filter { $0.topic == MatchStage.incidentsTopic }.map { try! Vigil_V1_Incident(serializedBytes: $0.value) }
    }

    /// The revisions as short comparable lines: "state rev start..end tracks".
    var lifecycle: [String] {
        incidents.map(Self.line)
    }

    static func line(_ incident: Vigil_V1_Incident) -> String {
        let state = switch incident.state {
        case .opened: "OPENED"
        case .updated: "UPDATED"
        case .closed: "CLOSED"
        default: "?"
        }
        return "\(state) r\(incident.revision) \(relative(incident.windowStart))..\(relative(incident.windowEnd)) tracks \(incident.trackIds)"
    }

    static func relative(_ timestamp: Google_Protobuf_Timestamp) -> Int64 {
        timestamp.milliseconds - start
    }
}

/// A detected person (or `label`) standing at (`x`, `y`): the bottom middle of its box, the
/// point rules follow.
func object(
    _ track: UInt64, at x: Double, _ y: Double, label: String = "person", score: Float = 0.8, posture: Vigil_V1_Posture = .unspecified
) -> Vigil_V1_DetectedObject {
    var object = Vigil_V1_DetectedObject()
    object.posture = posture
    object.classLabel = label
    object.score = score
    object.trackID = track
    object.box.xMin = Float(x - 0.03)
    object.box.xMax = Float(x + 0.03)
    object.box.yMin = Float(y - 0.2)
    object.box.yMax = Float(y)
    return object
}

/// A box in fractions of the frame.
func box(_ xMin: Float, _ yMin: Float, _ xMax: Float, _ yMax: Float) -> Vigil_V1_BoundingBox {
    .with { $0.xMin = xMin; $0.yMin = yMin; $0.xMax = xMax; $0.yMax = yMax }
}
