import Foundation
import Logging

/// The anchor grid of MediaPipe's single-shot detectors (BlazeFace, the pose detector), as its
/// SsdAnchorsCalculator builds it with `fixed_anchor_size`: centres only, in [0, 1].
struct SSDAnchors {
    /// (x, y) centre of each anchor, in the order the model's outputs use.
    let centers: [(x: Float, y: Float)]

    /// `strides`: one per layer; consecutive layers with the same stride share a grid, each
    /// adding one anchor per location (two when `interpolatedScale` is on).
    init(inputSize: Int, strides: [Int], interpolatedScale: Bool) {
        var centers: [(x: Float, y: Float)] = []
        var layer = 0
        while layer < strides.count {
            var perLocation = 0
            var next = layer
            while next < strides.count, strides[next] == strides[layer] {
                perLocation += interpolatedScale ? 2 : 1
                next += 1
            }
            let cells = (inputSize + strides[layer] - 1) / strides[layer]
            for y in 0..<cells {
                for x in 0..<cells {
                    for _ in 0..<perLocation {
                        centers.append(((Float(x) + 0.5) / Float(cells), (Float(y) + 0.5) / Float(cells)))
                    }
                }
            }
            layer = next
        }
        self.centers = centers
    }
}

/// One decoded SSD detection in input pixels: its box and keypoints.
struct SSDDetection {
    var box: PixelBox
    var keypoints: [(x: Float, y: Float)]
    var score: Float
}

/// Decodes a MediaPipe SSD head: `regressors` [anchors × values] holding (cx, cy, w, h, then
/// keypoint x, y pairs) in input pixels relative to the anchor, `scores` [anchors] as logits.
func decodeSSD(
    regressors: [Float], scores: [Float], anchors: SSDAnchors, valuesPerAnchor: Int, keypointCount: Int,
    inputSize: Int, minimumScore: Float
) -> [SSDDetection] {
    let size = Float(inputSize)
    var detections: [SSDDetection] = []
    for (index, anchor) in anchors.centers.enumerated() {
        // MediaPipe clips logits to ±100 before the sigmoid.
        let score = 1 / (1 + exp(-min(max(scores[index], -100), 100)))
        guard score >= minimumScore else { continue }
        let values = regressors[(index * valuesPerAnchor)..<((index + 1) * valuesPerAnchor)]
        let base = values.startIndex
        let centerX = (values[base] / size + anchor.x) * size, centerY = (values[base + 1] / size + anchor.y) * size
        let width = values[base + 2], height = values[base + 3]
        let keypoints = (0..<keypointCount).map { point in
            ((values[base + 4 + 2 * point] / size + anchor.x) * size, (values[base + 5 + 2 * point] / size + anchor.y) * size)
        }
        detections.append(SSDDetection(
            box: PixelBox(x0: centerX - width / 2, y0: centerY - height / 2, x1: centerX + width / 2, y1: centerY + height / 2),
            keypoints: keypoints, score: score
        ))
    }
    return detections
}

/// A MediaPipe single-shot detector (BlazeFace, the pose detector): its model, anchors and
/// output layout, run on a whole image or a region of it.
final class MediaPipeSSD {
    let name: String
    let inputSize: Int
    let valuesPerAnchor: Int
    let keypointCount: Int
    private let network: InferenceModel
    private let anchors: SSDAnchors
    var verifiedModel: VerifiedModel { network.model }

    init(
        manifest: ModelManifest, name: String, inputSize: Int, strides: [Int], interpolatedScale: Bool, valuesPerAnchor: Int,
        keypointCount: Int, threads: Int, logger: Logger
    ) throws(ModelError) {
        network = try InferenceModel(try manifest.verified(name), threads: threads, logger: logger)
        anchors = SSDAnchors(inputSize: inputSize, strides: strides, interpolatedScale: interpolatedScale)
        self.name = name
        self.inputSize = inputSize
        self.valuesPerAnchor = valuesPerAnchor
        self.keypointCount = keypointCount
    }

    /// Detections in input pixels, and how `region` (default: the whole image) was placed there.
    func detect(in image: RGBImage, region: PixelBox? = nil, minimumScore: Float) throws(ModelError) -> (detections: [SSDDetection], placement: Placement) {
        let (input, placement) = InputFormat.mediaPipe.tensor(from: image, region: region, width: inputSize, height: inputSize)
        let outputs = try network.run(input)
        guard let regressors = outputs.first(where: { $0.shape.last == valuesPerAnchor }), let scores = outputs.first(where: { $0.shape.last == 1 }) else {
            throw ModelError(kind: .unusable, message: "model \(name) lacks its box (×\(valuesPerAnchor)) and score outputs")
        }
        let decoded = decodeSSD(
            regressors: regressors.values, scores: scores.values, anchors: anchors, valuesPerAnchor: valuesPerAnchor,
            keypointCount: keypointCount, inputSize: inputSize, minimumScore: minimumScore
        )
        return (decoded, placement)
    }
}
