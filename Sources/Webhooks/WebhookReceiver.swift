import Alert
import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle

/// A webhook receiver as a subscriber would write one: every request's signature checked
/// (Standard Webhooks), duplicates recognised by `webhook-id`. `vigil webhooks listen` runs it
/// for the demo and for operators trying an endpoint; the delivery tests and `vigil bench
/// alert` post to it.
public struct WebhookReceiver: Sendable {
    /// One request that verified.
    public struct Delivery: Sendable {
        public var id: String
        public var body: Data
        /// The parsed CloudEvent (`type`, `data.alert_id`, …).
        public var event: [String: any Sendable]
        /// Whether this `webhook-id` had arrived before.
        public var duplicate: Bool
        public var received: ContinuousClock.Instant
    }

    public let secrets: [StandardWebhooks.Secret]
    /// Held before answering each request: a slow receiver, for tests and trials.
    public let delay: Duration
    public let logger: Logger

    public init(secrets: [StandardWebhooks.Secret], delay: Duration = .zero, logger: Logger) {
        self.secrets = secrets
        self.delay = delay
        self.logger = logger
    }

    /// Serves on `host:port` (0: any free port) until cancelled; `onListening` gets the port,
    /// `onDelivery` each verified request, `onRejection` the reason for each refused one (401).
    public func run(
        host: String = "127.0.0.1", port: Int, onListening: @escaping @Sendable (Int) -> Void,
        onDelivery: @escaping @Sendable (Delivery) -> Void, onRejection: @escaping @Sendable (String) -> Void = { _ in }
    ) async throws {
        let seen = SeenIDs()
        let (secrets, delay) = (secrets, delay)
        let router = Router()
        router.post("**") { request, _ -> Response in
            let buffer = try await request.body.collect(upTo: 1 << 20)
            let body = Data(buffer.readableBytesView)
            let headers = request.headers
            let id = headers[.init("webhook-id")!], timestamp = headers[.init("webhook-timestamp")!], signature = headers[.init("webhook-signature")!]
            var lastRejection = StandardWebhooks.Rejection.badSignature
            var verified = false
            for secret in secrets where !verified {
                do throws(StandardWebhooks.Rejection) {
                    try StandardWebhooks.verify(id: id, timestamp: timestamp, signature: signature, body: body, secret: secret)
                    verified = true
                } catch {
                    lastRejection = error
                }
            }
            guard verified, let id else {
                onRejection(lastRejection.description)
                return Response(status: .unauthorized, body: .init(byteBuffer: ByteBuffer(string: lastRejection.description + "\n")))
            }
            if delay > .zero { try await Task.sleep(for: delay) }
            let event = (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] ?? [:]
            onDelivery(Delivery(id: id, body: body, event: event.mapValues { SendableJSON($0).value }, duplicate: !seen.insert(id), received: .now))
            return Response(status: .noContent)
        }
        let application = Application(
            router: router, configuration: .init(address: .hostname(host, port: port), serverName: "vigil-webhook-receiver"),
            onServerRunning: { channel in onListening(channel.localAddress?.port ?? port) }, logger: logger
        )
        // Cancelled, it stops gracefully (as a worker does): cancelled outright, the server logs errors for a normal stop.
        let group = ServiceGroup(services: [application], gracefulShutdownSignals: [], logger: logger)
        try await withTaskCancellationHandler {
            try await group.run()
        } onCancel: {
            Task { await group.triggerGracefulShutdown() }
        }
    }
}

/// Webhook ids seen so far.
private final class SeenIDs: @unchecked Sendable {
    private let lock = NSLock()
    private var ids: Set<String> = []

    /// False when `id` was there already.
    func insert(_ id: String) -> Bool { lock.withLock { ids.insert(id).inserted } }
}

/// A JSON value as Foundation parsed it, carried across tasks: strings, numbers, booleans,
/// arrays and objects only, which are immutable once parsed.
private struct SendableJSON: @unchecked Sendable {
    let value: any Sendable

    init(_ object: Any) {
        switch object {
        case let dictionary as [String: Any]: value = dictionary.mapValues { SendableJSON($0).value }
        case let array as [Any]: value = array.map { SendableJSON($0).value }
        case let string as String: value = string
        case let number as NSNumber: value = number.doubleValue
        default: value = "\(object)"
        }
    }
}
