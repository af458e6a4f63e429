import ChildProcesses
import Foundation
import Testing

/// Tables on the dev cluster: `vigil cameras apply` writes `cameras.v1`, and `vigil-passthrough`
/// replicas (with `PASSTHROUGH_CAMERAS=1`) read it whole and serve what they hold at `/cameras`.
@Suite("Tables across processes", .serialized, .timeLimit(.minutes(5)))
struct TablesAcrossProcessesTests {
    static let topics = ["in:3", "in.out:3", "in.dlq:1", "cameras.v1:6", "audit.events.v1:3"]
    static let tableWorker = ["WORKER_TABLES": "cameras.v1", "PASSTHROUGH_CAMERAS": "1"]

    /// A cameras file with cameras `cam-<first>`…; `fps` and `mask` let a test change them.
    static func camerasFile(_ range: Range<Int>, fps: Int = 2, mask: Bool = true) throws -> URL {
        var yaml = "cameras:\n"
        for index in range {
            yaml += "  cam-\(index):\n    source: /media/cam-\(index).mp4\n    sampling: {fps: \(fps)}\n"
            if mask { yaml += "    privacy_masks:\n      window: [[0.1, 0.1], [0.4, 0.1], [0.4, 0.4], [0.1, 0.4]]\n" }
        }
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-cameras-\(UUID().uuidString).yaml")
        try yaml.write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    /// Runs `vigil cameras apply` and waits for it.
    @discardableResult
    static func apply(_ file: URL, _ cluster: DevClusterProcess) async throws -> ChildProcess {
        let apply = try ChildProcess(
            "vigil", ["cameras", "apply", file.path, "--bootstrap", cluster.bootstrapServers, "--actor", "test-admin"], name: "vigil cameras apply"
        )
        try await apply.waitForExit(timeout: .seconds(120))
        return apply
    }

    /// Camera id → version, as a replica holds them.
    static func cameras(_ worker: PassThroughWorkerProcess) async throws -> [String: Int] {
        var held: [String: Int] = [:]
        for line in try await worker.get("/cameras").body.split(separator: "\n") {
            let fields = line.split(separator: " ")
            if fields.count == 2, let version = Int(fields[1]) { held[String(fields[0])] = version }
        }
        return held
    }

    @Test("a table update reaches every replica within 1 s")
    func updateReachesEveryReplica() async throws {
        let cluster = try await DevClusterProcess(topics: Self.topics)
        var replicas: [PassThroughWorkerProcess] = []
        for _ in 0..<3 { replicas.append(try await PassThroughWorkerProcess.start(cluster, environment: Self.tableWorker)) }
        let first = try await Self.apply(try Self.camerasFile(0..<4), cluster)
        #expect(first.exitStatus == 0, "\(first.standardError.suffix(2_000))")
        for replica in replicas {
            try await eventually(timeout: .seconds(30), "a replica holds the first version") { try await Self.cameras(replica)["cam-3"] == 1 }
        }

        let update = try await Self.apply(try Self.camerasFile(0..<4, fps: 5), cluster)
        #expect(update.exitStatus == 0, "\(update.standardError.suffix(2_000))")
        let published = ContinuousClock.now
        var latencies: [Duration] = []
        for replica in replicas {
            try await eventually(timeout: .seconds(10), "a replica holds the update") { try await Self.cameras(replica)["cam-0"] == 2 }
            latencies.append(ContinuousClock.now - published)
        }
        // Measured after the last replica answered, so this bounds every replica's delay.
        print("table update visible on 3 replicas within \(latencies.max()!) of the publish acknowledgement")
        #expect(latencies.max()! < .seconds(1), "a table update reaches every replica within 1 s, measured \(latencies)")
        for replica in replicas {
            replica.process.signal(SIGTERM)
            try await replica.process.waitForExit()
        }
        try await cluster.stop()
    }

    @Test("a worker started while its table is written stays unready, and takes no record, until it has read what was there at start")
    func notReadyUntilCaughtUp() async throws {
        let cluster = try await DevClusterProcess(topics: Self.topics)
        let preload = try await Self.apply(try Self.camerasFile(0..<300, mask: false), cluster)
        #expect(preload.exitStatus == 0, "\(preload.standardError.suffix(2_000))")
        try await cluster.produce(topic: "in", count: 50)
        // The table's partitions live on a slow broker; the group and the input on a fast one,
        // so a worker that ignored its table would be assigned (and ready) long before it is loaded.
        for partition in 0..<6 {
            try await cluster.control(["leader", "--topic", "cameras.v1", "--partition", String(partition), "--broker", "3"])
        }
        for partition in 0..<3 {
            try await cluster.control(["leader", "--topic", "in", "--partition", String(partition), "--broker", "1"])
            try await cluster.control(["leader", "--topic", "in.out", "--partition", String(partition), "--broker", "1"])
        }
        try await cluster.control(["coordinator", "--group", "vigil-passthrough", "--broker", "1"])
        try await cluster.control(["rtt", "3", "400"])
        // More table records arrive while the worker starts (not cameras: each is rejected, and counted as read).
        let writer = try cluster.startProducer(topic: "cameras.v1", count: 100, extra: ["--pace-ms", "20"])

        let worker = try await PassThroughWorkerProcess.start(cluster, environment: Self.tableWorker)
        var sawLoading = false
        try await eventually(timeout: .seconds(120), "the worker is ready") {
            // The count first, then readiness: loading only ever ends, so a count read before
            // /readyz still said "loading" was read while loading (the other order races the
            // end of the load and the first records taken right after it).
            let taken = try await worker.metric("vigil_records_in_total") ?? 0
            let ready = try await worker.get("/readyz")
            if ready.status == 200 { return true }
            if ready.body.contains("tables") {
                sawLoading = true
                #expect(taken == 0, "no record is taken while the tables load")
            }
            return false
        }
        let applied = try await worker.metric("vigil_table_records_total") ?? 0
        let held = try await Self.cameras(worker)
        let startLine = worker.process.standardError.split(separator: "\n").first { $0.contains("reading tables") } ?? ""
        let beforeStart = startLine.split(separator: " ").first { $0.hasPrefix("records_before_start=") }
            .flatMap { Int($0.dropFirst("records_before_start=".count)) } ?? -1
        #expect(sawLoading, "/readyz said the tables were loading")
        #expect(beforeStart >= 300, "the worker saw the preloaded records at its start: \(startLine)")
        #expect(applied >= Double(beforeStart), "ready only once every record written before its start was read (\(applied) of \(beforeStart))")
        #expect(held.count == 300, "every preloaded camera is held when the worker is ready")
        try await cluster.control(["rtt", "3", "0"])
        try await writer.waitForExit(timeout: .seconds(120))
        try await eventually(timeout: .seconds(60), "the worker forwards its input") { try await worker.metric("vigil_records_out_total") ?? 0 >= 50 }
        worker.process.signal(SIGTERM)
        try await worker.process.waitForExit()
        try await cluster.stop()
    }

    @Test("cameras apply refuses a privacy-reducing change and publishes nothing; a bad file names file, camera and key")
    func privacyReducingApplyIsRefused() async throws {
        let cluster = try await DevClusterProcess(topics: Self.topics)
        let masked = try await Self.apply(try Self.camerasFile(0..<2), cluster)
        #expect(masked.exitStatus == 0, "\(masked.standardError.suffix(2_000))")
        #expect(masked.output.contains("published 2 camera records to cameras.v1 and 2 audit events to audit.events.v1"), "\(masked.output)")

        let unmasked = try await Self.apply(try Self.camerasFile(0..<2, mask: false), cluster)
        #expect(unmasked.exitStatus == 1)
        #expect(unmasked.standardError.contains("camera cam-0: refused: this change removes privacy mask window"), "\(unmasked.standardError.suffix(2_000))")
        #expect(unmasked.standardError.contains("nothing was published"))

        let badFile = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-cameras-\(UUID().uuidString).yaml")
        try "cameras:\n  cam-0:\n    source: rtsp://admin:secret@10.1.1.1/live\n    zoom: 2\n".write(to: badFile, atomically: true, encoding: .utf8)
        let bad = try await Self.apply(badFile, cluster)
        #expect(bad.exitStatus == 1)
        #expect(bad.standardError.contains("\(badFile.path):3:13: cameras.cam-0.source: carries credentials"), "\(bad.standardError.suffix(2_000))")
        #expect(bad.standardError.contains("\(badFile.path):4:5: cameras.cam-0.zoom: unknown key"))
        #expect(!bad.standardError.contains("secret@"), "the credential is not echoed")

        let list = try ChildProcess("vigil", ["cameras", "list", "--bootstrap", cluster.bootstrapServers], name: "vigil cameras list")
        try await list.waitForExit(timeout: .seconds(60))
        let rows = list.output.filter { $0.hasPrefix("cam-") }
        #expect(rows.count == 2 && rows.allSatisfy { $0.contains(" v1 ") && $0.contains("test-admin") }, "still version 1 everywhere: \(list.output)")
        // The audit trail holds the two additions and nothing from the refused or invalid applies.
        let audit = try cluster.consumer(topic: "audit.events.v1", group: "audit-check", extra: ["--max", "2"])
        try await audit.waitForExit(timeout: .seconds(60))
        #expect(audit.events("message").count == 2)
        #expect(try await cluster.lag(topic: "audit.events.v1", group: "audit-check") == 0, "no third audit event")
        try await cluster.stop()
    }
}
