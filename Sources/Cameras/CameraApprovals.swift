import Crypto
import Foundation
import SigningKeys
import SwiftProtobuf
import VigilSchema
import WorkerRuntime

/// The admins whose signatures the workers and `vigil cameras` trust on camera configuration.
///
/// Configured by reference: `CAMERA_ADMIN_KEYS_FILE` names a file with one admin per line,
/// `<account> <base64 raw Ed25519 public key>` (`vigil cameras keygen` prints the line); `#`
/// starts a comment. Private keys never leave their admins.
public struct CameraAdmins: Sendable {
    public static let environmentKey = "CAMERA_ADMIN_KEYS_FILE"

    public struct Admin: Sendable {
        public var account: String
        public var keyID: String
        /// The raw public key (Crypto's key type is not Sendable).
        let rawKey: Data
        public var key: Curve25519.Signing.PublicKey {
            // Made from a valid key's raw bytes in `CameraAdmins.init`.
            try! Curve25519.Signing.PublicKey(rawRepresentation: rawKey)
        }
    }

    let byKeyID: [String: Admin]

    public init(_ admins: [(account: String, key: Curve25519.Signing.PublicKey)]) {
        byKeyID = Dictionary(
            admins.map { (SigningKeys.keyID($0.key), Admin(account: $0.account, keyID: SigningKeys.keyID($0.key), rawKey: $0.key.rawRepresentation)) },
            uniquingKeysWith: { first, _ in first }
        )
    }

    public var accounts: [String] { Set(byKeyID.values.map(\.account)).sorted() }

    /// The admin whose key has this id.
    public func admin(keyID: String) -> Admin? { byKeyID[keyID] }

    public static func load(file: String) throws(AdminKeysProblem) -> CameraAdmins {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
            throw AdminKeysProblem(file: file, line: nil, problem: "cannot be read")
        }
        var admins: [(String, Curve25519.Signing.PublicKey)] = []
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let fields = line.split(whereSeparator: \.isWhitespace)
            guard !fields.isEmpty else { continue }
            guard fields.count == 2, let raw = Data(base64Encoded: String(fields[1])),
                  let key = try? Curve25519.Signing.PublicKey(rawRepresentation: raw)
            else {
                throw AdminKeysProblem(file: file, line: index + 1, problem: "expected `<account> <base64 Ed25519 public key>` (`vigil cameras keygen` prints it)")
            }
            admins.append((String(fields[0]), key))
        }
        guard !admins.isEmpty else { throw AdminKeysProblem(file: file, line: nil, problem: "names no admin: add one line per admin (`vigil cameras keygen` prints it)") }
        return CameraAdmins(admins)
    }

    /// The admins named by `CAMERA_ADMIN_KEYS_FILE`: without them no camera configuration can be trusted.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws(AdminKeysProblem) -> CameraAdmins {
        guard let file = environment[environmentKey], !file.isEmpty else {
            throw AdminKeysProblem(
                file: "", line: nil,
                problem: "\(environmentKey) is not set: camera configuration is trusted only when signed by an admin; set it to the admin public keys file (`vigil cameras keygen` prints each admin's line)"
            )
        }
        return try load(file: file)
    }
}

/// A trusted admin keys file that cannot be used; names the line, never a key.
public struct AdminKeysProblem: Error, CustomStringConvertible {
    /// Empty when no file is named (none was configured).
    public var file: String
    public var line: Int?
    public var problem: String
    public var description: String { file.isEmpty ? problem : "\(file)\(line.map { ":\($0)" } ?? ""): \(problem)" }
}

/// Admin signatures on a camera configuration (`CameraConfig.signatures`).
public enum CameraSignatures {
    static let domain = Array("vigil.cameras.v1".utf8)

    /// What a signature covers: the domain, then the configuration with no signatures,
    /// serialized with map keys sorted (labels), so a republished record verifies again.
    public static func signedBytes(_ config: Vigil_V1_CameraConfig) throws -> [UInt8] {
        var unsigned = config
        unsigned.signatures = []
        var options = BinaryEncodingOptions()
        options.useDeterministicOrdering = true
        let bytes: [UInt8] = try unsigned.serializedBytes(options: options)
        return domain + bytes
    }

    /// What names a configuration in the next version's `replaces_digest`: SHA-256 of its
    /// signed bytes (signatures aside, so adding an approval does not change it).
    public static func digest(_ config: Vigil_V1_CameraConfig) -> Data {
        Data(SHA256.hash(data: (try? signedBytes(config)) ?? []))
    }

    /// Adds `account`'s signature with `key`; an earlier signature by the same key is replaced.
    public static func sign(_ config: inout Vigil_V1_CameraConfig, account: String, key: Curve25519.Signing.PrivateKey) throws {
        var signature = Vigil_V1_AdminSignature()
        signature.admin = account
        signature.keyID = SigningKeys.keyID(key.publicKey)
        signature.signature = try key.signature(for: signedBytes(config))
        config.signatures.removeAll { $0.keyID == signature.keyID }
        config.signatures.append(signature)
    }

    /// The distinct admin accounts whose signatures verify with `admins`, or why one does not:
    /// a signature the configuration carries must verify, so nobody can pad a record with
    /// junk.
    public static func signers(of config: Vigil_V1_CameraConfig, trusting admins: CameraAdmins) -> Result<Set<String>, CameraRefusalReason> {
        guard !config.signatures.isEmpty else {
            return .failure(CameraRefusalReason("is not signed by any admin; publish camera changes with `vigil cameras apply`, which signs them"))
        }
        let bytes: [UInt8]
        do { bytes = try signedBytes(config) } catch { return .failure(CameraRefusalReason("cannot be serialized to check its signatures: \(error)")) }
        var accounts: Set<String> = []
        for signature in config.signatures {
            guard let admin = admins.admin(keyID: signature.keyID) else {
                return .failure(CameraRefusalReason("is signed with key \(signature.keyID), which is not among the trusted admin keys (\(CameraAdmins.environmentKey))"))
            }
            guard admin.account == signature.admin else {
                return .failure(CameraRefusalReason("carries a signature naming \(signature.admin) made with \(admin.account)'s key \(signature.keyID)"))
            }
            guard admin.key.isValidSignature(signature.signature, for: bytes) else {
                return .failure(CameraRefusalReason(
                    "has a signature by \(admin.account) (key \(signature.keyID)) that does not verify: the configuration was altered after signing, or the signature is for another change"
                ))
            }
            accounts.insert(admin.account)
        }
        return .success(accounts)
    }
}

/// Why a camera record is refused, in words for the operator.
public struct CameraRefusalReason: Error, Equatable, CustomStringConvertible {
    public var description: String
}

extension Vigil_V1_CameraConfig {
    /// The privacy-relevant part, as `replaces` carries it.
    public var privacy: Vigil_V1_CameraPrivacy {
        var privacy = Vigil_V1_CameraPrivacy()
        privacy.privacyMasks = privacyMasks
        privacy.redactionPolicy = redactionPolicy
        return privacy
    }
}

/// The two-person rule where camera configuration takes effect: every worker that reads
/// `cameras.v1` (and `vigil cameras`) admits a record only if
///
/// - admins it trusts signed it, every signature verifying, its effective time included;
/// - it is newer than the camera's last admitted configuration (deleted ones included): an old
///   record re-sent — a replayed approval — is refused;
/// - it names that configuration as the one it replaces (`replaces_digest`, `replaces`), or
///   names none for a camera never configured;
/// - when it masks less than what it replaces (`PrivacyCheck`), two distinct admins signed it.
///
/// A reader never takes a record's word for what it replaces. When it does not hold the
/// configuration a record names (the topic lost that record), or cannot tell that a camera is
/// new (it could not read the partition from its start), one admin's signature is not enough:
/// only two admins may make a change nobody can judge. The camera then stays at the last
/// configuration the reader admitted, or unconfigured (its frames are not analysed), never weaker.
public enum CameraAdmission {
    /// Why `config` may not replace `last` (the reader's last admitted configuration); nil: admitted.
    /// - Parameter readWholePartition: the reader read every record of the partition before
    ///   this one; when false, a camera with no configuration known may have had one.
    public static func refusal(
        of config: Vigil_V1_CameraConfig, last: Vigil_V1_CameraConfig?, readWholePartition: Bool = true, admins: CameraAdmins
    ) -> CameraRefusalReason? {
        // The same record again (a writer republishes its whole set): nothing changes.
        if let last, last == config { return nil }
        let signers: Set<String>
        switch CameraSignatures.signers(of: config, trusting: admins) {
        case .success(let accounts): signers = accounts
        case .failure(let reason): return reason
        }
        guard config.hasEffectiveTime else {
            return CameraRefusalReason("carries no signed effective time (written by an older vigil?): publish it again with `vigil cameras apply`")
        }
        guard let last else {
            return refusalWithoutHistory(of: config, signers: signers, readWholePartition: readWholePartition)
        }
        guard config.version > last.version else {
            return CameraRefusalReason(
                "is version \(config.version), not newer than version \(last.version), the camera's last admitted configuration: an old record sent again (a replayed approval) never takes effect again; prepare a new change with `vigil cameras apply`"
            )
        }
        guard !config.replacesDigest.isEmpty || config.hasReplaces else {
            return CameraRefusalReason(
                "claims to configure a new camera, but the camera's last configuration is version \(last.version): a camera deleted and re-created is judged against its last configuration; prepare the change again with `vigil cameras apply`"
            )
        }
        guard config.replacesDigest == CameraSignatures.digest(last), config.replaces == last.privacy else {
            return CameraRefusalReason(
                "was prepared against another configuration than version \(last.version), the camera's last one: prepare the change again from the current configuration"
            )
        }
        // A deletion publishes nothing: it masks no less than what it deletes.
        let reductions = config.deleted ? [] : PrivacyCheck.reductions(from: last, to: config)
        guard !reductions.isEmpty, signers.count < 2 else { return nil }
        return CameraRefusalReason(
            "masks less than the configuration it replaces (it \(reductions.joined(separator: "; it "))) and is signed by one admin (\(signers.sorted().joined(separator: ", "))): a privacy-reducing change needs two distinct admins (`vigil cameras propose`, then `vigil cameras approve` by another admin)"
        )
    }

    /// A record for a camera the reader holds no configuration of.
    private static func refusalWithoutHistory(of config: Vigil_V1_CameraConfig, signers: Set<String>, readWholePartition: Bool) -> CameraRefusalReason? {
        guard signers.count < 2 else { return nil }
        let one = "one admin (\(signers.sorted().joined(separator: ", ")))"
        if !config.replacesDigest.isEmpty || config.hasReplaces {
            return CameraRefusalReason(
                "replaces a configuration this reader never read (the record is gone from \(CameraTable.topic), which must keep its whole history: cleanup.policy delete, no retention limit), so whether it masks less cannot be judged, and it is signed by \(one): the camera stays unconfigured here until two admins sign a configuration for it or the history is restored"
            )
        }
        guard readWholePartition else {
            return CameraRefusalReason(
                "claims to be the camera's first configuration, but earlier records of its partition are gone (\(CameraTable.topic) must keep its whole history), so an older, stronger configuration may have existed; signed by \(one), it is refused: two admins must sign it"
            )
        }
        return nil
    }
}
