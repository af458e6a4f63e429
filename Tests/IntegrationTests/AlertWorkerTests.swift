import ChildProcesses
import Foundation
import Kafka
import Logging
import SwiftProtobuf
import Testing
import VigilSchema
import WorkerRuntime

/// vigil-alert on the dev cluster, driven as an operator drives it: incidents into
/// `incidents.v1`, `vigil alerts list` and `vigil alerts act`, a SIGKILL and a restart in
/// between, and the alert records read by the CloudEvents Python SDK.
@Suite("vigil-alert across processes", .serialized, .timeLimit(.minutes(5)))
struct AlertWorkerTests {
    static let topics = [
        "incidents.v1:3", "alert.actions.v1:3", "alerts.v1:3", "alert.action.outcomes.v1:3", "vigil-alert.state.changelog:3", "rules.v1:1", "silences.v1:1",
        "audit.events.v1:1", "incidents.v1.dlq:1", "alert.actions.v1.dlq:1", "snapshots.v1:3", "snapshots.v1.dlq:1", "webhooks.v1:1",
        "webhook.deadletters.v1:1",
    ]
    static let environment = [
        "WORKER_INPUTS": "incidents.v1,snapshots.v1,alert.actions.v1",
        "WORKER_OUTPUTS": "alerts.v1,alert.action.outcomes.v1,vigil-alert.state.changelog,audit.events.v1,webhook.deadletters.v1,webhooks.v1",
        "WORKER_TABLES": "rules.v1,silences.v1,webhooks.v1", "WORKER_STATE_CHECKPOINT_MS": "1000",
    ]

    static func vigil(_ arguments: [String], bootstrap: String) async throws -> ChildProcess {
        let command = try ChildProcess("vigil", arguments + ["--bootstrap", bootstrap, "--log-level", "warning"], name: "vigil \(arguments.prefix(2).joined(separator: " "))")
        try await command.waitForExit(timeout: .seconds(120))
        return command
    }

    static func incident(_ id: String, camera: String, at time: Int64) throws -> KafkaProducerMessage {
        var incident = Vigil_V1_Incident()
        incident.incidentID = id
        incident.ruleID = "dock-intrusion"
        incident.kind = .zoneIntrusion
        incident.cameraID = camera
        incident.severity = .major
        incident.revision = 1
        incident.state = .opened
        incident.windowStart = Google_Protobuf_Timestamp(milliseconds: time)
        incident.windowEnd = Google_Protobuf_Timestamp(milliseconds: time)
        incident.summary = "a person in the dock zone"
        return KafkaProducerMessage(
            topic: "incidents.v1", key: Array(camera.utf8), value: try incident.serializedBytes(),
            headers: [KafkaHeader(key: RecordHeaders.eventTime, value: Array(String(time).utf8))]
        )
    }

    @Test("incidents become alerts; an operator acknowledges and resolves from the CLI, across a SIGKILL; refusals come back with their reason; the CloudEvents SDK reads the records")
    func operatorWorkflow() async throws {
        let cluster = try await DevClusterProcess(topics: Self.topics)
        let bootstrap = cluster.bootstrapServers
        let kafka = KafkaConfiguration(bootstrapServers: bootstrap)
        var worker = try await PassThroughWorkerProcess.start(cluster, environment: Self.environment, executable: "vigil-alert")
        let now = Int64(Date().timeIntervalSince1970 * 1_000)
        let producer = try KafkaProducer(configuration: .init(cluster: kafka), logger: Logger(label: "test"))
        try await producer.send(all: [try Self.incident("inc-a", camera: "dock-1", at: now), try Self.incident("inc-b", camera: "dock-2", at: now)])
        await producer.close()

        var list = try await Self.vigil(["alerts", "list"], bootstrap: bootstrap)
        try await eventually(timeout: .seconds(60), "vigil alerts list shows both alerts") {
            list = try await Self.vigil(["alerts", "list"], bootstrap: bootstrap)
            return list.output.contains { $0.contains("alert-inc-a") } && list.output.contains { $0.contains("alert-inc-b") }
        }
        #expect(list.output.contains { $0.hasPrefix("OPEN") && $0.contains("r1") && $0.contains("dock-1") && $0.contains("dock-intrusion") })

        let acknowledged = try await Self.vigil(["alerts", "act", "acknowledge", "alert-inc-a", "--actor", "op-1", "--note", "on my way"], bootstrap: bootstrap)
        #expect(acknowledged.exitStatus == 0, "\(acknowledged.standardError.suffix(1_000))")
        #expect(acknowledged.output.last == "alert-inc-a: acknowledge applied, now revision 2")
        let again = try await Self.vigil(["alerts", "act", "acknowledge", "alert-inc-a", "--actor", "op-2"], bootstrap: bootstrap)
        #expect(again.exitStatus == 1)
        #expect(again.standardError.contains("refused: the alert is already acknowledged"))

        // The replica dies holding both alerts; its successor restores them from the changelog.
        worker.process.signal(SIGKILL)
        try await worker.process.waitForExit()
        worker = try await PassThroughWorkerProcess.start(cluster, environment: Self.environment, executable: "vigil-alert")
        let stale = try await Self.vigil(["alerts", "act", "resolve", "alert-inc-a", "--actor", "op-1", "--expect-revision", "1"], bootstrap: bootstrap)
        #expect(stale.exitStatus == 1)
        #expect(stale.standardError.contains("refused: the alert is at revision 2, not 1"), "\(stale.standardError.suffix(1_000))")
        let resolved = try await Self.vigil(["alerts", "act", "resolve", "alert-inc-a", "--actor", "op-1", "--expect-revision", "2"], bootstrap: bootstrap)
        #expect(resolved.exitStatus == 0, "\(resolved.standardError.suffix(1_000))")
        let unknown = try await Self.vigil(["alerts", "act", "resolve", "alert-nope", "--actor", "op-1"], bootstrap: bootstrap)
        #expect(unknown.exitStatus == 1)
        #expect(unknown.standardError.contains("no alert alert-nope"))

        let open = try await Self.vigil(["alerts", "list"], bootstrap: bootstrap)
        #expect(!open.output.contains { $0.contains("alert-inc-a") } && open.output.contains { $0.contains("alert-inc-b") })
        let show = try await Self.vigil(["alerts", "show", "alert-inc-a"], bootstrap: bootstrap)
        #expect(show.output.contains { $0.contains("r2") && $0.contains("op-1") && $0.contains("acknowledged by op-1: on my way") })
        #expect(show.output.contains { $0.contains("r3") && $0.contains("resolved by op-1") })

        // A maintenance window on dock-3: its incident is recorded as a silenced alert; the silence
        // is listed, expired early, and both changes audited.
        let silence = try await Self.vigil(["alerts", "silence", "--camera", "dock-3", "--for", "1h", "--reason", "lens cleaning", "--actor", "op-1"], bootstrap: bootstrap)
        #expect(silence.exitStatus == 0, "\(silence.standardError.suffix(1_000))")
        let silenceID = try #require(silence.output.last?.split(separator: ":").first.map(String.init))
        var silencedList = try await Self.vigil(["alerts", "list"], bootstrap: bootstrap)
        // The worker reads silences.v1 as a table: an incident sent before it has the silence would alert.
        try await eventually(timeout: .seconds(60), "dock-3's incident recorded as a silenced alert") {
            let sender = try KafkaProducer(configuration: .init(cluster: kafka), logger: Logger(label: "test"))
            try await sender.send(all: [try Self.incident("inc-c-\(UUID().uuidString.prefix(4))", camera: "dock-3", at: Int64(Date().timeIntervalSince1970 * 1_000))])
            await sender.close()
            try await Task.sleep(for: .seconds(1))
            silencedList = try await Self.vigil(["alerts", "list"], bootstrap: bootstrap)
            return silencedList.output.contains { $0.hasPrefix("OPEN (silenced)") && $0.contains("dock-3") }
        }
        let silences = try await Self.vigil(["alerts", "silences"], bootstrap: bootstrap)
        #expect(silences.output.contains { $0.hasPrefix(silenceID) && $0.contains("dock-3") && $0.contains("lens cleaning") })
        let expire = try await Self.vigil(["alerts", "expire-silence", silenceID, "--actor", "op-2"], bootstrap: bootstrap)
        #expect(expire.exitStatus == 0 && expire.output.last == "\(silenceID): expired")
        let after = try await Self.vigil(["alerts", "silences"], bootstrap: bootstrap)
        #expect(after.output == ["no silences"])
        let silenceAudit = try await KafkaTableReader.readPartitions(cluster: kafka, topic: "audit.events.v1", partitions: nil, logger: Logger(label: "test"))
            .compactMap { try? Vigil_V1_AuditEvent(serializedBytes: $0.value) }.filter { $0.kind == .silenceChanged }
        #expect(silenceAudit.map(\.actor) == ["op-1", "op-2"] && silenceAudit.allSatisfy { $0.subject == silenceID })

        // The rule's report: three alerts or more on dock-intrusion (one silenced), one resolved, none a false positive.
        let report = try await Self.vigil(["rules", "report"], bootstrap: bootstrap)
        #expect(report.exitStatus == 0, "\(report.standardError.suffix(1_000))")
        let row = try #require(report.output.first { $0.hasPrefix("dock-intrusion") }?.split(separator: " ", omittingEmptySubsequences: true).map(String.init))
        #expect(row.count >= 7 && Int(row[1]) ?? 0 >= 3 && Int(row[2]) ?? 0 >= 1 && row[4] == "0" && row[5] == "0" && row[6] == "%", "\(report.output)")

        // Every action decided is audited, the refusals too.
        let audit = try await KafkaTableReader.readPartitions(cluster: kafka, topic: "audit.events.v1", partitions: nil, logger: Logger(label: "test"))
            .compactMap { try? Vigil_V1_AuditEvent(serializedBytes: $0.value) }.filter { $0.kind == .alertAction }
        #expect(audit.map(\.actor).sorted() == ["op-1", "op-1", "op-1", "op-2"], "\(audit.map(\.detail))")

        // The CloudEvents Python SDK (cloudevents 1.12.0) reads every alert record as an event.
        let records = try await KafkaTableReader.readPartitions(cluster: kafka, topic: "alerts.v1", partitions: nil, logger: Logger(label: "test"))
        let exported = records.map { record -> [String: Any] in
            [
                "key": String(decoding: record.key ?? [], as: UTF8.self),
                "value": Data(record.value).base64EncodedString(),
                "headers": Dictionary(record.headers.map { ($0.key, Data($0.value ?? []).base64EncodedString()) }, uniquingKeysWith: { first, _ in first }),
            ]
        }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-alerts-\(UUID().uuidString).json")
        try JSONSerialization.data(withJSONObject: exported).write(to: file)
        let python = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../.deps/reference/bin/python").standardized.path
        let parsed = try ChildProcess.run(python, ["-c", Self.cloudEventsReader, file.path], standardError: .lines)
        #expect(parsed.termination == .exited(0), "\(parsed.errorOutput.suffix(20))")
        let events = parsed.output.compactMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: String] }
        #expect(events.count == records.count && records.count >= 5, "\(parsed.output)")
        let alerts = try records.map { try Vigil_V1_Alert(serializedBytes: $0.value) }
        #expect(events.map { $0["id"] ?? "" } == alerts.map { "\($0.alertID)/\($0.revision)" })
        #expect(Set(events.map { $0["type"] ?? "" }) == ["vigil.alert.v1.opened", "vigil.alert.v1.silenced", "vigil.alert.v1.acknowledged", "vigil.alert.v1.resolved"])
        #expect(events.allSatisfy { $0["specversion"] == "1.0" && $0["source"] == "/vigil/vigil-alert" && $0["datacontenttype"] == "application/protobuf" })
        #expect(events.map { $0["partitionkey"] ?? "" } == alerts.map(\.incident.cameraID))
        // The SDK fills in a missing time with its own clock: the events carry the alerts' own.
        let times = events.map { event in (try? Date(event["time"] ?? "", strategy: .iso8601.year().month().day().time(includingFractionalSeconds: true))).map { Int64(($0.timeIntervalSince1970 * 1_000).rounded()) } }
        #expect(times == alerts.map { $0.updatedTime.milliseconds }, "\(events.map { $0["time"] ?? "" })")

        worker.process.signal(SIGTERM)
        try await worker.process.waitForExit()
        #expect(worker.process.exitStatus == 0, "\(worker.process.standardError.suffix(1_000))")
        try await cluster.stop()
    }

    /// Reads the exported records with `cloudevents.kafka.from_binary` and prints each event's
    /// attributes as a JSON line; the SDK raises on a record that is not a valid binary-mode event.
    static let cloudEventsReader = """
    import base64, json, sys
    from cloudevents.kafka import KafkaMessage, from_binary
    for record in json.load(open(sys.argv[1])):
        headers = {k: base64.b64decode(v) for k, v in record["headers"].items()}
        event = from_binary(KafkaMessage(headers=headers, key=record["key"], value=base64.b64decode(record["value"])), data_unmarshaller=lambda data: data)
        print(json.dumps({k: str(v) for k, v in event.get_attributes().items()}))
    """
}
