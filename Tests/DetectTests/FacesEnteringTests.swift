import Foundation
import Testing
import VigilSchema
import Vision
@testable import Detect

/// People entering the view, the case a detector misses most: the hand-annotated portraits
/// slide in from the right edge of a 1280 × 720 frame, 48 px a frame at 5 frames a second,
/// so each face is first cut by the edge, then whole. The faces' boxes are the hand-drawn
/// ones moved with their photo (and clipped to the frame). Every frame's snapshot that
/// detect publishes (one per frame: 600 a minute) is checked: each face at least 30 % in
/// view is counted masked when the snapshot's masks cover ≥ 70 % of its visible part, and
/// dlib and the Haar cascades must find none of them in the published JPEG.
@Suite("Faces entering the view", .serialized)
struct FacesEnteringTests {
    static let width = 1280, height = 720, step = 48, frames = 14

    struct Clip {
        var name: String
        var frames: [(jpeg: [UInt8], faces: [PixelBox])]
    }

    /// One clip per portrait, scaled to `faceHeight` pixels of face.
    static func clips(faceHeight: Float) throws -> [Clip] {
        let annotations = try FaceAnnotations.load()
        return try ["obama.jpg", "obama2.jpg", "biden.jpg"].map { file in
            let entry = try #require(annotations.images.first { $0.file == file })
            let photo = try loadImage(testMedia.appendingPathComponent("faces/\(file)"))
            let main = try #require(entry.faces.first).pixelBox
            let scale = min(faceHeight / main.height, Float(height) / Float(photo.height))
            let scaled = photo.resized(width: Int(Float(photo.width) * scale), height: Int(Float(photo.height) * scale))
            let top = (height - scaled.height) / 2
            var frames: [(jpeg: [UInt8], faces: [PixelBox])] = []
            for index in 0..<Self.frames {
                let left = width - (index + 1) * step
                var canvas = RGBImage(width: width, height: height, pixels: [UInt8](repeating: 96, count: width * height * 3))
                canvas.paste(scaled.cropped(to: PixelBox(x0: 0, y0: 0, x1: Float(min(scaled.width, width - left)), y1: Float(scaled.height))), x: left, y: top)
                let faces = entry.faces.map(\.pixelBox).map {
                    PixelBox(x0: Float(left) + $0.x0 * scale, y0: Float(top) + $0.y0 * scale, x1: Float(left) + $0.x1 * scale, y1: Float(top) + $0.y1 * scale)
                }
                frames.append((try canvas.jpeg(quality: 92), faces))
            }
            return Clip(name: "\(file) at \(Int(faceHeight)) px", frames: frames)
        }
    }

    @Test("per policy, every face in a published snapshot is masked, and the independent detectors find none where they find faces in the source frames")
    func facesEnteringAreMasked() throws {
        var table: [String] = []
        var unmaskedTotal = 0, independentTotal = 0, sourceFaces = 0
        for target in [Vigil_V1_RedactionTarget.faces, .wholePersons] {
            var faces = 0, masked = 0, snapshots = 0, independent = 0
            for faceHeight: Float in [160, 60] {
                for clip in try Self.clips(faceHeight: faceHeight) {
                    let analyzer = try FrameAnalyzer(settings: sharedAnalyzerSettings, logger: testLogger)
                    let camera = DetectStageTests.camera("entering", target: target, snapshotsPerMinute: 600)
                    var published: [Vigil_V1_Snapshot] = []
                    for (index, frame) in clip.frames.enumerated() {
                        let input = DetectStageTests.frame(
                            camera: "entering", sequence: UInt64(index), jpeg: frame.jpeg, atMilliseconds: DetectStageTests.captureMilliseconds + Int64(index) * 200
                        )
                        published += try analyzer.analyze(input, camera: camera).snapshots
                    }
                    for snapshot in published {
                        let truth = clip.frames[Int(snapshot.frameSequence)].faces
                        let visible = truth.map { $0.clipped(width: Self.width, height: Self.height) }.filter { $0.area > 0 }
                        let inView = zip(truth, visible).filter { $1.area >= 0.3 * $0.area }.map(\.1)
                        guard !inView.isEmpty else { continue }
                        snapshots += 1
                        let masks = snapshot.maskedRegions.map {
                            PixelBox(x0: $0.xMin * Float(Self.width), y0: $0.yMin * Float(Self.height), x1: $0.xMax * Float(Self.width), y1: $0.yMax * Float(Self.height))
                        }
                        for face in inView {
                            faces += 1
                            if PersonRecallTests.covered(face, by: masks) >= 0.7 { masked += 1 }
                        }
                        if target == .faces {
                            let source = try RGBImage(encoded: clip.frames[Int(snapshot.frameSequence)].jpeg)
                            sourceFaces += IndependentDetectorTests.annotatedFaces(in: source, truth: inView).isEmpty ? 0 : 1
                        }
                        let found = IndependentDetectorTests.annotatedFaces(in: try RGBImage(encoded: [UInt8](snapshot.redactedJpeg)), truth: inView)
                        independent += found.count
                        #expect(found.isEmpty, "\(clip.name), \(target), frame \(snapshot.frameSequence): \(found.map { "\($0.detector) \($0.box)" })")
                    }
                }
            }
            table.append("  \(target == .faces ? "faces        " : "whole persons") \(snapshots) snapshots, \(faces) faces in view: \(masked) masked ≥ 70 %, \(faces - masked) not; independent detectors found \(independent)")
            unmaskedTotal += faces - masked
            independentTotal += independent
            #expect(snapshots >= 20, "too few snapshots to judge (\(target))")
        }
        print("faces entering the view (3 portraits × 2 sizes, \(Self.frames) frames each, snapshots after a 1 s look-ahead):")
        table.forEach { print($0) }
        print("  independent detectors found faces in \(sourceFaces) of the faces policy's source frames")
        #expect(sourceFaces >= 10, "the independent detectors must see the faces before redaction")
        #expect(unmaskedTotal == 0, "faces published unmasked")
        #expect(independentTotal == 0)
    }
}
