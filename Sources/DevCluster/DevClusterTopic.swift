import Kafka

/// A topic the dev cluster creates at start or on request.
public struct DevClusterTopic: Codable, Sendable, Hashable {
    public var name: String
    public var partitions: Int
    public var replicationFactor: Int

    public init(name: String, partitions: Int, replicationFactor: Int) {
        self.name = name
        self.partitions = partitions
        self.replicationFactor = replicationFactor
    }

    /// Parses `name:partitions[:replication]`, as given on the command line.
    public init(argument: String, defaultReplicationFactor: Int) throws(KafkaError) {
        let parts = argument.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard (1...3).contains(parts.count), !parts[0].isEmpty,
              let partitions = parts.count > 1 ? Int(parts[1]) : 1,
              let replication = parts.count > 2 ? Int(parts[2]) : defaultReplicationFactor
        else {
            throw KafkaError(kind: .invalidConfiguration, detail: "topic \"\(argument)\": write it as NAME[:PARTITIONS[:REPLICATION]], e.g. frames.v1:12:3")
        }
        self.init(name: parts[0], partitions: partitions, replicationFactor: replication)
    }
}

/// What a running dev cluster tells scripts and the `vigil dev-cluster` control commands.
public struct DevClusterState: Codable, Sendable, Hashable {
    public var bootstrapServers: String
    /// Base URL of the control API, e.g. `http://127.0.0.1:41234`.
    public var controlURL: String
    public var brokers: Int
    public var topics: [DevClusterTopic]
    public var processID: Int32

    public init(bootstrapServers: String, controlURL: String, brokers: Int, topics: [DevClusterTopic], processID: Int32) {
        self.bootstrapServers = bootstrapServers
        self.controlURL = controlURL
        self.brokers = brokers
        self.topics = topics
        self.processID = processID
    }
}
