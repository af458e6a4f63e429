import ChildProcesses
import Foundation
import Testing
import Topology

/// `vigil topics apply` end to end against the scripted Kafka protocol peer, which — unlike
/// the dev cluster — answers CreateTopics: what the CLI sends is decoded and checked.
@Suite("vigil topics apply against a scripted Kafka protocol peer", .serialized, .timeLimit(.minutes(2)))
struct TopicsApplyCommandTests {
    static let topology = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Topology/topology.yaml")
    /// How many topics the repository's topology declares: apply must create each.
    static var declared: Int { get throws { try Topology.load(contentsOf: topology).topics.count } }

    struct Run {
        var status: Int32
        var output: [String]
        var standardError: String
    }

    /// Runs the `vigil` built next to this test binary and waits for it; its --timeout bounds the wait.
    static func vigil(_ arguments: [String]) throws -> Run {
        let vigil = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().appendingPathComponent("vigil")
        let run = try ChildProcess.run(vigil.path, arguments, standardError: .lines)
        return Run(status: run.termination.status, output: run.output, standardError: run.errorOutput.joined(separator: "\n"))
    }

    @Test("apply creates every declared topic with the region's partitions and configs, and reports each")
    func applyCreatesEveryTopic() throws {
        let broker = try ScriptedAdminBroker()
        defer { broker.stop() }
        let run = try Self.vigil(
            ["topics", "apply", "--bootstrap", broker.bootstrapServers, "--region", "region-b", "--timeout", "5", "--topology", Self.topology.path]
        )
        #expect(run.status == 0, "\(run.standardError)")
        let declared = try Self.declared
        #expect(run.output.contains("plan: \(declared) to create, 0 for an operator, 0 topics with unknown configs"))
        #expect(run.output.filter { $0.hasPrefix("created   ") }.count == declared)
        #expect(run.output.contains("created   video.packets.v1"))

        let call = try #require(broker.createTopicsCalls.first)
        #expect(broker.createTopicsCalls.count == 1)
        #expect(call.topics.count == declared)
        #expect(
            call.topics.first
                == .init(
                    name: "video.packets.v1", partitions: 48, replicationFactor: 3,
                    configs: [
                        .init(name: "cleanup.policy", value: "delete"),
                        .init(name: "min.insync.replicas", value: "2"),
                        .init(name: "retention.ms", value: "900000"),
                    ]
                )
        )
        #expect(call.topics.first { $0.name == "rules.v1" }?.partitions == 1)
        #expect(call.topics.first { $0.name == "rules.v1" }?.configs.first == .init(name: "cleanup.policy", value: "compact"))
        #expect(broker.protocolErrors == [])
    }

    @Test("a topic the broker refuses is reported with the broker's reason, and apply exits 1")
    func applyReportsRefusals() throws {
        let broker = try ScriptedAdminBroker(
            creationErrors: ["audit.log.v1": (code: 38, message: "Replication factor: 3 larger than available brokers: 1.")]
        )
        defer { broker.stop() }
        let run = try Self.vigil(["topics", "apply", "--bootstrap", broker.bootstrapServers, "--timeout", "5", "--topology", Self.topology.path])
        #expect(run.status == 1)
        #expect(
            run.output.contains(
                "failed    audit.log.v1: adminFailed: creating topic \"audit.log.v1\": Replication factor: 3 larger than available brokers: 1. "
                    + "[INVALID_REPLICATION_FACTOR]"
            )
        )
        #expect(run.output.filter { $0.hasPrefix("created   ") }.count == (try Self.declared) - 1)
        #expect(run.standardError.contains("vigil: 1 topic could not be created"))
    }
}
