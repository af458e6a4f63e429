import Foundation
import Rules
import VigilSchema
import WorkerRuntime

/// The rules vigil-match applies to a camera at an event time: each rule's version in force
/// then (`rules.v1` looked up by time, so a replay applies the same versions), if enabled and
/// watching the camera as `cameras.v1` described it then (its labels, for label selectors).
public final class RuleBook: @unchecked Sendable {
    private let rules: Table<Vigil_V1_Rule>
    private let cameras: Table<Vigil_V1_CameraConfig>?
    private let lock = NSLock()
    /// Every rule id the table holds a version of; nil once the table changed.
    private var ruleIDs: [String]?  // guarded by `lock`

    /// - Parameter cameras: the camera table, for rules that select cameras by label; without
    ///   it only rules naming the camera's id apply.
    public init(rules: Table<Vigil_V1_Rule>, cameras: Table<Vigil_V1_CameraConfig>?) {
        self.rules = rules
        self.cameras = cameras
        rules.onChange { [weak self] _ in
            guard let self else { return }
            lock.withLock { self.ruleIDs = nil }
        }
    }

    /// The rules watching `cameraID` at `milliseconds` (event time), sorted by id.
    public func rules(for cameraID: String, atMilliseconds milliseconds: Int64) -> [Vigil_V1_Rule] {
        let ids = lock.withLock {
            if let ruleIDs { return ruleIDs }
            let ids = rules.keysWithHistory
            ruleIDs = ids
            return ids
        }
        let labels = cameraLabels(cameraID, atMilliseconds: milliseconds)
        return ids.compactMap { id in
            guard case .value(let rule) = rules.value(id, asOf: milliseconds), rule.enabled,
                  rule.watches(cameraID: cameraID, labels: labels) else { return nil }
            return rule
        }
    }

    private func cameraLabels(_ cameraID: String, atMilliseconds milliseconds: Int64) -> [String: String] {
        guard let cameras else { return [:] }
        if case .value(let camera) = cameras.value(cameraID, asOf: milliseconds) { return camera.labels }
        return [:]
    }
}
