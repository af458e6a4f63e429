import Foundation
import Testing
import Topology
import Yams

/// Reading topology YAML: errors come back with line, column and key path; values survive a
/// round trip; retention text is understood or reported.
@Suite("Topology loading")
struct TopologyLoadingTests {
    @Test("a YAML syntax error reports its line and column")
    func syntaxError() throws {
        let broken = fixtureYAML.replacingOccurrences(of: "    replication_factor: 3\n    min_insync_replicas: 2\n    retention: 10m\n", with: "    replication_factor: 3\n   min_insync_replicas: 2\n    retention: 10m\n")
        let error = try #require(loadError(broken))
        #expect(error.line == 6)
        #expect(error.column != nil)
        #expect(error.message.hasPrefix("YAML syntax error: "))
        #expect(error.description.hasPrefix("test.yaml:6:"))
    }

    @Test("a value of the wrong kind names its key path and line")
    func typeMismatch() throws {
        let error = try #require(loadError(fixtureYAML.replacingOccurrences(of: "    partitions: 4\n    replication_factor: 3\n    min_insync_replicas: 2\n    retention: 10m\n    cleanup_policy: delete\n    key: camera_id\n    raw_pixels: true\n    scaled: true", with: "    partitions: four\n    replication_factor: 3\n    min_insync_replicas: 2\n    retention: 10m\n    cleanup_policy: delete\n    key: camera_id\n    raw_pixels: true\n    scaled: true")))
        #expect(error.keyPath == "topics.cam.raw.v1.partitions")
        #expect(error.line == 4)
        #expect(error.message == "expected a whole number, found \"four\"")
        #expect(error.description == "test.yaml:4:17: topics.cam.raw.v1.partitions: expected a whole number, found \"four\"")
    }

    @Test("an unknown key (a typo) is refused instead of silently ignored")
    func unknownKey() throws {
        let error = try #require(loadError(fixtureYAML.replacingOccurrences(of: "    raw_pixels: true\n    scaled: true\n  cam.raw.v1.dlq:", with: "    raw_pixel: true\n    scaled: true\n  cam.raw.v1.dlq:")))
        #expect(error.keyPath == "topics.cam.raw.v1.raw_pixel")
        #expect(error.line == 10)
        #expect(error.message.hasPrefix("unknown key; the keys here are "))
        #expect(error.message.contains("raw_pixels"))
    }

    @Test("a missing key names the key and the mapping it belongs in")
    func missingKey() throws {
        let error = try #require(loadError(fixtureYAML.replacingOccurrences(of: "    retention: 7d\n", with: "")))
        #expect(error.keyPath == "topics.events.v1.retention")
        #expect(error.line == 22, "the line where events.v1's mapping starts")
        #expect(error.message.hasPrefix("is missing; add it"))
    }

    @Test("an unknown cleanup policy, and a list given as one value")
    func badValues() throws {
        let policy = try #require(loadError(fixtureYAML.replacingOccurrences(of: "cleanup_policy: compact\n    key: camera_id", with: "cleanup_policy: compacted\n    key: camera_id")))
        #expect(policy.keyPath == "topics.state.changelog.cleanup_policy")
        #expect(policy.message == "\"compacted\" is not a cleanup policy; use delete, compact, or \"compact,delete\" (state changelogs)")

        let inputs = try #require(loadError(fixtureYAML.replacingOccurrences(of: "inputs: [cam.raw.v1]", with: "inputs: cam.raw.v1")))
        #expect(inputs.keyPath == "workers.reader.inputs")
        #expect(inputs.message == "expected a list, found \"cam.raw.v1\"")
    }

    @Test("an empty file and a missing file")
    func emptyAndMissing() throws {
        let empty = try #require(loadError("# nothing here\n"))
        #expect(empty.message.hasPrefix("the file is empty"))
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-no-such-topology-\(UUID().uuidString).yaml")
        do {
            _ = try Topology.load(contentsOf: path)
            Issue.record("loaded a file that does not exist")
        } catch {
            #expect(error.source == path.path)
            #expect(error.message == "cannot read the topology file: no such file")
        }
    }

    @Test("names keep their file order, and values survive encoding back to YAML")
    func roundTrip() throws {
        let topology = try Topology.load(contentsOf: repositoryTopology)
        #expect(topology.topics.first?.name == "video.packets.v1")
        #expect(topology.topics.last?.name == "audit.heads.v1")
        #expect(topology.region(named: "region-b")?.replicas.map(\.worker) == topology.workers.map(\.name))
        let yaml = try YAMLEncoder().encode(topology)
        #expect(try Topology.parse(yaml: yaml) == topology)
    }

    @Test("retention: units, forever, and text that is not a retention")
    func retention() {
        let understood: [(String, Int64)] = [
            ("500ms", 500), ("30s", 30_000), ("10m", 600_000), ("6h", 21_600_000), ("7d", 604_800_000), ("2w", 1_209_600_000), (" 15m ", 900_000),
        ]
        for (text, milliseconds) in understood {
            #expect(Retention(text).milliseconds == milliseconds, "\(text)")
            #expect(Retention(text).kafkaRetentionMilliseconds == String(milliseconds), "\(text)")
            #expect(Retention(text).isValid, "\(text)")
        }
        #expect(Retention.forever.kafkaRetentionMilliseconds == "-1")
        #expect(Retention.forever.milliseconds == nil)
        for text in ["10 minutes", "600", "1.5h", "-5m", "0d", "m", "7days", "forever!", "99999999999999999d", ""] {
            #expect(!Retention(text).isValid, "\(text)")
            #expect(Retention(text).kafkaRetentionMilliseconds == nil, "\(text)")
        }
        #expect(Retention.describing(kafkaRetentionMilliseconds: "600000") == "10m")
        #expect(Retention.describing(kafkaRetentionMilliseconds: "604800000") == "7d")
        #expect(Retention.describing(kafkaRetentionMilliseconds: "-1") == "forever")
        #expect(Retention.describing(kafkaRetentionMilliseconds: "1500") == "1500ms")
    }
}
