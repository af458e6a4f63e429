import ChildProcesses
import Foundation
import Testing
import Topology

/// The repository's topology file, found from this source file's path.
private let repositoryTopology = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Topology/topology.yaml")

/// `vigil topics …` and `vigil dev-cluster` started from the topology, as separate processes.
/// The dev cluster answers metadata but not CreateTopics or DescribeConfigs, so configs show as
/// unknown and creation times out (after --timeout seconds) with an explanation.
@Suite("vigil topics and the topology", .serialized, .timeLimit(.minutes(5)))
struct TopologyCommandTests {
    /// Runs `vigil <arguments>` and waits for it to end.
    static func vigil(_ arguments: [String], environment: [String: String] = [:]) async throws -> ChildProcess {
        let command = try ChildProcess("vigil", arguments, name: "vigil \(arguments.prefix(2).joined(separator: " "))", environment: environment)
        try await command.waitForExit(timeout: .seconds(60))
        return command
    }

    /// A copy of the repository topology with `change` applied to its text.
    static func topologyFile(_ change: (String) -> String) throws -> URL {
        let text = try String(contentsOf: repositoryTopology, encoding: .utf8)
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-topology-\(UUID().uuidString).yaml")
        try change(text).write(to: file, atomically: true, encoding: .utf8)
        return file
    }

    /// The table row of `topic` in `describe`'s output.
    static func row(_ topic: String, in output: [String]) -> String? {
        output.first { $0.hasPrefix(topic + " ") }
    }

    @Test("vigil dev-cluster without --topic creates every topology topic with the dev profile's partitions")
    func devClusterFromTopology() async throws {
        let topology = try Topology.load(contentsOf: repositoryTopology)
        let cluster = try await DevClusterProcess(topology: repositoryTopology)

        let state = try JSONSerialization.jsonObject(with: Data(contentsOf: cluster.stateFile)) as! [String: Any]
        let listed = try #require(state["topics"] as? [[String: Any]])
        let expected = topology.topics.map { topic in
            [topic.name, "\(topology.partitions(of: topic, in: .dev))", "\(topology.replicationFactor(of: topic, in: .dev))"]
        }
        #expect(listed.map { [$0["name"] as! String, "\($0["partitions"] as! Int)", "\($0["replicationFactor"] as! Int)"] } == expected)
        #expect(!listed.isEmpty && listed.count == topology.topics.count)
        #expect(expected.first == ["video.packets.v1", "24", "3"], "raw topics get twice their base partitions on the dev cluster")

        // The brokers really have them: `dev-cluster status` asks for metadata.
        let status = try await Self.vigil(["dev-cluster", "status", "--state-file", cluster.stateFile.path])
        #expect(status.exitStatus == 0, "\(status.standardError)")
        for topic in topology.topics {
            let partitions = topology.partitions(of: topic, in: .dev)
            #expect(status.output.contains { $0.hasPrefix("\(topic.name)\t\(partitions) partitions\t") }, "\(topic.name) has \(partitions) partitions")
        }
        try await cluster.stop()
    }

    @Test("vigil topics describe shows declared/actual per topic against the dev cluster")
    func describeAgainstDevCluster() async throws {
        let topology = try Topology.load(contentsOf: repositoryTopology)
        let cluster = try await DevClusterProcess(topology: repositoryTopology)
        try await cluster.control(["create-topic", "scratch.v1:2"])

        let dev = try await Self.vigil(
            ["topics", "describe", "--bootstrap", cluster.bootstrapServers, "--region", "dev", "--timeout", "2", "--topology", repositoryTopology.path]
        )
        #expect(dev.exitStatus == 0, "\(dev.standardError)")
        let output = dev.output
        #expect(output.first == "topology: \(repositoryTopology.path) (dev profile), \(topology.topics.count) topics declared")
        #expect(output.contains { $0.hasPrefix("cluster:  \(cluster.bootstrapServers), 3 brokers, \(topology.topics.count + 1) topics") })
        #expect(output.contains("configs:  cannot be read, so retention, cleanup and min.insync are unknown:"))
        #expect(output.contains { $0.hasPrefix("TOPIC ") && $0.hasSuffix("STATUS") })
        for topic in topology.topics {
            let row = try #require(Self.row(topic.name, in: output), "a row for \(topic.name)")
            let partitions = topology.partitions(of: topic, in: .dev)
            let cells = row.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            #expect(cells[1] == "\(partitions)/\(partitions)", "\(row)")
            #expect(cells[2] == "3/3", "\(row)")
            #expect(cells[3] == "\(topic.retention)/?", "\(row)")
            #expect(cells[4] == "\(topic.cleanupPolicy.rawValue)/?", "\(row)")
            #expect(row.hasSuffix("ok, configs unknown"), "\(row)")
        }
        #expect(output.contains("not in the topology: scratch.v1 (2)"))

        // The base counts differ from the dev profile's on scaled topics.
        let base = try await Self.vigil(["topics", "describe", "--bootstrap", cluster.bootstrapServers, "--timeout", "2", "--topology", repositoryTopology.path])
        #expect(base.exitStatus == 0, "\(base.standardError)")
        let video = try #require(Self.row("video.packets.v1", in: base.output))
        #expect(video.contains(" 12/24 ") && video.hasSuffix("differs, configs unknown"), "\(video)")
        let rules = try #require(Self.row("rules.v1", in: base.output))
        #expect(rules.contains(" 1/1 ") && rules.hasSuffix("ok, configs unknown"), "\(rules)")
        try await cluster.stop()
    }

    @Test("vigil topics apply --dry-run prints the plan: operator changes, unknown configs, exit 2")
    func applyDryRun() async throws {
        let declared = try Topology.load(contentsOf: repositoryTopology).topics.count
        let cluster = try await DevClusterProcess(topology: repositoryTopology)
        let plan = try await Self.vigil(
            ["topics", "apply", "--bootstrap", cluster.bootstrapServers, "--region", "region-a", "--dry-run", "--timeout", "2",
             "--topology", repositoryTopology.path]
        )
        #expect(plan.exitStatus == 2, "\(plan.standardError)")
        let output = plan.output
        #expect(output.contains("plan:"))
        #expect(
            output.contains(
                "  operator  topic video.packets.v1: cannot shrink partitions from 24 to 12; raise the declaration to 24 or recreate the topic (its data is lost)"
            )
        )
        #expect(
            output.contains(
                "  unknown   topic rules.v1: cleanup.policy=compact, min.insync.replicas=2, retention.ms=-1 not verified (configs could not be read)"
            )
        )
        #expect(!output.contains { $0.hasPrefix("  create") })
        #expect(output.contains { $0.hasPrefix("plan: 0 to create, ") && $0.hasSuffix(" for an operator, \(declared) topics with unknown configs") })
        #expect(output.last == "dry run: nothing changed")

        // Against the dev profile only the unreadable configs remain.
        let devPlan = try await Self.vigil(
            ["topics", "apply", "--bootstrap", cluster.bootstrapServers, "--region", "dev", "--dry-run", "--timeout", "2",
             "--topology", repositoryTopology.path]
        )
        #expect(devPlan.exitStatus == 2)
        #expect(devPlan.output.contains("plan: 0 to create, 0 for an operator, \(declared) topics with unknown configs"))
        try await cluster.stop()
    }

    @Test("vigil topics apply against the dev cluster explains that the mock never answers CreateTopics")
    func applyCreationTimesOutOnMock() async throws {
        let cluster = try await DevClusterProcess(topics: ["existing.v1:1"])
        let topology = try Self.topologyFile { _ in
            """
            topics:
              extra.v1:
                description: A topic the cluster lacks.
                partitions: 2
                replication_factor: 3
                min_insync_replicas: 2
                retention: 1d
                cleanup_policy: delete
            workers: {}
            dev: {brokers: 3, replication_factor: 3, partition_multiplier: 1}
            """
        }
        defer { try? FileManager.default.removeItem(at: topology) }
        let apply = try await Self.vigil(["topics", "apply", "--bootstrap", cluster.bootstrapServers, "--timeout", "2", "--topology", topology.path])
        #expect(apply.exitStatus == 1)
        #expect(
            apply.output.contains(
                "  create    topic extra.v1: 2 partitions, replication factor 3, cleanup.policy=delete, min.insync.replicas=2, retention.ms=86400000"
            )
        )
        #expect(apply.output.contains("not in the topology (left alone): existing.v1"))
        #expect(apply.standardError.contains("vigil: creating topics failed: "))
        #expect(apply.standardError.contains("librdkafka's mock cluster (vigil dev-cluster) never answers CreateTopics or DescribeConfigs"))
        try await cluster.stop()
    }

    @Test("vigil rules validate: the example rules pass; a broken file lists each problem with file, line, rule and key, exit 1")
    func validateRules() async throws {
        let examples = repositoryTopology.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("rules/examples.yaml")
        let good = try await Self.vigil(["rules", "validate", examples.path])
        #expect(good.exitStatus == 0, "\(good.output)")
        #expect(good.output == ["valid — 6 rules in 1 file"])

        let broken = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-rules-\(UUID().uuidString).yaml")
        defer { try? FileManager.default.removeItem(at: broken) }
        try "rules:\n  bow-tie:\n    cameras: [c1]\n    kind: hazard_dwell\n    dwell: 5s\n    zone: [[0.1, 0.1], [0.9, 0.9], [0.9, 0.1], [0.1, 0.9]]\n".write(to: broken, atomically: true, encoding: .utf8)
        let bad = try await Self.vigil(["rules", "validate", broken.path])
        #expect(bad.exitStatus == 1)
        #expect(bad.output.first?.hasPrefix("\(broken.path):6:11: rules.bow-tie.zone: crosses itself") == true, "\(bad.output)")
        #expect(bad.output.last == "1 problem in \(broken.path)")
    }

    @Test("vigil topics validate: the repository file passes; a broken one lists its problem with the key path, exit 1")
    func validate() async throws {
        let good = try await Self.vigil(["topics", "validate", "--topology", repositoryTopology.path])
        #expect(good.exitStatus == 0, "\(good.output)")
        let declared = try Topology.load(contentsOf: repositoryTopology).topics.count
        #expect(good.output == ["\(repositoryTopology.path): valid — \(declared) topics, 6 workers, 3 regions"])

        let broken = try Self.topologyFile { $0.replacingOccurrences(of: "inputs: [frames.v1]", with: "inputs: [frames.v2]") }
        defer { try? FileManager.default.removeItem(at: broken) }
        let bad = try await Self.vigil(["topics", "validate", "--topology", broken.path])
        #expect(bad.exitStatus == 1)
        #expect(
            bad.output == [
                "\(broken.path): workers.vigil-detect.inputs[0]: topic \"frames.v2\" is not declared under topics; declare it there or fix the name",
                "1 problem in \(broken.path)",
            ]
        )

        // VIGIL_TOPOLOGY replaces the default path.
        let fromEnvironment = try await Self.vigil(["topics", "validate"], environment: ["VIGIL_TOPOLOGY": broken.path])
        #expect(fromEnvironment.exitStatus == 1)
        #expect(fromEnvironment.output.last == "1 problem in \(broken.path)")

        let syntax = try Self.topologyFile { $0.replacingOccurrences(of: "  vigil-decode:\n", with: "  vigil-decode:\n   oops\n") }
        defer { try? FileManager.default.removeItem(at: syntax) }
        let unreadable = try await Self.vigil(["topics", "validate", "--topology", syntax.path])
        #expect(unreadable.exitStatus == 1)
        #expect(unreadable.standardError.hasPrefix("vigil: \(syntax.path):"), "\(unreadable.standardError)")
        #expect(unreadable.standardError.contains("YAML syntax error"))
    }

    @Test("vigil dev-cluster refuses to start from an invalid topology and prints the problems")
    func devClusterRefusesInvalidTopology() async throws {
        let broken = try Self.topologyFile { $0.replacingOccurrences(of: "    retention: 10m\n", with: "    retention: 2h\n") }
        defer { try? FileManager.default.removeItem(at: broken) }
        let stateFile = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-dev-cluster-\(UUID().uuidString).json")
        let start = try await Self.vigil(["dev-cluster", "--topology", broken.path, "--state-file", stateFile.path])
        #expect(start.exitStatus == 1)
        #expect(start.standardError.contains("\(broken.path): topics.frames.v1.retention: is 2h but frames.v1 carries raw pixels; keep it at 60m or less"))
        #expect(!FileManager.default.fileExists(atPath: stateFile.path))
    }
}
