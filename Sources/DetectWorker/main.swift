import Cameras
import Detect
import Foundation
import Logging
import WorkerRuntime

/// vigil-detect: faces, persons and motion in every frame of `frames.v1`; publishes
/// `detections.v1` and redacted `snapshots.v1`. Besides the worker settings (WORKER_*,
/// KAFKA_*), it reads:
///
/// - `DETECT_MODELS_DIR`: the models folder (default `models`, as Scripts/fetch-models fills it)
/// - `DETECT_THREADS`: inference threads per model (default 1)
/// - `DETECT_PERSON_TILES`: person-detector tiles per axis besides the whole frame (default 4)
/// - `DETECT_FACE_MAX_WIDTH`: scale wider frames down for the face detector (default: none)
/// - `DETECT_SLOT_FILE`: the operator's object detectors (`SlotFile`; default: none)
/// - `DETECT_LOOKAHEAD_MS`: capture time of later frames a snapshot waits for (default and
///   least 1000: a lower value is refused, as it would publish faces found a moment late)
let environment = ProcessInfo.processInfo.environment
var settings = DetectSettings(modelsDirectory: environment["DETECT_MODELS_DIR"] ?? "models")
if let text = environment["DETECT_LOOKAHEAD_MS"] {
    guard let milliseconds = Int64(text), milliseconds >= DetectSettings.minimumLookAheadMilliseconds else {
        FileHandle.standardError.write(Data("vigil-detect: DETECT_LOOKAHEAD_MS is \"\(text)\"; give whole milliseconds, at least \(DetectSettings.minimumLookAheadMilliseconds): a snapshot waits that long for the frames after it, so a face found a moment late is masked too\n".utf8))
        exit(64)
    }
    settings.lookAheadMilliseconds = milliseconds
}
if let threads = environment["DETECT_THREADS"].flatMap(Int.init) { settings.threads = threads }
if let tiles = environment["DETECT_PERSON_TILES"].flatMap(Int.init) { settings.personTiles = tiles }
settings.faceMaximumWidth = environment["DETECT_FACE_MAX_WIDTH"].flatMap(Int.init)
if let slotFile = environment["DETECT_SLOT_FILE"] {
    do {
        settings.slotModels = try SlotFile.load(slotFile)
        settings.slotDirectory = (slotFile as NSString).deletingLastPathComponent
    } catch {
        FileHandle.standardError.write(Data("vigil-detect: \(error)\n".utf8))
        exit(2)
    }
}

let analyzer: FrameAnalyzer
do {
    // A missing or altered model stops the worker here, naming the file and Scripts/fetch-models.
    analyzer = try FrameAnalyzer(settings: settings, logger: Logger(label: "vigil-detect"))
} catch {
    FileHandle.standardError.write(Data("vigil-detect: \(error)\n".utf8))
    exit(2)
}
let cameras = CameraTable.forWorker("vigil-detect")
// Every model load is audited: which models analyse the video, from when, by checksum.
try await Worker.run(
    stage: DetectStage(analyzer: analyzer, cameras: cameras), name: "vigil-detect", tables: [cameras],
    announcing: ModelLoadAudit.records(analyzer.loadedModels, worker: "vigil-detect")
)
