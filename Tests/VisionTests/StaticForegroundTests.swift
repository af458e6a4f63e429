import ChildProcesses
import Foundation
import Testing
@testable import Vision

/// Static foreground on real video: vtest.avi at 5 frames/s with an object composited by the
/// ffmpeg CLI onto the lawn from 45 s on (a grey box the size of a bag at this distance, where
/// nobody walks), as the abandoned-object rule will see it. The first 40 s are the models'
/// learning time.
@Suite("Static foreground on real video", .serialized)
struct StaticForegroundTests {
    static let video = "/usr/share/doc/opencv-doc/examples/data/vtest.avi"
    static let object = PixelBox(x: 60, y: 400, width: 40, height: 30)

    @Test("an object left on the lawn becomes a static region within 10 s and stays; none is there before", .enabled(if: FileManager.default.fileExists(atPath: video)))
    func leftObject() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-static-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let box = "drawbox=x=60:y=400:w=40:h=30:color=0x505a64:t=fill:enable='gte(t,45)'"
        let run = try ChildProcess.run("/usr/bin/ffmpeg", [
            "-nostdin", "-v", "error", "-i", Self.video, "-vf", "fps=5,scale=640:480,\(box)", "-frames:v", "300", directory.appendingPathComponent("%03d.png").path,
        ], standardError: .lines)
        #expect(run.termination == .exited(0), "\(run.errorOutput)")
        let motion = MotionDetector()
        var covering: [Int] = [], elsewhere = 0
        for (index, file) in try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted().enumerated() {
            let image = try RGBImage(encoded: [UInt8](Data(contentsOf: directory.appendingPathComponent(file))))
            _ = motion.movingRegions(in: image)
            let regions = motion.staticRegions()
            if regions.contains(where: { $0.coverage(of: Self.object) > 0.8 }) { covering.append(index) }
            elsewhere += regions.filter { $0.intersection(Self.object) == 0 }.count
        }
        let appeared = 225  // 45 s at 5 frames/s
        print("static region over the object on frames \(covering.first ?? -1)…\(covering.last ?? -1) (it appeared on frame \(appeared)); \(elsewhere) static regions elsewhere over 300 frames (people standing still)")
        #expect(covering.allSatisfy { $0 > appeared }, "nothing static there before it appeared")
        let first = try #require(covering.first)
        #expect(first <= appeared + 50, "static within 10 s of appearing")
        #expect(covering.count == 300 - first, "and every frame after, to the end of the clip (60 s)")
    }
}
