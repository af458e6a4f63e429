import CRdKafka

/// Reading and building librdkafka's `rd_kafka_topic_partition_list_t`.
enum RDKafkaTopicPartitionList {
    /// Topic, partition and offset of every element.
    static func entries(_ list: UnsafePointer<rd_kafka_topic_partition_list_t>) -> [(KafkaTopicPartition, offset: Int64, error: rd_kafka_resp_err_t)] {
        (0..<Int(list.pointee.cnt)).map { index in
            let element = list.pointee.elems[index]
            return (
                KafkaTopicPartition(topic: String(cString: element.topic), partition: element.partition),
                element.offset,
                element.err
            )
        }
    }

    /// A new list the caller must free with `rd_kafka_topic_partition_list_destroy`.
    static func make(_ partitions: [(KafkaTopicPartition, offset: Int64?)]) -> UnsafeMutablePointer<rd_kafka_topic_partition_list_t> {
        let list = rd_kafka_topic_partition_list_new(Int32(partitions.count))!
        for (partition, offset) in partitions {
            let element = rd_kafka_topic_partition_list_add(list, partition.topic, partition.partition)!
            if let offset { element.pointee.offset = offset }
        }
        return list
    }

    static func withList<R>(
        _ partitions: [(KafkaTopicPartition, offset: Int64?)],
        _ body: (UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) -> R
    ) -> R {
        let list = make(partitions)
        defer { rd_kafka_topic_partition_list_destroy(list) }
        return body(list)
    }
}
