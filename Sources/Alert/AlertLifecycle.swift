import VigilSchema

/// The operator workflow: `OPEN` → `ACKNOWLEDGED` → (`ESCALATED`) → `RESOLVED` or
/// `FALSE_POSITIVE`, and which action may move an alert from which state.
enum AlertLifecycle {
    static func isFinal(_ state: Vigil_V1_AlertState) -> Bool {
        state == .resolved || state == .falsePositive
    }

    /// The state `action` moves an alert in `state` to, or why it may not.
    static func next(from state: Vigil_V1_AlertState, by action: Vigil_V1_AlertActionKind) -> Result<Vigil_V1_AlertState, Refusal> {
        if isFinal(state) {
            return .failure(Refusal("the alert is already \(words(state)); nothing can change it any more"))
        }
        switch action {
        case .acknowledge:
            return state == .acknowledged ? .failure(Refusal("the alert is already acknowledged")) : .success(.acknowledged)
        case .assign:
            return .success(state)
        case .escalate:
            return state == .escalated ? .failure(Refusal("the alert is already escalated")) : .success(.escalated)
        case .resolve:
            return .success(.resolved)
        case .falsePositive:
            return .success(.falsePositive)
        case .unspecified, .UNRECOGNIZED:
            return .failure(Refusal("the action names no known kind (acknowledge, assign, escalate, resolve, false positive)"))
        }
    }

    /// How people say a state: "acknowledged", "false positive".
    static func words(_ state: Vigil_V1_AlertState) -> String {
        switch state {
        case .open: "open"
        case .acknowledged: "acknowledged"
        case .escalated: "escalated"
        case .resolved: "resolved"
        case .falsePositive: "marked false positive"
        case .unspecified, .UNRECOGNIZED: "in no known state"
        }
    }

    /// The past tense of an action, for an alert's `change`: "acknowledged by op-1".
    static func words(_ action: Vigil_V1_AlertActionKind) -> String {
        switch action {
        case .acknowledge: "acknowledged"
        case .assign: "assigned"
        case .escalate: "escalated"
        case .resolve: "resolved"
        case .falsePositive: "marked false positive"
        case .unspecified, .UNRECOGNIZED: "changed"
        }
    }

    struct Refusal: Error, Equatable {
        var reason: String
        init(_ reason: String) { self.reason = reason }
    }
}
