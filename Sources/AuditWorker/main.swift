import Audit
import SigningKeys
import Foundation
import Kafka
import Logging
import SwiftProtobuf
import VigilSchema
import WorkerRuntime

/// vigil-audit: the audit log's sequencer. Chains the events of `audit.events.v1` into
/// `audit.log.v1` (partition p into partition p) and signs chain heads onto `audit.heads.v1`.
/// Besides the worker settings (WORKER_*, KAFKA_*), it reads:
///
/// - `AUDIT_SIGNING_KEY_FILE`: the Ed25519 key that signs heads (`vigil audit keygen`), by
///   reference: its path, never its value. Without it the log is chained but no head is signed.
/// - `AUDIT_HEAD_INTERVAL_S`: how often a chain's head is signed while records arrive (60).
let environment = ProcessInfo.processInfo.environment
let logger = Logger(label: "vigil-audit")

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("vigil-audit: \(message)\n".utf8))
    exit(64)
}

let signingKey = environment["AUDIT_SIGNING_KEY_FILE"].map { file in
    do { return try SigningKeys.privateKey(file: file) } catch { fail("AUDIT_SIGNING_KEY_FILE: \(error)") }
}
let interval = environment["AUDIT_HEAD_INTERVAL_S"].map { text in
    guard let seconds = Int(text), seconds >= 1 else { fail("AUDIT_HEAD_INTERVAL_S must be a whole number of seconds, 1 or more, not \(text)") }
    return seconds
} ?? 60
let configuration: WorkerConfiguration
do {
    configuration = try await WorkerConfiguration.load(defaultName: "vigil-audit", file: nil)
} catch {
    fail("\(error)")
}
let cluster = configuration.kafka
let sequencer = AuditSequencer(
    readTail: { partition in
        let records = try await KafkaTableReader.readPartitions(
            cluster: cluster, topic: AuditSequencer.logTopic, partitions: [partition], newest: 1, logger: logger
        )
        return try records.last.map { try Vigil_V1_AuditRecord(serializedBytes: $0.value) }
    },
    signingKey: signingKey, headInterval: .seconds(interval), logger: logger
)
try await Worker.run(stage: sequencer, name: "vigil-audit")
