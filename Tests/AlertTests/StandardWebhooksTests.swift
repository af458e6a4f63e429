import Alert
import ChildProcesses
import Foundation
import SwiftProtobuf
import Testing
import VigilSchema
import WorkerRuntime
import WorkerRuntimeTesting

/// Our webhook signatures and bodies, checked by implementations we did not write: the PyPI
/// `standardwebhooks` 1.0.0 library (signatures, old and new secret during a rotation, a stale
/// or altered request refused) and the CloudEvents Python SDK (the structured-mode body).
@Suite("Standard Webhooks signatures and CloudEvents bodies")
struct StandardWebhooksTests {
    static let python = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../.deps/reference/bin/python").standardized.path

    static func secret() -> String {
        "whsec_" + Data((0..<32).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
    }

    /// An alert as the stage makes it: opened, then given its evidence.
    static func alert() async throws -> (Vigil_V1_Alert, AlertChange) {
        let driver = AlertStageTests.driver()
        try await driver.feed(AlertStageTests.incident("i1", at: AlertStageTests.start))
        try await driver.feed(try AlertEvidenceTests.snapshot(at: AlertStageTests.start + 200, offset: 3))
        let record = try #require(driver.outputs(topic: AlertStage.alertsTopic).last)
        let type = try #require(record.header("ce_type").flatMap { AlertChange(rawValue: String(decoding: $0, as: UTF8.self).replacingOccurrences(of: "vigil.alert.v1.", with: "")) })
        return (try Vigil_V1_Alert(serializedBytes: record.value), type)
    }

    /// Verifies each case with `standardwebhooks.Webhook(secret).verify`, printing `ok` or the
    /// library's error per case, then parses the body with `cloudevents.http.from_json`.
    static let verifier = """
    import json, sys
    from standardwebhooks.webhooks import Webhook
    from cloudevents.http import from_json
    cases = json.load(open(sys.argv[1]))
    for case in cases["cases"]:
        try:
            Webhook(case["secret"]).verify(case["body"], case["headers"])
            print("ok")
        except Exception as error:
            print(type(error).__name__ + ": " + str(error))
    event = from_json(cases["cases"][0]["body"])
    print(json.dumps({"id": event["id"], "type": event["type"], "source": event["source"], "subject": event["subject"], "data": event.data}))
    """

    @Test("standardwebhooks verifies our signature with the new and the old secret, and refuses another secret, an altered body and a stale timestamp; the CloudEvents SDK reads the body")
    func referenceLibraries() async throws {
        let (alert, type) = try await Self.alert()
        let body = StandardWebhooks.body(for: alert, type: type)
        let (new, old, other) = (Self.secret(), Self.secret(), Self.secret())
        let secrets = try [new, old].map { try #require(StandardWebhooks.Secret($0)) }
        let id = "\(alert.alertID)/\(alert.revision)"
        func headers(at time: Date, _ body: Data) -> [String: String] {
            Dictionary(uniqueKeysWithValues: StandardWebhooks.headers(id: id, timestamp: time, body: body, secrets: secrets).map { ($0.name, $0.value) })
        }
        let text = String(decoding: body, as: UTF8.self)
        let altered = text.replacingOccurrences(of: "\"revision\":2", with: "\"revision\":3")
        #expect(altered != text)
        let cases: [[String: Any]] = [
            ["secret": new, "body": text, "headers": headers(at: Date(), body)],
            ["secret": old, "body": text, "headers": headers(at: Date(), body)],
            ["secret": other, "body": text, "headers": headers(at: Date(), body)],
            ["secret": new, "body": altered, "headers": headers(at: Date(), body)],
            ["secret": new, "body": text, "headers": headers(at: Date().addingTimeInterval(-600), body)],
        ]
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-webhooks-\(UUID().uuidString).json")
        try JSONSerialization.data(withJSONObject: ["cases": cases]).write(to: file)
        let run = try ChildProcess.run(Self.python, ["-c", Self.verifier, file.path], standardError: .lines)
        #expect(run.termination == .exited(0), "\(run.errorOutput.suffix(10))")
        try #require(run.output.count == 6, "\(run.output) \(run.errorOutput.suffix(10))")
        #expect(run.output[0] == "ok", "the new secret")
        #expect(run.output[1] == "ok", "the old secret, during a rotation")
        #expect(run.output[2].hasPrefix("WebhookVerificationError: No matching signature"), "another secret: \(run.output[2])")
        #expect(run.output[3].hasPrefix("WebhookVerificationError: No matching signature"), "an altered body: \(run.output[3])")
        #expect(run.output[4].hasPrefix("WebhookVerificationError: Message timestamp too old"), "a stale (or replayed) request: \(run.output[4])")

        let event = try #require(try JSONSerialization.jsonObject(with: Data(run.output[5].utf8)) as? [String: Any])
        #expect(event["id"] as? String == id)
        #expect(event["type"] as? String == "vigil.alert.v1.evidence")
        #expect(event["source"] as? String == "/vigil/vigil-alert")
        #expect(event["subject"] as? String == AlertStageTests.camera)
        let data = try #require(event["data"] as? [String: Any])
        #expect(data["state"] as? String == "open" && data["severity"] as? String == "major")
        let evidence = try #require(data["evidence"] as? [String: Any])
        #expect(evidence["offset"] as? Int == 3 && (evidence["sha256"] as? String)?.count == 64)
        #expect(!text.contains("redacted pixels"), "the body carries evidence by reference only")
    }

    @Test("a secret must be whsec_ and the base64 of at least 24 bytes; the signature is the same for the same request")
    func secretsAndDeterminism() throws {
        #expect(StandardWebhooks.Secret("whsec_" + Data(count: 24).base64EncodedString()) != nil)
        #expect(StandardWebhooks.Secret("whsec_" + Data(count: 16).base64EncodedString()) == nil, "too short")
        #expect(StandardWebhooks.Secret(Data(count: 32).base64EncodedString()) == nil, "no prefix")
        #expect(StandardWebhooks.Secret("whsec_not base64!") == nil)
        let secret = try #require(StandardWebhooks.Secret("whsec_" + Data(repeating: 7, count: 32).base64EncodedString()))
        let time = Date(timeIntervalSince1970: 1_800_000_000.9)
        let first = StandardWebhooks.headers(id: "alert-x/1", timestamp: time, body: Data("{}".utf8), secrets: [secret])
        let second = StandardWebhooks.headers(id: "alert-x/1", timestamp: time, body: Data("{}".utf8), secrets: [secret])
        #expect(first.map(\.value) == second.map(\.value))
        #expect(first.map(\.name) == ["webhook-id", "webhook-timestamp", "webhook-signature"])
        #expect(first[1].value == "1800000000", "whole seconds, rounded down")
    }

    /// Signs with `standardwebhooks.Webhook(secret).sign` and prints the signature.
    static let signer = """
    import datetime, sys
    from standardwebhooks.webhooks import Webhook
    print(Webhook(sys.argv[1]).sign(sys.argv[2], datetime.datetime.fromtimestamp(int(sys.argv[3]), tz=datetime.timezone.utc), sys.argv[4]))
    """

    @Test("our receiver's check accepts what standardwebhooks signs, and refuses another secret, an altered body, a stale timestamp and missing headers")
    func verifyReferenceSignatures() throws {
        let text = Self.secret()
        let secret = try #require(StandardWebhooks.Secret(text))
        let other = try #require(StandardWebhooks.Secret(Self.secret()))
        let now = Date()
        let seconds = String(Int64(now.timeIntervalSince1970))
        let body = #"{"type":"vigil.alert.v1.opened"}"#
        let run = try ChildProcess.run(Self.python, ["-c", Self.signer, text, "alert-x/1", seconds, body], standardError: .lines)
        let signature = try #require(run.output.first, "\(run.errorOutput.suffix(10))")
        #expect(signature.hasPrefix("v1,"))
        func check(_ secret: StandardWebhooks.Secret, body: String = body, timestamp: String? = seconds, signature: String? = signature, at time: Date = now) -> StandardWebhooks.Rejection? {
            do {
                try StandardWebhooks.verify(id: "alert-x/1", timestamp: timestamp, signature: signature, body: Data(body.utf8), secret: secret, now: time)
                return nil
            } catch {
                return error
            }
        }
        #expect(check(secret) == nil)
        #expect(check(secret, signature: "v1,bm90IGl0 " + signature) == nil, "one of several signatures (a rotation) matches")
        #expect(check(other) == .badSignature)
        #expect(check(secret, body: body + " ") == .badSignature)
        #expect(check(secret, at: now.addingTimeInterval(301)) == .stale(seconds: -301))
        #expect(check(secret, at: now.addingTimeInterval(-301)) == .stale(seconds: 301), "a timestamp from the future too")
        #expect(check(secret, signature: nil) == .missingHeader("webhook-signature"))
        #expect(check(secret, timestamp: "yesterday") == .missingHeader("webhook-timestamp"))
    }
}
