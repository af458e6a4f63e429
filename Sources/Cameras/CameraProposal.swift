import Crypto
import Foundation
import SigningKeys
import SwiftProtobuf
import VigilSchema
import WorkerRuntime

/// An admin's signing identity: the account and its private key (`vigil cameras keygen`).
public struct CameraSigner: Sendable {
    public var account: String
    /// The raw private key (Crypto's key type is not Sendable).
    private let rawKey: Data
    public var key: Curve25519.Signing.PrivateKey {
        // Made from a valid key's raw bytes in `init`.
        try! Curve25519.Signing.PrivateKey(rawRepresentation: rawKey)
    }

    public init(account: String, key: Curve25519.Signing.PrivateKey) {
        self.account = account
        rawKey = key.rawRepresentation
    }

    /// The signer of `keyFile` acting as `account`, checked against the trusted admins: a key
    /// they do not trust, or trust for another account, is refused before anything is signed.
    public static func load(keyFile: String, account: String, admins: CameraAdmins) throws -> CameraSigner {
        let key = try SigningKeys.privateKey(file: keyFile)
        let keyID = SigningKeys.keyID(key.publicKey)
        guard let admin = admins.admin(keyID: keyID) else {
            throw CameraRefusalReason("the key in \(keyFile) (id \(keyID)) is not among the trusted admin keys; add its line (`vigil cameras keygen` printed it) to the admin keys file")
        }
        guard admin.account == account else {
            throw CameraRefusalReason("the key in \(keyFile) belongs to admin \(admin.account), not \(account): act as \(admin.account) (--actor) or use your own key")
        }
        return CameraSigner(account: account, key: key)
    }
}

extension DeclaredTablePlan where Value == Vigil_V1_CameraConfig {
    /// Makes the plan's new versions ready to sign: each says what it replaces — the camera's
    /// last configuration in `last`, deleted ones included, or nothing for a camera never
    /// configured — and a re-created camera is judged against its last configuration.
    ///
    /// A removal becomes a signed deletion: the last configuration again, marked deleted, as
    /// the next version (an unsigned tombstone would be refused).
    public mutating func stampReplaced(last: [String: Vigil_V1_CameraConfig]) {
        for index in entries.indices where Self.signedKinds.contains(entries[index].kind) {
            let previous = last[entries[index].id]
            var config: Vigil_V1_CameraConfig
            if entries[index].kind == .removed {
                guard let previous else { continue }
                config = previous
                config.deleted = true
            } else {
                guard let declared = entries[index].publish else { continue }
                config = declared
            }
            if let previous {
                // Versions go on from the last one, across a deletion and re-creation too.
                config.version = max(config.version, previous.version + 1)
                if entries[index].kind == .added {
                    entries[index].privacyReductions = PrivacyCheck.reductions(from: previous, to: config)
                }
            }
            config.stamp(replacing: previous, effectiveMilliseconds: entries[index].effectiveMilliseconds)
            entries[index].publish = config
        }
    }

    /// The entries that publish a signed record: new versions and deletions.
    static let signedKinds: [Kind] = [.added, .changed, .removed]

    /// Signs every new version with `signer`.
    public mutating func sign(with signer: CameraSigner) throws {
        for index in entries.indices where Self.signedKinds.contains(entries[index].kind) {
            guard var config = entries[index].publish else { continue }
            try CameraSignatures.sign(&config, account: signer.account, key: signer.key)
            entries[index].publish = config
        }
    }
}

/// A camera change waiting for a second admin (`vigil cameras propose` writes it, `vigil
/// cameras approve` adds a signature, `vigil cameras apply --proposal` publishes it): JSON, so
/// both admins can read what they sign.
public struct CameraProposal: Codable, Sendable {
    public struct Change: Codable, Sendable {
        public var camera: String
        public var version: UInt64
        /// What changes, one line each, as `vigil cameras apply` prints it.
        public var differences: [String]
        /// Why it masks less, one line each; empty when it does not.
        public var reductions: [String]
        /// The signed configuration, serialized and in base64: what the approver signs too.
        public var record: String

        public func config() throws -> Vigil_V1_CameraConfig {
            guard let bytes = Data(base64Encoded: record) else { throw CameraRefusalReason("the proposal's record for camera \(camera) is not base64") }
            let config = try Vigil_V1_CameraConfig(serializedBytes: bytes)
            guard config.cameraID == camera else { throw CameraRefusalReason("the proposal's record for camera \(camera) configures camera \(config.cameraID)") }
            return config
        }
    }

    public var proposer: String
    public var created: Date
    public var changes: [Change]

    public init(plan: CameraPlan, proposer: String, created: Date) throws {
        self.proposer = proposer
        self.created = created
        changes = try plan.entries.filter { CameraPlan.signedKinds.contains($0.kind) }.compactMap { entry in
            guard let config = entry.publish else { return nil }
            return Change(
                camera: entry.id, version: config.version, differences: entry.differences, reductions: entry.privacyReductions,
                record: try config.serializedData().base64EncodedString()
            )
        }
    }

    public static func load(_ file: String) throws -> CameraProposal {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        do {
            return try decoder.decode(CameraProposal.self, from: Data(contentsOf: URL(fileURLWithPath: file)))
        } catch {
            throw CameraRefusalReason("\(file) is not a camera proposal (`vigil cameras propose` writes one): \(error)")
        }
    }

    public func write(to file: String) throws {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(self).write(to: URL(fileURLWithPath: file))
    }

    /// Adds `signer`'s signature to every change. Refused when `signer` already signed one of
    /// them (a proposer approving their own change), or when a signature there does not verify.
    public mutating func approve(by signer: CameraSigner, admins: CameraAdmins) throws {
        for index in changes.indices {
            var config = try changes[index].config()
            let signers: Set<String>
            switch CameraSignatures.signers(of: config, trusting: admins) {
            case .success(let accounts): signers = accounts
            case .failure(let reason): throw CameraRefusalReason("camera \(changes[index].camera): the proposed configuration \(reason)")
            }
            guard !signers.contains(signer.account) else {
                throw SelfApproval(account: signer.account, camera: changes[index].camera)
            }
            try CameraSignatures.sign(&config, account: signer.account, key: signer.key)
            changes[index].record = try config.serializedData().base64EncodedString()
        }
    }
}

extension CameraProposal {
    /// A change as its signed record makes it, against the cluster's cameras: what the admins
    /// are shown and what the audit log records — never the proposal's own text, which no
    /// signature covers.
    public struct CheckedChange: Sendable {
        public var camera: String
        public var config: Vigil_V1_CameraConfig
        /// The camera's configuration now, nil when it has none (never configured, or deleted).
        public var current: Vigil_V1_CameraConfig?
        public var differences: [String]
        public var reductions: [String]
    }

    /// Every change recomputed from its signed record against `table` (the cluster's
    /// `cameras.v1`). Throws when a record no longer applies (already published, superseded,
    /// prepared against another configuration) or when the proposal's text says something
    /// else than its record does.
    public func checked(against table: Table<Vigil_V1_CameraConfig>) throws -> [CheckedChange] {
        try changes.map { change in
            let config = try change.config()
            let last = table.lastValue(change.camera)
            if let last {
                guard config.version > last.version else {
                    throw CameraRefusalReason(
                        "camera \(change.camera): the proposal's version \(config.version) is already published or superseded (the camera is at version \(last.version)); a proposal is published once: propose the change again"
                    )
                }
                guard config.replacesDigest == CameraSignatures.digest(last) else {
                    throw CameraRefusalReason(
                        "camera \(change.camera): the proposal was prepared against another configuration than version \(last.version), the camera's last one: propose the change again"
                    )
                }
            } else if !config.replacesDigest.isEmpty {
                throw CameraRefusalReason("camera \(change.camera): the proposal replaces a configuration the cluster does not hold: propose the change again")
            }
            let current = table.current(change.camera)
            let checked = CheckedChange(
                camera: change.camera, config: config, current: current, differences: Self.differences(of: config, current: current),
                reductions: config.deleted ? [] : last.map { PrivacyCheck.reductions(from: $0, to: config) } ?? []
            )
            guard checked.differences == change.differences, checked.reductions == change.reductions else {
                throw CameraRefusalReason(
                    "camera \(change.camera): the proposal's text does not say what its signed record does. It says: \(Self.lines(change.differences, change.reductions)). The record: \(Self.lines(checked.differences, checked.reductions)). Nothing was signed: ask the proposer why, and have them propose again"
                )
            }
            return checked
        }
    }

    static func differences(of config: Vigil_V1_CameraConfig, current: Vigil_V1_CameraConfig?) -> [String] {
        if config.deleted { return [DeclaredValueKind.camera.removal] }
        guard let current else { return ["new camera: \(CameraPlan.summary(config))"] }
        return CameraPlan.differences(from: current, to: config)
    }

    private static func lines(_ differences: [String], _ reductions: [String]) -> String {
        let all = differences + reductions.map { "reduces privacy: it \($0)" }
        return all.isEmpty ? "nothing" : all.map { "“\($0)”" }.joined(separator: ", ")
    }
}

/// An admin approving a change they proposed or already approved.
public struct SelfApproval: Error, CustomStringConvertible {
    public var account: String
    public var camera: String
    public var description: String {
        "\(account) already signed the change of camera \(camera) (proposed or approved it): the two-person rule needs a second, distinct admin to approve"
    }
}

extension CameraRefusalReason {
    public init(_ text: String) { self.description = text }
}

/// Two admins made up in memory, for tables filled in process (benchmarks, stage tests): they
/// sign every record together, so any change is admitted. Trusted by `admins` only; their keys
/// never leave the process.
public struct LocalAdmins: Sendable {
    private let rawKeys: [(account: String, key: Data)]

    public init() {
        rawKeys = ["local-admin-1", "local-admin-2"].map { ($0, Curve25519.Signing.PrivateKey().rawRepresentation) }
    }

    var signers: [(account: String, key: Curve25519.Signing.PrivateKey)] {
        rawKeys.map { ($0.account, try! Curve25519.Signing.PrivateKey(rawRepresentation: $0.key)) }
    }

    public var admins: CameraAdmins { CameraAdmins(signers.map { ($0.account, $0.key.publicKey) }) }

    /// A camera table trusting these admins only.
    public func table() -> Table<Vigil_V1_CameraConfig> { CameraTable.make(admins: admins) }

    /// Applies `config` to `table` in force from `effectiveMilliseconds`, stamped with the
    /// configuration it replaces (the table's last one), numbered after it when its version is
    /// not newer, and signed by both admins.
    @discardableResult
    public func apply(_ config: Vigil_V1_CameraConfig, to table: Table<Vigil_V1_CameraConfig>, effectiveMilliseconds: Int64) throws -> TableApplyOutcome {
        var config = config
        let last = table.lastValue(config.cameraID)
        if let last, config.version <= last.version { config.version = last.version + 1 }
        return table.apply(try CameraTable.record(config: config, replacing: last, signedBy: signers, effectiveMilliseconds: effectiveMilliseconds))
    }
}
