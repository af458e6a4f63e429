import CRdKafka
import Foundation
import Logging

/// librdkafka's built-in mock cluster: real Kafka brokers on loopback, speaking the real
/// wire protocol, living inside this process's memory.
///
/// Limits to keep in mind (they are librdkafka's, not ours): each partition keeps only
/// its newest 5 MiB or 100,000 batches; there is no compaction or time retention; the
/// brokers do not answer CreateTopics, so topics are created here with `createTopic`.
/// Every fault-injection call is thread-safe.
public final class KafkaMockCluster: @unchecked Sendable {
    private let client: RDKafkaClient
    private let cluster: OpaquePointer
    public let brokerCount: Int
    /// `127.0.0.1:port,…` for any Kafka client, in this process or another.
    public let bootstrapServers: String

    public init(brokers: Int, logger: Logger) throws(KafkaError) {
        guard (1...32).contains(brokers) else {
            throw KafkaError(kind: .invalidConfiguration, detail: "a mock cluster needs 1 to 32 brokers, not \(brokers)")
        }
        // The mock cluster hangs off a client handle; a producer with no bootstrap servers serves.
        // Its own notices ("no bootstrap.servers configured") would only confuse an operator.
        var hostLogger = logger
        hostLogger.logLevel = max(.warning, logger.logLevel)
        let client = try RDKafkaClient(
            role: .producer,
            properties: [("client.id", "vigil-dev-cluster"), ("log.connection.close", "false")],
            callbacks: RDKafkaCallbacks(logger: hostLogger)
        )
        guard let cluster = rd_kafka_mock_cluster_new(client.handle, Int32(brokers)) else {
            client.destroy()
            throw KafkaError(kind: .clientFailed, detail: "librdkafka could not start a mock cluster of \(brokers) brokers")
        }
        self.client = client
        self.cluster = cluster
        self.brokerCount = brokers
        self.bootstrapServers = String(cString: rd_kafka_mock_cluster_bootstraps(cluster))
    }

    /// Stops every broker; connected clients see the connections drop.
    public func shutdown() {
        rd_kafka_mock_cluster_destroy(cluster)
        client.destroy()
    }

    public func createTopic(_ name: String, partitions: Int, replicationFactor: Int) throws(KafkaError) {
        guard partitions > 0, (1...brokerCount).contains(replicationFactor) else {
            throw KafkaError(
                kind: .adminFailed,
                detail: "topic \(name): needs at least 1 partition and a replication factor of 1 to \(brokerCount) (the broker count)"
            )
        }
        try check(rd_kafka_mock_topic_create(cluster, name, Int32(partitions), Int32(replicationFactor)), "create topic \(name)")
    }

    /// Takes a broker off the network (its connections close, new ones are refused) until `setBrokerUp`.
    public func setBrokerDown(_ broker: Int32) throws(KafkaError) {
        try checkBroker(broker)
        try check(rd_kafka_mock_broker_set_down(cluster, broker), "set broker \(broker) down")
    }

    public func setBrokerUp(_ broker: Int32) throws(KafkaError) {
        try checkBroker(broker)
        try check(rd_kafka_mock_broker_set_up(cluster, broker), "set broker \(broker) up")
    }

    /// Adds `milliseconds` of round-trip time to every request to this broker.
    public func setBrokerRoundTripTime(_ broker: Int32, milliseconds: Int) throws(KafkaError) {
        try checkBroker(broker)
        try check(rd_kafka_mock_broker_set_rtt(cluster, broker, Int32(milliseconds)), "set RTT of broker \(broker)")
    }

    /// Moves a partition's leadership; clients learn it through NOT_LEADER errors and metadata refresh.
    public func setPartitionLeader(topic: String, partition: Int32, broker: Int32) throws(KafkaError) {
        try checkBroker(broker)
        try check(rd_kafka_mock_partition_set_leader(cluster, topic, partition, broker), "move leader of \(topic)[\(partition)]")
    }

    /// The next requests of this API (e.g. Produce = 0, Fetch = 1) fail with these error codes, in order.
    public func pushRequestErrors(apiKey: Int16, errors: [Int32]) {
        var codes = errors.map { rd_kafka_resp_err_t(rawValue: $0) }
        rd_kafka_mock_push_request_errors_array(cluster, apiKey, codes.count, &codes)
    }

    /// Makes `broker` the coordinator for a consumer group ("group") or transactional id ("transaction").
    public func setCoordinator(keyType: String, key: String, broker: Int32) throws(KafkaError) {
        try checkBroker(broker)
        try check(rd_kafka_mock_coordinator_set(cluster, keyType, key, broker), "set coordinator for \(key)")
    }

    private func checkBroker(_ broker: Int32) throws(KafkaError) {
        guard (1...Int32(brokerCount)).contains(broker) else {
            throw KafkaError(kind: .invalidConfiguration, detail: "no broker \(broker): this cluster has brokers 1 to \(brokerCount)")
        }
    }

    private func check(_ code: rd_kafka_resp_err_t, _ what: String) throws(KafkaError) {
        guard code == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw KafkaError.rdKafka(code, kind: .clientFailed, context: "mock cluster: cannot \(what)")
        }
    }
}
