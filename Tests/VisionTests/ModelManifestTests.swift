import Foundation
import Testing
@testable import Vision

/// The models as `make test` fetched them (Scripts/install-deps runs Scripts/fetch-models).
@Suite("Models with provenance")
struct ModelManifestTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let models = repository.appendingPathComponent("models").path

    @Test("every shipped model is described (package, licence, provenance, what it detects) and its fetched file matches its SHA-256")
    func shippedModelsVerify() throws {
        let manifest = try ModelManifest(directory: Self.models)
        #expect(Set(manifest.models.map(\.name)) == ["face-full-range", "face-short-range", "person-pose-detector", "face-centerface"])
        for model in manifest.models {
            #expect(!model.licence.isEmpty && !model.provenance.isEmpty && !model.detects.isEmpty && model.package.contains("=="))
            let verified = try manifest.verified(model.name)
            #expect(verified.sha256 == model.sha256)
        }
    }

    /// A copy of the models folder (manifest and files) to break.
    static func copyOfModels() throws -> String {
        let copy = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-models-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: copy, withIntermediateDirectories: true)
        for name in ["manifest.json", "face_detection_short_range.tflite"] {
            try FileManager.default.copyItem(atPath: "\(models)/\(name)", toPath: copy.appendingPathComponent(name).path)
        }
        return copy.path
    }

    @Test("a missing model file is an error naming the file and the command that fetches it")
    func missingModel() throws {
        let manifest = try ModelManifest(directory: try Self.copyOfModels())
        #expect(throws: ModelError.self) { try manifest.verified("face-full-range") }
        do {
            _ = try manifest.verified("face-full-range")
        } catch {
            #expect(error.kind == .missing)
            #expect(error.message.contains("face_detection_full_range_sparse.tflite") && error.message.contains("Scripts/fetch-models"))
        }
    }

    @Test("an altered model file (same size, one byte changed) is refused with both checksums")
    func alteredModel() throws {
        let directory = try Self.copyOfModels()
        let path = "\(directory)/face_detection_short_range.tflite"
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        bytes[bytes.count / 2] ^= 0xFF
        try bytes.write(to: URL(fileURLWithPath: path))
        let manifest = try ModelManifest(directory: directory)
        do {
            _ = try manifest.verified("face-short-range")
            Issue.record("an altered model verified")
        } catch {
            #expect(error.kind == .wrongChecksum)
            #expect(error.message.contains("bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8") && error.message.contains("altered"))
        }
        var truncated = bytes
        truncated.removeLast()
        try truncated.write(to: URL(fileURLWithPath: path))
        #expect(throws: ModelError(kind: .wrongSize, message: "model face-short-range at \(path) is 229713 bytes, not the 229714 its manifest says; run Scripts/fetch-models (it downloads mediapipe==0.10.14 from PyPI and checks the file)")) {
            try manifest.verified("face-short-range")
        }
    }

    @Test("the checksums built into the binary are the shipped manifest's")
    func builtInChecksums() throws {
        let manifest = try ModelManifest(directory: Self.models)
        #expect(ShippedModels.sha256 == Dictionary(uniqueKeysWithValues: manifest.models.map { ($0.name, $0.sha256) }))
    }

    @Test("a models folder whose own manifest vouches for another file (DETECT_MODELS_DIR elsewhere) is refused: only the shipped models redact")
    func substitutedModelWithItsOwnManifest() throws {
        // Another model's file in CenterFace's place, with a manifest written to match it.
        let directory = try Self.copyOfModels()
        let substitute = try Data(contentsOf: URL(fileURLWithPath: "\(directory)/face_detection_short_range.tflite"))
        try substitute.write(to: URL(fileURLWithPath: "\(directory)/centerface.onnx"))
        let checksum = sha256Hex(substitute)
        let original = try String(contentsOfFile: "\(directory)/manifest.json", encoding: .utf8)
        let centerface = try #require(try ModelManifest(directory: Self.models).models.first { $0.name == "face-centerface" })
        try original.replacingOccurrences(of: centerface.sha256, with: checksum).replacingOccurrences(of: "\(centerface.bytes)", with: "\(substitute.count)")
            .write(toFile: "\(directory)/manifest.json", atomically: true, encoding: .utf8)
        let manifest = try ModelManifest(directory: directory)
        do {
            _ = try manifest.verified("face-centerface")
            Issue.record("a substituted face model verified against its folder's own manifest")
        } catch {
            #expect(error.kind == .notShipped)
            #expect(error.message.contains(centerface.sha256) && error.message.contains(checksum))
        }
    }

    @Test("asking for a model the manifest does not list names the ones it does")
    func unknownModel() throws {
        let manifest = try ModelManifest(directory: Self.models)
        #expect(throws: ModelError.self) { try manifest.verified("ssdlite-person") }
    }
}
