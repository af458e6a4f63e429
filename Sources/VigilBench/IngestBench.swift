import ArgumentParser
import ChildProcesses
import CommandLineSupport
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
        let bench = try BenchProcesses(bench: "ingest")
        let clip = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-bench-ingest-1080p-20s.mp4")
        if !FileManager.default.fileExists(atPath: clip.path) {
            writeLine("encoding the clip (1920x1080, 20 s, 4 Mbit/s) with ffmpeg…")
            _ = try timedRun("/usr/bin/ffmpeg", [
                "-nostdin", "-y", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=25", "-t", "20",
                "-c:v", "libx264", "-preset", "veryfast", "-b:v", "4M", "-maxrate", "4M", "-bufsize", "8M", "-g", "50", "-pix_fmt", "yuv420p", clip.path,
            ])
        }
        let cluster = try await bench.startDevCluster([
            "--brokers", "1", "--replication-factor", "1",
            "--topic", "cameras.v1:6", "--topic", "audit.events.v1:3", "--topic", "video.packets.v1:64", "--topic", "camera.health.v1:6",
        ])
        do {
            try await measure(clip: clip, cluster: cluster, bench: bench)
        } catch {
            await cluster.stop()
            throw error
        }
        await cluster.stop()
    }

    private func measure(clip: URL, cluster: BenchDevCluster, bench: BenchProcesses) async throws {
        let bootstrap = cluster.bootstrapServers
        let camerasFile = bench.scratch.appendingPathComponent("cameras.yaml")
        try ("cameras:\n" + (0..<cameras).map { "  cam-\($0):\n    source: \(clip.path)?loop=1\n" }.joined()).write(to: camerasFile, atomically: true, encoding: .utf8)
        try await bench.runVigil(["cameras", "apply", camerasFile.path, "--bootstrap", bootstrap, "--actor", DevAdmin.account], log: "cameras.log")

        let ingest = try BenchWorker(try bench.executable("vigil-ingest"), name: "vigil-ingest", environment: [
            "KAFKA_BOOTSTRAP": bootstrap, "WORKER_INPUTS": "", "WORKER_OWNS": "cameras.v1", "WORKER_OUTPUTS": "video.packets.v1,camera.health.v1",
            "HTTP_HOST": "127.0.0.1", "HTTP_PORT": "0",
        ].merging(bench.admin) { $1 }, log: bench.scratch.appendingPathComponent("ingest.log"))
        do {
            try await measure(ingest, cluster: cluster)
        } catch {
            await ingest.stop()
            throw error
        }
        await ingest.stop()
        bench.clean()
    }

    private func measure(_ ingest: BenchWorker, cluster: BenchDevCluster) async throws {
        writeLine("vigil bench ingest — \(cameras) cameras of 1080p25 H.264 4 Mbit/s (one file, looped, paced), dev cluster of 1 broker")
        try await Task.sleep(for: .seconds(warmUp))
        try ingest.checkRunning()
        let ingestBefore = try cpuSeconds(of: ingest.process.processIdentifier), clusterBefore = try cpuSeconds(of: cluster.process.processIdentifier)
        let chunksBefore = try await produced(ingest).chunks
        let started = Date()
        try await Task.sleep(for: .seconds(seconds))
        let wall = Date().timeIntervalSince(started)
        let ingestCPU = try cpuSeconds(of: ingest.process.processIdentifier) - ingestBefore
        let clusterCPU = try cpuSeconds(of: cluster.process.processIdentifier) - clusterBefore
        let after = try await produced(ingest)
        let megabits = after.bitsPerSecond / 1e6
        writeLine("")
        writeLine(String(format: "produced:    %.0f chunks; received %.1f Mbit/s (%.2f per camera, measured by ingest; the file is 4)", after.chunks - chunksBefore, megabits, megabits / Double(cameras)))
        guard megabits / Double(cameras) > 3 else {
            throw BenchFailure("the cameras did not all stream at their rate:\n\(ingest.logTail)")
        }
        writeLine("")
        writeLine(String(format: "ingest:      %.2f CPU s over %.1f s wall = %.3f cores for %d cameras", ingestCPU, wall, ingestCPU / wall, cameras))
        writeLine(String(format: "dev cluster: %.2f CPU s (%.3f cores), reported apart", clusterCPU, clusterCPU / wall))
        writeLine("")
        writeLine(String(format: "ratio  cameras per core (ingest process): %.0f (goal ≥ 100)", Double(cameras) * wall / max(ingestCPU, 0.001)))
    }

    /// Chunks vigil-ingest has produced to video.packets.v1 so far, and the bit rate it
    /// measures over all cameras (its own metrics).
    private func produced(_ ingest: BenchWorker) async throws -> (chunks: Double, bitsPerSecond: Double) {
        guard let metrics = try await ingest.metrics() else {
            throw BenchFailure("vigil-ingest does not serve /metrics:\n\(ingest.logTail)")
        }
        return (metrics.sum("vigil_records_out_total", label: "topic=\"video.packets.v1\""), metrics.sum("vigil_ingest_bits_per_second"))
    }
}
