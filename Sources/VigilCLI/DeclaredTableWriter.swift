import ArgumentParser
import CommandLineSupport
import Foundation
import Kafka
import Logging
import SwiftProtobuf
import VigilSchema
import WorkerRuntime

/// The options of `vigil cameras apply` and `vigil rules apply`.
struct DeclaredApplyOptions: ParsableArguments {
    @Flag(help: "Check and show the changes; publish nothing.")
    var dryRun = false

    @Flag(help: "Remove what the cluster holds and the files do not declare (a tombstone each).")
    var deleteMissing = false

    @Option(help: "Operator account recorded as the author of the change (default: $USER, else the login name).")
    var actor = ProcessInfo.processInfo.environment["USER"] ?? NSUserName()

    /// When new versions take effect: a second after now. Workers judge a record by the version
    /// in force at its capture time, so a version must reach every replica before records
    /// captured after its effective time are judged; a second covers the table's propagation
    /// (a fraction of a second on the dev cluster) with room to spare.
    var effectiveMilliseconds: Int64 {
        Int64(Date().timeIntervalSince1970 * 1_000) + 1_000
    }

    func validate() throws {
        guard !actor.isEmpty else { throw ValidationError("--actor must name the operator account making the change: every change names its author") }
    }
}

/// What `vigil cameras apply` and `vigil rules apply` share: reading the table's current
/// values, printing the plan, and publishing it — the audit events first, then the records.
struct DeclaredTableWriter<Value: Sendable & Equatable> {
    let topic: String
    let kind: DeclaredValueKind<Value>
    /// The command, for audit events and messages: "vigil rules apply".
    let command: String
    let serialize: (Value) throws -> [UInt8]
    let auditKind: Vigil_V1_AuditEventKind
    /// The operator account making the change.
    let actor: String
    /// Sets what an audit event says beyond the common fields (the camera it concerns).
    var describe: (inout Vigil_V1_AuditEvent, DeclaredTablePlan<Value>.Entry) -> Void = { _, _ in }

    /// The audit event of one change: its id names the value and version, so a rerun after a
    /// failure repeats the same event.
    func auditEvent(_ entry: DeclaredTablePlan<Value>.Entry) -> Vigil_V1_AuditEvent {
        let version = entry.publish.map { "v\(kind.version($0))" } ?? "removed-\(entry.effectiveMilliseconds)"
        var event = AuditEvents.event(
            id: "\(kind.noun):\(entry.id):\(version)", kind: auditKind, actor: actor, subject: "\(kind.noun):\(entry.id)",
            detail: "\(entry.kind.rawValue): " + entry.differences.joined(separator: "; "), origin: command,
            at: Date(timeIntervalSince1970: Double(entry.effectiveMilliseconds) / 1_000)
        )
        describe(&event, entry)
        return event
    }

    func printPlan(_ plan: DeclaredTablePlan<Value>) {
        for entry in plan.entries {
            writeLine("\(entry.id): \(entry.kind.rawValue)")
            for line in entry.differences { writeLine("  \(line)") }
        }
        writeLine("plan: \(plan.changes.count) to change, \(plan.entries.count - plan.changes.count) unchanged or kept")
    }

    /// Publishes `plan`, or with `--dry-run` says that nothing was.
    func publish(_ plan: DeclaredTablePlan<Value>, dryRun: Bool, cluster: KafkaConfiguration, logger: Logger) async throws {
        if dryRun {
            writeLine("dry run: nothing published")
            return
        }
        try await publish(plan, cluster: cluster, logger: logger)
    }

    func publish(_ plan: DeclaredTablePlan<Value>, cluster: KafkaConfiguration, logger: Logger) async throws {
        let producer = try KafkaProducer(configuration: KafkaProducerConfiguration(cluster: cluster), logger: logger)
        do {
            // The audit trail first, acknowledged before any change is sent: a change never
            // lands without its event. Event ids name the id and version, so a rerun after a
            // failure repeats the same events.
            try await producer.send(all: plan.changes.map { entry in
                KafkaProducerMessage(topic: "audit.events.v1", key: Array(entry.id.utf8), value: try auditEvent(entry).serializedBytes())
            })
            let records = try plan.entries.filter { $0.kind != .notInFile }.map { entry in
                let record = TableRecords.record(key: entry.id, value: try entry.publish.map(serialize), effectiveMilliseconds: entry.effectiveMilliseconds)
                return KafkaProducerMessage(topic: topic, key: record.key, value: record.value, headers: record.headers.map { KafkaHeader(key: $0.key, value: $0.value) })
            }
            try await producer.send(all: records)
            await producer.close()
            writeLine("published \(TopologyOption.count(records.count, "\(kind.noun) record")) to \(topic) and \(TopologyOption.count(plan.changes.count, "audit event")) to audit.events.v1")
        } catch {
            await producer.close()
            writeError("vigil: publishing failed: \(error). Run \(command) again: it republishes the same versions and audit events")
            throw ExitCode.failure
        }
    }
}

extension Table {
    /// The table's current values, read once to its end; when the cluster cannot be read, says
    /// so and exits 1.
    func readCurrentValues(cluster: KafkaConfiguration, logger: Logger) async throws -> [String: StoredTableValue<Value>] {
        do {
            try await load(cluster: cluster, logger: logger)
        } catch {
            writeError("vigil: cannot read \(topic) from \(cluster.bootstrapServers): \(error)")
            throw ExitCode.failure
        }
        return currentValues
    }
}
