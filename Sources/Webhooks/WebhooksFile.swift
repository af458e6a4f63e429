import DeclarationFiles
import Foundation
import VigilSchema
import Yams

/// The webhooks file `vigil webhooks apply` reads: endpoint name → URL, secret references and filter.
///
/// ```yaml
/// webhooks:
///   ops-pager:
///     url: https://hooks.example.org/vigil
///     secrets: [env:VIGIL_WEBHOOK_OPS_PAGER]     # newest first; two while rotating
///     cameras: [dock-1, dock-2]                  # each filter key is optional: absent means all
///     rules: [forklift-aisle]
///     severities: [major, critical]
///     states: [open, escalated]
/// ```
public enum WebhooksFile {
    static let keys = ["url", "secrets", "cameras", "rules", "severities", "states"]

    public static func parse(yaml: String, file: String) throws(DeclarationProblems) -> [Vigil_V1_WebhookEndpoint] {
        var reader = DeclarationReader(file: file)
        let endpoints = reader.endpoints(yaml)
        guard reader.errors.isEmpty else { throw DeclarationProblems(errors: reader.errors) }
        return endpoints
    }

    /// Every file's endpoints; names must be unique across the files.
    public static func load(paths: [String]) throws(DeclarationProblems) -> [Vigil_V1_WebhookEndpoint] {
        try loadDeclarations(paths: paths, section: "webhooks", noun: "endpoint", id: \.name) { yaml, file throws(DeclarationProblems) in
            try parse(yaml: yaml, file: file)
        }
    }

    static let severities: [String: Vigil_V1_Severity] = ["info": .info, "warning": .warning, "major": .major, "critical": .critical]
    static let states: [String: Vigil_V1_AlertState] = [
        "open": .open, "acknowledged": .acknowledged, "escalated": .escalated, "resolved": .resolved, "false_positive": .falsePositive,
    ]
}

private extension DeclarationReader {
    mutating func endpoints(_ yaml: String) -> [Vigil_V1_WebhookEndpoint] {
        guard let section = section(yaml, top: "webhooks", holding: "endpoint name → url, secrets and filter") else { return [] }
        var endpoints: [Vigil_V1_WebhookEndpoint] = []
        for (nameNode, body) in section {
            let name = nameNode.string ?? ""
            let path = "webhooks.\(name)"
            guard Self.isValidID(name) else {
                fail(nameNode, path, "is not a valid endpoint name: use 1 to 64 lowercase letters, digits, '-', '_' or '.', starting with a letter or digit")
                continue
            }
            if let endpoint = endpoint(name: name, body, path: path) { endpoints.append(endpoint) }
        }
        return endpoints.sorted { $0.name < $1.name }
    }

    mutating func endpoint(name: String, _ node: Node, path: String) -> Vigil_V1_WebhookEndpoint? {
        guard let body = mapping(node, path: path) else { return nil }
        let before = errors.count
        rejectUnknownKeys(body, allowed: WebhooksFile.keys, path: path)
        var endpoint = Vigil_V1_WebhookEndpoint()
        endpoint.name = name
        if let urlNode = body["url"], let url = scalar(urlNode, path: "\(path).url") {
            if let problem = WebhookEndpoints.problem(with: url) { fail(urlNode, "\(path).url", problem) }
            endpoint.url = url
        } else if body["url"] == nil {
            fail(node, "\(path).url", "is missing; give the receiver's https:// URL")
        }
        if let secretsNode = body["secrets"], let references = strings(secretsNode, path: "\(path).secrets") {
            for (index, text) in references.enumerated() where SecretReference(text) == nil {
                fail(secretsNode, "\(path).secrets[\(index)]", "\"\(text)\" is not a secret reference; write env:NAME or file:/path — the secret itself never goes in this file")
            }
            if references.isEmpty || references.count > 2 {
                fail(secretsNode, "\(path).secrets", "must name one secret, or two (newest first) while rotating")
            }
            endpoint.secretRefs = references
        } else if body["secrets"] == nil {
            fail(node, "\(path).secrets", "is missing; name where vigil-alert reads the signing secret: [env:NAME] or [file:/path]")
        }
        if let node = body["cameras"], let ids = strings(node, path: "\(path).cameras") { endpoint.cameraIds = ids }
        if let node = body["rules"], let ids = strings(node, path: "\(path).rules") { endpoint.ruleIds = ids }
        if let node = body["severities"], let names = strings(node, path: "\(path).severities") {
            endpoint.severities = names.compactMap { name in
                guard let severity = WebhooksFile.severities[name] else {
                    fail(node, "\(path).severities", "\"\(name)\" is not a severity; use \(Self.list(["info", "warning", "major", "critical"]))")
                    return nil
                }
                return severity
            }
        }
        if let node = body["states"], let names = strings(node, path: "\(path).states") {
            endpoint.states = names.compactMap { name in
                guard let state = WebhooksFile.states[name] else {
                    fail(node, "\(path).states", "\"\(name)\" is not an alert state; use \(Self.list(["open", "acknowledged", "escalated", "resolved", "false_positive"]))")
                    return nil
                }
                return state
            }
        }
        return errors.count == before ? endpoint : nil
    }
}
