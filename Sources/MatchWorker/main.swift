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
let environment = ProcessInfo.processInfo.environment

/// A whole number of milliseconds from the environment, or the default; the worker stops on a bad one.
func milliseconds(_ name: String, default value: Int, minimum: Int) -> Int {
    guard let text = environment[name] else { return value }
    guard let number = Int(text), number >= minimum else {
        FileHandle.standardError.write(Data("vigil-match: \(name) must be a whole number of milliseconds, \(minimum) or more, not \(text)\n".utf8))
        exit(2)
    }
    return number
}

let lateness = milliseconds("MATCH_ALLOWED_LATENESS_MS", default: 2_000, minimum: 0)
let silence = milliseconds("MATCH_SILENCE_MS", default: 10_000, minimum: 1_000)
let rules = RuleTable.make()
let cameras = CameraTable.forWorker("vigil-match")
try await Worker.run(
    stage: MatchStage(rules: RuleBook(rules: rules, cameras: cameras), lateness: .milliseconds(lateness), silence: .milliseconds(silence)),
    name: "vigil-match", tables: [rules, cameras]
)
