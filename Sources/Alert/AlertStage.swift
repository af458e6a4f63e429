import Crypto
import Foundation
import Metrics
import SwiftProtobuf
import VigilSchema
import WorkerRuntime

/// vigil-alert's stage: `incidents.v1` and `alert.actions.v1` → `alerts.v1`, action outcomes
/// and audit events, per camera, with the camera's open alerts in the runtime's state.
///
/// An incident becomes an alert once its rule's policy confirms it (`ResolvedAlertPolicy`);
/// its later revisions, and incidents of the same rule whose windows overlap, update that
/// alert. Operators move an alert through its lifecycle with actions keyed by the alert's
/// camera; each is applied once per idempotency key, or refused with a reason the actor sees
/// on `alert.action.outcomes.v1`, and audited either way. An alert nobody acknowledged within
/// its policy's time escalates by itself. Every time an alert carries is an event time (an
/// incident's frame, an action's own time), so a replay after a crash yields the same records.
public struct AlertStage: StatefulStage {
    public static let incidentsTopic = "incidents.v1"
    public static let snapshotsTopic = "snapshots.v1"
    public static let actionsTopic = "alert.actions.v1"
    public static let alertsTopic = "alerts.v1"
    public static let outcomesTopic = "alert.action.outcomes.v1"
    /// The actor of the changes vigil-alert makes by itself (incident revisions, escalations).
    public static let actor = "vigil-alert"
    static let escalationTimer = "escalation"
    /// How many closed incident ids and action outcomes a camera remembers: enough for any
    /// redelivery, bounded so a busy camera's state stays small.
    static let finishedMemory = 1_024
    static let outcomeMemory = 256
    /// Snapshot references a camera keeps for alerts still to open: at one snapshot a second,
    /// the last minute, more than detect's look-ahead and match's lateness together.
    static let snapshotMemory = 64

    /// Actions carry their operator's clock and incidents their frames': the two may disagree by
    /// minutes without either being late.
    public let allowedLateness: Duration
    let policy: @Sendable (Vigil_V1_Incident) -> ResolvedAlertPolicy
    let silence: @Sendable (Vigil_V1_Incident, _ eventTime: Int64) -> Vigil_V1_Silence?
    let geometry: @Sendable (Vigil_V1_Incident) -> Vigil_V1_Rule.OneOf_Geometry?
    /// Where audit events say they come from (`vigil-alert`, with the replica's host).
    let origin: String

    /// - Parameters:
    ///   - policy: the policy of an incident's rule (the rules table's rule, else the kind's defaults).
    ///   - silence: the silence covering an incident at an event time, if any (`Silences.covering`).
    ///   - geometry: the zone or line of an incident's rule, drawn over its evidence.
    public init(
        allowedLateness: Duration = .seconds(600), origin: String = "vigil-alert",
        policy: @escaping @Sendable (Vigil_V1_Incident) -> ResolvedAlertPolicy = { ResolvedAlertPolicy.defaults(for: $0.kind) },
        silence: @escaping @Sendable (Vigil_V1_Incident, _ eventTime: Int64) -> Vigil_V1_Silence? = { _, _ in nil },
        geometry: @escaping @Sendable (Vigil_V1_Incident) -> Vigil_V1_Rule.OneOf_Geometry? = { _ in nil }
    ) {
        self.allowedLateness = allowedLateness
        self.origin = origin
        self.policy = policy
        self.silence = silence
        self.geometry = geometry
    }

    /// A camera's alerts, as the runtime keeps them.
    public struct State: ProtobufStageState {
        public var camera: Vigil_V1_AlertCameraState

        public init(camera: Vigil_V1_AlertCameraState = .init()) {
            self.camera = camera
        }

        public init(message: Vigil_V1_AlertCameraState) {
            camera = message
        }

        public var message: Vigil_V1_AlertCameraState { camera }
    }

    public func process(_ input: StageInput, key: String, eventTime: Int64, state: inout State?, timers: inout Timers) async throws -> [StageOutput] {
        var camera = state?.camera ?? Vigil_V1_AlertCameraState()
        var outputs: [StageOutput]
        switch input.topic {
        case Self.incidentsTopic:
            let incident = try input.cameraMessage(Vigil_V1_Incident.self) { $0.cameraID }
            outputs = take(incident, at: eventTime, camera: &camera)
        case Self.actionsTopic:
            let action = try Self.action(input)
            outputs = apply(action, cameraID: key, camera: &camera)
        case Self.snapshotsTopic:
            let snapshot = try input.cameraMessage(Vigil_V1_Snapshot.self) { $0.cameraID }
            outputs = attach(Self.evidence(snapshot, from: input), cameraID: key, camera: &camera)
        default:
            throw MismatchedRecord(reason: "vigil-alert reads \(Self.incidentsTopic), \(Self.actionsTopic) and \(Self.snapshotsTopic), not \(input.topic)")
        }
        outputs += escalateOverdue(cameraID: key, now: eventTime, camera: &camera)
        scheduleEscalation(camera, now: eventTime, timers: &timers)
        state = camera == Vigil_V1_AlertCameraState() ? nil : State(camera: camera)
        return outputs
    }

    public func timerFired(_ timer: FiredTimer, key: String, state: inout State?, timers: inout Timers) async throws -> [StageOutput] {
        guard var camera = state?.camera else { return [] }
        let outputs = escalateOverdue(cameraID: key, now: timer.scheduledMilliseconds, camera: &camera)
        scheduleEscalation(camera, now: timer.scheduledMilliseconds, timers: &timers)
        state = State(camera: camera)
        return outputs
    }

    // MARK: Incidents

    /// An incident revision: updates the alert holding it, links to an alert of the same rule
    /// whose window it overlaps, or waits for its policy's confirmation.
    func take(_ incident: Vigil_V1_Incident, at eventTime: Int64, camera: inout Vigil_V1_AlertCameraState) -> [StageOutput] {
        let id = incident.incidentID
        if camera.finishedIncidentIds.contains(id) { return [] }
        if let index = camera.openAlerts.firstIndex(where: { $0.incidentIds.contains(id) }) {
            var alert = camera.openAlerts[index]
            // A redelivered or older revision of an incident the alert already shows changes nothing.
            guard alert.incident.incidentID != id || incident.revision > alert.incident.revision else { return [] }
            alert.incident = incident
            let change = incident.state == .closed ? "incident \(id) closed" : "incident \(id) updated (revision \(incident.revision))"
            return [record(Self.change(&alert, by: Self.actor, at: eventTime, change, type: .updated), camera: &camera, index: index)]
        }
        if let index = camera.openAlerts.firstIndex(where: { Self.overlaps($0, incident) }) {
            var alert = camera.openAlerts[index]
            alert.incidentIds.append(id)
            alert.incident = incident
            return [record(Self.change(&alert, by: Self.actor, at: eventTime, "linked incident \(id)", type: .linked), camera: &camera, index: index)]
        }
        return confirm(incident, at: eventTime, camera: &camera)
    }

    /// Counts the incident's revisions against its policy; opens the alert once it holds.
    func confirm(_ incident: Vigil_V1_Incident, at eventTime: Int64, camera: inout Vigil_V1_AlertCameraState) -> [StageOutput] {
        let policy = policy(incident)
        var pending = camera.pending.first { $0.incident.incidentID == incident.incidentID } ?? Vigil_V1_PendingIncident()
        guard !pending.hasIncident || incident.revision > pending.incident.revision else { return [] }
        pending.incident = incident
        pending.revisionTimesMs.append(eventTime)
        pending.revisionTimesMs.removeAll { $0 < eventTime - policy.confirmWithin.milliseconds }
        camera.pending.removeAll { $0.incident.incidentID == incident.incidentID }
        if pending.revisionTimesMs.count >= policy.confirmRevisions {
            return open(incident, at: eventTime, cameraID: incident.cameraID, camera: &camera)
        }
        if incident.state == .closed {
            // It ended before its rule's policy held: no alert, and a late revision opens none.
            Self.remember(incident.incidentID, in: &camera)
            Counter(label: "vigil_alert_incidents_unconfirmed_total").increment()
        } else {
            camera.pending.append(pending)
        }
        return []
    }

    /// The new alert's record, and the custody event of evidence it opens with.
    func open(_ incident: Vigil_V1_Incident, at eventTime: Int64, cameraID: String, camera: inout Vigil_V1_AlertCameraState) -> [StageOutput] {
        var alert = Vigil_V1_Alert()
        alert.alertID = "alert-" + incident.incidentID
        alert.incident = incident
        alert.incidentIds = [incident.incidentID]
        alert.state = .open
        alert.severity = incident.severity
        alert.createdTime = Google_Protobuf_Timestamp(milliseconds: eventTime)
        if let nearest = Self.nearest(camera.recentSnapshots, to: incident.windowStart.milliseconds) { alert.evidence = evidence(nearest, for: incident) }
        var words = "opened: \(incident.summary)"
        var type = AlertChange.opened
        // `covers` never matches the unsilenceable kinds; checked here too, so no table can hide them.
        if !Silences.unsilenceable.contains(incident.kind), let silence = silence(incident, eventTime) {
            alert.silencedBy = silence.silenceID
            words = "opened silenced by \(silence.silenceID) (\(silence.reason), \(silence.author)): \(incident.summary)"
            type = .silenced
        }
        camera.openAlerts.append(alert)
        let opened = record(Self.change(&alert, by: Self.actor, at: eventTime, words, type: type), camera: &camera, index: camera.openAlerts.count - 1)
        return [opened] + (alert.hasEvidence ? [custody(alert, cameraID: cameraID)] : [])
    }

    /// Same rule, and the incident's window starts before the alert's last incident ended
    /// (or that one is still going).
    static func overlaps(_ alert: Vigil_V1_Alert, _ incident: Vigil_V1_Incident) -> Bool {
        let last = alert.incident
        guard last.ruleID == incident.ruleID else { return false }
        return last.state != .closed || incident.windowStart.milliseconds <= last.windowEnd.milliseconds
    }

    // MARK: Actions

    /// The action in the record, or a dead letter's reason: a record that is not an action, or
    /// one missing what every action needs.
    static func action(_ input: StageInput) throws(MismatchedRecord) -> Vigil_V1_AlertAction {
        let action: Vigil_V1_AlertAction
        do {
            action = try Vigil_V1_AlertAction(serializedBytes: input.value)
        } catch {
            throw MismatchedRecord(reason: "not a \(Vigil_V1_AlertAction.protoMessageName): \(error)")
        }
        var missing: [String] = []
        if action.alertID.isEmpty { missing.append("alert_id") }
        if action.actor.isEmpty { missing.append("actor") }
        if action.idempotencyKey.isEmpty { missing.append("idempotency_key") }
        if !action.hasActionTime { missing.append("action_time") }
        guard missing.isEmpty else {
            throw MismatchedRecord(reason: "the alert action has no \(missing.joined(separator: ", ")); every action names its alert, actor, idempotency key and time")
        }
        return action
    }

    /// Applies an operator's action, or refuses it; either way the outcome is published and audited.
    func apply(_ action: Vigil_V1_AlertAction, cameraID: String, camera: inout Vigil_V1_AlertCameraState) -> [StageOutput] {
        // A retried request: it was decided already, and is not decided again.
        if camera.recentOutcomes.contains(where: { $0.idempotencyKey == action.idempotencyKey && $0.alertID == action.alertID }) { return [] }
        let now = action.actionTime.milliseconds
        var outcome = Vigil_V1_AlertActionOutcome()
        outcome.alertID = action.alertID
        outcome.idempotencyKey = action.idempotencyKey
        outcome.actor = action.actor
        outcome.action = action.action
        outcome.actionTime = action.actionTime
        var outputs: [StageOutput] = []
        if let index = camera.openAlerts.firstIndex(where: { $0.alertID == action.alertID }) {
            var alert = camera.openAlerts[index]
            outcome.revision = alert.revision
            if action.expectedRevision != 0, action.expectedRevision != alert.revision {
                outcome.refusal = "the alert is at revision \(alert.revision), not \(action.expectedRevision) as the action expected: someone changed it; look again and retry"
            } else {
                switch AlertLifecycle.next(from: alert.state, by: action.action) {
                case .failure(let refusal):
                    outcome.refusal = refusal.reason
                case .success(let state):
                    alert.state = state
                    if action.action == .assign { alert.assignee = action.assignee }
                    Self.stamp(&alert, reaching: state, at: now)
                    let note = action.note.isEmpty ? "" : ": \(action.note)"
                    let words = AlertLifecycle.words(action.action)
                    outputs.append(record(Self.change(&alert, by: action.actor, at: now, "\(words) by \(action.actor)\(note)", type: AlertChange(action.action)), camera: &camera, index: index))
                    outcome.applied = true
                    outcome.revision = alert.revision
                }
            }
        } else {
            let closed = camera.finishedIncidentIds.contains { "alert-" + $0 == action.alertID }
            outcome.refusal = closed
                ? "alert \(action.alertID) is already resolved or marked false positive"
                : "camera \(cameraID) has no alert \(action.alertID); check the id (vigil alerts list)"
        }
        camera.recentOutcomes.append(outcome)
        if camera.recentOutcomes.count > Self.outcomeMemory { camera.recentOutcomes.removeFirst(camera.recentOutcomes.count - Self.outcomeMemory) }
        outputs.append(Self.outcomeRecord(outcome, cameraID: cameraID))
        outputs.append(audit(action, outcome: outcome, cameraID: cameraID))
        return outputs
    }

    static func stamp(_ alert: inout Vigil_V1_Alert, reaching state: Vigil_V1_AlertState, at milliseconds: Int64) {
        let time = Google_Protobuf_Timestamp(milliseconds: milliseconds)
        switch state {
        case .acknowledged where !alert.hasAcknowledgedTime: alert.acknowledgedTime = time
        case .escalated where !alert.hasEscalatedTime: alert.escalatedTime = time
        case .resolved, .falsePositive: alert.resolvedTime = time
        default: break
        }
    }

    func audit(_ action: Vigil_V1_AlertAction, outcome: Vigil_V1_AlertActionOutcome, cameraID: String) -> StageOutput {
        let verdict = outcome.applied ? "applied (revision \(outcome.revision))" : "refused: \(outcome.refusal)"
        let note = action.note.isEmpty ? "" : "; note: \(action.note)"
        return auditRecord(
            id: "\(action.alertID)/\(action.idempotencyKey)", kind: .alertAction, actor: action.actor, subject: action.alertID, cameraID: cameraID,
            detail: "\(AlertLifecycle.words(action.action)) \(verdict)\(note)", at: action.actionTime.milliseconds
        )
    }

    // MARK: Evidence

    /// A snapshot as evidence: its record, its time, its objects and the SHA-256 of its JPEG.
    /// snapshots.v1 holds only redacted images (detect masks before it encodes); the pixels
    /// stay there.
    static func evidence(_ snapshot: Vigil_V1_Snapshot, from input: StageInput) -> Vigil_V1_AlertEvidence {
        var evidence = Vigil_V1_AlertEvidence()
        evidence.snapshot.topic = input.topic
        evidence.snapshot.partition = input.partition
        evidence.snapshot.offset = input.offset
        evidence.snapshotID = snapshot.snapshotID
        evidence.captureTime = snapshot.captureTime
        evidence.jpegSha256 = Data(SHA256.hash(data: snapshot.redactedJpeg))
        evidence.objects = snapshot.objects
        return evidence
    }

    /// `snapshot` as the evidence of an alert on `incident`: with its rule's zone or line.
    func evidence(_ snapshot: Vigil_V1_AlertEvidence, for incident: Vigil_V1_Incident) -> Vigil_V1_AlertEvidence {
        var evidence = snapshot
        switch geometry(incident) {
        case .zone(let zone): evidence.zone = zone
        case .line(let line): evidence.line = line
        case nil: evidence.ruleGeometry = nil
        }
        return evidence
    }

    /// Keeps the snapshot's reference, and makes it the evidence of every open alert it is
    /// nearer to (by the first incident's start) than the evidence it has; each such alert gets
    /// a revision and the image's hash goes to the audit log.
    func attach(_ evidence: Vigil_V1_AlertEvidence, cameraID: String, camera: inout Vigil_V1_AlertCameraState) -> [StageOutput] {
        camera.recentSnapshots.append(evidence)
        if camera.recentSnapshots.count > Self.snapshotMemory { camera.recentSnapshots.removeFirst(camera.recentSnapshots.count - Self.snapshotMemory) }
        var outputs: [StageOutput] = []
        for index in camera.openAlerts.indices {
            var alert = camera.openAlerts[index]
            let start = Self.firstStart(alert)
            guard !alert.hasEvidence || Self.distance(evidence, start) < Self.distance(alert.evidence, start) else { continue }
            alert.evidence = self.evidence(evidence, for: alert.incident)
            let now = evidence.captureTime.milliseconds
            outputs.append(record(Self.change(&alert, by: Self.actor, at: max(now, alert.updatedTime.milliseconds), "evidence: snapshot \(evidence.snapshotID)", type: .evidence), camera: &camera, index: index))
            outputs.append(custody(alert, cameraID: cameraID))
        }
        return outputs
    }

    /// The audit event that keeps the evidence's hash: the chain of custody of an alert's image.
    func custody(_ alert: Vigil_V1_Alert, cameraID: String) -> StageOutput {
        let evidence = alert.evidence
        return auditRecord(
            id: "\(alert.alertID)/evidence/\(evidence.snapshotID)", kind: .evidenceAttached, actor: Self.actor, subject: alert.alertID, cameraID: cameraID,
            detail: "snapshot \(evidence.snapshotID) (\(evidence.snapshot.topic)[\(evidence.snapshot.partition)]@\(evidence.snapshot.offset)) sha256 \(evidence.jpegSha256Hex)",
            at: evidence.captureTime.milliseconds
        )
    }

    /// The window start of the alert's first incident: the moment its evidence should show.
    static func firstStart(_ alert: Vigil_V1_Alert) -> Int64 {
        alert.incident.incidentID == alert.incidentIds.first ? alert.incident.windowStart.milliseconds : alert.createdTime.milliseconds
    }

    static func distance(_ evidence: Vigil_V1_AlertEvidence, _ time: Int64) -> Int64 {
        abs(evidence.captureTime.milliseconds - time)
    }

    static func nearest(_ snapshots: [Vigil_V1_AlertEvidence], to time: Int64) -> Vigil_V1_AlertEvidence? {
        snapshots.min { distance($0, time) < distance($1, time) }
    }

    // MARK: Escalation

    /// Escalates every open alert nobody acknowledged within its policy's time, as of `now`.
    func escalateOverdue(cameraID: String, now: Int64, camera: inout Vigil_V1_AlertCameraState) -> [StageOutput] {
        var outputs: [StageOutput] = []
        for index in camera.openAlerts.indices {
            var alert = camera.openAlerts[index]
            guard let (deadline, after) = escalation(of: alert), deadline <= now else { continue }
            alert.state = .escalated
            Self.stamp(&alert, reaching: .escalated, at: now)
            let change = Self.change(&alert, by: Self.actor, at: now, "escalated: not acknowledged within \(Self.words(after))", type: .escalated)
            outputs.append(record(change, camera: &camera, index: index))
            outputs.append(auditRecord(
                id: "\(alert.alertID)/escalated", kind: .alertAction, actor: Self.actor, subject: alert.alertID, cameraID: cameraID,
                detail: "escalated by itself: not acknowledged within \(Self.words(after))", at: now
            ))
        }
        return outputs
    }

    /// When `alert` escalates by itself (event time, ms) and after how long: only an alert still
    /// OPEN, not silenced, whose policy escalates at all.
    func escalation(of alert: Vigil_V1_Alert) -> (deadline: Int64, after: Duration)? {
        guard alert.state == .open, alert.silencedBy.isEmpty, let after = policy(alert.incident).escalateAfter else { return nil }
        return (alert.createdTime.milliseconds + after.milliseconds, after)
    }

    /// The next escalation as a silence timer: it fires when the camera stays quiet until the
    /// earliest deadline; a busy camera reaches its deadlines by its records' event times.
    func scheduleEscalation(_ camera: Vigil_V1_AlertCameraState, now: Int64, timers: inout Timers) {
        guard let earliest = camera.openAlerts.compactMap({ escalation(of: $0)?.deadline }).min() else {
            timers.cancel(Self.escalationTimer)
            return
        }
        timers.scheduleSilence(Self.escalationTimer, after: .milliseconds(max(1, earliest - now)))
    }

    static func words(_ duration: Duration) -> String {
        let seconds = duration.milliseconds / 1_000
        return seconds % 60 == 0 ? "\(seconds / 60) min" : "\(seconds) s"
    }

    // MARK: Records

    /// A new revision of `alert`: who changed it, when, and why.
    static func change(_ alert: inout Vigil_V1_Alert, by actor: String, at milliseconds: Int64, _ words: String, type: AlertChange) -> (Vigil_V1_Alert, AlertChange) {
        alert.revision += 1
        alert.changedBy = actor
        alert.change = words
        alert.updatedTime = Google_Protobuf_Timestamp(milliseconds: milliseconds)
        return (alert, type)
    }

    /// Stores the changed alert (dropping it from the open ones once final) and returns its record.
    func record(_ changed: (alert: Vigil_V1_Alert, type: AlertChange), camera: inout Vigil_V1_AlertCameraState, index: Int) -> StageOutput {
        let alert = changed.alert
        if AlertLifecycle.isFinal(alert.state) {
            camera.openAlerts.remove(at: index)
            for id in alert.incidentIds { Self.remember(id, in: &camera) }
            camera.pending.removeAll { alert.incidentIds.contains($0.incident.incidentID) }
        } else {
            camera.openAlerts[index] = alert
        }
        return StageOutput(
            topic: Self.alertsTopic, key: Array(alert.incident.cameraID.utf8), value: (try? alert.serializedBytes()) ?? [],
            headers: CloudEvents.headers(for: alert, type: changed.type)
        )
    }

    /// An audit event of this camera at an event time (ms), set exactly: a `Date` built from a
    /// `Double` can come out a millisecond early, as `ce_time` once did.
    func auditRecord(id: String, kind: Vigil_V1_AuditEventKind, actor: String, subject: String, cameraID: String, detail: String, at milliseconds: Int64) -> StageOutput {
        var event = AuditEvents.event(id: id, kind: kind, actor: actor, subject: subject, cameraID: cameraID, detail: detail, origin: origin)
        event.eventTime = Google_Protobuf_Timestamp(milliseconds: milliseconds)
        return AuditEvents.record(event, key: cameraID)
    }

    static func outcomeRecord(_ outcome: Vigil_V1_AlertActionOutcome, cameraID: String) -> StageOutput {
        StageOutput(topic: outcomesTopic, key: Array(cameraID.utf8), value: (try? outcome.serializedBytes()) ?? [])
    }

    static func remember(_ incidentID: String, in camera: inout Vigil_V1_AlertCameraState) {
        guard !camera.finishedIncidentIds.contains(incidentID) else { return }
        camera.finishedIncidentIds.append(incidentID)
        if camera.finishedIncidentIds.count > finishedMemory { camera.finishedIncidentIds.removeFirst(camera.finishedIncidentIds.count - finishedMemory) }
    }
}

extension Vigil_V1_AlertEvidence {
    /// The SHA-256 of the snapshot's JPEG in lowercase hex, as the audit log and webhooks show it.
    var jpegSha256Hex: String { jpegSha256.map { String(format: "%02x", $0) }.joined() }
}
