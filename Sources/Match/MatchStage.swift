import Foundation
import Metrics
import SwiftProtobuf
import VigilSchema
import WorkerRuntime

/// vigil-match's stage: `detections.v1` and `camera.health.v1` → `incidents.v1`, per camera,
/// in event time, with the rules of `rules.v1` in force at each record's time.
///
/// The runtime merges the two inputs by event time and holds the camera's state in its
/// changelog. Within the lateness, records may arrive out of order: the stage keeps them
/// waiting in the camera's state until the camera's detections have passed them by the
/// lateness, then judges them in event-time order, so the incidents are those of the in-order
/// run. A record older than what was already judged is dead-lettered as late and counted. The
/// frames, not the health records, set the pace: ingest reports a camera's health as its
/// stream goes, while that stream's frames are still in decode and detect.
///
/// A camera that goes quiet still moves on, by the runtime's silence timers (caught-up time
/// without a record): after a second (or the lateness) its waiting frames are judged without
/// waiting for stragglers; after `silence` (10 s by default: longer than decode or detect stall
/// for) the camera is taken to have stopped: everything waiting is judged, and incidents whose
/// deadline has passed close (camera-offline incidents open) as a record at that time would have
/// made them. A record arriving after that, older than what was judged, is dead-lettered as late.
public struct MatchStage: StatefulStage {
    public static let detectionsTopic = "detections.v1"
    public static let healthTopic = "camera.health.v1"
    public static let incidentsTopic = "incidents.v1"
    /// Caught-up time without a record after which a camera's waiting records are judged
    /// (or the lateness, when longer): nothing acts on silence sooner.
    var judgeWaitingAfter: Duration { max(.seconds(1), lateness) }
    /// Caught-up time without a record after which the camera is taken to have stopped.
    public let silence: Duration
    /// How far behind the newest record the runtime still hands a record to the stage: the
    /// stage judges lateness itself, against the camera's frames.
    static let runtimeMargin: Duration = .seconds(300)
    /// Silence timers: judge the waiting records; reach the next incident deadline.
    static let judgeWaitingTimer = "judge-waiting"
    static let deadlineTimer = "deadline"

    /// How long records wait for stragglers before they are judged (`MATCH_ALLOWED_LATENESS_MS`).
    public let lateness: Duration
    let rules: RuleBook

    public var allowedLateness: Duration { lateness + Self.runtimeMargin }

    public init(rules: RuleBook, lateness: Duration, silence: Duration = .seconds(10)) {
        self.rules = rules
        self.lateness = lateness
        self.silence = silence
    }

    /// A camera's rule state, as the runtime keeps it.
    public struct State: ProtobufStageState {
        public var camera: Vigil_V1_MatchCameraState

        public init(camera: Vigil_V1_MatchCameraState = .init()) {
            self.camera = camera
        }

        public init(message: Vigil_V1_MatchCameraState) {
            camera = message
        }

        public var message: Vigil_V1_MatchCameraState { camera }
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
        // A worker refusing a camera configuration says nothing about the stream: no rule judges it.
        if case .health(let health) = waiting.input, health.hasConfigRefusal { return [] }
        var camera = state?.camera ?? Vigil_V1_MatchCameraState()
        if eventTime < camera.judgedUntilMs {
            // The runtime's own counter of late records, for the same dashboards and alerts.
            Counter(label: "vigil_records_late_total", dimensions: [("worker", "vigil-match"), ("topic", input.topic)]).increment()
            throw LateRecord(eventTime: eventTime, judgedUntil: camera.judgedUntilMs)
        }
        let place = camera.pending.firstIndex { Self.order($0) > Self.order(waiting) } ?? camera.pending.endIndex
        camera.pending.insert(waiting, at: place)
        camera.newestEventMs = max(camera.newestEventMs, eventTime)
        if input.topic == Self.detectionsTopic { camera.newestFrameMs = max(camera.newestFrameMs, eventTime) }
        var judge = CameraJudge(cameraID: key, state: camera)
        judgeWaiting(&judge, upTo: Self.pace(camera) - lateness.milliseconds)
        return try finish(judge, key: key, state: &state, timers: &timers)
    }

    /// How far the camera's records have come: its newest frame, or for a camera with no frame
    /// yet (unreachable since it was added) its newest health record. A stream that stopped
    /// sends no frame after the last one its OFFLINE or STALLED record names: once frames within
    /// `lastFramesSpan` of that one are here, time moves on to the record's.
    static func pace(_ camera: Vigil_V1_MatchCameraState) -> Int64 {
        guard camera.newestFrameMs != 0 else { return camera.newestEventMs }
        var pace = camera.newestFrameMs
        for waiting in camera.pending {
            guard case .health(let health) = waiting.input, health.state != .online, health.hasLastFrameTime,
                  health.lastFrameTime.milliseconds - lastFramesSpan <= camera.newestFrameMs else { continue }
            pace = max(pace, waiting.eventMs)
        }
        return pace
    }

    /// How far before a stopped stream's last frame its last analysed frame may lie: decode
    /// samples (5 fps, 1 fps, keyframes), so the very last frame rarely reaches detect. A
    /// sampling sparser than this waits for `silence` instead.
    static let lastFramesSpan: Int64 = 1_000

    public func timerFired(_ timer: FiredTimer, key: String, state: inout State?, timers: inout Timers) async throws -> [StageOutput] {
        guard let camera = state?.camera else { return [] }
        var judge = CameraJudge(cameraID: key, state: camera)
        guard timer.name == Self.deadlineTimer else {
            // A short quiet: no straggler is taken to be coming for the frames received; health
            // reported ahead of them still waits for theirs.
            judgeWaiting(&judge, upTo: Self.pace(camera))
            return try finish(judge, key: key, state: &state, timers: &timers)
        }
        // The camera stopped: everything waiting is judged, and time moves on to the deadline.
        judgeWaiting(&judge, upTo: .max)
        let time = max(timer.scheduledMilliseconds, judge.state.judgedUntilMs)
        judge.advance(to: time, rules: rules.rules(for: key, atMilliseconds: time))
        return try finish(judge, key: key, state: &state, timers: &timers)
    }

    /// Judges the waiting records at or before `watermark`, oldest first.
    private func judgeWaiting(_ judge: inout CameraJudge, upTo watermark: Int64) {
        var judged = 0
        for waiting in judge.state.pending {
            guard waiting.eventMs <= watermark else { break }
            let inForce = rules.rules(for: judge.cameraID, atMilliseconds: waiting.eventMs)
            switch waiting.input {
            case .frame(let frame):
                // The camera's configuration only where a rule judges by it (a table lookup per frame otherwise).
                let camera = inForce.contains { $0.kind == .redactionHealth } ? rules.camera(judge.cameraID, atMilliseconds: waiting.eventMs) : nil
                judge.judge(frame, at: waiting.eventMs, rules: inForce, camera: camera)
            case .health(let health): judge.judge(health, at: waiting.eventMs, rules: inForce)
            case nil: break
            }
            judged += 1
        }
        judge.state.pending.removeFirst(judged)
    }

    /// The camera's new state, its quiet timer, and the incident revisions as records.
    private func finish(_ judge: CameraJudge, key: String, state: inout State?, timers: inout Timers) throws -> [StageOutput] {
        let camera = judge.state
        state = State(camera: camera)
        let rulesNow = rules.rules(for: key, atMilliseconds: max(camera.newestEventMs, camera.judgedUntilMs))
        let pace = Self.pace(camera)
        if camera.pending.contains(where: { $0.eventMs <= pace }) {
            timers.scheduleSilence(Self.judgeWaitingTimer, after: judgeWaitingAfter)
        } else {
            timers.cancel(Self.judgeWaitingTimer)
        }
        // Silence timers count from the newest record. The stop timer fires once the camera has
        // been quiet for `silence`, or later, once event time would have reached the next
        // deadline plus the lateness; with records still waiting (health ahead of the frames),
        // it fires after `silence` too.
        let deadline = judge.nextDeadline(rules: rulesNow).map { $0 + lateness.milliseconds - camera.newestEventMs }
        if deadline != nil || !camera.pending.isEmpty {
            timers.scheduleSilence(Self.deadlineTimer, after: .milliseconds(max(silence.milliseconds, deadline ?? 0)))
        } else {
            timers.cancel(Self.deadlineTimer)
        }
        for crossing in judge.crossings {
            Counter(label: "vigil_match_line_crossings_total", dimensions: [("rule", crossing.ruleID), ("direction", crossing.direction == .forward ? "forward" : "backward")]).increment()
        }
        return try judge.published.map { incident in
            Counter(label: "vigil_match_incidents_total", dimensions: [("rule", incident.ruleID), ("state", Self.stateLabel(incident.state))]).increment()
            return StageOutput(
                topic: Self.incidentsTopic, key: Array(key.utf8), value: try incident.serializedBytes(),
                headers: [
                    RecordHeader(key: "content-type", value: Vigil_V1_Incident.protoMessageName),
                    // The incident's own time, the same whichever record or timer closed it.
                    RecordHeader(key: RecordHeaders.eventTime, value: String(incident.windowEnd.milliseconds)),
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

/// A record older than what the stage already judged for its camera.
struct LateRecord: Error, CustomStringConvertible {
    var eventTime: Int64
    var judgedUntil: Int64

    var description: String {
        "late: this camera's records up to event time \(judgedUntil) were already judged (after waiting the lateness for stragglers, or after the camera was quiet); this record's event time \(eventTime) is older: raise MATCH_ALLOWED_LATENESS_MS if detections arrive this far behind"
    }
}
