import Foundation
import Metrics
import SwiftProtobuf
import VigilSchema
import WorkerRuntime

/// vigil-match's stage: `detections.v1` and `camera.health.v1` → `incidents.v1`, per camera,
/// in event time, with the rules of `rules.v1` in force at each record's time.
///
/// The runtime merges the two inputs by event time, holds the camera's state in its changelog,
/// and dead-letters records older than the camera's watermark (newest event time minus the
/// allowed lateness). Within the lateness, records may arrive out of order: the stage keeps
/// them waiting in the camera's state until the watermark passes them, then judges them in
/// event-time order, so the incidents are those of the in-order run.
///
/// A camera that goes quiet still moves on, by the runtime's silence timers (caught-up time
/// without a record): after a second its waiting records are judged without waiting for later
/// ones, and once the time to an incident's deadline has passed quietly, the incident closes
/// (or a camera-offline incident opens) as a record at that time would have made it. A record
/// arriving after that, but older than what was judged, is dead-lettered as late.
public struct MatchStage: StatefulStage {
    public static let detectionsTopic = "detections.v1"
    public static let healthTopic = "camera.health.v1"
    public static let incidentsTopic = "incidents.v1"
    /// Caught-up time without a record after which a camera's waiting records are judged
    /// (or the allowed lateness, when longer): nothing acts on silence sooner.
    var judgeWaitingAfter: Duration { max(.seconds(1), allowedLateness) }
    /// Silence timers: judge the waiting records; reach the next incident deadline.
    static let judgeWaitingTimer = "judge-waiting"
    static let deadlineTimer = "deadline"

    public let allowedLateness: Duration
    let rules: RuleBook

    public init(rules: RuleBook, allowedLateness: Duration) {
        self.rules = rules
        self.allowedLateness = allowedLateness
    }

    /// A camera's rule state, as the runtime keeps it.
    public struct State: StageState {
        public var camera: Vigil_V1_MatchCameraState

        public init(camera: Vigil_V1_MatchCameraState = .init()) {
            self.camera = camera
        }

        public init(stateBytes: [UInt8]) throws {
            camera = try Vigil_V1_MatchCameraState(serializedBytes: stateBytes)
        }

        /// Deterministic: the same state always gives the same bytes.
        public var stateBytes: [UInt8] {
            var options = BinaryEncodingOptions()
            options.useDeterministicOrdering = true
            return (try? camera.serializedBytes(options: options)) ?? []
        }
    }

    public func process(_ input: StageInput, key: String, eventTime: Int64, state: inout State?, timers: inout Timers) async throws -> [StageOutput] {
        var waiting = Vigil_V1_PendingMatchInput()
        waiting.eventMs = eventTime
        waiting.topic = input.topic
        waiting.offset = input.offset
        switch input.topic {
        case Self.detectionsTopic: waiting.frame = try input.cameraMessage(Vigil_V1_FrameDetections.self) { $0.cameraID }
        case Self.healthTopic: waiting.health = try input.cameraMessage(Vigil_V1_CameraHealth.self) { $0.cameraID }
        default: throw MismatchedRecord(reason: "vigil-match reads \(Self.detectionsTopic) and \(Self.healthTopic), not \(input.topic)")
        }
        var camera = state?.camera ?? Vigil_V1_MatchCameraState()
        if eventTime < camera.judgedUntilMs {
            throw LateAfterQuiet(eventTime: eventTime, judgedUntil: camera.judgedUntilMs)
        }
        let place = camera.pending.firstIndex { Self.order($0) > Self.order(waiting) } ?? camera.pending.endIndex
        camera.pending.insert(waiting, at: place)
        camera.newestEventMs = max(camera.newestEventMs, eventTime)
        var judge = CameraJudge(cameraID: key, state: camera)
        judgeWaiting(&judge, upTo: camera.newestEventMs - allowedLateness.milliseconds)
        return finish(judge, key: key, state: &state, timers: &timers)
    }

    public func timerFired(_ timer: FiredTimer, key: String, state: inout State?, timers: inout Timers) async throws -> [StageOutput] {
        guard let camera = state?.camera else { return [] }
        // Quiet: nothing earlier is taken to be coming, so everything waiting is judged; at a
        // deadline, time moves on to it.
        var judge = CameraJudge(cameraID: key, state: camera)
        judgeWaiting(&judge, upTo: .max)
        if timer.name == Self.deadlineTimer {
            let time = max(timer.scheduledMilliseconds, judge.state.judgedUntilMs)
            judge.advance(to: time, rules: rules.rules(for: key, atMilliseconds: time))
        }
        return finish(judge, key: key, state: &state, timers: &timers)
    }

    /// Judges the waiting records at or before `watermark`, oldest first.
    private func judgeWaiting(_ judge: inout CameraJudge, upTo watermark: Int64) {
        var judged = 0
        for waiting in judge.state.pending {
            guard waiting.eventMs <= watermark else { break }
            let inForce = rules.rules(for: judge.cameraID, atMilliseconds: waiting.eventMs)
            switch waiting.input {
            case .frame(let frame): judge.judge(frame, at: waiting.eventMs, rules: inForce)
            case .health(let health): judge.judge(health, at: waiting.eventMs, rules: inForce)
            case nil: break
            }
            judged += 1
        }
        judge.state.pending.removeFirst(judged)
    }

    /// The camera's new state, its quiet timer, and the incident revisions as records.
    private func finish(_ judge: CameraJudge, key: String, state: inout State?, timers: inout Timers) -> [StageOutput] {
        let camera = judge.state
        state = State(camera: camera)
        let rulesNow = rules.rules(for: key, atMilliseconds: max(camera.newestEventMs, camera.judgedUntilMs))
        if camera.pending.isEmpty {
            timers.cancel(Self.judgeWaitingTimer)
        } else {
            timers.scheduleSilence(Self.judgeWaitingTimer, after: judgeWaitingAfter)
        }
        if let deadline = judge.nextDeadline(rules: rulesNow) {
            // Silence timers count from the newest record: this one fires once event time
            // would have reached the deadline plus the lateness (its records all judged), and
            // never before the waiting records are.
            let quiet = max(judgeWaitingAfter.milliseconds, deadline + allowedLateness.milliseconds - camera.newestEventMs)
            timers.scheduleSilence(Self.deadlineTimer, after: .milliseconds(quiet))
        } else {
            timers.cancel(Self.deadlineTimer)
        }
        for crossing in judge.crossings {
            Counter(label: "vigil_match_line_crossings_total", dimensions: [("rule", crossing.ruleID), ("direction", crossing.direction == .forward ? "forward" : "backward")]).increment()
        }
        return judge.published.map { incident in
            Counter(label: "vigil_match_incidents_total", dimensions: [("rule", incident.ruleID), ("state", Self.stateLabel(incident.state))]).increment()
            return StageOutput(
                topic: Self.incidentsTopic, key: Array(key.utf8), value: (try? incident.serializedBytes()) ?? [],
                headers: [
                    RecordHeader(key: "content-type", value: Vigil_V1_Incident.protoMessageName),
                    // The incident's own time, the same whichever record or timer closed it.
                    RecordHeader(key: RecordHeaders.eventTime, value: String(milliseconds(incident.windowEnd))),
                ]
            )
        }
    }

    private static func order(_ waiting: Vigil_V1_PendingMatchInput) -> (Int64, String, Int64) {
        (waiting.eventMs, waiting.topic, waiting.offset)
    }

    private static func stateLabel(_ state: Vigil_V1_IncidentState) -> String {
        switch state {
        case .opened: "opened"
        case .updated: "updated"
        case .closed: "closed"
        default: "unspecified"
        }
    }
}

/// A record older than what the camera's silence already judged.
struct LateAfterQuiet: Error, CustomStringConvertible {
    var eventTime: Int64
    var judgedUntil: Int64

    var description: String {
        "late: the camera was quiet, so its records up to event time \(judgedUntil) were judged; this record's event time \(eventTime) is older (raise MATCH_ALLOWED_LATENESS_MS if detections arrive this far behind)"
    }
}
