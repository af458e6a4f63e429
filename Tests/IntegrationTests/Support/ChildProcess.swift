import ChildProcesses
import Foundation
import Testing

/// Where `swift build` put the package's executables: next to this test binary.
let binaryDirectory = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()

extension ChildProcess {
    /// A process under test: one of the package's executables (or an absolute path), its output and
    /// standard error collected line by line. It runs in the test process's environment with the
    /// test admins' (`TestAdmins`) for the package's own executables; `environment` adds to and
    /// overrides both.
    convenience init(
        _ executable: String, _ arguments: [String], name: String? = nil, standardInput: Data? = nil, environment: [String: String] = [:]
    ) throws {
        let path = executable.hasPrefix("/") ? executable : binaryDirectory.appendingPathComponent(executable).path
        let admins = executable.hasPrefix("/") ? [:] : TestAdmins.environment
        try self.init(
            executable: path, arguments: arguments, name: name ?? executable,
            environment: ProcessInfo.processInfo.environment.merging(admins) { $1 }.merging(environment) { $1 },
            standardInput: standardInput, standardOutput: .lines, standardError: .lines
        )
    }

    /// Output lines parsed as JSON objects (the probe's reports).
    var events: [[String: Any]] {
        output.compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
        }
    }

    func events(_ kind: String) -> [[String: Any]] {
        events.filter { $0["event"] as? String == kind }
    }

    var standardError: String { errorOutput.joined(separator: "\n") }

    /// The exit status (128 + the signal if one ended it); -1 while it runs.
    var exitStatus: Int32 { termination?.status ?? -1 }
}

struct TimedOut: Error, CustomStringConvertible {
    let description: String
}

/// Polls `condition` until it holds; throws after `timeout` with `what` in the message.
/// Deadlines are generous: they catch hangs, they do not measure speed.
func eventually(timeout: Duration = .seconds(60), _ what: String, _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(50))
    }
    if try await condition() { return }
    throw TimedOut(description: "timed out after \(timeout) waiting until \(what)")
}
