import Foundation
import Testing
import Topology

/// The repository's own topology file, found from this source file's path.
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
let repositoryTopology = repositoryRoot.appendingPathComponent("Topology/topology.yaml")

/// A small valid topology with one of everything the rules look at: a raw-pixel topic and its
/// DLQ, a compacted changelog partitioned like its input, a table, two regions.
let fixtureYAML = """
    topics:
      cam.raw.v1:
        description: Raw pixels.
        partitions: 4
        replication_factor: 3
        min_insync_replicas: 2
        retention: 10m
        cleanup_policy: delete
        key: camera_id
        raw_pixels: true
        scaled: true
      cam.raw.v1.dlq:
        description: Raw dead letters.
        partitions: 1
        replication_factor: 3
        min_insync_replicas: 2
        retention: 10m
        cleanup_policy: delete
        key: camera_id
        raw_pixels: true
      events.v1:
        description: Events per camera.
        partitions: 4
        replication_factor: 3
        min_insync_replicas: 2
        retention: 7d
        cleanup_policy: delete
        key: camera_id
        scaled: true
      events.v1.dlq:
        description: Event dead letters.
        partitions: 1
        replication_factor: 3
        min_insync_replicas: 2
        retention: 14d
        cleanup_policy: delete
        key: camera_id
      state.changelog:
        description: Per-camera state.
        partitions: 4
        replication_factor: 3
        min_insync_replicas: 2
        retention: forever
        cleanup_policy: compact
        key: camera_id
        scaled: true
        partitioned_like: events.v1
      settings.v1:
        description: Settings, latest per id.
        partitions: 1
        replication_factor: 3
        min_insync_replicas: 2
        retention: forever
        cleanup_policy: compact
        key: setting_id
        external_producers: [vigil-cli]
      settings.v1.dlq:
        description: Settings dead letters.
        partitions: 1
        replication_factor: 3
        min_insync_replicas: 2
        retention: 30d
        cleanup_policy: delete
        key: setting_id
    workers:
      reader:
        description: Reads raw pixels, writes events.
        consumer_group: reader
        inputs: [cam.raw.v1]
        outputs:
          - {topic: events.v1, key: camera_id}
        max_replicas: 4
      stateful:
        description: Keeps state per camera.
        consumer_group: stateful
        inputs: [events.v1]
        tables: [settings.v1]
        outputs:
          - {topic: state.changelog, key: camera_id}
        max_replicas: 4
    regions:
      small:
        description: Small.
        kafka_cluster: vigil-small
        bootstrap: small:9093
        cameras: 10
        partition_multiplier: 1
        replicas:
          reader: {min: 1, max: 4}
          stateful: {min: 1, max: 2}
      big:
        description: Big.
        kafka_cluster: vigil-big
        bootstrap: big:9093
        cameras: 100
        partition_multiplier: 3
        replicas:
          reader: {min: 2, max: 12}
          stateful: {min: 1, max: 12}
    dev:
      brokers: 3
      replication_factor: 3
      partition_multiplier: 2
    """

func fixture() throws -> Topology {
    try Topology.parse(yaml: fixtureYAML, source: "fixture.yaml")
}

/// The fixture after `change`, validated.
func problems(after change: (inout Topology) -> Void) throws -> [TopologyProblem] {
    var topology = try fixture()
    change(&topology)
    return topology.validate()
}

/// The error loading `yaml` throws, or nil when it loads.
func loadError(_ yaml: String) -> TopologyLoadError? {
    do {
        _ = try Topology.parse(yaml: yaml, source: "test.yaml")
        return nil
    } catch {
        return error
    }
}

extension Topology {
    func index(ofTopic name: String) -> Int { topics.firstIndex { $0.name == name }! }
    func index(ofWorker name: String) -> Int { workers.firstIndex { $0.name == name }! }
    func index(ofRegion name: String) -> Int { regions.firstIndex { $0.name == name }! }
}
