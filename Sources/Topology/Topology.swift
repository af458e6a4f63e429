/// `Topology/topology.yaml` as typed values: the topics, the workers that read and write them,
/// the regions they are deployed to, and the embedded dev cluster's profile.
///
/// In the file, topics, workers, regions and replica bounds are mappings keyed by name, so a
/// name given twice is a YAML duplicate key and fails to load (with its line). Here they are
/// arrays in file order, so values built in code can still hold duplicates: `validate()`
/// reports them.
public struct Topology: Sendable, Hashable {
    public var topics: [Topic]
    public var workers: [Worker]
    public var regions: [Region]
    public var dev: DevProfile

    public init(topics: [Topic], workers: [Worker], regions: [Region], dev: DevProfile) {
        self.topics = topics
        self.workers = workers
        self.regions = regions
        self.dev = dev
    }

    public func topic(named name: String) -> Topic? { topics.first { $0.name == name } }
    public func worker(named name: String) -> Worker? { workers.first { $0.name == name } }
    public func region(named name: String) -> Region? { regions.first { $0.name == name } }
}

extension Topology {
    /// The suffix of a dead-letter topic: `frames.v1.dlq` receives what could not be processed from `frames.v1`.
    public static let deadLetterSuffix = ".dlq"

    /// A Kafka topic.
    public struct Topic: Sendable, Hashable {
        public var name: String
        public var description: String
        /// Base count; `scaled` topics get `partitions × partition_multiplier` in regions and the dev profile.
        public var partitions: Int
        public var replicationFactor: Int
        public var minInsyncReplicas: Int
        public var retention: Retention
        public var cleanupPolicy: CleanupPolicy
        /// What producers key records by (e.g. `camera_id`); nil for unkeyed records.
        public var key: String?
        /// Identifiable pixels: retention of at most an hour, readable by one worker only.
        public var rawPixels: Bool
        public var scaled: Bool
        /// Another topic whose partition count this one must equal in every profile, because
        /// partition i here belongs to partition i there (state changelogs, per-partition chains).
        public var partitionedLike: String?
        /// Writers that are not workers, e.g. `vigil-cli` (for ACLs).
        public var externalProducers: [String]

        public init(
            name: String, description: String = "", partitions: Int, replicationFactor: Int, minInsyncReplicas: Int,
            retention: Retention, cleanupPolicy: CleanupPolicy = .delete, key: String? = nil, rawPixels: Bool = false,
            scaled: Bool = false, partitionedLike: String? = nil, externalProducers: [String] = []
        ) {
            self.name = name
            self.description = description
            self.partitions = partitions
            self.replicationFactor = replicationFactor
            self.minInsyncReplicas = minInsyncReplicas
            self.retention = retention
            self.cleanupPolicy = cleanupPolicy
            self.key = key
            self.rawPixels = rawPixels
            self.scaled = scaled
            self.partitionedLike = partitionedLike
            self.externalProducers = externalProducers
        }

        /// True for `<origin>.dlq`.
        public var isDeadLetterTopic: Bool { name.hasSuffix(Topology.deadLetterSuffix) && name.count > Topology.deadLetterSuffix.count }

        /// The topic this one collects dead letters of, if it is a `.dlq`.
        public var deadLetterOrigin: String? {
            isDeadLetterTopic ? String(name.dropLast(Topology.deadLetterSuffix.count)) : nil
        }
    }

    /// Kafka's `cleanup.policy`.
    public enum CleanupPolicy: String, Sendable, Hashable, CaseIterable {
        case delete, compact
        /// Compacted, and records older than the retention deleted as well: for state
        /// changelogs, whose restore needs only the newest snapshots.
        case compactDelete = "compact,delete"

        /// Whether compaction keeps the newest record per key.
        public var compacts: Bool { self != .delete }
    }

    /// One worker executable: its consumer group, what it reads and writes, how far it scales.
    public struct Worker: Sendable, Hashable {
        public var name: String
        public var description: String
        public var consumerGroup: String
        /// Consumed by the group: partitions are split among replicas.
        public var inputs: [String]
        /// Read in full by every replica, outside the group (e.g. the rule set).
        public var tables: [String]
        /// For a source worker (no inputs): the table whose partitions the group splits among
        /// replicas; each replica owns the keys (cameras) of its partitions.
        public var owns: String?
        /// Read again to hand each record to receivers outside Kafka (vigil-alert's webhooks):
        /// one consumer group per receiver, `<consumer_group>.webhooks.<receiver>`, so a slow
        /// receiver holds back only its own group.
        public var delivers: [String]
        public var outputs: [Output]
        /// Replica bound outside any region; regions give their own.
        public var maxReplicas: Int

        public init(
            name: String, description: String = "", consumerGroup: String, inputs: [String] = [], tables: [String] = [],
            owns: String? = nil, delivers: [String] = [], outputs: [Output] = [], maxReplicas: Int
        ) {
            self.name = name
            self.description = description
            self.consumerGroup = consumerGroup
            self.inputs = inputs
            self.tables = tables
            self.owns = owns
            self.delivers = delivers
            self.outputs = outputs
            self.maxReplicas = maxReplicas
        }

        /// Every topic the worker reads: inputs, tables, the table it owns keys of, then what it delivers.
        public var reads: [String] { inputs + tables + (owns.map { [$0] } ?? []) + delivers }

        /// The topics whose partitions the group splits among replicas: the inputs, or the owned table.
        public var groupTopics: [String] { inputs + (owns.map { [$0] } ?? []) }

        /// The dead-letter topics the worker may write: one per input.
        public var deadLetterTopics: [String] { inputs.map { $0 + Topology.deadLetterSuffix } }
    }

    /// A topic a worker writes, and what it keys the records by.
    public struct Output: Sendable, Hashable {
        public var topic: String
        /// Nil when the worker writes unkeyed records.
        public var key: String?

        public init(topic: String, key: String? = nil) {
            self.topic = topic
            self.key = key
        }
    }

    /// One deployment: its own Kafka cluster, camera count, partition scale and replica bounds.
    public struct Region: Sendable, Hashable {
        public var name: String
        public var description: String
        /// Name of the Strimzi `Kafka` resource (placeholder until the region exists).
        public var kafkaCluster: String
        /// Bootstrap servers of that cluster (placeholder until the region exists).
        public var bootstrap: String
        public var cameras: Int
        /// Scaled topics get `partitions × partitionMultiplier` partitions here.
        public var partitionMultiplier: Int
        public var replicas: [ReplicaBounds]

        public init(
            name: String, description: String = "", kafkaCluster: String, bootstrap: String, cameras: Int,
            partitionMultiplier: Int, replicas: [ReplicaBounds]
        ) {
            self.name = name
            self.description = description
            self.kafkaCluster = kafkaCluster
            self.bootstrap = bootstrap
            self.cameras = cameras
            self.partitionMultiplier = partitionMultiplier
            self.replicas = replicas
        }

        public func bounds(of worker: String) -> ReplicaBounds? { replicas.first { $0.worker == worker } }
    }

    /// How many replicas of one worker a region's autoscaler may run.
    public struct ReplicaBounds: Sendable, Hashable {
        public var worker: String
        public var min: Int
        public var max: Int

        public init(worker: String, min: Int, max: Int) {
            self.worker = worker
            self.min = min
            self.max = max
        }
    }

    /// The embedded dev cluster (librdkafka's mock brokers): every partition keeps only its
    /// newest 5 MiB, so scaled topics get more partitions here.
    public struct DevProfile: Sendable, Hashable {
        public var brokers: Int
        /// Used for every topic on the dev cluster.
        public var replicationFactor: Int
        public var partitionMultiplier: Int

        public init(brokers: Int, replicationFactor: Int, partitionMultiplier: Int) {
            self.brokers = brokers
            self.replicationFactor = replicationFactor
            self.partitionMultiplier = partitionMultiplier
        }
    }
}
