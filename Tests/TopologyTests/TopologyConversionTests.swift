import DevCluster
@testable import Kafka
import Testing
import TopicSpecs
import Topology

/// From the topology to what the Kafka layer and the dev cluster create.
@Suite("Topology conversions")
struct TopologyConversionTests {
    static func spec(_ name: String, _ partitions: Int, cleanup: String = "delete", retention: String) -> KafkaTopicSpec {
        KafkaTopicSpec(
            name: name, partitions: partitions, replicationFactor: 3,
            configs: ["cleanup.policy": cleanup, "min.insync.replicas": "2", "retention.ms": retention]
        )
    }

    @Test("topic specs for a region: scaled topics multiplied, configs from retention, cleanup and min.insync")
    func regionSpecs() throws {
        let specs = try fixture().topicSpecs(region: "big")
        #expect(
            specs == [
                Self.spec("cam.raw.v1", 12, retention: "600000"),
                Self.spec("cam.raw.v1.dlq", 1, retention: "600000"),
                Self.spec("events.v1", 12, retention: "604800000"),
                Self.spec("events.v1.dlq", 1, retention: "1209600000"),
                Self.spec("state.changelog", 12, cleanup: "compact", retention: "-1"),
                Self.spec("settings.v1", 1, cleanup: "compact", retention: "-1"),
                Self.spec("settings.v1.dlq", 1, retention: "2592000000"),
            ]
        )
        #expect(try fixture().topicSpecs(region: nil).map(\.partitions) == [4, 1, 4, 1, 4, 1, 1])
        #expect(try fixture().topicSpecs(region: "small").map(\.partitions) == [4, 1, 4, 1, 4, 1, 1])
        #expect(try fixture().topicSpecs(region: "dev").map(\.partitions) == [8, 1, 8, 1, 8, 1, 1])
    }

    @Test("an undeclared region is refused with the regions there are")
    func unknownRegion() throws {
        do {
            _ = try fixture().topicSpecs(region: "nowhere")
            Issue.record("specs for an undeclared region")
        } catch let problem as TopologyProblem {
            #expect(problem == TopologyProblem(keyPath: "regions", message: "region \"nowhere\" is not declared; use one of small, big, or dev for the dev cluster"))
        }
    }

    @Test("the repository topology's specs are valid Kafka topics in every profile, and all new on an empty cluster")
    func repositorySpecs() throws {
        let topology = try Topology.load(contentsOf: repositoryTopology)
        for profile in topology.profiles {
            for spec in topology.topicSpecs(profile: profile) {
                #expect(throws: Never.self, "\(spec.name) in \(profile)") { try spec.validate() }
            }
        }
        let regionB = try topology.topicSpecs(region: "region-b")
        #expect(regionB.first { $0.name == "video.packets.v1" } == Self.spec("video.packets.v1", 48, retention: "900000"))
        #expect(regionB.first { $0.name == "rules.v1" } == Self.spec("rules.v1", 1, cleanup: "compact", retention: "-1"))
        #expect(regionB.first { $0.name == "vigil-match.state.changelog" }?.partitions == regionB.first { $0.name == "detections.v1" }?.partitions)

        let empty = KafkaClusterMetadata(brokers: [.init(id: 1, host: "b1", port: 9092)], topics: [])
        let changes = KafkaAdmin.diff(declared: regionB, actual: empty, actualConfigs: [:])
        #expect(changes == regionB.map { KafkaTopicChange.createTopic($0) })
    }

    @Test("dev cluster topics: the dev profile's partitions and replication, capped by the broker count")
    func devClusterTopics() throws {
        let topology = try fixture()
        #expect(
            topology.devClusterTopics() == [
                DevClusterTopic(name: "cam.raw.v1", partitions: 8, replicationFactor: 3),
                DevClusterTopic(name: "cam.raw.v1.dlq", partitions: 1, replicationFactor: 3),
                DevClusterTopic(name: "events.v1", partitions: 8, replicationFactor: 3),
                DevClusterTopic(name: "events.v1.dlq", partitions: 1, replicationFactor: 3),
                DevClusterTopic(name: "state.changelog", partitions: 8, replicationFactor: 3),
                DevClusterTopic(name: "settings.v1", partitions: 1, replicationFactor: 3),
                DevClusterTopic(name: "settings.v1.dlq", partitions: 1, replicationFactor: 3),
            ]
        )
        #expect(topology.devClusterTopics(brokers: 1).map(\.replicationFactor) == Array(repeating: 1, count: 7))

        let repository = try Topology.load(contentsOf: repositoryTopology).devClusterTopics()
        #expect(repository.first { $0.name == "video.packets.v1" }?.partitions == 24, "raw topics get room for the mock's 5 MiB per partition")
        #expect(repository.first { $0.name == "frames.v1" }?.partitions == 24)
    }
}
