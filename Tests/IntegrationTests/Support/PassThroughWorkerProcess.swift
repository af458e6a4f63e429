import Foundation
import Testing

/// `vigil-passthrough` in its own process: forwards `in` to `in.out` on the shared worker
/// runtime, with its HTTP server on a free port.
struct PassThroughWorkerProcess {
    let process: ChildProcess
    let port: Int

    /// Starts the worker and waits until its HTTP server listens. `environment` adds to and
    /// overrides the defaults (input `in`, output `in.out`, fast commits).
    static func start(_ cluster: DevClusterProcess, environment: [String: String] = [:]) async throws -> PassThroughWorkerProcess {
        let defaults = [
            "KAFKA_BOOTSTRAP": cluster.bootstrapServers, "WORKER_INPUTS": "in", "WORKER_OUTPUTS": "in.out",
            "HTTP_HOST": "127.0.0.1", "HTTP_PORT": "0", "KAFKA_COMMIT_INTERVAL_MS": "200",
        ]
        let process = try ChildProcess("vigil-passthrough", [], name: "vigil-passthrough", environment: defaults.merging(environment) { $1 })
        var port = 0
        try await eventually(timeout: .seconds(30), "the worker's HTTP server listens") {
            guard process.isRunning else { throw ExitedEarly(description: "vigil-passthrough exited: \(process.standardError.suffix(2_000))") }
            guard let line = process.standardError.split(separator: "\n").first(where: { $0.contains("listening on 127.0.0.1:") }),
                  let value = line.split(separator: ":").last.flatMap({ Int($0.trimmingCharacters(in: .whitespaces)) })
            else { return false }
            port = value
            return true
        }
        return PassThroughWorkerProcess(process: process, port: port)
    }

    /// GET on the worker's HTTP server: status and body.
    func get(_ path: String) async throws -> (status: Int, body: String) {
        let curl = try ChildProcess("/usr/bin/curl", ["-s", "-o", "/dev/stdout", "-w", "\n%{http_code}\n", "http://127.0.0.1:\(port)\(path)"], name: "curl \(path)")
        try await curl.waitForExit(timeout: .seconds(30))
        let lines = curl.output
        return (Int(lines.last ?? "") ?? 0, lines.dropLast().joined(separator: "\n"))
    }

    /// The sum of the samples of `/metrics` whose line starts with `prefix` (a name, or a name
    /// and its first labels); nil when there is none.
    func metric(_ prefix: String) async throws -> Double? {
        let samples = try await get("/metrics").body.split(separator: "\n")
            .filter { $0.hasPrefix(prefix) }
            .compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }
        return samples.isEmpty ? nil : samples.reduce(0, +)
    }

    /// The most resident memory the process has used so far (VmHWM), in bytes.
    var peakResidentBytes: Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
              let kilobytes = line.split(separator: " ").dropFirst().first.flatMap({ Int($0) })
        else { return nil }
        return kilobytes * 1_024
    }

    /// CPU time (user + system) the process has used so far, in seconds.
    var cpuSeconds: Double? {
        guard let stat = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/stat", encoding: .utf8),
              let afterName = stat.lastIndex(of: ")") else { return nil }
        // Fields after the command name: state is field 3, utime 14 and stime 15.
        let fields = stat[stat.index(after: afterName)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}
