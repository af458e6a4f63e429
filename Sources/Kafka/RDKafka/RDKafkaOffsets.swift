import CRdKafka

/// Where a client stands in its partitions, from librdkafka's local state: no broker request.
enum RDKafkaOffsets {
    /// Per partition, the offset after the last record handed to the application; partitions
    /// with none handed out yet are missing. Nil when librdkafka cannot say.
    static func positions(_ handle: OpaquePointer, _ partitions: [KafkaTopicPartition]) -> [KafkaTopicPartition: Int64]? {
        RDKafkaTopicPartitionList.withList(partitions.map { ($0, nil) }) { list in
            guard rd_kafka_position(handle, list) == RD_KAFKA_RESP_ERR_NO_ERROR else { return nil }
            var positions: [KafkaTopicPartition: Int64] = [:]
            for (partition, offset, _) in RDKafkaTopicPartitionList.entries(list) where offset >= 0 {
                positions[partition] = offset
            }
            return positions
        }
    }

    /// The partition's oldest and next offset as of its last fetch; nil before the first
    /// fetch (`low` may still be -1 when the broker did not send the log start).
    static func cachedWatermarks(_ handle: OpaquePointer, _ partition: KafkaTopicPartition) -> (low: Int64, high: Int64)? {
        var low: Int64 = -1
        var high: Int64 = -1
        guard rd_kafka_get_watermark_offsets(handle, partition.topic, partition.partition, &low, &high) == RD_KAFKA_RESP_ERR_NO_ERROR,
              high >= 0 else { return nil }
        return (low, high)
    }
}
