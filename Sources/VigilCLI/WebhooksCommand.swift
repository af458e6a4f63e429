import Alert
import ArgumentParser
import CommandLineSupport
import DeclarationFiles
import Foundation
import Kafka
import Logging
import SwiftProtobuf
import VigilSchema
import Webhooks
import WorkerRuntime

/// `vigil webhooks`: the endpoints vigil-alert signs and sends alerts to, a receiver to try
/// them with, and sending again what an endpoint did not take.
struct WebhooksCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "webhooks",
        abstract: "Declare webhook endpoints, test them, replay what they missed, and listen as a receiver.",
        subcommands: [Apply.self, List.self, Test.self, Replay.self, Listen.self]
    )

    static func writer(actor: String) -> DeclaredTableWriter<Vigil_V1_WebhookEndpoint> {
        DeclaredTableWriter(
            topic: WebhookEndpoints.topic, kind: .webhookEndpoint, command: "vigil webhooks apply", serialize: { try $0.serializedBytes() },
            auditKind: .subscriptionChanged, actor: actor
        )
    }

    struct Apply: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check webhooks files, show what changes, and publish the endpoints to webhooks.v1.",
            discussion: """
                The files are checked whole first (every problem with its file, line and key; nothing is published while any remains): each endpoint needs a url (http or https, never with credentials in it) and one secret reference, or two while rotating (env:NAME or file:/path, read by vigil-alert: the secret never enters a file, record or log). Filters (cameras, rules, severities, states) are optional; absent means all.

                A new endpoint receives the alert revisions recorded from now on. An endpoint vigil-alert disabled after a 410 Gone is enabled again by applying it, and resumes where its delivery stopped. Every change is an audit event on audit.events.v1 written before the change.

                Exit status: 0 published (or, with --dry-run, checked); 1 a file has problems, or the cluster could not be read or written.
                """
        )

        @Argument(help: "Webhooks files (YAML), or folders of them.")
        var paths: [String]

        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var apply: DeclaredApplyOptions
        @OptionGroup var logging: LoggingOptions

        func run() async throws {
            let logger = logging.bootstrap(label: "vigil.webhooks")
            var desired: [Vigil_V1_WebhookEndpoint]
            let files = RulesCommand.files(paths)
            do {
                desired = try WebhooksFile.load(paths: files)
            } catch {
                for problem in error.errors { writeLine(problem.description) }
                writeLine("\(TopologyOption.count(error.errors.count, "problem")) in \(files.joined(separator: ", "))")
                throw ExitCode.failure
            }
            let cluster = connection.configuration(clientID: "vigil-webhooks")
            let current = try await WebhookEndpoints.table().readCurrentValues(cluster: cluster, logger: logger)
            // An endpoint keeps the time it was first applied: it is where its delivery begins.
            for index in desired.indices {
                if let stored = current[desired[index].name]?.value, stored.hasDeliverFrom { desired[index].deliverFrom = stored.deliverFrom }
            }
            let writer = WebhooksCommand.writer(actor: apply.actor)
            let plan = DeclaredTablePlan(.webhookEndpoint, current: current, desired: desired, deleteMissing: apply.deleteMissing, actor: apply.actor, now: apply.effectiveMilliseconds)
            writer.printPlan(plan)
            try await writer.publish(plan, dryRun: apply.dryRun, cluster: cluster, logger: logger)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the webhook endpoints the cluster holds, and any vigil-alert disabled.")

        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var logging: LoggingOptions

        func run() async throws {
            let logger = logging.bootstrap(label: "vigil.webhooks")
            let endpoints = try await WebhookEndpoints.table().readCurrentValues(cluster: connection.configuration(clientID: "vigil-webhooks"), logger: logger)
            guard !endpoints.isEmpty else {
                writeLine("no webhook endpoints; declare them with `vigil webhooks apply webhooks.yaml`")
                return
            }
            let rows = endpoints.keys.sorted().map { name -> [String] in
                let endpoint = endpoints[name]!.value
                return [
                    name, "v\(endpoint.version)", endpoint.disabledReason.isEmpty ? "enabled" : "DISABLED: \(endpoint.disabledReason)",
                    WebhookEndpointChanges.summary(endpoint), endpoint.author,
                ]
            }
            printTable(header: ["ENDPOINT", "VERSION", "STATE", "SENDS", "BY"], rows: rows)
        }
    }

    /// An endpoint from the cluster, or the reason it cannot be used from here.
    static func endpoint(named name: String, cluster: KafkaConfiguration, logger: Logger) async throws -> Vigil_V1_WebhookEndpoint {
        let endpoints = try await WebhookEndpoints.table().readCurrentValues(cluster: cluster, logger: logger)
        guard let endpoint = endpoints[name]?.value else {
            writeError("vigil: \(WebhookEndpoints.topic) holds no endpoint \(name) (it holds: \(endpoints.keys.sorted().joined(separator: ", ")))")
            throw ExitCode.failure
        }
        return endpoint
    }

    /// The endpoint's secrets, read here as vigil-alert reads them: the same references must
    /// resolve in this shell.
    static func secrets(of endpoint: Vigil_V1_WebhookEndpoint) throws -> [StandardWebhooks.Secret] {
        switch SecretReference.secrets(of: endpoint) {
        case .success(let secrets): return secrets
        case .failure(let problem):
            writeError("vigil: cannot sign for \(endpoint.name): \(problem); set it in this shell as vigil-alert has it")
            throw ExitCode.failure
        }
    }

    struct Test: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Send an endpoint a signed ping (CloudEvents type vigil.webhook.v1.ping) and show its answer.",
            discussion: "Exit status: 0 the endpoint answered 2xx; 1 it did not, or it is unknown, or its secret cannot be read here."
        )

        @Argument(help: "The endpoint's name.")
        var name: String

        @Option(help: "How long to wait for the answer, in seconds.")
        var answerTimeout = 10

        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var logging: LoggingOptions

        func run() async throws {
            let logger = logging.bootstrap(label: "vigil.webhooks")
            let endpoint = try await WebhooksCommand.endpoint(named: name, cluster: connection.configuration(clientID: "vigil-webhooks"), logger: logger)
            let secrets = try WebhooksCommand.secrets(of: endpoint)
            let id = "ping-\(UUID().uuidString.lowercased())"
            let event: [String: Any] = [
                "specversion": "1.0", "id": id, "source": CloudEvents.source, "type": "vigil.webhook.v1.ping",
                "time": Date().formatted(.iso8601), "datacontenttype": "application/json", "data": ["endpoint": endpoint.name],
            ]
            let body = try JSONSerialization.data(withJSONObject: event, options: [.sortedKeys, .withoutEscapingSlashes])
            let request = WebhookSender.Request(url: endpoint.url, headers: StandardWebhooks.headers(id: id, timestamp: Date(), body: body, secrets: secrets), body: body)
            let outcome = await WebhookSender.withSender(timeout: .seconds(answerTimeout)) { await $0.send(request) }
            switch outcome {
            case .accepted(let status): writeLine("\(endpoint.name): HTTP \(status), accepted")
            case .gone:
                writeLine("\(endpoint.name): HTTP 410 Gone; vigil-alert would disable this endpoint")
                throw ExitCode.failure
            case .failed(let reason, _):
                writeLine("\(endpoint.name): \(reason)")
                throw ExitCode.failure
            }
        }
    }

    struct Replay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Send an endpoint again what it did not take: its dead letters, or every revision since a time.",
            discussion: """
                Without --since, every revision in webhook.deadletters.v1 for the endpoint is sent once more, oldest first; with --since, every revision of alerts.v1 recorded since then that the endpoint's filter takes. Each is signed as vigil-alert signs it, with the same webhook-id, so a receiver that has it already recognises the repeat. One attempt each; the result of each is printed.

                Exit status: 0 every revision was accepted; 1 one or more were not (they stay in the dead letters), or the cluster could not be read.
                """
        )

        @Argument(help: "The endpoint's name.")
        var name: String

        @Option(help: "Replay alerts.v1 from this time (ISO 8601, e.g. 2026-12-07T10:00:00Z) instead of the dead letters.")
        var since: String?

        @Option(help: "How long to wait for each answer, in seconds.")
        var answerTimeout = 10

        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var logging: LoggingOptions

        func validate() throws {
            if let since, (try? Date(since, strategy: .iso8601)) == nil {
                throw ValidationError("--since must be an ISO 8601 time such as 2026-12-07T10:00:00Z, not \(since)")
            }
        }

        func run() async throws {
            let logger = logging.bootstrap(label: "vigil.webhooks")
            let cluster = connection.configuration(clientID: "vigil-webhooks")
            let endpoint = try await WebhooksCommand.endpoint(named: name, cluster: cluster, logger: logger)
            let secrets = try WebhooksCommand.secrets(of: endpoint)
            var revisions: [(alert: Vigil_V1_Alert, type: String)] = []
            if let since, let from = try? Date(since, strategy: .iso8601) {
                var open = endpoint
                open.clearDeliverFrom()
                for record in try await KafkaTableReader.readPartitions(cluster: cluster, topic: AlertStage.alertsTopic, partitions: nil, logger: logger) {
                    guard (record.timestampMilliseconds ?? 0) >= Int64(from.timeIntervalSince1970 * 1_000),
                        let alert = try? Vigil_V1_Alert(serializedBytes: record.value), WebhookEndpoints.takes(alert, recordedAt: nil, by: open)
                    else { continue }
                    revisions.append((alert, record.header("ce_type").map { String(decoding: $0, as: UTF8.self) } ?? AlertChange.updated.eventType))
                }
            } else {
                for record in try await KafkaTableReader.readPartitions(cluster: cluster, topic: WebhookEndpoints.deadLetterTopic, partitions: nil, logger: logger) {
                    guard record.key.map({ String(decoding: $0, as: UTF8.self) }) == name, let letter = try? Vigil_V1_WebhookDeadLetter(serializedBytes: record.value),
                        letter.hasAlert
                    else { continue }
                    revisions.append((letter.alert, letter.eventType))
                }
            }
            guard !revisions.isEmpty else {
                writeLine(since == nil ? "no dead letters for \(name)" : "no revisions for \(name) since \(since!)")
                return
            }
            let failed = await WebhookSender.withSender(timeout: .seconds(answerTimeout)) { sender in
                var failed = 0
                for (alert, type) in revisions {
                    let id = WebhookSender.Request.webhookID(alert)
                    let outcome = await sender.send(.revision(alert, eventType: type, to: endpoint.url, secrets: secrets))
                    switch outcome {
                    case .accepted(let status): writeLine("\(id): HTTP \(status), accepted")
                    case .gone:
                        failed += 1
                        writeLine("\(id): HTTP 410 Gone")
                    case .failed(let reason, _):
                        failed += 1
                        writeLine("\(id): \(reason)")
                    }
                }
                return failed
            }
            writeLine("replayed \(revisions.count - failed) of \(TopologyOption.count(revisions.count, "revision")) to \(name)")
            if failed > 0 { throw ExitCode.failure }
        }
    }

    struct Listen: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Receive webhooks on loopback, check their signatures, and print each alert revision.",
            discussion: """
                A receiver as a subscriber writes one: each request's Standard Webhooks signature is checked against the secret (and the timestamp against five minutes of now); a request that fails is answered 401 and reported. Repeats of a webhook-id (a redelivery after a crash) are marked as such. Runs until interrupted.
                """
        )

        @Option(help: "The port to listen on, on 127.0.0.1 (0: any free port, printed).")
        var port = 0

        @Option(help: "Where the signing secret is: env:NAME or file:/path (the endpoint's, as vigil-alert reads it). Give it twice during a rotation.")
        var secret: [String]

        func validate() throws {
            guard !secret.isEmpty else { throw ValidationError("--secret is required: the receiver checks every signature") }
            for reference in secret where SecretReference(reference) == nil {
                throw ValidationError("--secret \(reference) is not a secret reference; write env:NAME or file:/path")
            }
        }

        func run() async throws {
            let secrets = try secret.map { text -> StandardWebhooks.Secret in
                switch SecretReference(text)!.resolve() {
                case .success(let secret): return secret
                case .failure(let problem):
                    writeError("vigil: \(problem)")
                    throw ExitCode.failure
                }
            }
            var logger = Logger(label: "vigil.webhooks.listen")
            logger.logLevel = .warning  // its own lines say it listens and what arrives
            let receiver = WebhookReceiver(secrets: secrets, logger: logger)
            try await receiver.run(port: port) { port in
                writeLine("listening on http://127.0.0.1:\(port)/ for signed webhooks")
            } onDelivery: { delivery in
                let data = delivery.event["data"] as? [String: any Sendable] ?? [:]
                let fields = ["camera_id", "rule_id", "state", "severity"].map { "\($0.replacingOccurrences(of: "_id", with: ""))=\(data[$0].map { "\($0)" } ?? "-")" }
                writeLine(
                    "webhook \(delivery.id) \(delivery.event["type"].map { "\($0)" } ?? "?") \(fields.joined(separator: " ")) signature ok"
                        + (delivery.duplicate ? " (repeat: already received)" : "")
                )
            } onRejection: { reason in
                writeLine("webhook rejected: \(reason)")
            }
        }
    }
}
