import Foundation
import Kafka
import Logging
import Testing

/// Already compressed media (H.264 chunks, JPEG frames) goes out as it is; everything else
/// with zstd. Judged by the bytes the producer sent, from librdkafka's own statistics.
@Suite("Per-topic compression", .timeLimit(.minutes(2)))
struct CompressionTests {
    let logger = quietLogger(.critical)

    @Test("records of an uncompressed topic are sent as they are; other topics stay zstd-compressed")
    func uncompressedTopicsSkipZstd() async throws {
        let cluster = try KafkaMockCluster(brokers: 1, logger: logger)
        defer { cluster.shutdown() }
        try cluster.createTopic("media", partitions: 1, replicationFactor: 1)
        try cluster.createTopic("events", partitions: 1, replicationFactor: 1)
        // Highly compressible on purpose: with zstd, 40 × 20 kB would shrink to almost nothing.
        let value = [UInt8](repeating: 42, count: 20_000)

        func transmittedBytes(topic: String, uncompressed: Set<String>) async throws -> Int {
            let producer = try KafkaProducer(
                configuration: .init(
                    cluster: .init(bootstrapServers: cluster.bootstrapServers), uncompressedTopics: uncompressed,
                    statisticsInterval: .milliseconds(100)
                ),
                logger: logger
            )
            for index in 0..<40 {
                try await producer.send(KafkaProducerMessage(topic: topic, key: "camera-\(index % 3)", value: value))
            }
            var statistics = producer.statistics
            let deadline = ContinuousClock.now + .seconds(30)
            while (statistics?.records ?? 0) < 40, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(50))
                statistics = producer.statistics
            }
            await producer.close()
            let sent = try #require(statistics)
            #expect(sent.records == 40 && sent.recordBytes >= 40 * 20_000)
            return sent.transmittedBytes
        }

        let media = try await transmittedBytes(topic: "media", uncompressed: ["media"])
        let events = try await transmittedBytes(topic: "events", uncompressed: ["media"])
        #expect(media >= 40 * 20_000, "media sent uncompressed: \(media) bytes on the wire")
        #expect(events < 40 * 20_000 / 10, "other topics still compressed: \(events) bytes on the wire")
    }
}
