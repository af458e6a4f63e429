import Foundation
import SwiftProtobuf
import Rules
import VigilSchema
import WorkerRuntime

/// The rules vigil-match applies to a camera at an event time: each rule's version in force
/// then (`rules.v1` looked up by time, so a replay applies the same versions), if enabled and
/// watching the camera as `cameras.v1` described it then (its labels, for label selectors).
public final class RuleBook: @unchecked Sendable {
    /// One rule's versions, oldest first (a nil rule is a deletion), each with its schedule
    /// made ready (nil: always active).
    private struct History {
        var id: String
        var versions: [(effective: Int64, rule: Vigil_V1_Rule?, schedule: WeeklySchedule?)]
    }

    private let rules: Table<Vigil_V1_Rule>
    private let cameras: Table<Vigil_V1_CameraConfig>?
    private let lock = NSLock()
    /// Every rule's versions, by id; nil once the table changed. A copy of the table's own,
    /// because every frame looks every rule up: a lookup here is a short loop over one array.
    private var histories: [History]?  // guarded by `lock`

    /// - Parameter cameras: the camera table, for rules that select cameras by label; without
    ///   it only rules naming the camera's id apply.
    public init(rules: Table<Vigil_V1_Rule>, cameras: Table<Vigil_V1_CameraConfig>?) {
        self.rules = rules
        self.cameras = cameras
        rules.onChange { [weak self] _ in
            guard let self else { return }
            lock.withLock { self.histories = nil }
        }
    }

    /// The rules watching `cameraID` at `milliseconds` (event time), sorted by id. A time
    /// before a rule's oldest kept version finds no version of it.
    public func rules(for cameraID: String, atMilliseconds milliseconds: Int64) -> [Vigil_V1_Rule] {
        let known = lock.withLock {
            if let histories { return histories }
            let built = rules.histories.sorted { $0.key < $1.key }.map { id, history in
                History(id: id, versions: history.versions.map { version in
                    (version.effectiveFromMilliseconds, version.value, version.value.flatMap { $0.hasSchedule ? WeeklySchedule($0.schedule) : nil })
                })
            }
            histories = built
            return built
        }
        var labels: [String: String]?
        var found: [Vigil_V1_Rule] = []
        for history in known {
            guard let version = history.versions.last(where: { $0.effective <= milliseconds }), let rule = version.rule, rule.enabled else { continue }
            // Outside its schedule a rule is not in force: its open incident closes as if removed.
            if let schedule = version.schedule, !schedule.isActive(atMilliseconds: milliseconds) { continue }
            if rule.cameraIds.contains(cameraID) {
                found.append(rule)
            } else if !rule.cameraSelector.isEmpty {
                if labels == nil { labels = cameraLabels(cameraID, atMilliseconds: milliseconds) }
                if rule.watches(cameraID: cameraID, labels: labels ?? [:]) { found.append(rule) }
            }
        }
        // Redaction health is not a rule anyone can remove: every camera cameras.v1 holds is
        // judged by it, whatever rules.v1 says (rules there add to it, never replace it).
        if camera(cameraID, atMilliseconds: milliseconds) != nil { found.append(Self.builtInRedactionHealth) }
        return found
    }

    /// The redaction-health check every camera gets: rule id `vigil-redaction-health`, the
    /// `redaction_health` defaults (condition held 10 s; snapshot gap from the camera's rate),
    /// closed 30 s after it stops holding, severity critical. The `vigil-` prefix is reserved: rules files cannot use it.
    public static let builtInRedactionHealth: Vigil_V1_Rule = {
        var rule = Vigil_V1_Rule()
        rule.ruleID = "vigil-redaction-health"
        rule.version = 1
        rule.enabled = true
        rule.severity = .critical
        rule.kind = .redactionHealth
        rule.author = "vigil (built in)"
        var parameters = Vigil_V1_RedactionHealthParameters()
        parameters.sustainedFor = .init(seconds: 10)
        rule.redactionHealth = parameters
        // Longer than ingest's health interval (10 s): a failure seen on health records alone
        // holds from one record to the next.
        rule.closeAfter = .init(seconds: 30)
        return rule
    }()

    /// The camera as `cameras.v1` described it at `milliseconds`; nil when unknown then.
    public func camera(_ cameraID: String, atMilliseconds milliseconds: Int64) -> Vigil_V1_CameraConfig? {
        guard let cameras, case .value(let camera) = cameras.value(cameraID, asOf: milliseconds) else { return nil }
        return camera
    }

    private func cameraLabels(_ cameraID: String, atMilliseconds milliseconds: Int64) -> [String: String] {
        camera(cameraID, atMilliseconds: milliseconds)?.labels ?? [:]
    }
}
