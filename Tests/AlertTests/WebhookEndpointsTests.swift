import Alert
import DeclarationFiles
import Foundation
import SwiftProtobuf
import Testing
import VigilSchema
import Webhooks
import WorkerRuntime

/// The webhooks file, which revisions an endpoint takes, where its secrets come from, and
/// when a failed delivery is tried again.
@Suite("Webhook endpoints")
struct WebhookEndpointsTests {
    static func problems(_ yaml: String) -> [String] {
        do {
            _ = try WebhooksFile.parse(yaml: yaml, file: "webhooks.yaml")
            return []
        } catch {
            return error.errors.map(\.description)
        }
    }

    @Test("the file: every problem located; credentials in a URL, a secret written in place of its reference, unknown keys and values refused")
    func file() throws {
        let endpoints = try WebhooksFile.parse(yaml: """
            webhooks:
              ops-pager:
                url: https://hooks.example.org/vigil
                secrets: [env:OPS_NEW, file:/run/secrets/ops-old]
                cameras: [dock-1]
                severities: [major, critical]
                states: [open, escalated]
              audit-sink:
                url: http://10.0.0.5:8080/hook
                secrets: [env:AUDIT]
            """, file: "webhooks.yaml")
        #expect(endpoints.map(\.name) == ["audit-sink", "ops-pager"])
        #expect(endpoints[1].secretRefs == ["env:OPS_NEW", "file:/run/secrets/ops-old"])
        #expect(endpoints[1].severities == [.major, .critical] && endpoints[1].states == [.open, .escalated] && endpoints[1].cameraIds == ["dock-1"])
        #expect(endpoints[0].cameraIds.isEmpty && endpoints[0].severities.isEmpty)

        let problems = Self.problems("""
            webhooks:
              leaky:
                url: https://ops:hunter2@hooks.example.org/vigil
                secrets: [whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw]
              odd:
                url: ftp://files.example.org/
                secrets: [env:A, env:B, env:C]
                severities: [urgent]
                retries: 3
              bare: {}
            """)
        #expect(problems == [
            "webhooks.yaml:3:10: webhooks.leaky.url: carries credentials (user:password@); remove them: vigil signs every request, and a receiver verifies the signature with its secret",
            "webhooks.yaml:4:14: webhooks.leaky.secrets[0]: \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\" is not a secret reference; write env:NAME or file:/path — the secret itself never goes in this file",
            "webhooks.yaml:6:10: webhooks.odd.url: uses ftp; endpoints take https (or http inside a trusted network)",
            "webhooks.yaml:7:14: webhooks.odd.secrets: must name one secret, or two (newest first) while rotating",
            "webhooks.yaml:8:17: webhooks.odd.severities: \"urgent\" is not a severity; use info, warning, major or critical",
            "webhooks.yaml:9:5: webhooks.odd.retries: unknown key; expected url, secrets, cameras, rules, severities or states",
            "webhooks.yaml:10:9: webhooks.bare.url: is missing; give the receiver's https:// URL",
            "webhooks.yaml:10:9: webhooks.bare.secrets: is missing; name where vigil-alert reads the signing secret: [env:NAME] or [file:/path]",
        ], "\(problems)")
    }

    static func alert(camera: String = "dock-1", severity: Vigil_V1_Severity = .major, state: Vigil_V1_AlertState = .open, silencedBy: String = "") -> Vigil_V1_Alert {
        var alert = Vigil_V1_Alert()
        alert.alertID = "alert-i1"
        alert.revision = 1
        alert.incident.cameraID = camera
        alert.incident.ruleID = "dock-intrusion"
        alert.severity = severity
        alert.state = state
        alert.silencedBy = silencedBy
        return alert
    }

    @Test("an endpoint takes what its filter names, never a silenced alert, and nothing recorded before it was first applied")
    func filter() {
        var endpoint = Vigil_V1_WebhookEndpoint()
        endpoint.severities = [.major, .critical]
        endpoint.states = [.open, .escalated]
        endpoint.deliverFrom = Google_Protobuf_Timestamp(milliseconds: 1_000)
        #expect(WebhookEndpoints.takes(Self.alert(), recordedAt: 1_000, by: endpoint))
        #expect(!WebhookEndpoints.takes(Self.alert(severity: .warning), recordedAt: 1_000, by: endpoint))
        #expect(!WebhookEndpoints.takes(Self.alert(state: .acknowledged), recordedAt: 1_000, by: endpoint))
        #expect(!WebhookEndpoints.takes(Self.alert(silencedBy: "silence-1"), recordedAt: 1_000, by: endpoint), "silenced: recorded, never delivered")
        #expect(!WebhookEndpoints.takes(Self.alert(), recordedAt: 999, by: endpoint), "before the endpoint existed")
        endpoint.cameraIds = ["dock-2"]
        #expect(!WebhookEndpoints.takes(Self.alert(), recordedAt: 1_000, by: endpoint))
    }

    @Test("secrets come from the named variable or file; a missing or malformed one is reported by its reference, never its value")
    func secrets() throws {
        let value = "whsec_" + Data(repeating: 7, count: 32).base64EncodedString()
        var endpoint = Vigil_V1_WebhookEndpoint()
        endpoint.secretRefs = ["env:NEW", "env:OLD"]
        guard case .success(let secrets) = SecretReference.secrets(of: endpoint, environment: ["NEW": value, "OLD": value]) else {
            Issue.record("both secrets resolve")
            return
        }
        #expect(secrets.count == 2)
        guard case .failure(let unset) = SecretReference.secrets(of: endpoint, environment: ["NEW": value]) else {
            Issue.record("an unset variable is a problem")
            return
        }
        #expect(unset.description == "secret env:OLD is not set")
        guard case .failure(let malformed) = SecretReference.secrets(of: endpoint, environment: ["NEW": "hunter2", "OLD": value]) else {
            Issue.record("a malformed secret is a problem")
            return
        }
        #expect(malformed.description == "secret env:NEW does not hold whsec_ and the base64 of at least 24 bytes")
        #expect(!malformed.description.contains("hunter2"))
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-secret-\(UUID().uuidString)")
        try value.write(to: file, atomically: true, encoding: .utf8)
        endpoint.secretRefs = ["file:\(file.path)"]
        guard case .success = SecretReference.secrets(of: endpoint, environment: [:]) else {
            Issue.record("a secret file resolves")
            return
        }
        #expect(SecretReference("hunter2") == nil && SecretReference("env:") == nil && SecretReference("file:relative") == nil)
    }

    @Test("retries back off exponentially to the cap, with at most half taken off at random")
    func schedule() {
        let schedule = RetrySchedule(attempts: 8, base: .seconds(1), cap: .seconds(30))
        #expect((1...7).map { schedule.delay(after: $0, jitter: 0) } == [1, 2, 4, 8, 16, 30, 30].map { Duration.seconds($0) })
        #expect(schedule.delay(after: 3, jitter: 1) == .seconds(2))
        #expect(schedule.delay(after: 60, jitter: 0) == .seconds(30), "no overflow after many attempts")
    }
}
