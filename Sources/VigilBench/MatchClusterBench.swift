import ArgumentParser
import ChildProcesses
import CommandLineSupport
import DevCluster
import Foundation
import Kafka
import Logging
import Match
import SwiftProtobuf
import Topology
import VigilSchema
import WorkerRuntime

/// The vigil-match worker as it runs: the real executable, its changelog and the rules table,
/// on a dev cluster made from the topology. Detections per second against kcat reading the same
/// topic in the same run, and the latency from a detection that opens an incident to the
/// incident at a consumer.
struct MatchClusterBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "match-cluster",
        abstract: "The vigil-match worker on a dev cluster: detections/s vs kcat, and incident latency p50/p99.",
        discussion: """
            Starts `vigil dev-cluster` with the topology's topics (librdkafka's mock brokers) and publishes rules with `vigil rules apply`; then runs vigil-match (the executable next to this binary, as the topology's vigil-match entry declares it, with its state changelog) twice.

            Throughput: --records frames (--cameras cameras, --persons walking persons each, 200 ms apart, keyed by camera, with their event-time header) are produced to detections.v1 first; --rules rules watch every camera. kcat -C -e reads the topic from its beginning to its end, three times (the median process wall time, connecting included; with --fetch-wait-ms, since a partition without records reaches its end only when a fetch answers). Then the worker, with its defaults, processes it: from its first record taken (vigil_records_in_total on its /metrics) until its committed offsets cover every record, i.e. each record's outputs and state snapshot acknowledged (the commit interval is 100 ms for this). ratio = worker / kcat records per second; goal ≥ 0.5.

            Latency: a new worker with MATCH_ALLOWED_LATENESS_MS=0 takes over the group; one record that opens an incident on a camera of its own is read back first (by then the worker has restored its state and the consumer fetches). Then a stream paced at --rate records per second over --latency-cameras cameras: on each camera a person steps into a zone_intrusion zone (confirm_after 0s) for two frames, then stays out until the incident has closed (close_after 500ms), so every step in opens a new incident. Latency = from handing the stepping-in record to a producer (linger 0) to reading the incident's opened revision from incidents.v1, both in this process; the first --warm-up seconds are not counted. No rule window and no lateness wait is in it. Goal: p99 < 50 ms.

            A mock broker holds a fetch that finds no data for the whole fetch.wait.max.ms (librdkafka's default 500 ms), where a real broker answers as soon as a record arrives; so the latency run's worker and consumer (and kcat) fetch with --fetch-wait-ms, and the figure is the worker's rather than the mock's.
            """
    )

    @Option(help: "Detections records produced for the throughput run.") var records = 30_000
    @Option(help: "Cameras of the throughput run.") var cameras = 20
    @Option(help: "Walking persons per frame of the throughput run.") var persons = 5
    @Option(help: "Rules watching every camera of the throughput run (zone intrusion, line crossing, hazard dwell and crowd density in turn; the last two a camera-tamper and a camera-offline rule).")
    var rules = 8
    @Option(help: "Records per second of the latency run's paced stream.") var rate = 200
    @Option(help: "Cameras of the latency run.") var latencyCameras = 20
    @Option(help: "Seconds of the paced stream that are measured.") var latencySeconds = 20
    @Option(help: "Seconds of the paced stream before those measured.") var warmUp = 3
    @Option(help: "fetch.wait.max.ms of kcat and of the latency run's worker and consumer: how long the mock broker holds a fetch that finds no record.")
    var fetchWaitMs = 5
    @Option(help: "Path of kcat.") var kcat = "/usr/bin/kcat"
    @Flag(help: "Keep the logs of the cluster, the workers, kcat and the rules (they are kept anyway when the run fails).") var keepLogs = false
    @OptionGroup(title: "Topology") var topology: TopologyOption
    @OptionGroup var logging: LoggingOptions

    static let latencyGoalMilliseconds = 50.0
    static let ratioGoal = 0.5
    /// How long a latency camera's person stays out of the zone after its incident closed, and
    /// how long the incident stays open once they left.
    static let closeAfter: Duration = .milliseconds(500)

    func validate() throws {
        guard records >= 1, cameras >= 1, persons >= 1, rules >= 1 else {
            throw ValidationError("--records, --cameras, --persons and --rules must each be at least 1")
        }
        guard rate >= 1, latencyCameras >= 1, latencySeconds >= 1, warmUp >= 0, fetchWaitMs >= 0 else {
            throw ValidationError("--rate, --latency-cameras and --latency-seconds must be at least 1; --warm-up and --fetch-wait-ms at least 0")
        }
    }

    func run() async throws {
        var quiet = logging.bootstrap(label: "vigil.bench")
        quiet.logLevel = max(quiet.logLevel, .warning)
        let logger = quiet
        let declared = try topology.loadValid()
        guard let entry = declared.workers.first(where: { $0.name == "vigil-match" }) else {
            throw ValidationError("\(topology.topology) declares no vigil-match worker")
        }
        let bench = try BenchProcesses(bench: "match-cluster")
        let executable = try bench.executable("vigil-match")
        let cluster = try await bench.startDevCluster(["--topology", topology.url.path])
        do {
            try await measure(cluster: cluster, group: entry.consumerGroup, executable: executable, bench: bench, logger: logger)
        } catch {
            await cluster.stop()
            writeError("vigil bench match-cluster: logs in \(bench.scratch.path)")
            throw error
        }
        await cluster.stop()
        if keepLogs {
            writeLine("")
            writeLine("logs (cluster, workers, kcat, rules): \(bench.scratch.path)")
        } else {
            bench.clean()
        }
    }

    private func measure(cluster: BenchDevCluster, group: String, executable: String, bench: BenchProcesses, logger: Logger) async throws {
        let kafka = KafkaConfiguration(bootstrapServers: cluster.bootstrapServers, clientID: "vigil-bench")
        let partitions = cluster.partitions(of: MatchStage.detectionsTopic)
        // The worker's default changelog (WORKER_STATE_CHANGELOG is not set).
        let changelog = "vigil-match.state.changelog"
        writeLine("vigil bench match-cluster — the vigil-match worker (\(topology.topology)) on vigil dev-cluster: \(cluster.state.brokers) mock brokers, detections.v1 of \(partitions) partitions")

        let rulesFile = bench.scratch.appendingPathComponent("rules.yaml")
        try rulesYAML().write(to: rulesFile, atomically: true, encoding: .utf8)
        try await bench.runVigil(["rules", "apply", rulesFile.path, "--bootstrap", cluster.bootstrapServers, "--actor", "vigil-bench"], log: "rules.log")
        // Rules take effect a second after they are applied: frames from 2 s on are judged by them.
        let start = (Int64(Date().timeIntervalSince1970 * 1_000) / 1_000 + 2) * 1_000

        let environment = [
            "KAFKA_BOOTSTRAP": cluster.bootstrapServers, "WORKER_TOPOLOGY": topology.url.path, "WORKER_NAME": "vigil-match",
            "HTTP_HOST": "127.0.0.1", "HTTP_PORT": "0",
        ]
        writeLine("")
        writeLine("throughput — \(records) detections records pre-produced to detections.v1 (\(cameras) cameras, \(persons) walking persons per frame, \(rules) rules on every camera)")
        let megabytes = try await produceDetections(start: start, kafka: kafka, logger: logger)
        let anchor = try readWithKcat(cluster: cluster, bench: bench)
        let worker = try await measureThroughput(
            executable: executable, environment: environment.merging(["KAFKA_COMMIT_INTERVAL_MS": "100"]) { $1 },
            group: group, changelog: changelog, cluster: cluster, kafka: kafka, bench: bench, logger: logger
        )
        let kcatRate = Double(records) / anchor
        let workerRate = Double(records) / worker.seconds
        writeLine(String(format: "  kcat -C -e     %9.0f records/s  (%d records, %.1f MB, in %.3f s: median of 3 runs)", kcatRate, records, megabytes, anchor))
        writeLine(String(
            format: "  vigil-match    %9.0f records/s  (%d records in %.2f s, first record taken → offsets of all committed; all taken after %.2f s; first record %.1f s after start)",
            workerRate, records, worker.seconds, worker.takenSeconds, worker.startupSeconds
        ))
        writeLine(String(
            format: "                 %.0f incident revisions, %.0f state snapshots written, %.0f records dead-lettered; CPU: vigil-match %.2f cores (%.0f µs a record), dev cluster %.2f cores",
            worker.incidents, worker.snapshots, worker.deadLettered, worker.workerCPUSeconds / worker.seconds, worker.workerCPUSeconds / Double(records) * 1e6,
            worker.clusterCPUSeconds / worker.seconds
        ))
        let ratio = workerRate / kcatRate
        writeLine(String(format: "  ratio vigil-match / kcat = %.2f× (goal ≥ %.1f×: ", ratio, Self.ratioGoal) + (ratio >= Self.ratioGoal ? "met)" : "not met)"))

        writeLine("")
        writeLine("latency — a detection that opens an incident → the incident read from incidents.v1: zone_intrusion with confirm_after 0s, MATCH_ALLOWED_LATENESS_MS=0, so rule windows and lateness excluded")
        writeLine("  paced stream: \(rate) records/s over \(latencyCameras) cameras for \(latencySeconds) s (+\(warmUp) s warm-up), fetch.wait.max.ms=\(fetchWaitMs) for the worker and the consumer")
        let latency = try await measureLatency(executable: executable, environment: environment, kafka: kafka, bench: bench, logger: logger)
        let milliseconds = latency.milliseconds.sorted()
        guard !milliseconds.isEmpty else {
            throw BenchFailure("no incident opened by the paced stream reached incidents.v1 (\(latency.expected) expected)")
        }
        writeLine("  \(milliseconds.count) of \(latency.expected) incidents opened in the measured seconds arrived")
        let p99 = Self.percentile(milliseconds, 0.99)
        let verdict = p99 < Self.latencyGoalMilliseconds ? "met" : "not met"
        writeLine(String(
            format: "  p50 %.1f ms, p99 %.1f ms, max %.1f ms; goal p99 < %.0f ms: \(verdict) (p99 is %.2f× the goal)",
            Self.percentile(milliseconds, 0.5), p99, milliseconds.last!, Self.latencyGoalMilliseconds, p99 / Self.latencyGoalMilliseconds
        ))
    }

    /// The value below which `fraction` of the sorted `values` lie (nearest rank).
    static func percentile(_ values: [Double], _ fraction: Double) -> Double {
        values[min(values.count - 1, max(0, Int((fraction * Double(values.count)).rounded(.up)) - 1))]
    }

    static func throughputCamera(_ index: Int) -> String { "walk-\(index)" }
    static func latencyCamera(_ index: Int) -> String { "door-\(index)" }
    /// The camera of the record that shows the latency run's worker and consumer ready.
    static let primingCamera = "door-priming"

    // MARK: Rules

    /// `--rules` rules on the throughput cameras, the kinds of `vigil bench match` in turn, and
    /// the latency run's door: the right half of the frame, an incident as soon as a person is in it.
    func rulesYAML() -> String {
        let throughputCameras = "[" + (0..<cameras).map(Self.throughputCamera).joined(separator: ", ") + "]"
        let objects = "{classes: [person], min_score: 0.5}"
        var yaml = "rules:\n"
        for index in 0..<rules {
            let left = Double(index % 5) * 0.16
            let zone = String(format: "[[%.2f, 0.2], [%.2f, 0.25], [%.2f, 0.9], [%.2f, 0.85]]", left, left + 0.3, left + 0.28, left + 0.02)
            yaml += "  bench-\(index):\n    cameras: \(throughputCameras)\n"
            switch index {
            case rules - 1:
                yaml += "    kind: camera_offline\n"
            case rules - 2:
                yaml += "    kind: camera_tamper\n"
            default:
                switch index % 4 {
                case 0: yaml += "    kind: zone_intrusion\n    zone: \(zone)\n    objects: \(objects)\n    confirm_after: 1s\n"
                case 1: yaml += String(format: "    kind: line_crossing\n    line: {from: [%.2f, 0.0], to: [%.2f, 1.0]}\n", left + 0.1, left + 0.1) + "    objects: \(objects)\n    direction: both\n"
                case 2: yaml += "    kind: hazard_dwell\n    zone: \(zone)\n    objects: \(objects)\n    dwell: 5s\n"
                default: yaml += "    kind: crowd_density\n    zone: \(zone)\n    objects: \(objects)\n    max_count: 3\n    sustained_for: 2s\n    purpose: Crowding on the benchmark's walkway\n"
                }
            }
        }
        yaml += """
              latency-door:
                cameras: [\(((0..<latencyCameras).map(Self.latencyCamera) + [Self.primingCamera]).joined(separator: ", "))]
                kind: zone_intrusion
                zone: [[0.5, 0.0], [1.0, 0.0], [1.0, 1.0], [0.5, 1.0]]
                objects: \(objects)
                confirm_after: 0s
                close_after: \(Self.closeAfter.milliseconds)ms

            """
        return yaml
    }

    // MARK: Throughput

    /// Produces the throughput run's frames, camera after camera for each step, each captured
    /// 200 ms after its camera's previous one from `start` on; their size in MB.
    private func produceDetections(start: Int64, kafka: KafkaConfiguration, logger: Logger) async throws -> Double {
        let walkers = WalkingPersons(persons: persons)
        let producer = try KafkaProducer(configuration: .init(cluster: kafka), logger: logger)
        var pending: [KafkaPendingDelivery] = []
        pending.reserveCapacity(records)
        var bytes = 0
        do {
            for index in 0..<records {
                let camera = index % cameras, step = index / cameras
                let time = start + Int64(step) * 200
                let id = Self.throughputCamera(camera)
                let value = try walkers.frame(camera: camera, id: id, step: step, time: time).serializedBytes() as [UInt8]
                bytes += value.count
                pending.append(try await producer.enqueue(KafkaProducerMessage(
                    topic: MatchStage.detectionsTopic, key: id, value: value,
                    headers: [KafkaHeader(key: RecordHeaders.eventTime, value: String(time))]
                )))
            }
            for delivery in pending { _ = try await delivery.report() }
        } catch {
            await producer.close()
            throw error
        }
        await producer.close()
        return Double(bytes) / 1_000_000
    }

    /// kcat reading detections.v1 from its beginning to its end: the median of three runs, in seconds.
    private func readWithKcat(cluster: BenchDevCluster, bench: BenchProcesses) throws -> Double {
        try bench.kcatMedianSeconds(kcat, cluster: cluster, topic: MatchStage.detectionsTopic, expected: records, fetchWaitMs: fetchWaitMs) { read in
            "kcat read \(read) of the \(records) records of detections.v1: each mock partition keeps only its newest 5 MiB; ask for fewer records (--records) or smaller ones (--persons)"
        }
    }

    struct Throughput {
        /// First record taken → the committed offsets cover every record.
        var seconds: Double
        /// First record taken → every record taken.
        var takenSeconds: Double
        /// Process start → first record taken: start, tables, group join.
        var startupSeconds: Double
        var incidents: Double
        var snapshots: Double
        var deadLettered: Double
        /// CPU time over `seconds`.
        var workerCPUSeconds: Double
        var clusterCPUSeconds: Double
    }

    private func measureThroughput(
        executable: String, environment: [String: String], group: String, changelog: String, cluster: BenchDevCluster, kafka: KafkaConfiguration,
        bench: BenchProcesses, logger: Logger
    ) async throws -> Throughput {
        let admin = try KafkaAdmin(configuration: kafka, logger: logger)
        let inputs = (0..<cluster.partitions(of: MatchStage.detectionsTopic)).map { KafkaTopicPartition(topic: MatchStage.detectionsTopic, partition: Int32($0)) }
        let detections = "topic=\"\(MatchStage.detectionsTopic)\""
        let launched = ContinuousClock.now
        let worker = try BenchWorker(executable, name: "vigil-match", environment: bench.admin.merging(environment) { $1 }, log: bench.scratch.appendingPathComponent("match-throughput.log"))
        do {
            var firstTaken: ContinuousClock.Instant?
            var allTaken: ContinuousClock.Instant?
            var committed: ContinuousClock.Instant?
            // CPU seconds of the worker and of the dev cluster, at the first record and once all are committed.
            var cpuAtStart = (worker: 0.0, cluster: 0.0), cpuAtEnd = (worker: 0.0, cluster: 0.0)
            func cpu() throws -> (worker: Double, cluster: Double) {
                (try cpuSeconds(of: worker.process.processIdentifier), try cpuSeconds(of: cluster.process.processIdentifier))
            }
            while committed == nil {
                try worker.checkRunning()
                guard ContinuousClock.now - launched < .seconds(600) else {
                    throw BenchFailure("vigil-match did not process \(records) records within 10 minutes:\n\(worker.logTail)")
                }
                if allTaken == nil, let taken = try await worker.metrics()?.sum("vigil_records_in_total", label: detections) {
                    let now = ContinuousClock.now
                    if taken > 0, firstTaken == nil {
                        firstTaken = now
                        cpuAtStart = try cpu()
                    }
                    if taken >= Double(records) { allTaken = now }
                }
                if allTaken != nil {
                    let offsets = try await admin.committedOffsets(group: group, partitions: inputs)
                    if offsets.values.reduce(0, { $0 + ($1 ?? 0) }) >= records {
                        committed = .now
                        cpuAtEnd = try cpu()
                    }
                }
                // Often enough to time a run of seconds; rarely enough that serving /metrics costs the worker little.
                try await Task.sleep(for: .milliseconds(50))
            }
            let metrics = try await worker.metrics()
            let termination = await worker.stop()
            guard termination == .exited(0) else { throw BenchFailure("vigil-match did not stop cleanly (\(termination.map { "\($0)" } ?? "still running")):\n\(worker.logTail)") }
            // Every snapshot it wrote, its last flush included: the changelog held nothing before.
            var snapshots: Int64 = 0
            for partition in 0..<cluster.partitions(of: changelog) {
                snapshots += try await admin.watermarks(KafkaTopicPartition(topic: changelog, partition: Int32(partition))).high
            }
            let first = firstTaken!
            func seconds(_ duration: Duration) -> Double { Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18 }
            return Throughput(
                seconds: seconds(committed! - first), takenSeconds: seconds(allTaken! - first), startupSeconds: seconds(first - launched),
                incidents: metrics?.sum("vigil_records_out_total", label: "topic=\"\(MatchStage.incidentsTopic)\"") ?? 0,
                snapshots: Double(snapshots), deadLettered: metrics?.sum("vigil_records_dead_lettered_total") ?? 0,
                workerCPUSeconds: cpuAtEnd.worker - cpuAtStart.worker, clusterCPUSeconds: cpuAtEnd.cluster - cpuAtStart.cluster
            )
        } catch {
            await worker.stop()
            throw error
        }
    }

    // MARK: Latency

    struct Latency {
        var expected: Int
        var milliseconds: [Double]
    }

    private func measureLatency(
        executable: String, environment: [String: String], kafka: KafkaConfiguration, bench: BenchProcesses, logger: Logger
    ) async throws -> Latency {
        let worker = try BenchWorker(executable, name: "vigil-match", environment: bench.admin.merging(environment) { $1 }.merging([
            "MATCH_ALLOWED_LATENESS_MS": "0", "KAFKA_PROPERTIES": "fetch.wait.max.ms=\(fetchWaitMs)",
        ]) { $1 }, log: bench.scratch.appendingPathComponent("match-latency.log"))
        do {
            try await worker.waitUntilReady()
            let latency = try await pacedStream(kafka: kafka, worker: worker, logger: logger)
            let termination = await worker.stop()
            guard termination == .exited(0) else { throw BenchFailure("vigil-match did not stop cleanly (\(termination.map { "\($0)" } ?? "still running")):\n\(worker.logTail)") }
            return latency
        } catch {
            await worker.stop()
            throw error
        }
    }

    /// The paced stream, and the incidents it opens read back as they come.
    private func pacedStream(kafka: KafkaConfiguration, worker: BenchWorker, logger: Logger) async throws -> Latency {
        var fetching = kafka
        fetching.properties["fetch.wait.max.ms"] = String(fetchWaitMs)
        let consumer = try KafkaConsumer(
            configuration: KafkaConsumerConfiguration(cluster: fetching, groupID: "vigil-bench-latency-\(getpid())", topics: [MatchStage.incidentsTopic]),
            logger: logger
        )
        let samples = LatencySamples()
        let reading = Task {
            for try await message in consumer.messages {
                let arrived = ContinuousClock.now
                guard let incident = try? Vigil_V1_Incident(serializedBytes: message.value), incident.state == .opened else { continue }
                samples.arrived(camera: incident.cameraID, windowStart: incident.windowStart.milliseconds, at: arrived)
            }
        }
        let producer = try KafkaProducer(configuration: KafkaProducerConfiguration(cluster: kafka, linger: .zero), logger: logger)
        do {
            // Joining the group takes seconds; incidents opened before the join would arrive late.
            let joinDeadline = ContinuousClock.now + .seconds(60)
            while consumer.assignment.isEmpty {
                guard ContinuousClock.now < joinDeadline else { throw BenchFailure("the consumer of \(MatchStage.incidentsTopic) got no partitions within 60 s") }
                try await Task.sleep(for: .milliseconds(20))
            }
            try await prime(producer, samples: samples, worker: worker)
            try await stream(into: producer, samples: samples, worker: worker)
            // The last incidents' way through, with room for a slow moment.
            let deadline = ContinuousClock.now + .seconds(5)
            while samples.outstanding > 0, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        } catch {
            await producer.close()
            await consumer.close()
            _ = try? await reading.value
            throw error
        }
        await producer.close()
        await consumer.close()
        try await reading.value
        return Latency(expected: samples.expected, milliseconds: samples.milliseconds)
    }

    /// `rate` records a second, the cameras in turn. On each camera a person stands in the
    /// door for two frames, then out of it until its incident has closed and a frame more.
    private func stream(into producer: KafkaProducer, samples: LatencySamples, worker: BenchWorker) async throws {
        let framesPerSecond = Double(rate) / Double(latencyCameras)
        let outside = max(2, Int((framesPerSecond * Double(Self.closeAfter.milliseconds) / 1_000).rounded(.up)) + 2)
        let cycle = 2 + outside
        let interval = Duration.seconds(1) / rate
        let clock = ContinuousClock()
        let begin = clock.now
        let measuredFrom = begin + .seconds(warmUp)
        var pending: [KafkaPendingDelivery] = []
        for index in 0..<(rate * (warmUp + latencySeconds)) {
            try await clock.sleep(until: begin + interval * index, tolerance: nil)
            if index % rate == 0 { try worker.checkRunning() }
            let camera = index % latencyCameras, step = index / latencyCameras
            // The cameras out of step, so the incidents spread over the cycle.
            let phase = (step + camera * cycle / latencyCameras) % cycle
            let inside = phase < 2
            let opens = inside && (phase == 0 || step == 0)
            pending.append(try await send(
                Self.latencyCamera(camera), step: step, inside: inside, to: producer, expecting: opens ? samples : nil, measured: clock.now >= measuredFrom
            ))
        }
        for delivery in pending { _ = try await delivery.report() }
    }

    /// Before the stream: a record that opens an incident on a camera of its own, and the wait
    /// until that incident is read. Then the worker has its partitions and has restored their
    /// state (which takes a while after a long throughput run), and the consumer fetches.
    private func prime(_ producer: KafkaProducer, samples: LatencySamples, worker: BenchWorker) async throws {
        let delivery = try await send(Self.primingCamera, step: 0, inside: true, to: producer, expecting: samples, measured: false)
        _ = try await delivery.report()
        let deadline = ContinuousClock.now + .seconds(60)
        while samples.isWaiting(for: Self.primingCamera) {
            try worker.checkRunning()
            guard ContinuousClock.now < deadline else { throw BenchFailure("the first incident of the latency run did not arrive within 60 s:\n\(worker.logTail)") }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Sends camera `id`'s frame `step`, captured now, a person in the door or out of it; when
    /// it opens an incident, `samples` expects it (counting it if `measured`).
    private func send(
        _ id: String, step: Int, inside: Bool, to producer: KafkaProducer, expecting samples: LatencySamples?, measured: Bool
    ) async throws -> KafkaPendingDelivery {
        let time = Int64(Date().timeIntervalSince1970 * 1_000)
        var frame = Vigil_V1_FrameDetections()
        frame.cameraID = id
        frame.frameSequence = UInt64(step)
        frame.captureTime = Google_Protobuf_Timestamp(milliseconds: time)
        frame.objects = [WalkingPersons.person(track: 1, x: inside ? 0.75 : 0.25, y: 0.6)]
        let value: [UInt8] = try frame.serializedBytes()
        samples?.expect(camera: id, windowStart: time, at: .now, measured: measured)
        return try await producer.enqueue(KafkaProducerMessage(
            topic: MatchStage.detectionsTopic, key: id, value: value, headers: [KafkaHeader(key: RecordHeaders.eventTime, value: String(time))]
        ))
    }
}

/// The latency run's measurements: when each incident-opening record was sent, and how long
/// its incident took to arrive. Written by the stream and the consumer's task.
private final class LatencySamples: @unchecked Sendable {
    private let lock = NSLock()
    /// Incident-opening records whose incident has not arrived yet, by camera and capture time.
    private var waiting: [String: (camera: String, sent: ContinuousClock.Instant, measured: Bool)] = [:]  // guarded by `lock`
    private var latencies: [Double] = []  // guarded by `lock`
    private var expectedCount = 0  // guarded by `lock`

    func expect(camera: String, windowStart: Int64, at instant: ContinuousClock.Instant, measured: Bool) {
        lock.withLock {
            waiting["\(camera) \(windowStart)"] = (camera, instant, measured)
            if measured { expectedCount += 1 }
        }
    }

    func arrived(camera: String, windowStart: Int64, at instant: ContinuousClock.Instant) {
        lock.withLock {
            guard let record = waiting.removeValue(forKey: "\(camera) \(windowStart)"), record.measured else { return }
            let elapsed = instant - record.sent
            latencies.append(Double(elapsed.components.seconds) * 1_000 + Double(elapsed.components.attoseconds) / 1e15)
        }
    }

    func isWaiting(for camera: String) -> Bool { lock.withLock { waiting.values.contains { $0.camera == camera } } }
    var expected: Int { lock.withLock { expectedCount } }
    var outstanding: Int { lock.withLock { waiting.values.filter(\.measured).count } }
    var milliseconds: [Double] { lock.withLock { latencies } }
}
