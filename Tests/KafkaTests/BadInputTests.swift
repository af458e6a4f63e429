import Foundation
import Kafka
import Logging
import Testing

/// Bad configuration, an unreachable cluster and oversized records: each gives a clear
/// error in bounded time, and nothing already accepted is lost.
@Suite("Bad input", .serialized, .timeLimit(.minutes(2)))
struct BadInputTests {
    let logger = quietLogger(.critical)

    @Test("an unknown librdkafka property fails at start, naming the property")
    func unknownProperty() throws {
        let configuration = KafkaConfiguration(bootstrapServers: "127.0.0.1:9092", properties: ["sasl.mechanismz": "PLAIN"])
        let error = try #require(throws: KafkaError.self) {
            try KafkaProducer(configuration: .init(cluster: configuration), logger: logger)
        }
        #expect(error.kind == .invalidConfiguration)
        #expect(error.description.contains("\"sasl.mechanismz\""))
        #expect(error.description.contains("unknown"))
    }

    @Test("an invalid value fails at start, naming the property; a secret's value is never shown")
    func invalidValue() throws {
        let consumerError = try #require(throws: KafkaError.self) {
            try KafkaConsumer(
                configuration: .init(
                    cluster: .init(bootstrapServers: "127.0.0.1:9092", properties: ["session.timeout.ms": "soon"]),
                    groupID: "g", topics: ["t"]
                ),
                logger: logger
            )
        }
        #expect(consumerError.kind == .invalidConfiguration)
        #expect(consumerError.description.contains("\"session.timeout.ms\""))

        // ssl.key.password is a secret; make librdkafka reject its neighbour and check the
        // secret is not echoed even though it was set.
        let secret = "hunter2-do-not-log"
        let producerError = try #require(throws: KafkaError.self) {
            try KafkaProducer(
                configuration: .init(cluster: .init(
                    bootstrapServers: "127.0.0.1:9092",
                    properties: ["ssl.key.password": secret, "security.protocol": "carrier-pigeon"]
                )),
                logger: logger
            )
        }
        #expect(producerError.description.contains("\"security.protocol\""))
        #expect(!producerError.description.contains(secret))
    }

    @Test("an unreachable bootstrap address fails within the configured timeout instead of hanging")
    func unreachableBootstrap() async throws {
        let cluster = KafkaConfiguration(bootstrapServers: "127.0.0.1:1", requestTimeout: .seconds(2))
        let producer = try KafkaProducer(configuration: .init(cluster: cluster, deliveryTimeout: .seconds(2)), logger: logger)
        let connectivity = await #expect(throws: KafkaError.self) { try await producer.checkConnectivity() }
        #expect(connectivity?.kind == .brokersUnreachable)
        #expect(connectivity?.description.contains("127.0.0.1:1") == true)

        // A record sent anyway fails with a delivery error once its timeout passes: reported, not dropped.
        let delivery = await #expect(throws: KafkaError.self) {
            try await producer.send(KafkaProducerMessage(topic: "nowhere", key: "camera-1", value: [1, 2, 3]))
        }
        #expect(delivery?.kind == .deliveryFailed)
        #expect(delivery?.codeName == "_MSG_TIMED_OUT")
        await producer.close()

        let consumer = try KafkaConsumer(configuration: .init(cluster: cluster, groupID: "g", topics: ["t"]), logger: logger)
        let consumerConnectivity = await #expect(throws: KafkaError.self) { try await consumer.checkConnectivity() }
        #expect(consumerConnectivity?.kind == .brokersUnreachable)
        await consumer.close(timeout: .seconds(5))
    }

    @Test("an oversized record is refused at once with a clear error; the records around it are delivered")
    func oversizedRecord() async throws {
        let cluster = try KafkaMockCluster(brokers: 1, logger: logger)
        defer { cluster.shutdown() }
        try cluster.createTopic("big", partitions: 1, replicationFactor: 1)
        let common = KafkaConfiguration(bootstrapServers: cluster.bootstrapServers)
        let producer = try KafkaProducer(configuration: .init(cluster: common, maxMessageBytes: 100_000), logger: logger)

        try await producer.send(KafkaProducerMessage(topic: "big", key: "camera-1", value: Array("before".utf8)))
        let error = await #expect(throws: KafkaError.self) {
            try await producer.send(KafkaProducerMessage(topic: "big", key: "camera-1", value: [UInt8](repeating: 7, count: 150_000)))
        }
        #expect(error?.kind == .messageTooLarge)
        #expect(error?.description.contains("150008 bytes") == true, "names the size: \(String(describing: error))")
        #expect(error?.description.contains("message.max.bytes") == true)
        try await producer.send(KafkaProducerMessage(topic: "big", key: "camera-1", value: Array("after".utf8)))
        await producer.close()

        let consumer = try KafkaConsumer(configuration: .init(cluster: common, groupID: "big-check", topics: ["big"]), logger: logger)
        var values: [String] = []
        for try await message in consumer.messages {
            values.append(String(decoding: message.value, as: UTF8.self))
            if values.count == 2 { break }
        }
        await consumer.close()
        #expect(values == ["before", "after"])
    }

    @Test("many sends beyond the in-flight limit wait instead of failing or growing memory")
    func backPressure() async throws {
        let cluster = try KafkaMockCluster(brokers: 1, logger: logger)
        defer { cluster.shutdown() }
        try cluster.createTopic("pressure", partitions: 2, replicationFactor: 1)
        let producer = try KafkaProducer(
            configuration: .init(cluster: .init(bootstrapServers: cluster.bootstrapServers), maxInFlightMessages: 8),
            logger: logger
        )
        var pending: [KafkaPendingDelivery] = []
        for index in 0..<500 {
            pending.append(try await producer.enqueue(KafkaProducerMessage(topic: "pressure", key: "k\(index % 4)", value: [UInt8(index % 256)])))
        }
        var offsets: Set<String> = []
        for delivery in pending {
            let report = try await delivery.report()
            offsets.insert("\(report.partition)@\(report.offset)")
        }
        #expect(offsets.count == 500, "each record delivered once, at its own offset")
        await producer.close()
    }
}
