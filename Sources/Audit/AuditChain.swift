import Crypto
import Foundation
import SwiftProtobuf
import VigilSchema

/// The hash chain of `audit.log.v1`: one chain per partition, each record naming the hash of
/// the one before, so that changing, removing or reordering any record breaks it.
public enum AuditChain {
    /// `previous_hash` of a chain's first record.
    public static let genesisHash = [UInt8](repeating: 0, count: 32)

    /// SHA-256 over `previous` ‖ `sequence` (8 bytes, big-endian) ‖ `serializedEvent`: the
    /// formula documented on `AuditRecord.hash`.
    public static func hash(previous: [UInt8], sequence: UInt64, serializedEvent: [UInt8]) -> [UInt8] {
        var hasher = SHA256()
        hasher.update(data: previous)
        hasher.update(data: withUnsafeBytes(of: sequence.bigEndian) { Array($0) })
        hasher.update(data: serializedEvent)
        return Array(hasher.finalize())
    }

    /// The record that appends `serializedEvent` to a chain whose newest record is `tail`
    /// (nil: the chain's first record).
    public static func append(
        _ serializedEvent: [UInt8], after tail: Vigil_V1_AuditRecord?, source: (partition: Int32, offset: Int64), recordedAt: Date
    ) -> Vigil_V1_AuditRecord {
        var record = Vigil_V1_AuditRecord()
        record.sequence = tail.map { $0.sequence + 1 } ?? 0
        record.previousHash = Data(tail.map { Array($0.hash) } ?? genesisHash)
        record.serializedEvent = Data(serializedEvent)
        record.hash = Data(hash(previous: Array(record.previousHash), sequence: record.sequence, serializedEvent: serializedEvent))
        record.recordedTime = Google_Protobuf_Timestamp(date: recordedAt)
        record.sourcePartition = source.partition
        record.sourceOffset = source.offset
        return record
    }
}

/// What `vigil audit verify` found in one chain.
public struct ChainReport: Sendable {
    /// A break in the chain, at the record (offset) where it shows.
    public struct Problem: Sendable, CustomStringConvertible {
        public enum Kind: String, Sendable {
            case malformed, modified, missing, reordered, fork, truncated, headMismatch = "head mismatch"
        }

        public var kind: Kind
        public var offset: Int64?
        public var description: String

        public init(_ kind: Kind, offset: Int64?, _ description: String) {
            self.kind = kind
            self.offset = offset
            self.description = description
        }
    }

    public var partition: Int32
    public var records = 0
    /// The first retained record: when its sequence is not 0, the history before it is gone
    /// from this cluster (retention, or the dev cluster's 5 MiB per partition) — which is
    /// not tampering, and is reported apart.
    public var firstOffset: Int64?
    public var firstSequence: UInt64?
    /// The newest record's sequence and hash.
    public var headSequence: UInt64?
    public var headHash: [UInt8]?
    /// Signed heads this chain was checked against.
    public var headsChecked = 0
    public var problems: [Problem] = []

    public init(partition: Int32) {
        self.partition = partition
    }
}

extension AuditChain {
    /// Checks one partition's records (in offset order) link into one chain, and reaches every
    /// signed head given for it (`ChainVerifier`, fed the records at once).
    public static func verify(
        partition: Int32, records: [(offset: Int64, value: [UInt8])], heads: [Vigil_V1_AuditChainHead] = []
    ) -> ChainReport {
        var verifier = ChainVerifier(partition: partition, heads: heads)
        for (offset, value) in records { verifier.add(offset: offset, value: value) }
        return verifier.report()
    }

    /// Checks every chain of a log: each partition in `log` (an empty one too) and each one a
    /// head names. A chain deleted whole leaves no record to find it by, in an export not even
    /// an empty partition: only its signed head names it, so heads choose chains too.
    public static func verify(log: [Int32: [(offset: Int64, value: [UInt8])]], heads: [Vigil_V1_AuditChainHead]) -> [ChainReport] {
        Set(log.keys).union(heads.map(\.partition)).sorted().map { partition in
            verify(partition: partition, records: log[partition] ?? [], heads: heads)
        }
    }
}

/// One chain checked record by record as it is read, in memory bounded by its signed heads
/// (a log kept for ever is never held whole). Reports each problem at the first record that
/// shows it: a record whose hash does not match its content (modified), a sequence gap
/// (missing), a sequence going back (reordered), two records with one sequence (a fork: two
/// writers), a record that does not name its predecessor's hash (the predecessor was changed
/// and rehashed, or replaced), and a chain that ends before, or differs at, a signed head.
public struct ChainVerifier: Sendable {
    private var state: ChainReport
    private let heads: [Vigil_V1_AuditChainHead]
    private var previous: (offset: Int64, record: Vigil_V1_AuditRecord)?
    /// Hashes of the sequences a head names: all the history a head check needs.
    private var headHashes: [UInt64: [UInt8]] = [:]
    private let wanted: Set<UInt64>

    /// - Parameter heads: trusted signed heads; those of other partitions are ignored.
    public init(partition: Int32, heads: [Vigil_V1_AuditChainHead] = []) {
        state = ChainReport(partition: partition)
        self.heads = heads.filter { $0.partition == partition }
        wanted = Set(self.heads.map(\.sequence))
    }

    /// The chain's next record, in offset order.
    public mutating func add(offset: Int64, value: [UInt8]) {
        guard let record = try? Vigil_V1_AuditRecord(serializedBytes: value) else {
            state.problems.append(.init(.malformed, offset: offset, "offset \(offset) is not an audit record"))
            return
        }
        state.records += 1
        if state.firstOffset == nil {
            state.firstOffset = offset
            state.firstSequence = record.sequence
        }
        let computed = AuditChain.hash(previous: Array(record.previousHash), sequence: record.sequence, serializedEvent: Array(record.serializedEvent))
        if computed != Array(record.hash) {
            state.problems.append(.init(.modified, offset: offset, "sequence \(record.sequence) at offset \(offset) was modified: its hash does not match its content"))
        }
        if let (previousOffset, before) = previous {
            if record.sequence == before.sequence {
                state.problems.append(.init(.fork, offset: offset, "sequence \(record.sequence) appears twice (offsets \(previousOffset) and \(offset)): two writers forked the chain"))
            } else if record.sequence < before.sequence {
                state.problems.append(.init(.reordered, offset: offset, "sequence \(record.sequence) at offset \(offset) comes after sequence \(before.sequence): records were reordered"))
            } else if record.sequence > before.sequence + 1 {
                state.problems.append(.init(.missing, offset: offset, "sequences \(before.sequence + 1)…\(record.sequence - 1) are missing before offset \(offset)"))
            } else if record.previousHash != before.hash {
                state.problems.append(.init(.modified, offset: previousOffset, "sequence \(before.sequence) at offset \(previousOffset) was changed or replaced: sequence \(record.sequence) names another hash"))
            }
        } else if record.sequence == 0, Array(record.previousHash) != AuditChain.genesisHash {
            state.problems.append(.init(.modified, offset: offset, "sequence 0 at offset \(offset) does not start from the genesis hash"))
        }
        if wanted.contains(record.sequence) { headHashes[record.sequence] = Array(record.hash) }
        if previous == nil || record.sequence >= previous!.record.sequence { previous = (offset, record) }
    }

    /// The chain as read so far, checked against its heads.
    public func report() -> ChainReport {
        var report = state
        report.headSequence = previous?.record.sequence
        report.headHash = previous.map { Array($0.record.hash) }
        for head in heads {
            report.headsChecked += 1
            guard let last = report.headSequence else {
                // Retention drops a chain's oldest records, never its newest: none left under a signed head is a chain deleted whole.
                report.problems.append(.init(.truncated, offset: nil, "the chain holds no records, but a head signed at \(head.signedTime.date.formatted(.iso8601)) names sequence \(head.sequence): the whole chain up to it was deleted"))
                continue
            }
            guard last >= head.sequence else {
                report.problems.append(.init(.truncated, offset: nil, "the chain ends at sequence \(last) but a head signed at \(head.signedTime.date.formatted(.iso8601)) names sequence \(head.sequence): records were cut off"))
                continue
            }
            if let first = report.firstSequence, head.sequence < first { continue }  // before what is retained
            if headHashes[head.sequence] != Array(head.hash) {
                report.problems.append(.init(.headMismatch, offset: nil, "sequence \(head.sequence) differs from the head signed at \(head.signedTime.date.formatted(.iso8601)): history up to it was rewritten"))
            }
        }
        return report
    }
}
