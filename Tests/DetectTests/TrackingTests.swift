import ChildProcesses
import Foundation
import Testing
import VigilSchema
import Vision
@testable import Detect

/// Tracks on real video through the analyzer. Mean track length: vtest.avi frames 0–200 at 5
/// frames/s, judged on
/// the frames annotated by hand in Detect I (every 40th). Identity ground truth is what the
/// boxes show without any detector: a person whose hand-drawn boxes on two annotated frames 4 s
/// apart overlap by IoU ≥ 0.5 stood in place (the group by the lamp post, looked at), so both
/// boxes must carry the same track id; a different id is an id switch.
@Suite("Tracking on vtest.avi", .serialized)
struct TrackingTests {
    static let video = "/usr/share/doc/opencv-doc/examples/data/vtest.avi"

    /// What detect publishes for the frames of `video` (vtest.avi) that ffmpeg's `select`
    /// expression picks, `spacing` ms apart in capture time from
    /// `DetectStageTests.captureMilliseconds`, as camera `camera`.
    static func analyzedFrames(
        of video: String = Self.video, camera cameraID: String = "vtest", select: String, expecting count: Int, spacing: Int64 = 200,
        target: Vigil_V1_RedactionTarget = .faces
    ) throws -> [Vigil_V1_FrameDetections] {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-tracking-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let run = try ChildProcess.run("/usr/bin/ffmpeg", [
            "-nostdin", "-v", "error", "-i", video, "-vf", "select='\(select)'", "-vsync", "0", "-q:v", "2", directory.appendingPathComponent("%03d.jpg").path,
        ], standardError: .lines)
        #expect(run.termination == .exited(0), "\(run.errorOutput)")
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
        #expect(files.count == count)
        let analyzer = try FrameAnalyzer(settings: sharedAnalyzerSettings, logger: testLogger)
        let camera = DetectStageTests.camera(cameraID, target: target)
        return try files.enumerated().map { index, file in
            let jpeg = [UInt8](try Data(contentsOf: directory.appendingPathComponent(file)))
            let frame = DetectStageTests.frame(camera: cameraID, sequence: UInt64(index), jpeg: jpeg, atMilliseconds: DetectStageTests.captureMilliseconds + Int64(index) * spacing)
            return try analyzer.analyze(frame, camera: camera).detections
        }
    }

    /// The persons detect publishes, frame by frame (in vtest's 768 × 576 pixels).
    static func trackedPersons(select: String, expecting count: Int) throws -> [[(box: PixelBox, track: UInt64)]] {
        try analyzedFrames(select: select, expecting: count).map { detections in
            detections.objects.filter { $0.classLabel == "person" }.map {
                (PixelBox(x0: $0.box.xMin * 768, y0: $0.box.yMin * 576, x1: $0.box.xMax * 768, y1: $0.box.yMax * 576), $0.trackID)
            }
        }
    }

    @Test("mean track length and id switches among people who stayed in place", .enabled(if: FileManager.default.fileExists(atPath: video)))
    func tracksOnVtest() throws {
        // Every second frame (5 frames/s) of frames 0–200: annotated frame 40k is index 20k.
        let persons = try Self.trackedPersons(select: "lte(n\\,200)*not(mod(n\\,2))", expecting: 101)

        var lengths: [UInt64: Int] = [:]
        for frame in persons { for person in frame where person.track != 0 { lengths[person.track, default: 0] += 1 } }
        let meanLength = Double(lengths.values.reduce(0, +)) / Double(max(lengths.count, 1))

        let annotations = try PersonAnnotations.load().frames.filter { $0.frame <= 200 }
        func track(of box: PixelBox, atIndex index: Int) -> UInt64? {
            persons[index].filter { $0.box.intersectionOverUnion(box) >= matchIoU }.max { $0.box.intersectionOverUnion(box) < $1.box.intersectionOverUnion(box) }?.track
        }
        var pairs = 0, judged = 0, switches = 0
        for (earlier, later) in zip(annotations, annotations.dropFirst()) {
            for first in earlier.persons {
                guard let second = later.persons.first(where: { $0.pixelBox.intersectionOverUnion(first.pixelBox) >= 0.5 }) else { continue }
                pairs += 1
                guard let a = track(of: first.pixelBox, atIndex: earlier.frame / 2), let b = track(of: second.pixelBox, atIndex: later.frame / 2), a != 0, b != 0 else { continue }
                judged += 1
                if a != b { switches += 1 }
            }
        }
        print("tracking on vtest.avi frames 0–200 at 5 frames/s: \(lengths.count) tracks, mean length \(String(format: "%.1f", meanLength)) frames (\(String(format: "%.1f", meanLength / 5)) s); people who stayed in place between annotated frames: \(pairs) pairs, \(judged) tracked at both ends, \(switches) id switches")
        // Measured when this was written: 35 tracks, mean 12.3 frames; the 5 people who stood in
        // place were not found at both ends (occluded in the group by the lamp post), so id
        // switches are not judged here yet: that needs consecutive frames annotated by hand.
        #expect(switches <= judged / 3, "id switches among people standing still")
        #expect(meanLength >= 8, "tracks last well over a second on average")
    }

    struct Identities: Decodable {
        struct Person: Decodable {
            var who: String
            var boxes: [String: [Float]]
        }
        var frames: [Int]
        var persons: [Person]
    }

    @Test("id switches on frames 100–156, six people followed by hand from frame to frame", .enabled(if: FileManager.default.fileExists(atPath: video)))
    func idSwitches() throws {
        let identities = try JSONDecoder().decode(Identities.self, from: Data(contentsOf: fixtures.appendingPathComponent("vtest-identities.json")))
        // Frames 100, 102, …, 156 (5 frames/s): annotated frame n is index (n - 100) / 2.
        let persons = try Self.trackedPersons(select: "between(n\\,100\\,156)*not(mod(n\\,2))", expecting: 29).map { $0.filter { $0.track != 0 } }
        var annotated = 0, tracked = 0, switches = 0
        for person in identities.persons {
            var ids: [UInt64] = []
            for frame in identities.frames {
                guard let box = person.boxes[String(frame)] else { continue }
                annotated += 1
                let truth = PixelBox(x: box[0], y: box[1], width: box[2], height: box[3])
                let candidates = persons[(frame - 100) / 2].filter { $0.box.intersectionOverUnion(truth) >= matchIoU }
                guard let best = candidates.max(by: { $0.box.intersectionOverUnion(truth) < $1.box.intersectionOverUnion(truth) }) else { continue }
                tracked += 1
                ids.append(best.track)
            }
            switches += zip(ids, ids.dropFirst()).filter { $0 != $1 }.count
            print("  \(person.who): tracks \(ids.map { $0 & 0xFFFFF })")
        }
        print("id switches on vtest.avi frames 100–156 (6 people followed by hand, \(annotated) boxes): \(tracked) on a confirmed track, \(switches) id switches")
        // Measured when this was written: 22 of 39 boxes on a confirmed track, 5 switches — two
        // people walking side by side found as one box, and people passing the man by the sign.
        // A rise is a regression.
        #expect(Float(tracked) / Float(annotated) >= 0.5)
        #expect(switches <= 6)
    }
}
