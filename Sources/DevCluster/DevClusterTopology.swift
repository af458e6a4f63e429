import Topology

// Here rather than in Topology: the Topology module stays free of the dev cluster (and its
// HTTP server), so workers and renderers can use it; the dev cluster knows how to start from it.
extension Topology {
    /// Every topic with the dev profile's partitions and replication factor, in file order.
    /// `brokers` (default: the dev profile's) caps the replication factor, so a smaller
    /// cluster started with `--brokers 1` still gets every topic.
    public func devClusterTopics(brokers: Int? = nil) -> [DevClusterTopic] {
        topics.map { topic in
            DevClusterTopic(
                name: topic.name,
                partitions: partitions(of: topic, in: .dev),
                replicationFactor: min(replicationFactor(of: topic, in: .dev), brokers ?? dev.brokers)
            )
        }
    }
}
