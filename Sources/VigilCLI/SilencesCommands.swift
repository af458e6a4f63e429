import Alert
import ArgumentParser
import CommandLineSupport
import Foundation
import Kafka
import Logging
import SwiftProtobuf
import VigilSchema
import WorkerRuntime

/// `vigil alerts silence`, `silences` and `expire-silence`: maintenance windows on silences.v1.
extension AlertsCommand {
    struct Silence: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Silence cameras and/or rules for a maintenance window: their new alerts are recorded, not delivered.",
            discussion: """
                Writes the silence to silences.v1 and an audit event, acknowledged by the cluster. It covers incidents of the --camera and --rule given (at least one of either; each repeatable) opening from now (or --start-in) for --for, and expires by itself. Camera-tamper and redaction-health alerts are never silenced.
                """
        )
        @OptionGroup var connection: ConnectionOptions
        @Option(help: "A camera to silence (repeatable).") var camera: [String] = []
        @Option(help: "A rule to silence (repeatable).") var rule: [String] = []
        @Option(name: .customLong("for"), help: "How long: 30m, 2h, up to 7d.") var length: String
        @Option(help: "How long from now it begins (default 0s).") var startIn = "0s"
        @Option(help: "Why, in words shown with every silenced alert.") var reason: String
        @Option(help: "The operator account creating it (default: $USER); audited.")
        var actor = ProcessInfo.processInfo.environment["USER"] ?? NSUserName()
        @OptionGroup var logging: LoggingOptions

        func validate() throws {
            guard !camera.isEmpty || !rule.isEmpty else { throw ValidationError("name at least one --camera or --rule: a silence of everything would hide every alert") }
            guard !reason.trimmingCharacters(in: .whitespaces).isEmpty else { throw ValidationError("--reason must say why: it is shown with every silenced alert") }
            guard !actor.isEmpty else { throw ValidationError("--actor must name the operator account: every silence is audited") }
            guard let milliseconds = AlertsCommand.milliseconds(length), milliseconds > 0, milliseconds <= 7 * 86_400_000 else {
                throw ValidationError("--for takes a duration from 1s to 7d such as 30m or 2h, not \(length)")
            }
            guard AlertsCommand.milliseconds(startIn) != nil else { throw ValidationError("--start-in takes a duration such as 0s or 1h, not \(startIn)") }
        }

        func run() async throws {
            let logger = logging.bootstrap(label: "vigil.alerts")
            let start = Int64(Date().timeIntervalSince1970 * 1_000) + (AlertsCommand.milliseconds(startIn) ?? 0)
            var silence = Vigil_V1_Silence()
            silence.silenceID = "silence-" + UUID().uuidString.lowercased().prefix(8)
            silence.cameraIds = camera
            silence.ruleIds = rule
            silence.startTime = Google_Protobuf_Timestamp(milliseconds: start)
            silence.endTime = Google_Protobuf_Timestamp(milliseconds: start + (AlertsCommand.milliseconds(length) ?? 0))
            silence.reason = reason
            silence.author = actor
            let cluster = connection.configuration(clientID: "vigil-alerts")
            try await AlertsCommand.write(silence, actor: actor, detail: "created: \(AlertsCommand.describe(silence))", cluster: cluster, logger: logger)
            writeLine("\(silence.silenceID): \(AlertsCommand.describe(silence))")
        }
    }

    struct SilencesList: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "silences", abstract: "The silences of silences.v1 not yet expired: id, cameras, rules, window, author, reason."
        )
        @OptionGroup var connection: ConnectionOptions
        @Flag(help: "Also expired silences.") var all = false
        @OptionGroup var logging: LoggingOptions

        func run() async throws {
            let logger = logging.bootstrap(label: "vigil.alerts")
            let now = Int64(Date().timeIntervalSince1970 * 1_000)
            let silences = try await AlertsCommand.silences(connection.configuration(clientID: "vigil-alerts"), logger: logger)
                .filter { all || $0.endTime.milliseconds > now }
            guard !silences.isEmpty else {
                writeLine("no silences")
                return
            }
            printTable(header: ["SILENCE", "CAMERAS", "RULES", "FROM (UTC)", "UNTIL (UTC)", "BY", "REASON"], rows: silences.map { silence in
                [
                    silence.silenceID, silence.cameraIds.isEmpty ? "all" : silence.cameraIds.joined(separator: ","),
                    silence.ruleIds.isEmpty ? "all" : silence.ruleIds.joined(separator: ","),
                    silence.startTime.utcToTheSecond, silence.endTime.utcToTheSecond, silence.author, silence.reason,
                ]
            })
        }
    }

    struct ExpireSilence: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "expire-silence", abstract: "End a silence now (written again with now as its end), audited."
        )
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "The silence id (vigil alerts silences shows them).") var silenceID: String
        @Option(help: "The operator account ending it (default: $USER); audited.")
        var actor = ProcessInfo.processInfo.environment["USER"] ?? NSUserName()
        @OptionGroup var logging: LoggingOptions

        func run() async throws {
            let logger = logging.bootstrap(label: "vigil.alerts")
            let cluster = connection.configuration(clientID: "vigil-alerts")
            let now = Int64(Date().timeIntervalSince1970 * 1_000)
            guard var silence = try await AlertsCommand.silences(cluster, logger: logger).first(where: { $0.silenceID == silenceID }) else {
                writeError("vigil: no silence \(silenceID) in silences.v1 (vigil alerts silences --all lists them)")
                throw ExitCode.failure
            }
            guard silence.endTime.milliseconds > now else {
                writeLine("\(silenceID) has already expired")
                return
            }
            silence.endTime = Google_Protobuf_Timestamp(milliseconds: max(now, silence.startTime.milliseconds))
            try await AlertsCommand.write(silence, actor: actor, detail: "expired early: \(AlertsCommand.describe(silence))", cluster: cluster, logger: logger)
            writeLine("\(silenceID): expired")
        }
    }

    /// Writes a silence and its audit event, both acknowledged, or says nothing changed and exits 1.
    static func write(_ silence: Vigil_V1_Silence, actor: String, detail: String, cluster: KafkaConfiguration, logger: Logger) async throws {
        let event = AuditEvents.event(
            id: "\(silence.silenceID)/\(UUID().uuidString.lowercased())", kind: .silenceChanged, actor: actor, subject: silence.silenceID,
            detail: detail, origin: "vigil alerts"
        )
        let producer = try KafkaProducer(configuration: KafkaProducerConfiguration(cluster: cluster), logger: logger)
        do {
            try await producer.send(all: [
                KafkaProducerMessage(topic: Silences.topic, key: Array(silence.silenceID.utf8), value: try silence.serializedBytes()),
                KafkaProducerMessage(AuditEvents.record(event, key: silence.silenceID)),
            ])
            await producer.close()
        } catch {
            await producer.close()
            writeError("vigil: cannot write to \(Silences.topic) and \(AuditEvents.topic) (\(error)); no silence changed")
            throw ExitCode.failure
        }
    }

    /// The newest version of every silence, by start time.
    static func silences(_ cluster: KafkaConfiguration, logger: Logger) async throws -> [Vigil_V1_Silence] {
        let records: [KafkaConsumerMessage]
        do {
            records = try await KafkaTableReader.readPartitions(cluster: cluster, topic: Silences.topic, partitions: nil, logger: logger)
        } catch {
            writeError("vigil: cannot read \(Silences.topic) from \(cluster.bootstrapServers): \(error)")
            throw ExitCode.failure
        }
        let versions = records.compactMap { try? Vigil_V1_Silence(serializedBytes: $0.value) }
        let latest = Dictionary(versions.map { ($0.silenceID, $0) }, uniquingKeysWith: { _, newer in newer })
        return latest.values.sorted { ($0.startTime.milliseconds, $0.silenceID) < ($1.startTime.milliseconds, $1.silenceID) }
    }

    static func describe(_ silence: Vigil_V1_Silence) -> String {
        let cameras = silence.cameraIds.isEmpty ? "every camera" : "cameras \(silence.cameraIds.joined(separator: ", "))"
        let rules = silence.ruleIds.isEmpty ? "every rule" : "rules \(silence.ruleIds.joined(separator: ", "))"
        return "\(cameras), \(rules), \(silence.startTime.utcToTheSecond) to \(silence.endTime.utcToTheSecond) UTC: \(silence.reason)"
    }

    /// `90s`, `30m`, `2h`, `7d` in milliseconds; nil when not a duration.
    static func milliseconds(_ text: String) -> Int64? {
        let units: [(suffix: String, factor: Int64)] = [("ms", 1), ("s", 1_000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)]
        for unit in units where text.hasSuffix(unit.suffix) {
            guard let amount = Int64(text.dropLast(unit.suffix.count)), amount >= 0 else { return nil }
            return amount * unit.factor
        }
        return nil
    }
}
