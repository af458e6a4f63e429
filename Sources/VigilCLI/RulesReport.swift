import ArgumentParser
import CommandLineSupport
import Foundation
import Logging
import VigilSchema

extension RulesCommand {
    /// `vigil rules report`: how each rule's alerts went, from alerts.v1.
    struct Report: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Per rule: alerts, how many were false positives, and the median time to acknowledge.",
            discussion: """
                Reads alerts.v1 to its end and takes each alert at its newest revision. FALSE POS. counts alerts marked false positive, and the rate is of the alerts closed (resolved or false positive); silenced alerts are counted apart. Time to acknowledge runs from an alert's opening to its first acknowledgement, over the alerts acknowledged.
                """
        )
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var logging: LoggingOptions

        func run() async throws {
            let logger = logging.bootstrap(label: "vigil.rules")
            let alerts = AlertsCommand.newest(try await AlertsCommand.read(connection.configuration(clientID: "vigil-rules"), logger: logger))
            guard !alerts.isEmpty else {
                writeLine("no alerts")
                return
            }
            let rows = Self.rows(alerts)
            printTable(header: ["RULE", "ALERTS", "SILENCED", "OPEN", "FALSE POS.", "FP RATE", "MEDIAN TO ACK"], rows: rows)
        }

        /// One row per rule, by rule id.
        static func rows(_ alerts: [Vigil_V1_Alert]) -> [[String]] {
            Dictionary(grouping: alerts, by: \.incident.ruleID).sorted { $0.key < $1.key }.map { rule, alerts in
                let silenced = alerts.filter { !$0.silencedBy.isEmpty }.count
                let open = alerts.filter { [.open, .acknowledged, .escalated].contains($0.state) }.count
                let closed = alerts.filter { $0.state == .resolved || $0.state == .falsePositive }
                let falsePositives = closed.filter { $0.state == .falsePositive }.count
                let rate = closed.isEmpty ? "–" : String(format: "%.0f %%", 100 * Double(falsePositives) / Double(closed.count))
                let waits = alerts.filter(\.hasAcknowledgedTime).map { $0.acknowledgedTime.milliseconds - $0.createdTime.milliseconds }.sorted()
                let median = waits.isEmpty ? "–" : Self.words(milliseconds: waits.count % 2 == 1 ? waits[waits.count / 2] : (waits[waits.count / 2 - 1] + waits[waits.count / 2]) / 2)
                return [rule, "\(alerts.count)", "\(silenced)", "\(open)", "\(falsePositives)", rate, median]
            }
        }

        static func words(milliseconds: Int64) -> String {
            let seconds = max(0, milliseconds) / 1_000
            return seconds < 120 ? "\(seconds) s" : seconds < 7_200 ? "\(seconds / 60) min" : "\(seconds / 3_600) h"
        }
    }
}
