import Crypto
import Foundation
import VigilSchema

/// Webhook requests as Standard Webhooks 1.0 defines them: `webhook-id` (the receiver's
/// idempotency key: alert id and revision), `webhook-timestamp` (Unix seconds) and
/// `webhook-signature`, one `v1,<base64 HMAC-SHA256 of "id.timestamp.body">` per secret in use,
/// so a receiver holding either the old or the new secret verifies during a rotation.
public enum StandardWebhooks {
    /// A signing secret: `whsec_` and the base64 of its key bytes, as the standard writes it.
    public struct Secret: Sendable {
        let key: [UInt8]

        /// Nil when the text is not `whsec_<base64>` of at least 24 bytes (the standard's minimum).
        public init?(_ text: String) {
            let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
            guard trimmed.hasPrefix("whsec_"), let bytes = Data(base64Encoded: String(trimmed.dropFirst(6))), bytes.count >= 24 else { return nil }
            key = Array(bytes)
        }
    }

    /// The headers of one request: `body` signed with every secret given (newest first).
    public static func headers(id: String, timestamp: Date, body: Data, secrets: [Secret]) -> [(name: String, value: String)] {
        let seconds = String(Int64(timestamp.timeIntervalSince1970.rounded(.down)))
        let content = Data("\(id).\(seconds).".utf8) + body
        let signatures = secrets.map { secret in
            "v1," + Data(HMAC<SHA256>.authenticationCode(for: content, using: SymmetricKey(data: secret.key))).base64EncodedString()
        }
        return [("webhook-id", id), ("webhook-timestamp", seconds), ("webhook-signature", signatures.joined(separator: " "))]
    }

    /// The request body: a CloudEvents 1.0 structured-mode JSON event whose data is a small
    /// summary of the alert — its evidence by reference, never pixels.
    public static func body(for alert: Vigil_V1_Alert, type: AlertChange) -> Data {
        var data: [String: Any] = [
            "alert_id": alert.alertID,
            "revision": alert.revision,
            "state": name(alert.state),
            "camera_id": alert.incident.cameraID,
            "rule_id": alert.incident.ruleID,
            "severity": name(alert.severity),
            "summary": alert.incident.summary,
            "change": alert.change,
            "changed_by": alert.changedBy,
            "incident_ids": alert.incidentIds,
            "created_time": CloudEvents.timestamp(alert.createdTime.milliseconds),
        ]
        if !alert.silencedBy.isEmpty { data["silenced_by"] = alert.silencedBy }
        if alert.hasEvidence {
            let evidence = alert.evidence
            data["evidence"] = [
                "topic": evidence.snapshot.topic, "partition": evidence.snapshot.partition, "offset": evidence.snapshot.offset,
                "snapshot_id": evidence.snapshotID, "capture_time": CloudEvents.timestamp(evidence.captureTime.milliseconds),
                "sha256": evidence.jpegSha256Hex,
            ] as [String: Any]
        }
        let event: [String: Any] = [
            "specversion": "1.0", "id": "\(alert.alertID)/\(alert.revision)", "source": CloudEvents.source, "type": type.eventType,
            "time": CloudEvents.timestamp(alert.updatedTime.milliseconds), "subject": alert.incident.cameraID,
            "datacontenttype": "application/json", "data": data,
        ]
        // Sorted keys: the same alert revision is always the same bytes (and the same signature).
        return (try? JSONSerialization.data(withJSONObject: event, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
    }

    /// The schema's enum value names, lowercased without their prefix: `false_positive`, `major`.
    static func name(_ state: Vigil_V1_AlertState) -> String {
        switch state {
        case .open: "open"
        case .acknowledged: "acknowledged"
        case .escalated: "escalated"
        case .resolved: "resolved"
        case .falsePositive: "false_positive"
        case .unspecified, .UNRECOGNIZED: "unspecified"
        }
    }

    static func name(_ severity: Vigil_V1_Severity) -> String {
        switch severity {
        case .info: "info"
        case .warning: "warning"
        case .major: "major"
        case .critical: "critical"
        case .unspecified, .UNRECOGNIZED: "unspecified"
        }
    }
}
