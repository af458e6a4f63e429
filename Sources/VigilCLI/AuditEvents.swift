import ArgumentParser
import CommandLineSupport
import Foundation
import Kafka
import Logging
import SwiftProtobuf
import VigilSchema
import WorkerRuntime

extension AuditEvents {
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
