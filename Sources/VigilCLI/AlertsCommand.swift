import Alert
import ArgumentParser
import CommandLineSupport
import Foundation
import Kafka
import Logging
import SwiftProtobuf
import VigilSchema

/// `vigil alerts`: the alerts of alerts.v1 and the operator's actions on them, until the API
/// service and its console exist. Actions are requests: vigil-alert decides, and the command
/// waits for its answer on alert.action.outcomes.v1.
struct AlertsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "alerts",
        abstract: "List alerts and act on them: acknowledge, assign, escalate, resolve, false positive.",
        subcommands: [List.self, Show.self, Act.self, Silence.self, SilencesList.self, ExpireSilence.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "One line per alert at its newest revision: state, revision, camera, rule, id, last change.",
            discussion: "Reads alerts.v1 to its end. Without --all, only alerts still open, acknowledged or escalated."
        )
        @OptionGroup var connection: ConnectionOptions
        @Flag(help: "Also resolved alerts and false positives.") var all = false
        @Option(help: "Only this camera's alerts.") var camera: String?
        @OptionGroup var logging: LoggingOptions

        func run() async throws {
            let logger = logging.bootstrap(label: "vigil.alerts")
            let newest = AlertsCommand.newest(try await AlertsCommand.read(connection.configuration(clientID: "vigil-alerts"), logger: logger))
            let shown = newest.filter { (camera == nil || $0.incident.cameraID == camera) && (all || !Self.isClosed($0.state)) }
            guard !shown.isEmpty else {
                writeLine("no \(all ? "" : "open ")alerts\(camera.map { " on camera \($0)" } ?? "")")
                return
            }
            printTable(header: ["STATE", "REV", "CAMERA", "RULE", "ALERT", "LAST CHANGE"], rows: shown.map { alert in
                [AlertsCommand.words(alert.state) + (alert.silencedBy.isEmpty ? "" : " (silenced)"), "r\(alert.revision)", alert.incident.cameraID, alert.incident.ruleID, alert.alertID, alert.change]
            })
        }

        static func isClosed(_ state: Vigil_V1_AlertState) -> Bool { state == .resolved || state == .falsePositive }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every revision of one alert, in order: who changed it, when, and why.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "The alert id (vigil alerts list shows it).") var alertID: String
        @OptionGroup var logging: LoggingOptions

        func run() async throws {
            let logger = logging.bootstrap(label: "vigil.alerts")
            let revisions = try await AlertsCommand.read(connection.configuration(clientID: "vigil-alerts"), logger: logger).filter { $0.alertID == alertID }
            guard let last = revisions.max(by: { $0.revision < $1.revision }) else {
                writeError("vigil: no alert \(alertID) in alerts.v1 (vigil alerts list --all shows them)")
                throw ExitCode.failure
            }
            writeLine("\(last.alertID)  camera \(last.incident.cameraID)  rule \(last.incident.ruleID)  \(AlertsCommand.words(last.state))\(last.assignee.isEmpty ? "" : ", assigned to \(last.assignee)")")
            writeLine("incidents: \(last.incidentIds.joined(separator: ", "))  —  \(last.incident.summary)")
            let unique = Dictionary(revisions.map { ($0.revision, $0) }, uniquingKeysWith: { first, _ in first }).values.sorted { $0.revision < $1.revision }
            printTable(header: ["REV", "TIME (UTC)", "BY", "CHANGE"], rows: unique.map { alert in
                ["r\(alert.revision)", alert.updatedTime.utcToTheSecond, alert.changedBy, alert.change]
            })
        }
    }

    struct Act: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "act",
            abstract: "Acknowledge, assign, escalate, resolve or mark an alert false positive, and wait for vigil-alert's answer.",
            discussion: """
                Writes an AlertAction to alert.actions.v1 (keyed by the alert's camera, with a new idempotency key and, with --expect-revision, the revision you saw), then waits for vigil-alert's outcome on alert.action.outcomes.v1: applied (exit 0) or refused with the reason (exit 1). vigil-alert audits both.
                """
        )
        enum Kind: String, ExpressibleByArgument, CaseIterable {
            case acknowledge, assign, escalate, resolve
            case falsePositive = "false-positive"

            var schema: Vigil_V1_AlertActionKind {
                switch self {
                case .acknowledge: .acknowledge
                case .assign: .assign
                case .escalate: .escalate
                case .resolve: .resolve
                case .falsePositive: .falsePositive
                }
            }
        }

        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "What to do: \(Kind.allCases.map(\.rawValue).joined(separator: ", ")).") var kind: Kind
        @Argument(help: "The alert id.") var alertID: String
        @Option(help: "The operator account acting (default: $USER); every action is audited.")
        var actor = ProcessInfo.processInfo.environment["USER"] ?? NSUserName()
        @Option(help: "For assign: the operator account that takes the alert.") var to: String?
        @Option(help: "A note kept with the action.") var note = ""
        @Option(help: "Refuse the action if the alert has moved past this revision.") var expectRevision: UInt64?
        @Option(help: "Seconds to wait for vigil-alert's answer.") var wait = 30
        @OptionGroup var logging: LoggingOptions

        func validate() throws {
            guard !actor.isEmpty else { throw ValidationError("--actor must name the operator account acting: every action is audited") }
            if kind == .assign, (to ?? "").isEmpty { throw ValidationError("assign needs --to ACCOUNT") }
            guard wait >= 1 else { throw ValidationError("--wait must be at least 1 second") }
        }

        func run() async throws {
            let logger = logging.bootstrap(label: "vigil.alerts")
            let cluster = connection.configuration(clientID: "vigil-alerts")
            guard let alert = AlertsCommand.newest(try await AlertsCommand.read(cluster, logger: logger)).first(where: { $0.alertID == alertID }) else {
                writeError("vigil: no alert \(alertID) in alerts.v1 (vigil alerts list shows the open ones)")
                throw ExitCode.failure
            }
            var action = Vigil_V1_AlertAction()
            action.alertID = alertID
            action.action = kind.schema
            action.actor = actor
            action.assignee = to ?? ""
            action.note = note
            action.actionTime = Google_Protobuf_Timestamp(date: Date())
            action.idempotencyKey = UUID().uuidString.lowercased()
            action.expectedRevision = expectRevision ?? 0
            let camera = alert.incident.cameraID
            let producer = try KafkaProducer(configuration: KafkaProducerConfiguration(cluster: cluster), logger: logger)
            do {
                try await producer.send(all: [KafkaProducerMessage(topic: AlertStage.actionsTopic, key: Array(camera.utf8), value: try action.serializedBytes())])
                await producer.close()
            } catch {
                await producer.close()
                writeError("vigil: cannot write the action to \(AlertStage.actionsTopic) (\(error)); nothing was changed")
                throw ExitCode.failure
            }
            let outcome = try await AlertsCommand.outcome(of: action, cluster: cluster, within: .seconds(wait), logger: logger)
            guard let outcome else {
                writeError("vigil: sent; vigil-alert has not answered within \(wait) s (is it running? vigil status shows its lag); the action stays queued and will be decided when it does")
                throw ExitCode.failure
            }
            guard outcome.applied else {
                writeError("vigil: refused: \(outcome.refusal)")
                throw ExitCode.failure
            }
            writeLine("\(alertID): \(kind.rawValue) applied, now revision \(outcome.revision)")
        }
    }

    // MARK: Reading

    static func read(_ cluster: KafkaConfiguration, logger: Logger) async throws -> [Vigil_V1_Alert] {
        let records: [KafkaConsumerMessage]
        do {
            records = try await KafkaTableReader.readPartitions(cluster: cluster, topic: AlertStage.alertsTopic, partitions: nil, logger: logger)
        } catch {
            writeError("vigil: cannot read \(AlertStage.alertsTopic) from \(cluster.bootstrapServers): \(error)")
            throw ExitCode.failure
        }
        return records.compactMap { record in
            guard let alert = try? Vigil_V1_Alert(serializedBytes: record.value) else {
                writeError("vigil: \(AlertStage.alertsTopic)[\(record.partition)] offset \(record.offset) is not an alert; skipped")
                return nil
            }
            return alert
        }
    }

    /// The newest revision of each alert, oldest alert first.
    static func newest(_ alerts: [Vigil_V1_Alert]) -> [Vigil_V1_Alert] {
        Dictionary(alerts.map { ($0.alertID, $0) }, uniquingKeysWith: { $0.revision >= $1.revision ? $0 : $1 }).values
            .sorted { ($0.createdTime.milliseconds, $0.alertID) < ($1.createdTime.milliseconds, $1.alertID) }
    }

    /// vigil-alert's answer to `action`, polled on alert.action.outcomes.v1 until `deadline`.
    /// Each poll reads only the newest records of each partition (an answer comes after its
    /// request; a month of outcomes is not read again every 250 ms), keeping none but the answer.
    static func outcome(
        of action: Vigil_V1_AlertAction, cluster: KafkaConfiguration, within deadline: Duration, logger: Logger
    ) async throws -> Vigil_V1_AlertActionOutcome? {
        let end = ContinuousClock.now + deadline
        while ContinuousClock.now < end {
            let answer = Answer()
            try await KafkaTableReader.forEachRecord(cluster: cluster, topic: AlertStage.outcomesTopic, partitions: nil, newest: 1_000, logger: logger) { record in
                guard let outcome = try? Vigil_V1_AlertActionOutcome(serializedBytes: record.value),
                      outcome.idempotencyKey == action.idempotencyKey, outcome.alertID == action.alertID else { return }
                answer.set(outcome)
            }
            if let found = answer.value { return found }
            try await Task.sleep(for: .milliseconds(250))
        }
        return nil
    }

    /// The outcome found by the reader's thread.
    final class Answer: @unchecked Sendable {
        private let lock = NSLock()
        private var found: Vigil_V1_AlertActionOutcome?

        func set(_ outcome: Vigil_V1_AlertActionOutcome) { lock.withLock { found = outcome } }
        var value: Vigil_V1_AlertActionOutcome? { lock.withLock { found } }
    }

    static func words(_ state: Vigil_V1_AlertState) -> String {
        switch state {
        case .open: "OPEN"
        case .acknowledged: "ACKNOWLEDGED"
        case .escalated: "ESCALATED"
        case .resolved: "RESOLVED"
        case .falsePositive: "FALSE_POSITIVE"
        case .unspecified, .UNRECOGNIZED: "?"
        }
    }
}
