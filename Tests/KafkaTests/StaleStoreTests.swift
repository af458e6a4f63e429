import Foundation
import Synchronization
import Kafka
import Logging
import Testing
import TopicSpecs

/// Offsets stored for a record must belong to the assignment that delivered it: a partition
/// revoked and assigned back must not take a store from before, which could move the group's
/// committed offset backwards.
@Suite("Stale offset stores (in-process mock cluster)", .serialized, .timeLimit(.minutes(2)))
struct StaleStoreTests {
    let logger = quietLogger(.critical)

    @Test("a record read before its partition was revoked and assigned back cannot store its offset; a record of the new assignment can")
    func storeFromAnEarlierAssignmentIsRefused() async throws {
        let cluster = try KafkaMockCluster(brokers: 1, logger: logger)
        defer { cluster.shutdown() }
        try cluster.createTopic("stale", partitions: 1, replicationFactor: 1)
        let common = KafkaConfiguration(bootstrapServers: cluster.bootstrapServers)
        let producer = try KafkaProducer(configuration: .init(cluster: common), logger: logger)
        for index in 0..<3 { try await producer.send(KafkaProducerMessage(topic: "stale", key: "camera-1", value: [UInt8(index)])) }
        await producer.close()

        let configuration = KafkaConsumerConfiguration(cluster: common, groupID: "stale-group", topics: ["stale"], sessionTimeout: .seconds(6))
        let ownerAssignments = AssignmentCount()
        let owner = try KafkaConsumer(configuration: configuration, logger: logger) { event in
            if case .assigned = event { ownerAssignments.increment() }
        }
        var iterator = owner.messages.makeAsyncIterator()
        let early = try #require(try await iterator.next())

        // A second member joins (every partition of the owner is revoked, eager protocol) and leaves again.
        let visitor = try KafkaConsumer(configuration: configuration, logger: logger)
        try await waitUntil("the owner went through a rebalance") { ownerAssignments.value >= 2 }
        await visitor.close()
        try await waitUntil("the partition is back with its first owner") { owner.assignment.count == 1 }

        let error = #expect(throws: KafkaError.self) { try owner.storeOffset(early) }
        #expect(error?.kind == .partitionNotAssigned, "\(String(describing: error))")

        // The new assignment reads the partition again from the last commit; its records store fine.
        var fresh = try #require(try await iterator.next())
        while fresh.offset != early.offset { fresh = try #require(try await iterator.next()) }
        #expect(fresh.assignmentGeneration != early.assignmentGeneration)
        try owner.storeOffset(fresh)
        await owner.close()
    }

    private final class AssignmentCount: @unchecked Sendable {
        private let lock = NSLock()
        private var count = 0
        var value: Int { lock.withLock { count } }
        func increment() { lock.withLock { count += 1 } }
    }

    private func waitUntil(_ what: String, _ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(60)
        while !condition() {
            guard ContinuousClock.now < deadline else { throw CancellationError() }
            try await Task.sleep(for: .milliseconds(50))
        }
    }
}

/// Clients closed out of order (a service group cancelled, not shut down) must fail calls
/// cleanly instead of touching a destroyed librdkafka handle.
@Suite("Calls after close (in-process mock cluster)", .serialized, .timeLimit(.minutes(2)))
struct CallsAfterCloseTests {
    let logger = quietLogger(.critical)

    @Test("a closed producer and consumer answer every call with a .closed error or an empty result")
    func callsAfterCloseFailCleanly() async throws {
        let cluster = try KafkaMockCluster(brokers: 1, logger: logger)
        defer { cluster.shutdown() }
        try cluster.createTopic("closing", partitions: 1, replicationFactor: 1)
        let common = KafkaConfiguration(bootstrapServers: cluster.bootstrapServers)
        let producer = try KafkaProducer(configuration: .init(cluster: common), logger: logger)
        let consumer = try KafkaConsumer(configuration: .init(cluster: common, groupID: "closing", topics: ["closing"]), logger: logger)
        await producer.close()
        await consumer.close()

        let send = await #expect(throws: KafkaError.self) { try await producer.send(KafkaProducerMessage(topic: "closing", key: "c", value: [1])) }
        #expect(send?.kind == .closed)
        let flush = await #expect(throws: KafkaError.self) { try await producer.flush() }
        #expect(flush?.kind == .closed)
        let store = #expect(throws: KafkaError.self) { try consumer.storeOffset(of: KafkaTopicPartition(topic: "closing", partition: 0), processedOffset: 0, generation: 1) }
        #expect(store?.kind == .closed)
        let commit = await #expect(throws: KafkaError.self) { try await consumer.commit() }
        #expect(commit?.kind == .closed)
        let connectivity = await #expect(throws: KafkaError.self) { try await consumer.checkConnectivity() }
        #expect(connectivity?.kind == .closed)
        #expect(consumer.lag().isEmpty)
        #expect(throws: KafkaError.self) { try consumer.pause([KafkaTopicPartition(topic: "closing", partition: 0)]) }
    }

    @Test("a closed admin answers every call with a .closed error, never touching the destroyed handle")
    func adminCallsAfterClose() async throws {
        let cluster = try KafkaMockCluster(brokers: 1, logger: logger)
        defer { cluster.shutdown() }
        try cluster.createTopic("closing", partitions: 1, replicationFactor: 1)
        let admin = try KafkaAdmin(configuration: KafkaConfiguration(bootstrapServers: cluster.bootstrapServers), logger: logger)
        await admin.close()
        let partition = KafkaTopicPartition(topic: "closing", partition: 0)
        let watermarks = await #expect(throws: KafkaError.self) { try await admin.watermarks(partition) }
        let groups = await #expect(throws: KafkaError.self) { try await admin.consumerGroups() }
        let metadata = await #expect(throws: KafkaError.self) { try await admin.metadata() }
        let create = await #expect(throws: KafkaError.self) { try await admin.createTopics([KafkaTopicSpec(name: "new", partitions: 1, replicationFactor: 1)]) }
        #expect([watermarks, groups, metadata, create].allSatisfy { $0?.kind == .closed }, "\([watermarks, groups, metadata, create].map { $0?.kind })")
    }

    @Test("a consumer dropped without close() leaves its group (its partitions revoked, committing what was stored) instead of staying a member that holds them for ever")
    func droppedConsumerLeavesTheGroup() async throws {
        let cluster = try KafkaMockCluster(brokers: 1, logger: logger)
        defer { cluster.shutdown() }
        try cluster.createTopic("dropped", partitions: 1, replicationFactor: 1)
        let common = KafkaConfiguration(bootstrapServers: cluster.bootstrapServers)
        let producer = try KafkaProducer(configuration: .init(cluster: common), logger: logger)
        try await producer.send(KafkaProducerMessage(topic: "dropped", key: "k", value: [1]))
        await producer.close()
        let events = Mutex<[KafkaConsumerEvent]>([])
        do {
            // A session timeout far beyond the wait below: only leaving ends the membership.
            let configuration = KafkaConsumerConfiguration(cluster: common, groupID: "dropped", topics: ["dropped"], sessionTimeout: .seconds(120))
            let first = try KafkaConsumer(configuration: configuration, logger: logger) { event in events.withLock { $0.append(event) } }
            var iterator = first.messages.makeAsyncIterator()
            let message = try #require(try await iterator.next())
            try first.storeOffset(message)
        }
        let partition = KafkaTopicPartition(topic: "dropped", partition: 0)
        let deadline = ContinuousClock.now + .seconds(60)
        while !events.withLock({ $0.contains(.revoked([partition], commitError: nil)) }), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(events.withLock { $0 } == [.assigned([partition]), .revoked([partition], commitError: nil)])
    }
}
