import Cameras
import Foundation
import Ingest
import Hummingbird
import Logging
import WorkerRuntime

/// vigil-ingest: owns its share of `cameras.v1` and streams each owned camera into
/// `video.packets.v1`, reporting health on `camera.health.v1`. Besides the worker settings
/// (WORKER_*, KAFKA_*), it reads `INGEST_READ_TIMEOUT_MS` (default 5000: a stream silent
/// this long, or whose timestamps stand still this long, is stalled) and `INGEST_SECRETS_DIR`
/// (one file per camera `credentials_ref`, holding `user:password`).
/// A setting that is not a number stops the worker at start (exit 64).
WorkerCommandLine.answerHelpOrVersion(worker: "vigil-ingest", summary: "streams its share of the cameras in cameras.v1 into video.packets.v1, with health on camera.health.v1", settings: [
    WorkerSetting("INGEST_READ_TIMEOUT_MS", default: "5000", "a stream silent this long, or whose timestamps stand still this long, is stalled"),
    WorkerSetting("INGEST_SECRETS_DIR", default: "none", "one file per camera credentials_ref, holding user:password"),
    CameraAdmins.workerSetting,
])
var settings = IngestSettings()
StageSettings(worker: "vigil-ingest").reading { stage throws(StageSettings.Problem) in
    if let timeout = try stage.integer("INGEST_READ_TIMEOUT_MS", atLeast: 1) { settings.readTimeout = .milliseconds(timeout) }
}
settings.secretsDirectory = ProcessInfo.processInfo.environment["INGEST_SECRETS_DIR"]
let admins = CameraAdmins.forWorker("vigil-ingest")
let source = IngestSource(settings: settings, logger: Logger(label: "vigil-ingest"))
try await Worker.run(source: source, name: "vigil-ingest", owning: { CameraTable.make(admins: admins) }) { router in
    // The cameras this replica streams, one id per line.
    router.get("cameras") { _, _ in source.running.sorted.map { $0 + "\n" }.joined() }
}
