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
let environment = ProcessInfo.processInfo.environment
let lateness = environment["MATCH_ALLOWED_LATENESS_MS"].map { Int($0) }
guard let lateness = lateness ?? 2_000, lateness >= 0 else {
    FileHandle.standardError.write(Data("vigil-match: MATCH_ALLOWED_LATENESS_MS must be a whole number of milliseconds, 0 or more\n".utf8))
    exit(2)
}
let rules = RuleTable.make()
let cameras = CameraTable.make()
try await Worker.run(
    stage: MatchStage(rules: RuleBook(rules: rules, cameras: cameras), allowedLateness: .milliseconds(lateness)),
    name: "vigil-match", tables: [rules, cameras]
)
