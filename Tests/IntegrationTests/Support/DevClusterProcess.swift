import ChildProcesses
import Foundation
import Testing

/// `vigil dev-cluster` in its own process, with the topics a test needs.
final class DevClusterProcess: @unchecked Sendable {
    let process: ChildProcess
    let stateFile: URL
    let bootstrapServers: String

    convenience init(brokers: Int = 3, topics: [String]) async throws {
        try await self.init(
            arguments: ["--brokers", String(brokers), "--replication-factor", String(min(3, brokers))] + topics.flatMap { ["--topic", $0] }
        )
    }

    /// The cluster with the topics of a topology file (its dev profile), as `vigil dev-cluster` starts by default.
    convenience init(topology: URL) async throws {
        try await self.init(arguments: ["--topology", topology.path])
    }

    private init(arguments: [String]) async throws {
        stateFile = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-dev-cluster-\(UUID().uuidString).json")
        process = try ChildProcess(
            "vigil",
            ["dev-cluster", "--state-file", stateFile.path, "--log-level", "warning"] + arguments,
            name: "dev-cluster"
        )
        let stateFile = stateFile
        let child = process
        try await eventually(timeout: .seconds(30), "the dev cluster writes its state file") {
            if FileManager.default.fileExists(atPath: stateFile.path) { return true }
            guard child.isRunning else {
                throw ExitedEarly(description: "vigil dev-cluster exited (status \(child.exitStatus)) before writing its state file: \(child.standardError)")
            }
            return false
        }
        let state = try JSONSerialization.jsonObject(with: Data(contentsOf: stateFile)) as! [String: Any]
        bootstrapServers = state["bootstrapServers"] as! String
    }

    /// Runs `vigil dev-cluster <arguments>` against this cluster and waits for it.
    func control(_ arguments: [String]) async throws {
        let command = try ChildProcess(
            "vigil", ["dev-cluster"] + arguments + ["--state-file", stateFile.path],
            name: "vigil dev-cluster \(arguments.joined(separator: " "))"
        )
        try await command.waitForExit(timeout: .seconds(30))
        #expect(command.exitStatus == 0, "\(command.name) failed: \(command.standardError)")
    }

    func stop() async throws {
        process.signal(SIGTERM)
        try await process.waitForExit(timeout: .seconds(30))
    }

    /// Starts a probe consumer in group `group`.
    func consumer(topic: String, group: String, extra: [String] = []) throws -> ChildProcess {
        try ChildProcess(
            "vigil-kafka-probe",
            ["consume", "--bootstrap", bootstrapServers, "--topic", topic, "--group", group] + extra,
            name: "consumer(\(group))"
        )
    }

    /// Starts a probe producer of `count` records from `first`.
    func startProducer(topic: String, count: Int, first: Int = 0, keys: Int = 10, valueSize: Int = 16, extra: [String] = []) throws -> ChildProcess {
        try ChildProcess(
            "vigil-kafka-probe",
            ["produce", "--bootstrap", bootstrapServers, "--topic", topic, "--count", String(count), "--first", String(first),
             "--keys", String(keys), "--value-size", String(valueSize)] + extra,
            name: "producer"
        )
    }

    /// Produces `count` records and waits until the cluster acknowledged them all.
    @discardableResult
    func produce(topic: String, count: Int, first: Int = 0, keys: Int = 10, valueSize: Int = 16, extra: [String] = []) async throws -> ChildProcess {
        let producer = try startProducer(topic: topic, count: count, first: first, keys: keys, valueSize: valueSize, extra: extra)
        try await producer.waitForExit(timeout: .seconds(120))
        #expect(producer.exitStatus == 0, "producer failed: \(producer.standardError.suffix(2_000))")
        return producer
    }
}

extension DevClusterProcess {
    /// Every record of `topic` as kcat (an outside client) reads it: key, value size, headers.
    func kcatRecords(_ topic: String) async throws -> [[String]] {
        let kcat = try ChildProcess("/usr/bin/kcat", ["-C", "-b", bootstrapServers, "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%k\t%S\t%h\n"], name: "kcat")
        try await kcat.waitForExit(timeout: .seconds(60))
        return kcat.output.filter { !$0.isEmpty }.map { $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init) }
    }

    /// Total lag of `group` on `topic`, as the admin API computes it (committed vs high watermark).
    func lag(topic: String, group: String) async throws -> Int {
        let probe = try ChildProcess(
            "vigil-kafka-probe", ["lag", "--bootstrap", bootstrapServers, "--topic", topic, "--group", group], name: "lag"
        )
        try await probe.waitForExit(timeout: .seconds(30))
        #expect(probe.exitStatus == 0, "lag failed: \(probe.standardError)")
        return probe.events("lag").reduce(0) { $0 + ($1["lag"] as! Int) }
    }

    /// Waits until `group` has committed everything in `topic`.
    func waitUntilCommitted(topic: String, group: String) async throws {
        let deadline = ContinuousClock.now + .seconds(60)
        while try await lag(topic: topic, group: group) > 0 {
            guard ContinuousClock.now < deadline else { throw TimedOut(description: "group \(group) still has lag on \(topic) after 60 s") }
            try await Task.sleep(for: .milliseconds(200))
        }
    }
}

struct ExitedEarly: Error, CustomStringConvertible {
    let description: String
}

/// Sequence numbers in the `message` events of some consumers.
func consumedSequences(_ consumers: [ChildProcess]) -> [Int] {
    consumers.flatMap { $0.events("message") }.compactMap { Int($0["seq"] as? String ?? "") }
}
