// The operator's slot file and its model declarations: plain data, read without loading a
// model, so `vigil rules check` can learn the slot's classes without linking OpenVINO.

import Foundation
import Yams

/// The operator's slot file (`DETECT_SLOT_FILE`): the object detectors plugged into detect.
///
///     models:
///       - name: fire-smoke
///         file: fire-smoke.onnx          # relative to this file's folder
///         sha256: 3f5c…                  # the file's SHA-256; another file is refused
///         decoder: yolov8                # or ssd
///         input: {width: 640, height: 640, layout: nchw, channels: rgb, scale: 0.00392157}
///         labels: [fire, smoke]
///         min_score: 0.5
public enum SlotFile {
    public struct Problem: Error, CustomStringConvertible {
        public var description: String
    }

    public static func load(_ path: String) throws(Problem) -> [SlotModelDeclaration] {
        struct File: Decodable { var models: [SlotModelDeclaration] }
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw Problem(description: "cannot read the slot file \(path): \(error.localizedDescription)")
        }
        let models: [SlotModelDeclaration]
        do {
            models = try YAMLDecoder().decode(File.self, from: text).models
        } catch {
            throw Problem(description: "the slot file \(path) is not valid: \(error)")
        }
        let problems = models.flatMap { model in model.problems().map { "\(path): model \(model.name): \($0)" } }
        guard problems.isEmpty else { throw Problem(description: problems.joined(separator: "\n")) }
        guard Set(models.map(\.name)).count == models.count else { throw Problem(description: "\(path): model names must be unique") }
        return models
    }
}

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
