import ArgumentParser
import Alert
import Audit
import Cameras
import ChildProcesses
import CommandLineSupport
import Crypto
import DevCluster
import Foundation
import Kafka
import Logging
import Match
import SigningKeys
import Supervisor
import SwiftProtobuf
import Topology
import UnixSignals
import VigilSchema
import WorkerRuntime

/// `vigil up`: the whole data path on one machine, the way `docker compose up` feels.
struct UpCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "up",
        abstract: "Run the dev cluster and one replica of every worker, supervised, with a live summary and incidents.",
        discussion: """
            Starts `vigil dev-cluster` with the topology's topics, applies the cameras file (--cameras), every rules file of --rules (each on its own: a file with problems is reported and the others apply) and the webhooks file (--webhooks), then starts vigil-ingest, vigil-decode, vigil-detect, vigil-match, vigil-alert and vigil-audit (those built next to this binary) as child processes. Their log lines are prefixed with the replica's name; a replica that exits on its own is restarted after 1 s, the wait doubling to 30 s while it keeps failing.

            Every --summary seconds it prints per worker the records taken and written per second, lag, dead-lettered and skipped records, and restarts; incidents are printed as they open, update and close, and alerts at each revision.

            --for stops by itself; Ctrl-C or SIGTERM stops every worker with SIGTERM (they commit their offsets), writes the run's redacted snapshots to --snapshots if given, then stops the cluster. No process is left behind.
            """
    )

    static let stages = ["vigil-ingest", "vigil-decode", "vigil-detect", "vigil-match", "vigil-alert", "vigil-audit"]

    @Option(help: "A cameras file to apply (see `vigil cameras apply --help`).")
    var cameras: String?

    @Option(help: "A rules file or a folder of them to apply (see `vigil rules apply --help`).")
    var rules: String?

    @Option(help: "A webhooks file to apply (see `vigil webhooks apply --help`); vigil-alert signs with the secrets it names, read from this environment.")
    var webhooks: String?

    @Option(name: .customLong("for"), help: "Stop after this long (e.g. 60s, 5m); default: until Ctrl-C or SIGTERM.")
    var duration: String?

    @Option(name: .customLong("replicas"), help: "More replicas of a worker, as NAME=N (e.g. vigil-detect=2). Repeatable.")
    var replicaCounts: [String] = []

    @Option(help: "Seconds between summaries.")
    var summary = 5

    @Option(help: "At the end, write the run's redacted snapshots to this folder as JPEG files (before the cluster, which keeps them only in memory, stops).")
    var snapshots: String?

    @Flag(help: "Draw the detected objects' boxes on the snapshots written to --snapshots.")
    var boxes = false

    @Option(help: "Port of the dev cluster's control API on 127.0.0.1 (0: any free port). One in use is reported and a free one taken.")
    var controlPort = 0

    @Option(help: "First port of the workers' HTTP servers (/metrics, /health) on 127.0.0.1, one per replica in turn (0: any free ports). Ports in use are reported and skipped.")
    var metricsPort = 0

    @Option(help: "Folder for the cluster's state file and logs.")
    var stateDirectory = ".vigil/up"

    @Option(help: "The models folder vigil-detect loads (Scripts/fetch-models fills it).")
    var modelsDirectory = "models"

    @OptionGroup(title: "Topology") var topology: TopologyOption
    @OptionGroup var logging: LoggingOptions

    var runFor: Duration? {
        get throws {
            guard let duration else { return nil }
            let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3_600)]
            for (suffix, seconds) in units where duration.hasSuffix(suffix) {
                if let amount = Double(duration.dropLast(suffix.count)), amount > 0 { return .milliseconds(Int64(amount * seconds * 1_000)) }
            }
            throw ValidationError("--for must be a duration such as 90s, 5m or 1h")
        }
    }

    func replicas() throws -> [String: Int] {
        var counts = Dictionary(uniqueKeysWithValues: Self.stages.map { ($0, 1) })
        for entry in replicaCounts {
            let parts = entry.split(separator: "=")
            let name = parts.first.map { $0.hasPrefix("vigil-") ? String($0) : "vigil-\($0)" } ?? ""
            guard parts.count == 2, counts[name] != nil, let count = Int(parts[1]), (0...12).contains(count) else {
                throw ValidationError("--replicas takes NAME=N with NAME one of \(Self.stages.joined(separator: ", ")) and N from 0 to 12, not \(entry)")
            }
            counts[name] = count
        }
        return counts
    }

    func validate() throws {
        _ = try runFor
        _ = try replicas()
        guard summary >= 1 else { throw ValidationError("--summary must be at least 1 second") }
        for (name, port) in [("--control-port", controlPort), ("--metrics-port", metricsPort)] where !(0...65_000).contains(port) {
            throw ValidationError("\(name) must be a port from 1 to 65000, or 0 for any free port, not \(port)")
        }
    }

    func run() async throws {
        let logger = logging.bootstrap(label: "vigil.up")
        let binaries = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        let vigil = binaries.appendingPathComponent("vigil").path
        try FileManager.default.createDirectory(atPath: stateDirectory, withIntermediateDirectories: true)
        let topologyPath = topology.topology
        let declared = try topology.load()

        // The cluster first; everything else talks to it.
        let stateFile = (stateDirectory as NSString).appendingPathComponent("dev-cluster.json")
        try? FileManager.default.removeItem(atPath: stateFile)
        var controlPort = controlPort
        if controlPort != 0, !LocalPort.isFree(controlPort) {
            writeError("vigil up: port \(controlPort) on 127.0.0.1 is in use (another vigil up or dev cluster?); the control API takes a free port instead. `vigil dev-cluster` commands find it through \(stateDirectory)/dev-cluster.json")
            controlPort = 0
        }
        // Children stop by themselves if `vigil up` is killed and cannot stop them.
        var childEnvironment = ProcessInfo.processInfo.environment
        childEnvironment[ParentWatch.environmentKey] = "\(getpid())"
        // The dev cluster's cameras are signed by a dev admin of the state folder, whom the workers trust.
        childEnvironment.merge(try DevAdmin.environment(in: stateDirectory)) { $1 }
        let cluster = try ChildProcess(
            executable: vigil,
            arguments: ["dev-cluster", "--state-file", stateFile, "--topology", topologyPath, "--control-port", "\(controlPort)", "--log-level", "warning"],
            name: "dev-cluster", environment: childEnvironment, standardOutput: .lines, standardError: .lines, keepingLines: 100
        ) { _, line in writeError("[dev-cluster] \(line)") }
        let bootstrap: String
        do {
            bootstrap = try await Self.bootstrap(of: cluster, stateFile: stateFile)
        } catch {
            cluster.signal(SIGTERM)
            _ = try? await cluster.waitForExit(timeout: .seconds(10))
            throw error
        }
        writeLine("vigil up: dev cluster at \(bootstrap) (state file \(stateFile)); stop with Ctrl-C")

        if let cameras {
            await Self.runTool(
                vigil, ["cameras", "apply", cameras, "--bootstrap", bootstrap, "--log-level", "warning", "--actor", DevAdmin.account], name: "cameras",
                environment: childEnvironment
            )
        }
        if let rules {
            // Rules may name the classes of the slot models vigil-detect loads (DETECT_SLOT_FILE).
            let slot = ProcessInfo.processInfo.environment["DETECT_SLOT_FILE"].map { ["--slot-file", $0] } ?? []
            for file in RulesCommand.files([rules]) {
                await Self.runTool(vigil, ["rules", "apply", file, "--bootstrap", bootstrap, "--log-level", "warning"] + slot, name: "rules", environment: childEnvironment)
            }
        }

        if let webhooks {
            await Self.runTool(vigil, ["webhooks", "apply", webhooks, "--bootstrap", bootstrap, "--log-level", "warning"], name: "webhooks", environment: childEnvironment)
        }

        var workers: [SupervisedWorker] = []
        let counts = try replicas()
        var nextMetricsPort = metricsPort
        for stage in Self.stages where declared.workers.contains(where: { $0.name == stage }) {
            let executable = binaries.appendingPathComponent(stage).path
            guard FileManager.default.isExecutableFile(atPath: executable) else {
                writeError("vigil up: \(stage) is not built next to this binary (\(binaries.path)); running without it")
                continue
            }
            for replica in 0..<(counts[stage] ?? 1) {
                var environment = childEnvironment
                environment["KAFKA_BOOTSTRAP"] = bootstrap
                environment["WORKER_TOPOLOGY"] = topologyPath
                environment["WORKER_NAME"] = stage
                environment["HTTP_HOST"] = "127.0.0.1"
                environment["HTTP_PORT"] = "\(Self.takeFreePort(from: &nextMetricsPort, for: stage))"
                environment["DETECT_MODELS_DIR"] = environment["DETECT_MODELS_DIR"] ?? modelsDirectory
                if stage == "vigil-audit", environment["AUDIT_SIGNING_KEY_FILE"] == nil {
                    environment["AUDIT_SIGNING_KEY_FILE"] = try Self.devSigningKey(in: stateDirectory)
                }
                let worker = SupervisedWorker(name: counts[stage] == 1 ? stage : "\(stage)#\(replica + 1)", executable: executable, environment: environment)
                worker.start()
                workers.append(worker)
            }
        }
        Self.scheduleTestKill(workers)

        let kafka = KafkaConfiguration(bootstrapServers: bootstrap, clientID: "vigil-up")
        let follower = try KafkaConsumer(
            configuration: KafkaConsumerConfiguration(cluster: kafka, groupID: "vigil-up-\(getpid())", topics: [MatchStage.incidentsTopic, AlertStage.alertsTopic]), logger: logger
        )
        let incidents = Task { await Self.printIncidents(follower) }
        let summary = PipelineSummary(workers: workers, interval: .seconds(summary))
        let summaries = Task { await summary.run() }

        // Until --for has passed, or SIGINT / SIGTERM.
        let signals = await UnixSignalsSequence(trapping: .sigint, .sigterm)
        let runFor = try runFor
        await withTaskGroup(of: String.self) { group in
            group.addTask {
                for await signal in signals { return "\(signal)" }
                return "signal"
            }
            if let runFor {
                group.addTask {
                    try? await Task.sleep(for: runFor)
                    return "--for \(runFor)"
                }
            }
            let reason = await group.next() ?? "done"
            writeLine("vigil up: stopping (\(reason)): workers first, committing their offsets, then the cluster")
            group.cancelAll()
        }
        summaries.cancel()
        await withTaskGroup(of: Void.self) { group in
            for worker in workers { group.addTask { await worker.stop(timeout: .seconds(30)) } }
        }
        await follower.close()
        await incidents.value
        if let snapshots {
            do {
                let written = try await SnapshotsCommand.export(
                    from: kafka, to: snapshots, since: .min, camera: nil, drawingBoxes: boxes,
                    auditedAs: SnapshotsCommand.Exporter(actor: ProcessInfo.processInfo.environment["USER"] ?? NSUserName(), origin: "vigil up --snapshots"), logger: logger
                )
                writeLine("vigil up: wrote \(TopologyOption.count(written, "redacted snapshot")) to \(snapshots)")
            } catch {
                writeError("vigil up: the snapshots could not be written to \(snapshots): \(error)")
            }
        }
        cluster.signal(SIGTERM)
        _ = try? await cluster.waitForExit(timeout: .seconds(20))
        if cluster.isRunning {
            cluster.signal(SIGKILL)
            _ = try? await cluster.waitForExit(timeout: .seconds(10))
        }
        writeLine("vigil up: stopped; \(workers.map { "\($0.name) restarted \($0.restartCount)×" }.joined(separator: ", "))")
    }

    /// `port` if it is free, else the next free one after it (saying so); 0 stays 0 (the worker
    /// takes any free port). Advances `port` past the one taken.
    static func takeFreePort(from port: inout Int, for worker: String) -> Int {
        guard port != 0 else { return 0 }
        let wanted = port
        while port < 65_535, !LocalPort.isFree(port) { port += 1 }
        if port != wanted {
            writeError("vigil up: port \(wanted)\(port - wanted > 1 ? "–\(port - 1)" : "") on 127.0.0.1 in use; \(worker)'s HTTP server takes \(port)")
        }
        defer { port += 1 }
        return port
    }

    /// A key for vigil-audit to sign the dev cluster's chain heads with, made once per state
    /// folder (a production key is the operator's, given as AUDIT_SIGNING_KEY_FILE).
    static func devSigningKey(in stateDirectory: String) throws -> String {
        let file = (stateDirectory as NSString).appendingPathComponent("audit-signing.key")
        if !FileManager.default.fileExists(atPath: file) {
            guard let key = SigningKeys.writeNewKey(to: file) else { throw ValidationError("cannot write vigil-audit's signing key to \(file)") }
            writeLine("vigil up: made \(file) for vigil-audit to sign chain heads; its public key: \(key.publicKey.rawRepresentation.base64EncodedString())")
        }
        return file
    }

    /// The cluster's bootstrap servers, once it wrote its state file.
    static func bootstrap(of cluster: ChildProcess, stateFile: String) async throws -> String {
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            if let client = try? DevClusterClient(stateFile: URL(fileURLWithPath: stateFile)) { return client.state.bootstrapServers }
            guard cluster.isRunning else {
                throw ValidationError("the dev cluster exited (\(cluster.termination.map { "\($0)" } ?? "?")): is a port in use? See the [dev-cluster] lines above")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw ValidationError("the dev cluster did not start within 60 s")
    }

    /// Runs `vigil ARGUMENTS` with its lines prefixed; a failure is reported, and `vigil up` goes on.
    static func runTool(_ vigil: String, _ arguments: [String], name: String, environment: [String: String]) async {
        do {
            let tool = try ChildProcess(
                executable: vigil, arguments: arguments, name: name, environment: environment, standardOutput: .lines, standardError: .lines
            ) { _, line in
                writeLine("[\(name)] \(line)")
            }
            let termination = try await tool.waitForExit(timeout: .seconds(120))
            if termination != .exited(0) {
                writeError("vigil up: `vigil \(arguments.prefix(3).joined(separator: " "))` failed (\(termination)); the pipeline runs without it")
            }
        } catch {
            writeError("vigil up: `vigil \(arguments.prefix(3).joined(separator: " "))` failed: \(error); the pipeline runs without it")
        }
    }

    /// Prints every incident and alert revision as it is published, until the consumer is closed.
    static func printIncidents(_ consumer: KafkaConsumer) async {
        do {
            for try await message in consumer.messages {
                if message.topic == AlertStage.alertsTopic, let alert = try? Vigil_V1_Alert(serializedBytes: message.value) {
                    writeLine("alert     \(alert.incident.cameraID)  \(alert.incident.ruleID)  \(alert.alertID) r\(alert.revision)  \(alert.change)")
                } else if let incident = try? Vigil_V1_Incident(serializedBytes: message.value) {
                    writeLine("incident  \(IncidentsCommand.line(incident))")
                }
            }
        } catch {
            writeError("vigil up: cannot follow \(MatchStage.incidentsTopic) and \(AlertStage.alertsTopic): \(error)")
        }
    }

    /// The test hook: `VIGIL_UP_TEST_KILL=NAME@SECONDS` kills that replica with SIGKILL once,
    /// as a crash would, to show it restarted.
    static func scheduleTestKill(_ workers: [SupervisedWorker]) {
        guard let hook = ProcessInfo.processInfo.environment["VIGIL_UP_TEST_KILL"] else { return }
        let parts = hook.split(separator: "@")
        guard parts.count == 2, let seconds = Double(parts[1]), let worker = workers.first(where: { $0.name == parts[0] }) else {
            writeError("vigil up: VIGIL_UP_TEST_KILL must be NAME@SECONDS with a running worker's name, not \(hook)")
            return
        }
        Task {
            try? await Task.sleep(for: .milliseconds(Int64(seconds * 1_000)))
            writeError("vigil up: test hook: killing \(worker.name) with SIGKILL")
            worker.kill()
        }
    }
}
