/// Records that a consumer expected but the broker no longer had.
public struct KafkaRecordLoss: Sendable, Hashable, CustomStringConvertible {
    public var topicPartition: KafkaTopicPartition
    /// First offset that was never received.
    public var firstMissingOffset: Int64
    /// Offset the consumer resumed at; everything before it, from `firstMissingOffset`, is gone.
    public var resumedAtOffset: Int64

    public var count: Int64 { resumedAtOffset - firstMissingOffset }

    public var description: String {
        "\(count) records of \(topicPartition) lost: offsets \(firstMissingOffset)–\(resumedAtOffset - 1) were dropped by the broker before this consumer read them"
    }
}

extension KafkaRecordLoss {
    /// The part of this jump in offsets that the broker deleted, judged by where the partition's
    /// log starts now: nil when the log still starts at or before the first missing offset —
    /// compaction and transaction markers leave such jumps without losing anything.
    public func confirmed(byLogStart logStart: Int64) -> KafkaRecordLoss? {
        guard logStart > firstMissingOffset else { return nil }
        return KafkaRecordLoss(topicPartition: topicPartition, firstMissingOffset: firstMissingOffset, resumedAtOffset: min(logStart, resumedAtOffset))
    }
}

/// Notices when a partition's offsets jump forward.
///
/// On an ordinary (non-compacted) topic consecutive records have consecutive offsets, so a
/// jump means the broker deleted records before they were read — retention ran out, or the
/// dev cluster's 5 MiB-per-partition cap dropped them — and the consumer was reset to the
/// oldest record still there. librdkafka resets silently (`auto.offset.reset`); this turns
/// that into a reported loss.
struct OffsetGapDetector {
    private var expectedNext: [KafkaTopicPartition: Int64] = [:]

    /// A partition was assigned. `committedOffset` is the group's committed offset, or nil
    /// when the group has none (it then starts at the start position: nothing to compare).
    mutating func assigned(_ partition: KafkaTopicPartition, committedOffset: Int64?) {
        expectedNext[partition] = committedOffset
    }

    mutating func revoked(_ partition: KafkaTopicPartition) {
        expectedNext[partition] = nil
    }

    /// Checks a received record; returns the loss in front of it, if any.
    mutating func received(_ partition: KafkaTopicPartition, offset: Int64) -> KafkaRecordLoss? {
        defer { expectedNext[partition] = offset + 1 }
        guard let expected = expectedNext[partition], offset > expected else { return nil }
        return KafkaRecordLoss(topicPartition: partition, firstMissingOffset: expected, resumedAtOffset: offset)
    }
}
