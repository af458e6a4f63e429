import Cameras
import Decode
import Foundation
import Logging
import WorkerRuntime

/// vigil-decode: `video.packets.v1` → sampled, privacy-masked JPEG frames on `frames.v1`.
/// Besides the worker settings (WORKER_*, KAFKA_*), it reads:
///
/// - `DECODE_JPEG_QUALITY`: quality of published frames (default 90)
/// - `DECODE_DEFAULT_FPS`: frames per second for cameras that set no sampling (default 5)
/// - `DECODE_BEHIND_MS`: decode keyframes only while chunks are this far behind (default 5000)
let environment = ProcessInfo.processInfo.environment
var settings = DecodeSettings()
if let quality = environment["DECODE_JPEG_QUALITY"].flatMap(Int.init) { settings.jpegQuality = quality }
if let fps = environment["DECODE_DEFAULT_FPS"].flatMap(Double.init) { settings.defaultFramesPerSecond = fps }
if let behind = environment["DECODE_BEHIND_MS"].flatMap(Int64.init) { settings.behindMilliseconds = behind }
let cameras = CameraTable.forWorker("vigil-decode")
let stage = DecodeStage(cameras: cameras, settings: settings, logger: Logger(label: "vigil-decode"))
try await Worker.run(stage: stage, name: "vigil-decode", tables: [cameras])
