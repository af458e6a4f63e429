import ArgumentParser
import ChildProcesses
import DevCluster
import Foundation

/// Cameras per core for vigil-ingest: N simulated 1080p25 4 Mbit/s cameras (one file, looped,
/// paced at its native rate) streamed into a dev cluster for a while; the ingest process's
/// CPU time is read from /proc, the dev cluster's reported apart.
struct IngestBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ingest",
        abstract: "vigil-ingest cameras per core: N paced 1080p25 4 Mbit/s cameras into a dev cluster.",
        discussion: """
            Starts `vigil dev-cluster` (1 broker) and `vigil-ingest` as processes next to this binary, applies N cameras that all play the same 1080p25 H.264 4 Mbit/s file in a loop at its native rate, lets them run --warm-up seconds, then measures --seconds of wall time. cameras per core = N × wall seconds / ingest CPU seconds (user + system, from /proc). Goal: ≥ 100.
            """
    )

    @Option(help: "Simulated cameras.") var cameras = 40
    @Option(help: "Seconds measured.") var seconds = 20
    @Option(help: "Seconds before measuring (connections, group join, first GOPs).") var warmUp = 8

    func run() async throws {
        let binaries = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-bench-ingest-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        let clip = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-bench-ingest-1080p-20s.mp4")
        if !FileManager.default.fileExists(atPath: clip.path) {
            writeLine("encoding the clip (1920x1080, 20 s, 4 Mbit/s) with ffmpeg…")
            _ = try timedRun("/usr/bin/ffmpeg", [
                "-nostdin", "-y", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=25", "-t", "20",
                "-c:v", "libx264", "-preset", "veryfast", "-b:v", "4M", "-maxrate", "4M", "-bufsize", "8M", "-g", "50", "-pix_fmt", "yuv420p", clip.path,
            ])
        }
        let stateFile = scratch.appendingPathComponent("cluster.json")
        let cluster = try start(binaries.appendingPathComponent("vigil"), [
            "dev-cluster", "--state-file", stateFile.path, "--log-level", "warning", "--brokers", "1", "--replication-factor", "1",
            "--topic", "cameras.v1:6", "--topic", "audit.events.v1:3", "--topic", "video.packets.v1:64", "--topic", "camera.health.v1:6",
        ], log: scratch.appendingPathComponent("cluster.log"))
        defer { cluster.signal(SIGTERM); cluster.waitUntilExit() }
        let deadline = Date().addingTimeInterval(30)
        while !FileManager.default.fileExists(atPath: stateFile.path) {
            guard Date() < deadline, cluster.isRunning else { throw ValidationError("vigil dev-cluster did not start (see \(scratch.path)/cluster.log)") }
            try await Task.sleep(for: .milliseconds(100))
        }
        let bootstrap = try DevClusterClient(stateFile: stateFile).state.bootstrapServers

        let camerasFile = scratch.appendingPathComponent("cameras.yaml")
        try ("cameras:\n" + (0..<cameras).map { "  cam-\($0):\n    source: \(clip.path)?loop=1\n" }.joined()).write(to: camerasFile, atomically: true, encoding: .utf8)
        _ = try timedRun(binaries.appendingPathComponent("vigil").path, ["cameras", "apply", camerasFile.path, "--bootstrap", bootstrap, "--actor", "bench"])

        let ingest = try start(binaries.appendingPathComponent("vigil-ingest"), [], log: scratch.appendingPathComponent("ingest.log"), environment: [
            "KAFKA_BOOTSTRAP": bootstrap, "WORKER_INPUTS": "", "WORKER_OWNS": "cameras.v1", "WORKER_OUTPUTS": "video.packets.v1,camera.health.v1",
            "HTTP_HOST": "127.0.0.1", "HTTP_PORT": "0",
        ])
        defer { ingest.signal(SIGTERM); ingest.waitUntilExit() }
        writeLine("vigil bench ingest — \(cameras) cameras of 1080p25 H.264 4 Mbit/s (one file, looped, paced), dev cluster of 1 broker")
        try await Task.sleep(for: .seconds(warmUp))
        guard ingest.isRunning else { throw ValidationError("vigil-ingest exited (see \(scratch.path)/ingest.log)") }
        let metricsURL = try metricsAddress(log: scratch.appendingPathComponent("ingest.log"))
        let ingestBefore = try cpuSeconds(ingest.processIdentifier), clusterBefore = try cpuSeconds(cluster.processIdentifier)
        let chunksBefore = try produced(metricsURL).chunks
        let started = Date()
        try await Task.sleep(for: .seconds(seconds))
        let wall = Date().timeIntervalSince(started)
        let ingestCPU = try cpuSeconds(ingest.processIdentifier) - ingestBefore
        let clusterCPU = try cpuSeconds(cluster.processIdentifier) - clusterBefore
        let after = try produced(metricsURL)
        let megabits = after.bitsPerSecond / 1e6
        writeLine("")
        writeLine(String(format: "produced:    %.0f chunks; received %.1f Mbit/s (%.2f per camera, measured by ingest; the file is 4)", after.chunks - chunksBefore, megabits, megabits / Double(cameras)))
        guard megabits / Double(cameras) > 3 else {
            throw ValidationError("the cameras did not all stream at their rate: see \(scratch.path)/ingest.log")
        }
        writeLine("")
        writeLine(String(format: "ingest:      %.2f CPU s over %.1f s wall = %.3f cores for %d cameras", ingestCPU, wall, ingestCPU / wall, cameras))
        writeLine(String(format: "dev cluster: %.2f CPU s (%.3f cores), reported apart", clusterCPU, clusterCPU / wall))
        writeLine("")
        writeLine(String(format: "ratio  cameras per core (ingest process): %.0f (goal ≥ 100)", Double(cameras) * wall / max(ingestCPU, 0.001)))
    }

    /// The ingest worker's /metrics address, from its "listening on" log line.
    private func metricsAddress(log: URL) throws -> String {
        let text = try String(contentsOf: log, encoding: .utf8)
        guard let line = text.split(separator: "\n").first(where: { $0.contains("listening on 127.0.0.1:") }),
              let port = line.split(separator: ":").last.map({ $0.trimmingCharacters(in: .whitespaces) }) else {
            throw ValidationError("vigil-ingest did not say where it listens (see \(log.path))")
        }
        return "http://127.0.0.1:\(port)/metrics"
    }

    /// Chunks vigil-ingest has produced to video.packets.v1 so far, and the bit rate it
    /// measures over all cameras (its own metrics).
    private func produced(_ url: String) throws -> (chunks: Double, bitsPerSecond: Double) {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-bench-metrics-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: output) }
        _ = try timedRun("/usr/bin/curl", ["-sf", "-o", output.path, url])
        let text = try String(contentsOf: output, encoding: .utf8)
        func sum(_ prefix: String, _ topic: String?) -> Double {
            text.split(separator: "\n").filter { line in line.hasPrefix(prefix) && (topic.map { line.contains($0) } ?? true) }
                .compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }.reduce(0, +)
        }
        return (sum("vigil_records_out_total", "video.packets.v1"), sum("vigil_ingest_bits_per_second", nil))
    }

    private func start(_ executable: URL, _ arguments: [String], log: URL, environment: [String: String] = [:]) throws -> ChildProcess {
        try ChildProcess(
            executable: executable.path, arguments: arguments, environment: ProcessInfo.processInfo.environment.merging(environment) { $1 },
            standardOutput: .file(log.path), standardError: .file(log.path)
        )
    }

    /// User + system CPU time of a process so far.
    private func cpuSeconds(_ pid: Int32) throws -> Double {
        let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
        guard let afterName = stat.lastIndex(of: ")") else { throw ValidationError("cannot read /proc/\(pid)/stat") }
        let fields = stat[stat.index(after: afterName)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { throw ValidationError("cannot read /proc/\(pid)/stat") }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}
