import Foundation
import Kafka
import Logging
import Testing
@testable import WorkerRuntime

/// Records a worker sends apart from its stage's outputs (refusal notices, model-load audit
/// events) on a mock cluster in this process.
@Suite("Announcements (in-process mock cluster)", .timeLimit(.minutes(2)))
struct AnnouncementsTests {
    static let logger: Logger = {
        var logger = Logger(label: "announcements-test")
        logger.logLevel = .warning
        return logger
    }()

    @Test("every announcement started before the stop is delivered: the runner waits for them before it closes the producer")
    func drainedBeforeTheProducerCloses() async throws {
        let cluster = try KafkaMockCluster(brokers: 1, logger: Self.logger)
        defer { cluster.shutdown() }
        try cluster.createTopic("audit.events.v1", partitions: 1, replicationFactor: 1)
        let common = KafkaConfiguration(bootstrapServers: cluster.bootstrapServers)
        let producer = try KafkaProducer(configuration: .init(cluster: common), logger: Self.logger)
        let announcements = Announcements(producer: producer, logger: Self.logger)
        // As a table refusing records does: each notice sent on its own, nobody waiting.
        for index in 0..<200 {
            announcements.announce([StageOutput(topic: "audit.events.v1", key: Array("cam-\(index)".utf8), value: Array("notice-\(index)".utf8), headers: [])])
        }
        // What the runner does at its stop.
        await announcements.drain()
        await producer.close()
        let delivered = try await KafkaTableReader.readPartitions(cluster: common, topic: "audit.events.v1", partitions: nil, logger: Self.logger)
        #expect(Set(delivered.map { String(decoding: $0.value, as: UTF8.self) }) == Set((0..<200).map { "notice-\($0)" }))
    }
}
