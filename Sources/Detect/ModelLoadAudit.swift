import Foundation
import VigilSchema
import Vision
import WorkerRuntime

/// The audit events of a worker's model loads, one per model: its name, file, SHA-256 and the
/// classes it reports, so an auditor can tell which models analysed the video from when.
public enum ModelLoadAudit {
    public static func records(_ models: [(model: VerifiedModel, classes: [String])], worker: String, at time: Date = Date()) -> [StageOutput] {
        // One start of one replica: its events are distinct from every other start's.
        let start = UUID().uuidString.lowercased()
        return models.map { loaded in
            let name = loaded.model.description.name
            let event = AuditEvents.event(
                id: "model-loaded:\(worker):\(start):\(name)", kind: .modelLoaded, actor: worker, subject: "model:\(name)",
                detail: "loaded \(name) from \(loaded.model.path) (SHA-256 \(loaded.model.sha256), \(loaded.model.description.package)); classes: "
                    + loaded.classes.joined(separator: ", "),
                origin: worker, at: time
            )
            return AuditEvents.record(event, key: name)
        }
    }
}
