import IndependentFaces
import Foundation
import Testing
import VigilSchema
import Vision
@testable import Detect

@Suite("Redaction checked by independent face detectors", .serialized)
struct IndependentDetectorTests {
    /// The annotated photos (scaled to at most 1000 px, faces stay over 100 px) and the
    /// small-face frames with faces of 28 px and up.
    static func images() throws -> [(name: String, image: RGBImage, truth: [PixelBox])] {
        try FaceRecallTests.cases().filter { !$0.group.hasPrefix("turned") && !$0.group.hasPrefix("16 ") && !$0.group.hasPrefix("20 ") }
            .map { item in
                let image = try loadImage(URL(fileURLWithPath: item.path))
                let scale = min(1, 1000 / Float(max(image.width, image.height)))
                guard scale < 1 else { return (URL(fileURLWithPath: item.path).lastPathComponent, image, item.truth) }
                let scaled = image.resized(width: Int(Float(image.width) * scale), height: Int(Float(image.height) * scale))
                let truth = item.truth.map { PixelBox(x0: $0.x0 * scale, y0: $0.y0 * scale, x1: $0.x1 * scale, y1: $0.y1 * scale) }
                return (URL(fileURLWithPath: item.path).lastPathComponent, scaled, truth)
            }
    }

    /// The independent detections that are one of the annotated faces (the same rule as
    /// recall: IoU ≥ 0.3 with a hand-drawn box). The cascades also fire on textures and on
    /// a mask's edge next to hair; those are not faces.
    static func annotatedFaces(in image: RGBImage, truth: [PixelBox]) -> [(detector: String, box: PixelBox)] {
        IndependentFaces.faces(in: image).filter { detection in truth.contains { $0.intersectionOverUnion(detection.box) >= matchIoU } }
    }

    @Test("dlib and the Haar cascades find no face in our redacted output where they find faces in the input, for both policies and both fills")
    func noFaceSurvivesRedaction() throws {
        let analyzer = try FrameAnalyzer(settings: sharedAnalyzerSettings, logger: testLogger)
        var checked = 0, facesInInputs = 0
        for (name, image, truth) in try Self.images() {
            let before = Self.annotatedFaces(in: image, truth: truth)
            guard !before.isEmpty else { continue }
            checked += 1
            facesInInputs += before.count
            for target in [RedactionTarget.faces, .wholePersons] {
                let regions = try analyzer.detect(in: image, target: target, motion: MotionDetector()).regions
                for fill in [RedactionFill.solid, .coarseMosaic] {
                    var redacted = image
                    redacted.redact(regions, fill: fill)
                    let after = Self.annotatedFaces(in: redacted, truth: truth)
                    #expect(after.isEmpty, "\(name), \(target) \(fill): \(after.map { "\($0.detector) \($0.box)" }) still found")
                }
            }
        }
        print("independent detectors found \(facesInInputs) annotated faces in \(checked) inputs; after redaction (faces, whole persons; solid, mosaic): none")
        #expect(checked >= 8, "the independent detectors found faces in only \(checked) inputs: too few to check anything")
    }

    /// A restarted (or moved) camera starts with fresh tracks and holds: its first snapshot must
    /// be as redacted as any. Frames are analysed by one analyzer, then by a new one, as a new
    /// vigil-detect process would after a crash; the new one's snapshots are checked.
    @Test("after a detect restart (a new analyzer mid-stream), the first snapshots are redacted as well")
    func redactedAcrossRestart() throws {
        // Per-camera state lives in the analyzer: to the second one every camera is new.
        let before = try FrameAnalyzer(settings: sharedAnalyzerSettings, logger: testLogger)
        let restarted = try FrameAnalyzer(settings: sharedAnalyzerSettings, logger: testLogger)
        var checked = 0
        for (index, (name, image, truth)) in try Self.images().enumerated() where !Self.annotatedFaces(in: image, truth: truth).isEmpty {
            let jpeg = try image.jpeg(quality: 95)
            let camera = DetectStageTests.camera("cam-\(index)", target: .faces, snapshotsPerMinute: 600)
            func frame(_ sequence: UInt64) -> Vigil_V1_Frame {
                DetectStageTests.frame(camera: camera.cameraID, sequence: sequence, jpeg: jpeg, atMilliseconds: DetectStageTests.captureMilliseconds + Int64(sequence) * 200)
            }
            for sequence: UInt64 in 1...1 { _ = try before.analyze(frame(sequence), camera: camera) }
            // The first frame after the restart, published once a second of frames after it is in.
            var snapshots: [Vigil_V1_Snapshot] = []
            for sequence: UInt64 in 2...7 { snapshots += try restarted.analyze(frame(sequence), camera: camera).snapshots }
            guard let snapshot = snapshots.first else { continue }
            #expect(snapshot.frameSequence == 2)
            let still = try RGBImage(encoded: [UInt8](snapshot.redactedJpeg))
            let found = Self.annotatedFaces(in: still, truth: truth)
            #expect(found.isEmpty, "\(name), the first frame after the restart: \(found.map { "\($0.detector) \($0.box)" }) still found")
            checked += 1
        }
        print("snapshots checked after a detect restart: \(checked)")
        #expect(checked >= 8, "too few snapshots to check")
    }

    @Test("the check can fail: with masks over the lower half of each region only, the independent detectors find faces")
    func checkCanFail() throws {
        let analyzer = try FrameAnalyzer(settings: sharedAnalyzerSettings, logger: testLogger)
        var survivors = 0
        for (_, image, truth) in try Self.images() {
            var halfMasked = image
            let regions = try analyzer.detect(in: image, target: .faces, motion: MotionDetector()).regions
            halfMasked.redact(regions.map { PixelBox(x0: $0.x0, y0: $0.centerY + $0.height / 4, x1: $0.x1, y1: $0.y1) }, fill: .solid)
            survivors += Self.annotatedFaces(in: halfMasked, truth: truth).count
        }
        #expect(survivors > 0)
    }
}
