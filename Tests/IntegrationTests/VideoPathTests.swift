import ChildProcesses
import Foundation
import Kafka
import Logging
import SwiftProtobuf
import Testing
import VigilSchema

/// The video path as separate processes on the dev cluster: `vigil-ingest` streams a file
/// camera into `video.packets.v1` and reports its health; `vigil-decode` turns the chunks into
/// sampled frames on `frames.v1`. kcat reads the results as an outside client.
@Suite("Video path on the dev cluster", .serialized, .timeLimit(.minutes(5)))
struct VideoPathTests {
    static let topics = [
        "cameras.v1:6", "audit.events.v1:3", "video.packets.v1:3", "video.packets.v1.dlq:1", "camera.health.v1:3", "frames.v1:3", "frames.v1.dlq:1",
    ]

    /// 2 s of testsrc2 (640x360, 25 fps, a keyframe a second), made by the ffmpeg CLI.
    static func clip() async throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-video-path-\(UUID().uuidString).mp4")
        let ffmpeg = try ChildProcess("/usr/bin/ffmpeg", [
            "-nostdin", "-y", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25", "-t", "2", "-g", "25", "-pix_fmt", "yuv420p",
            "-c:v", "libx264", "-preset", "veryfast", url.path,
        ], name: "ffmpeg")
        try await ffmpeg.waitForExit(timeout: .seconds(60))
        #expect(ffmpeg.exitStatus == 0, "\(ffmpeg.standardError)")
        return url
    }

    /// The raw values of `topic`, concatenated (to search for text that must never appear).
    static func rawValues(_ topic: String, _ cluster: DevClusterProcess) async throws -> String {
        let kcat = try ChildProcess("/usr/bin/kcat", ["-C", "-b", cluster.bootstrapServers, "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%s\n"], name: "kcat")
        try await kcat.waitForExit(timeout: .seconds(60))
        return kcat.output.joined(separator: "\n")
    }

    /// Every health record so far, decoded (read in process: the values are binary).
    static func healthRecords(_ cluster: DevClusterProcess) async throws -> [Vigil_V1_CameraHealth] {
        try await KafkaTableReader.readPartitions(
            cluster: KafkaConfiguration(bootstrapServers: cluster.bootstrapServers), topic: "camera.health.v1", partitions: nil, logger: Logger(label: "test")
        ).map { try Vigil_V1_CameraHealth(serializedBytes: $0.value) }
    }

    @Test("an RTSP camera from a real RTSP server: online with chunks; server killed → offline within 5 s; restarted → online again and chunks resume")
    func rtspCameraReconnects() async throws {
        let cluster = try await DevClusterProcess(topics: Self.topics)
        let clip = try await Self.clip()
        let port = 20_000 + Int(getpid() % 20_000)
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let serverScript = repository.appendingPathComponent("Scripts/rtsp-test-server").path
        func startServer() async throws -> ChildProcess {
            let server = try ChildProcess("/usr/bin/python3", [serverScript, clip.path, String(port)], name: "rtsp server")
            try await eventually(timeout: .seconds(30), "the RTSP server listens") { server.output.contains { $0.hasPrefix("serving rtsp://") } }
            return server
        }
        var server = try await startServer()
        let cameras = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-rtsp-cameras-\(UUID().uuidString).yaml")
        try "cameras:\n  cam-rtsp:\n    source: rtsp://127.0.0.1:\(port)/cam\n".write(to: cameras, atomically: true, encoding: .utf8)
        let apply = try ChildProcess("vigil", ["cameras", "apply", cameras.path, "--bootstrap", cluster.bootstrapServers, "--actor", "test-admin"])
        try await apply.waitForExit(timeout: .seconds(120))
        #expect(apply.exitStatus == 0, "\(apply.standardError.suffix(2_000))")
        let ingest = try await PassThroughWorkerProcess.start(cluster, environment: [
            "WORKER_INPUTS": "", "WORKER_OWNS": "cameras.v1", "WORKER_OUTPUTS": "video.packets.v1,camera.health.v1", "INGEST_READ_TIMEOUT_MS": "2000",
        ], executable: "vigil-ingest")

        try await eventually(timeout: .seconds(30), "the camera is online and chunks flow") {
            let online = try await Self.healthRecords(cluster).contains { $0.state == .online }
            let chunks = try await cluster.kcatRecords("video.packets.v1").count
            return online && chunks >= 2
        }
        server.signal(SIGKILL)
        try await server.waitForExit()
        let killed = ContinuousClock.now
        try await eventually(timeout: .seconds(5), "the camera is reported offline or stalled within 5 s of the server's death") {
            try await Self.healthRecords(cluster).contains { $0.state == .offline || $0.state == .stalled }
        }
        print("RTSP server killed: camera reported down after \(ContinuousClock.now - killed)")
        let chunksWhileDown = try await cluster.kcatRecords("video.packets.v1").count

        server = try await startServer()
        try await eventually(timeout: .seconds(60), "the camera reconnects and chunks resume") {
            let health = try await Self.healthRecords(cluster)
            let downAt = health.lastIndex { $0.state == .offline || $0.state == .stalled } ?? 0
            let onlineAgain = health[downAt...].contains { $0.state == .online }
            let chunks = try await cluster.kcatRecords("video.packets.v1").count
            return onlineAgain && chunks > chunksWhileDown + 1
        }
        server.signal(SIGTERM)
        _ = try? await server.waitForExit()
        ingest.process.signal(SIGTERM)
        try await ingest.process.waitForExit()
        try await cluster.stop()
    }

    @Test("a file camera: chunks, health online then offline at its end, and frames at the camera's rate; an unreachable RTSP camera is reported offline without its URL; a file that is not video is reported offline with the reason")
    func fileCameraThroughIngestAndDecode() async throws {
        let cluster = try await DevClusterProcess(topics: Self.topics)
        let clip = try await Self.clip()
        let notVideo = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-not-video-\(UUID().uuidString).mp4")
        try String(repeating: "this is a text file, not a video stream\n", count: 200).write(to: notVideo, atomically: true, encoding: .utf8)
        let cameras = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-video-cameras-\(UUID().uuidString).yaml")
        try """
        cameras:
          cam-file:
            source: \(clip.path)
            sampling: {fps: 5}
          cam-down:
            source: rtsp://127.0.0.1:9/nothing-listens-here
          cam-text:
            source: \(notVideo.path)
        """.write(to: cameras, atomically: true, encoding: .utf8)
        let apply = try ChildProcess("vigil", ["cameras", "apply", cameras.path, "--bootstrap", cluster.bootstrapServers, "--actor", "test-admin"])
        try await apply.waitForExit(timeout: .seconds(120))
        #expect(apply.exitStatus == 0, "\(apply.standardError.suffix(2_000))")

        let decode = try await PassThroughWorkerProcess.start(cluster, environment: [
            "WORKER_INPUTS": "video.packets.v1", "WORKER_OUTPUTS": "frames.v1,camera.health.v1", "WORKER_TABLES": "cameras.v1",
        ], executable: "vigil-decode")
        let ingest = try await PassThroughWorkerProcess.start(cluster, environment: [
            "WORKER_INPUTS": "", "WORKER_OWNS": "cameras.v1", "WORKER_OUTPUTS": "video.packets.v1,camera.health.v1", "INGEST_READ_TIMEOUT_MS": "2000",
        ], executable: "vigil-ingest")

        try await eventually(timeout: .seconds(60), "the file camera's frames are decoded and its end reported") {
            let frames = try await cluster.kcatRecords("frames.v1").count
            let ended = try await Self.rawValues("camera.health.v1", cluster).contains("the stream ended")
            return frames >= 9 && ended
        }
        // The file plays at its native rate once: 2 s at 5 fps sampled is 10 ± 1 frames.
        let frames = try await cluster.kcatRecords("frames.v1")
        #expect((9...11).contains(frames.count), "\(frames.count) frames")
        #expect(frames.allSatisfy { $0.first == "cam-file" && $0.last?.contains("content-type=vigil.v1.Frame") == true })
        let chunks = try await cluster.kcatRecords("video.packets.v1")
        #expect(chunks.count >= 2 && chunks.allSatisfy { $0.first == "cam-file" })
        #expect(try await cluster.kcatRecords("video.packets.v1.dlq").isEmpty)

        try await eventually(timeout: .seconds(30), "the unreachable camera is reported offline") {
            try await cluster.kcatRecords("camera.health.v1").contains { $0.first == "cam-down" }
        }
        try await eventually(timeout: .seconds(30), "the camera whose file is not video is reported offline") {
            try await Self.healthRecords(cluster).contains { $0.cameraID == "cam-text" && $0.state == .offline }
        }
        let textHealth = try await Self.healthRecords(cluster).filter { $0.cameraID == "cam-text" }
        #expect(textHealth.allSatisfy { $0.state == .offline }, "never online: \(textHealth.map(\.state))")
        print("a file that is not video: \(textHealth.first?.reason ?? "")")
        #expect(textHealth.first?.reason.isEmpty == false)
        #expect(ingest.process.isRunning && decode.process.isRunning, "one bad camera stops nothing else")
        let health = try await Self.rawValues("camera.health.v1", cluster)
        #expect(!health.contains("nothing-listens-here") && !health.contains("127.0.0.1:9"), "a camera URL leaked into a health record")
        #expect(!ingest.process.standardError.contains("nothing-listens-here") && !ingest.process.standardError.contains("127.0.0.1:9"), "a camera URL leaked into the log")

        for worker in [ingest, decode] {
            worker.process.signal(SIGTERM)
            try await worker.process.waitForExit()
        }
        try await cluster.stop()
    }
}

/// Two vigil-ingest replicas share the cameras through the runtime's source ownership.
@Suite("Ingest replicas on the dev cluster", .serialized, .timeLimit(.minutes(5)))
struct IngestReplicaTests {
    static let ingest = ["WORKER_INPUTS": "", "WORKER_OWNS": "cameras.v1", "WORKER_OUTPUTS": "video.packets.v1,camera.health.v1"]

    static func running(_ worker: PassThroughWorkerProcess) async throws -> Set<String> {
        Set(try await worker.get("/cameras").body.split(separator: "\n").map(String.init))
    }

    @Test("6 looped file cameras on 2 replicas: one is killed, its cameras move to the survivor, and each camera's chunks stay in order")
    func killedReplicasCamerasMove() async throws {
        let cluster = try await DevClusterProcess(topics: VideoPathTests.topics)
        let clip = try await VideoPathTests.clip()
        let cameras = Set((0..<6).map { "cam-\($0)" })
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-ingest-replicas-\(UUID().uuidString).yaml")
        try ("cameras:\n" + cameras.sorted().map { "  \($0):\n    source: \(clip.path)?loop=1\n" }.joined()).write(to: file, atomically: true, encoding: .utf8)
        let apply = try ChildProcess("vigil", ["cameras", "apply", file.path, "--bootstrap", cluster.bootstrapServers, "--actor", "test-admin"])
        try await apply.waitForExit(timeout: .seconds(120))
        #expect(apply.exitStatus == 0, "\(apply.standardError.suffix(2_000))")

        let first = try await PassThroughWorkerProcess.start(cluster, environment: Self.ingest, executable: "vigil-ingest")
        try await eventually(timeout: .seconds(60), "one replica streams every camera") { try await Self.running(first) == cameras }
        let second = try await PassThroughWorkerProcess.start(cluster, environment: Self.ingest, executable: "vigil-ingest")
        try await eventually(timeout: .seconds(60), "the cameras are split between the replicas (neither replica restarts)") {
            let split = (try await Self.running(first), try await Self.running(second))
            return !split.0.isEmpty && !split.1.isEmpty && split.0.union(split.1) == cameras
        }
        #expect(first.process.isRunning && !first.process.standardError.contains("crashed"))
        first.process.signal(SIGKILL)
        try await first.process.waitForExit()
        let killed = ContinuousClock.now
        try await eventually(timeout: .seconds(90), "the survivor streams every camera") { try await Self.running(second) == cameras }
        print("ingest replica killed: its cameras moved to the survivor within \(ContinuousClock.now - killed)")
        // Let every camera publish a few chunks from the survivor.
        try await Task.sleep(for: .seconds(3))
        second.process.signal(SIGTERM)
        try await second.process.waitForExit()

        let records = try await KafkaTableReader.readPartitions(
            cluster: KafkaConfiguration(bootstrapServers: cluster.bootstrapServers), topic: "video.packets.v1", partitions: nil, logger: Logger(label: "test")
        )
        var byCamera: [String: [(partition: Int32, offset: Int64, chunk: Vigil_V1_VideoChunk)]] = [:]
        for record in records {
            let chunk = try Vigil_V1_VideoChunk(serializedBytes: record.value)
            byCamera[chunk.cameraID, default: []].append((record.partition, record.offset, chunk))
        }
        #expect(Set(byCamera.keys) == cameras)
        for (camera, chunks) in byCamera {
            let ordered = chunks.sorted { $0.offset < $1.offset }
            #expect(Set(ordered.map(\.partition)).count == 1, "\(camera)'s chunks share one partition")
            for (previous, next) in zip(ordered, ordered.dropFirst()) {
                #expect(next.chunk.captureTime.timeIntervalSince1970 >= previous.chunk.captureTime.timeIntervalSince1970, "\(camera): capture times go back at offset \(next.offset)")
                if next.chunk.epoch == previous.chunk.epoch {
                    #expect(next.chunk.sequence == previous.chunk.sequence + 1, "\(camera): a gap inside one ingest run at offset \(next.offset)")
                } else {
                    #expect(next.chunk.discontinuity && next.chunk.sequence == 0, "\(camera): a new run starts at sequence 0 with a discontinuity")
                }
            }
        }
        try await cluster.stop()
    }
}
