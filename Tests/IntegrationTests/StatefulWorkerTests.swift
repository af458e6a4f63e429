import ChildProcesses
import Foundation
import Testing

/// A stateful worker on the dev cluster: `vigil-counting` counts `events` per key and one-second
/// event-time window and writes each window's count to `counts` when the key's watermark
/// passes it; its state and timers live in `vigil-counting.state.changelog`.
@Suite("Stateful workers across processes", .serialized, .timeLimit(.minutes(6)))
struct StatefulWorkerTests {
    static let topics = ["events:6", "counts:3", "events.dlq:1", "vigil-counting.state.changelog:6"]
    static let environment = [
        "WORKER_INPUTS": "events", "WORKER_OUTPUTS": "counts,vigil-counting.state.changelog", "WORKER_STATE_CHECKPOINT_MS": "2000",
        "COUNTING_SILENCE_MS": "600000",
    ]
    static let eventTimeStep = 20
    static let eventTimeStart = 1_000_000

    static func start(_ cluster: DevClusterProcess, environment extra: [String: String] = [:]) async throws -> PassThroughWorkerProcess {
        try await PassThroughWorkerProcess.start(cluster, environment: environment.merging(extra) { $1 }, executable: "vigil-counting")
    }

    /// What an uninterrupted run writes for records `seqs`: one line per key and window.
    static func expectedWindows(_ seqs: Range<Int>, keys: Int = 10) -> Set<String> {
        var counts: [String: Int] = [:]
        for seq in seqs {
            let eventTime = eventTimeStart + seq * eventTimeStep
            counts["key-\(seq % keys) window \((eventTime / 1_000 + 1) * 1_000)", default: 0] += 1
        }
        return Set(counts.map { "\($0.key) count \($0.value)" })
    }

    static func produce(_ cluster: DevClusterProcess, first: Int, count: Int, pace: Int = 0) throws -> ChildProcess {
        try cluster.startProducer(
            topic: "events", count: count, first: first, keys: 10,
            extra: ["--event-time-step-ms", String(eventTimeStep), "--event-time-start-ms", String(eventTimeStart), "--pace-ms", String(pace)]
        )
    }

    @Test("SIGKILL one of three replicas mid-stream and restart it, scale 1 → 3 → 1 while input flows: every window counted exactly as an uninterrupted run, each output once after dedup by id")
    func killAndScale() async throws {
        let cluster = try await DevClusterProcess(topics: Self.topics)
        let reader = try cluster.consumer(topic: "counts", group: "reader")
        let first = try await Self.start(cluster)
        let streaming = try Self.produce(cluster, first: 0, count: 3_000, pace: 3)
        try await eventually(timeout: .seconds(60), "the first replica counts") { try await first.metric("vigil_records_in_total") ?? 0 > 300 }

        let second = try await Self.start(cluster)
        let third = try await Self.start(cluster)
        try await eventually(timeout: .seconds(60), "all three replicas take records") {
            let secondIn = try await second.metric("vigil_records_in_total") ?? 0
            let thirdIn = try await third.metric("vigil_records_in_total") ?? 0
            return secondIn > 0 && thirdIn > 0
        }
        second.process.signal(SIGKILL)
        try await second.process.waitForExit()
        let restarted = try await Self.start(cluster)
        try await streaming.waitForExit(timeout: .seconds(120))
        #expect(streaming.exitStatus == 0)
        // A replica restores a partition's state when the partition's first record reaches it.
        // The killed member's partitions move only once its session times out, which on a busy
        // machine can be after the stream ended: keep records coming (10 keys, every partition)
        // until the restarted replica has restored.
        var next = 3_000
        try await eventually(timeout: .seconds(120), "the restarted replica restores its partitions") {
            if restarted.process.standardError.contains("state restored") { return true }
            try await Self.produce(cluster, first: next, count: 10).waitForExit(timeout: .seconds(60))
            next += 10
            return false
        }

        for replica in [third, restarted] {
            replica.process.signal(SIGTERM)
            try await replica.process.waitForExit()
            #expect(replica.process.exitStatus == 0, "graceful stop: \(replica.process.standardError.suffix(1_000))")
        }
        let tail = try Self.produce(cluster, first: next, count: 1_000)
        try await tail.waitForExit(timeout: .seconds(120))
        // One far-future record per key moves every watermark past the last window.
        let flush = try Self.produce(cluster, first: 100_000, count: 10)
        try await flush.waitForExit(timeout: .seconds(60))

        let expected = Self.expectedWindows(0..<(next + 1_000))
        // A window's name without its count: wait for every window, then compare the counts.
        func window(_ line: String) -> String { line.components(separatedBy: " count ").first ?? line }
        let expectedNames = Set(expected.map(window))
        var windows: [String: Set<String>] = [:]
        func missingNames() -> [String] {
            windows = [:]
            for message in reader.events("message") {
                let headers = message["headers"] as? [String: String] ?? [:]
                windows[headers["vigil-record-id"] ?? "missing", default: []].insert(message["value"] as? String ?? "")
            }
            return expectedNames.subtracting(windows.values.flatMap { $0 }.map(window)).sorted()
        }
        do {
            try await eventually(timeout: .seconds(120), "every window reaches counts") { missingNames().isEmpty }
        } catch {
            // Say which windows never came, and what the surviving replica said, before failing.
            let missing = missingNames()
            Issue.record("\(missing.count) windows never reached counts, first \(missing.prefix(8)); replica log tail: \(first.process.standardError.suffix(3_000))")
            throw error
        }
        reader.signal(SIGTERM)
        try await reader.waitForExit()
        #expect(windows["missing"] == nil, "every output carries a record id")
        #expect(windows.values.allSatisfy { $0.count == 1 }, "a repeated output has the same id and the same content")
        let produced = Set(windows.values.flatMap { $0 })
        let extra = produced.subtracting(expected).sorted()
        let missing = expected.subtracting(produced).sorted()
        #expect(extra.isEmpty && missing.isEmpty, "every window counted once per record: extra \(extra.prefix(5)), missing \(missing.prefix(5))")
        #expect(try await first.metric("vigil_records_late_total") == nil, "no record was late")
        first.process.signal(SIGTERM)
        try await first.process.waitForExit()
        try await cluster.stop()
    }

    @Test("a key whose state cannot be encoded stops the worker, saying which key and why; no empty snapshot (a deletion to restore) reaches the changelog, and its records' offsets are not committed")
    func unencodableStateStopsTheWorker() async throws {
        let cluster = try await DevClusterProcess(topics: Self.topics)
        try await Self.produce(cluster, first: 0, count: 40).waitForExit(timeout: .seconds(60))
        let worker = try await Self.start(cluster, environment: ["COUNTING_UNENCODABLE_KEY": "key-3"])
        try await worker.process.waitForExit(timeout: .seconds(120))
        #expect(worker.process.exitStatus != 0, "the worker stops with an error")
        let said = worker.process.standardError
        #expect(said.contains("the state of key key-3") && said.contains("could not be encoded: COUNTING_UNENCODABLE_KEY names this key"), "\(said.suffix(2_000))")
        let changelog = try await cluster.kcatRecords("vigil-counting.state.changelog")
        #expect(!changelog.contains { $0.first == "key-3" }, "nothing written for the key")
        #expect(changelog.allSatisfy { $0.count > 1 && $0[1] != "0" }, "no empty snapshot: \(changelog.filter { $0.count < 2 || $0[1] == "0" })")
        #expect(try await cluster.lag(topic: "events", group: "vigil-counting") >= 4, "key-3's records stay uncommitted")
        try await cluster.stop()
    }

    @Test("a restore reads the changelog as a stream and keeps each key's newest snapshot only: a changelog of tens of MB keeps the worker's peak memory near its idle size")
    func restoreStaysInsideItsBudget() async throws {
        let cluster = try await DevClusterProcess(topics: ["events:12", "counts:3", "events.dlq:1", "vigil-counting.state.changelog:12"])
        // 60 records of 900 kB over the changelog's 12 partitions (5 each would fill the dev
        // cluster's 5 MiB per partition): far more than the state they could restore.
        try await cluster.produce(
            topic: "vigil-counting.state.changelog", count: 60, keys: 12, valueSize: 900_000, extra: ["--property", "compression.codec=none"]
        )
        // Keys do not hash evenly: what a partition got beyond 5 MiB the broker dropped.
        let retained = try await cluster.kcatRecords("vigil-counting.state.changelog").count
        try await Self.produce(cluster, first: 0, count: 60).waitForExit(timeout: .seconds(60))
        let worker = try await Self.start(cluster, environment: ["WORKER_MEMORY_BUDGET_MB": "16"])
        try await eventually(timeout: .seconds(60), "the worker restores and processes its input") { try await worker.metric("vigil_records_in_total") ?? 0 >= 60 }
        let peak = try #require(worker.peakResidentBytes)
        let rejected = try await worker.metric("vigil_state_changelog_rejected_total") ?? 0
        print("restore of a changelog of \(retained) records of 900 kB: peak resident \(peak >> 20) MiB, \(Int(rejected)) records passed over")
        #expect(retained >= 30 && Int(rejected) == retained, "every retained record read and judged")
        // Measured: about 50 MiB streaming (the process, its 16 MiB of Kafka buffers and the
        // reader's 4 MiB prefetch), 68 MiB holding a 20-record changelog whole.
        #expect(peak < 64 << 20, "peak resident memory \(peak >> 20) MiB")
        worker.process.signal(SIGTERM)
        try await worker.process.waitForExit()
        try await cluster.stop()
    }

    @Test("a changelog cut short by retention and holding unreadable records: the restore says so loudly, skips what it cannot read, and the worker goes on")
    func truncatedAndMalformedChangelog() async throws {
        let cluster = try await DevClusterProcess(topics: Self.topics)
        // 7 uncompressed records of 900 kB, all with one key (so one partition): the dev cluster
        // keeps only the newest 5 MiB of a partition, so the first ones are gone; none of them is a snapshot.
        try await cluster.produce(
            topic: "vigil-counting.state.changelog", count: 7, keys: 1, valueSize: 900_000,
            extra: ["--property", "compression.codec=none"]
        )
        try await Self.produce(cluster, first: 0, count: 60).waitForExit(timeout: .seconds(60))
        // The retained history (seconds) is shorter than one checkpoint interval (a minute).
        let worker = try await Self.start(cluster, environment: ["WORKER_STATE_CHECKPOINT_MS": "60000"])
        try await eventually(timeout: .seconds(60), "the worker processes its input") { try await worker.metric("vigil_records_in_total") ?? 0 >= 60 }
        #expect(try await worker.metric("vigil_state_restores_incomplete_total") ?? 0 >= 1, "a cut checkpoint is reported")
        #expect(try await worker.metric("vigil_state_changelog_rejected_total") ?? 0 >= 1, "unreadable snapshots are counted")
        #expect(worker.process.standardError.contains("the state changelog no longer holds a full checkpoint of this partition"))
        worker.process.signal(SIGTERM)
        try await worker.process.waitForExit()
        #expect(worker.process.exitStatus == 0)
        try await cluster.stop()
    }
}
