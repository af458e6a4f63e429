import ChildProcesses
import CommandLineSupport
import Foundation

/// One replica of a worker under `vigil up`: started, its log lines prefixed with its name,
/// restarted with backoff when it exits on its own, stopped with SIGTERM (then SIGKILL).
public final class SupervisedWorker: @unchecked Sendable {
    public let name: String
    private let executable: String
    private let environment: [String: String]
    private let lock = NSLock()
    private var process: ChildProcess?  // guarded by `lock`
    private var port: Int?  // guarded by `lock`
    private var stopping = false  // guarded by `lock`
    private(set) var restarts = 0  // guarded by `lock`
    private var supervision: Task<Void, Never>?

    public init(name: String, executable: String, environment: [String: String]) {
        self.name = name
        self.executable = executable
        self.environment = environment
    }

    /// The port of its HTTP server (`/metrics`), once it said where it listens.
    public var metricsPort: Int? { lock.withLock { port } }
    public var processIdentifier: Int32? { lock.withLock { process?.isRunning == true ? process?.processIdentifier : nil } }
    public var restartCount: Int { lock.withLock { restarts } }

    /// Starts the replica and keeps it running until `stop()`: a replica that exits on its own
    /// is started again after 1 s, doubling to 30 s while it keeps failing within a minute.
    public func start() {
        supervision = Task {
            var backoff: Duration = .seconds(1)
            while !Task.isCancelled {
                let started = ContinuousClock.now
                let process: ChildProcess
                do {
                    process = try launch()
                } catch {
                    writeError("[\(name)] cannot start \(executable): \(error)")
                    return
                }
                let termination = await Self.exit(of: process)
                if lock.withLock({ stopping }) { return }
                if ContinuousClock.now - started > .seconds(60) { backoff = .seconds(1) }
                writeError("[\(name)] exited (\(termination)); restarting in \(backoff)")
                lock.withLock { restarts += 1 }
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, .seconds(30))
            }
        }
    }

    private func launch() throws -> ChildProcess {
        let name = name
        let process = try ChildProcess(
            executable: executable, name: name, environment: environment, standardOutput: .lines, standardError: .lines, keepingLines: 100
        ) { [weak self] _, line in
            // Workers log "listening on 127.0.0.1:PORT" once their HTTP server is up.
            if let range = line.range(of: "listening on 127.0.0.1:"), let port = Int(line[range.upperBound...].prefix { $0.isNumber }) {
                self?.lock.withLock { self?.port = port }
            }
            writeError("[\(name)] \(line)")
        }
        lock.withLock {
            self.process = process
            port = nil
        }
        return process
    }

    private static func exit(of process: ChildProcess) async -> ChildProcess.Termination {
        await withCheckedContinuation { continuation in
            Thread.detachNewThread { continuation.resume(returning: process.waitUntilExit()) }
        }
    }

    /// Kills the running replica with SIGKILL, as a crash would (the test hook).
    public func kill() {
        lock.withLock { process }?.signal(SIGKILL)
    }

    /// SIGTERM, and SIGKILL after `timeout` if it is still running; no restart after.
    public func stop(timeout: Duration) async {
        let process = lock.withLock { () -> ChildProcess? in
            stopping = true
            return self.process
        }
        supervision?.cancel()
        guard let process, process.isRunning else { return }
        process.signal(SIGTERM)
        if (try? await process.waitForExit(timeout: timeout)) == nil {
            writeError("[\(name)] did not stop within \(timeout) of SIGTERM; killing it")
            process.signal(SIGKILL)
            _ = try? await process.waitForExit(timeout: .seconds(10))
        }
    }
}
