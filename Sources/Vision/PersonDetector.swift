import Foundation
import Logging

/// A coarse body posture, judged from the body axis the pose detector predicts.
public enum Posture: Sendable, Equatable {
    case upright
    case lying
    /// The axis is between the two (bending, sitting, a fall in progress): not called.
    case unknown

    /// Upright within 35° of vertical, lying within 30° of horizontal, unknown between.
    public init(axisX: Float, axisY: Float) {
        let length = (axisX * axisX + axisY * axisY).squareRoot()
        guard length > 0 else {
            self = .unknown
            return
        }
        let vertical = abs(axisY) / length  // cosine of the angle from vertical
        if vertical >= 0.819 {
            self = .upright
        } else if vertical <= 0.5 {
            self = .lying
        } else {
            self = .unknown
        }
    }
}

/// A person the pose detector found: box, score and posture; the keypoints stay here.
public struct Person: Sendable, Equatable {
    public var detection: Detection
    public var posture: Posture

    public init(detection: Detection, posture: Posture) {
        self.detection = detection
        self.posture = posture
    }
}

/// Persons from MediaPipe's pose detector (Apache-2.0), the only person model vigil ships.
/// It finds a person by the head and predicts the hip centre and a circle around the whole
/// body; the person box bounds the body those give. The keypoints are
/// used here and dropped: they never leave detect.
///
/// The whole 224 × 224 input covers the frame, so distant people (under about 100 px tall in
/// a 576-line frame) are often missed: `tiles` > 1 runs the model on overlapping tiles too.
public final class PersonDetector {
    public static let modelName = "person-pose-detector"
    private let model: MediaPipeSSD
    public let threshold: Float
    /// Tiles per axis in addition to the whole frame (0: whole frame only).
    public let tiles: Int

    public init(manifest: ModelManifest, threshold: Float = 0.5, tiles: Int = 0, threads: Int, logger: Logger) throws(ModelError) {
        model = try MediaPipeSSD(
            manifest: manifest, name: Self.modelName, inputSize: 224, strides: [8, 16, 32, 32, 32], interpolatedScale: true,
            valuesPerAnchor: 12, keypointCount: 4, threads: threads, logger: logger
        )
        self.threshold = threshold
        self.tiles = tiles
    }

    /// The model file, verified against the manifest.
    public var verifiedModel: VerifiedModel { model.verifiedModel }

    public func persons(in image: RGBImage) throws(ModelError) -> [Detection] {
        try people(in: image).map(\.detection)
    }

    /// The persons with their posture.
    public func people(in image: RGBImage) throws(ModelError) -> [Person] {
        try people(in: image, within: nil).people
    }

    /// The persons with their posture; with `attention`, tiles touching none of its boxes are
    /// skipped (motion gating), and how many model runs that saved.
    public func people(in image: RGBImage, within attention: [PixelBox]?) throws(ModelError) -> (people: [Person], skippedRuns: Int) {
        var skipped = 0
        var detections = try persons(in: image, region: PixelBox(x: 0, y: 0, width: Float(image.width), height: Float(image.height)))
        if tiles > 0 {
            // Overlapping square-ish tiles, each half again as large as its grid cell.
            let cellWidth = Float(image.width) / Float(tiles), cellHeight = Float(image.height) / Float(tiles)
            for row in 0..<tiles {
                for column in 0..<tiles {
                    let tile = PixelBox(x: Float(column) * cellWidth, y: Float(row) * cellHeight, width: cellWidth, height: cellHeight)
                        .scaled(by: 1.5).clipped(width: image.width, height: image.height)
                    if let attention, !attention.contains(where: { $0.intersection(tile) > 0 }) {
                        skipped += 1
                        continue
                    }
                    detections += try persons(in: image, region: tile)
                }
            }
        }
        return (nonMaximumSuppression(detections, threshold: 0.4, by: \.detection), skipped)
    }

    private func persons(in image: RGBImage, region: PixelBox) throws(ModelError) -> [Person] {
        let (decoded, placement) = try model.detect(in: image, region: region, minimumScore: threshold)
        return decoded.map { detection in
            let hip = placement.imagePoint(x: detection.keypoints[0].x, y: detection.keypoints[0].y)
            let edge = placement.imagePoint(x: detection.keypoints[1].x, y: detection.keypoints[1].y)
            // The circle's radius r sets the body's size and hip → edge its direction (towards
            // the head when upright): on hand-drawn boxes (vtest.avi) the body spans about
            // 1.7 r along that axis and 0.6 r across it. The box bounds that rotated rectangle.
            let axisX = edge.x - hip.x, axisY = edge.y - hip.y
            let radius = (axisX * axisX + axisY * axisY).squareRoot()
            let (cosine, sine) = radius > 0 ? (axisX / radius, axisY / radius) : (0, -1)
            let halfLength = 0.85 * radius, halfWidth = 0.3 * radius
            let extentX = abs(cosine) * halfLength + abs(sine) * halfWidth
            let extentY = abs(sine) * halfLength + abs(cosine) * halfWidth
            let body = PixelBox(x0: hip.x - extentX, y0: hip.y - extentY, x1: hip.x + extentX, y1: hip.y + extentY)
            let origin = region.clipped(width: image.width, height: image.height).integerRect
            let shifted = PixelBox(x0: body.x0 + Float(origin.0), y0: body.y0 + Float(origin.1), x1: body.x1 + Float(origin.0), y1: body.y1 + Float(origin.1))
            return Person(
                detection: Detection(box: shifted.clipped(width: image.width, height: image.height), score: detection.score),
                posture: Posture(axisX: axisX, axisY: axisY)
            )
        }
    }
}

extension RGBImage {
    /// The pixels inside `region` (rounded outwards, clipped), as a new image.
    public func cropped(to region: PixelBox) -> RGBImage {
        let (x, y, w, h) = region.clipped(width: width, height: height).integerRect
        let left = Int(x), top = Int(y), cropWidth = max(1, Int(w)), cropHeight = max(1, Int(h))
        if left == 0, top == 0, cropWidth == width, cropHeight == height { return self }
        var cropped = [UInt8](repeating: 0, count: cropWidth * cropHeight * 3)
        for row in 0..<min(cropHeight, height - top) {
            let source = ((top + row) * width + left) * 3
            let count = min(cropWidth, width - left) * 3
            cropped.replaceSubrange((row * cropWidth * 3)..<(row * cropWidth * 3 + count), with: pixels[source..<(source + count)])
        }
        return RGBImage(width: cropWidth, height: cropHeight, pixels: cropped)
    }
}
