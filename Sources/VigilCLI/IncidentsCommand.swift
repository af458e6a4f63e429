import ArgumentParser
import CommandLineSupport
import Foundation
import Kafka
import Match
import Rules
import SwiftProtobuf
import VigilSchema

struct IncidentsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "incidents",
        abstract: "List the incidents vigil-match published (incidents.v1), each at its newest revision.",
        discussion: """
            Reads incidents.v1 to its end and prints one line per incident: when its window started (UTC), camera, rule, kind, state and revision, and its summary. With --revisions, every revision in the order published instead. Incidents carry no image and no identity; their snapshot is the id of a redacted snapshot in snapshots.v1.
            """
    )

    @OptionGroup var connection: ConnectionOptions

    @Flag(help: "Print every revision, not just the newest of each incident.")
    var revisions = false

    @Option(help: "Only this camera's incidents.")
    var camera: String?

    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        let logger = logging.bootstrap(label: "vigil.incidents")
        let cluster = connection.configuration(clientID: "vigil-incidents")
        let records: [KafkaConsumerMessage]
        do {
            records = try await KafkaTableReader.readPartitions(cluster: cluster, topic: MatchStage.incidentsTopic, partitions: nil, logger: logger)
        } catch {
            writeError("vigil: cannot read \(MatchStage.incidentsTopic) from \(cluster.bootstrapServers): \(error)")
            throw ExitCode.failure
        }
        var published: [Vigil_V1_Incident] = []
        for record in records {
            guard let incident = try? Vigil_V1_Incident(serializedBytes: record.value) else {
                writeError("vigil: \(MatchStage.incidentsTopic)[\(record.partition)] offset \(record.offset) is not an incident; skipped")
                continue
            }
            if camera == nil || incident.cameraID == camera { published.append(incident) }
        }
        let shown = revisions ? published : Self.newest(published)
        guard !shown.isEmpty else {
            writeLine("no incidents\(camera.map { " on camera \($0)" } ?? "")")
            return
        }
        for incident in shown { writeLine(Self.line(incident)) }
    }

    /// The newest revision of each incident, ordered by window start.
    static func newest(_ incidents: [Vigil_V1_Incident]) -> [Vigil_V1_Incident] {
        Dictionary(incidents.map { ($0.incidentID, $0) }, uniquingKeysWith: { $0.revision >= $1.revision ? $0 : $1 }).values
            .sorted { ($0.windowStart.seconds, $0.windowStart.nanos, $0.incidentID) < ($1.windowStart.seconds, $1.windowStart.nanos, $1.incidentID) }
    }

    /// "2026-11-30 04:20:13  street-1  path-line  line_crossing  OPENED r1  1 crossing of …"
    static func line(_ incident: Vigil_V1_Incident) -> String {
        let state = switch incident.state {
        case .opened: "OPENED"
        case .updated: "UPDATED"
        case .closed: "CLOSED"
        default: "?"
        }
        return "\(incident.windowStart.utcToTheSecond)  \(incident.cameraID)  \(incident.ruleID)  \(RuleChanges.describe(incident.kind))  \(state) r\(incident.revision)  \(incident.summary)"
    }
}

extension Google_Protobuf_Timestamp {
    /// The time in UTC to the second, as the CLI's tables print it (incidents, alerts, silences).
    var utcToTheSecond: String {
        Date(timeIntervalSince1970: TimeInterval(seconds)).formatted(
            .iso8601.year().month().day().dateSeparator(.dash).time(includingFractionalSeconds: false).timeSeparator(.colon)
        )
    }
}
