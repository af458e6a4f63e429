import ChildProcesses
import Foundation
import Kafka
import Logging
import Match
import Rules
import SwiftProtobuf
import Testing
import VigilSchema
import WorkerRuntime
import WorkerRuntimeTesting

/// vigil-match on the dev cluster: rules published with `vigil rules apply`, synthetic tracks
/// on six cameras in `detections.v1` and `camera.health.v1`, incidents read back from
/// `incidents.v1`.
@Suite("vigil-match across processes", .serialized, .timeLimit(.minutes(8)))
struct MatchWorkerTests {
    static let topics = [
        "detections.v1:3", "camera.health.v1:3", "incidents.v1:3", "vigil-match.state.changelog:3", "rules.v1:1", "cameras.v1:3",
        "audit.events.v1:1", "detections.v1.dlq:1", "camera.health.v1.dlq:1",
    ]
    static let environment = [
        "WORKER_INPUTS": "detections.v1,camera.health.v1", "WORKER_OUTPUTS": "incidents.v1,vigil-match.state.changelog",
        "WORKER_TABLES": "rules.v1,cameras.v1", "WORKER_STATE_CHECKPOINT_MS": "2000", "MATCH_ALLOWED_LATENESS_MS": "500",
    ]
    static let cameras = (0..<6).map { "cam-\($0)" }

    static let rules = """
    rules:
      gate:
        cameras: [\(cameras.joined(separator: ", "))]
        kind: line_crossing
        line: {from: [0.5, 0.0], to: [0.5, 1.0]}
        close_after: 5s
      edge:
        cameras: [\(cameras.joined(separator: ", "))]
        kind: hazard_dwell
        zone: [[0.0, 0.7], [1.0, 0.7], [1.0, 1.0], [0.0, 1.0]]
        dwell: 3s
        close_after: 1s
      hall:
        cameras: [\(cameras.joined(separator: ", "))]
        kind: crowd_density
        zone: [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]
        max_count: 2
        sustained_for: 1s
        close_after: 1s
        purpose: Crowding test at the gate
      down:
        cameras: [\(cameras.joined(separator: ", "))]
        kind: camera_offline
        sustained_for: 2s
    """

    static func file(_ text: String) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-rules-\(UUID().uuidString).yaml")
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    static func vigil(_ arguments: [String]) async throws -> ChildProcess {
        let command = try ChildProcess("vigil", arguments, name: "vigil \(arguments.prefix(2).joined(separator: " "))")
        try await command.waitForExit(timeout: .seconds(120))
        return command
    }

    /// One record of the synthetic input.
    struct Input {
        var time: Int64
        var camera: String
        var topic: String
        var value: [UInt8]
    }

    /// 60 s per camera, frames 200 ms apart. Every 4 s a person walks across the gate (right to
    /// left: one crossing incident, updated by each next crossing); every other one then stands in the edge zone for 5 s, so two people overlap for a
    /// while (a crowd of 2). cam-2 sends no frames from 30 s to 40 s and reports OFFLINE each
    /// second, then ONLINE.
    static func input(start: Int64) throws -> [Input] {
        var records: [Input] = []
        for (index, camera) in cameras.enumerated() {
            for step in 0..<300 {
                let time = start + Int64(step) * 200
                if camera == "cam-2", (150..<200).contains(step) {
                    if step % 5 == 0 { records.append(try health(camera, time, .offline)) }
                    continue
                }
                if camera == "cam-2", step == 200 { records.append(try health(camera, time, .online)) }
                var frame = Vigil_V1_FrameDetections()
                frame.cameraID = camera
                frame.frameSequence = UInt64(step)
                frame.captureTime = Google_Protobuf_Timestamp(milliseconds: time)
                for walker in 0..<15 {
                    let walked = step - (walker * 20 + index)
                    let track = UInt64(index * 1_000 + walker + 1)
                    if (0..<10).contains(walked) {
                        frame.objects.append(person(track, x: 0.9 - Double(walked) * 0.08, y: 0.3))
                    } else if walker % 2 == 0, (10..<35).contains(walked) {
                        frame.objects.append(person(track, x: 0.1, y: 0.85))
                    }
                }
                records.append(Input(time: time, camera: camera, topic: MatchStage.detectionsTopic, value: try frame.serializedBytes()))
            }
        }
        return records.sorted { ($0.time, $0.camera, $0.topic) < ($1.time, $1.camera, $1.topic) }
    }

    static func health(_ camera: String, _ time: Int64, _ state: Vigil_V1_CameraState) throws -> Input {
        var health = Vigil_V1_CameraHealth()
        health.cameraID = camera
        health.state = state
        health.reason = state == .offline ? "connection refused" : "receiving"
        health.observedTime = Google_Protobuf_Timestamp(milliseconds: time)
        return Input(time: time, camera: camera, topic: MatchStage.healthTopic, value: try health.serializedBytes())
    }

    static func person(_ track: UInt64, x: Double, y: Double) -> Vigil_V1_DetectedObject {
        var object = Vigil_V1_DetectedObject()
        object.classLabel = "person"
        object.score = 0.8
        object.trackID = track
        object.box.xMin = Float(x - 0.03)
        object.box.xMax = Float(x + 0.03)
        object.box.yMin = Float(y - 0.2)
        object.box.yMax = Float(y)
        return object
    }

    /// The incidents of an uninterrupted run: the same stage, in memory, on the same records
    /// and the rules as rules.v1 holds them, every camera then left quiet.
    static func uninterrupted(_ input: [Input], cluster: KafkaConfiguration) async throws -> [String: Vigil_V1_Incident] {
        let rules = RuleTable.make()
        try await rules.load(cluster: cluster, logger: Logger(label: "test"))
        let driver = StatefulStageTestDriver(stage: MatchStage(rules: RuleBook(rules: rules, cameras: nil), lateness: .milliseconds(500)))
        for record in input {
            try await driver.feed(StageInput(
                topic: record.topic, key: Array(record.camera.utf8), value: record.value,
                headers: [RecordHeader(key: RecordHeaders.eventTime, value: String(record.time))], timestampMilliseconds: record.time
            ))
        }
        for _ in 0..<60 { try await driver.advanceSilence(by: .seconds(1)) }
        return try revisions(driver.outputs.map(\.value))
    }

    /// Incidents by "id rN"; a revision seen twice must be the same record.
    static func revisions(_ values: [[UInt8]]) throws -> [String: Vigil_V1_Incident] {
        var byRevision: [String: Vigil_V1_Incident] = [:]
        for value in values {
            let incident = try Vigil_V1_Incident(serializedBytes: value)
            let name = "\(incident.incidentID) r\(incident.revision)"
            if let seen = byRevision[name], seen != incident {
                Issue.record("revision \(name) was published twice with different content: \(seen) vs \(incident)")
            }
            byRevision[name] = incident
        }
        return byRevision
    }

    @Test("SIGKILL a replica mid-dwell and restart it, scale 1 → 3 → 1 while detections flow: the incidents (ids, revisions, windows, states) are those of an uninterrupted run")
    func recovery() async throws {
        let cluster = try await DevClusterProcess(topics: Self.topics)
        let kafka = KafkaConfiguration(bootstrapServers: cluster.bootstrapServers)
        let apply = try await Self.vigil(["rules", "apply", try Self.file(Self.rules).path, "--bootstrap", cluster.bootstrapServers, "--actor", "test-admin"])
        #expect(apply.exitStatus == 0, "\(apply.standardError.suffix(2_000))")
        // Frames from 2 s after the rules took effect, so every frame is judged by them.
        let start = (Int64(Date().timeIntervalSince1970 * 1_000) / 1_000 + 2) * 1_000
        let input = try Self.input(start: start)
        let expected = try await Self.uninterrupted(input, cluster: kafka)
        let kinds = Set(expected.values.map(\.kind))
        #expect(kinds == [.lineCrossing, .hazardDwell, .crowdDensity, .cameraOffline], "the input exercises every rule: \(kinds)")
        #expect(expected.values.contains { $0.state == .updated } && expected.values.contains { $0.state == .closed })

        let first = try await PassThroughWorkerProcess.start(cluster, environment: Self.environment, executable: "vigil-match")
        let producing = Task {
            let producer = try KafkaProducer(configuration: .init(cluster: kafka), logger: Logger(label: "test"))
            for record in input {
                _ = try await producer.enqueue(KafkaProducerMessage(
                    topic: record.topic, key: Array(record.camera.utf8), value: record.value,
                    headers: [KafkaHeader(key: RecordHeaders.eventTime, value: Array(String(record.time).utf8))]
                ))
                try await Task.sleep(for: .milliseconds(20))
            }
            try await producer.flush()
            await producer.close()
        }
        try await eventually(timeout: .seconds(60), "the first replica matches") { try await first.metric("vigil_records_in_total") ?? 0 > 200 }
        let second = try await PassThroughWorkerProcess.start(cluster, environment: Self.environment, executable: "vigil-match")
        let third = try await PassThroughWorkerProcess.start(cluster, environment: Self.environment, executable: "vigil-match")
        try await eventually(timeout: .seconds(60), "all three replicas take records") {
            let secondIn = try await second.metric("vigil_records_in_total") ?? 0
            let thirdIn = try await third.metric("vigil_records_in_total") ?? 0
            return secondIn > 0 && thirdIn > 0
        }
        // People are walking and dwelling on every camera all along: the killed replica holds
        // open incidents and running dwell times.
        second.process.signal(SIGKILL)
        try await second.process.waitForExit()
        let restarted = try await PassThroughWorkerProcess.start(cluster, environment: Self.environment, executable: "vigil-match")
        try await eventually(timeout: .seconds(60), "the restarted replica restores its partitions") {
            restarted.process.standardError.contains("state restored")
        }
        for replica in [third, restarted] {
            replica.process.signal(SIGTERM)
            try await replica.process.waitForExit()
            #expect(replica.process.exitStatus == 0, "graceful stop: \(replica.process.standardError.suffix(1_000))")
        }
        try await producing.value

        var produced: [String: Vigil_V1_Incident] = [:]
        // Waits for every expected revision; the comparisons below say what is missing if some never come.
        try? await eventually(timeout: .seconds(60), "every incident revision of the uninterrupted run reaches incidents.v1") {
            let records = try await KafkaTableReader.readPartitions(cluster: kafka, topic: MatchStage.incidentsTopic, partitions: nil, logger: Logger(label: "test"))
            produced = try Self.revisions(records.map(\.value))
            return Set(produced.keys).isSuperset(of: expected.keys)
        }
        let missing = Set(expected.keys).subtracting(produced.keys).sorted().map { "\($0) \(expected[$0]!.cameraID) \(expected[$0]!.ruleID) \(expected[$0]!.state) \(expected[$0]!.windowStart.seconds - start / 1_000)" }
        #expect(missing.isEmpty, "\(missing.count) of \(expected.count) revisions missing: \(missing.prefix(8))")
        let extra = Set(produced.keys).subtracting(expected.keys).sorted()
        #expect(extra.isEmpty, "revisions an uninterrupted run does not publish: \(extra.prefix(5))")
        let differing = expected.keys.filter { produced[$0] != nil && produced[$0] != expected[$0] }.sorted()
        #expect(differing.isEmpty, "revisions whose content differs: \(differing.prefix(5))")
        if missing.isEmpty, extra.isEmpty, differing.isEmpty { print("vigil-match recovery: \(expected.count) incident revisions (\(Set(expected.values.map(\.incidentID)).count) incidents) identical to the uninterrupted run after a SIGKILL and 1 → 3 → 1") }
        let refused = try await cluster.kcatRecords("detections.v1.dlq")
        #expect(refused.isEmpty, "no detection was late or refused: \(refused.prefix(3))")
        first.process.signal(SIGTERM)
        try await first.process.waitForExit()
        try await cluster.stop()
    }

    @Test("a rule changed on a running worker takes effect a second after it is applied, for every frame captured from then")
    func liveRuleChange() async throws {
        let cluster = try await DevClusterProcess(topics: Self.topics)
        let kafka = KafkaConfiguration(bootstrapServers: cluster.bootstrapServers)
        let leftHalf = """
        rules:
          door:
            cameras: [cam-0]
            kind: zone_intrusion
            zone: [[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]]
            close_after: 1s
        """
        let first = try await Self.vigil(["rules", "apply", try Self.file(leftHalf).path, "--bootstrap", cluster.bootstrapServers, "--actor", "alice"])
        #expect(first.exitStatus == 0, "\(first.standardError)")
        // The worker's default lateness (2 s): frames wait that long before they are judged,
        // which with the second between apply and effect is the time a version has to reach it.
        // With no lateness, on a loaded 2-core machine, the version arrived up to 1 s too late.
        let worker = try await PassThroughWorkerProcess.start(
            cluster, environment: Self.environment.merging(["MATCH_ALLOWED_LATENESS_MS": "2000"]) { $1 }, executable: "vigil-match"
        )
        // A person stands in the right half; frames 100 ms apart, captured now.
        let streaming = Task {
            let producer = try KafkaProducer(configuration: .init(cluster: kafka), logger: Logger(label: "test"))
            var sequence: UInt64 = 0
            // The capture times sent, to find the first frame captured after the change.
            var sent: [Int64] = []
            while !Task.isCancelled {
                let time = Int64(Date().timeIntervalSince1970 * 1_000)
                var frame = Vigil_V1_FrameDetections()
                frame.cameraID = "cam-0"
                frame.frameSequence = sequence
                frame.captureTime = Google_Protobuf_Timestamp(milliseconds: time)
                frame.objects = [Self.person(1, x: 0.8, y: 0.6)]
                _ = try await producer.enqueue(KafkaProducerMessage(
                    topic: MatchStage.detectionsTopic, key: Array("cam-0".utf8), value: try frame.serializedBytes(),
                    headers: [KafkaHeader(key: RecordHeaders.eventTime, value: Array(String(time).utf8))]
                ))
                sent.append(time)
                sequence += 1
                do { try await Task.sleep(for: .milliseconds(100)) } catch { break }
            }
            await producer.close()
            return sent
        }
        try await eventually(timeout: .seconds(60), "the worker judges frames") { try await worker.metric("vigil_records_in_total") ?? 0 > 20 }
        var incidents = try await KafkaTableReader.readPartitions(cluster: kafka, topic: MatchStage.incidentsTopic, partitions: nil, logger: Logger(label: "test"))
        #expect(incidents.isEmpty, "nobody is in the left half")

        let rightHalf = leftHalf.replacingOccurrences(of: "[[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]]", with: "[[0.5, 0.0], [1.0, 0.0], [1.0, 1.0], [0.5, 1.0]]")
        let second = try await Self.vigil(["rules", "apply", try Self.file(rightHalf).path, "--bootstrap", cluster.bootstrapServers, "--actor", "bob"])
        #expect(second.exitStatus == 0, "\(second.standardError)")
        let rules = RuleTable.make()
        try await rules.load(cluster: kafka, logger: Logger(label: "test"))
        let effective = try #require(rules.currentVersion("door")?.effectiveFromMilliseconds)
        try await eventually(timeout: .seconds(30), "an incident under the new version") {
            incidents = try await KafkaTableReader.readPartitions(cluster: kafka, topic: MatchStage.incidentsTopic, partitions: nil, logger: Logger(label: "test"))
            return !incidents.isEmpty
        }
        streaming.cancel()
        let sent = try await streaming.value
        let opened = try Vigil_V1_Incident(serializedBytes: incidents[0].value)
        let start = opened.windowStart.milliseconds
        let firstAfter = try #require(sent.filter { $0 >= effective }.min(), "frames were sent after the change took effect")
        print("rule version 2 in force from \(effective); the first frame judged by it was captured \(start - effective) ms later, the first frame sent after it \(firstAfter - effective) ms later")
        #expect(opened.ruleVersion == 2 && opened.state == .opened)
        #expect(start >= effective, "no frame captured before the change is judged by it")
        // Timed against the frames actually sent, not their nominal 100 ms spacing: a busy
        // machine can delay the test's own producer.
        #expect(start == firstAfter, "every frame captured from the effective time on is judged by the new version, the first one included")
        worker.process.signal(SIGTERM)
        try await worker.process.waitForExit()
        try await cluster.stop()
    }

    @Test("vigil rules apply: a dry run publishes nothing; apply publishes versions with their author and an audit event each; unchanged rules stay; list shows them; a bad file names file, rule and key")
    func rulesApply() async throws {
        let cluster = try await DevClusterProcess(topics: ["rules.v1:1", "cameras.v1:3", "audit.events.v1:1"])
        let bootstrap = ["--bootstrap", cluster.bootstrapServers, "--actor", "alice"]
        let file = try Self.file(Self.rules)
        let dryRun = try await Self.vigil(["rules", "apply", file.path, "--dry-run"] + bootstrap)
        #expect(dryRun.exitStatus == 0 && dryRun.output.contains("dry run: nothing published"), "\(dryRun.standardError)")
        #expect(try await cluster.kcatRecords("rules.v1").isEmpty)

        let apply = try await Self.vigil(["rules", "apply", file.path] + bootstrap)
        #expect(apply.exitStatus == 0, "\(apply.standardError)")
        #expect(apply.output.contains("plan: 4 to change, 0 unchanged or kept"))
        #expect(apply.standardError.contains("rule down names camera cam-0, which cameras.v1 does not hold"))
        #expect(try await cluster.kcatRecords("rules.v1").count == 4)
        #expect(try await cluster.kcatRecords("audit.events.v1").count == 4)

        // Changing one rule: a new version, an audit event with the diff; the others republished as they are.
        let changed = try Self.file(Self.rules.replacingOccurrences(of: "dwell: 3s", with: "dwell: 8s"))
        let update = try await Self.vigil(["rules", "apply", changed.path, "--bootstrap", cluster.bootstrapServers, "--actor", "bob"])
        #expect(update.exitStatus == 0, "\(update.standardError)")
        #expect(update.output.contains("plan: 1 to change, 3 unchanged or kept"))
        let diff = update.output.joined(separator: "\n")
        #expect(diff.contains("edge: changed") && diff.contains("parameters:") && diff.contains("seconds: 3") && diff.contains("seconds: 8"), "\(diff)")
        let rules = RuleTable.make()
        try await rules.load(cluster: KafkaConfiguration(bootstrapServers: cluster.bootstrapServers), logger: Logger(label: "test"))
        #expect(rules.current("edge")?.version == 2 && rules.current("edge")?.author == "bob")
        #expect(rules.current("gate")?.version == 1 && rules.current("gate")?.author == "alice")
        #expect(try await cluster.kcatRecords("audit.events.v1").count == 5)

        let list = try await Self.vigil(["rules", "list", "--bootstrap", cluster.bootstrapServers])
        #expect(list.exitStatus == 0)
        #expect(list.output.contains { $0.hasPrefix("edge") && $0.contains("v2") && $0.contains("hazard_dwell") && $0.contains("bob") }, "\(list.output)")

        let bad = try Self.file(Self.rules.replacingOccurrences(of: "max_count: 2", with: "max_count: lots"))
        let refused = try await Self.vigil(["rules", "apply", bad.path] + bootstrap)
        #expect(refused.exitStatus == 1)
        #expect(refused.output.contains { $0.contains(bad.path) && $0.contains("rules.hall.max_count") }, "\(refused.output)")
        #expect(try await cluster.kcatRecords("rules.v1").count == 8, "nothing published from a file with problems")
        try await cluster.stop()
    }
}
