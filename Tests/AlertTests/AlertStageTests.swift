@testable import Alert
import Foundation
import SwiftProtobuf
import Testing
import VigilSchema
import WorkerRuntime
import WorkerRuntimeTesting

/// vigil-alert's stage in memory, on a controlled clock (the records' event times and the
/// driver's caught-up silence): confirmation, linking, the lifecycle with every refusal,
/// escalation, idempotency and restore from the changelog.
@Suite("vigil-alert's stage")
struct AlertStageTests {
    static let camera = "cam-1"
    static let start: Int64 = 1_800_000_000_000

    static func driver(restoredFrom changelog: [StageOutput] = [], stage: AlertStage = AlertStage()) -> StatefulStageTestDriver<AlertStage> {
        StatefulStageTestDriver(
            stage: stage, worker: "vigil-alert", inputs: [AlertStage.incidentsTopic, AlertStage.actionsTopic],
            outputs: [AlertStage.alertsTopic, AlertStage.outcomesTopic, "audit.events.v1"], changelogTopic: "vigil-alert.state.changelog",
            restoredFrom: changelog
        )
    }

    static func incident(
        _ id: String, rule: String = "rule-1", kind: Vigil_V1_RuleKind = .zoneIntrusion, revision: UInt64 = 1,
        state: Vigil_V1_IncidentState = .opened, from windowStart: Int64 = start, to windowEnd: Int64? = nil, at time: Int64
    ) -> StageInput {
        var incident = Vigil_V1_Incident()
        incident.incidentID = id
        incident.ruleID = rule
        incident.kind = kind
        incident.cameraID = camera
        incident.severity = .major
        incident.revision = revision
        incident.state = state
        incident.windowStart = Google_Protobuf_Timestamp(milliseconds: windowStart)
        incident.windowEnd = Google_Protobuf_Timestamp(milliseconds: windowEnd ?? time)
        incident.summary = "a person in the loading bay"
        return StageInput(topic: AlertStage.incidentsTopic, key: Array(camera.utf8), value: try! incident.serializedBytes(), timestampMilliseconds: time)
    }

    static func action(
        _ kind: Vigil_V1_AlertActionKind, alert: String, actor: String = "op-1", key: String, expecting revision: UInt64 = 0, note: String = "", at time: Int64
    ) -> StageInput {
        var action = Vigil_V1_AlertAction()
        action.alertID = alert
        action.action = kind
        action.actor = actor
        action.idempotencyKey = key
        action.expectedRevision = revision
        action.note = note
        action.actionTime = Google_Protobuf_Timestamp(milliseconds: time)
        return StageInput(topic: AlertStage.actionsTopic, key: Array(camera.utf8), value: try! action.serializedBytes(), timestampMilliseconds: time)
    }

    static func alerts(_ driver: StatefulStageTestDriver<AlertStage>) throws -> [Vigil_V1_Alert] {
        try driver.outputs(topic: AlertStage.alertsTopic).map { try Vigil_V1_Alert(serializedBytes: $0.value) }
    }

    static func outcomes(_ driver: StatefulStageTestDriver<AlertStage>) throws -> [Vigil_V1_AlertActionOutcome] {
        try driver.outputs(topic: AlertStage.outcomesTopic).map { try Vigil_V1_AlertActionOutcome(serializedBytes: $0.value) }
    }

    // MARK: Confirmation

    @Test("an intrusion alerts at once, with a deterministic id, CloudEvents headers, and a redelivery changes nothing")
    func immediateAlert() async throws {
        let driver = Self.driver()
        try await driver.feed(Self.incident("i1", at: Self.start))
        try await driver.feed(Self.incident("i1", at: Self.start))
        let alerts = try Self.alerts(driver)
        try #require(alerts.count == 1)
        #expect(alerts[0].alertID == "alert-i1")
        #expect(alerts[0].state == .open)
        #expect(alerts[0].revision == 1)
        #expect(alerts[0].incidentIds == ["i1"])
        #expect(alerts[0].createdTime.milliseconds == Self.start)
        let record = try #require(driver.outputs(topic: AlertStage.alertsTopic).first)
        #expect(record.key == Array(Self.camera.utf8))
        func header(_ key: String) -> String? { record.header(key).map { String(decoding: $0, as: UTF8.self) } }
        #expect(header("ce_specversion") == "1.0")
        #expect(header("ce_id") == "alert-i1/1")
        #expect(header("ce_type") == "vigil.alert.v1.opened")
        #expect(header("ce_source") == "/vigil/vigil-alert")
        #expect(header("ce_time") == "2027-01-15T08:00:00.000Z")
        #expect(CloudEvents.timestamp(1_796_676_085_563) == "2026-12-07T20:41:25.563Z", "milliseconds written exactly (a Double prints .562)")
        #expect(CloudEvents.timestamp(-1) == "1969-12-31T23:59:59.999Z")
        #expect(header("ce_partitionkey") == Self.camera)
        #expect(header("content-type") == "application/protobuf")
    }

    @Test("a crowd incident alerts only at its second revision within 30 s; one that closes first never alerts, nor does its late revision")
    func confirmation() async throws {
        let driver = Self.driver()
        try await driver.feed(Self.incident("crowd-1", kind: .crowdDensity, at: Self.start))
        #expect(try Self.alerts(driver).isEmpty)
        try await driver.feed(Self.incident("crowd-1", kind: .crowdDensity, revision: 2, state: .updated, at: Self.start + 20_000))
        #expect(try Self.alerts(driver).map(\.alertID) == ["alert-crowd-1"])

        let slow = Self.driver()
        try await slow.feed(Self.incident("crowd-2", kind: .crowdDensity, at: Self.start))
        try await slow.feed(Self.incident("crowd-2", kind: .crowdDensity, revision: 2, state: .updated, at: Self.start + 40_000))
        #expect(try Self.alerts(slow).isEmpty, "revisions 40 s apart do not confirm within 30 s")
        try await slow.feed(Self.incident("crowd-2", kind: .crowdDensity, revision: 3, state: .updated, at: Self.start + 50_000))
        #expect(try Self.alerts(slow).map(\.revision) == [1])

        let brief = Self.driver()
        try await brief.feed(Self.incident("crowd-3", kind: .crowdDensity, at: Self.start))
        try await brief.feed(Self.incident("crowd-3", kind: .crowdDensity, revision: 2, state: .closed, at: Self.start + 60_000))
        try await brief.feed(Self.incident("crowd-3", kind: .crowdDensity, revision: 3, state: .updated, at: Self.start + 61_000))
        try await brief.feed(Self.incident("crowd-3", kind: .crowdDensity, revision: 4, state: .updated, at: Self.start + 62_000))
        #expect(try Self.alerts(brief).isEmpty)
        #expect(brief.state(of: Self.camera)?.camera.finishedIncidentIds == ["crowd-3"])
    }

    // MARK: Linking

    @Test("revisions and overlapping incidents of the same rule update one alert; another rule, or a later window, opens its own")
    func linking() async throws {
        let driver = Self.driver()
        try await driver.feed(Self.incident("i1", at: Self.start))
        try await driver.feed(Self.incident("i1", revision: 2, state: .updated, at: Self.start + 1_000))
        try await driver.feed(Self.incident("i2", from: Self.start + 2_000, at: Self.start + 2_000))
        try await driver.feed(Self.incident("other", rule: "rule-2", from: Self.start + 2_500, at: Self.start + 2_500))
        try await driver.feed(Self.incident("i1", revision: 3, state: .closed, to: Self.start + 3_000, at: Self.start + 3_000))
        try await driver.feed(Self.incident("i2", revision: 2, state: .closed, from: Self.start + 2_000, to: Self.start + 4_000, at: Self.start + 4_000))
        try await driver.feed(Self.incident("i3", from: Self.start + 9_000, at: Self.start + 9_000))
        let alerts = try Self.alerts(driver)
        #expect(alerts.map(\.alertID) == ["alert-i1", "alert-i1", "alert-i1", "alert-other", "alert-i1", "alert-i1", "alert-i3"])
        #expect(alerts.map(\.revision) == [1, 2, 3, 1, 4, 5, 1])
        #expect(alerts[2].incidentIds == ["i1", "i2"])
        #expect(alerts[2].change == "linked incident i2")
        #expect(driver.outputs(topic: AlertStage.alertsTopic)[2].header("ce_type").map { String(decoding: $0, as: UTF8.self) } == "vigil.alert.v1.linked")
    }

    // MARK: Lifecycle

    @Test("acknowledge, escalate and resolve apply once each, with outcomes and audit events; every illegal or stale action is refused with its reason")
    func lifecycle() async throws {
        let driver = Self.driver()
        try await driver.feed(Self.incident("i1", at: Self.start))
        let t = Self.start + 5_000
        try await driver.feed(Self.action(.acknowledge, alert: "alert-i1", key: "k1", expecting: 1, note: "on my way", at: t))
        try await driver.feed(Self.action(.acknowledge, alert: "alert-i1", key: "k1", expecting: 1, at: t + 1))  // a retry
        try await driver.feed(Self.action(.acknowledge, alert: "alert-i1", actor: "op-2", key: "k2", at: t + 2))
        try await driver.feed(Self.action(.escalate, alert: "alert-i1", actor: "op-2", key: "k3", expecting: 1, at: t + 3))
        try await driver.feed(Self.action(.escalate, alert: "alert-i1", key: "k4", expecting: 2, at: t + 4))
        try await driver.feed(Self.action(.assign, alert: "alert-nope", key: "k5", at: t + 5))
        try await driver.feed(Self.action(.resolve, alert: "alert-i1", key: "k6", at: t + 6))
        try await driver.feed(Self.action(.falsePositive, alert: "alert-i1", key: "k7", at: t + 7))

        let alerts = try Self.alerts(driver)
        #expect(alerts.map(\.state) == [.open, .acknowledged, .escalated, .resolved])
        #expect(alerts.map(\.revision) == [1, 2, 3, 4])
        #expect(alerts[1].change == "acknowledged by op-1: on my way")
        #expect(alerts[1].changedBy == "op-1")
        #expect(alerts[1].acknowledgedTime.milliseconds == t)
        #expect(alerts[3].resolvedTime.milliseconds == t + 6)

        let outcomes = try Self.outcomes(driver)
        #expect(outcomes.map(\.idempotencyKey) == ["k1", "k2", "k3", "k4", "k5", "k6", "k7"], "the retried k1 is decided once")
        #expect(outcomes.map(\.applied) == [true, false, false, true, false, true, false])
        #expect(outcomes[1].refusal == "the alert is already acknowledged")
        #expect(outcomes[2].refusal.hasPrefix("the alert is at revision 2, not 1"))
        #expect(outcomes[4].refusal.hasPrefix("camera cam-1 has no alert alert-nope"))
        #expect(outcomes[6].refusal == "alert alert-i1 is already resolved or marked false positive")
        #expect(driver.outputs(topic: "audit.events.v1").count == 7, "every decided action is audited, refusals too")
        let audit = try Vigil_V1_AuditEvent(serializedBytes: driver.outputs(topic: "audit.events.v1")[1].value)
        #expect(audit.kind == .alertAction)
        #expect(audit.actor == "op-2")
        #expect(audit.detail == "acknowledged refused: the alert is already acknowledged")
        #expect(driver.state(of: Self.camera)?.camera.openAlerts.isEmpty == true, "a resolved alert leaves the state")
    }

    @Test("an action that is not one, or lacks its actor, key or time, is dead-lettered with the reason")
    func malformedActions() async throws {
        let driver = Self.driver()
        try await driver.feed(StageInput(topic: AlertStage.actionsTopic, key: Array(Self.camera.utf8), value: [0xff, 0xff, 0xff], timestampMilliseconds: Self.start))
        var anonymous = Self.action(.acknowledge, alert: "alert-i1", actor: "", key: "k1", at: Self.start)
        anonymous.offset = 7
        try await driver.feed(anonymous)
        #expect(driver.deadLetters.count == 2)
        let reason = driver.deadLetters.last?.header(RecordHeaders.error).map { String(decoding: $0, as: UTF8.self) } ?? ""
        #expect(reason.contains("the alert action has no actor"))
        #expect(try Self.outcomes(driver).isEmpty)
    }

    // MARK: Escalation

    @Test("an alert nobody acknowledges escalates by itself after its policy's time, on a quiet camera and on a busy one; an acknowledged one does not")
    func escalation() async throws {
        let quiet = Self.driver()
        try await quiet.feed(Self.incident("i1", at: Self.start))
        try await quiet.advanceSilence(by: .seconds(599))
        #expect(try Self.alerts(quiet).count == 1)
        try await quiet.advanceSilence(by: .seconds(1))
        let escalated = try #require(try Self.alerts(quiet).last)
        #expect(escalated.state == .escalated)
        #expect(escalated.revision == 2)
        #expect(escalated.changedBy == "vigil-alert")
        #expect(escalated.change == "escalated: not acknowledged within 10 min")
        #expect(escalated.escalatedTime.milliseconds == Self.start + 600_000)
        try await quiet.advanceSilence(by: .seconds(600))
        #expect(try Self.alerts(quiet).count == 2, "escalates once")

        let busy = Self.driver()
        try await busy.feed(Self.incident("i1", at: Self.start))
        try await busy.feed(Self.incident("down", rule: "rule-2", kind: .personDown, at: Self.start + 1_000))
        try await busy.feed(Self.action(.acknowledge, alert: "alert-down", key: "k1", at: Self.start + 2_000))
        for step in 1...12 { try await busy.feed(Self.incident("i1", revision: UInt64(1 + step), state: .updated, at: Self.start + Int64(step) * 55_000)) }
        let states = try Self.alerts(busy).filter { $0.alertID == "alert-i1" }.map(\.state)
        #expect(states.last == .escalated)
        #expect(try Self.alerts(busy).filter { $0.alertID == "alert-down" }.map(\.state) == [.open, .acknowledged])
    }

    // MARK: Restore

    @Test("a replica restored from the changelog holds the same alerts: a replayed incident opens nothing, an action applies at the right revision")
    func restore() async throws {
        let first = Self.driver()
        try await first.feed(Self.incident("i1", at: Self.start))
        try await first.feed(Self.action(.acknowledge, alert: "alert-i1", key: "k1", at: Self.start + 1_000))
        let second = Self.driver(restoredFrom: first.changelog)
        try await second.feed(Self.incident("i1", at: Self.start))
        try await second.feed(Self.action(.acknowledge, alert: "alert-i1", key: "k1", at: Self.start + 1_000))
        try await second.feed(Self.action(.resolve, alert: "alert-i1", key: "k2", expecting: 2, at: Self.start + 2_000))
        #expect(try Self.alerts(second).map(\.revision) == [3])
        #expect(try Self.alerts(second).map(\.state) == [.resolved])
    }
}

@Suite("Alert policies")
struct AlertPolicyTests {
    @Test("a rule's policy overrides its kind's defaults key by key; a zero escalation time never escalates")
    func policyOverDefaults() {
        var rule = Vigil_V1_Rule()
        rule.kind = .crowdDensity
        #expect(ResolvedAlertPolicy.of(rule) == ResolvedAlertPolicy(confirmRevisions: 2, confirmWithin: .seconds(30), escalateAfter: .seconds(600)))
        rule.alertPolicy.confirmRevisions = 3
        #expect(ResolvedAlertPolicy.of(rule) == ResolvedAlertPolicy(confirmRevisions: 3, confirmWithin: .seconds(30), escalateAfter: .seconds(600)))
        rule.alertPolicy.escalateAfter = Google_Protobuf_Duration(seconds: 0)
        #expect(ResolvedAlertPolicy.of(rule).escalateAfter == nil)
        rule.kind = .cameraTamper
        rule.clearAlertPolicy()
        #expect(ResolvedAlertPolicy.of(rule).confirmRevisions == 1, "tamper alerts at once")
    }

    @Test("a stage given a rule's policy waits for its revisions and never escalates when told not to")
    func stageUsesPolicy() async throws {
        let stage = AlertStage { _ in ResolvedAlertPolicy(confirmRevisions: 3, confirmWithin: .seconds(60), escalateAfter: nil) }
        let driver = StatefulStageTestDriver(
            stage: stage, worker: "vigil-alert", inputs: [AlertStage.incidentsTopic, AlertStage.actionsTopic], changelogTopic: "vigil-alert.state.changelog"
        )
        for revision in 1...2 { try await driver.feed(AlertStageTests.incident("i1", revision: UInt64(revision), at: AlertStageTests.start + Int64(revision) * 1_000)) }
        #expect(try AlertStageTests.alerts(driver).isEmpty)
        try await driver.feed(AlertStageTests.incident("i1", revision: 3, at: AlertStageTests.start + 3_000))
        #expect(try AlertStageTests.alerts(driver).count == 1)
        try await driver.advanceSilence(by: .seconds(86_400))
        #expect(try AlertStageTests.alerts(driver).map(\.state) == [.open])
    }
}

@Suite("Silences")
struct SilenceTests {
    static func silence(cameras: [String] = [], rules: [String] = [], from start: Int64, to end: Int64) -> Vigil_V1_Silence {
        var silence = Vigil_V1_Silence()
        silence.silenceID = "maintenance-1"
        silence.cameraIds = cameras
        silence.ruleIds = rules
        silence.startTime = Google_Protobuf_Timestamp(milliseconds: start)
        silence.endTime = Google_Protobuf_Timestamp(milliseconds: end)
        silence.reason = "lens cleaning"
        silence.author = "op-1"
        return silence
    }

    @Test("a silence covers its cameras and rules within [start, end); one naming neither covers nothing; tamper and redaction health never")
    func covers() throws {
        let start = AlertStageTests.start
        var incident = try Vigil_V1_Incident(serializedBytes: AlertStageTests.incident("i1", at: start).value)
        let window = Self.silence(cameras: [AlertStageTests.camera], from: start, to: start + 60_000)
        #expect(Silences.covers(window, incident, at: start))
        #expect(Silences.covers(window, incident, at: start + 59_999))
        #expect(!Silences.covers(window, incident, at: start + 60_000), "expired at its end")
        #expect(!Silences.covers(window, incident, at: start - 1), "not yet begun")
        #expect(!Silences.covers(Self.silence(cameras: ["cam-2"], from: start, to: start + 60_000), incident, at: start))
        #expect(Silences.covers(Self.silence(rules: ["rule-1"], from: start, to: start + 60_000), incident, at: start))
        #expect(!Silences.covers(Self.silence(cameras: [AlertStageTests.camera], rules: ["rule-2"], from: start, to: start + 60_000), incident, at: start))
        #expect(!Silences.covers(Self.silence(from: start, to: start + 60_000), incident, at: start), "a silence of nothing in particular silences nothing")
        for kind in [Vigil_V1_RuleKind.cameraTamper, .redactionHealth] {
            incident.kind = kind
            #expect(!Silences.covers(window, incident, at: start), "\(kind) is never silenced")
        }
    }

    @Test("a silenced incident is recorded as a silenced alert that never escalates; tamper under the same silence alerts as usual")
    func silencedAlerts() async throws {
        let start = AlertStageTests.start
        let window = Self.silence(cameras: [AlertStageTests.camera], from: start, to: start + 60_000)
        // A silence table that ignores kinds: the stage itself keeps tamper and redaction health out.
        let stage = AlertStage(silence: { incident, time in window.startTime.milliseconds <= time && time < window.endTime.milliseconds ? window : nil })
        let driver = StatefulStageTestDriver(
            stage: stage, worker: "vigil-alert", inputs: [AlertStage.incidentsTopic, AlertStage.actionsTopic], changelogTopic: "vigil-alert.state.changelog"
        )
        try await driver.feed(AlertStageTests.incident("quiet", at: start + 1_000))
        try await driver.feed(AlertStageTests.incident("lens", rule: "tamper", kind: .cameraTamper, at: start + 2_000))
        try await driver.advanceSilence(by: .seconds(3_600))
        let alerts = try AlertStageTests.alerts(driver)
        let quiet = alerts.filter { $0.alertID == "alert-quiet" }
        #expect(quiet.map(\.silencedBy) == ["maintenance-1"], "recorded once, silenced, never escalated")
        #expect(quiet.first?.change.hasPrefix("opened silenced by maintenance-1 (lens cleaning, op-1)") == true)
        #expect(driver.outputs(topic: AlertStage.alertsTopic).first?.header("ce_type").map { String(decoding: $0, as: UTF8.self) } == "vigil.alert.v1.silenced")
        let lens = alerts.filter { $0.alertID == "alert-lens" }
        #expect(lens.map(\.silencedBy) == ["", ""])
        #expect(lens.map(\.state) == [.open, .escalated])
    }
}

@Suite("Alert evidence")
struct AlertEvidenceTests {
    /// Bytes no alert, state or audit record may ever contain: the snapshot's pixels.
    static let jpeg: [UInt8] = [0xFF, 0xD8, 0xFF, 0xE0] + Array("redacted pixels of the dock at 08:00".utf8) + [0xFF, 0xD9]

    static func snapshot(at time: Int64, offset: Int64) throws -> StageInput {
        var snapshot = Vigil_V1_Snapshot()
        snapshot.snapshotID = "\(AlertStageTests.camera)/\(time)"
        snapshot.cameraID = AlertStageTests.camera
        snapshot.captureTime = Google_Protobuf_Timestamp(milliseconds: time)
        snapshot.redactedJpeg = Data(jpeg)
        var person = Vigil_V1_DetectedObject()
        person.classLabel = "person"
        person.trackID = 7
        snapshot.objects = [person]
        return StageInput(
            topic: AlertStage.snapshotsTopic, offset: offset, key: Array(AlertStageTests.camera.utf8), value: try snapshot.serializedBytes(),
            timestampMilliseconds: time
        )
    }

    static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        haystack.count >= needle.count && (0...(haystack.count - needle.count)).contains { Array(haystack[$0..<$0 + needle.count]) == needle }
    }

    @Test("evidence carries its rule's zone or line (from the rules table), to draw over the image; the webhook body too")
    func ruleGeometry() async throws {
        var polygon = Vigil_V1_Polygon()
        polygon.vertices = [(Float(0.1), Float(0.2)), (0.6, 0.2), (0.6, 0.9)].map { x, y in
            var point = Vigil_V1_Point()
            point.x = x
            point.y = y
            return point
        }
        var directed = Vigil_V1_DirectedLine()
        directed.start.x = 0.5
        directed.end.x = 0.5
        directed.end.y = 1
        let (zone, line) = (polygon, directed)
        let stage = AlertStage(geometry: { incident in
            switch incident.ruleID {
            case "rule-1": .zone(zone)
            case "door-line": .line(line)
            default: nil
            }
        })
        let start = AlertStageTests.start
        let driver = AlertStageTests.driver(stage: stage)
        try await driver.feed(AlertStageTests.incident("i1", at: start))
        try await driver.feed(try Self.snapshot(at: start + 200, offset: 3))
        try await driver.feed(AlertStageTests.incident("i2", rule: "door-line", kind: .lineCrossing, at: start + 300))
        try await driver.feed(AlertStageTests.incident("i3", rule: "lens", kind: .cameraTamper, at: start + 300))
        let alerts = try AlertStageTests.alerts(driver)
        let zoned = try #require(alerts.last { $0.alertID == "alert-i1" })
        #expect(zoned.evidence.zone == zone, "attached when the snapshot came")
        #expect(alerts.last { $0.alertID == "alert-i2" }?.evidence.line == line, "attached as the alert opened, from the snapshot already held")
        let whole = try #require(alerts.last { $0.alertID == "alert-i3" })
        #expect(whole.hasEvidence && whole.evidence.ruleGeometry == nil, "a tamper rule watches the whole frame")
        let body = try #require(try JSONSerialization.jsonObject(with: StandardWebhooks.body(for: zoned, type: .evidence)) as? [String: Any])
        let evidence = try #require((body["data"] as? [String: Any])?["evidence"] as? [String: Any])
        #expect(evidence["zone"] as? [[Double]] == [[0.1, 0.2], [0.6, 0.2], [0.6, 0.9]], "\(evidence)")
    }

    @Test("the snapshot nearest the incident's start becomes the alert's evidence by reference, with its JPEG's SHA-256 in the audit log; pixels go nowhere")
    func evidenceByReference() async throws {
        let start = AlertStageTests.start
        let driver = AlertStageTests.driver()
        try await driver.feed(AlertStageTests.incident("i1", at: start))
        try await driver.feed(try Self.snapshot(at: start + 400, offset: 11))
        try await driver.feed(try Self.snapshot(at: start + 1_400, offset: 12))
        let alerts = try AlertStageTests.alerts(driver)
        #expect(alerts.map(\.revision) == [1, 2], "the farther snapshot changes nothing")
        let evidence = try #require(alerts.last?.evidence)
        #expect(evidence.snapshot.topic == "snapshots.v1" && evidence.snapshot.partition == 0 && evidence.snapshot.offset == 11)
        #expect(evidence.snapshotID == "cam-1/\(start + 400)" && evidence.captureTime.milliseconds == start + 400)
        let hash = SHA256Digest.hex(Self.jpeg)
        #expect(evidence.jpegSha256.map { String(format: "%02x", $0) }.joined() == hash)
        #expect(evidence.objects.map(\.trackID) == [7])
        #expect(driver.outputs(topic: AlertStage.alertsTopic).last?.header("ce_type").map { String(decoding: $0, as: UTF8.self) } == "vigil.alert.v1.evidence")
        let custody = try driver.outputs(topic: "audit.events.v1").map { try Vigil_V1_AuditEvent(serializedBytes: $0.value) }
        #expect(custody.map(\.kind) == [.evidenceAttached])
        #expect(custody.first?.detail.contains("sha256 \(hash)") == true)
        for record in driver.outputs + driver.changelog {
            #expect(!Self.contains(record.value, Self.jpeg), "no pixels in \(record.topic)")
        }
    }

    @Test("an alert opening after its snapshot arrived opens with it as evidence")
    func evidenceFirst() async throws {
        let start = AlertStageTests.start
        let driver = AlertStageTests.driver()
        try await driver.feed(try Self.snapshot(at: start - 300, offset: 5))
        try await driver.feed(try Self.snapshot(at: start + 5_000, offset: 6))
        try await driver.feed(AlertStageTests.incident("i1", from: start, at: start + 6_000))
        let alerts = try AlertStageTests.alerts(driver)
        #expect(alerts.count == 1)
        #expect(alerts.first?.evidence.snapshot.offset == 5)
        #expect(try driver.outputs(topic: "audit.events.v1").map { try Vigil_V1_AuditEvent(serializedBytes: $0.value).kind } == [.evidenceAttached])
    }
}

import Crypto

enum SHA256Digest {
    static func hex(_ bytes: [UInt8]) -> String { SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined() }
}
