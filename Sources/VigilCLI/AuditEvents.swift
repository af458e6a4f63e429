import ArgumentParser
import Foundation
import Kafka
import Logging
import SwiftProtobuf
import VigilSchema

/// Audit events a command writes before (or instead of) acting: acknowledged by the cluster,
/// each keyed by its camera where there is one.
enum AuditEvents {
    static let topic = "audit.events.v1"

    /// An event with the fields every command sets.
    static func event(
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

    /// Sends `events` and waits for the cluster to acknowledge every one; when it cannot, says
    /// `consequence` (what was therefore not done) and exits 1.
    static func send(_ events: [Vigil_V1_AuditEvent], cluster: KafkaConfiguration, logger: Logger, consequence: String) async throws {
        guard !events.isEmpty else { return }
        let producer = try KafkaProducer(configuration: KafkaProducerConfiguration(cluster: cluster), logger: logger)
        do {
            try await producer.send(all: events.map { event in
                KafkaProducerMessage(topic: topic, key: event.cameraID.isEmpty ? nil : Array(event.cameraID.utf8), value: try event.serializedBytes())
            })
            await producer.close()
        } catch {
            await producer.close()
            writeError("vigil: cannot write audit events to \(topic) (\(error)); \(consequence)")
            throw ExitCode.failure
        }
    }
}
