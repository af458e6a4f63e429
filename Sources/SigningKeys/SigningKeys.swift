import Crypto
import Foundation

/// Ed25519 keys as vigil keeps them: a key file holds the raw 32-byte key in base64 on one line
/// (mode 0600 for a private key), and a key is named by its id. Shared by the audit log's
/// signed chain heads and the camera admins' signatures.
public enum SigningKeys {
    /// "hex of the first 8 bytes of SHA-256 over the raw public key".
    public static func keyID(_ key: Curve25519.Signing.PublicKey) -> String {
        SHA256.hash(data: key.rawRepresentation).prefix(8).map { String(format: "%02x", $0) }.joined()
    }

    /// The private key in `file`.
    public static func privateKey(file: String) throws(KeyFileProblem) -> Curve25519.Signing.PrivateKey {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
            throw KeyFileProblem(file: file, expected: "a private Ed25519 key (the file cannot be read)")
        }
        guard let raw = Data(base64Encoded: text.trimmingCharacters(in: .whitespacesAndNewlines)),
              let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: raw)
        else {
            throw KeyFileProblem(file: file, expected: "a private Ed25519 key")
        }
        return key
    }

    /// Makes a new signing key and writes it to `file` (mode 0600); nil when the file could not
    /// be made. Never overwrites: the caller checks the file is not there.
    public static func writeNewKey(to file: String) -> Curve25519.Signing.PrivateKey? {
        let key = Curve25519.Signing.PrivateKey()
        let text = Data((key.rawRepresentation.base64EncodedString() + "\n").utf8)
        return FileManager.default.createFile(atPath: file, contents: text, attributes: [.posixPermissions: 0o600]) ? key : nil
    }

    /// A public key given as base64 text or as a file holding it.
    public static func publicKey(_ reference: String) throws(KeyFileProblem) -> Curve25519.Signing.PublicKey {
        let text = FileManager.default.fileExists(atPath: reference)
            ? ((try? String(contentsOfFile: reference, encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines) : reference
        guard let raw = Data(base64Encoded: text), let key = try? Curve25519.Signing.PublicKey(rawRepresentation: raw) else {
            throw KeyFileProblem(file: reference, expected: "a public Ed25519 key (32 bytes, base64)")
        }
        return key
    }

    /// A public key as the keys files write it: base64 of the raw 32 bytes.
    public static func text(_ key: Curve25519.Signing.PublicKey) -> String {
        key.rawRepresentation.base64EncodedString()
    }
}

/// A key reference that does not hold a key; never says what the file holds.
public struct KeyFileProblem: Error, CustomStringConvertible {
    public var file: String
    public var expected: String
    public var description: String { "\(file) does not hold \(expected) in base64 (`vigil audit keygen` or `vigil cameras keygen` writes one)" }
}
