import ChildProcesses
import Foundation
import Testing

/// `vigil up` as an operator runs it: the dev cluster and every worker as supervised children,
/// on a sample street clip and an unreachable camera, with a rules folder holding one bad file.
@Suite("vigil up", .serialized, .timeLimit(.minutes(8)))
struct UpCommandTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let video = "/usr/share/doc/opencv-doc/examples/data/vtest.avi"

    /// The processes whose parent is `pid`.
    static func children(of pid: Int32) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap(Int32.init).filter { candidate in
            guard let stat = try? String(contentsOfFile: "/proc/\(candidate)/stat", encoding: .utf8), let end = stat.lastIndex(of: ")") else { return false }
            let fields = stat[stat.index(after: end)...].split(separator: " ")
            return fields.count > 1 && Int32(fields[1]) == pid
        }
    }

    @Test("the whole data path runs supervised: counters move, incidents appear, a killed worker comes back, bad input is reported and the rest runs, SIGTERM leaves no process", .enabled(if: FileManager.default.fileExists(atPath: video)))
    func wholePipeline() async throws {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-up-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch.appendingPathComponent("rules"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let clip = scratch.appendingPathComponent("street.mp4").path
        let encode = try ChildProcess.run("/usr/bin/ffmpeg", [
            "-nostdin", "-y", "-v", "error", "-i", Self.video, "-t", "30", "-c:v", "libx264", "-preset", "veryfast", "-g", "20", "-pix_fmt", "yuv420p", clip,
        ], standardError: .lines)
        #expect(encode.termination == .exited(0), "\(encode.errorOutput)")
        try """
        cameras:
          street-1:
            source: \(clip)
            sampling: {fps: 5}
            redaction: {target: whole_persons}
          unreachable-1:
            source: rtsp://127.0.0.1:9/nothing-listens-here
            sampling: {fps: 5}
        """.write(to: scratch.appendingPathComponent("cameras.yaml"), atomically: true, encoding: .utf8)
        try FileManager.default.copyItem(
            at: Self.repository.appendingPathComponent("examples/demo-rules/street.yaml"), to: scratch.appendingPathComponent("rules/street.yaml")
        )
        try "rules:\n  down:\n    cameras: [street-1, unreachable-1]\n    kind: camera_offline\n    sustained_for: 2s\n"
            .write(to: scratch.appendingPathComponent("rules/down.yaml"), atomically: true, encoding: .utf8)
        try "rules:\n  broken:\n    cameras: [street-1]\n    kind: zone_intrusion\n".write(to: scratch.appendingPathComponent("rules/broken.yaml"), atomically: true, encoding: .utf8)

        let up = try ChildProcess("vigil", [
            "up", "--cameras", scratch.appendingPathComponent("cameras.yaml").path, "--rules", scratch.appendingPathComponent("rules").path,
            "--summary", "5", "--state-directory", scratch.appendingPathComponent("state").path,
            "--topology", Self.repository.appendingPathComponent("Topology/topology.yaml").path,
            "--models-directory", Self.repository.appendingPathComponent("models").path,
        ], environment: ["VIGIL_UP_TEST_KILL": "vigil-match@25"])
        defer { if up.isRunning { up.signal(SIGKILL) } }

        // Incidents from the street, both before and after vigil-match was killed and restarted.
        try await eventually(timeout: .seconds(240), "incidents before and after vigil-match's restart") {
            guard up.isRunning else { throw ExitedEarly(description: "vigil up exited: \(up.standardError.suffix(3_000))") }
            let lines = up.output
            // The first summary that counts vigil-match's restart (its last column).
            guard let restarted = lines.firstIndex(where: { $0.hasPrefix("vigil-match ") && $0.hasSuffix(" 1") }) else { return false }
            return lines[..<restarted].contains { $0.hasPrefix("incident") && $0.contains("street-1") }
                && lines[restarted...].contains { $0.hasPrefix("incident") && $0.contains("street-1") }
        }
        try await eventually(timeout: .seconds(60), "the unreachable camera's offline incident") {
            up.output.contains { $0.hasPrefix("incident") && $0.contains("unreachable-1") && $0.contains("camera_offline") }
        }
        // Every worker took or wrote records in some summary.
        let rows = up.output.filter { $0.hasPrefix("vigil-") }.map { $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init) }
        for worker in ["vigil-ingest", "vigil-decode", "vigil-detect", "vigil-match"] {
            let moved = rows.contains { $0.first == worker && $0.count == 7 && ((Double($0[1]) ?? 0) > 0 || (Double($0[2]) ?? 0) > 0) }
            #expect(moved, "\(worker)'s counters moved in some summary: \(rows.filter { $0.first == worker })")
        }
        #expect(up.output.contains { $0.contains("broken.yaml") && $0.contains("rules.broken.zone") }, "the bad rules file is reported with its problem")
        #expect(up.errorOutput.contains { $0.contains("`vigil rules apply") && $0.contains("broken.yaml") && $0.contains("runs without it") })

        // The run's redacted snapshots, exported as JPEG files.
        let state = try JSONSerialization.jsonObject(with: Data(contentsOf: scratch.appendingPathComponent("state/dev-cluster.json"))) as? [String: Any]
        let bootstrap = try #require(state?["bootstrapServers"] as? String)
        let exported = scratch.appendingPathComponent("snapshots")
        let export = try ChildProcess("vigil", ["snapshots", "export", exported.path, "--camera", "street-1", "--bootstrap", bootstrap, "--log-level", "warning"])
        try await export.waitForExit(timeout: .seconds(60))
        #expect(export.exitStatus == 0, "\(export.standardError)")
        let files = try FileManager.default.contentsOfDirectory(atPath: exported.path)
        #expect(!files.isEmpty && files.allSatisfy { $0.hasPrefix("street-1-") && $0.hasSuffix(".jpg") }, "\(files)")
        for file in files {
            let bytes = try Data(contentsOf: exported.appendingPathComponent(file))
            #expect(bytes.prefix(2) == Data([0xFF, 0xD8]), "\(file) is a JPEG")
        }
        #expect(export.output.contains("exported \(files.count) redacted snapshot\(files.count == 1 ? "" : "s") to \(exported.path)"))

        let children = Self.children(of: up.processIdentifier)
        #expect(children.count >= 5, "the dev cluster and four workers run as children: \(children)")
        up.signal(SIGTERM)
        let termination = try await up.waitForExit(timeout: .seconds(90))
        #expect(termination == .exited(0), "\(up.standardError.suffix(2_000))")
        #expect(up.output.contains { $0.hasPrefix("vigil up: stopped;") && $0.contains("vigil-match restarted 1×") })
        let left = children.filter { kill($0, 0) == 0 }
        #expect(left.isEmpty, "no process left behind: \(left)")
    }
}
