import Foundation
import VigilSchema
import WorkerRuntime

/// What a revision of an alert records, as the CloudEvents `type` names it
/// (`vigil.alert.v1.opened`, `….acknowledged`, …): subscribers filter on it without decoding.
public enum AlertChange: String, Sendable, CaseIterable {
    /// `silenced`: opened under a silence, recorded and not delivered.
    /// `evidence`: a redacted snapshot attached (by reference).
    case opened, silenced, updated, linked, evidence, acknowledged, assigned, escalated, resolved
    case falsePositive = "false_positive"

    init(_ action: Vigil_V1_AlertActionKind) {
        switch action {
        case .acknowledge: self = .acknowledged
        case .assign: self = .assigned
        case .escalate: self = .escalated
        case .resolve: self = .resolved
        case .falsePositive: self = .falsePositive
        case .unspecified, .UNRECOGNIZED: self = .updated
        }
    }

    public var eventType: String { "vigil.alert.v1.\(rawValue)" }
}

/// CloudEvents 1.0 in the Kafka protocol binding's binary mode: the record's value is the
/// event's data (the `Alert` protobuf) and its attributes travel as `ce_` headers.
public enum CloudEvents {
    public static let source = "/vigil/vigil-alert"
    public static let contentType = "application/protobuf"

    static func headers(for alert: Vigil_V1_Alert, type: AlertChange) -> [RecordHeader] {
        [
            RecordHeader(key: "ce_specversion", value: "1.0"),
            // Unique per (source, id) as the spec asks, and the subscribers' deduplication key.
            RecordHeader(key: "ce_id", value: "\(alert.alertID)/\(alert.revision)"),
            RecordHeader(key: "ce_source", value: source),
            RecordHeader(key: "ce_type", value: type.eventType),
            RecordHeader(key: "ce_time", value: timestamp(alert.updatedTime.milliseconds)),
            RecordHeader(key: "ce_subject", value: alert.incident.cameraID),
            // The partitioning extension: the record key, the camera.
            RecordHeader(key: "ce_partitionkey", value: alert.incident.cameraID),
            RecordHeader(key: "content-type", value: contentType),
        ]
    }

    /// RFC 3339 in UTC with milliseconds, as CloudEvents' `time` takes it. The milliseconds are
    /// written from the integer, not through a floating-point date, which can print one less.
    static func timestamp(_ milliseconds: Int64) -> String {
        let seconds = milliseconds >= 0 ? milliseconds / 1_000 : (milliseconds - 999) / 1_000
        let fraction = milliseconds - seconds * 1_000
        let whole = Date(timeIntervalSince1970: Double(seconds)).formatted(.iso8601.year().month().day().time(includingFractionalSeconds: false))
        return whole + "." + String(fraction + 1_000).dropFirst() + "Z"
    }
}
