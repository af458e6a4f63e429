import SwiftProtobuf
import VigilSchema

/// A rule's alert policy with every field decided: the rule's own `alert_policy` where set,
/// else the defaults of its kind (docs/alerts.md lists them).
public struct ResolvedAlertPolicy: Sendable, Equatable {
    /// Revisions of one incident, within `confirmWithin`, before the alert opens; 1 opens at once.
    public var confirmRevisions: Int
    public var confirmWithin: Duration
    /// Nil: never escalates by itself.
    public var escalateAfter: Duration?

    public init(confirmRevisions: Int, confirmWithin: Duration, escalateAfter: Duration?) {
        self.confirmRevisions = max(1, confirmRevisions)
        self.confirmWithin = confirmWithin
        self.escalateAfter = escalateAfter
    }

    /// The defaults of a rule kind. Kinds whose condition match already debounces (a dwell, a
    /// crossing, a minimum duration) and the camera's own health alert at once; the noisier
    /// kinds (crowd counts, sudden motion, operator-supplied detectors) wait for a second
    /// revision within 30 s. A person down escalates soonest.
    public static func defaults(for kind: Vigil_V1_RuleKind) -> ResolvedAlertPolicy {
        switch kind {
        case .crowdDensity, .suddenMotion, .detectorClass:
            ResolvedAlertPolicy(confirmRevisions: 2, confirmWithin: .seconds(30), escalateAfter: .seconds(600))
        case .personDown:
            ResolvedAlertPolicy(confirmRevisions: 1, confirmWithin: .zero, escalateAfter: .seconds(120))
        case .cameraTamper, .cameraOffline, .redactionHealth:
            ResolvedAlertPolicy(confirmRevisions: 1, confirmWithin: .zero, escalateAfter: .seconds(300))
        default:
            ResolvedAlertPolicy(confirmRevisions: 1, confirmWithin: .zero, escalateAfter: .seconds(600))
        }
    }

    /// The rule's policy over its kind's defaults.
    public static func of(_ rule: Vigil_V1_Rule) -> ResolvedAlertPolicy {
        var policy = defaults(for: rule.kind)
        guard rule.hasAlertPolicy else { return policy }
        let declared = rule.alertPolicy
        if declared.confirmRevisions > 0 { policy.confirmRevisions = Int(declared.confirmRevisions) }
        if declared.hasConfirmWithin { policy.confirmWithin = .milliseconds(declared.confirmWithin.milliseconds) }
        if declared.hasEscalateAfter {
            let after = Duration.milliseconds(declared.escalateAfter.milliseconds)
            policy.escalateAfter = after > .zero ? after : nil
        }
        return policy
    }
}
