import ArgumentParser
import ChildProcesses
import CommandLineSupport
import DevCluster
import Foundation
import WorkerRuntime
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// What the benchmarks that run vigil's executables as processes share: the executables built
/// next to this binary, a scratch folder for their logs, `vigil dev-cluster` as a child.
struct BenchProcesses {
    /// The folder of this binary, where `swift build` put the workers too.
    let binaries: URL
    /// Logs and files of this run; left in place when the run fails, to be read.
    let scratch: URL
    /// What makes the workers trust the run's dev admin, who signs its cameras.
    let admin: [String: String]

    init(bench: String) throws {
        binaries = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-bench-\(bench)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        admin = try DevAdmin.environment(in: scratch.path)
    }

    func executable(_ name: String) throws -> String {
        let path = binaries.appendingPathComponent(name).path
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw BenchFailure("\(name) is not built next to this binary (\(binaries.path)): build the package, e.g. swift build -c release")
        }
        return path
    }

    /// A process whose standard output and error go to `log` in the scratch folder.
    func start(_ executable: String, _ arguments: [String], log: String, environment: [String: String] = [:]) throws -> ChildProcess {
        let path = scratch.appendingPathComponent(log).path
        return try ChildProcess(
            executable: executable, arguments: arguments, environment: Self.childEnvironment(admin.merging(environment) { $1 }),
            standardOutput: .file(path), standardError: .file(path)
        )
    }

    /// This process's environment with `environment` over it, and this process named as the
    /// parent: a benchmark killed before it could stop its children does not leave them running.
    static func childEnvironment(_ environment: [String: String]) -> [String: String] {
        var merged = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        merged[ParentWatch.environmentKey] = "\(getpid())"
        return merged
    }

    /// Runs `vigil ARGUMENTS` to its end; when it fails, the error names its log.
    func runVigil(_ arguments: [String], log: String) async throws {
        let tool = try start(executable("vigil"), arguments, log: log)
        let termination = try await tool.waitForExit(timeout: .seconds(120))
        guard termination == .exited(0) else {
            throw BenchFailure("vigil \(arguments.prefix(2).joined(separator: " ")) \(termination) (see \(scratch.appendingPathComponent(log).path))")
        }
    }

    /// `vigil dev-cluster ARGUMENTS` (state file and log in the scratch folder), once it has
    /// written its state file.
    func startDevCluster(_ arguments: [String]) async throws -> BenchDevCluster {
        let stateFile = scratch.appendingPathComponent("cluster.json")
        let process = try start(executable("vigil"), ["dev-cluster", "--state-file", stateFile.path, "--log-level", "warning"] + arguments, log: "cluster.log")
        let deadline = ContinuousClock.now + .seconds(60)
        while true {
            if let client = try? DevClusterClient(stateFile: stateFile) { return BenchDevCluster(process: process, state: client.state) }
            guard ContinuousClock.now < deadline, process.isRunning else {
                process.signal(SIGTERM)
                throw BenchFailure("vigil dev-cluster did not start (see \(scratch.path)/cluster.log)")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    /// `kcat -C -e` reading `topic` from its beginning to its end, three times: the median wall
    /// time in seconds (one run takes a fraction of a second, so one slow moment weighs much).
    /// Each run must read `expected` records; `shortfall` says what to do when one did not.
    func kcatMedianSeconds(
        _ kcat: String, cluster: BenchDevCluster, topic: String, expected: Int, fetchWaitMs: Int, shortfall: (_ read: Int) -> String
    ) throws -> Double {
        try (0..<3).map { _ in
            let output = scratch.appendingPathComponent("kcat.out")
            let started = ContinuousClock.now
            let process = try ChildProcess(
                executable: kcat,
                arguments: [
                    "-C", "-b", cluster.bootstrapServers, "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%o\n",
                    // A partition with no records reaches its end only when a fetch returns, which the mock holds this long.
                    "-X", "fetch.wait.max.ms=\(fetchWaitMs)",
                ],
                standardOutput: .file(output.path), standardError: .file(scratch.appendingPathComponent("kcat.log").path)
            )
            // Waited for on this thread, not polled: the wall time is the figure.
            let termination = process.waitUntilExit()
            let seconds = elapsedSeconds(since: started)
            guard termination == .exited(0) else { throw BenchFailure("kcat \(termination) (see \(scratch.path)/kcat.log)") }
            let read = try String(contentsOf: output, encoding: .utf8).split(separator: "\n").count
            guard read == expected else { throw BenchFailure(shortfall(read)) }
            return seconds
        }.sorted()[1]
    }

    /// Removes the scratch folder: the run went well, its logs are not needed.
    func clean() {
        try? FileManager.default.removeItem(at: scratch)
    }
}

/// A `vigil dev-cluster` child process.
struct BenchDevCluster {
    let process: ChildProcess
    let state: DevClusterState

    var bootstrapServers: String { state.bootstrapServers }

    func partitions(of topic: String) -> Int {
        state.topics.first { $0.name == topic }?.partitions ?? 0
    }

    func stop() async {
        process.signal(SIGTERM)
        if (try? await process.waitForExit(timeout: .seconds(20))) == nil {
            process.signal(SIGKILL)
            _ = try? await process.waitForExit(timeout: .seconds(10))
        }
    }
}

/// A worker executable run by a benchmark: its log written to a file (the newest 200 lines also
/// kept for errors) and its HTTP server (`/metrics`, `/readyz`) found from its "listening on" line.
final class BenchWorker: @unchecked Sendable {
    let name: String
    let process: ChildProcess
    private let log: WorkerLog

    /// Starts `executable` with `environment` added to this process's own, its log going to `log`.
    init(_ executable: String, name: String, environment: [String: String], log: URL) throws {
        self.name = name
        let workerLog = try WorkerLog(file: log)
        process = try ChildProcess(
            executable: executable, name: name, environment: BenchProcesses.childEnvironment(environment),
            standardOutput: .lines, standardError: .lines, keepingLines: 200
        ) { _, line in workerLog.write(line) }
        self.log = workerLog
    }

    /// Its last log lines, for an error that says why it stopped.
    var logTail: String { (process.output + process.errorOutput).suffix(20).joined(separator: "\n") }

    /// Throws, with its last log lines, when it is no longer running.
    func checkRunning() throws {
        guard process.isRunning else {
            throw BenchFailure("\(name) \(process.termination.map { "\($0)" } ?? "stopped"):\n\(logTail)")
        }
    }

    /// Its `/metrics`, or nil while its HTTP server is not up yet.
    func metrics() async throws -> PrometheusText? {
        guard let (status, body) = try await get("metrics"), status == 200 else { return nil }
        return PrometheusText(body)
    }

    /// Whether `/readyz` answers 200: tables loaded, partitions assigned, a broker reachable.
    func isReady() async throws -> Bool {
        try await get("readyz")?.status == 200
    }

    /// Waits until `/readyz` answers 200; throws when it exits first or after `timeout`.
    func waitUntilReady(timeout: Duration = .seconds(60)) async throws {
        let deadline = ContinuousClock.now + timeout
        while try await !isReady() {
            try checkRunning()
            guard ContinuousClock.now < deadline else { throw BenchFailure("\(name) was not ready within \(timeout):\n\(logTail)") }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// SIGTERM, and SIGKILL if it has not stopped after `timeout`; its termination.
    @discardableResult
    func stop(timeout: Duration = .seconds(30)) async -> ChildProcess.Termination? {
        process.signal(SIGTERM)
        let termination = try? await process.waitForExit(timeout: timeout)
        if termination == nil {
            process.signal(SIGKILL)
            _ = try? await process.waitForExit(timeout: .seconds(10))
        }
        log.close()
        return termination
    }

    private func get(_ path: String) async throws -> (status: Int, body: String)? {
        guard let port = log.port, let url = URL(string: "http://127.0.0.1:\(port)/\(path)") else { return nil }
        do {
            let (data, response) = try await URLSession.shared.data(from: url)
            return ((response as? HTTPURLResponse)?.statusCode ?? 0, String(decoding: data, as: UTF8.self))
        } catch {
            return nil
        }
    }
}

/// A worker's log lines, written to a file as they come (from the threads reading its output
/// and error), and the port it logs once its HTTP server is up ("listening on 127.0.0.1:PORT").
private final class WorkerLog: @unchecked Sendable {
    private let lock = NSLock()
    private let file: FileHandle
    private var found: Int?  // guarded by `lock`
    private var closed = false  // guarded by `lock`

    init(file url: URL) throws {
        guard FileManager.default.createFile(atPath: url.path, contents: nil) else { throw BenchFailure("cannot create \(url.path)") }
        file = try FileHandle(forWritingTo: url)
    }

    var port: Int? { lock.withLock { found } }

    func write(_ line: String) {
        let port = line.range(of: "listening on 127.0.0.1:").flatMap { Int(line[$0.upperBound...].prefix { $0.isNumber }) }
        lock.withLock {
            if let port { found = port }
            if !closed { file.write(Data((line + "\n").utf8)) }
        }
    }

    func close() {
        lock.withLock {
            if !closed { try? file.close() }
            closed = true
        }
    }
}

/// A Prometheus text exposition, read for the sums the benchmarks print.
struct PrometheusText {
    let lines: [Substring]

    init(_ text: String) {
        lines = text.split(separator: "\n").filter { !$0.hasPrefix("#") }
    }

    /// The sum of the samples of metric `name` (over all its label sets, or those with `label`,
    /// e.g. `topic="detections.v1"`).
    func sum(_ name: String, label: String? = nil) -> Double {
        lines.filter { line in
            guard line.hasPrefix(name), let next = line.dropFirst(name.count).first, next == "{" || next == " " else { return false }
            return label.map { line.contains($0) } ?? true
        }.compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }.reduce(0, +)
    }
}

/// User + system CPU time of a process so far, in seconds (from /proc).
func cpuSeconds(of pid: Int32) throws -> Double {
    let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
    // Fields after the command name: utime is the 14th field of the line, stime the 15th.
    guard let afterName = stat.lastIndex(of: ")") else { throw BenchFailure("cannot read /proc/\(pid)/stat") }
    let fields = stat[stat.index(after: afterName)...].split(separator: " ")
    guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { throw BenchFailure("cannot read /proc/\(pid)/stat") }
    return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

/// A benchmark run that could not complete: what went wrong and where its logs are (no usage
/// text: the command line was fine).
struct BenchFailure: Error, CustomStringConvertible {
    let description: String

    init(_ description: String) {
        self.description = description
    }
}
