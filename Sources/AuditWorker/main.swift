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
///
/// A setting that cannot be used stops the worker at start (exit 64).
WorkerCommandLine.answerHelpOrVersion(worker: "vigil-audit", summary: "chains audit.events.v1 into audit.log.v1 and signs chain heads onto audit.heads.v1", settings: [
    WorkerSetting("AUDIT_SIGNING_KEY_FILE", default: "none (the log is chained, no head is signed)", "the Ed25519 key that signs chain heads (vigil audit keygen), by path"),
    WorkerSetting("AUDIT_HEAD_INTERVAL_S", default: "60", "how often a chain's head is signed while records arrive, at least 1"),
])
let environment = ProcessInfo.processInfo.environment
let logger = Logger(label: "vigil-audit")

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("vigil-audit: \(message)\n".utf8))
    exit(64)
}

let signingKey = environment["AUDIT_SIGNING_KEY_FILE"].map { file in
    do { return try SigningKeys.privateKey(file: file) } catch { fail("AUDIT_SIGNING_KEY_FILE: \(error)") }
}
let interval = StageSettings(worker: "vigil-audit").reading { stage throws(StageSettings.Problem) in
    try stage.integer("AUDIT_HEAD_INTERVAL_S", atLeast: 1) ?? 60
}
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
