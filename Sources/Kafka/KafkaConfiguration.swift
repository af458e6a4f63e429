import Foundation

/// Settings every Kafka client shares: where the cluster is and how to talk to it.
///
/// Typed fields cover what vigil sets on purpose; `properties` passes any other librdkafka
/// property straight through (TLS and SASL for production clusters, tuning). Every property
/// is checked when the client is created: an unknown name or a bad value fails at start
/// with an error naming the property.
public struct KafkaConfiguration: Sendable {
    /// `host:port[,host:port…]` of one or more brokers.
    public var bootstrapServers: String
    /// Shown in broker logs and quotas; the worker name is a good choice.
    public var clientID: String
    /// How long a start-up connectivity check waits for a broker, and how long
    /// admin and metadata requests wait for an answer.
    public var requestTimeout: Duration
    /// Extra librdkafka properties, e.g. `security.protocol`, `ssl.ca.location`,
    /// `sasl.mechanism`, `sasl.username`, `sasl.password`. Applied last, so they override.
    public var properties: [String: String]

    public init(
        bootstrapServers: String,
        clientID: String = "vigil",
        requestTimeout: Duration = .seconds(10),
        properties: [String: String] = [:]
    ) {
        self.bootstrapServers = bootstrapServers
        self.clientID = clientID
        self.requestTimeout = requestTimeout
        self.properties = properties
    }

    /// Properties that go to librdkafka for any client, before the client-specific ones.
    var commonProperties: [(String, String)] {
        [
            ("bootstrap.servers", bootstrapServers),
            ("client.id", clientID),
            ("socket.connection.setup.timeout.ms", String(requestTimeout.milliseconds)),
        ]
    }

    /// Parses `name=value` entries (command-line flags, environment lists) into properties.
    /// An entry without a name or `=` is refused; its text is not repeated, as it may hold a secret.
    public static func properties(fromAssignments entries: [String]) throws(KafkaError) -> [String: String] {
        var properties: [String: String] = [:]
        for (index, entry) in entries.enumerated() {
            guard let equals = entry.firstIndex(of: "="), equals != entry.startIndex else {
                throw KafkaError(
                    kind: .invalidConfiguration,
                    detail: "Kafka property #\(index + 1) is not NAME=VALUE (e.g. security.protocol=SSL)"
                )
            }
            properties[entry[..<equals].trimmingCharacters(in: .whitespaces)] = String(entry[entry.index(after: equals)...])
        }
        return properties
    }

    /// Properties vigil's delivery guarantees and memory bounds rest on, with why: set through
    /// `properties` they are refused at start instead of silently weakening a worker.
    static let protectedProperties: [String: String] = {
        let offsetStore = "offsets are stored only after every output of a record was acknowledged"
        let commits = "vigil commits stored offsets itself (periodically, on revoke and on close); set the commit interval instead"
        let idempotence = "the producer must be idempotent so retries neither duplicate nor reorder outputs"
        let acks = "an output counts as delivered only once every in-sync replica has it (acks=all)"
        let memory = "the worker's memory budget sets librdkafka's queues and fetch sizes; change the budget instead"
        return [
            "enable.auto.offset.store": offsetStore,
            "enable.auto.commit": commits,
            "auto.commit.enable": commits,
            "auto.commit.interval.ms": commits,
            "enable.idempotence": idempotence,
            "enable.gapless.guarantee": idempotence,
            "acks": acks,
            "request.required.acks": acks,
            "queued.max.messages.kbytes": memory,
            "queued.min.messages": memory,
            "fetch.max.bytes": memory,
            "max.partition.fetch.bytes": memory,
            "queue.buffering.max.kbytes": memory,
            "queue.buffering.max.messages": memory,
            "message.max.bytes": memory,
        ]
    }()

    /// Refuses pass-through properties that would override what delivery or the memory budget
    /// depends on, and the cooperative assignment protocol, which vigil's consumer does not speak.
    public static func checkPassThrough(_ properties: [String: String]) throws(KafkaError) {
        for name in properties.keys.sorted() {
            if let reason = protectedProperties[name] {
                throw KafkaError(kind: .invalidConfiguration, detail: "Kafka property \"\(name)\" cannot be overridden: \(reason)")
            }
            if name == "partition.assignment.strategy", properties[name]?.contains("cooperative") == true {
                throw KafkaError(
                    kind: .invalidConfiguration,
                    detail: "Kafka property \"partition.assignment.strategy\": the cooperative protocol is not supported; use range or roundrobin"
                )
            }
        }
    }

    /// Property names whose values are never shown in errors or logs.
    static func isSecret(_ property: String) -> Bool {
        let name = property.lowercased()
        return ["password", "secret", "key", "token", "jaas"].contains { name.contains($0) }
    }
}

/// How a `KafkaProducer` delivers.
public struct KafkaProducerConfiguration: Sendable {
    public var cluster: KafkaConfiguration
    /// Messages handed to the producer but not yet acknowledged. When the limit is reached,
    /// `send` waits: back-pressure instead of unbounded memory.
    public var maxInFlightMessages: Int
    /// How long librdkafka waits to fill a batch before sending it.
    public var linger: Duration
    /// How long librdkafka keeps retrying one message before reporting it failed.
    public var deliveryTimeout: Duration
    /// Largest message accepted (`message.max.bytes`); larger sends fail at once with `.messageTooLarge`.
    public var maxMessageBytes: Int
    /// Bytes (keys, values, headers) handed to the producer but not yet acknowledged: beyond
    /// it `send` waits, whatever the size of the records. A record larger than the whole
    /// budget is let through alone.
    public var maxInFlightBytes: Int
    /// Topics whose records are already compressed media (H.264, JPEG): sent without the
    /// producer's zstd, which would cost CPU on both ends and save nothing.
    public var uncompressedTopics: Set<String>
    /// How often librdkafka reports its statistics (`KafkaProducer.statistics`); nil: never.
    public var statisticsInterval: Duration?

    public init(
        cluster: KafkaConfiguration,
        maxInFlightMessages: Int = 10_000,
        linger: Duration = .milliseconds(5),
        deliveryTimeout: Duration = .seconds(120),
        maxMessageBytes: Int = 1_000_000,
        maxInFlightBytes: Int = 64 << 20,
        uncompressedTopics: Set<String> = [],
        statisticsInterval: Duration? = nil
    ) {
        self.cluster = cluster
        self.maxInFlightMessages = maxInFlightMessages
        self.linger = linger
        self.deliveryTimeout = deliveryTimeout
        self.maxMessageBytes = maxMessageBytes
        self.maxInFlightBytes = maxInFlightBytes
        self.uncompressedTopics = uncompressedTopics
        self.statisticsInterval = statisticsInterval
    }

    var librdkafkaProperties: [(String, String)] {
        cluster.commonProperties + [
            // Idempotence implies acks=all and ordered retries: no duplicates, no reordering.
            ("enable.idempotence", "true"),
            ("acks", "all"),
            ("compression.codec", "zstd"),
            ("linger.ms", String(linger.milliseconds)),
            ("message.timeout.ms", String(deliveryTimeout.milliseconds)),
            ("message.max.bytes", String(maxMessageBytes)),
            // Above our own in-flight limits, so librdkafka's queue never rejects a send.
            ("queue.buffering.max.messages", String(maxInFlightMessages + 1_000)),
            ("queue.buffering.max.kbytes", String(min(2_097_151, (maxInFlightBytes + maxMessageBytes) / 1_024 + 1_024))),
        ] + (statisticsInterval.map { [("statistics.interval.ms", String($0.milliseconds))] } ?? []) + cluster.properties.sorted { $0.key < $1.key }
    }
}

/// How a `KafkaConsumer` joins its group and commits.
public struct KafkaConsumerConfiguration: Sendable {
    /// Where a group with no committed offset for a partition starts.
    public enum StartPosition: String, Sendable {
        case earliest, latest
    }

    public var cluster: KafkaConfiguration
    /// The consumer group: replicas of one worker share it and split the partitions.
    public var groupID: String
    public var topics: [String]
    public var startPosition: StartPosition
    /// Stored offsets are committed this often, on every revoke and on close.
    public var commitInterval: Duration
    /// A member that sends no heartbeat for this long is removed from the group.
    public var sessionTimeout: Duration
    /// Messages fetched ahead of the application. The fetch pauses while the buffer is full.
    public var bufferedMessages: Int
    /// Bytes of fetched records waiting for the application, at most (one record is let
    /// through however large).
    public var bufferedBytes: Int
    /// Bytes librdkafka may prefetch into its own queue (`queued.max.messages.kbytes`; one
    /// fetch response may go past it).
    public var prefetchBytes: Int
    /// Whether a jump in offsets counts as lost records. True for ordinary topics (a gap
    /// there means the broker dropped data before it was read); set false for compacted
    /// topics, where gaps are normal.
    public var offsetGapsAreLoss: Bool

    public init(
        cluster: KafkaConfiguration,
        groupID: String,
        topics: [String],
        startPosition: StartPosition = .earliest,
        commitInterval: Duration = .seconds(1),
        sessionTimeout: Duration = .seconds(10),
        bufferedMessages: Int = 1_000,
        bufferedBytes: Int = 32 << 20,
        prefetchBytes: Int = 32 << 20,
        offsetGapsAreLoss: Bool = true
    ) {
        self.cluster = cluster
        self.groupID = groupID
        self.topics = topics
        self.startPosition = startPosition
        self.commitInterval = commitInterval
        self.sessionTimeout = sessionTimeout
        self.bufferedMessages = bufferedMessages
        self.bufferedBytes = bufferedBytes
        self.prefetchBytes = prefetchBytes
        self.offsetGapsAreLoss = offsetGapsAreLoss
    }

    var librdkafkaProperties: [(String, String)] {
        cluster.commonProperties + [
            ("group.id", groupID),
            ("auto.offset.reset", startPosition.rawValue),
            // Offsets are stored by the application after processing; the consumer commits them
            // itself (every commitInterval, on revoke, on close), so no commit happens behind its back.
            ("enable.auto.offset.store", "false"),
            ("enable.auto.commit", "false"),
            // Prefetching is bounded in bytes: a fetch may return up to fetch.max.bytes beyond the queue.
            ("queued.max.messages.kbytes", String(max(1, min(2_097_151, prefetchBytes / 1_024)))),
            ("fetch.max.bytes", String(fetchMaxBytes)),
            ("max.partition.fetch.bytes", String(min(1_048_576, fetchMaxBytes))),
            // A fetch response may exceed fetch.max.bytes by one record batch (Kafka returns at
            // least one batch; the mock cluster does too): room for it, and the protocol framing.
            ("receive.message.max.bytes", String(fetchMaxBytes + 1_048_576 + 512)),
            ("session.timeout.ms", String(sessionTimeout.milliseconds)),
            ("heartbeat.interval.ms", String(max(100, sessionTimeout.milliseconds / 5))),
            ("enable.partition.eof", "false"),
        ] + cluster.properties.sorted { $0.key < $1.key }
    }

    /// One fetch response at most: a quarter of the prefetch budget, but never below the
    /// largest record (librdkafka requires fetch.max.bytes ≥ message.max.bytes).
    private var fetchMaxBytes: Int { max(1_048_576, prefetchBytes / 4) }
}

extension Duration {
    /// Whole milliseconds, as librdkafka's `*.ms` properties want them.
    var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000 + attoseconds / 1_000_000_000_000_000
    }
}
