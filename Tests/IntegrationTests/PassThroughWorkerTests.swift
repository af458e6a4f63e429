import Foundation
import Testing

/// The worker runtime on the dev cluster, through `vigil-passthrough` (a stage that forwards
/// each record from `in` to `in.out`, refusing records that fail to decode as their content-type).
@Suite("Worker runtime across processes", .serialized, .timeLimit(.minutes(5)))
struct PassThroughWorkerTests {
    static let topics = ["in:3", "in.out:3", "in.dlq:1"]

    /// Starts the worker with its HTTP server on a free port; returns it with the port.
    static func startWorker(_ cluster: DevClusterProcess) async throws -> (ChildProcess, Int) {
        let worker = try ChildProcess(
            "/usr/bin/env",
            ["KAFKA_BOOTSTRAP=\(cluster.bootstrapServers)", "WORKER_INPUTS=in", "HTTP_HOST=127.0.0.1", "HTTP_PORT=0",
             "KAFKA_COMMIT_INTERVAL_MS=200", binaryDirectory.appendingPathComponent("vigil-passthrough").path],
            name: "vigil-passthrough"
        )
        var port = 0
        try await eventually(timeout: .seconds(30), "the worker's HTTP server listens") {
            guard let line = worker.standardError.split(separator: "\n").first(where: { $0.contains("listening on 127.0.0.1:") }),
                  let value = line.split(separator: ":").last.flatMap({ Int($0.trimmingCharacters(in: .whitespaces)) })
            else { return false }
            port = value
            return true
        }
        return (worker, port)
    }

    static func get(_ port: Int, _ path: String) async throws -> (Int, String) {
        let curl = try ChildProcess("/usr/bin/curl", ["-s", "-o", "/dev/stdout", "-w", "\n%{http_code}\n", "http://127.0.0.1:\(port)\(path)"], name: "curl \(path)")
        try await curl.waitForExit(timeout: .seconds(30))
        let lines = curl.output
        return (Int(lines.last ?? "") ?? 0, lines.dropLast().joined(separator: "\n"))
    }

    @Test("SIGKILL mid-stream, then restart: every input has its output; duplicates carry the same record id")
    func killAndRestart() async throws {
        let cluster = try await DevClusterProcess(topics: Self.topics)
        try await cluster.produce(topic: "in", count: 5_000, keys: 30)
        let reader = try cluster.consumer(topic: "in.out", group: "reader")
        let (first, _) = try await Self.startWorker(cluster)
        try await eventually("the worker forwarded some records") { reader.events("message").count >= 500 }
        first.signal(SIGKILL)
        try await first.waitForExit()

        let (second, _) = try await Self.startWorker(cluster)
        try await eventually(timeout: .seconds(120), "every input reached in.out") { Set(consumedSequences([reader])).count >= 5_000 }
        second.signal(SIGTERM)
        try await second.waitForExit()
        #expect(second.exitStatus == 0, "graceful stop: \(second.standardError.suffix(1_000))")
        reader.signal(SIGTERM)
        try await reader.waitForExit()

        let messages = reader.events("message")
        #expect(Set(consumedSequences([reader])) == Set(0..<5_000), "none lost")
        var recordIDs: [String: Set<String>] = [:]
        for message in messages {
            let headers = message["headers"] as? [String: String] ?? [:]
            recordIDs[headers["seq"] ?? "?", default: []].insert(headers["vigil-record-id"] ?? "missing")
        }
        #expect(recordIDs.values.allSatisfy { $0.count == 1 && !$0.contains("missing") }, "a redelivered input yields the same record id")
        let duplicates = messages.count - 5_000
        #expect(duplicates < 5_000, "only records not yet committed at the kill are repeated (\(duplicates))")
        try await cluster.stop()
    }

    @Test("a poison record lands in the DLQ with its origin headers; the records after it are processed; metrics and probes")
    func poisonRecordAndEndpoints() async throws {
        let cluster = try await DevClusterProcess(topics: Self.topics)
        let (worker, port) = try await Self.startWorker(cluster)
        let traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
        // Three records in order on one partition; the middle one claims to be a CameraHealth
        // message but its bytes are not valid protobuf.
        for (value, extraHeaders) in [("before", [String]()), ("poison", ["-H", "content-type=vigil.v1.CameraHealth"]), ("after", [])] {
            let kcat = try ChildProcess(
                "/usr/bin/kcat",
                ["-P", "-b", cluster.bootstrapServers, "-t", "in", "-p", "0", "-K:", "-H", "traceparent=00-\(traceID)-00f067aa0ba902b7-01"] + extraHeaders,
                name: "kcat producer", standardInput: Data("camera-1:\(value)\n".utf8)
            )
            try await kcat.waitForExit()
            #expect(kcat.exitStatus == 0)
        }
        let out = try cluster.consumer(topic: "in.out", group: "out-reader")
        let dlq = try cluster.consumer(topic: "in.dlq", group: "dlq-reader")
        try await eventually("two records forwarded and one dead-lettered") { out.events("message").count >= 2 && dlq.events("message").count >= 1 }

        #expect(out.events("message").map { $0["value"] as? String } == ["before", "after"], "the record after the poison is processed")
        let dead = try #require(dlq.events("message").first)
        let headers = dead["headers"] as? [String: String] ?? [:]
        #expect(dead["value"] as? String == "poison")
        #expect(dead["key"] as? String == "camera-1")
        #expect(headers["vigil-dlq-origin-topic"] == "in")
        #expect(headers["vigil-dlq-origin-partition"] == "0")
        #expect(headers["vigil-dlq-origin-offset"] == "1")
        #expect(headers["vigil-dlq-worker"] == "vigil-passthrough")
        #expect(headers["vigil-dlq-error"]?.hasPrefix("cannot decode the record: not a valid vigil.v1.CameraHealth") == true, "\(headers)")
        #expect(headers["content-type"] == "vigil.v1.CameraHealth", "the record's own headers travel with it")
        #expect(worker.standardError.contains("record dead-lettered"), "the worker logs it")

        // The trace id travels from input to output; the span is this stage's own.
        for message in out.events("message") {
            let parent = (message["headers"] as? [String: String])?["traceparent"] ?? ""
            #expect(parent.split(separator: "-").dropFirst().first == Substring(traceID))
            #expect(!parent.contains("00f067aa0ba902b7"))
        }

        #expect(try await Self.get(port, "/livez").0 == 200)
        let deadline = ContinuousClock.now + .seconds(30)
        var ready = try await Self.get(port, "/readyz")
        while ready.0 != 200 && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(200))
            ready = try await Self.get(port, "/readyz")
        }
        #expect(ready.0 == 200, "readyz: \(ready.1)")

        let (status, metrics) = try await Self.get(port, "/metrics")
        #expect(status == 200)
        #expect(metrics.contains("vigil_records_in_total{worker=\"vigil-passthrough\",topic=\"in\"} 3"))
        #expect(metrics.contains("vigil_records_out_total{worker=\"vigil-passthrough\",topic=\"in.out\"} 2"))
        #expect(metrics.contains("vigil_records_dead_lettered_total{worker=\"vigil-passthrough\",topic=\"in\"} 1"))
        #expect(metrics.contains("vigil_processing_seconds_bucket"))
        let promtool = try ChildProcess("/usr/bin/promtool", ["check", "metrics"], name: "promtool", standardInput: Data((metrics + "\n").utf8))
        try await promtool.waitForExit()
        #expect(promtool.exitStatus == 0, "promtool: \(promtool.output.joined(separator: "\n")) \(promtool.standardError)")

        // Once the broker is gone the worker is no longer ready.
        try await cluster.stop()
        var notReady = try await Self.get(port, "/readyz")
        let notReadyDeadline = ContinuousClock.now + .seconds(60)
        while notReady.0 == 200 && ContinuousClock.now < notReadyDeadline {
            try await Task.sleep(for: .milliseconds(200))
            notReady = try await Self.get(port, "/readyz")
        }
        // Either reason is right: the broker is gone, and with it the group's assignment.
        #expect(notReady.0 == 503 && notReady.1.hasPrefix("not ready: "), "readyz after the cluster stopped: \(notReady)")
        worker.signal(SIGTERM)
        try await worker.waitForExit()
        for process in [out, dlq] {
            process.signal(SIGTERM)
            try await process.waitForExit()
        }
    }
}
