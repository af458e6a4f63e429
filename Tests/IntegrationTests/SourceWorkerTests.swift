import ChildProcesses
import Foundation
import Testing

/// A source worker (no input topic) on the dev cluster: `vigil-passthrough` with
/// `PASSTHROUGH_SOURCE=1` owns its share of `cameras.v1` through its consumer group and emits a
/// heartbeat per owned camera; `GET /owned` lists the cameras a replica runs.
@Suite("Source workers across processes", .serialized, .timeLimit(.minutes(5)))
struct SourceWorkerTests {
    static let sourceWorker = ["PASSTHROUGH_SOURCE": "1", "WORKER_OWNS": "cameras.v1", "WORKER_OUTPUTS": "source.out", "WORKER_INPUTS": ""]

    static func owned(_ worker: PassThroughWorkerProcess) async throws -> Set<String> {
        Set(try await worker.get("/owned").body.split(separator: "\n").map(String.init))
    }

    @Test("6 cameras across 2 replicas: a second replica takes over some without restarting the first, and a killed replica's cameras move to the survivor")
    func camerasMoveWithTheGroup() async throws {
        let cluster = try await DevClusterProcess(topics: ["cameras.v1:6", "source.out:3", "audit.events.v1:3"])
        let cameras = Set((0..<6).map { "cam-\($0)" })
        let applied = try await TablesAcrossProcessesTests.apply(try TablesAcrossProcessesTests.camerasFile(0..<6), cluster)
        #expect(applied.exitStatus == 0, "\(applied.standardError.suffix(2_000))")

        let first = try await PassThroughWorkerProcess.start(cluster, environment: Self.sourceWorker)
        try await eventually(timeout: .seconds(60), "one replica runs every camera") { try await Self.owned(first) == cameras }
        try await eventually(timeout: .seconds(30), "the replica is ready") { try await first.get("/readyz").status == 200 }

        let second = try await PassThroughWorkerProcess.start(cluster, environment: Self.sourceWorker)
        var split: (Set<String>, Set<String>) = ([], [])
        try await eventually(timeout: .seconds(60), "the cameras are split between the replicas") {
            split = (try await Self.owned(first), try await Self.owned(second))
            return !split.0.isEmpty && !split.1.isEmpty && split.0.isDisjoint(with: split.1) && split.0.union(split.1) == cameras
        }
        #expect(first.process.isRunning, "the rebalance moved cameras without restarting the first replica")
        try await eventually(timeout: .seconds(30), "both replicas are ready") {
            let firstReady = try await first.get("/readyz").status
            let secondReady = try await second.get("/readyz").status
            return firstReady == 200 && secondReady == 200
        }

        first.process.signal(SIGKILL)
        try await first.process.waitForExit()
        try await eventually(timeout: .seconds(90), "the survivor runs every camera") { try await Self.owned(second) == cameras }
        #expect(try await second.metric("vigil_source_keys_owned") == 6)
        let beforeOutputs = try await second.metric("vigil_records_out_total{worker=\"vigil-passthrough\",topic=\"source.out\"}") ?? 0
        try await eventually(timeout: .seconds(30), "the survivor keeps producing for every camera") {
            try await second.metric("vigil_records_out_total{worker=\"vigil-passthrough\",topic=\"source.out\"}") ?? 0 >= beforeOutputs + 60
        }

        // A camera removed from the table stops; one changed restarts with its new configuration.
        let fewer = try ChildProcess(
            "vigil", ["cameras", "apply", try TablesAcrossProcessesTests.camerasFile(0..<5).path, "--bootstrap", cluster.bootstrapServers,
                      "--actor", "test-admin", "--delete-missing"], name: "vigil cameras apply --delete-missing"
        )
        try await fewer.waitForExit(timeout: .seconds(60))
        #expect(fewer.exitStatus == 0, "\(fewer.standardError.suffix(2_000))")
        try await eventually(timeout: .seconds(30), "the removed camera's run stops") { try await Self.owned(second) == cameras.subtracting(["cam-5"]) }
        second.process.signal(SIGTERM)
        try await second.process.waitForExit()
        #expect(second.process.exitStatus == 0, "graceful stop: \(second.process.standardError.suffix(1_000))")
        #expect(second.process.standardError.contains("source stopped; every run ended and its records were delivered"))
        try await cluster.stop()
    }
}
