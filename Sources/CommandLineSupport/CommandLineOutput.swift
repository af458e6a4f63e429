import ArgumentParser
import Foundation
import Logging

/// Options every long-running command shares.
public struct LoggingOptions: ParsableArguments, Sendable {
    public init() {}

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    public var logLevel: Logger.Level = .info

    /// Logs go to standard error, so standard output stays for results scripts read.
    public func bootstrap(label: String) -> Logger {
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
public func alignedColumns(_ rows: [[String]]) -> [String] {
    guard let first = rows.first else { return [] }
    let widths = first.indices.map { column in rows.map { $0[column].count }.max() ?? 0 }
    return rows.map { row in
        row.enumerated().map { column, cell in
            column == row.count - 1 ? cell : cell.padding(toLength: widths[column] + 2, withPad: " ", startingAt: 0)
        }.joined()
    }
}

/// Prints a table: a header row, then the rows, columns aligned.
public func printTable(header: [String], rows: [[String]]) {
    for line in alignedColumns([header] + rows) { writeLine(line) }
}

/// Writes one line to standard output at once (unbuffered), for scripts and tests that wait for it.
public func writeLine(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

/// Writes one line to standard error at once: problems and errors, apart from results.
public func writeError(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

/// Wall-clock seconds since `start`, for every benchmark's timings.
public func elapsedSeconds(since start: ContinuousClock.Instant) -> Double {
    let elapsed = ContinuousClock.now - start
    return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
}
