import Foundation
import Testing
import Vision
@testable import Detect

/// Posture on real frames: the people of vtest.avi are all walking or standing (looked at,
/// frame by frame, when their boxes were drawn); the same frames turned a quarter round show
/// the same people lying. Each hand-drawn person the detector finds is judged.
@Suite("Posture on vtest.avi", .serialized)
struct PostureTests {
    /// The image turned 90° clockwise, and where a box of the original lands in it.
    static func turned(_ image: RGBImage) -> RGBImage {
        var pixels = [UInt8](repeating: 0, count: image.pixels.count)
        let (width, height) = (image.width, image.height)
        for y in 0..<height {
            for x in 0..<width {
                let target = (x * height + (height - 1 - y)) * 3
                let source = (y * width + x) * 3
                pixels[target] = image.pixels[source]
                pixels[target + 1] = image.pixels[source + 1]
                pixels[target + 2] = image.pixels[source + 2]
            }
        }
        return RGBImage(width: height, height: width, pixels: pixels)
    }

    static func turned(_ box: PixelBox, imageHeight: Int) -> PixelBox {
        PixelBox(x0: Float(imageHeight) - box.y1, y0: box.x0, x1: Float(imageHeight) - box.y0, y1: box.x1)
    }

    @Test("found people are judged upright; turned a quarter round, lying")
    func uprightAndLying() throws {
        let annotations = try PersonAnnotations.load()
        let analyzer = try FrameAnalyzer(settings: sharedAnalyzerSettings, logger: testLogger)
        var upright: [Posture: Int] = [:], lying: [Posture: Int] = [:]
        for frame in annotations.frames {
            let image = try loadImage(testMedia.appendingPathComponent("vtest/\(frame.file)"))
            let people = try analyzer.detect(in: image, target: .faces, motion: MotionDetector()).people
            let turnedImage = Self.turned(image)
            let turnedPeople = try analyzer.detect(in: turnedImage, target: .faces, motion: MotionDetector()).people
            for person in frame.persons {
                if let match = people.first(where: { $0.detection.box.intersectionOverUnion(person.pixelBox) >= matchIoU }) {
                    upright[match.posture, default: 0] += 1
                }
                let turnedBox = Self.turned(person.pixelBox, imageHeight: image.height)
                if let match = turnedPeople.first(where: { $0.detection.box.intersectionOverUnion(turnedBox) >= matchIoU }) {
                    lying[match.posture, default: 0] += 1
                }
            }
        }
        let total = { (counts: [Posture: Int]) in counts.values.reduce(0, +) }
        print("posture of found people on vtest.avi: upright frames \(upright); turned a quarter round \(lying)")
        #expect(total(upright) >= 20 && total(lying) >= 10, "enough people found to judge")
        // Measured with inference pinned to f32 (2026-12-07), the same on an AVX-512 CPU and with
        // oneDNN capped at AVX2: upright 35 of 36, 1 unknown; turned 31 of 38 lying, 4 unknown,
        // 3 wrongly upright (0.816 and 0.079). Floors one or two people under that: a drop is a
        // regression. (Unpinned, CPUs with bf16 measured 35 of 39 lying: the old floors.)
        #expect(Float(upright[.lying, default: 0]) / Float(total(upright)) <= 0.06, "standing people called lying")
        #expect(Float(lying[.upright, default: 0]) / Float(total(lying)) <= 0.12, "lying people called upright")
        #expect(Float(upright[.upright, default: 0]) / Float(total(upright)) >= 0.9)
        #expect(Float(lying[.lying, default: 0]) / Float(total(lying)) >= 0.76)
    }
}
