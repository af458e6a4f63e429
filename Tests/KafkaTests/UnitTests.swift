import Foundation
@testable import DevCluster
@testable import Kafka
import Logging
import Testing

@Suite("Offset gap detection")
struct OffsetGapDetectorTests {
    let partition = KafkaTopicPartition(topic: "frames.v1", partition: 3)

    @Test("consecutive offsets after the committed one are no loss")
    func consecutive() {
        var detector = OffsetGapDetector()
        detector.assigned(partition, committedOffset: 10)
        #expect(detector.received(partition, offset: 10) == nil)
        #expect(detector.received(partition, offset: 11) == nil)
    }

    @Test("a jump past the committed offset is the exact lost range")
    func jumpAfterAssignment() {
        var detector = OffsetGapDetector()
        detector.assigned(partition, committedOffset: 100)
        let loss = detector.received(partition, offset: 12_084)
        #expect(loss == KafkaRecordLoss(topicPartition: partition, firstMissingOffset: 100, resumedAtOffset: 12_084))
        #expect(loss?.count == 11_984)
        #expect(loss?.description.contains("offsets 100–12083") == true)
        #expect(detector.received(partition, offset: 12_085) == nil)
    }

    @Test("a jump in mid-stream is reported; a group with no commit has nothing to compare")
    func midStreamAndFresh() {
        var detector = OffsetGapDetector()
        detector.assigned(partition, committedOffset: nil)
        #expect(detector.received(partition, offset: 5_000) == nil)
        #expect(detector.received(partition, offset: 5_001) == nil)
        #expect(detector.received(partition, offset: 5_010)?.count == 8, "offsets 5002...5009")
    }

    @Test("a one-record gap is a loss of exactly one record, right after assignment and in mid-stream")
    func oneRecordGaps() {
        var detector = OffsetGapDetector()
        detector.assigned(partition, committedOffset: 40)
        #expect(detector.received(partition, offset: 41) == KafkaRecordLoss(topicPartition: partition, firstMissingOffset: 40, resumedAtOffset: 41))
        #expect(detector.received(partition, offset: 42) == nil)
        #expect(detector.received(partition, offset: 44)?.count == 1, "offset 43 missing mid-stream")
        #expect(detector.received(partition, offset: 44 + 1) == nil)
    }

    @Test("a jump is a loss only up to where the broker's log starts now: compaction and transaction markers lose nothing")
    func lossIsJudgedByTheLogStart() {
        let jump = KafkaRecordLoss(topicPartition: partition, firstMissingOffset: 10, resumedAtOffset: 15)
        #expect(jump.confirmed(byLogStart: 0) == nil, "the log still holds offset 10: compacted away or a control record, not lost")
        #expect(jump.confirmed(byLogStart: 10) == nil)
        #expect(jump.confirmed(byLogStart: 11)?.count == 1, "exactly offset 10 deleted")
        #expect(jump.confirmed(byLogStart: 13) == KafkaRecordLoss(topicPartition: partition, firstMissingOffset: 10, resumedAtOffset: 13))
        #expect(jump.confirmed(byLogStart: 40)?.resumedAtOffset == 15, "never more than the jump itself")
    }

    @Test("after a revoke, the partition's history is forgotten")
    func revoke() {
        var detector = OffsetGapDetector()
        detector.assigned(partition, committedOffset: 1)
        detector.revoked(partition)
        #expect(detector.received(partition, offset: 50) == nil)
    }
}

@Suite("Configuration")
struct ConfigurationTests {
    @Test("the producer is idempotent with acks=all and zstd, and pass-through properties override")
    func producerProperties() {
        let configuration = KafkaProducerConfiguration(
            cluster: .init(bootstrapServers: "b:9092", properties: ["linger.ms": "20", "security.protocol": "SSL"]),
            maxInFlightMessages: 50
        )
        let properties = configuration.librdkafkaProperties
        let last = Dictionary(properties, uniquingKeysWith: { _, later in later })
        #expect(last["enable.idempotence"] == "true")
        #expect(last["acks"] == "all")
        #expect(last["compression.codec"] == "zstd")
        #expect(last["linger.ms"] == "20")
        #expect(last["security.protocol"] == "SSL")
        #expect(Int(last["queue.buffering.max.messages"]!)! > 50)
    }

    @Test("the consumer stores offsets explicitly and commits them itself, with byte-bounded prefetching")
    func consumerProperties() {
        let configuration = KafkaConsumerConfiguration(
            cluster: .init(bootstrapServers: "b:9092"), groupID: "vigil-detect", topics: ["frames.v1"], commitInterval: .milliseconds(1_500)
        )
        let properties = Dictionary(configuration.librdkafkaProperties, uniquingKeysWith: { _, later in later })
        #expect(properties["enable.auto.offset.store"] == "false")
        #expect(properties["enable.auto.commit"] == "false", "commits happen on the poll thread, on revoke and on close, never behind vigil's back")
        #expect(properties["queued.max.messages.kbytes"] == String((32 << 20) / 1_024))
        #expect(Int(properties["fetch.max.bytes"]!)! >= 1_000_000, "librdkafka requires fetch.max.bytes ≥ message.max.bytes")
        #expect(properties["group.id"] == "vigil-detect")
    }

    @Test("secret-looking property names are recognised", arguments: ["sasl.password", "ssl.key.password", "sasl.oauthbearer.client.secret", "ssl.keystore.password"])
    func secrets(name: String) {
        #expect(KafkaConfiguration.isSecret(name))
    }

    @Test("ordinary property names are not secrets", arguments: ["bootstrap.servers", "acks", "linger.ms"])
    func notSecrets(name: String) {
        #expect(!KafkaConfiguration.isSecret(name))
    }
}

@Suite("Dev cluster topics")
struct DevClusterTopicTests {
    @Test("NAME[:PARTITIONS[:REPLICATION]] parses with defaults")
    func parsing() throws {
        #expect(try DevClusterTopic(argument: "frames.v1:12:2", defaultReplicationFactor: 3) == DevClusterTopic(name: "frames.v1", partitions: 12, replicationFactor: 2))
        #expect(try DevClusterTopic(argument: "rules.v1", defaultReplicationFactor: 3) == DevClusterTopic(name: "rules.v1", partitions: 1, replicationFactor: 3))
    }

    @Test("malformed topic arguments say how to write them", arguments: ["", ":3", "a:b", "a:1:2:3"])
    func malformed(argument: String) {
        let error = #expect(throws: KafkaError.self) { try DevClusterTopic(argument: argument, defaultReplicationFactor: 3) }
        #expect(error?.description.contains("NAME[:PARTITIONS[:REPLICATION]]") == true)
    }

    @Test("the mock cluster refuses impossible topics and unknown brokers with a clear message")
    func mockClusterRefusals() throws {
        let cluster = try KafkaMockCluster(brokers: 2, logger: quietLogger())
        defer { cluster.shutdown() }
        let replication = #expect(throws: KafkaError.self) { try cluster.createTopic("t", partitions: 3, replicationFactor: 3) }
        #expect(replication?.description.contains("1 to 2") == true)
        let broker = #expect(throws: KafkaError.self) { try cluster.setBrokerDown(7) }
        #expect(broker?.description.contains("no broker 7") == true)
    }
}

@Suite("Consumer group assignment bytes")
struct ConsumerAssignmentDecoderTests {
    /// Version 0; topics "frames.v1" → [0, 2] and "a" → [7]; empty user data.
    static let encoded: [UInt8] = [0, 0, 0, 0, 0, 2]
        + [0, 9] + Array("frames.v1".utf8) + [0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 2]
        + [0, 1] + Array("a".utf8) + [0, 0, 0, 1, 0, 0, 0, 7]
        + [0, 0, 0, 0]

    @Test("topics and partitions are read from the consumer protocol's assignment")
    func decodes() {
        let partitions = Self.encoded.withUnsafeBytes { ConsumerAssignmentDecoder.partitions($0) }
        #expect(partitions == [
            KafkaTopicPartition(topic: "frames.v1", partition: 0), KafkaTopicPartition(topic: "frames.v1", partition: 2),
            KafkaTopicPartition(topic: "a", partition: 7),
        ])
    }

    @Test("truncated bytes give what was complete, never a crash")
    func truncated() {
        let partitions = Array(Self.encoded.prefix(27)).withUnsafeBytes { ConsumerAssignmentDecoder.partitions($0) }
        #expect(partitions == [KafkaTopicPartition(topic: "frames.v1", partition: 0)])
        #expect([UInt8]().withUnsafeBytes { ConsumerAssignmentDecoder.partitions($0) }.isEmpty)
    }
}

@Suite("Property assignments")
struct PropertyAssignmentTests {
    @Test("NAME=VALUE entries become properties; values may contain '='")
    func parses() throws {
        let properties = try KafkaConfiguration.properties(fromAssignments: ["security.protocol=SSL", " sasl.password=a=b"])
        #expect(properties == ["security.protocol": "SSL", "sasl.password": "a=b"])
    }

    @Test("an entry without a name or '=' is refused without repeating it", arguments: ["hunter2", "=value"])
    func refuses(entry: String) {
        let error = #expect(throws: KafkaError.self) { try KafkaConfiguration.properties(fromAssignments: ["acks=all", entry]) }
        #expect(error?.description.contains("#2 is not NAME=VALUE") == true)
        #expect(error?.description.contains(entry) == false)
    }
}

@Suite("In-flight limits", .timeLimit(.minutes(1)))
struct InFlightLimiterTests {
    /// Starts `acquire` in a task and reports whether it completed after the caller released a slot.
    private final class Flag: @unchecked Sendable {
        private let lock = NSLock()
        private var value = false
        var isSet: Bool { lock.withLock { value } }
        func set() { lock.withLock { value = true } }
    }

    @Test("at the record limit acquire waits until a slot is released")
    func waitsAtTheLimit() async throws {
        let limiter = InFlightLimiter(limit: 2)
        try await limiter.acquire()
        try await limiter.acquire()
        let admitted = Flag()
        let waiter = Task {
            try await limiter.acquire()
            admitted.set()
        }
        // The waiter cannot have passed: no slot is free. Releasing one admits it.
        #expect(!admitted.isSet)
        limiter.release()
        try await waiter.value
        #expect(admitted.isSet)
    }

    @Test("the byte budget holds back a record that does not fit; one larger than the budget passes alone")
    func byteBudget() async throws {
        let limiter = InFlightLimiter(limit: 100, byteLimit: 1_000)
        try await limiter.acquire(bytes: 600)
        let second = Task { try await limiter.acquire(bytes: 600) }
        limiter.release(bytes: 600)
        try await second.value
        limiter.release(bytes: 600)
        // Nothing in flight: a record larger than the whole budget is let through instead of waiting forever.
        try await limiter.acquire(bytes: 5_000)
        let small = Task { try await limiter.acquire(bytes: 1) }
        limiter.release(bytes: 5_000)
        try await small.value
    }

    @Test("a cancelled waiter ends with CancellationError and leaves no slot taken")
    func cancelledWaiterLeaksNothing() async throws {
        let limiter = InFlightLimiter(limit: 1)
        try await limiter.acquire()
        let ended = Flag()
        let waiter = Task {
            defer { ended.set() }
            try await limiter.acquire()
        }
        // Cancel it while it waits in line, not before it started.
        while limiter.waiting == 0 { try await Task.sleep(for: .milliseconds(1)) }
        waiter.cancel()
        // A waiter that ignores its cancellation would never end: give up after a generous wait.
        let deadline = ContinuousClock.now + .seconds(10)
        while !ended.isSet && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
        try #require(ended.isSet, "the cancelled waiter was never woken")
        await #expect(throws: CancellationError.self) { try await waiter.value }
        limiter.release()
        // Exactly one slot exists again: one acquire passes at once, the next one waits.
        try await limiter.acquire()
        let blocked = Task { try await limiter.acquire() }
        while limiter.waiting == 0 { try await Task.sleep(for: .milliseconds(1)) }
        #expect(limiter.waiting == 1, "the cancelled waiter left the line")
        blocked.cancel()
        await #expect(throws: CancellationError.self) { try await blocked.value }
    }

    @Test("close fails waiting and later acquires with the given error")
    func closeFailsWaiters() async throws {
        let limiter = InFlightLimiter(limit: 1)
        try await limiter.acquire()
        let waiter = Task { try await limiter.acquire() }
        limiter.close(with: KafkaError(kind: .deliveryFailed, detail: "output lost"))
        await #expect(throws: KafkaError.self) { try await waiter.value }
        await #expect(throws: KafkaError.self) { try await limiter.acquire() }
    }
}

@Suite("Protected properties")
struct ProtectedPropertyTests {
    @Test("a producer or consumer refuses pass-through properties that weaken delivery", arguments: [
        "enable.auto.offset.store", "enable.idempotence", "acks", "enable.auto.commit", "queue.buffering.max.kbytes",
    ])
    func refused(name: String) throws {
        let cluster = KafkaConfiguration(bootstrapServers: "127.0.0.1:1", properties: [name: "1"])
        let producerError = #expect(throws: KafkaError.self) { _ = try KafkaProducer(configuration: .init(cluster: cluster), logger: quietLogger()) }
        #expect(producerError?.kind == .invalidConfiguration && producerError?.detail.contains("\"\(name)\" cannot be overridden") == true)
        let consumerError = #expect(throws: KafkaError.self) {
            _ = try KafkaConsumer(configuration: .init(cluster: cluster, groupID: "g", topics: ["t"]), logger: quietLogger())
        }
        #expect(consumerError?.kind == .invalidConfiguration)
    }

    @Test("the cooperative assignment protocol is refused, naming what to use instead")
    func cooperativeRefused() throws {
        let cluster = KafkaConfiguration(bootstrapServers: "127.0.0.1:1", properties: ["partition.assignment.strategy": "cooperative-sticky"])
        let error = #expect(throws: KafkaError.self) {
            _ = try KafkaConsumer(configuration: .init(cluster: cluster, groupID: "g", topics: ["t"]), logger: quietLogger())
        }
        #expect(error?.detail.contains("use range or roundrobin") == true)
    }
}
