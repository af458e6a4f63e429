import Cameras
import Detect
import Foundation
import Logging
import SlotDeclarations
import WorkerRuntime

/// vigil-detect: faces, persons and motion in every frame of `frames.v1`; publishes
/// `detections.v1` and redacted `snapshots.v1`. Besides the worker settings (WORKER_*,
/// KAFKA_*), it reads:
///
/// - `DETECT_MODELS_DIR`: the models folder (default `models`, as Scripts/fetch-models fills it;
///   only the models vigil ships, by their built-in checksums, are loaded)
/// - `DETECT_THREADS`: inference threads per model (default 1)
/// - `DETECT_PERSON_TILES`: person-detector tiles per axis besides the whole frame (default and
///   least 4: fewer finds fewer people, so fewer head regions are masked)
/// - `DETECT_FACE_MAX_WIDTH`: scale wider frames down for the face detector (default: none; at
///   least 1920, so frames up to 1080p are always searched at full resolution)
/// - `DETECT_SLOT_FILE`: the operator's object detectors (`SlotFile`; default: none)
/// - `DETECT_LOOKAHEAD_MS`: capture time of later frames a snapshot waits for (default and
///   least 1000: less would publish faces found a moment late)
///
/// A setting that is not a number, or below its floor, stops the worker at start (exit 64).
WorkerCommandLine.answerHelpOrVersion(worker: "vigil-detect", summary: "faces, persons and motion in every frame of frames.v1 → detections.v1 and redacted snapshots.v1", settings: [
    WorkerSetting("DETECT_MODELS_DIR", default: "models", "the models folder Scripts/fetch-models fills; only the models vigil ships load, by their built-in checksums"),
    WorkerSetting("DETECT_THREADS", default: "1", "inference threads per model"),
    WorkerSetting("DETECT_PERSON_TILES", default: "4", "person-detector tiles per axis besides the whole frame, at least 4 (fewer find fewer people, so fewer heads are masked)"),
    WorkerSetting("DETECT_FACE_MAX_WIDTH", default: "none (full resolution)", "scale wider frames down for the face detector, at least 1920"),
    WorkerSetting("DETECT_LOOKAHEAD_MS", default: "1000", "capture time of later frames a snapshot waits for, at least 1000 (less would publish faces found a moment late)"),
    WorkerSetting("DETECT_SLOT_FILE", default: "none", "the operator's object detectors (a slot file; object detectors only)"),
    CameraAdmins.workerSetting,
])
let environment = ProcessInfo.processInfo.environment
var settings = DetectSettings(modelsDirectory: environment["DETECT_MODELS_DIR"] ?? "models")
StageSettings(worker: "vigil-detect").reading { stage throws(StageSettings.Problem) in
    if let threads = try stage.integer("DETECT_THREADS", atLeast: 1) { settings.threads = Int(threads) }
    if let tiles = try stage.integer("DETECT_PERSON_TILES", atLeast: Int64(settings.personTiles), floor: "fewer tiles find fewer people (vtest.avi: 0 of 65 on the whole frame alone), so fewer heads are masked") {
        settings.personTiles = Int(tiles)
    }
    settings.faceMaximumWidth = try stage.integer("DETECT_FACE_MAX_WIDTH", atLeast: 1_920, floor: "frames up to 1080p are searched for faces at full resolution").map(Int.init)
    if let lookAhead = try stage.integer("DETECT_LOOKAHEAD_MS", atLeast: DetectSettings.minimumLookAheadMilliseconds, floor: "a snapshot waits that long for the frames after it, so a face found a moment late is masked too") {
        settings.lookAheadMilliseconds = lookAhead
    }
}
if let slotFile = environment["DETECT_SLOT_FILE"] {
    do {
        settings.slotModels = try SlotFile.load(slotFile)
        settings.slotDirectory = (slotFile as NSString).deletingLastPathComponent
    } catch {
        FileHandle.standardError.write(Data("vigil-detect: DETECT_SLOT_FILE: \(error)\n".utf8))
        exit(64)
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
