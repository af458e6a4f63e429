import ChildProcesses
import Foundation
import Testing

/// Broker faults injected through `vigil dev-cluster`'s control API, and data the broker dropped.
@Suite("Faults and loss across processes", .serialized, .timeLimit(.minutes(5)))
struct FaultTests {
    @Test("broker down during production: sends retry, succeed once it is back, no duplicates")
    func brokerDownDuringProduction() async throws {
        let cluster = try await DevClusterProcess(topics: ["telemetry:1:3"])
        try await cluster.control(["leader", "--topic", "telemetry", "--partition", "0", "--broker", "2"])
        // Retriable produce errors first: idempotent retries must not duplicate.
        try await cluster.control(["request-errors", "--api", "0", "--error", "7", "--error", "6", "--error", "7"])
        try await cluster.control(["broker", "down", "2"])

        let producer = try cluster.startProducer(topic: "telemetry", count: 2_000)
        // The outage lasts two seconds; the producer cannot finish while the leader is away.
        try await Task.sleep(for: .seconds(2))
        #expect(producer.isRunning, "the producer waited for the leader instead of giving up or dropping records")
        try await cluster.control(["broker", "up", "2"])
        try await producer.waitForExit(timeout: .seconds(120))
        #expect(producer.exitStatus == 0, "\(producer.standardError.suffix(2_000))")
        #expect(producer.events("produced").first?["count"] as? Int == 2_000)

        let consumer = try cluster.consumer(topic: "telemetry", group: "telemetry-check")
        try await eventually("all records read back") { consumedSequences([consumer]).count >= 2_000 }
        consumer.signal(SIGTERM)
        try await consumer.waitForExit()
        let sequences = consumedSequences([consumer])
        #expect(sequences.count == 2_000, "duplicates: \(sequences.count - Set(sequences).count)")
        #expect(sequences == Array(0..<2_000), "one partition keeps send order")
        try await cluster.stop()
    }

    @Test("a consumer that fell behind the broker's retention reports the lost range, counts it, and resumes")
    func lossBeyondRetentionIsReported() async throws {
        let cluster = try await DevClusterProcess(brokers: 1, topics: ["lossy:1:1"])
        try await cluster.produce(topic: "lossy", count: 100)
        let early = try cluster.consumer(topic: "lossy", group: "lossy-group")
        try await eventually("the first 100 records consumed") { consumedSequences([early]).count >= 100 }
        early.signal(SIGTERM)
        try await early.waitForExit()
        #expect(early.events("lost").isEmpty)

        // 20,000 × 1 KiB: the mock partition keeps only its newest 5 MiB, so most of these are dropped.
        try await cluster.produce(topic: "lossy", count: 20_000, first: 100, valueSize: 1_024)
        let late = try cluster.consumer(topic: "lossy", group: "lossy-group")
        try await eventually("the consumer caught up with the newest record") { consumedSequences([late]).last == 20_099 }
        late.signal(SIGTERM)
        try await late.waitForExit()

        let losses = late.events("lost")
        try #require(losses.count == 1, "exactly one gap reported: \(losses)")
        let firstMissing = losses[0]["firstMissingOffset"] as! Int
        let resumedAt = losses[0]["resumedAtOffset"] as! Int
        #expect(firstMissing == 100, "loss starts right after the committed offset")
        #expect(resumedAt > 100 && losses[0]["count"] as! Int == resumedAt - 100)
        let read = consumedSequences([late])
        #expect(read.first == resumedAt, "offset N holds seq N on this single-partition topic")
        #expect(read == Array(resumedAt...20_099), "after the gap, everything still retained is read in order")
        #expect(late.standardError.contains("lossy[0] lost: offsets 100–\(resumedAt - 1)"), "the loss is logged with its range")
        try await cluster.stop()
    }
}
