import Foundation
import PlaneGeometry
import Rules
import SwiftProtobuf
import VigilSchema

/// Judges one camera's records against the rules in force, in event-time order: keeps what
/// each rule has seen in the camera's state and collects the incident revisions to publish.
///
/// Everything is a function of the records and their event times, never of the clock, so
/// the same records give the same incidents (ids, revisions, windows, states) however often
/// they are judged again after a crash or a rebalance.
struct CameraJudge {
    /// A condition that stops holding for less than this (or the rule's `close_after`) is
    /// still the same incident.
    static let defaultCloseAfter: Int64 = 5_000
    /// A track a rule has not seen for this long is forgotten (detect's tracker has ended it).
    static let trackMemory: Int64 = 5_000
    /// A track that appears inside a zone at most this far (a fraction of the frame) from where
    /// another vanished at most `stitchGap` before takes over that one's entry time: the tracker
    /// lost a person standing behind a sign or another person and found them again under a
    /// new id. Position and time only, within one camera and one zone: nothing about who.
    static let stitchDistance = 0.06
    static let stitchGap: Int64 = 2_000
    /// An incident points at a snapshot taken at most this long before its key frame; with
    /// none, it takes the first one detect takes while it is open.
    static let snapshotReach: Int64 = 10_000

    let cameraID: String
    var state: Vigil_V1_MatchCameraState
    /// The incident revisions to publish, in order.
    private(set) var published: [Vigil_V1_Incident] = []
    /// Line crossings counted, for the metrics.
    private(set) var crossings: [(ruleID: String, direction: Vigil_V1_CrossingDirection)] = []

    init(cameraID: String, state: Vigil_V1_MatchCameraState) {
        self.cameraID = cameraID
        self.state = state
    }

    // MARK: Records

    /// Judges one frame's detections at its capture time `time`.
    /// - Parameter camera: the camera's configuration then, for redaction-health rules (its
    ///   policy and snapshot rate); nil when `cameras.v1` does not know it.
    mutating func judge(_ frame: Vigil_V1_FrameDetections, at time: Int64, rules: [Vigil_V1_Rule], camera: Vigil_V1_CameraConfig? = nil) {
        prepare(at: time, rules: rules)
        if !frame.snapshotID.isEmpty {
            state.lastSnapshotID = frame.snapshotID
            state.lastSnapshotMs = time
        }
        for rule in rules {
            // Taken out of the map while it changes, so the change copies nothing.
            var ruleState = state.rules.removeValue(forKey: rule.ruleID) ?? Vigil_V1_RuleMatchState()
            var holding: Holding?
            switch rule.parameters {
            case .zoneIntrusion(let parameters):
                holding = presence(frame, rule, parameters.objects, confirmAfter: parameters.confirmAfter.milliseconds, needsTrack: false, at: time, &ruleState)
            case .hazardDwell(let parameters):
                holding = presence(frame, rule, parameters.objects, confirmAfter: parameters.dwell.milliseconds, needsTrack: true, at: time, &ruleState)
            case .personDown(let parameters):
                holding = personDown(frame, rule, parameters, at: time, &ruleState)
            case .wrongWay(let parameters):
                holding = wrongWay(frame, rule, parameters, at: time, &ruleState)
            case .detectorClass(let parameters):
                holding = detectorClass(frame, rule, parameters, at: time, &ruleState)
            case .suddenMotion(let parameters):
                holding = suddenMotion(frame, rule, parameters, at: time, &ruleState)
            case .abandonedObject(let parameters):
                holding = abandonedObject(frame, rule, parameters, at: time, &ruleState)
            case .redactionHealth(let parameters):
                holding = redactionHealth(frame, parameters, camera: camera, at: time, &ruleState)
            case .lineCrossing(let parameters):
                holding = lineCrossings(frame, rule, parameters, at: time, &ruleState)
            case .crowdDensity(let parameters):
                holding = crowd(frame, rule, parameters, at: time, &ruleState)
            case .cameraTamper(let parameters):
                holding = tamper(frame, rule, parameters, at: time, &ruleState)
            case .cameraOffline:
                // Frames arrive again: the camera is back.
                endOffline(rule, at: time, &ruleState)
            default:
                break
            }
            if let holding {
                hold(holding, rule: rule, at: time, &ruleState)
            } else if ruleState.hasOpen, ruleState.open.snapshot.target == nil, !frame.snapshotID.isEmpty {
                attachSnapshot(frame.snapshotID, rule: rule, at: time, &ruleState)
            }
            state.rules[rule.ruleID] = ruleState
        }
        state.judgedUntilMs = time
    }

    /// Judges one health record at its event time.
    mutating func judge(_ health: Vigil_V1_CameraHealth, at time: Int64, rules: [Vigil_V1_Rule]) {
        prepare(at: time, rules: rules)
        for rule in rules {
            if case .redactionHealth(let parameters) = rule.parameters {
                var ruleState = state.rules.removeValue(forKey: rule.ruleID) ?? Vigil_V1_RuleMatchState()
                if let holding = redactionHealth(health, parameters, at: time, &ruleState) { hold(holding, rule: rule, at: time, &ruleState) }
                state.rules[rule.ruleID] = ruleState
                continue
            }
            guard case .cameraOffline(let parameters) = rule.parameters else { continue }
            var ruleState = state.rules.removeValue(forKey: rule.ruleID) ?? Vigil_V1_RuleMatchState()
            let counted = parameters.states.isEmpty ? [.offline, .stalled] : parameters.states
            if counted.contains(health.state) {
                if ruleState.holdingSinceMs == 0 {
                    ruleState.holdingSinceMs = time
                    ruleState.offlineReason = health.reason
                }
                if ruleState.offlineState != health.state {
                    ruleState.offlineState = health.state
                    if ruleState.hasOpen {
                        ruleState.open.cameraState = health.state
                        publish(.updated, rule: rule, &ruleState)
                    }
                }
                openOfflineIfDue(rule, parameters, upTo: time, &ruleState)
            } else if health.state == .online {
                endOffline(rule, at: time, &ruleState)
            }
            state.rules[rule.ruleID] = ruleState
        }
        state.judgedUntilMs = max(state.judgedUntilMs, time)
    }

    /// Lets event time reach `time` with nothing judged (the camera went quiet): closes the
    /// incidents whose condition stopped long enough ago, opens offline incidents that are due.
    mutating func advance(to time: Int64, rules: [Vigil_V1_Rule]) {
        prepare(at: time, rules: rules)
        state.judgedUntilMs = max(state.judgedUntilMs, time)
    }

    /// The next event time at which `advance` would change something, if any.
    func nextDeadline(rules: [Vigil_V1_Rule]) -> Int64? {
        var next: Int64?
        for rule in rules {
            guard let ruleState = state.rules[rule.ruleID] else { continue }
            var due: Int64?
            if case .cameraOffline(let parameters) = rule.parameters {
                if ruleState.holdingSinceMs != 0, !ruleState.hasOpen { due = ruleState.holdingSinceMs + parameters.sustainedFor.milliseconds }
            } else if ruleState.hasOpen {
                due = ruleState.lastHeldMs + Self.closeAfter(rule)
            }
            if let due { next = min(next ?? due, due) }
        }
        return next
    }

    // MARK: Time passing

    /// Before judging anything at `time`: closes the state of rules that no longer apply, then
    /// everything that came due up to `time`.
    private mutating func prepare(at time: Int64, rules: [Vigil_V1_Rule]) {
        // Almost always every rule in the state is in force at the version it was built under.
        let unchanged = state.rules.count <= rules.count && state.rules.allSatisfy { id, ruleState in
            rules.contains { $0.ruleID == id && $0.version == ruleState.ruleVersion }
        }
        if !unchanged { closeRulesNoLongerInForce(rules) }
        for rule in rules {
            var ruleState = state.rules.removeValue(forKey: rule.ruleID) ?? Vigil_V1_RuleMatchState()
            ruleState.ruleVersion = rule.version
            expire(rule, at: time, &ruleState)
            state.rules[rule.ruleID] = ruleState
        }
    }

    /// Closes the incidents of rules removed, disabled, no longer watching this camera, or
    /// replaced by a new version (whose geometry and parameters start afresh), and drops their state.
    private mutating func closeRulesNoLongerInForce(_ rules: [Vigil_V1_Rule]) {
        let inForce = Dictionary(rules.map { ($0.ruleID, $0) }, uniquingKeysWith: { first, _ in first })
        for id in state.rules.keys.sorted() {
            guard var ruleState = state.rules[id] else { continue }
            if let rule = inForce[id], rule.version == ruleState.ruleVersion { continue }
            if ruleState.hasOpen {
                let reason = inForce[id].map { "rule version \($0.version) replaced version \(ruleState.ruleVersion)" }
                    ?? "the rule was removed, disabled, left its schedule or no longer watches this camera"
                ruleState.open.summary += "; closed: \(reason)"
                ruleState.open.state = .closed
                ruleState.open.revision += 1
                published.append(ruleState.open)
            }
            state.rules[id] = nil
        }
    }

    private mutating func expire(_ rule: Vigil_V1_Rule, at time: Int64, _ ruleState: inout Vigil_V1_RuleMatchState) {
        if case .cameraOffline(let parameters) = rule.parameters {
            openOfflineIfDue(rule, parameters, upTo: time, &ruleState)
            return
        }
        let closeAfter = Self.closeAfter(rule)
        if ruleState.holdingSinceMs != 0, ruleState.lastHeldMs + closeAfter <= time {
            if ruleState.hasOpen {
                ruleState.open.windowEnd = Google_Protobuf_Timestamp(milliseconds: ruleState.lastHeldMs)
                publish(.closed, rule: rule, &ruleState)
                ruleState.clearOpen()
            }
            ruleState.holdingSinceMs = 0
        }
        if ruleState.tracks.values.contains(where: { time - $0.lastSeenMs > Self.trackMemory }) {
            ruleState.tracks = ruleState.tracks.filter { time - $0.value.lastSeenMs <= Self.trackMemory }
        }
    }

    static func closeAfter(_ rule: Vigil_V1_Rule) -> Int64 {
        rule.hasCloseAfter ? rule.closeAfter.milliseconds : defaultCloseAfter
    }

    // MARK: Kinds

    /// What a rule saw holding in one frame.
    struct Holding {
        /// Where the incident's window starts if this opens one.
        var since: Int64
        var objects: [Vigil_V1_DetectedObject] = []
        var forward: UInt64 = 0
        var backward: UInt64 = 0
        var count: UInt32 = 0
        var limit: UInt32 = 0
        var tamperKinds: [Vigil_V1_TamperKind] = []
        var speed: Float = 0
        var motionFraction: Float = 0
        var redactionFailure = ""
    }

    /// Whether an object meets a rule's condition in one frame.
    enum Verdict {
        case yes, no
        /// Cannot tell in this frame (a posture not assessed): the track keeps its time, and
        /// does not count in this frame.
        case unsure
    }

    /// Zone intrusion and hazard dwell: objects whose ground point has been inside the zone
    /// for at least `confirmAfter`. A track unseen for a frame or two keeps its entry time;
    /// one seen outside starts again. Other kinds pass their own `condition` (person down:
    /// lying, and inside the zone if there is one).
    func presence(
        _ frame: Vigil_V1_FrameDetections, _ rule: Vigil_V1_Rule, _ filter: Vigil_V1_ObjectFilter, confirmAfter: Int64, needsTrack: Bool,
        at time: Int64, _ ruleState: inout Vigil_V1_RuleMatchState, condition: ((Vigil_V1_DetectedObject, PlanePoint) -> Verdict)? = nil
    ) -> Holding? {
        let zone = rule.zone.vertices.map(PlanePoint.init)
        let condition = condition ?? { _, point in PlaneGeometry.covers(zone, point) ? .yes : .no }
        var confirmed: [Vigil_V1_DetectedObject] = []
        var since = time
        let inFrame = Set(frame.objects.map(\.trackID))
        for object in frame.objects where Self.admits(filter, object) {
            let verdict = condition(object, groundPoint(of: object.box))
            guard object.trackID != 0 else {
                // An untracked object cannot be followed over time: it counts only where no time is asked.
                if verdict == .yes, !needsTrack, confirmAfter == 0 { confirmed.append(object) }
                continue
            }
            guard verdict != .no else {
                ruleState.tracks[object.trackID] = nil
                continue
            }
            guard verdict == .yes else {
                ruleState.tracks[object.trackID]?.lastSeenMs = time
                continue
            }
            let point = groundPoint(of: object.box)
            var track = ruleState.tracks[object.trackID] ?? Self.stitched(at: point, time: time, excluding: inFrame, &ruleState) ?? Vigil_V1_RuleTrack()
            if track.enteredMs == 0 { track.enteredMs = time }
            track.lastSeenMs = time
            track.positionKnown = true
            track.x = Float(point.x)
            track.y = Float(point.y)
            ruleState.tracks[object.trackID] = track
            if time - track.enteredMs >= confirmAfter {
                confirmed.append(object)
                since = min(since, track.enteredMs)
            }
        }
        return confirmed.isEmpty ? nil : Holding(since: since, objects: confirmed)
    }

    /// The zone track that vanished nearest to `point` within the stitch distance and gap,
    /// taken out of the state for the new track to continue.
    private static func stitched(at point: PlanePoint, time: Int64, excluding inFrame: Set<UInt64>, _ ruleState: inout Vigil_V1_RuleMatchState) -> Vigil_V1_RuleTrack? {
        let candidates = ruleState.tracks.compactMap { id, track -> (distance: Double, id: UInt64, track: Vigil_V1_RuleTrack)? in
            guard !inFrame.contains(id), track.enteredMs != 0, track.positionKnown, time - track.lastSeenMs <= stitchGap else { return nil }
            let distance = track.position.distance(to: point)
            return distance <= stitchDistance ? (distance, id, track) : nil
        }
        guard let nearest = candidates.min(by: { ($0.distance, $0.id) < ($1.distance, $1.id) }) else { return nil }
        ruleState.tracks[nearest.id] = nil
        return nearest.track
    }

    /// Line crossing: a track's ground point moving from one side of the line to the other,
    /// compared with its last position off the line.
    private mutating func lineCrossings(
        _ frame: Vigil_V1_FrameDetections, _ rule: Vigil_V1_Rule, _ parameters: Vigil_V1_LineCrossingParameters, at time: Int64,
        _ ruleState: inout Vigil_V1_RuleMatchState
    ) -> Holding? {
        let start = PlanePoint(rule.line.start), end = PlanePoint(rule.line.end)
        var holding = Holding(since: time)
        for object in frame.objects where object.trackID != 0 && Self.admits(parameters.objects, object) {
            let point = groundPoint(of: object.box)
            var track = ruleState.tracks[object.trackID] ?? Vigil_V1_RuleTrack()
            track.lastSeenMs = time
            if track.positionKnown, let direction = rule.lineCrossing(from: track.position, to: point),
               parameters.direction == .both || parameters.direction == direction || parameters.direction == .unspecified {
                holding.objects.append(object)
                if direction == .forward { holding.forward += 1 } else { holding.backward += 1 }
                crossings.append((rule.ruleID, direction))
            }
            if PlaneGeometry.side(of: point, from: start, to: end) != 0 {
                track.positionKnown = true
                track.x = Float(point.x)
                track.y = Float(point.y)
            }
            ruleState.tracks[object.trackID] = track
        }
        return holding.objects.isEmpty ? nil : holding
    }

    /// Crowd density: at least the limit of objects in the zone, for `sustained_for`.
    private func crowd(
        _ frame: Vigil_V1_FrameDetections, _ rule: Vigil_V1_Rule, _ parameters: Vigil_V1_CrowdDensityParameters, at time: Int64,
        _ ruleState: inout Vigil_V1_RuleMatchState
    ) -> Holding? {
        let zone = rule.zone.vertices.map(PlanePoint.init)
        let inside = frame.objects.filter { Self.admits(parameters.objects, $0) && PlaneGeometry.covers(zone, groundPoint(of: $0.box)) }
        let limit = max(1, parameters.maxCount)
        guard inside.count >= limit else { return nil }
        guard sustained(for: parameters.sustainedFor.milliseconds, at: time, &ruleState) else { return nil }
        return Holding(since: ruleState.holdingSinceMs, objects: inside, count: UInt32(inside.count), limit: limit)
    }

    /// Camera tamper: tamper signals of the counted kinds, for `sustained_for`.
    private func tamper(
        _ frame: Vigil_V1_FrameDetections, _ rule: Vigil_V1_Rule, _ parameters: Vigil_V1_CameraTamperParameters, at time: Int64,
        _ ruleState: inout Vigil_V1_RuleMatchState
    ) -> Holding? {
        let kinds = frame.tamperSignals.filter { ($0.score >= parameters.minScore) && (parameters.kinds.isEmpty || parameters.kinds.contains($0.kind)) }.map(\.kind)
        guard !kinds.isEmpty, sustained(for: parameters.sustainedFor.milliseconds, at: time, &ruleState) else { return nil }
        return Holding(since: ruleState.holdingSinceMs, tamperKinds: kinds)
    }

    /// Records that the condition holds at `time`; whether it has held for `duration`.
    func sustained(for duration: Int64, at time: Int64, _ ruleState: inout Vigil_V1_RuleMatchState) -> Bool {
        if ruleState.holdingSinceMs == 0 { ruleState.holdingSinceMs = time }
        ruleState.lastHeldMs = time
        return time - ruleState.holdingSinceMs >= duration
    }

    private mutating func openOfflineIfDue(
        _ rule: Vigil_V1_Rule, _ parameters: Vigil_V1_CameraOfflineParameters, upTo time: Int64, _ ruleState: inout Vigil_V1_RuleMatchState
    ) {
        guard ruleState.holdingSinceMs != 0, !ruleState.hasOpen else { return }
        // Opened at the moment it became due, whatever record or silence showed it: the same
        // revision either way.
        let due = ruleState.holdingSinceMs + parameters.sustainedFor.milliseconds
        guard due <= time else { return }
        ruleState.open = newIncident(rule, since: ruleState.holdingSinceMs)
        ruleState.open.cameraState = ruleState.offlineState
        ruleState.open.keyFrameTime = Google_Protobuf_Timestamp(milliseconds: due)
        ruleState.open.windowEnd = Google_Protobuf_Timestamp(milliseconds: due)
        ruleState.lastHeldMs = due
        publish(.opened, rule: rule, &ruleState)
    }

    private mutating func endOffline(_ rule: Vigil_V1_Rule, at time: Int64, _ ruleState: inout Vigil_V1_RuleMatchState) {
        guard ruleState.holdingSinceMs != 0 else { return }
        if ruleState.hasOpen {
            ruleState.open.windowEnd = Google_Protobuf_Timestamp(milliseconds: time)
            publish(.closed, rule: rule, &ruleState)
            ruleState.clearOpen()
        }
        ruleState.holdingSinceMs = 0
        ruleState.offlineState = .unspecified
        ruleState.offlineReason = ""
    }

    // MARK: Incidents

    /// Opens an incident, or updates the open one where operators would see a difference.
    private mutating func hold(_ holding: Holding, rule: Vigil_V1_Rule, at time: Int64, _ ruleState: inout Vigil_V1_RuleMatchState) {
        if ruleState.holdingSinceMs == 0 { ruleState.holdingSinceMs = holding.since }
        ruleState.lastHeldMs = time
        let opening = !ruleState.hasOpen
        if opening {
            ruleState.open = newIncident(rule, since: holding.since)
            if state.lastSnapshotMs != 0, time - state.lastSnapshotMs <= Self.snapshotReach {
                ruleState.open.snapshot.snapshotID = state.lastSnapshotID
            }
        }
        // Taken out while it changes, so the change copies nothing.
        var incident = ruleState.open
        ruleState.clearOpen()
        var changed = opening
        // A crowd's members come and go: its incident names the tracks of its peak frame, and
        // changes with the count, not with every newcomer.
        let newTracks = rule.kind == .crowdDensity ? [] : holding.objects.map(\.trackID).filter { $0 != 0 && !incident.trackIds.contains($0) }
        if !newTracks.isEmpty {
            incident.trackIds = (incident.trackIds + newTracks).sorted()
            changed = true
        }
        if holding.forward + holding.backward > 0 {
            incident.forwardCrossings += holding.forward
            incident.backwardCrossings += holding.backward
            changed = true
        }
        if holding.count > incident.peakCount {
            incident.peakCount = holding.count
            incident.trackIds = holding.objects.map(\.trackID).filter { $0 != 0 }.sorted()
            incident.limitCount = holding.limit
            changed = true
        }
        if holding.speed > incident.peakSpeed || holding.motionFraction > incident.peakMotionFraction {
            incident.peakSpeed = max(incident.peakSpeed, holding.speed)
            incident.peakMotionFraction = max(incident.peakMotionFraction, holding.motionFraction)
            changed = true
        }
        if !holding.redactionFailure.isEmpty, holding.redactionFailure != incident.redactionFailure {
            incident.redactionFailure = holding.redactionFailure
            changed = true
        }
        let newKinds = holding.tamperKinds.filter { !incident.tamperKinds.contains($0) }
        if !newKinds.isEmpty {
            incident.tamperKinds = (incident.tamperKinds + newKinds).sorted { $0.rawValue < $1.rawValue }
            changed = true
        }
        if incident.snapshot.target == nil, state.lastSnapshotMs == time {
            incident.snapshot.snapshotID = state.lastSnapshotID
            changed = true
        }
        incident.windowEnd = Google_Protobuf_Timestamp(milliseconds: time)
        if changed {
            incident.keyFrameTime = Google_Protobuf_Timestamp(milliseconds: time)
            incident.keyObjects = holding.objects
        }
        ruleState.open = incident
        if changed { publish(opening ? .opened : .updated, rule: rule, &ruleState) }
    }

    private mutating func attachSnapshot(_ snapshotID: String, rule: Vigil_V1_Rule, at time: Int64, _ ruleState: inout Vigil_V1_RuleMatchState) {
        ruleState.open.snapshot.snapshotID = snapshotID
        publish(.updated, rule: rule, &ruleState)
    }

    private func newIncident(_ rule: Vigil_V1_Rule, since: Int64) -> Vigil_V1_Incident {
        var incident = Vigil_V1_Incident()
        incident.incidentID = IncidentText.id(ruleID: rule.ruleID, cameraID: cameraID, windowStartMilliseconds: since)
        incident.ruleID = rule.ruleID
        incident.ruleVersion = rule.version
        incident.kind = rule.kind
        incident.cameraID = cameraID
        incident.severity = rule.severity
        incident.purpose = rule.purpose
        incident.windowStart = Google_Protobuf_Timestamp(milliseconds: since)
        incident.windowEnd = Google_Protobuf_Timestamp(milliseconds: since)
        return incident
    }

    /// Publishes the open incident's next revision in `state`.
    private mutating func publish(_ lifecycle: Vigil_V1_IncidentState, rule: Vigil_V1_Rule, _ ruleState: inout Vigil_V1_RuleMatchState) {
        ruleState.open.state = lifecycle
        ruleState.open.revision += 1
        ruleState.open.summary = IncidentText.summary(ruleState.open, rule: rule, reason: ruleState.offlineReason)
        published.append(ruleState.open)
    }

    static func admits(_ filter: Vigil_V1_ObjectFilter, _ object: Vigil_V1_DetectedObject) -> Bool {
        object.score >= filter.minScore && (filter.classLabels.isEmpty ? object.classLabel == "person" : filter.classLabels.contains(object.classLabel))
    }
}

extension Vigil_V1_RuleTrack {
    /// Its last known ground point.
    var position: PlanePoint { PlanePoint(x: Double(x), y: Double(y)) }
}
