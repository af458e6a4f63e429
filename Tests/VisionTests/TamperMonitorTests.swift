import ChildProcesses
import Foundation
import Testing
@testable import Vision

/// Tamper signals on real video: vtest.avi (OpenCV's sample, Debian's opencv-doc) at 5 frames/s,
/// tampered by the ffmpeg CLI from 6 s to 9 s — blacked out, blurred, or the view shifted —
/// and untouched.
@Suite("Tamper signals on real video", .serialized)
struct TamperMonitorTests {
    static let video = "/usr/share/doc/opencv-doc/examples/data/vtest.avi"
    static let tamperedFrames = 30..<45  // 6 s to 9 s at 5 frames/s
    static let frameCount = 70

    /// The clip's frames with `filter` applied after sampling and scaling, decoded as RGB.
    static func frames(_ filter: String?) throws -> [RGBImage] {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-tamper-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let filters = ["fps=5", "scale=640:480"] + (filter.map { [$0] } ?? [])
        let run = try ChildProcess.run("/usr/bin/ffmpeg", [
            "-nostdin", "-v", "error", "-i", video, "-vf", filters.joined(separator: ","), "-frames:v", String(frameCount),
            directory.appendingPathComponent("%03d.png").path,
        ], standardError: .lines)
        #expect(run.termination == .exited(0), "\(run.errorOutput)")
        return try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted().map {
            try RGBImage(encoded: [UInt8](Data(contentsOf: directory.appendingPathComponent($0))))
        }
    }

    /// The active signals after each frame.
    static func signals(_ frames: [RGBImage]) -> [Set<TamperKind>] {
        let monitor = TamperMonitor()
        return frames.map { Set(monitor.observe($0).keys) }
    }

    static let window = "between(t,6,8.99)"

    @Test("the untouched clip raises nothing", .enabled(if: FileManager.default.fileExists(atPath: video)))
    func untouchedClip() throws {
        let signals = Self.signals(try Self.frames(nil))
        #expect(signals.count == Self.frameCount)
        #expect(signals.allSatisfy { $0.isEmpty }, "signals on untouched video: \(signals.enumerated().filter { !$0.element.isEmpty }.map { "\($0.offset): \($0.element)" })")
    }

    @Test("blacked out, blurred, shifted: the right signal, raised after 3 frames in a row and cleared after 5", .enabled(if: FileManager.default.fileExists(atPath: video)),
          arguments: [
              (TamperKind.covered, "drawbox=x=0:y=0:w=iw:h=ih:color=black:t=fill:enable='\(window)'"),
              (TamperKind.defocused, "boxblur=luma_radius=10:luma_power=3:chroma_radius=10:chroma_power=3:enable='\(window)'"),
              // The view panned and zoomed: a shifted crop laid over the frame while tampered.
              (TamperKind.moved, "split[a][b];[b]crop=560:420:80:60,scale=640:480[s];[a][s]overlay=enable='\(window)'"),
          ])
    func tamperedClip(kind: TamperKind, filter: String) throws {
        let signals = Self.signals(try Self.frames(filter))
        #expect(signals.count == Self.frameCount)
        let first = Self.tamperedFrames.lowerBound, last = Self.tamperedFrames.upperBound - 1
        let raised = signals.enumerated().filter { $0.element.contains(kind) }.map(\.offset)
        print("\(kind): raised on frames \(raised.first ?? -1)…\(raised.last ?? -1) (tampered \(first)…\(last)); other signals: \(Set(signals.flatMap { $0 }).subtracting([kind]))")
        #expect(signals[..<first].allSatisfy { $0.isEmpty }, "nothing before the tampering")
        #expect(!signals[first].contains(kind) && !signals[first + 1].contains(kind), "one or two odd frames raise nothing")
        #expect(signals[first + 2].contains(kind), "raised on the third tampered frame in a row")
        #expect(signals[(first + 2)...last].allSatisfy { $0.contains(kind) }, "held while tampered")
        #expect(signals[last + 1...last + 4].allSatisfy { $0.contains(kind) }, "held for 4 clean frames (hysteresis)")
        #expect(signals[(last + 5)...].allSatisfy { $0.isEmpty }, "cleared after 5 clean frames")
        #expect(signals.allSatisfy { $0.subtracting([kind]).isEmpty }, "no other kind raised")
    }
}
