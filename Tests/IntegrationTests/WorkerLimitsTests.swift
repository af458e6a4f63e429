import ChildProcesses
import Foundation
import Testing

/// The worker runtime's limits on the dev cluster: memory, liveness, shutdown, loss.
@Suite("Worker runtime limits across processes", .serialized, .timeLimit(.minutes(5)))
struct WorkerLimitsTests {
    @Test("large records into a slow stage: the worker's peak memory stays near its budget, not near the backlog")
    func memoryStaysInsideTheBudget() async throws {
        // 240 records of 900 kB (216 MB) over 48 partitions: under the dev cluster's 5 MiB per partition.
        let cluster = try await DevClusterProcess(brokers: 1, topics: ["in:48:1", "in.out:48:1", "in.dlq:1:1"])
        try await cluster.produce(topic: "in", count: 240, keys: 48, valueSize: 900_000)
        let worker = try await PassThroughWorkerProcess.start(
            cluster, environment: ["WORKER_MEMORY_BUDGET_MB": "32", "PASSTHROUGH_DELAY_MS": "25"]
        )
        // Keys do not hash evenly: what a partition got beyond 5 MiB the broker dropped; the rest is committed.
        try await cluster.waitUntilCommitted(topic: "in", group: "vigil-passthrough")
        #expect(try await worker.metric("vigil_records_in_total") ?? 0 >= 150, "most of the backlog went through the stage")
        let peak = try #require(worker.peakResidentBytes)
        worker.process.signal(SIGTERM)
        try await worker.process.waitForExit()
        #expect(worker.process.exitStatus == 0)
        // Budget 32 MiB for Kafka buffers; the process itself (runtime, HTTP, librdkafka threads)
        // needs about 40 MiB more. A worker without byte budgets buffers the whole backlog.
        #expect(peak < 120 << 20, "peak resident memory \(peak >> 20) MiB for a 32 MiB budget and a 216 MB backlog")
        try await cluster.stop()
    }

    @Test("a slow stage behind a backlog: vigil_consumer_lag counts every record not yet processed, fetched ones included, and says how many were fetched")
    func lagShowsTheBacklog() async throws {
        let cluster = try await DevClusterProcess(brokers: 1, topics: ["in:1:1", "in.out:1:1", "in.dlq:1:1"])
        try await cluster.produce(topic: "in", count: 2_000, keys: 10)
        // 200 ms a record: 5 a second, while the consumer prefetches hundreds.
        let worker = try await PassThroughWorkerProcess.start(cluster, environment: ["PASSTHROUGH_DELAY_MS": "200"])
        var lag = 0.0, fetched = 0.0, out = 0.0
        // The gauges are refreshed every 5 s; read the lag before the outputs, which only grow.
        try await eventually(timeout: .seconds(60), "the worker reports its lag with records fetched") {
            lag = try await worker.metric("vigil_consumer_lag") ?? 0
            fetched = try await worker.metric("vigil_consumer_fetched_unprocessed") ?? 0
            out = try await worker.metric("vigil_records_out_total") ?? 0
            return lag > 0 && fetched > 0
        }
        print("backlog of 2,000 behind a 200 ms stage: lag \(Int(lag)), of it fetched \(Int(fetched)); outputs \(Int(out))")
        #expect(lag >= 2_000 - out, "every record without an output is unprocessed: lag \(lag), outputs \(out)")
        #expect(fetched <= lag)
        worker.process.signal(SIGTERM)
        try await worker.process.waitForExit()
        try await cluster.stop()
    }

    @Test("a stage stuck on a record: /livez fails; SIGTERM waits for the record without spinning a core, commits it, and logs no error")
    func stuckStageLivenessAndQuietDrain() async throws {
        let cluster = try await DevClusterProcess(topics: PassThroughWorkerTests.topics)
        let worker = try await PassThroughWorkerProcess.start(
            cluster, environment: ["PASSTHROUGH_DELAY_MS": "6000", "WORKER_LIVENESS_TIMEOUT_MS": "1000"]
        )
        #expect(try await worker.get("/livez").status == 200, "idle with no input: alive")
        try await cluster.produce(topic: "in", count: 1, keys: 1)
        try await eventually("the record is in the stage") { (try? await worker.metric("vigil_records_in_flight")) == 1 }
        var livez = try await worker.get("/livez")
        let deadline = ContinuousClock.now + .seconds(30)
        while livez.status == 200 && ContinuousClock.now < deadline { livez = try await worker.get("/livez") }
        #expect(livez.status == 503 && livez.body.contains("has not advanced"), "\(livez)")

        // The stage still holds the record for a few seconds: the drain must wait without burning CPU.
        let cpuBefore = try #require(worker.cpuSeconds)
        let wallBefore = ContinuousClock.now
        worker.process.signal(SIGTERM)
        var cpuDuringDrain = cpuBefore
        while worker.process.isRunning, let cpu = worker.cpuSeconds {
            cpuDuringDrain = cpu
            try await Task.sleep(for: .milliseconds(100))
        }
        let wall = ContinuousClock.now - wallBefore
        try await worker.process.waitForExit()
        let drainSeconds = Double(wall.components.seconds) + Double(wall.components.attoseconds) / 1e18
        #expect(drainSeconds > 1, "the worker waited for the record in the stage")
        #expect(cpuDuringDrain - cpuBefore < 0.3 * drainSeconds, "CPU \(cpuDuringDrain - cpuBefore) s over a \(drainSeconds) s drain")
        #expect(worker.process.exitStatus == 0)
        #expect(try await cluster.lag(topic: "in", group: "vigil-passthrough") == 0, "the drained record was committed on the way out")
        let log = worker.process.standardError
        for alarming in [" error ", " critical ", "CancellationError", "Already closed"] {
            #expect(!log.contains(alarming), "a normal shutdown logs no \"\(alarming)\": \(log.suffix(2_000))")
        }
        try await cluster.stop()
    }

    @Test("records dropped by the broker while a slow worker is mid-stream: every offset is either processed or counted as lost, and the metric equals the reported count")
    func midStreamLossIsCountedExactly() async throws {
        let cluster = try await DevClusterProcess(brokers: 1, topics: ["in:1:1", "in.out:1:1", "in.dlq:1:1"])
        let uncompressed = ["--property", "compression.codec=none"]
        // A slow stage and a small budget: the worker fetches only a few 900 kB records ahead.
        let worker = try await PassThroughWorkerProcess.start(
            cluster, environment: ["PASSTHROUGH_DELAY_MS": "300", "WORKER_MEMORY_BUDGET_MB": "16"]
        )
        try await cluster.produce(topic: "in", count: 3, keys: 1, valueSize: 900_000, extra: uncompressed)
        try await eventually("the worker is consuming") { (try? await worker.metric("vigil_records_in_total")) ?? 0 >= 1 }
        // 30 more while it works through the first: the partition keeps only the newest five.
        try await cluster.produce(topic: "in", count: 30, first: 3, keys: 1, valueSize: 900_000, extra: uncompressed)
        try await cluster.waitUntilCommitted(topic: "in", group: "vigil-passthrough")
        let processed = try await worker.metric("vigil_records_in_total") ?? 0
        let lost = try await worker.metric("vigil_records_lost_total") ?? 0
        worker.process.signal(SIGTERM)
        try await worker.process.waitForExit()

        let reported = worker.process.standardError.split(separator: "\n").filter { $0.contains("records of in[0] lost") }
        let reportedCount = reported.compactMap { line in line.split(separator: " ").firstIndex(of: "records").flatMap { Int(line.split(separator: " ")[$0 - 1]) } }.reduce(0, +)
        #expect(lost > 0, "the broker dropped records the worker had not fetched")
        #expect(Int(lost) == reportedCount, "metric \(lost) vs logged \(reportedCount): \(reported)")
        #expect(processed + lost == 33, "every offset processed (\(processed)) or counted lost (\(lost))")
        try await cluster.stop()
    }

    @Test("a stage still busy when the shutdown timeout runs out is cancelled: its record is neither dead-lettered nor committed")
    func shutdownTimeoutCancelsTheStage() async throws {
        let cluster = try await DevClusterProcess(topics: PassThroughWorkerTests.topics)
        let worker = try await PassThroughWorkerProcess.start(
            cluster, environment: ["PASSTHROUGH_DELAY_MS": "600000", "WORKER_SHUTDOWN_TIMEOUT_MS": "1000"]
        )
        try await cluster.produce(topic: "in", count: 1, keys: 1)
        try await eventually("the record is in the stage") { (try? await worker.metric("vigil_records_in_flight")) == 1 }
        worker.process.signal(SIGTERM)
        try await worker.process.waitForExit(timeout: .seconds(30))
        #expect(worker.process.exitStatus == 0, "\(worker.process.standardError.suffix(2_000))")
        #expect(worker.process.standardError.contains("shutdown timed out with records still in the stage"))
        #expect(try await cluster.lag(topic: "in", group: "vigil-passthrough") == 1, "the unfinished record is not committed")
        #expect(try await cluster.lag(topic: "in.dlq", group: "nobody") == 0, "nor dead-lettered")
        try await cluster.stop()
    }

    @Test("one record dropped by the broker before the worker read it: reported with its offset and counted once in vigil_records_lost_total")
    func oneLostRecordIsCounted() async throws {
        // One partition on one broker; uncompressed 900 kB records, one per batch: the partition
        // keeps only the newest 5 MiB, i.e. five of them.
        let cluster = try await DevClusterProcess(brokers: 1, topics: ["in:1:1", "in.out:1:1", "in.dlq:1:1"])
        let uncompressed = ["--property", "compression.codec=none"]
        try await cluster.produce(topic: "in", count: 4, keys: 1, valueSize: 900_000, extra: uncompressed)
        let first = try await PassThroughWorkerProcess.start(cluster)
        try await cluster.waitUntilCommitted(topic: "in", group: "vigil-passthrough")
        first.process.signal(SIGTERM)
        try await first.process.waitForExit()

        // Offsets 4…9 arrive while no one reads: the broker keeps 5…9, so exactly offset 4 is gone.
        try await cluster.produce(topic: "in", count: 6, first: 4, keys: 1, valueSize: 900_000, extra: uncompressed)
        let second = try await PassThroughWorkerProcess.start(cluster)
        try await eventually("the loss is counted") { (try? await second.metric("vigil_records_lost_total")) != nil }
        #expect(try await second.metric("vigil_records_lost_total{worker=\"vigil-passthrough\",topic=\"in\",partition=\"0\"}") == 1)
        #expect(second.process.standardError.contains("1 records of in[0] lost: offsets 4–4"), "\(second.process.standardError.suffix(2_000))")
        try await eventually("the retained records are processed") { (try? await second.metric("vigil_records_in_total")) == 5 }
        second.process.signal(SIGTERM)
        try await second.process.waitForExit()
        try await cluster.stop()
    }
}
