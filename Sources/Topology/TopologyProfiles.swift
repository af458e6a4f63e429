import TopicSpecs

extension Topology {
    /// Which numbers apply: the topology's base counts, one region's, or the dev cluster's.
    public enum Profile: Sendable, Hashable, CustomStringConvertible {
        case base
        case region(String)
        case dev

        /// The name `--region` takes for the dev cluster's profile.
        public static let devName = "dev"

        public var description: String {
            switch self {
            case .base: "base"
            case .region(let name): "region \(name)"
            case .dev: "dev profile"
            }
        }

        /// `" in region region-b"`, for messages; empty for the base profile.
        var phrase: String {
            switch self {
            case .base: ""
            case .region(let name): " in region \(name)"
            case .dev: " in the dev profile"
            }
        }
    }

    /// Every profile the topology defines: base, each region, dev.
    public var profiles: [Profile] { [.base] + regions.map { .region($0.name) } + [.dev] }

    /// `nil` → base, `dev` → the dev profile, otherwise a declared region.
    public func profile(region: String?) throws(TopologyProblem) -> Profile {
        guard let region else { return .base }
        if region == Profile.devName { return .dev }
        guard self.region(named: region) != nil else {
            let declared = regions.map(\.name).joined(separator: ", ")
            throw TopologyProblem(
                keyPath: "regions",
                message: "region \"\(region)\" is not declared; use one of \(declared.isEmpty ? "(none declared)" : declared), or \(Profile.devName) for the dev cluster"
            )
        }
        return .region(region)
    }

    /// The partition multiplier for scaled topics; 1 for the base profile and undeclared regions.
    public func partitionMultiplier(in profile: Profile) -> Int {
        switch profile {
        case .base: 1
        case .region(let name): region(named: name)?.partitionMultiplier ?? 1
        case .dev: dev.partitionMultiplier
        }
    }

    public func partitions(of topic: Topic, in profile: Profile) -> Int {
        topic.scaled ? topic.partitions * partitionMultiplier(in: profile) : topic.partitions
    }

    /// `24 partitions (6 × partition_multiplier 4)`, for messages.
    func describePartitions(of topic: Topic, in profile: Profile) -> String {
        let count = partitions(of: topic, in: profile)
        let multiplier = partitionMultiplier(in: profile)
        let noun = count == 1 ? "partition" : "partitions"
        guard topic.scaled, multiplier != 1 else { return "\(count) \(noun)" }
        return "\(count) \(noun) (\(topic.partitions) × partition_multiplier \(multiplier))"
    }

    /// The dev cluster uses its own replication factor for every topic.
    public func replicationFactor(of topic: Topic, in profile: Profile) -> Int {
        profile == .dev ? dev.replicationFactor : topic.replicationFactor
    }

    public func minInsyncReplicas(of topic: Topic, in profile: Profile) -> Int {
        min(topic.minInsyncReplicas, replicationFactor(of: topic, in: profile))
    }

    /// Every topic as the Kafka layer declares it: partitions and replication for the profile,
    /// and `retention.ms`, `cleanup.policy`, `min.insync.replicas`. Validate the topology first:
    /// a retention that is not understood is left out here.
    public func topicSpecs(profile: Profile) -> [KafkaTopicSpec] {
        topics.map { topic in
            var configs = [
                "cleanup.policy": topic.cleanupPolicy.rawValue,
                "min.insync.replicas": String(minInsyncReplicas(of: topic, in: profile)),
            ]
            configs["retention.ms"] = topic.retention.kafkaRetentionMilliseconds
            return KafkaTopicSpec(
                name: topic.name,
                partitions: partitions(of: topic, in: profile),
                replicationFactor: replicationFactor(of: topic, in: profile),
                configs: configs
            )
        }
    }

    /// `topicSpecs(profile:)` for a region by name: nil for the base counts, `dev` for the dev profile.
    public func topicSpecs(region: String? = nil) throws(TopologyProblem) -> [KafkaTopicSpec] {
        topicSpecs(profile: try profile(region: region))
    }
}
