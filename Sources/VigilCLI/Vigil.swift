import ArgumentParser
import Foundation
import Logging
import WorkerRuntime

@main
struct Vigil: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vigil",
        abstract: "Operate a vigil cluster: the local dev cluster, topics, cameras, status and benchmarks.",
        discussion: """
            vigil turns camera video into safety incidents and alerts. It never identifies people. Start locally with `vigil dev-cluster`; see README.md for the whole pipeline.
            """,
        version: "vigil \(VigilRelease.version) (schema \(VigilRelease.schema))",
        subcommands: [UpCommand.self, DevClusterCommand.self, TopicsCommand.self, CamerasCommand.self, RulesCommand.self, IncidentsCommand.self, SnapshotsCommand.self, AuditCommand.self, StatusCommand.self, BenchCommand.self]
    )
}

/// Options every long-running command shares.
struct LoggingOptions: ParsableArguments {
    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    /// Logs go to standard error, so standard output stays for results scripts read.
    func bootstrap(label: String) -> Logger {
        let level = logLevel
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        return Logger(label: label)
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

/// Rows as lines with their columns aligned (two spaces between columns).
func alignedColumns(_ rows: [[String]]) -> [String] {
    guard let first = rows.first else { return [] }
    let widths = first.indices.map { column in rows.map { $0[column].count }.max() ?? 0 }
    return rows.map { row in
        row.enumerated().map { column, cell in
            column == row.count - 1 ? cell : cell.padding(toLength: widths[column] + 2, withPad: " ", startingAt: 0)
        }.joined()
    }
}

/// Prints a table: a header row, then the rows, columns aligned.
func printTable(header: [String], rows: [[String]]) {
    for line in alignedColumns([header] + rows) { writeLine(line) }
}

/// Writes one line to standard output at once (unbuffered), for scripts and tests that wait for it.
func writeLine(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
