import Crypto
import Foundation
import SigningKeys
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

    public static func sign(
        partition: Int32, sequence: UInt64, hash: [UInt8], at time: Date, with key: Curve25519.Signing.PrivateKey
    ) throws -> Vigil_V1_AuditChainHead {
        var head = Vigil_V1_AuditChainHead()
        head.partition = partition
        head.sequence = sequence
        head.hash = Data(hash)
        let milliseconds = Int64((time.timeIntervalSince1970 * 1_000).rounded(.down))
        head.signedTime = Google_Protobuf_Timestamp(milliseconds: milliseconds)
        head.keyID = SigningKeys.keyID(key.publicKey)
        head.signature = try key.signature(for: signedBytes(partition: partition, sequence: sequence, hash: hash, signedMilliseconds: milliseconds))
        return head
    }

    /// Why `head` cannot be trusted with `keys`, or nil when one of them signed it.
    public static func problem(with head: Vigil_V1_AuditChainHead, keys: [Curve25519.Signing.PublicKey]) -> String? {
        guard let key = keys.first(where: { SigningKeys.keyID($0) == head.keyID }) else {
            return "the head of partition \(head.partition) at sequence \(head.sequence) was signed with key \(head.keyID), which is not among the trusted keys (\(keys.map(SigningKeys.keyID).joined(separator: ", ")))"
        }
        let bytes = signedBytes(partition: head.partition, sequence: head.sequence, hash: Array(head.hash), signedMilliseconds: head.signedTime.milliseconds)
        return key.isValidSignature(head.signature, for: bytes)
            ? nil : "the head of partition \(head.partition) at sequence \(head.sequence) has a signature that does not verify with key \(head.keyID): it was altered or forged"
    }
}
