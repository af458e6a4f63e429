import Foundation
import SwiftProtobuf
import VigilSchema

/// Audit events as workers and tools write them to `audit.events.v1`: every field they set,
/// and the record keyed by the subject's id, so one subject's events stay in order in one chain.
public enum AuditEvents {
    public static let topic = "audit.events.v1"

    public static func event(
        id: String, kind: Vigil_V1_AuditEventKind, actor: String, subject: String, cameraID: String = "", detail: String, origin: String,
        approvers: [String] = [], at time: Date = Date()
    ) -> Vigil_V1_AuditEvent {
        var event = Vigil_V1_AuditEvent()
        event.eventID = id
        event.kind = kind
        event.actor = actor
        event.subject = subject
        event.cameraID = cameraID
        event.detail = detail
        event.eventTime = Google_Protobuf_Timestamp(date: time)
        event.origin = origin
        event.approvers = approvers
        return event
    }

    /// The record carrying `event`, keyed by `key` (the subject's id: a camera, a model, a chain).
    public static func record(_ event: Vigil_V1_AuditEvent, key: String) -> StageOutput {
        // An AuditEvent always serializes: it holds only strings, enums and a timestamp.
        StageOutput(topic: topic, key: Array(key.utf8), value: (try? event.serializedBytes()) ?? [], headers: [])
    }
}
