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
