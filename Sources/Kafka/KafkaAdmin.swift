import CRdKafka
import Foundation
import Logging

/// What the cluster says about its brokers, topics and partitions.
public struct KafkaClusterMetadata: Sendable, Hashable {
    public struct Broker: Sendable, Hashable {
        public var id: Int32
        public var host: String
        public var port: Int32
    }

    public struct Partition: Sendable, Hashable {
        public var id: Int32
        /// Broker id of the leader; -1 while there is none.
        public var leader: Int32
        public var replicas: [Int32]
        public var inSyncReplicas: [Int32]
    }

    public struct Topic: Sendable, Hashable {
        public var name: String
        public var partitions: [Partition]
        /// Set when the broker could not describe the topic (e.g. it does not exist).
        public var error: String?
    }

    public var brokers: [Broker]
    public var topics: [Topic]

    public func topic(_ name: String) -> Topic? { topics.first { $0.name == name } }
}

/// How far a consumer group is behind on one partition.
public struct KafkaPartitionLag: Sendable, Hashable {
    public var topicPartition: KafkaTopicPartition
    /// The group's committed offset; nil when it never committed on this partition.
    public var committedOffset: Int64?
    /// Oldest offset the broker still holds.
    public var lowWatermark: Int64
    /// Offset the next produced record will get.
    public var highWatermark: Int64

    /// Records not yet consumed. A group with no commit counts everything retained.
    public var lag: Int64 { max(0, highWatermark - max(committedOffset ?? lowWatermark, lowWatermark)) }
}

/// Cluster inspection: metadata, watermarks and consumer-group lag.
public final class KafkaAdmin: @unchecked Sendable {
    let client: RDKafkaClient
    let configuration: KafkaConfiguration
    private let logger: Logger

    public init(configuration: KafkaConfiguration, logger: Logger) throws(KafkaError) {
        self.configuration = configuration
        self.logger = logger
        self.client = try RDKafkaClient(
            role: .producer, properties: configuration.commonProperties + configuration.properties.sorted { $0.key < $1.key },
            callbacks: RDKafkaCallbacks(logger: logger)
        )
    }

    private var timeoutMilliseconds: Int32 { Int32(configuration.requestTimeout.milliseconds) }

    /// Releases the client now, waiting for calls in progress (dropping the admin releases it
    /// too); every call after it fails with `.closed`.
    public func close() async {
        let client = client
        await onBlockingThread { client.destroy() }
    }

    /// Brokers, and topics with their partitions (all topics when `topics` is nil).
    public func metadata(topics: [String]? = nil) async throws -> KafkaClusterMetadata {
        let timeout = configuration.requestTimeout
        let bootstrap = configuration.bootstrapServers
        return try await onBlockingThread { [client = self.client] () throws(KafkaError) in
            try client.metadata(timeout: timeout, only: topics.map(Set.init), context: "metadata request to \(bootstrap)")
        }
    }

    /// Oldest and next offset of a partition, asked of its leader.
    public func watermarks(_ partition: KafkaTopicPartition) async throws -> (low: Int64, high: Int64) {
        let timeout = timeoutMilliseconds
        return try await onBlockingThread { [client = self.client] () throws(KafkaError) -> (low: Int64, high: Int64) in
            var low: Int64 = 0
            var high: Int64 = 0
            let code = try client.withHandle("watermarks of \(partition)") { handle in
                rd_kafka_query_watermark_offsets(handle, partition.topic, partition.partition, &low, &high, timeout)
            }
            guard code == RD_KAFKA_RESP_ERR_NO_ERROR else {
                throw .rdKafka(code, kind: .adminFailed, context: "watermarks of \(partition)")
            }
            return (low, high)
        }
    }

    /// The offsets `group` committed, per partition (nil where it never committed).
    public func committedOffsets(group: String, partitions: [KafkaTopicPartition]) async throws -> [KafkaTopicPartition: Int64?] {
        // OffsetFetch goes to the group's coordinator; a consumer handle that never subscribes
        // asks without joining the group.
        let groupClient = try RDKafkaClient(
            role: .consumer,
            properties: configuration.commonProperties + [("group.id", group)] + configuration.properties.sorted { $0.key < $1.key },
            callbacks: RDKafkaCallbacks(logger: logger)
        )
        let timeout = timeoutMilliseconds
        return try await onBlockingThread { () throws(KafkaError) -> [KafkaTopicPartition: Int64?] in
            defer { groupClient.destroy(skipConsumerClose: true) }
            return try groupClient.withHandle("committed offsets of group \(group)") { handle throws(KafkaError) in
                try RDKafkaTopicPartitionList.withList(partitions.map { ($0, nil) }) { list -> Result<[KafkaTopicPartition: Int64?], KafkaError> in
                    let code = rd_kafka_committed(handle, list, timeout)
                    guard code == RD_KAFKA_RESP_ERR_NO_ERROR else {
                        return .failure(.rdKafka(code, kind: .adminFailed, context: "committed offsets of group \(group)"))
                    }
                    var offsets: [KafkaTopicPartition: Int64?] = [:]
                    for (partition, offset, _) in RDKafkaTopicPartitionList.entries(list) {
                        offsets[partition] = offset >= 0 ? offset : nil
                    }
                    return .success(offsets)
                }.get()
            }
        }
    }

    /// Lag of `group` on every partition of `topics`: high watermark minus committed offset.
    public func lag(group: String, topics: [String]) async throws -> [KafkaPartitionLag] {
        let metadata = try await metadata(topics: topics)
        let partitions = metadata.topics.flatMap { topic in
            topic.partitions.map { KafkaTopicPartition(topic: topic.name, partition: $0.id) }
        }
        let committed = try await committedOffsets(group: group, partitions: partitions)
        var result: [KafkaPartitionLag] = []
        for partition in partitions.sorted() {
            let (low, high) = try await watermarks(partition)
            result.append(KafkaPartitionLag(topicPartition: partition, committedOffset: committed[partition] ?? nil, lowWatermark: low, highWatermark: high))
        }
        return result
    }
}

extension RDKafkaClient {
    /// Asks a broker for the cluster's metadata (blocking: call it off the cooperative pool).
    func metadata(timeout: Duration, only wanted: Set<String>?, context: String) throws(KafkaError) -> KafkaClusterMetadata {
        try withHandle(context) { handle throws(KafkaError) in
            var metadata: UnsafePointer<rd_kafka_metadata>?
            let code = rd_kafka_metadata(handle, 1, nil, &metadata, Int32(timeout.milliseconds))
            guard code == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata else {
                throw KafkaError.rdKafka(code, kind: .adminFailed, context: context)
            }
            defer { rd_kafka_metadata_destroy(metadata) }
            return Self.convert(metadata.pointee, only: wanted)
        }
    }

    private static func convert(_ metadata: rd_kafka_metadata, only wanted: Set<String>?) -> KafkaClusterMetadata {
        let brokers = (0..<Int(metadata.broker_cnt)).map { index in
            let broker = metadata.brokers[index]
            return KafkaClusterMetadata.Broker(id: broker.id, host: String(cString: broker.host), port: broker.port)
        }
        let topics = (0..<Int(metadata.topic_cnt)).compactMap { index -> KafkaClusterMetadata.Topic? in
            let topic = metadata.topics[index]
            let name = String(cString: topic.topic)
            if let wanted, !wanted.contains(name) { return nil }
            let partitions = (0..<Int(topic.partition_cnt)).map { partitionIndex in
                let partition = topic.partitions[partitionIndex]
                return KafkaClusterMetadata.Partition(
                    id: partition.id,
                    leader: partition.leader,
                    replicas: Array(UnsafeBufferPointer(start: partition.replicas, count: Int(partition.replica_cnt))),
                    inSyncReplicas: Array(UnsafeBufferPointer(start: partition.isrs, count: Int(partition.isr_cnt)))
                )
            }.sorted { $0.id < $1.id }
            let error = topic.err == RD_KAFKA_RESP_ERR_NO_ERROR ? nil : String(cString: rd_kafka_err2str(topic.err))
            return KafkaClusterMetadata.Topic(name: name, partitions: partitions, error: error)
        }.sorted { $0.name < $1.name }
        return KafkaClusterMetadata(brokers: brokers.sorted { $0.id < $1.id }, topics: topics)
    }
}
