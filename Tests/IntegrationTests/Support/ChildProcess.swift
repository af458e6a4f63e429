import Foundation
import Testing

/// Where `swift build` put the package's executables: next to this test binary.
let binaryDirectory = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()

/// A separate process under test: its standard output is collected line by line while it
/// runs, standard error goes to a file kept for diagnosis.
final class ChildProcess: @unchecked Sendable {
    let name: String
    private let process = Process()
    private let lock = NSLock()
    private var lines: [String] = []
    private var partialLine = Data()
    let standardErrorFile: URL

    /// `environment` is added to (and overrides) the test process's own.
    init(
        _ executable: String, _ arguments: [String], name: String? = nil, standardInput: Data? = nil, environment: [String: String] = [:]
    ) throws {
        self.name = name ?? executable
        let executableURL = executable.hasPrefix("/") ? URL(fileURLWithPath: executable) : binaryDirectory.appendingPathComponent(executable)
        process.executableURL = executableURL
        process.arguments = arguments
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        standardErrorFile = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-test-\(UUID().uuidString).stderr")
        FileManager.default.createFile(atPath: standardErrorFile.path, contents: nil)
        process.standardError = try FileHandle(forWritingTo: standardErrorFile)
        let output = Pipe()
        process.standardOutput = output
        output.fileHandleForReading.readabilityHandler = { [weak self] handle in
            self?.collect(handle.availableData)
        }
        if let standardInput {
            let input = Pipe()
            process.standardInput = input
            try process.run()
            input.fileHandleForWriting.write(standardInput)
            try input.fileHandleForWriting.close()
        } else {
            process.standardInput = FileHandle.nullDevice
            try process.run()
        }
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        try? FileManager.default.removeItem(at: standardErrorFile)
    }

    private func collect(_ data: Data) {
        lock.withLock {
            partialLine.append(data)
            while let newline = partialLine.firstIndex(of: UInt8(ascii: "\n")) {
                lines.append(String(decoding: partialLine[partialLine.startIndex..<newline], as: UTF8.self))
                partialLine = Data(partialLine[partialLine.index(after: newline)...])
            }
        }
    }

    var output: [String] { lock.withLock { lines } }

    /// Output lines parsed as JSON objects (the probe's reports).
    var events: [[String: Any]] {
        output.compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
        }
    }

    func events(_ kind: String) -> [[String: Any]] {
        events.filter { $0["event"] as? String == kind }
    }

    var standardError: String { (try? String(contentsOf: standardErrorFile, encoding: .utf8)) ?? "" }
    var isRunning: Bool { process.isRunning }
    var processIdentifier: Int32 { process.processIdentifier }
    var exitStatus: Int32 { process.terminationStatus }

    func signal(_ signal: Int32) {
        kill(process.processIdentifier, signal)
    }

    /// Waits for the process to end, throwing if it is still running after `timeout`.
    func waitForExit(timeout: Duration = .seconds(60)) async throws {
        try await eventually(timeout: timeout, "\(name) exits") { !self.process.isRunning }
        // The pipe may still hold the last lines: read until the writer's end is closed.
        try await eventually(timeout: .seconds(5), "\(name)'s output is drained") { self.outputDrained() }
    }

    private func outputDrained() -> Bool {
        guard let pipe = process.standardOutput as? Pipe else { return true }
        let rest = pipe.fileHandleForReading.availableData
        if !rest.isEmpty { collect(rest) }
        return rest.isEmpty
    }
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
