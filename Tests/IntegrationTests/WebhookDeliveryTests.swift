import Alert
import ChildProcesses
import Foundation
import Kafka
import Logging
import SwiftProtobuf
import Testing
import VigilSchema
import Webhooks
import WorkerRuntime

/// Signed webhooks from vigil-alert to real HTTP receivers on loopback: what each kind of
/// answer does to a delivery, one endpoint failing beside one that works, a 410 disabling its
/// endpoint, dead letters and their replay, and a SIGKILL while a receiver is slow.
@Suite("webhook delivery", .serialized, .timeLimit(.minutes(5)))
struct WebhookDeliveryTests {
    static let secretVariable = "VIGIL_TEST_WEBHOOK_SECRET"
    static let secret = "whsec_" + Data((0..<32).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
    static let topics = AlertWorkerTests.topics
    static let environment = AlertWorkerTests.environment.merging([
        "WEBHOOK_ATTEMPTS": "3", "WEBHOOK_RETRY_BASE_MS": "50", "WEBHOOK_RETRY_CAP_MS": "2000", "WEBHOOK_TIMEOUT_MS": "5000",
        secretVariable: secret,
    ]) { $1 }

    static func send(_ request: WebhookSender.Request, timeout: Duration = .seconds(5)) async -> WebhookSender.Attempt {
        await WebhookSender.withSender(timeout: timeout) { await $0.send(request) }
    }

    static func request(_ url: String) -> WebhookSender.Request {
        WebhookSender.Request(url: url, headers: [("webhook-id", "alert-x/1")], body: Data("{}".utf8))
    }

    @Test("each kind of answer: 2xx accepted, 500 failed, 429 with Retry-After (seconds, or a date), 410 gone, a redirect not followed, a hang, a closed connection, nobody listening")
    func answers() async throws {
        let target = try await ScriptedReceiver { _, _ in .init(status: 204) }
        let receiver = try await ScriptedReceiver { request, _ in
            switch request.path {
            case "/ok": .init(status: 204)
            case "/error": .init(status: 500)
            case "/busy": .init(status: 429, headers: ["Retry-After": "7"])
            case "/gone": .init(status: 410)
            case "/moved": .init(status: 307, headers: ["Location": target.url])
            case "/hang": .init(status: 204, hold: .seconds(20))
            default: .init(status: 404)
            }
        }
        let base = "http://127.0.0.1:\(receiver.port)"
        #expect(await Self.send(Self.request(base + "/ok")) == .accepted(status: 204))
        #expect(await Self.send(Self.request(base + "/error")) == .failed(reason: "HTTP 500", retryAfter: nil))
        #expect(await Self.send(Self.request(base + "/busy")) == .failed(reason: "HTTP 429", retryAfter: .seconds(7)))
        #expect(await Self.send(Self.request(base + "/gone")) == .gone)
        guard case .failed(let moved, nil) = await Self.send(Self.request(base + "/moved")) else {
            Issue.record("a redirect is a failed attempt")
            return
        }
        #expect(moved.contains("HTTP 307 redirect to \(target.url), not followed"), "\(moved)")
        #expect(target.received.isEmpty, "the redirect's target was never called")
        guard case .failed(let hang, nil) = await Self.send(Self.request(base + "/hang"), timeout: .milliseconds(300)) else {
            Issue.record("a hanging receiver is a failed attempt")
            return
        }
        #expect(hang == "no answer within 0.3 seconds", "\(hang)")
        // A server that accepts the connection and closes it without an answer.
        let closer = try ChildProcess("/usr/bin/python3", ["-c", Self.closingServer], name: "closing server")
        var closerPort = 0
        try await eventually(timeout: .seconds(10), "the closing server listens") {
            closerPort = closer.output.first.flatMap { Int($0) } ?? 0
            return closerPort != 0
        }
        guard case .failed(let closed, nil) = await Self.send(Self.request("http://127.0.0.1:\(closerPort)/hook")) else {
            Issue.record("a closed connection is a failed attempt")
            return
        }
        #expect(!closed.isEmpty)
        closer.signal(SIGKILL)
        guard case .failed(let refused, nil) = await Self.send(Self.request("http://127.0.0.1:\(closerPort)/hook")) else {
            Issue.record("nobody listening is a failed attempt")
            return
        }
        #expect(!refused.isEmpty)
        // The date form of Retry-After (RFC 9110's example), read against the time it was sent.
        #expect(WebhookSender.retryAfter("Wed, 21 Oct 2015 07:28:00 GMT", now: Date(timeIntervalSince1970: 1_445_412_450)) == .seconds(30))
        #expect(WebhookSender.retryAfter("soon", now: Date()) == nil)
        receiver.stop()
        target.stop()
    }

    /// Accepts connections on a free port (printed) and closes each at once, unanswered.
    static let closingServer = """
    import socket, sys
    server = socket.socket(); server.bind(("127.0.0.1", 0)); server.listen(8)
    print(server.getsockname()[1], flush=True)
    while True:
        connection, _ = server.accept(); connection.close()
    """

    static func endpointsFile(_ endpoints: [(name: String, url: String)]) throws -> String {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-webhooks-\(UUID().uuidString).yaml")
        let yaml = "webhooks:\n" + endpoints.map { "  \($0.name):\n    url: \($0.url)\n    secrets: [env:\(secretVariable)]\n" }.joined()
        try yaml.write(to: file, atomically: true, encoding: .utf8)
        return file.path
    }

    static func vigil(_ arguments: [String], bootstrap: String) async throws -> ChildProcess {
        let command = try ChildProcess(
            "vigil", arguments + ["--bootstrap", bootstrap, "--log-level", "warning"], name: "vigil \(arguments.prefix(2).joined(separator: " "))",
            environment: [secretVariable: secret]
        )
        try await command.waitForExit(timeout: .seconds(120))
        return command
    }

    /// Alert revisions on `alerts.v1` now, as webhook ids.
    static func revisions(_ kafka: KafkaConfiguration) async throws -> Set<String> {
        Set(try await KafkaTableReader.readPartitions(cluster: kafka, topic: "alerts.v1", partitions: nil, logger: Logger(label: "test"))
            .compactMap { try? Vigil_V1_Alert(serializedBytes: $0.value) }.map(WebhookSender.Request.webhookID))
    }

    static func verified(_ request: ScriptedReceiver.Request) -> Bool {
        guard let secret = StandardWebhooks.Secret(secret) else { return false }
        do {
            try StandardWebhooks.verify(
                id: request.headers["webhook-id"], timestamp: request.headers["webhook-timestamp"], signature: request.headers["webhook-signature"],
                body: request.body, secret: secret
            )
            return true
        } catch {
            return false
        }
    }

    @Test("a failing endpoint never holds back a working one; its revisions are dead-lettered after the last retry and replayed; Retry-After is waited out; 410 disables its endpoint, audited; a URL with credentials is refused")
    func endpointsApart() async throws {
        let failing = FailureSwitch()
        let good = try await ScriptedReceiver { _, _ in .init(status: 204) }
        let flaky = try await ScriptedReceiver { _, _ in failing.isOn ? .init(status: 500) : .init(status: 200) }
        let gone = try await ScriptedReceiver { _, _ in .init(status: 410) }
        // Busy at first: asks for a second's pause, which outlasts the 50–100 ms backoff.
        let busy = try await ScriptedReceiver { _, index in index == 0 ? .init(status: 429, headers: ["Retry-After": "1"]) : .init(status: 204) }
        // Asks for a minute, beyond the retry cap (2 s here): dead-lettered at once, with that reason.
        let patient = try await ScriptedReceiver { _, _ in .init(status: 503, headers: ["Retry-After": "60"]) }
        let cluster = try await DevClusterProcess(topics: Self.topics)
        let bootstrap = cluster.bootstrapServers
        let kafka = KafkaConfiguration(bootstrapServers: bootstrap)

        let withCredentials = try Self.endpointsFile([("leaky", "https://ops:hunter2@hooks.example.org/vigil")])
        let refused = try await Self.vigil(["webhooks", "apply", withCredentials], bootstrap: bootstrap)
        #expect(refused.exitStatus == 1)
        #expect(refused.output.contains { $0.contains("webhooks.leaky.url: carries credentials") }, "\(refused.output)")

        let file = try Self.endpointsFile([("good", good.url), ("flaky", flaky.url), ("gone", gone.url), ("busy", busy.url), ("patient", patient.url)])
        let applied = try await Self.vigil(["webhooks", "apply", file, "--actor", "op-1"], bootstrap: bootstrap)
        #expect(applied.exitStatus == 0, "\(applied.standardError.suffix(1_000))")
        let worker = try await PassThroughWorkerProcess.start(cluster, environment: Self.environment, executable: "vigil-alert")
        // The endpoints apply one second after `apply`; incidents sent before a replica reads them would go out before delivery starts.
        try await Task.sleep(for: .seconds(2))
        let now = Int64(Date().timeIntervalSince1970 * 1_000)
        let producer = try KafkaProducer(configuration: .init(cluster: kafka), logger: Logger(label: "test"))
        try await producer.send(all: try (1...3).map { try AlertWorkerTests.incident("inc-\($0)", camera: "dock-\($0)", at: now) })
        await producer.close()

        try await eventually(timeout: .seconds(60), "the working endpoint has all three alerts while the failing one is still failing") {
            Set(good.received.compactMap { $0.headers["webhook-id"] }).count == 3
        }
        #expect(good.received.allSatisfy(Self.verified), "every request is signed with the endpoint's secret")
        try await eventually(timeout: .seconds(60), "the failing endpoints' revisions dead-lettered, three each") {
            try await KafkaTableReader.readPartitions(cluster: kafka, topic: "webhook.deadletters.v1", partitions: nil, logger: Logger(label: "test")).count == 6
        }
        let allLetters = try await KafkaTableReader.readPartitions(cluster: kafka, topic: "webhook.deadletters.v1", partitions: nil, logger: Logger(label: "test"))
            .map { try Vigil_V1_WebhookDeadLetter(serializedBytes: $0.value) }
        let letters = allLetters.filter { $0.endpoint == "flaky" }
        #expect(letters.count == 3)
        #expect(allLetters.filter { $0.endpoint == "patient" }.allSatisfy {
            $0.attempts == 1 && $0.reason == "HTTP 503; asked to retry after 60.0 seconds, longer than WEBHOOK_RETRY_CAP_MS (2.0 seconds)"
        }, "\(allLetters.map(\.reason))")
        #expect(patient.received.count == 3, "one attempt each")
        #expect(letters.allSatisfy { $0.endpoint == "flaky" && $0.reason == "HTTP 500" && $0.attempts == 3 && $0.eventType == "vigil.alert.v1.opened" })
        #expect(flaky.received.count == 9 && flaky.received.allSatisfy(Self.verified))
        // Retries keep the webhook id (the receiver's idempotency key).
        #expect(Set(flaky.received.compactMap { $0.headers["webhook-id"] }) == Set(letters.map { WebhookSender.Request.webhookID($0.alert) }))

        try await eventually(timeout: .seconds(60), "410 disabled the gone endpoint") {
            let list = try await Self.vigil(["webhooks", "list"], bootstrap: bootstrap)
            return list.output.contains { $0.hasPrefix("gone") && $0.contains("DISABLED: the endpoint answered 410 Gone") }
        }
        #expect(gone.received.count == 1, "nothing more is sent after a 410")
        try await eventually(timeout: .seconds(30), "the busy endpoint has all three after its pause") {
            Set(busy.received.compactMap { $0.headers["webhook-id"] }).count == 3 && busy.received.count == 4
        }
        let pause = busy.received[1].arrived - busy.received[0].arrived
        #expect(pause >= .milliseconds(950), "Retry-After: 1 waited out (the backoff alone is at most 200 ms): \(pause)")
        #expect(busy.received[0].headers["webhook-id"] == busy.received[1].headers["webhook-id"], "the same revision tried again")
        let audit = try await KafkaTableReader.readPartitions(cluster: kafka, topic: "audit.events.v1", partitions: nil, logger: Logger(label: "test"))
            .compactMap { try? Vigil_V1_AuditEvent(serializedBytes: $0.value) }.filter { $0.kind == .subscriptionChanged }
        #expect(audit.contains { $0.actor == "vigil-alert" && $0.subject == "webhook:gone" && $0.detail.hasPrefix("disabled: the endpoint answered 410 Gone") })
        #expect(audit.filter { $0.actor == "op-1" }.count == 5, "applying the five endpoints was audited")
        #expect(!audit.contains { $0.detail.contains(Self.secret) }, "no secret in an audit event")

        failing.isOn = false
        let replay = try await Self.vigil(["webhooks", "replay", "flaky"], bootstrap: bootstrap)
        #expect(replay.exitStatus == 0, "\(replay.output) \(replay.standardError.suffix(1_000))")
        #expect(replay.output.last == "replayed 3 of 3 revisions to flaky")
        #expect(flaky.received.suffix(3).allSatisfy(Self.verified))
        let test = try await Self.vigil(["webhooks", "test", "good"], bootstrap: bootstrap)
        #expect(test.exitStatus == 0 && test.output.last == "good: HTTP 204, accepted", "\(test.output)")
        #expect(good.received.last.map { String(decoding: $0.body, as: UTF8.self).contains("\"type\":\"vigil.webhook.v1.ping\"") } == true)

        worker.process.signal(SIGTERM)
        try await worker.process.waitForExit()
        #expect(worker.process.exitStatus == 0, "\(worker.process.standardError.suffix(1_000))")
        #expect(!worker.process.standardError.contains(Self.secret), "no secret in a log line")
        try await cluster.stop()
        for receiver in [good, flaky, gone, busy, patient] { receiver.stop() }
    }

    @Test("SIGKILL of vigil-alert while the receiver is slow: the request cut off is sent again, every alert revision reaches the receiver at least once, and exactly once after dedup by webhook-id")
    func killedWhileReceiverIsSlow() async throws {
        let receiver = try await ScriptedReceiver { _, _ in .init(status: 204, hold: .milliseconds(2_500)) }
        let cluster = try await DevClusterProcess(topics: Self.topics)
        let bootstrap = cluster.bootstrapServers
        let kafka = KafkaConfiguration(bootstrapServers: bootstrap)
        let applied = try await Self.vigil(["webhooks", "apply", try Self.endpointsFile([("slow", receiver.url)])], bootstrap: bootstrap)
        #expect(applied.exitStatus == 0, "\(applied.standardError.suffix(1_000))")
        var worker = try await PassThroughWorkerProcess.start(cluster, environment: Self.environment, executable: "vigil-alert")
        try await Task.sleep(for: .seconds(2))
        let now = Int64(Date().timeIntervalSince1970 * 1_000)
        let producer = try KafkaProducer(configuration: .init(cluster: kafka), logger: Logger(label: "test"))
        try await producer.send(all: try (1...4).map { try AlertWorkerTests.incident("slow-\($0)", camera: "cam-\($0)", at: now) })
        await producer.close()

        try await eventually(timeout: .seconds(60), "the receiver holds its second request") { receiver.received.count >= 2 }
        // Killed well inside that request's hold, after the consumer's one-second commit has
        // run: an offset stored before the delivery finished would be committed by now.
        try await Task.sleep(for: .milliseconds(1_500))
        worker.process.signal(SIGKILL)
        try await worker.process.waitForExit()
        // The request the receiver was holding was never answered: vigil-alert must send it again.
        let beforeRestart = receiver.received.count
        let unanswered = try #require(receiver.received.last?.headers["webhook-id"])
        worker = try await PassThroughWorkerProcess.start(cluster, environment: Self.environment, executable: "vigil-alert")

        let expected = try await Self.revisions(kafka)
        #expect(expected.count == 4)
        try await eventually(timeout: .seconds(90), "every revision reached the receiver after the restart") {
            expected.isSubset(of: Set(receiver.received.compactMap { $0.headers["webhook-id"] }))
        }
        try await eventually(timeout: .seconds(60), "the revision whose request was cut off is sent again") {
            receiver.received.dropFirst(beforeRestart).contains { $0.headers["webhook-id"] == unanswered }
        }
        let ids = receiver.received.compactMap { $0.headers["webhook-id"] }
        #expect(Set(ids) == expected, "exactly once after dedup: \(ids)")
        #expect(receiver.received.allSatisfy(Self.verified))
        worker.process.signal(SIGTERM)
        try await worker.process.waitForExit()
        try await cluster.stop()
        receiver.stop()
    }
}

/// Whether a scripted receiver fails, switched by the test.
final class FailureSwitch: @unchecked Sendable {
    private let lock = NSLock()
    private var on = true

    var isOn: Bool {
        get { lock.withLock { on } }
        set { lock.withLock { on = newValue } }
    }
}
