import Alert
import ArgumentParser
import ChildProcesses
import CommandLineSupport
import DevCluster
import Foundation
import Kafka
import Logging
import SwiftProtobuf
import Topology
import VigilSchema
import Webhooks
import WorkerRuntime

/// The vigil-alert worker as it runs, on a dev cluster made from the topology, against what no
/// implementation can avoid in the same run: kcat reading the incidents, wrk posting the same
/// webhook requests to the same receiver.
struct AlertBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "alert",
        abstract: "The vigil-alert worker on a dev cluster: incidents/s vs kcat, webhook deliveries/s vs wrk, incident → webhook latency p50/p99.",
        discussion: """
            Starts `vigil dev-cluster` with the topology's topics and a webhook receiver on loopback in this process (WebhookReceiver: every request's Standard Webhooks signature checked, as `vigil webhooks listen` does).

            Confirmation: --incidents camera-tamper incidents (each alerts at once, its kind's default policy), keyed over --cameras cameras, are produced to incidents.v1 first. kcat -C -e reads the topic three times (median wall time). Then vigil-alert (the executable next to this binary, no webhook endpoint yet) takes them: from its first record taken until its committed offsets cover all of them, i.e. each alert, changelog snapshot and audit event acknowledged. ratio = worker / kcat; goal ≥ 0.3.

            Deliveries: an endpoint pointing at the receiver is applied (`vigil webhooks apply`), a new vigil-alert starts, and --deliveries new incidents are produced: from the first request the receiver verified to the last distinct one. The anchor is wrk (-t1 -c1, one connection as vigil-alert's one request in flight per endpoint) posting the same signed body and headers to the same receiver for --wrk-seconds. ratio = deliveries/s / wrk requests/s; goal ≥ 0.5.

            Latency: --rate incidents a second for --latency-seconds (after --warm-up), each opening an alert at once; from handing the incident to a producer (linger 0) to the receiver verifying its webhook, both in this process. No confirmation window is in it. The worker's consumers fetch with fetch.wait.max.ms = --fetch-wait-ms: a mock broker holds a fetch that finds nothing that long, where a real broker answers when a record arrives. Goal: p99 < 100 ms.
            """
    )

    @Option(help: "Incidents of the confirmation run.") var incidents = 20_000
    @Option(help: "Incidents of the delivery run.") var deliveries = 2_000
    @Option(help: "Cameras the incidents are spread over.") var cameras = 50
    @Option(help: "Incidents per second of the latency run.") var rate = 50
    @Option(help: "Seconds of the latency run that are measured.") var latencySeconds = 10
    @Option(help: "Seconds of the latency run before those measured.") var warmUp = 2
    @Option(help: "How long wrk posts, in seconds.") var wrkSeconds = 5
    @Option(help: "fetch.wait.max.ms of kcat and of the worker's consumers.") var fetchWaitMs = 5
    @Option(help: "Path of kcat.") var kcat = "/usr/bin/kcat"
    @Option(help: "Path of wrk.") var wrk = "/usr/bin/wrk"
    @Flag(help: "Keep the logs of the cluster, the workers, kcat and wrk (they are kept anyway when the run fails).") var keepLogs = false
    @OptionGroup(title: "Topology") var topology: TopologyOption
    @OptionGroup var logging: LoggingOptions

    static let confirmationGoal = 0.3
    static let deliveryGoal = 0.5
    static let latencyGoalMilliseconds = 100.0
    static let secretVariable = "VIGIL_BENCH_WEBHOOK_SECRET"

    func validate() throws {
        guard incidents >= 1, deliveries >= 1, cameras >= 1, rate >= 1, latencySeconds >= 1, warmUp >= 0, wrkSeconds >= 1, fetchWaitMs >= 0 else {
            throw ValidationError("--incidents, --deliveries, --cameras, --rate, --latency-seconds and --wrk-seconds must be at least 1; --warm-up and --fetch-wait-ms at least 0")
        }
    }

    func run() async throws {
        var quiet = logging.bootstrap(label: "vigil.bench")
        quiet.logLevel = max(quiet.logLevel, .warning)
        let logger = quiet
        let declared = try topology.loadValid()
        guard let entry = declared.workers.first(where: { $0.name == "vigil-alert" }) else {
            throw ValidationError("\(topology.topology) declares no vigil-alert worker")
        }
        let bench = try BenchProcesses(bench: "alert")
        let executable = try bench.executable("vigil-alert")
        let cluster = try await bench.startDevCluster(["--topology", topology.url.path])
        let secretText = "whsec_" + Data((0..<32).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
        let receiver = WebhookReceiver(secrets: [StandardWebhooks.Secret(secretText)!], logger: logger)
        let arrivals = Arrivals()
        let port = ReceiverPort()
        let receiving = Task { try await receiver.run(port: 0, onListening: port.set, onDelivery: arrivals.record) }
        do {
            let url = "http://127.0.0.1:\(try await port.wait())/alerts"
            try await measure(
                cluster: cluster, group: entry.consumerGroup, executable: executable, url: url, secret: secretText, arrivals: arrivals, bench: bench, logger: logger
            )
        } catch {
            receiving.cancel()
            await cluster.stop()
            writeError("vigil bench alert: logs in \(bench.scratch.path)")
            throw error
        }
        receiving.cancel()
        await cluster.stop()
        if keepLogs {
            writeLine("")
            writeLine("logs (cluster, workers, kcat, wrk): \(bench.scratch.path)")
        } else {
            bench.clean()
        }
    }

    private func measure(
        cluster: BenchDevCluster, group: String, executable: String, url: String, secret: String, arrivals: Arrivals, bench: BenchProcesses, logger: Logger
    ) async throws {
        let kafka = KafkaConfiguration(bootstrapServers: cluster.bootstrapServers, clientID: "vigil-bench")
        writeLine("vigil bench alert — the vigil-alert worker (\(topology.topology)) on vigil dev-cluster: \(cluster.state.brokers) mock brokers, incidents.v1 of \(cluster.partitions(of: AlertStage.incidentsTopic)) partitions")
        let environment = [
            "KAFKA_BOOTSTRAP": cluster.bootstrapServers, "WORKER_TOPOLOGY": topology.url.path, "WORKER_NAME": "vigil-alert",
            "HTTP_HOST": "127.0.0.1", "HTTP_PORT": "0", "KAFKA_COMMIT_INTERVAL_MS": "100", "KAFKA_PROPERTIES": "fetch.wait.max.ms=\(fetchWaitMs)",
            Self.secretVariable: secret,
        ]

        // Confirmation, no endpoint yet.
        writeLine("")
        writeLine("confirmation — \(incidents) camera-tamper incidents pre-produced to incidents.v1 over \(cameras) cameras, no webhook endpoint")
        try await produce(count: incidents, prefix: "c", kafka: kafka, logger: logger)
        let anchor = try bench.kcatMedianSeconds(kcat, cluster: cluster, topic: AlertStage.incidentsTopic, expected: incidents, fetchWaitMs: fetchWaitMs) { read in
            "kcat read \(read) of the \(incidents) incidents: ask for fewer (--incidents)"
        }
        let taken = try await takeAll(executable: executable, environment: environment, group: group, cluster: cluster, kafka: kafka, bench: bench, logger: logger)
        let kcatRate = Double(incidents) / anchor, workerRate = Double(incidents) / taken.seconds
        writeLine(String(format: "  kcat -C -e     %9.0f records/s  (%d records in %.3f s: median of 3 runs)", kcatRate, incidents, anchor))
        writeLine(String(format: "  vigil-alert    %9.0f records/s  (%d incidents in %.2f s, first taken → offsets of all committed; CPU %.2f cores, %.0f µs an incident)",
            workerRate, incidents, taken.seconds, taken.cpuSeconds / taken.seconds, taken.cpuSeconds / Double(incidents) * 1e6))
        let confirmationRatio = workerRate / kcatRate
        writeLine(String(format: "  ratio vigil-alert / kcat = %.2f× (goal ≥ %.1f×: ", confirmationRatio, Self.confirmationGoal) + (confirmationRatio >= Self.confirmationGoal ? "met)" : "not met)"))

        // Deliveries.
        writeLine("")
        writeLine("deliveries — \(deliveries) new incidents, each on a camera of its own so each opens an alert; each alert revision signed and POSTed to \(url) (every signature checked by the receiver)")
        let endpoints = bench.scratch.appendingPathComponent("webhooks.yaml")
        try "webhooks:\n  bench-receiver:\n    url: \(url)\n    secrets: [env:\(Self.secretVariable)]\n".write(to: endpoints, atomically: true, encoding: .utf8)
        try await bench.runVigil(["webhooks", "apply", endpoints.path, "--bootstrap", cluster.bootstrapServers, "--actor", "vigil-bench"], log: "webhooks.log")
        // The endpoint is in force a second after apply.
        try await Task.sleep(for: .seconds(2))
        let worker = try BenchWorker(executable, name: "vigil-alert", environment: bench.admin.merging(environment) { $1 }, log: bench.scratch.appendingPathComponent("alert-deliveries.log"))
        do {
            try await worker.waitUntilReady()
            try await produce(count: deliveries, prefix: "d", ownCameras: true, kafka: kafka, logger: logger)
            let wanted = Set((0..<deliveries).map { "alert-d\($0)/1" })
            let deadline = ContinuousClock.now + .seconds(600)
            while !wanted.isSubset(of: arrivals.ids) {
                try worker.checkRunning()
                guard ContinuousClock.now < deadline else { throw BenchFailure("\(wanted.subtracting(arrivals.ids).count) of \(deliveries) webhooks did not arrive within 10 minutes:\n\(worker.logTail)") }
                try await Task.sleep(for: .milliseconds(20))
            }
            let times = arrivals.times(of: wanted)
            let span = seconds(times.max()! - times.min()!)
            let deliveryRate = Double(deliveries - 1) / max(span, 1e-6)
            let body = try wrkScript(url: url, secret: secret, bench: bench)
            let wrkRate = try runWrk(url: url, script: body, bench: bench)
            writeLine(String(format: "  wrk -t1 -c1    %9.0f requests/s  (the same signed body, %d bytes, to the same receiver for %d s)", wrkRate.rate, wrkRate.bodyBytes, wrkSeconds))
            writeLine(String(format: "  vigil-alert    %9.0f deliveries/s (%d in %.2f s, first to last verified at the receiver; one request in flight per endpoint)", deliveryRate, deliveries, span))
            let ratio = deliveryRate / wrkRate.rate
            writeLine(String(format: "  ratio vigil-alert / wrk = %.2f× (goal ≥ %.1f×: ", ratio, Self.deliveryGoal) + (ratio >= Self.deliveryGoal ? "met)" : "not met)"))

            // Latency, on the same worker.
            writeLine("")
            writeLine("latency — incident produced → its webhook verified at the receiver: \(rate) incidents/s, each on a camera of its own, for \(latencySeconds) s (+\(warmUp) s warm-up), each alerting at once (no confirmation window), fetch.wait.max.ms=\(fetchWaitMs)")
            let milliseconds = try await pacedLatency(kafka: kafka, arrivals: arrivals, worker: worker, logger: logger)
            let p99 = MatchClusterBench.percentile(milliseconds, 0.99)
            writeLine("  \(milliseconds.count) of \(rate * latencySeconds) measured webhooks arrived")
            writeLine(String(
                format: "  p50 %.1f ms, p99 %.1f ms, max %.1f ms; goal p99 < %.0f ms: \(p99 < Self.latencyGoalMilliseconds ? "met" : "not met") (p99 is %.2f× the goal)",
                MatchClusterBench.percentile(milliseconds, 0.5), p99, milliseconds.last ?? 0, Self.latencyGoalMilliseconds, p99 / Self.latencyGoalMilliseconds
            ))
            let termination = await worker.stop()
            guard termination == .exited(0) else { throw BenchFailure("vigil-alert did not stop cleanly:\n\(worker.logTail)") }
        } catch {
            await worker.stop()
            throw error
        }
    }

    // MARK: Incidents

    static func incident(_ id: String, camera: String, at time: Int64) throws -> KafkaProducerMessage {
        var incident = Vigil_V1_Incident()
        incident.incidentID = id
        incident.ruleID = "bench-tamper"
        incident.kind = .cameraTamper
        incident.cameraID = camera
        incident.severity = .major
        incident.revision = 1
        incident.state = .opened
        incident.windowStart = Google_Protobuf_Timestamp(milliseconds: time)
        incident.windowEnd = Google_Protobuf_Timestamp(milliseconds: time)
        incident.summary = "the lens is covered"
        return KafkaProducerMessage(
            topic: AlertStage.incidentsTopic, key: camera, value: try incident.serializedBytes(),
            headers: [KafkaHeader(key: RecordHeaders.eventTime, value: String(time))]
        )
    }

    /// `count` incidents with ids `<prefix><index>`; with `ownCameras` each on a camera of its own
    /// (so each opens an alert `alert-<id>` rather than linking to one of its camera's), else
    /// over `--cameras` cameras.
    private func produce(count: Int, prefix: String, ownCameras: Bool = false, kafka: KafkaConfiguration, logger: Logger) async throws {
        let producer = try KafkaProducer(configuration: .init(cluster: kafka), logger: logger)
        do {
            let now = Int64(Date().timeIntervalSince1970 * 1_000)
            var pending: [KafkaPendingDelivery] = []
            for index in 0..<count {
                let camera = ownCameras ? "\(prefix)-\(index)" : "bench-\(index % cameras)"
                pending.append(try await producer.enqueue(try Self.incident("\(prefix)\(index)", camera: camera, at: now)))
            }
            for delivery in pending { _ = try await delivery.report() }
        } catch {
            await producer.close()
            throw error
        }
        await producer.close()
    }

    /// A vigil-alert taking every pre-produced incident: first taken → all committed, and its CPU time over that.
    private func takeAll(
        executable: String, environment: [String: String], group: String, cluster: BenchDevCluster, kafka: KafkaConfiguration, bench: BenchProcesses, logger: Logger
    ) async throws -> (seconds: Double, cpuSeconds: Double) {
        let admin = try KafkaAdmin(configuration: kafka, logger: logger)
        let inputs = (0..<cluster.partitions(of: AlertStage.incidentsTopic)).map { KafkaTopicPartition(topic: AlertStage.incidentsTopic, partition: Int32($0)) }
        let worker = try BenchWorker(executable, name: "vigil-alert", environment: bench.admin.merging(environment) { $1 }, log: bench.scratch.appendingPathComponent("alert-confirmation.log"))
        do {
            let launched = ContinuousClock.now
            var first: (ContinuousClock.Instant, Double)?
            while true {
                try worker.checkRunning()
                guard ContinuousClock.now - launched < .seconds(600) else { throw BenchFailure("vigil-alert did not take \(incidents) incidents within 10 minutes:\n\(worker.logTail)") }
                if first == nil, let taken = try await worker.metrics()?.sum("vigil_records_in_total", label: "topic=\"\(AlertStage.incidentsTopic)\""), taken > 0 {
                    first = (.now, try cpuSeconds(of: worker.process.processIdentifier))
                }
                if let first {
                    let offsets = try await admin.committedOffsets(group: group, partitions: inputs)
                    if offsets.values.reduce(0, { $0 + ($1 ?? 0) }) >= incidents {
                        let result = (seconds(.now - first.0), try cpuSeconds(of: worker.process.processIdentifier) - first.1)
                        let termination = await worker.stop()
                        guard termination == .exited(0) else { throw BenchFailure("vigil-alert did not stop cleanly:\n\(worker.logTail)") }
                        return result
                    }
                }
                try await Task.sleep(for: .milliseconds(50))
            }
        } catch {
            await worker.stop()
            throw error
        }
    }

    // MARK: wrk

    /// A Lua script for wrk posting one real signed request (signed now: the receiver accepts it
    /// for five minutes, longer than wrk runs).
    private func wrkScript(url: String, secret: String, bench: BenchProcesses) throws -> (path: String, bodyBytes: Int) {
        var alert = Vigil_V1_Alert()
        alert.alertID = "alert-wrk"
        alert.revision = 1
        alert.state = .open
        alert.severity = .major
        alert.incident = try Vigil_V1_Incident(serializedBytes: Self.incident("wrk", camera: "bench-0", at: Int64(Date().timeIntervalSince1970 * 1_000)).value)
        alert.incidentIds = ["wrk"]
        let request = WebhookSender.Request.revision(alert, eventType: AlertChange.opened.eventType, to: url, secrets: [StandardWebhooks.Secret(secret)!])
        func lua(_ text: String) -> String { "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\"" }
        var script = "wrk.method = \"POST\"\nwrk.body = \(lua(String(decoding: request.body, as: UTF8.self)))\n"
        script += "wrk.headers[\"content-type\"] = \"application/cloudevents+json\"\n"
        for header in request.headers { script += "wrk.headers[\(lua(header.name))] = \(lua(header.value))\n" }
        let path = bench.scratch.appendingPathComponent("post.lua").path
        try script.write(toFile: path, atomically: true, encoding: .utf8)
        return (path, request.body.count)
    }

    private func runWrk(url: String, script: (path: String, bodyBytes: Int), bench: BenchProcesses) throws -> (rate: Double, bodyBytes: Int) {
        let run = try ChildProcess.run(wrk, ["-t1", "-c1", "-d\(wrkSeconds)s", "-s", script.path, url], standardError: .lines)
        try? (run.output + run.errorOutput).joined(separator: "\n").write(to: bench.scratch.appendingPathComponent("wrk.log"), atomically: true, encoding: .utf8)
        guard run.termination == .exited(0), let line = run.output.first(where: { $0.hasPrefix("Requests/sec:") }),
            let rate = Double(line.dropFirst("Requests/sec:".count).trimmingCharacters(in: .whitespaces))
        else { throw BenchFailure("wrk \(run.termination) gave no Requests/sec (see \(bench.scratch.path)/wrk.log)") }
        guard !run.output.contains(where: { $0.contains("Non-2xx") }) else {
            throw BenchFailure("the receiver refused wrk's requests (see \(bench.scratch.path)/wrk.log): the anchor must post what it accepts")
        }
        return (rate, script.bodyBytes)
    }

    // MARK: Latency

    private func pacedLatency(kafka: KafkaConfiguration, arrivals: Arrivals, worker: BenchWorker, logger: Logger) async throws -> [Double] {
        let producer = try KafkaProducer(configuration: KafkaProducerConfiguration(cluster: kafka, linger: .zero), logger: logger)
        var sent: [String: ContinuousClock.Instant] = [:]
        do {
            let interval = Duration.seconds(1) / rate
            let clock = ContinuousClock()
            let begin = clock.now
            var pending: [KafkaPendingDelivery] = []
            for index in 0..<(rate * (warmUp + latencySeconds)) {
                try await clock.sleep(until: begin + interval * index, tolerance: nil)
                if index % rate == 0 { try worker.checkRunning() }
                let id = "l\(index)"
                // A camera of its own: the incident opens an alert of its own, at once.
                let message = try Self.incident(id, camera: "latency-\(index)", at: Int64(Date().timeIntervalSince1970 * 1_000))
                if index >= rate * warmUp { sent["alert-\(id)/1"] = .now }
                pending.append(try await producer.enqueue(message))
            }
            for delivery in pending { _ = try await delivery.report() }
        } catch {
            await producer.close()
            throw error
        }
        await producer.close()
        let deadline = ContinuousClock.now + .seconds(10)
        while !Set(sent.keys).isSubset(of: arrivals.ids), ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        let received = arrivals.firstArrivals
        return sent.compactMap { id, at in received[id].map { seconds($0 - at) * 1_000 } }.sorted()
    }

    private func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}

/// When each webhook id first reached the receiver, verified.
private final class Arrivals: @unchecked Sendable {
    private let lock = NSLock()
    private var first: [String: ContinuousClock.Instant] = [:]  // guarded by `lock`

    func record(_ delivery: WebhookReceiver.Delivery) {
        lock.withLock { if first[delivery.id] == nil { first[delivery.id] = delivery.received } }
    }

    var ids: Set<String> { lock.withLock { Set(first.keys) } }
    var firstArrivals: [String: ContinuousClock.Instant] { lock.withLock { first } }
    func times(of ids: Set<String>) -> [ContinuousClock.Instant] { lock.withLock { ids.compactMap { first[$0] } } }
}

/// The receiver's port, once it listens.
private final class ReceiverPort: @unchecked Sendable {
    private let lock = NSLock()
    private var port: Int?

    func set(_ value: Int) { lock.withLock { port = value } }

    func wait() async throws -> Int {
        let deadline = ContinuousClock.now + .seconds(10)
        while true {
            if let port = lock.withLock({ port }) { return port }
            guard ContinuousClock.now < deadline else { throw BenchFailure("the webhook receiver did not start within 10 s") }
            try await Task.sleep(for: .milliseconds(10))
        }
    }
}
