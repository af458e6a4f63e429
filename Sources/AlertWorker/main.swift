import Alert
import Foundation
import Rules
import VigilSchema
import Webhooks
import WorkerRuntime

/// vigil-alert: turns `incidents.v1` into `alerts.v1` (CloudEvents headers), takes operators'
/// actions from `alert.actions.v1` and answers each on `alert.action.outcomes.v1`, with the
/// alert policies of `rules.v1` and the maintenance windows of `silences.v1`. Its per-camera state lives in `vigil-alert.state.changelog`.
/// Besides the worker settings (WORKER_*, KAFKA_*), it reads:
///
/// - `ALERT_ALLOWED_LATENESS_MS`: how far an action's or incident's time may lie behind the
///   camera's newest and still be taken (default 600000: operators' clocks and frames' capture
///   times disagree; a later record is dead-lettered with the reason).
/// - `WEBHOOK_ATTEMPTS`, `WEBHOOK_RETRY_BASE_MS`, `WEBHOOK_RETRY_CAP_MS`, `WEBHOOK_TIMEOUT_MS`:
///   how webhook delivery retries (default 8 attempts, 1 s doubling to at most 300 s, less up
///   to half at random) and how long one attempt may take (default 10 s). After the last
///   attempt a revision goes to `webhook.deadletters.v1`.
///
/// A setting that is not a number, or below its floor, stops the worker at start (exit 64).
WorkerCommandLine.answerHelpOrVersion(worker: "vigil-alert", summary: "incidents.v1 and alert.actions.v1 → alerts.v1 (confirmation, lifecycle, escalation), alert.action.outcomes.v1", settings: [
    WorkerSetting("ALERT_ALLOWED_LATENESS_MS", default: "600000", "how far behind the camera's newest record an incident or action may arrive and still be taken, at least 1000"),
    WorkerSetting("WEBHOOK_ATTEMPTS", default: "8", "attempts per alert revision and webhook endpoint before it is dead-lettered, at least 1"),
    WorkerSetting("WEBHOOK_RETRY_BASE_MS", default: "1000", "the wait after a webhook's first failed attempt, doubled after each, at least 10"),
    WorkerSetting("WEBHOOK_RETRY_CAP_MS", default: "300000", "the longest wait between attempts (and the longest Retry-After honoured), at least 10"),
    WorkerSetting("WEBHOOK_TIMEOUT_MS", default: "10000", "how long one webhook attempt may take, connecting included, at least 100"),
])
let (lateness, webhooks) = StageSettings(worker: "vigil-alert").reading { stage throws(StageSettings.Problem) in
    let lateness = try stage.integer("ALERT_ALLOWED_LATENESS_MS", atLeast: 1_000) ?? 600_000
    let schedule = RetrySchedule(
        attempts: Int(try stage.integer("WEBHOOK_ATTEMPTS", atLeast: 1) ?? 8),
        base: .milliseconds(try stage.integer("WEBHOOK_RETRY_BASE_MS", atLeast: 10) ?? 1_000),
        cap: .milliseconds(try stage.integer("WEBHOOK_RETRY_CAP_MS", atLeast: 10) ?? 300_000)
    )
    return (lateness, WebhookSettings(schedule: schedule, timeout: .milliseconds(try stage.integer("WEBHOOK_TIMEOUT_MS", atLeast: 100) ?? 10_000)))
}
let rules = RuleTable.make()
let silences = Silences.table()
let endpoints = WebhookEndpoints.table()
let host = ProcessInfo.processInfo.hostName
try await Worker.run(
    stage: AlertStage(
        allowedLateness: .milliseconds(lateness), origin: "vigil-alert@\(host)",
        // The rule as it is now: a policy changed since the incident opened applies from here on.
        policy: { incident in rules.current(incident.ruleID).map(ResolvedAlertPolicy.of) ?? ResolvedAlertPolicy.defaults(for: incident.kind) },
        silence: { incident, eventTime in Silences.covering(incident, at: eventTime, in: silences) },
        geometry: { incident in rules.current(incident.ruleID)?.geometry }
    ),
    name: "vigil-alert", tables: [rules, silences, endpoints],
    companions: { configuration, logger in
        [WebhookDispatcher(endpoints: endpoints, cluster: configuration.kafka, workerGroup: configuration.groupID, settings: webhooks, logger: logger)]
    }
)
