import Foundation
import Hummingbird
import Logging

/// A webhook receiver whose answers a test scripts: each request is recorded (headers and
/// body), then answered by `answer` — a status with headers, after an optional hold.
final class ScriptedReceiver: @unchecked Sendable {
    struct Request: Sendable {
        var path: String
        var headers: [String: String]
        var body: Data
        var arrived: ContinuousClock.Instant
    }

    struct Answer: Sendable {
        var status: Int
        var headers: [String: String] = [:]
        /// Held this long before answering (a slow or hanging receiver).
        var hold: Duration = .zero
    }

    private let task: Task<Void, any Error>
    private let log: RequestLog
    let port: Int

    /// Starts on a free loopback port; `answer` gets the request and how many came before it.
    init(_ answer: @escaping @Sendable (Request, Int) -> Answer) async throws {
        let portBox = PortHolder()
        let router = Router()
        let log = RequestLog()
        router.post("**") { request, _ -> Response in
            let buffer = try await request.body.collect(upTo: 1 << 20)
            var headers: [String: String] = [:]
            for field in request.headers { headers[field.name.canonicalName] = field.value }
            let recorded = Request(path: request.uri.path, headers: headers, body: Data(buffer.readableBytesView), arrived: .now)
            let index = log.append(recorded)
            let reply = answer(recorded, index)
            if reply.hold > .zero { try await Task.sleep(for: reply.hold) }
            var fields = HTTPFields()
            for (name, value) in reply.headers { fields[.init(name)!] = value }
            return Response(status: .init(code: reply.status), headers: fields)
        }
        let application = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in portBox.set(channel.localAddress?.port ?? 0) }, logger: Logger(label: "scripted-receiver")
        )
        task = Task { try await application.runService(gracefulShutdownSignals: []) }
        self.log = log
        port = try await portBox.wait()
    }

    var received: [Request] { log.all }

    var url: String { "http://127.0.0.1:\(port)/hook" }

    func stop() {
        task.cancel()
    }
}

/// Requests in arrival order.
private final class RequestLog: @unchecked Sendable {
    private let lock = NSLock()
    private var requests: [ScriptedReceiver.Request] = []

    func append(_ request: ScriptedReceiver.Request) -> Int {
        lock.withLock {
            requests.append(request)
            return requests.count - 1
        }
    }

    var all: [ScriptedReceiver.Request] { lock.withLock { requests } }
}

/// The port a server reports once it listens.
final class PortHolder: @unchecked Sendable {
    private let lock = NSLock()
    private var port: Int?

    func set(_ value: Int) { lock.withLock { port = value } }

    /// The port, once the server reported it.
    func wait() async throws -> Int {
        var found = 0
        try await eventually(timeout: .seconds(10), "the server listens") {
            found = lock.withLock { port ?? 0 }
            return found != 0
        }
        return found
    }
}
