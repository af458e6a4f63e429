import Crypto
import Foundation
import Logging
import SwiftProtobuf
import VigilSchema
import WorkerRuntime

/// vigil-audit's stage: appends each event of `audit.events.v1` partition p to the chain of
/// `audit.log.v1` partition p, and signs the chains' heads onto `audit.heads.v1`.
///
/// The log is its own state: a chain continues from its newest record, read from the log when
/// the stage does not hold it, or when the input is not the successor of the event that
/// record came from (the partition was someone else's meanwhile). A record names its event's
/// offset, so an event delivered again after a crash or a rebalance is found already chained
/// and skipped: every event is recorded once. A stale replica still writing after a rebalance
/// would fork the chain; `vigil audit verify` reports a fork as such.
public final class AuditSequencer: Stage, @unchecked Sendable {
    public static let eventsTopic = "audit.events.v1"
    public static let logTopic = "audit.log.v1"
    public static let headsTopic = "audit.heads.v1"

    /// The newest record of a partition's chain, from the log; nil when the chain is empty.
    public typealias TailReader = @Sendable (Int32) async throws -> Vigil_V1_AuditRecord?

    private let readTail: TailReader
    private let signingKey: Curve25519.Signing.PrivateKey?
    private let headInterval: Duration
    private let clock: @Sendable () -> Date
    private let logger: Logger
    private let lock = NSLock()
    private var tails: [Int32: Vigil_V1_AuditRecord?] = [:]  // guarded by `lock`
    private var lastHead: [Int32: Date] = [:]  // guarded by `lock`

    /// - Parameters:
    ///   - signingKey: signs heads; without one, no head is published (and the log says so).
    ///   - headInterval: a chain's head is signed at most this often while records arrive, and
    ///     whenever a HEAD_REQUESTED event asks.
    public init(
        readTail: @escaping TailReader, signingKey: Curve25519.Signing.PrivateKey?, headInterval: Duration = .seconds(60),
        clock: @escaping @Sendable () -> Date = Date.init, logger: Logger
    ) {
        self.readTail = readTail
        self.signingKey = signingKey
        self.headInterval = headInterval
        self.clock = clock
        self.logger = logger
    }

    public func process(_ input: StageInput) async throws -> [StageOutput] {
        guard input.topic == Self.eventsTopic else {
            throw MismatchedRecord(reason: "vigil-audit reads \(Self.eventsTopic), not \(input.topic)")
        }
        let event: Vigil_V1_AuditEvent
        do {
            event = try Vigil_V1_AuditEvent(serializedBytes: input.value)
        } catch {
            // Dead-lettered: `vigil audit verify` cannot see it, so the DLQ is where to look.
            throw MismatchedRecord(reason: "not an AuditEvent (\(error)); it is not chained")
        }
        let partition = input.partition
        let tail = try await tail(of: partition, before: input.offset)
        if let tail, tail.sourcePartition == partition, tail.sourceOffset >= input.offset {
            return []  // chained before: a redelivery
        }
        let now = clock()
        let record = AuditChain.append(input.value, after: tail, source: (partition, input.offset), recordedAt: now)
        lock.withLock { tails[partition] = record }
        var outputs = [StageOutput(
            topic: Self.logTopic, partition: partition, key: input.key, value: try record.serializedBytes(),
            headers: [RecordHeader(key: "content-type", value: Vigil_V1_AuditRecord.protoMessageName)]
        )]
        if let head = try signedHead(of: record, partition: partition, requested: event.kind == .headRequested, at: now) {
            outputs.append(StageOutput(
                topic: Self.headsTopic, partition: partition, key: Array("partition-\(partition)".utf8), value: try head.serializedBytes(),
                headers: [RecordHeader(key: "content-type", value: Vigil_V1_AuditChainHead.protoMessageName)]
            ))
        }
        return outputs
    }

    /// The chain's newest record: the one held, if it came from the event just before
    /// `offset`; else the log's.
    private func tail(of partition: Int32, before offset: Int64) async throws -> Vigil_V1_AuditRecord? {
        if let held = lock.withLock({ tails[partition] }), held.map({ $0.sourceOffset == offset - 1 }) ?? false {
            return held
        }
        do {
            let read = try await readTail(partition)
            lock.withLock { tails[partition] = .some(read) }
            return read
        } catch {
            // Chaining without the tail would fork the chain: wait for the log instead.
            throw StageUnavailable("cannot read the newest record of \(Self.logTopic)[\(partition)]: \(error)")
        }
    }

    private func signedHead(of record: Vigil_V1_AuditRecord, partition: Int32, requested: Bool, at now: Date) throws -> Vigil_V1_AuditChainHead? {
        guard let signingKey else {
            if requested { logger.warning("a signed head was requested but vigil-audit has no signing key (AUDIT_SIGNING_KEY_FILE)") }
            return nil
        }
        let due = lock.withLock { () -> Bool in
            guard requested || lastHead[partition].map({ now.timeIntervalSince($0) >= Double(headInterval.components.seconds) }) ?? true else { return false }
            lastHead[partition] = now
            return true
        }
        guard due else { return nil }
        return try ChainHeads.sign(partition: partition, sequence: record.sequence, hash: Array(record.hash), at: now, with: signingKey)
    }
}
