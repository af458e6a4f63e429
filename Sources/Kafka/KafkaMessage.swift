/// A Kafka record header. Values are bytes; `nil` is a header with no value.
public struct KafkaHeader: Sendable, Hashable {
    public var key: String
    public var value: [UInt8]?

    public init(key: String, value: [UInt8]?) {
        self.key = key
        self.value = value
    }

    public init(key: String, value: String) {
        self.init(key: key, value: Array(value.utf8))
    }
}

/// A topic and one of its partitions.
public struct KafkaTopicPartition: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var topic: String
    public var partition: Int32

    public init(topic: String, partition: Int32) {
        self.topic = topic
        self.partition = partition
    }

    public static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.topic, lhs.partition) < (rhs.topic, rhs.partition)
    }

    public var description: String { "\(topic)[\(partition)]" }
}

/// A record to produce. Records with the same key go to the same partition, in order.
public struct KafkaProducerMessage: Sendable {
    public var topic: String
    /// `nil`: the partitioner chooses from the key (vigil keys every topic by camera id).
    public var partition: Int32?
    public var key: [UInt8]?
    public var value: [UInt8]
    public var headers: [KafkaHeader]

    public init(topic: String, partition: Int32? = nil, key: [UInt8]?, value: [UInt8], headers: [KafkaHeader] = []) {
        self.topic = topic
        self.partition = partition
        self.key = key
        self.value = value
        self.headers = headers
    }

    public init(topic: String, partition: Int32? = nil, key: String?, value: [UInt8], headers: [KafkaHeader] = []) {
        self.init(topic: topic, partition: partition, key: key.map { Array($0.utf8) }, value: value, headers: headers)
    }
}

/// Where a produced record landed, once the cluster acknowledged it (`acks=all`).
public struct KafkaDeliveryReport: Sendable, Hashable {
    public var topic: String
    public var partition: Int32
    public var offset: Int64

    public init(topic: String, partition: Int32, offset: Int64) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
    }
}

/// A record read by a `KafkaConsumer`.
public struct KafkaConsumerMessage: Sendable {
    public var topic: String
    public var partition: Int32
    public var offset: Int64
    public var key: [UInt8]?
    public var value: [UInt8]
    public var headers: [KafkaHeader]
    /// Record timestamp in milliseconds since the epoch, when the broker provides one.
    public var timestampMilliseconds: Int64?
    /// Which assignment of its partition delivered the record: storing its offset after the
    /// partition was revoked and assigned again would move the committed offset backwards.
    public var assignmentGeneration: UInt64

    public init(
        topic: String, partition: Int32, offset: Int64, key: [UInt8]?, value: [UInt8],
        headers: [KafkaHeader] = [], timestampMilliseconds: Int64? = nil, assignmentGeneration: UInt64 = 0
    ) {
        self.assignmentGeneration = assignmentGeneration
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.key = key
        self.value = value
        self.headers = headers
        self.timestampMilliseconds = timestampMilliseconds
    }

    public var topicPartition: KafkaTopicPartition { KafkaTopicPartition(topic: topic, partition: partition) }

    /// Key, value and header bytes: what the record costs in memory budgets.
    public var byteCount: Int { KafkaRecordSize.bytes(key: key, value: value, headers: headers) }

    /// The first header with this key, if any.
    public func header(_ key: String) -> [UInt8]? {
        headers.first { $0.key == key }?.value ?? nil
    }
}

/// The size a record counts for in byte budgets and against `message.max.bytes`.
public enum KafkaRecordSize {
    /// Per-header overhead on the wire (length varints), rounded up.
    static let headerOverhead = 10

    public static func bytes(key: [UInt8]?, value: [UInt8], headers: [KafkaHeader]) -> Int {
        bytes(key: key, value: value, headers: headers) { ($0.key, $0.value) }
    }

    /// The same count for headers of another type (the worker runtime's own), given each one's
    /// name and value: one formula wherever a record is sized.
    public static func bytes<Headers: Sequence>(
        key: [UInt8]?, value: [UInt8], headers: Headers, _ parts: (Headers.Element) -> (name: String, value: [UInt8]?)
    ) -> Int {
        var total = value.count + (key?.count ?? 0)
        for header in headers {
            let (name, headerValue) = parts(header)
            total += name.utf8.count + (headerValue?.count ?? 0) + headerOverhead
        }
        return total
    }
}

extension KafkaProducerMessage {
    /// Key, value and header bytes, as librdkafka counts them against `message.max.bytes`.
    public var byteCount: Int { KafkaRecordSize.bytes(key: key, value: value, headers: headers) }
}
