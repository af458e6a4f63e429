import Cameras
import Foundation
import Logging
import Metrics
import SwiftProtobuf
import VigilSchema
import Vision
import WorkerRuntime

/// vigil-detect's stage: `frames.v1` → `detections.v1` (every frame, empty or not) and
/// redacted `snapshots.v1`. The last stage that sees identifiable pixels; nothing it
/// publishes carries them.
///
/// A frame that cannot be read, has no pixels, or names a camera absent from `cameras.v1` at
/// its capture time is dead-lettered with the reason; a model that fails to run makes the
/// stage unavailable (the frame is retried, never dropped).
public final class DetectStage: Stage, @unchecked Sendable {
    public static let detectionsTopic = "detections.v1"
    public static let snapshotsTopic = "snapshots.v1"
    /// Snapshots are JPEG.
    public var alreadyCompressedOutputs: Set<String> { [Self.snapshotsTopic] }

    /// Motion gating's saved work: frames no model ran on, and model runs skipped in all.
    private let gatedFrames = Counter(label: "vigil_detect_gated_frames_total")
    private let skippedModelRuns = Counter(label: "vigil_detect_skipped_model_runs_total")
    /// Snapshots waiting for their look-ahead (each an unredacted frame in memory), and those
    /// dropped unpublished.
    private let waitingSnapshots = Gauge(label: "vigil_detect_snapshots_waiting")
    private let cameras: Table<Vigil_V1_CameraConfig>
    private let lock = NSLock()
    /// Inference is heavy and synchronous: on a thread of its own, not a cooperative one.
    public let executor: (any TaskExecutor)? = StageThread(name: "vigil.detect.stage")
    private let analyzer: FrameAnalyzer  // guarded by `lock` (the runner sends one frame at a time anyway)

    public init(analyzer: FrameAnalyzer, cameras: Table<Vigil_V1_CameraConfig>) {
        self.analyzer = analyzer
        self.cameras = cameras
    }

    /// A dead-lettered frame keeps its metadata, and its pixels only where its camera's signed
    /// configuration keeps them (nothing when unreadable).
    public func deadLetterValue(of input: StageInput) -> [UInt8] {
        guard var frame = try? Vigil_V1_Frame(serializedBytes: input.value) else { return [] }
        if cameras.keepsPixelsInDeadLetters(frame.cameraID, capturedAtMilliseconds: frame.captureTime.milliseconds) { return input.value }
        frame.data = Data()
        return (try? frame.serializedBytes()) ?? []
    }

    /// Frames whose snapshots wait for their look-ahead keep their offsets unstored.
    public func oldestHeldOffset(topic: String, partition: Int32) -> Int64? {
        lock.withLock { analyzer.oldestHeldOffset(topic: topic, partition: partition) }
    }

    public func process(_ input: StageInput) async throws -> [StageOutput] {
        let frame = try input.cameraMessage(Vigil_V1_Frame.self) { $0.cameraID }
        var camera = try cameras.camera(frame.cameraID, atMilliseconds: frame.captureTime.milliseconds)
        // The stronger of the capture time's and the current redaction, as decode does with
        // masks: a redelivered or late frame never gets less masking than the camera has now.
        if let current = cameras.current(frame.cameraID) {
            camera.redactionPolicy = camera.redactionPolicy.union(current.redactionPolicy)
        }
        let analysis: FrameAnalysis
        do {
            let source = FrameSource(topic: input.topic, partition: input.partition, offset: input.offset)
            analysis = try lock.withLock { try analyzer.analyze(frame, camera: camera, source: source) }
        } catch let error as ModelError {
            throw StageUnavailable("the detector failed: \(error)")
        }
        if analysis.gated { gatedFrames.increment() }
        if analysis.skippedModelRuns > 0 { skippedModelRuns.increment(by: analysis.skippedModelRuns) }
        waitingSnapshots.record(lock.withLock { analyzer.waitingSnapshots })
        for (reason, count) in analysis.droppedSnapshots {
            Counter(label: "vigil_detect_snapshots_dropped_total", dimensions: [("reason", reason)]).increment(by: count)
        }
        var outputs = [
            StageOutput(
                topic: Self.detectionsTopic, key: input.key, value: try analysis.detections.serializedBytes(),
                headers: [RecordHeader(key: "content-type", value: Vigil_V1_FrameDetections.protoMessageName)]
            ),
        ]
        for snapshot in analysis.snapshots {
            outputs.append(StageOutput(
                topic: Self.snapshotsTopic, key: input.key, value: try snapshot.serializedBytes(),
                headers: [RecordHeader(key: "content-type", value: Vigil_V1_Snapshot.protoMessageName)]
            ))
        }
        return outputs
    }
}
