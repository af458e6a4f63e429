import Foundation
import Kafka
import Logging
import Testing

/// Producer and consumer against a mock cluster hosted in the test process. Fast checks of
/// the wrapper's behaviour; the multi-process guarantees live in IntegrationTests.
@Suite("Kafka round trip (in-process mock cluster)", .serialized, .timeLimit(.minutes(2)))
struct InProcessRoundTripTests {
    let logger = quietLogger(.warning)

    @Test("keyed records with headers come back in order with their delivery offsets")
    func roundTrip() async throws {
        let cluster = try KafkaMockCluster(brokers: 3, logger: logger)
        defer { cluster.shutdown() }
        try cluster.createTopic("round-trip", partitions: 4, replicationFactor: 3)
        let common = KafkaConfiguration(bootstrapServers: cluster.bootstrapServers)

        let producer = try KafkaProducer(configuration: .init(cluster: common), logger: logger)
        var reports: [Int: KafkaDeliveryReport] = [:]
        for index in 0..<200 {
            let message = KafkaProducerMessage(
                topic: "round-trip", key: "camera-\(index % 5)", value: Array("record-\(index)".utf8),
                headers: [KafkaHeader(key: "index", value: String(index)), KafkaHeader(key: "empty", value: nil)]
            )
            reports[index] = try await producer.send(message)
        }
        await producer.close()

        let consumer = try KafkaConsumer(
            configuration: .init(cluster: common, groupID: "round-trip-group", topics: ["round-trip"]),
            logger: logger
        )
        var received: [KafkaConsumerMessage] = []
        for try await message in consumer.messages {
            received.append(message)
            try consumer.storeOffset(message)
            if received.count == 200 { break }
        }
        await consumer.close()

        #expect(received.count == 200)
        for message in received {
            let index = Int(String(decoding: message.header("index") ?? [], as: UTF8.self))!
            #expect(message.value == Array("record-\(index)".utf8))
            #expect(message.key == Array("camera-\(index % 5)".utf8))
            #expect(reports[index] == KafkaDeliveryReport(topic: "round-trip", partition: message.partition, offset: message.offset))
            #expect(message.headers.contains(KafkaHeader(key: "empty", value: nil)))
        }
        // Per key, records arrive in the order they were sent.
        let byKey = Dictionary(grouping: received) { $0.key! }
        for (_, messages) in byKey {
            let indices = messages.map { Int(String(decoding: $0.header("index")!, as: UTF8.self))! }
            #expect(indices == indices.sorted())
            #expect(Set(messages.map(\.partition)).count == 1)
        }
    }
}
