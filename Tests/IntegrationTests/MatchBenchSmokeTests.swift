import ChildProcesses
import Foundation
import Testing

/// `vigil bench match-cluster` with small numbers, as an operator runs it: the dev cluster from
/// the repository's topology, `vigil rules apply`, kcat and two vigil-match processes. Only that
/// the run completes and reports its figures is checked; how fast is for the benchmark's own
/// output to say (its goals are printed there, never asserted here).
@Suite("vigil bench match-cluster", .serialized, .timeLimit(.minutes(5)))
struct MatchBenchSmokeTests {
    static let topology = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Topology/topology.yaml")

    /// The number just before `unit` on the first output line holding `marker`.
    static func figure(_ output: [String], after marker: String, before unit: String) -> Double? {
        guard let line = output.first(where: { $0.contains(marker) }), let markerEnd = line.range(of: marker)?.upperBound,
              let unitStart = line[markerEnd...].range(of: unit)?.lowerBound else { return nil }
        return Double(line[markerEnd..<unitStart].trimmingCharacters(in: .whitespaces))
    }

    @Test("a small run completes: kcat and the worker read every record, the worker/kcat ratio and the latency p50/p99 are printed with their goals")
    func smallRun() async throws {
        let bench = try ChildProcess("vigil", [
            "bench", "match-cluster", "--records", "600", "--cameras", "4", "--persons", "3", "--rules", "4",
            "--rate", "40", "--latency-cameras", "4", "--latency-seconds", "3", "--warm-up", "2", "--topology", Self.topology.path,
        ], name: "vigil bench match-cluster", environment: [
            // As `make bench` runs it: no admin keys of the caller's; the bench trusts its own.
            "CAMERA_ADMIN_KEYS_FILE": "", "VIGIL_ADMIN_KEY_FILE": "",
        ])
        try await bench.waitForExit(timeout: .seconds(240))
        let report = bench.output.joined(separator: "\n")
        #expect(bench.exitStatus == 0, "\(report)\n\(bench.standardError.suffix(3_000))")

        #expect(bench.output.contains { $0.contains("kcat -C -e") && $0.contains("(600 records") }, "\(report)")
        #expect(bench.output.contains { $0.contains("vigil-match") && $0.contains("(600 records in") }, "\(report)")
        let ratio = Self.figure(bench.output, after: "ratio vigil-match / kcat =", before: "×")
        #expect(ratio.map { $0 > 0 } == true, "a ratio is printed: \(report)")
        #expect(bench.output.contains { $0.contains("goal ≥ 0.5×") }, "\(report)")

        #expect(bench.output.contains { $0.contains("rule windows and lateness excluded") }, "\(report)")
        let p50 = Self.figure(bench.output, after: "p50", before: "ms")
        let p99 = Self.figure(bench.output, after: "p99", before: "ms")
        #expect(p50 != nil && p99 != nil && p99! >= p50!, "p50 and p99 are printed: \(report)")
        #expect(bench.output.contains { $0.contains("goal p99 < 50 ms") }, "\(report)")
    }
}

/// `vigil bench alert` with small numbers: the dev cluster, kcat, wrk, two vigil-alert processes
/// and the loopback receiver. That the run completes and reports its figures with their goals is
/// checked; the figures themselves are the benchmark's to print.
@Suite("vigil bench alert", .serialized, .timeLimit(.minutes(5)))
struct AlertBenchSmokeTests {
    @Test("a small run completes: every incident taken, every webhook verified, the ratios to kcat and wrk and the latency p50/p99 printed with their goals")
    func smallRun() async throws {
        let bench = try ChildProcess("vigil", [
            "bench", "alert", "--incidents", "400", "--deliveries", "100", "--cameras", "10", "--rate", "20", "--latency-seconds", "2", "--warm-up", "1",
            "--wrk-seconds", "1", "--topology", MatchBenchSmokeTests.topology.path,
        ], name: "vigil bench alert", environment: ["CAMERA_ADMIN_KEYS_FILE": "", "VIGIL_ADMIN_KEY_FILE": ""])
        try await bench.waitForExit(timeout: .seconds(240))
        let report = bench.output.joined(separator: "\n")
        #expect(bench.exitStatus == 0, "\(report)\n\(bench.standardError.suffix(3_000))")
        #expect(bench.output.contains { $0.contains("vigil-alert") && $0.contains("(400 incidents in") }, "\(report)")
        #expect(MatchBenchSmokeTests.figure(bench.output, after: "ratio vigil-alert / kcat =", before: "×").map { $0 > 0 } == true, "\(report)")
        #expect(bench.output.contains { $0.contains("(100 in") && $0.contains("deliveries/s") }, "\(report)")
        #expect(MatchBenchSmokeTests.figure(bench.output, after: "ratio vigil-alert / wrk =", before: "×").map { $0 > 0 } == true, "\(report)")
        #expect(bench.output.contains { $0.contains("40 of 40 measured webhooks arrived") }, "\(report)")
        let p50 = MatchBenchSmokeTests.figure(bench.output, after: "p50", before: "ms")
        let p99 = MatchBenchSmokeTests.figure(bench.output, after: "p99", before: "ms")
        #expect(p50 != nil && p99 != nil && p99! >= p50!, "\(report)")
        #expect(bench.output.contains { $0.contains("goal p99 < 100 ms") }, "\(report)")
    }
}
