import Crypto
import Foundation
import SwiftProtobuf
import VigilSchema

/// Signed chain heads: Ed25519 over a chain's newest sequence and hash, so that an auditor who
/// keeps one outside the cluster can later prove that nothing up to it changed.
public enum ChainHeads {
    static let domain = Array("vigil.audit.head.v1".utf8)

    /// The bytes a head's signature covers (documented on `AuditChainHead.signature`).
    static func signedBytes(partition: Int32, sequence: UInt64, hash: [UInt8], signedMilliseconds: Int64) -> [UInt8] {
        domain + withUnsafeBytes(of: partition.bigEndian) { Array($0) } + withUnsafeBytes(of: sequence.bigEndian) { Array($0) } + hash
            + withUnsafeBytes(of: signedMilliseconds.bigEndian) { Array($0) }
    }

    /// "hex of the first 8 bytes of SHA-256 over the raw public key".
    public static func keyID(_ key: Curve25519.Signing.PublicKey) -> String {
        SHA256.hash(data: key.rawRepresentation).prefix(8).map { String(format: "%02x", $0) }.joined()
    }

    public static func sign(
        partition: Int32, sequence: UInt64, hash: [UInt8], at time: Date, with key: Curve25519.Signing.PrivateKey
    ) throws -> Vigil_V1_AuditChainHead {
        var head = Vigil_V1_AuditChainHead()
        head.partition = partition
        head.sequence = sequence
        head.hash = Data(hash)
        let milliseconds = Int64((time.timeIntervalSince1970 * 1_000).rounded(.down))
        head.signedTime = Google_Protobuf_Timestamp(milliseconds: milliseconds)
        head.keyID = keyID(key.publicKey)
        head.signature = try key.signature(for: signedBytes(partition: partition, sequence: sequence, hash: hash, signedMilliseconds: milliseconds))
        return head
    }

    /// Why `head` cannot be trusted with `keys`, or nil when one of them signed it.
    public static func problem(with head: Vigil_V1_AuditChainHead, keys: [Curve25519.Signing.PublicKey]) -> String? {
        guard let key = keys.first(where: { keyID($0) == head.keyID }) else {
            return "the head of partition \(head.partition) at sequence \(head.sequence) was signed with key \(head.keyID), which is not among the trusted keys (\(keys.map(keyID).joined(separator: ", ")))"
        }
        let bytes = signedBytes(partition: head.partition, sequence: head.sequence, hash: Array(head.hash), signedMilliseconds: head.signedTime.milliseconds)
        return key.isValidSignature(head.signature, for: bytes)
            ? nil : "the head of partition \(head.partition) at sequence \(head.sequence) has a signature that does not verify with key \(head.keyID): it was altered or forged"
    }

    /// A key file: the raw 32-byte Ed25519 key, base64 on one line (`vigil audit keygen` writes it).
    public static func privateKey(file: String) throws -> Curve25519.Signing.PrivateKey {
        let text = try String(contentsOfFile: file, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        guard let raw = Data(base64Encoded: text), let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: raw) else {
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
    public static func publicKey(_ reference: String) throws -> Curve25519.Signing.PublicKey {
        let text = FileManager.default.fileExists(atPath: reference)
            ? try String(contentsOfFile: reference, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines) : reference
        guard let raw = Data(base64Encoded: text), let key = try? Curve25519.Signing.PublicKey(rawRepresentation: raw) else {
            throw KeyFileProblem(file: reference, expected: "a public Ed25519 key (32 bytes, base64)")
        }
        return key
    }
}

/// A key reference that does not hold a key; never says what the file holds.
public struct KeyFileProblem: Error, CustomStringConvertible {
    public var file: String
    public var expected: String
    public var description: String { "\(file) does not hold \(expected) in base64 (`vigil audit keygen` writes one)" }
}
