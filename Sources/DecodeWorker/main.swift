import Cameras
import Decode
import Foundation
import Logging
import WorkerRuntime

/// vigil-decode: `video.packets.v1` → sampled, privacy-masked JPEG frames on `frames.v1`.
/// Besides the worker settings (WORKER_*, KAFKA_*), it reads:
///
/// - `DECODE_JPEG_QUALITY`: quality of published frames (default 90, at least 80: detect finds
///   fewer small faces in coarser JPEG)
/// - `DECODE_DEFAULT_FPS`: frames per second for cameras that set no sampling (default 5)
/// - `DECODE_BEHIND_MS`: decode keyframes only while chunks are this far behind (default 5000)
///
/// A setting that is not a number, or below its floor, stops the worker at start (exit 64).
WorkerCommandLine.answerHelpOrVersion(worker: "vigil-decode", summary: "video.packets.v1 → sampled, privacy-masked JPEG frames on frames.v1", settings: [
    WorkerSetting("DECODE_JPEG_QUALITY", default: "90", "JPEG quality of published frames, at least 80 (detect finds fewer small faces in coarser JPEG)"),
    WorkerSetting("DECODE_DEFAULT_FPS", default: "5", "frames per second for cameras that set no sampling"),
    WorkerSetting("DECODE_BEHIND_MS", default: "5000", "decode keyframes only while chunks are this far behind"),
    CameraAdmins.workerSetting,
])
var settings = DecodeSettings()
StageSettings(worker: "vigil-decode").reading { stage throws(StageSettings.Problem) in
    if let quality = try stage.integer("DECODE_JPEG_QUALITY", atLeast: 80, floor: "detect finds fewer small faces in coarser JPEG") {
        settings.jpegQuality = Int(min(quality, 100))
    }
    if let fps = try stage.number("DECODE_DEFAULT_FPS", atLeast: 0.1) { settings.defaultFramesPerSecond = fps }
    if let behind = try stage.integer("DECODE_BEHIND_MS", atLeast: 1) { settings.behindMilliseconds = behind }
}
let cameras = CameraTable.forWorker("vigil-decode")
let stage = DecodeStage(cameras: cameras, settings: settings, logger: Logger(label: "vigil-decode"))
try await Worker.run(stage: stage, name: "vigil-decode", tables: [cameras])
