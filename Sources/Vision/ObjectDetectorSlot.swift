import Foundation
import SlotDeclarations
import Logging

/// A detection of a slot model: a class from its label map, a score and a box.
public struct SlotDetection: Sendable, Equatable {
    public var label: String
    public var detection: Detection
}

/// A loaded slot model: verified, compiled, and checked to give a detection layout.
public final class SlotDetector {
    public let declaration: SlotModelDeclaration
    private let model: InferenceModel
    private let format: InputFormat
    /// The model file, verified against its declared SHA-256.
    public var verifiedModel: VerifiedModel { model.model }

    /// Verifies the file's SHA-256, loads it, runs it once on a blank input and checks that its
    /// output is the declared detection layout for the declared classes. Logs the SHA-256 and
    /// the label map.
    public init(_ declaration: SlotModelDeclaration, relativeTo directory: String, threads: Int, logger: Logger) throws(ModelError) {
        let problems = declaration.problems()
        guard problems.isEmpty else {
            throw ModelError(kind: .unusable, message: "slot model \(declaration.name): \(problems.joined(separator: "; "))")
        }
        let path = declaration.file.hasPrefix("/") ? declaration.file : (directory as NSString).appendingPathComponent(declaration.file)
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ModelError(kind: .missing, message: "slot model \(declaration.name): \(path) does not exist")
        }
        let checksum = sha256Hex(data)
        guard checksum == declaration.sha256 else {
            throw ModelError(
                kind: .wrongChecksum,
                message: "slot model \(declaration.name): \(path) has SHA-256 \(checksum), not the declared \(declaration.sha256); the file was altered or replaced"
            )
        }
        let description = ModelDescription(
            name: declaration.name, file: path, package: "operator-supplied", pathInPackage: "", bytes: data.count, sha256: checksum,
            licence: "operator's", provenance: "operator-supplied (detect's object-detector slot)", detects: declaration.labels.joined(separator: ", ")
        )
        let input = declaration.input
        let shape = input.layout == "nchw" ? [1, 3, input.height, input.width] : [1, input.height, input.width, 3]
        model = try InferenceModel(VerifiedModel(description: description, path: path, sha256: checksum), inputShape: shape, threads: threads, logger: logger)
        format = InputFormat(
            layout: input.layout == "nchw" ? .nchw : .nhwc, keepAspect: input.letterbox, channelsBGR: input.channels == "bgr",
            multiplier: input.scale, bias: input.bias
        )
        self.declaration = declaration
        let outputs = try model.run([Float](repeating: 0, count: model.inputCount))
        if let problem = Self.layoutProblem(outputs.map(\.shape), declaration: declaration) {
            throw ModelError(kind: .unusable, message: "slot model \(declaration.name) cannot be used: \(problem). The slot takes object detectors only")
        }
        logger.info("slot model ready", metadata: ["model": "\(declaration.name)", "sha256": "\(checksum)", "labels": "\(declaration.labels)", "decoder": "\(declaration.decoder)"])
    }

    /// Why output shapes are not the declared layout, or nil when they are.
    static func layoutProblem(_ shapes: [[Int]], declaration: SlotModelDeclaration) -> String? {
        let classes = declaration.labels.count
        guard shapes.count == 1, let shape = shapes.first else {
            return "it has \(shapes.count) outputs \(shapes); a \(declaration.decoder) detector has exactly one"
        }
        switch declaration.decoder {
        case .ssd:
            guard shape.count == 4, shape[0] == 1, shape[1] == 1, shape[3] == 7 else {
                return "its output \(shape) is not the ssd layout [1, 1, N, 7]"
            }
        case .yolov8:
            guard shape.count == 3, shape[0] == 1, shape[1] == 4 + classes || shape[2] == 4 + classes else {
                return "its output \(shape) is not the yolov8 layout [1, 4 + \(classes) classes, anchors] for the \(classes) declared labels"
            }
        }
        return nil
    }

    /// The objects in `image` (which detect has already masked faces in).
    public func detect(in image: RGBImage) throws(ModelError) -> [SlotDetection] {
        let (values, placement) = format.tensor(from: image, width: declaration.input.width, height: declaration.input.height)
        guard let output = try model.run(values).first else { return [] }
        let decoded = Self.decode(output, declaration: declaration)
        let full = PixelBox(x: 0, y: 0, width: Float(image.width), height: Float(image.height))
        return decoded.map { found in
            var found = found
            found.detection.box = placement.imageBox(found.detection.box).clipped(width: image.width, height: image.height)
            return found
        }.filter { $0.detection.box.intersection(full) > 0 }
    }

    /// Detections in input pixels, after per-class non-maximum suppression.
    static func decode(_ output: Tensor, declaration: SlotModelDeclaration) -> [SlotDetection] {
        let classes = declaration.labels.count
        var found: [(label: Int, detection: Detection)] = []
        switch declaration.decoder {
        case .ssd:
            let rows = output.shape[2]
            for row in 0..<rows {
                let value = { (column: Int) in output.values[row * 7 + column] }
                if value(0) < 0 { break }  // image id -1 ends the list
                let label = Int(value(1)), score = value(2)
                guard score >= declaration.minimumScore, (0..<classes).contains(label) else { continue }
                let width = Float(declaration.input.width), height = Float(declaration.input.height)
                let box = PixelBox(x0: value(3) * width, y0: value(4) * height, x1: value(5) * width, y1: value(6) * height)
                found.append((label, Detection(box: box, score: score)))
            }
        case .yolov8:
            let channelsFirst = output.shape[1] == 4 + classes
            let anchors = channelsFirst ? output.shape[2] : output.shape[1]
            let value = { (channel: Int, anchor: Int) in
                channelsFirst ? output.values[channel * anchors + anchor] : output.values[anchor * (4 + classes) + channel]
            }
            for anchor in 0..<anchors {
                var best = 0, score = -Float.infinity
                for label in 0..<classes where value(4 + label, anchor) > score {
                    best = label
                    score = value(4 + label, anchor)
                }
                guard score >= declaration.minimumScore else { continue }
                let (x, y, w, h) = (value(0, anchor), value(1, anchor), value(2, anchor), value(3, anchor))
                found.append((best, Detection(box: PixelBox(x0: x - w / 2, y0: y - h / 2, x1: x + w / 2, y1: y + h / 2), score: score)))
            }
        }
        var kept: [SlotDetection] = []
        for label in Set(found.map(\.label)).sorted() {
            let ofClass = found.filter { $0.label == label }.map(\.detection)
            kept += nonMaximumSuppression(ofClass, threshold: declaration.overlap).map { SlotDetection(label: declaration.labels[label], detection: $0) }
        }
        return kept.sorted { $0.detection.score > $1.detection.score }
    }
}
