import Foundation
import SwiftProtobuf
import VigilSchema
import Vision
import WorkerRuntime

/// The audit events of a worker's model loads, one per model: its name, file, SHA-256 and the
/// classes it reports, so an auditor can tell which models analysed the video from when.
public enum ModelLoadAudit {
    public static func records(_ models: [(model: VerifiedModel, classes: [String])], worker: String, at time: Date = Date()) -> [OutgoingRecord] {
        // One start of one replica: its events are distinct from every other start's.
        let start = UUID().uuidString.lowercased()
        return models.map { loaded in
            let name = loaded.model.description.name
            var event = Vigil_V1_AuditEvent()
            event.eventID = "model-loaded:\(worker):\(start):\(name)"
            event.kind = .modelLoaded
            event.actor = worker
            event.subject = "model:\(name)"
            event.detail = "loaded \(name) from \(loaded.model.path) (SHA-256 \(loaded.model.sha256), \(loaded.model.description.package)); classes: "
                + loaded.classes.joined(separator: ", ")
            event.eventTime = Google_Protobuf_Timestamp(date: time)
            event.origin = worker
            return OutgoingRecord(topic: "audit.events.v1", key: Array(name.utf8), value: (try? event.serializedBytes()) ?? [], headers: [])
        }
    }
}
