import Cameras
import Foundation
import Match
import Rules
import WorkerRuntime

/// vigil-match: the rule engine. Reads `detections.v1` and `camera.health.v1`, the rules of
/// `rules.v1` and the camera labels of `cameras.v1`; publishes `incidents.v1`. Its per-camera
/// state lives in `vigil-match.state.changelog`. Besides the worker settings (WORKER_*,
/// KAFKA_*), it reads:
///
/// - `MATCH_ALLOWED_LATENESS_MS`: how far behind a camera's newest record another may arrive
///   and still be judged in order (default 2000). Incidents wait that long for their records'
///   turn; later records are dead-lettered and counted (`vigil_records_late_total`).
/// - `MATCH_SILENCE_MS`: caught-up time without a record after which a camera is taken to have
///   stopped, its incidents closing as their deadlines pass (default 10000; longer than decode
///   or detect stall for, or their frames would come too late).
///
/// A setting that is not a number, or below its floor, stops the worker at start (exit 64).
WorkerCommandLine.answerHelpOrVersion(worker: "vigil-match", summary: "the rule engine: detections.v1 and camera.health.v1, judged by rules.v1 → incidents.v1", settings: [
    WorkerSetting("MATCH_ALLOWED_LATENESS_MS", default: "2000", "how far behind a camera's newest record another may arrive and still be judged in order"),
    WorkerSetting("MATCH_SILENCE_MS", default: "10000", "caught-up time without a record after which a camera is taken to have stopped, at least 1000"),
    CameraAdmins.workerSetting,
])
let (lateness, silence) = StageSettings(worker: "vigil-match").reading { stage throws(StageSettings.Problem) in
    (try stage.integer("MATCH_ALLOWED_LATENESS_MS", atLeast: 0) ?? 2_000, try stage.integer("MATCH_SILENCE_MS", atLeast: 1_000) ?? 10_000)
}
let rules = RuleTable.make()
let cameras = CameraTable.forWorker("vigil-match")
try await Worker.run(
    stage: MatchStage(rules: RuleBook(rules: rules, cameras: cameras), lateness: .milliseconds(lateness), silence: .milliseconds(silence)),
    name: "vigil-match", tables: [rules, cameras]
)
