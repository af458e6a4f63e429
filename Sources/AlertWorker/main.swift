import Alert
import Foundation
import Rules
import VigilSchema
import WorkerRuntime

/// vigil-alert: turns `incidents.v1` into `alerts.v1` (CloudEvents headers), takes operators'
/// actions from `alert.actions.v1` and answers each on `alert.action.outcomes.v1`, with the
/// alert policies of `rules.v1` and the maintenance windows of `silences.v1`. Its per-camera state lives in `vigil-alert.state.changelog`.
/// Besides the worker settings (WORKER_*, KAFKA_*), it reads:
///
/// - `ALERT_ALLOWED_LATENESS_MS`: how far an action's or incident's time may lie behind the
///   camera's newest and still be taken (default 600000: operators' clocks and frames' capture
///   times disagree; a later record is dead-lettered with the reason).
///
/// A setting that is not a number, or below its floor, stops the worker at start (exit 64).
WorkerCommandLine.answerHelpOrVersion(worker: "vigil-alert", summary: "incidents.v1 and alert.actions.v1 → alerts.v1 (confirmation, lifecycle, escalation), alert.action.outcomes.v1", settings: [
    WorkerSetting("ALERT_ALLOWED_LATENESS_MS", default: "600000", "how far behind the camera's newest record an incident or action may arrive and still be taken, at least 1000"),
])
let lateness = StageSettings(worker: "vigil-alert").reading { stage throws(StageSettings.Problem) in
    try stage.integer("ALERT_ALLOWED_LATENESS_MS", atLeast: 1_000) ?? 600_000
}
let rules = RuleTable.make()
let silences = Silences.table()
let host = ProcessInfo.processInfo.hostName
try await Worker.run(
    stage: AlertStage(
        allowedLateness: .milliseconds(lateness), origin: "vigil-alert@\(host)",
        // The rule as it is now: a policy changed since the incident opened applies from here on.
        policy: { incident in rules.current(incident.ruleID).map(ResolvedAlertPolicy.of) ?? ResolvedAlertPolicy.defaults(for: incident.kind) },
        silence: { incident, eventTime in Silences.covering(incident, at: eventTime, in: silences) }
    ),
    name: "vigil-alert", tables: [rules, silences]
)
