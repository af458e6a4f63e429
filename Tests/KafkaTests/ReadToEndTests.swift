import Foundation
import Kafka
import Logging
import Testing

/// A partition taken over with its committed offset already at the end is read to the end and
/// has no lag, though this member consumed nothing of it: a stateful worker counts silence only
/// on partitions it is caught up on, so a wrong answer here stops its silence timers for good.
@Suite("Read to the end after a takeover (in-process mock cluster)", .serialized, .timeLimit(.minutes(2)))
struct ReadToEndTests {
    let logger = quietLogger(.critical)

    @Test("a partition assigned with its committed offset at the high watermark: read to the end, lag 0, and the next record is read from there")
    func committedAtTheEnd() async throws {
        let cluster = try KafkaMockCluster(brokers: 1, logger: logger)
        defer { cluster.shutdown() }
        try cluster.createTopic("taken-over", partitions: 1, replicationFactor: 1)
        let common = KafkaConfiguration(bootstrapServers: cluster.bootstrapServers)
        let producer = try KafkaProducer(configuration: .init(cluster: common), logger: logger)
        for index in 0..<3 { try await producer.send(KafkaProducerMessage(topic: "taken-over", key: "camera-1", value: [UInt8(index)])) }
        let configuration = KafkaConsumerConfiguration(cluster: common, groupID: "takeover", topics: ["taken-over"], sessionTimeout: .seconds(6))

        // The first owner reads everything, commits and leaves.
        let first = try KafkaConsumer(configuration: configuration, logger: logger)
        var iterator = first.messages.makeAsyncIterator()
        for _ in 0..<3 { try first.storeOffset(try #require(try await iterator.next())) }
        try await first.commit()
        await first.close()

        let partition = KafkaTopicPartition(topic: "taken-over", partition: 0)
        let next = try KafkaConsumer(configuration: configuration, logger: logger)
        let deadline = ContinuousClock.now + .seconds(60)
        // Polled: the assignment and the first fetch (which brings the watermarks) take a moment.
        while !(next.assignment == [partition] && next.lag()[partition]?.unread == 0 && next.isReadToEnd(partition)) {
            guard ContinuousClock.now < deadline else {
                Issue.record("not read to the end: assignment \(next.assignment), lag \(next.lag()), read to end \(next.isReadToEnd(partition))")
                break
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        try await producer.send(KafkaProducerMessage(topic: "taken-over", key: "camera-1", value: [9]))
        var iteratorNext = next.messages.makeAsyncIterator()
        let fresh = try #require(try await iteratorNext.next())
        #expect(fresh.offset == 3, "the takeover reads on from the committed offset")
        await producer.close()
        await next.close()
    }

    @Test("a read to the end has a deadline: with the partition's leader answering fetches slower than it, the read stops with a timed-out error naming the topic and what is left")
    func readToTheEndHasADeadline() async throws {
        let cluster = try KafkaMockCluster(brokers: 2, logger: logger)
        defer { cluster.shutdown() }
        try cluster.createTopic("slow", partitions: 1, replicationFactor: 1)
        try cluster.setPartitionLeader(topic: "slow", partition: 0, broker: 2)
        let common = KafkaConfiguration(bootstrapServers: cluster.bootstrapServers)
        let producer = try KafkaProducer(configuration: .init(cluster: common), logger: logger)
        for index in 0..<5 { try await producer.send(KafkaProducerMessage(topic: "slow", key: "k", value: [UInt8(index)])) }
        await producer.close()
        // Every answer of the leader takes 4 s: the watermarks come (within the request
        // timeout), the records not within the 1 s deadline.
        try cluster.setBrokerRoundTripTime(2, milliseconds: 4_000)
        let error = await #expect(throws: KafkaError.self) {
            try await KafkaTableReader.forEachRecord(cluster: common, topic: "slow", partitions: nil, within: .seconds(1), logger: logger) { _ in }
        }
        #expect(error?.kind == .timedOut && error?.detail.contains("slow was not read to its end within 1") == true, "\(String(describing: error))")
    }
}
