import Alert
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import VigilSchema
import WorkerRuntime

/// One signed request to one endpoint, and what its answer means. Redirects are never
/// followed: the signature was made for this endpoint, and a 3xx is an answer to fix, not a
/// place to send the alert.
public struct WebhookSender: Sendable {
    /// What one attempt came to.
    public enum Attempt: Sendable, Equatable {
        /// A 2xx: the receiver has it.
        case accepted(status: Int)
        /// 410 Gone: the receiver asks never to be called again.
        case gone
        /// Anything else: try again later. `retryAfter` is what the receiver asked for (429, 503).
        case failed(reason: String, retryAfter: Duration?)
    }

    /// A request ready to send: what `StandardWebhooks` made of one alert revision.
    public struct Request: Sendable {
        public var url: String
        public var headers: [(name: String, value: String)]
        public var body: Data

        public init(url: String, headers: [(name: String, value: String)], body: Data) {
            self.url = url
            self.headers = headers
            self.body = body
        }
    }

    let client: HTTPClient
    let timeout: Duration

    /// - Parameter timeout: how long one attempt may take, connecting included; a receiver that
    ///   hangs past it counts as a failed attempt.
    public init(client: HTTPClient, timeout: Duration) {
        self.client = client
        self.timeout = timeout
    }

    /// A client for webhooks: no redirects, connect within the attempt's timeout.
    public static func makeClient(timeout: Duration) -> HTTPClient {
        let milliseconds = max(1, timeout.milliseconds)
        return HTTPClient(
            eventLoopGroup: HTTPClient.defaultEventLoopGroup,
            configuration: HTTPClient.Configuration(
                redirectConfiguration: .disallow,
                timeout: .init(connect: .milliseconds(milliseconds), read: .milliseconds(milliseconds))
            )
        )
    }

    /// Runs `body` with a sender on a client of its own, shut down after: for tools that send a few.
    public static func withSender<T>(timeout: Duration, _ body: (WebhookSender) async throws -> T) async rethrows -> T {
        let client = makeClient(timeout: timeout)
        do {
            let result = try await body(WebhookSender(client: client, timeout: timeout))
            try? await client.shutdown()
            return result
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    public func send(_ request: Request, now: @Sendable () -> Date = Date.init) async -> Attempt {
        var http = HTTPClientRequest(url: request.url)
        http.method = .POST
        http.headers.add(name: "content-type", value: "application/cloudevents+json")
        http.headers.add(name: "user-agent", value: "vigil-alert")
        for header in request.headers { http.headers.add(name: header.name, value: header.value) }
        http.body = .bytes(ByteBuffer(bytes: request.body))
        do {
            let response = try await client.execute(http, timeout: .nanoseconds(timeout.nanoseconds))
            // Read (a little of) the answer so the connection can be reused; its content does not matter.
            _ = try? await response.body.collect(upTo: 64 << 10)
            let status = Int(response.status.code)
            switch status {
            case 200..<300:
                return .accepted(status: status)
            case 410:
                return .gone
            case 300..<400:
                let location = response.headers.first(name: "location").map { " to \($0)" } ?? ""
                return .failed(reason: "HTTP \(status) redirect\(location), not followed (the signature is for this URL; fix the endpoint's url)", retryAfter: nil)
            default:
                let retryAfter = response.headers.first(name: "retry-after").flatMap { Self.retryAfter($0, now: now()) }
                return .failed(reason: "HTTP \(status)", retryAfter: retryAfter)
            }
        } catch let error as HTTPClientError where error == .deadlineExceeded || error == .readTimeout || error == .connectTimeout {
            return .failed(reason: "no answer within \(timeout)", retryAfter: nil)
        } catch {
            return .failed(reason: "\(error)", retryAfter: nil)
        }
    }

    /// `Retry-After` as RFC 9110 writes it: delay-seconds, or an HTTP date.
    public static func retryAfter(_ value: String, now: Date) -> Duration? {
        let text = value.trimmingCharacters(in: .whitespaces)
        if let seconds = Int(text), seconds >= 0 { return .seconds(seconds) }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        guard let date = formatter.date(from: text) else { return nil }
        return .milliseconds(max(0, Int64(date.timeIntervalSince(now) * 1_000)))
    }
}

/// When to try again: capped exponential backoff with jitter, at least what the receiver asked.
public struct RetrySchedule: Sendable, Equatable {
    /// Attempts in all, the first included; after the last, the revision is dead-lettered.
    public var attempts: Int
    public var base: Duration
    public var cap: Duration

    public init(attempts: Int, base: Duration, cap: Duration) {
        self.attempts = attempts
        self.base = base
        self.cap = cap
    }

    /// The wait after failed attempt `attempt` (1-based): base × 2^(attempt−1), capped, then a
    /// random half of it taken off so replicas that failed together do not retry together.
    public func delay(after attempt: Int, jitter: Double = Double.random(in: 0..<1)) -> Duration {
        let exponential = base * Double(1 << min(attempt - 1, 30))
        let capped = min(exponential, cap)
        return capped * (1 - 0.5 * jitter)
    }
}

extension WebhookSender.Request {
    /// The signed request for one alert revision, as vigil-alert sends it and `vigil webhooks
    /// replay` sends it again: `webhook-id` is "alert id/revision" on every attempt, so a
    /// receiver recognises a repeat; the timestamp is the attempt's.
    public static func revision(
        _ alert: Vigil_V1_Alert, eventType: String, to url: String, secrets: [StandardWebhooks.Secret], at time: Date = Date()
    ) -> Self {
        let change = AlertChange(rawValue: String(eventType.dropFirst("vigil.alert.v1.".count))) ?? .updated
        let body = StandardWebhooks.body(for: alert, type: change)
        let id = webhookID(alert)
        return Self(url: url, headers: StandardWebhooks.headers(id: id, timestamp: time, body: body, secrets: secrets), body: body)
    }

    public static func webhookID(_ alert: Vigil_V1_Alert) -> String { "\(alert.alertID)/\(alert.revision)" }
}
