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

    /// Why a request does not verify.
    public enum Rejection: Error, Equatable, CustomStringConvertible {
        case missingHeader(String)
        /// Its timestamp lies further than the tolerance from now: a replay, or a clock to fix.
        case stale(seconds: Int64)
        case badSignature

        public var description: String {
            switch self {
            case .missingHeader(let name): "no \(name) header"
            case .stale(let seconds): "timestamp \(seconds) s from now, beyond the tolerance (a replayed or delayed request)"
            case .badSignature: "no signature matches the secret"
            }
        }
    }

    /// Checks a request as a receiver does: a `v1` signature made with `secret` over
    /// "id.timestamp.body", and a timestamp within `tolerance` of `now` (the standard's default
    /// is five minutes). Compared in constant time.
    public static func verify(
        id: String?, timestamp: String?, signature: String?, body: Data, secret: Secret, now: Date = Date(), tolerance: Duration = .seconds(300)
    ) throws(Rejection) {
        guard let id else { throw .missingHeader("webhook-id") }
        guard let timestamp, let seconds = Int64(timestamp) else { throw .missingHeader("webhook-timestamp") }
        guard let signature else { throw .missingHeader("webhook-signature") }
        let skew = seconds - Int64(now.timeIntervalSince1970.rounded(.down))
        guard abs(skew) <= tolerance.components.seconds else { throw .stale(seconds: skew) }
        let content = Data("\(id).\(timestamp).".utf8) + body
        let key = SymmetricKey(data: secret.key)
        let matches = signature.split(separator: " ").contains { entry in
            guard entry.hasPrefix("v1,"), let code = Data(base64Encoded: String(entry.dropFirst(3))) else { return false }
            return HMAC<SHA256>.isValidAuthenticationCode(code, authenticating: content, using: key)
        }
        guard matches else { throw .badSignature }
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
            ].merging(geometry(of: evidence)) { $1 } as [String: Any]
        }
        let event: [String: Any] = [
            "specversion": "1.0", "id": "\(alert.alertID)/\(alert.revision)", "source": CloudEvents.source, "type": type.eventType,
            "time": CloudEvents.timestamp(alert.updatedTime.milliseconds), "subject": alert.incident.cameraID,
            "datacontenttype": "application/json", "data": data,
        ]
        // Sorted keys: the same alert revision is always the same bytes (and the same signature).
        return (try? JSONSerialization.data(withJSONObject: event, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
    }

    /// The rule's zone (`[[x, y], …]`) or line (`{"start": [x, y], "end": [x, y]}`) in frame fractions.
    static func geometry(of evidence: Vigil_V1_AlertEvidence) -> [String: Any] {
        // Four decimals: the floats written as doubles would carry digits nobody declared.
        func point(_ point: Vigil_V1_Point) -> [Double] { [point.x, point.y].map { (Double($0) * 10_000).rounded() / 10_000 } }
        switch evidence.ruleGeometry {
        case .zone(let zone): return ["zone": zone.vertices.map(point)]
        case .line(let line): return ["line": ["start": point(line.start), "end": point(line.end)]]
        case nil: return [:]
        }
    }

    /// The schema's enum value names, lowercased without their prefix: `false_positive`, `major`.
    public static func name(_ state: Vigil_V1_AlertState) -> String {
        switch state {
        case .open: "open"
        case .acknowledged: "acknowledged"
        case .escalated: "escalated"
        case .resolved: "resolved"
        case .falsePositive: "false_positive"
        case .unspecified, .UNRECOGNIZED: "unspecified"
        }
    }

    public static func name(_ severity: Vigil_V1_Severity) -> String {
        switch severity {
        case .info: "info"
        case .warning: "warning"
        case .major: "major"
        case .critical: "critical"
        case .unspecified, .UNRECOGNIZED: "unspecified"
        }
    }
}
