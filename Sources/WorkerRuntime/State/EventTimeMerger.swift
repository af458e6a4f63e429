import Kafka
import Logging

/// Puts the records of a stateful stage's input topics into one order per partition, whatever
/// order the fetches brought them in: by event time, ties broken by topic then offset. Each
/// topic's records stay in offset order (this is a merge of the topics, not a sort), so offsets
/// are still stored in order.
///
/// A record is released once every other input topic of its partition either has a later
/// record waiting or is read to its end (then nothing earlier can come from it now). Replaying
/// the same records therefore gives the same order, and so the same outputs. A partition that
/// holds `maxHeld` records waiting on a topic that lags releases its oldest anyway: memory
/// stays bounded and the worker says so.
struct EventTimeMerger {
    let topics: [String]
    let maxHeld: Int
    private var queues: [Int32: [String: [KafkaConsumerMessage]]] = [:]
    private var heads: [Int32: [String: Int]] = [:]

    init(topics: [String], maxHeld: Int = 10_000) {
        self.topics = topics.sorted()
        self.maxHeld = maxHeld
    }

    /// The order key of a record: its event time, then its topic, then its offset.
    static func order(_ message: KafkaConsumerMessage) -> (Int64, String, Int64) {
        let eventTime = message.header(RecordHeaders.eventTime).flatMap { Int64(String(decoding: $0, as: UTF8.self)) }
            ?? message.timestampMilliseconds ?? 0
        return (eventTime, message.topic, message.offset)
    }

    mutating func add(_ message: KafkaConsumerMessage) {
        queues[message.partition, default: [:]][message.topic, default: []].append(message)
    }

    /// The records that may go to the stage now, in order.
    /// - Parameter isReadToEnd: whether a topic's partition has nothing more to read now.
    mutating func release(isReadToEnd: (KafkaTopicPartition) -> Bool, logger: Logger) -> [KafkaConsumerMessage] {
        var released: [KafkaConsumerMessage] = []
        for partition in queues.keys.sorted() {
            while let next = nextReleasable(partition, isReadToEnd: isReadToEnd, logger: logger) {
                released.append(next)
            }
            compact(partition)
        }
        return released
    }

    private mutating func nextReleasable(_ partition: Int32, isReadToEnd: (KafkaTopicPartition) -> Bool, logger: Logger) -> KafkaConsumerMessage? {
        var candidate: (topic: String, message: KafkaConsumerMessage)?
        var waitingOn: [String] = []
        var held = 0
        for topic in topics {
            let queue = queues[partition]?[topic] ?? []
            let head = heads[partition]?[topic] ?? 0
            held += queue.count - head
            guard head < queue.count else {
                waitingOn.append(topic)
                continue
            }
            if candidate == nil || Self.order(queue[head]) < Self.order(candidate!.message) { candidate = (topic, queue[head]) }
        }
        guard let candidate else { return nil }
        let blocked = waitingOn.filter { !isReadToEnd(KafkaTopicPartition(topic: $0, partition: partition)) }
        if !blocked.isEmpty {
            guard held >= maxHeld else { return nil }
            logger.warning("releasing a record before its event-time turn: the partition's other inputs lag and \(held) records are waiting", metadata: [
                "partition": "\(partition)", "waiting_on": "\(blocked)",
            ])
        }
        heads[partition, default: [:]][candidate.topic, default: 0] += 1
        return candidate.message
    }

    /// Drops released records from the front of the queues.
    private mutating func compact(_ partition: Int32) {
        for topic in topics {
            guard let head = heads[partition]?[topic], head > 0 else { continue }
            queues[partition]?[topic]?.removeFirst(head)
            heads[partition]?[topic] = 0
        }
    }

    /// Forgets the records of partitions no longer assigned (their next owner reads them).
    mutating func keepOnly(_ assigned: Set<KafkaTopicPartition>) {
        for (partition, byTopic) in queues {
            for topic in byTopic.keys where !assigned.contains(KafkaTopicPartition(topic: topic, partition: partition)) {
                queues[partition]?[topic] = nil
                heads[partition]?[topic] = nil
            }
        }
    }
}
