import ChildProcesses
import Foundation
import Kafka
import Logging
import SwiftProtobuf
import Testing
import VigilSchema
import Vision

/// vigil-detect as its own process on the dev cluster: it loads and verifies its models,
/// reads `cameras.v1`, and turns `frames.v1` into `detections.v1` and `snapshots.v1`, sending
/// what it cannot analyse to `frames.v1.dlq`. kcat reads the results as an outside client.
@Suite("vigil-detect on the dev cluster", .serialized, .timeLimit(.minutes(10)))
struct DetectWorkerTests {
    static let topics = ["frames.v1:3", "frames.v1.dlq:1", "detections.v1:3", "snapshots.v1:3", "cameras.v1:6", "audit.events.v1:3"]
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Declares camera cam-0 on the cluster with `vigil cameras apply`.
    static func applyCamera(_ cluster: DevClusterProcess) async throws {
        let cameras = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-detect-cameras-\(UUID().uuidString).yaml")
        try "cameras:\n  cam-0:\n    source: /media/cam-0.mp4\n".write(to: cameras, atomically: true, encoding: .utf8)
        let apply = try ChildProcess("vigil", ["cameras", "apply", cameras.path, "--bootstrap", cluster.bootstrapServers, "--actor", "test-admin"])
        try await apply.waitForExit(timeout: .seconds(120))
        #expect(apply.exitStatus == 0, "\(apply.standardError.suffix(2_000))")
    }

    static func frame(camera: String, sequence: UInt64, jpeg: Data, capturedAt date: Date = Date()) throws -> KafkaProducerMessage {
        var frame = Vigil_V1_Frame()
        frame.cameraID = camera
        frame.sequence = sequence
        frame.captureTime = Google_Protobuf_Timestamp(date: date)
        frame.pixelFormat = .jpeg
        frame.data = jpeg
        return KafkaProducerMessage(topic: "frames.v1", key: camera, value: try frame.serializedBytes())
    }

    @Test("a photo's frame gives detections, and a snapshot once the next second of frames is in; a corrupt frame and an unknown camera's frame go to frames.v1.dlq with the reason")
    func framesThroughTheWorker() async throws {
        let cluster = try await DevClusterProcess(topics: Self.topics)
        try await Self.applyCamera(cluster)

        let worker = try await PassThroughWorkerProcess.start(cluster, environment: [
            "WORKER_INPUTS": "frames.v1", "WORKER_OUTPUTS": "detections.v1,snapshots.v1", "WORKER_TABLES": "cameras.v1",
            "DETECT_MODELS_DIR": Self.repository.appendingPathComponent("models").path,
        ], executable: "vigil-detect")
        #expect(worker.process.standardError.contains("loaded model") && worker.process.standardError.contains("sha256="))

        let photo = try Data(contentsOf: Self.repository.appendingPathComponent(".test-media/faces/obama.jpg"))
        let producer = try KafkaProducer(configuration: .init(cluster: KafkaConfiguration(bootstrapServers: cluster.bootstrapServers)), logger: Logger(label: "test"))
        // The photo again a second later: the first frame's look-ahead, which its snapshot waits for.
        let captured = Date()
        for message in [
            try Self.frame(camera: "cam-0", sequence: 1, jpeg: photo, capturedAt: captured),
            try Self.frame(camera: "cam-0", sequence: 2, jpeg: photo.prefix(2_000), capturedAt: captured.addingTimeInterval(0.5)),
            try Self.frame(camera: "cam-9", sequence: 1, jpeg: photo),
            // 1.5 s, not 1: a Date's seconds in floating point may come out a millisecond short.
            try Self.frame(camera: "cam-0", sequence: 3, jpeg: photo, capturedAt: captured.addingTimeInterval(1.5)),
        ] {
            _ = try await producer.send(message)
        }
        try await producer.flush()

        // Generous: make test runs this beside the CPU-bound vision suites, and each photo costs a
        // CenterFace compile for its size and a full-resolution pass (minutes on a loaded 2-core machine).
        try await eventually(timeout: .seconds(300), "detect answered every frame") {
            let answered = try await cluster.kcatRecords("detections.v1").count
            let refused = try await cluster.kcatRecords("frames.v1.dlq").count
            let published = try await cluster.kcatRecords("snapshots.v1").count
            return answered >= 2 && refused >= 2 && published >= 1
        }
        let detections = try await cluster.kcatRecords("detections.v1")
        #expect(detections.count == 2 && detections.allSatisfy { $0.first == "cam-0" })
        #expect(detections.first?.last?.contains("content-type=vigil.v1.FrameDetections") == true)
        let snapshots = try await cluster.kcatRecords("snapshots.v1")
        #expect(snapshots.count == 1 && snapshots.first?.first == "cam-0")
        let letters = try await cluster.kcatRecords("frames.v1.dlq")
        #expect(letters.count == 2)
        #expect(letters.contains { $0.last?.contains("cannot be read") == true })
        #expect(letters.contains { $0.first == "cam-9" && $0.last?.contains("is not in cameras.v1") == true })

        // Its model loads are audited: each model with the SHA-256 the manifest pins and its classes.
        let manifest = try ModelManifest(directory: Self.repository.appendingPathComponent("models").path)
        let loads = try await KafkaTableReader.readPartitions(
            cluster: KafkaConfiguration(bootstrapServers: cluster.bootstrapServers), topic: "audit.events.v1", partitions: nil, logger: Logger(label: "test")
        ).compactMap { try? Vigil_V1_AuditEvent(serializedBytes: $0.value) }.filter { $0.kind == .modelLoaded }
        for (name, classes) in [("face-centerface", "face"), ("person-pose-detector", "person")] {
            let sha256 = try manifest.verified(name).sha256
            #expect(loads.filter { $0.subject == "model:\(name)" && $0.actor == "vigil-detect" && $0.detail.contains(sha256) && $0.detail.hasSuffix("classes: \(classes)") }.count == 1,
                    "one MODEL_LOADED event for \(name): \(loads.map(\.detail))")
        }

        worker.process.signal(SIGTERM)
        try await worker.process.waitForExit()
        try await cluster.stop()
    }

    @Test("a snapshot waiting for its look-ahead holds its frame's offset: stopped before the look-ahead came, the worker reads the frame again and publishes the snapshot once it does")
    func waitingSnapshotSurvivesARestart() async throws {
        let cluster = try await DevClusterProcess(topics: Self.topics)
        try await Self.applyCamera(cluster)
        let environment = [
            "WORKER_INPUTS": "frames.v1", "WORKER_OUTPUTS": "detections.v1,snapshots.v1", "WORKER_TABLES": "cameras.v1",
            "DETECT_MODELS_DIR": Self.repository.appendingPathComponent("models").path,
        ]
        let photo = try Data(contentsOf: Self.repository.appendingPathComponent(".test-media/faces/obama.jpg"))
        let producer = try KafkaProducer(configuration: .init(cluster: KafkaConfiguration(bootstrapServers: cluster.bootstrapServers)), logger: Logger(label: "test"))
        let captured = Date()

        // Two frames half a second apart: the first one's snapshot waits for a second of frames.
        let first = try await PassThroughWorkerProcess.start(cluster, environment: environment, executable: "vigil-detect")
        for (sequence, seconds) in [(1, 0.0), (2, 0.5)] {
            _ = try await producer.send(try Self.frame(camera: "cam-0", sequence: UInt64(sequence), jpeg: photo, capturedAt: captured.addingTimeInterval(seconds)))
        }
        try await producer.flush()
        try await eventually(timeout: .seconds(300), "detect analysed both frames") { try await cluster.kcatRecords("detections.v1").count >= 2 }
        #expect(try await cluster.kcatRecords("snapshots.v1").isEmpty, "no snapshot before its look-ahead")
        first.process.signal(SIGTERM)
        try await first.process.waitForExit()

        // A new replica reads the held frame again; the frame that completes its look-ahead publishes it.
        let second = try await PassThroughWorkerProcess.start(cluster, environment: environment, executable: "vigil-detect")
        _ = try await producer.send(try Self.frame(camera: "cam-0", sequence: 3, jpeg: photo, capturedAt: captured.addingTimeInterval(1.5)))
        try await producer.flush()
        try await eventually(timeout: .seconds(300), "the waiting snapshot is published after the restart") { try await cluster.kcatRecords("snapshots.v1").count >= 1 }
        let snapshots = try await KafkaTableReader.readPartitions(
            cluster: KafkaConfiguration(bootstrapServers: cluster.bootstrapServers), topic: "snapshots.v1", partitions: nil, logger: Logger(label: "test")
        ).map { try Vigil_V1_Snapshot(serializedBytes: $0.value) }
        #expect(snapshots.map(\.frameSequence) == [1], "the first frame's snapshot, once")
        await producer.close()
        second.process.signal(SIGTERM)
        try await second.process.waitForExit()
        try await cluster.stop()
    }

    @Test("settings that would lower redaction recall stop vigil-detect at start, naming the variable: fewer person tiles, a shorter look-ahead, a face search below 1080p")
    func recallLoweringSettingsRefused() async throws {
        for (variable, value) in [("DETECT_PERSON_TILES", "0"), ("DETECT_LOOKAHEAD_MS", "200"), ("DETECT_FACE_MAX_WIDTH", "640")] {
            let worker = try ChildProcess("vigil-detect", [], environment: [variable: value, "DETECT_MODELS_DIR": Self.repository.appendingPathComponent("models").path])
            try await worker.waitForExit(timeout: .seconds(60))
            #expect(worker.exitStatus == 64, "\(variable)=\(value): exit \(String(describing: worker.exitStatus))")
            #expect(worker.standardError.contains("\(variable) is \(value); it must be at least"), "\(worker.standardError.suffix(500))")
        }
    }
}
