import Foundation
import Logging

/// An object detector an operator plugs into detect's slot (fire, smoke, weapons, vehicles):
/// the model file with its SHA-256, how to feed it, how to read its output, and the class names.
///
/// The slot takes object detectors only. Its outputs are read by one of two detection
/// decoders and nothing else: a class index (named only through `labels`, so no text a model
/// makes reaches a record), a score and a box. A model whose output is not a detection layout
/// — an embedding, a face-recognition or re-identification vector, attributes, text — fails
/// to load. Models identifying individuals or describing personal attributes must not be
/// plugged in (docs/detect.md).
public struct SlotModelDeclaration: Sendable, Equatable, Decodable {
    public enum Decoder: String, Sendable, Decodable {
        /// One output `[1, 1, N, 7]`: rows of image id, class, score, x min, y min, x max, y max
        /// (box normalized to the input), as OpenVINO's and TensorFlow's SSD exports give.
        case ssd
        /// One output `[1, 4 + classes, anchors]` (or transposed): centre x, centre y, width,
        /// height in input pixels, then one score per class, as Ultralytics' YOLOv8 exports give.
        case yolov8
    }

    public struct Input: Sendable, Equatable, Decodable {
        public var width: Int
        public var height: Int
        /// `nchw` (ONNX exports) or `nhwc` (TFLite).
        public var layout: String = "nchw"
        /// `rgb` or `bgr`.
        public var channels: String = "rgb"
        /// value = pixel × scale + bias
        public var scale: Float = 1.0 / 255
        public var bias: Float = 0
        /// Keep the aspect ratio and pad (YOLO), or stretch to the input (SSD).
        public var letterbox = true

        enum CodingKeys: String, CodingKey { case width, height, layout, channels, scale, bias, letterbox }

        public init(from decoder: any Swift.Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            width = try container.decode(Int.self, forKey: .width)
            height = try container.decode(Int.self, forKey: .height)
            layout = try container.decodeIfPresent(String.self, forKey: .layout) ?? layout
            channels = try container.decodeIfPresent(String.self, forKey: .channels) ?? channels
            scale = try container.decodeIfPresent(Float.self, forKey: .scale) ?? scale
            bias = try container.decodeIfPresent(Float.self, forKey: .bias) ?? bias
            letterbox = try container.decodeIfPresent(Bool.self, forKey: .letterbox) ?? letterbox
        }
    }

    public var name: String
    /// Path of the model file (.onnx, .tflite, OpenVINO .xml), absolute or relative to the
    /// slot file's folder.
    public var file: String
    public var sha256: String
    public var decoder: Decoder
    public var input: Input
    /// Class names by the model's class index.
    public var labels: [String]
    public var minimumScore: Float = 0.5
    public var overlap: Float = 0.45

    enum CodingKeys: String, CodingKey {
        case name, file, sha256, decoder, input, labels
        case minimumScore = "min_score", overlap = "nms_overlap"
    }

    public init(from decoder: any Swift.Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decode(String.self, forKey: .name)
        file = try container.decode(String.self, forKey: .file)
        sha256 = try container.decode(String.self, forKey: .sha256)
        self.decoder = try container.decode(Decoder.self, forKey: .decoder)
        input = try container.decode(Input.self, forKey: .input)
        labels = try container.decode([String].self, forKey: .labels)
        minimumScore = try container.decodeIfPresent(Float.self, forKey: .minimumScore) ?? minimumScore
        overlap = try container.decodeIfPresent(Float.self, forKey: .overlap) ?? overlap
    }

    /// Problems with the declaration itself, each naming the key.
    public func problems() -> [String] {
        var problems: [String] = []
        let labelPattern = /^[a-z0-9][a-z0-9 _-]{0,31}$/
        if labels.isEmpty { problems.append("labels: at least one class name is needed") }
        for label in labels where (try? labelPattern.wholeMatch(in: label)) == nil {
            problems.append("labels: \"\(label)\" must be 1 to 32 lowercase letters, digits, spaces, - or _")
        }
        if Set(labels).count != labels.count { problems.append("labels: names must be unique") }
        if !(1...4096).contains(input.width) || !(1...4096).contains(input.height) { problems.append("input: width and height must be 1 to 4096") }
        if !["nchw", "nhwc"].contains(input.layout) { problems.append("input.layout: must be nchw or nhwc") }
        if !["rgb", "bgr"].contains(input.channels) { problems.append("input.channels: must be rgb or bgr") }
        if !(0...1).contains(minimumScore) { problems.append("min_score: must be in [0, 1]") }
        if (try? /^[0-9a-f]{64}$/.wholeMatch(in: sha256)) == nil { problems.append("sha256: must be the file's SHA-256, 64 lowercase hex digits") }
        return problems
    }
}

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
