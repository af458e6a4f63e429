import Crypto
import Foundation
import Logging
import SwiftProtobuf
import Testing
import VigilSchema
import WorkerRuntime
@testable import Audit

/// The audit log's chains and signed heads: every kind of tampering found at the record that
/// shows it, and the sequencer recording each event once.
@Suite("Audit chains and heads")
struct AuditChainTests {
    /// The sequencer's key in these tests (a fixed one: keys are not Sendable, so not shared).
    static var key: Curve25519.Signing.PrivateKey { try! Curve25519.Signing.PrivateKey(rawRepresentation: Data(repeating: 7, count: 32)) }

    static func event(_ number: Int, kind: Vigil_V1_AuditEventKind = .ruleChanged) -> [UInt8] {
        var event = Vigil_V1_AuditEvent()
        event.eventID = "event-\(number)"
        event.kind = kind
        event.actor = "admin-\(number % 2)"
        event.subject = "rule:r\(number)"
        event.detail = "added: version 1"
        event.eventTime = Google_Protobuf_Timestamp(seconds: 1_800_000_000 + Int64(number))
        return try! event.serializedBytes()
    }

    /// A chain of `count` records at offsets 100, 101, …
    static func chain(_ count: Int) -> [(offset: Int64, record: Vigil_V1_AuditRecord)] {
        var records: [(Int64, Vigil_V1_AuditRecord)] = []
        for number in 0..<count {
            let record = AuditChain.append(event(number), after: records.last?.1, source: (0, Int64(number)), recordedAt: Date(timeIntervalSince1970: 1_800_000_000))
            records.append((Int64(100 + number), record))
        }
        return records
    }

    static func bytes(_ records: [(offset: Int64, record: Vigil_V1_AuditRecord)]) -> [(offset: Int64, value: [UInt8])] {
        records.map { ($0.offset, try! $0.record.serializedBytes()) }
    }

    static func head(of records: [(offset: Int64, record: Vigil_V1_AuditRecord)], at index: Int, key: Curve25519.Signing.PrivateKey = key) throws -> Vigil_V1_AuditChainHead {
        try ChainHeads.sign(partition: 0, sequence: records[index].record.sequence, hash: Array(records[index].record.hash), at: Date(), with: key)
    }

    @Test("an untouched chain verifies, and reaches its signed head")
    func untouched() throws {
        let records = Self.chain(10)
        let report = AuditChain.verify(partition: 0, records: Self.bytes(records), heads: [try Self.head(of: records, at: 9)])
        #expect(report.problems.isEmpty, "\(report.problems)")
        #expect(report.records == 10 && report.headSequence == 9 && report.headsChecked == 1)
        // The documented formula, computed here independently.
        var data = Data(repeating: 0, count: 32)
        data.append(contentsOf: [0, 0, 0, 0, 0, 0, 0, 0])
        data.append(contentsOf: Self.event(0))
        #expect(Array(records[0].record.hash) == Array(SHA256.hash(data: data)))
    }

    @Test("one flipped byte, one record deleted, two swapped, a rewritten record rehashed, two writers: each found where it shows",
          arguments: ["flip", "delete", "swap", "rehash", "fork", "malformed"])
    func tampering(_ how: String) throws {
        var records = Self.bytes(Self.chain(10))
        let expected: (ChainReport.Problem.Kind, Int64)
        switch how {
        case "flip":
            var record = try Vigil_V1_AuditRecord(serializedBytes: records[4].value)
            record.serializedEvent[record.serializedEvent.count - 3] ^= 0x01
            records[4].value = try record.serializedBytes()
            expected = (.modified, 104)
        case "delete":
            records.remove(at: 5)
            expected = (.missing, 106)
        case "swap":
            records.swapAt(3, 4)
            records[3].offset = 103
            records[4].offset = 104
            expected = (.reordered, 104)
        case "rehash":
            // Someone who can write the topic edits record 4 and recomputes its hash: record 5 still names the old one.
            var record = try Vigil_V1_AuditRecord(serializedBytes: records[4].value)
            var event = try Vigil_V1_AuditEvent(serializedBytes: record.serializedEvent)
            event.actor = "someone-else"
            record.serializedEvent = try event.serializedBytes()
            record.hash = Data(AuditChain.hash(previous: Array(record.previousHash), sequence: record.sequence, serializedEvent: Array(record.serializedEvent)))
            records[4].value = try record.serializedBytes()
            expected = (.modified, 104)
        case "fork":
            // A stale writer appends its own sequence 6 after the real one.
            let before = try Vigil_V1_AuditRecord(serializedBytes: records[5].value)
            let other = AuditChain.append(Self.event(60), after: before, source: (0, 99), recordedAt: Date())
            records.insert((106, try other.serializedBytes()), at: 7)
            for index in 7..<records.count { records[index].offset = Int64(100 + index) }
            expected = (.fork, 107)
        default:
            records[2].value = [0xFF, 0xFF, 0x01]
            expected = (.malformed, 102)
        }
        let report = AuditChain.verify(partition: 0, records: records)
        // Swapped records show as a gap where the later one comes first, then as the reordering.
        #expect(report.problems.contains { $0.kind == expected.0 && $0.offset == expected.1 }, "\(how): \(report.problems)")
        #expect(report.problems.allSatisfy { ($0.offset ?? 0) >= expected.1 - 1 }, "nothing reported before the tampering: \(report.problems)")
    }

    @Test("a chain cut off after a signed head, or rewritten before it, is found against the head; a chain whose oldest records were not retained is not tampering")
    func heads() throws {
        let records = Self.chain(10)
        let head = try Self.head(of: records, at: 8)
        let cut = AuditChain.verify(partition: 0, records: Self.bytes(Array(records.prefix(7))), heads: [head])
        #expect(cut.problems.map(\.kind) == [.truncated], "\(cut.problems)")
        // Rewritten from record 3 on, consistently: the chain links, but not to the head.
        var rewritten = Array(records.prefix(3))
        for number in 3..<10 {
            rewritten.append((Int64(100 + number), AuditChain.append(Self.event(number + 100), after: rewritten.last?.record, source: (0, Int64(number)), recordedAt: Date())))
        }
        let rewrite = AuditChain.verify(partition: 0, records: Self.bytes(rewritten), heads: [head])
        #expect(rewrite.problems.map(\.kind) == [.headMismatch], "\(rewrite.problems)")
        // Only sequences 4–9 retained: verified from 4, no problem.
        let retained = AuditChain.verify(partition: 0, records: Self.bytes(Array(records.suffix(6))), heads: [head])
        #expect(retained.problems.isEmpty && retained.firstSequence == 4 && retained.firstOffset == 104)
    }

    @Test("a head signed with an unknown key, or altered after signing, is not trusted")
    func untrustedHeads() throws {
        let records = Self.chain(3)
        let stranger = try Self.head(of: records, at: 2, key: Curve25519.Signing.PrivateKey())
        #expect(ChainHeads.problem(with: stranger, keys: [Self.key.publicKey])?.contains("not among the trusted keys") == true)
        var altered = try Self.head(of: records, at: 2)
        #expect(ChainHeads.problem(with: altered, keys: [Self.key.publicKey]) == nil)
        altered.sequence = 1
        #expect(ChainHeads.problem(with: altered, keys: [Self.key.publicKey])?.contains("does not verify") == true)
    }

    @Test("a head's signature covers its partition, by the formula documented on AuditChainHead.signature: a valid head moved to another chain does not verify")
    func headSignatureCoversPartition() throws {
        let records = Self.chain(3)
        let head = try ChainHeads.sign(partition: 2, sequence: 2, hash: Array(records[2].record.hash), at: Date(timeIntervalSince1970: 1_800_000_000.5), with: Self.key)
        // "vigil.audit.head.v1" ‖ partition (4 bytes) ‖ sequence (8 bytes) ‖ hash ‖ signed_time (ms, 8 bytes), big-endian.
        let documented = Array("vigil.audit.head.v1".utf8) + [0, 0, 0, 2] + [0, 0, 0, 0, 0, 0, 0, 2] + Array(records[2].record.hash)
            + withUnsafeBytes(of: Int64(1_800_000_000_500).bigEndian) { Array($0) }
        #expect(Self.key.publicKey.isValidSignature(head.signature, for: documented))
        // Every chain starts alike: moved to partition 0, the head would vouch for another chain.
        var moved = head
        moved.partition = 0
        #expect(ChainHeads.problem(with: moved, keys: [Self.key.publicKey])?.contains("does not verify") == true)
    }

    @Test("a chain deleted whole under its signed head is found: every partition a head names is verified, an empty one too")
    func chainDeletedWhole() throws {
        let records = Self.chain(5)
        var log: [Int32: [(offset: Int64, value: [UInt8])]] = [:]
        var heads: [Vigil_V1_AuditChainHead] = []
        for partition: Int32 in 0..<3 {
            log[partition] = Self.bytes(records)
            heads.append(try ChainHeads.sign(partition: partition, sequence: 4, hash: Array(records[4].record.hash), at: Date(), with: Self.key))
        }
        #expect(AuditChain.verify(log: log, heads: heads).allSatisfy { $0.problems.isEmpty && $0.headsChecked == 1 })
        // An export with every record of partition 1 gone: only its head names the chain.
        log[1] = nil
        let reports = AuditChain.verify(log: log, heads: heads)
        #expect(reports.map(\.partition) == [0, 1, 2])
        #expect(reports.filter { !$0.problems.isEmpty }.map(\.partition) == [1], "\(reports.map(\.problems))")
        let deleted = try #require(reports.first { $0.partition == 1 })
        #expect(deleted.problems.map(\.kind) == [.truncated] && deleted.problems[0].description.contains("the whole chain up to it was deleted"), "\(deleted.problems)")
        #expect(deleted.firstSequence == nil, "not reported as history retention dropped: nothing of the chain is left")
        // Read from the cluster, the partition is there and empty: the same.
        log[1] = []
        #expect(AuditChain.verify(log: log, heads: heads).first { $0.partition == 1 }?.problems.map(\.kind) == [.truncated])
    }

    /// A log partition in memory: what the sequencer wrote, as its tail reader sees it.
    final class MemoryLog: @unchecked Sendable {
        let lock = NSLock()
        var partitions: [Int32: [Vigil_V1_AuditRecord]] = [:]
        var reads = 0

        func append(_ outputs: [StageOutput]) throws {
            for output in outputs where output.topic == AuditSequencer.logTopic {
                let record = try Vigil_V1_AuditRecord(serializedBytes: output.value)
                lock.withLock { partitions[output.partition ?? -1, default: []].append(record) }
            }
        }

        func tail(_ partition: Int32) -> Vigil_V1_AuditRecord? {
            lock.withLock {
                reads += 1
                return partitions[partition]?.last
            }
        }
    }

    static func input(_ value: [UInt8], partition: Int32, offset: Int64) -> StageInput {
        StageInput(topic: AuditSequencer.eventsTopic, partition: partition, offset: offset, key: Array("rule:r".utf8), value: value)
    }

    @Test("the sequencer chains each partition into its own log partition, records a redelivered event once, continues another replica's chain, dead-letters what is not an event, signs heads on request")
    func sequencer() async throws {
        let log = MemoryLog()
        let sequencer = AuditSequencer(readTail: { log.tail($0) }, signingKey: Self.key, headInterval: .seconds(3_600), logger: Logger(label: "test"))
        for offset in Int64(0)..<5 {
            try log.append(try await sequencer.process(Self.input(Self.event(Int(offset)), partition: 2, offset: offset)))
        }
        // Redelivered after a crash: offsets 3 and 4 again.
        for offset in Int64(3)..<5 {
            #expect(try await sequencer.process(Self.input(Self.event(Int(offset)), partition: 2, offset: offset)).isEmpty)
        }
        // Another replica owned partition 2 meanwhile and chained offsets 5 and 6.
        let other = AuditSequencer(readTail: { log.tail($0) }, signingKey: nil, logger: Logger(label: "test"))
        for offset in Int64(5)..<7 { try log.append(try await other.process(Self.input(Self.event(Int(offset)), partition: 2, offset: offset))) }
        try log.append(try await sequencer.process(Self.input(Self.event(7), partition: 2, offset: 7)))
        let chain = log.partitions[2] ?? []
        #expect(chain.map(\.sequence) == Array(0...7) && chain.map(\.sourceOffset) == Array(0...7))
        let report = AuditChain.verify(partition: 2, records: chain.enumerated().map { (Int64($0.offset), try! $0.element.serializedBytes()) })
        #expect(report.problems.isEmpty, "\(report.problems)")

        await #expect(throws: MismatchedRecord.self) { try await sequencer.process(Self.input([0xFF, 0x00], partition: 2, offset: 8)) }
        let requested = try await sequencer.process(Self.input(Self.event(9, kind: .headRequested), partition: 2, offset: 9))
        let head = try Vigil_V1_AuditChainHead(serializedBytes: try #require(requested.first { $0.topic == AuditSequencer.headsTopic }).value)
        #expect(head.partition == 2 && head.sequence == 8 && ChainHeads.problem(with: head, keys: [Self.key.publicKey]) == nil)
    }
}
