import Foundation
import Vision
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
