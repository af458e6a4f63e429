import Alert
import Foundation
import SwiftProtobuf
import VigilSchema
import WorkerRuntime

/// The `webhooks.v1` table: one record per endpoint name, its URL, filter and secret references.
public enum WebhookEndpoints {
    public static let topic = "webhooks.v1"
    /// Where alert revisions an endpoint did not accept after its last retry go, keyed by endpoint.
    public static let deadLetterTopic = "webhook.deadletters.v1"
    /// The author of a version vigil-alert writes itself (a disabling after 410 Gone).
    public static let workerAuthor = "vigil-alert"

    public static func table() -> Table<Vigil_V1_WebhookEndpoint> {
        Table(topic: topic) { key, bytes in
            let endpoint = try Vigil_V1_WebhookEndpoint(serializedBytes: bytes)
            guard endpoint.name == key else { throw EndpointRecordMismatch(key: key, name: endpoint.name) }
            return endpoint
        }
    }

    /// The consumer group that delivers to `endpoint`: its own, so it keeps its own place in
    /// `alerts.v1` and a slow endpoint holds back nobody else.
    public static func consumerGroup(of endpoint: String, worker group: String) -> String {
        "\(group).webhooks.\(endpoint)"
    }

    /// Whether `endpoint` takes this revision: delivered alerts only (a silenced one is recorded,
    /// not delivered), within the filter, recorded since the endpoint was first applied.
    public static func takes(_ alert: Vigil_V1_Alert, recordedAt milliseconds: Int64?, by endpoint: Vigil_V1_WebhookEndpoint) -> Bool {
        guard alert.silencedBy.isEmpty else { return false }
        if endpoint.hasDeliverFrom, let milliseconds, milliseconds < endpoint.deliverFrom.milliseconds { return false }
        return (endpoint.cameraIds.isEmpty || endpoint.cameraIds.contains(alert.incident.cameraID))
            && (endpoint.ruleIds.isEmpty || endpoint.ruleIds.contains(alert.incident.ruleID))
            && (endpoint.severities.isEmpty || endpoint.severities.contains(alert.severity))
            && (endpoint.states.isEmpty || endpoint.states.contains(alert.state))
    }

    /// Why `url` cannot be an endpoint, or nil when it can: http or https with a host, and never
    /// credentials in it — they would sit in a record every replica and `vigil webhooks list`
    /// shows, while the signature already authenticates vigil to the receiver.
    public static func problem(with url: String) -> String? {
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased() else {
            return "\"\(url)\" is not a URL; give http:// or https:// and a host"
        }
        guard scheme == "https" || scheme == "http" else { return "uses \(scheme); endpoints take https (or http inside a trusted network)" }
        guard let host = components.host, !host.isEmpty else { return "has no host" }
        if components.user != nil || components.password != nil {
            return "carries credentials (user:password@); remove them: vigil signs every request, and a receiver verifies the signature with its secret"
        }
        return nil
    }
}

/// Where an endpoint's signing secret is read: `env:NAME` (the worker's environment) or
/// `file:/path` (a mounted Secret). Only the reference is ever stored or logged.
public struct SecretReference: Sendable, Hashable, CustomStringConvertible {
    public enum Source: Sendable, Hashable {
        case environment(String)
        case file(String)
    }

    public let source: Source

    /// Nil when `text` is neither `env:NAME` nor `file:/absolute/path`.
    public init?(_ text: String) {
        if text.hasPrefix("env:"), case let name = String(text.dropFirst(4)), !name.isEmpty,
            name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") })
        {
            source = .environment(name)
        } else if text.hasPrefix("file:/") {
            source = .file(String(text.dropFirst(5)))
        } else {
            return nil
        }
    }

    public var description: String {
        switch source {
        case .environment(let name): "env:\(name)"
        case .file(let path): "file:\(path)"
        }
    }

    /// The secret, or why it cannot be had (the reference named, never a value).
    public func resolve(environment: [String: String] = ProcessInfo.processInfo.environment) -> Result<StandardWebhooks.Secret, SecretProblem> {
        let text: String
        switch source {
        case .environment(let name):
            guard let value = environment[name], !value.isEmpty else { return .failure(SecretProblem(reference: self, problem: "is not set")) }
            text = value
        case .file(let path):
            guard let contents = try? String(contentsOfFile: path, encoding: .utf8) else { return .failure(SecretProblem(reference: self, problem: "cannot be read")) }
            text = contents
        }
        guard let secret = StandardWebhooks.Secret(text) else {
            return .failure(SecretProblem(reference: self, problem: "does not hold whsec_ and the base64 of at least 24 bytes"))
        }
        return .success(secret)
    }

    /// Every secret of `endpoint`, newest first, or the first problem.
    public static func secrets(of endpoint: Vigil_V1_WebhookEndpoint, environment: [String: String] = ProcessInfo.processInfo.environment) -> Result<[StandardWebhooks.Secret], SecretProblem> {
        var secrets: [StandardWebhooks.Secret] = []
        for text in endpoint.secretRefs {
            guard let reference = SecretReference(text) else {
                return .failure(SecretProblem(reference: nil, problem: "\"\(text)\" is not a secret reference (env:NAME or file:/path)"))
            }
            switch reference.resolve(environment: environment) {
            case .success(let secret): secrets.append(secret)
            case .failure(let problem): return .failure(problem)
            }
        }
        guard !secrets.isEmpty else { return .failure(SecretProblem(reference: nil, problem: "the endpoint names no secret")) }
        return .success(secrets)
    }
}

/// A signing secret that cannot be read: nothing is sent unsigned.
public struct SecretProblem: Error, Sendable, Equatable, CustomStringConvertible {
    public var reference: SecretReference?
    public var problem: String

    public var description: String {
        (reference.map { "secret \($0) " } ?? "") + problem
    }
}

/// A `webhooks.v1` record whose value names another endpoint than its key.
struct EndpointRecordMismatch: Error, CustomStringConvertible {
    var key: String
    var name: String

    var description: String { "the record's key is \(key) but its endpoint is \"\(name)\"" }
}

extension DeclaredValueKind where Value == Vigil_V1_WebhookEndpoint {
    /// Endpoints: compared on what the file declares. A disabled endpoint differs from the
    /// file's (which is enabled), so applying the file again enables it.
    public static let webhookEndpoint = DeclaredValueKind(
        noun: "webhook", id: \.name, version: \.version,
        stamp: { endpoint, version, author, milliseconds in
            endpoint.version = version
            endpoint.author = author
            endpoint.updatedTime = .init(milliseconds: milliseconds)
            if !endpoint.hasDeliverFrom { endpoint.deliverFrom = .init(milliseconds: milliseconds) }
        },
        differences: { WebhookEndpointChanges.differences(from: $0, to: $1) }, summary: { WebhookEndpointChanges.summary($0) },
        removal: "endpoint removed: vigil-alert stops delivering to it"
    )
}

public enum WebhookEndpointChanges {
    /// The parts that changed, each as "part: before → after"; bookkeeping ignored.
    public static func differences(from old: Vigil_V1_WebhookEndpoint, to new: Vigil_V1_WebhookEndpoint) -> [String] {
        let parts: [(String, (Vigil_V1_WebhookEndpoint) -> String)] = [
            ("url", \.url),
            ("secrets", { $0.secretRefs.joined(separator: ", ") }),
            ("cameras", { $0.cameraIds.joined(separator: ", ") }),
            ("rules", { $0.ruleIds.joined(separator: ", ") }),
            ("severities", { $0.severities.map(StandardWebhooks.name).joined(separator: ", ") }),
            ("states", { $0.states.map(StandardWebhooks.name).joined(separator: ", ") }),
            ("disabled", { $0.disabledReason.isEmpty ? "no" : "yes (\($0.disabledReason))" }),
        ]
        return parts.compactMap { name, part in
            let before = part(old), after = part(new)
            return before == after ? nil : "\(name): \(before.isEmpty ? "all" : before) → \(after.isEmpty ? "all" : after)"
        }
    }

    public static func summary(_ endpoint: Vigil_V1_WebhookEndpoint) -> String {
        let filter = [
            endpoint.cameraIds.isEmpty ? nil : "cameras \(endpoint.cameraIds.joined(separator: ", "))",
            endpoint.ruleIds.isEmpty ? nil : "rules \(endpoint.ruleIds.joined(separator: ", "))",
            endpoint.severities.isEmpty ? nil : "severities \(endpoint.severities.map(StandardWebhooks.name).joined(separator: ", "))",
            endpoint.states.isEmpty ? nil : "states \(endpoint.states.map(StandardWebhooks.name).joined(separator: ", "))",
        ].compactMap { $0 }
        return "\(endpoint.url), \(filter.isEmpty ? "every alert" : filter.joined(separator: "; ")), signed with \(endpoint.secretRefs.joined(separator: " and "))"
    }
}
