import Foundation
import Logging
import Metrics
import SwiftProtobuf
import VigilSchema

/// Bounds on a stateful worker's state (`worker.state-max-keys`, `worker.state-max-key-bytes`).
public struct StateLimits: Sendable, Equatable {
    /// Keys held at most across the worker's partitions; a record for a new key beyond it is dead-lettered.
    public var maxKeys: Int
    /// The largest snapshot of one key's state (with its timers); a record that would grow a
    /// key's state beyond it is dead-lettered and the state keeps what it held.
    public var maxKeyBytes: Int

    public init(maxKeys: Int = 100_000, maxKeyBytes: Int = 64 << 10) {
        self.maxKeys = maxKeys
        self.maxKeyBytes = maxKeyBytes
    }
}

/// The state of a stateful stage's keys on the partitions this replica owns, and the rules
/// that keep it exact: redelivered records already reflected are not applied again, late
/// records are refused, timers fire once their time comes, and the keys changed since the last
/// `flush()` become snapshot records for the changelog (many changes of a key between two
/// flushes cost one snapshot). Free of Kafka: `StageRunner` feeds it on the cluster,
/// `StatefulStageTestDriver` in memory.
///
/// Calls must not overlap (the runner serializes them through `StatefulRuntime.gate`).
package final class KeyedStateEngine<S: StatefulStage>: StateEngine, @unchecked Sendable {
    struct KeyState {
        var state: S.State?
        var timers = Timers()
        var maxEventTime: Int64 = .min
        var nextOffsets: [String: Int64] = [:]
        /// Caught-up time without a record, for silence timers; not persisted.
        var quietMilliseconds: Int64 = 0
        /// Bytes of the last snapshot written.
        var bytes = 0
        /// At least the snapshot's size now: exact when last measured, then raised by each
        /// record's growth allowance (`sizeAllowance`), so the cap is checked by encoding the
        /// state only when the key may be near it.
        var sizeBound = 0
        var lastWritten: ContinuousClock.Instant = .now

        var isEmpty: Bool { state == nil && timers.eventTimers.isEmpty && timers.silenceTimers.isEmpty && nextOffsets.isEmpty }
    }

    struct PartitionState {
        /// The assignment generations of the input partitions (one per input topic) this state
        /// was restored for; a record of another generation means a new assignment.
        var generations: Set<UInt64>
        var keys: [String: KeyState] = [:]
        /// Keys changed since the last flush.
        var dirty: Set<String> = []
    }

    let stage: S
    let handler: RecordHandler
    let changelogTopic: String
    let timerDeadLetters: String
    let limits: StateLimits
    private let outage: (limit: Duration, onRetry: @Sendable () -> Void)
    private let logger: Logger
    private let metrics: StateMetrics
    private var partitions: [Int32: PartitionState] = [:]
    private var gaugesUpdated = ContinuousClock.now - .seconds(1)

    /// - Parameters:
    ///   - timerDeadLetters: where a timer firing that fails for good is dead-lettered (the
    ///     worker's first input's DLQ).
    ///   - outage: how long a timer handler may stay unavailable (`StageUnavailable`) before the
    ///     worker stops, and what to call on each retry (the loop is waiting on purpose).
    package init(
        stage: S, handler: RecordHandler, changelogTopic: String, timerDeadLetters: String, limits: StateLimits,
        outage: (limit: Duration, onRetry: @Sendable () -> Void) = (.seconds(60), {}), logger: Logger
    ) {
        self.stage = stage
        self.handler = handler
        self.changelogTopic = changelogTopic
        self.timerDeadLetters = timerDeadLetters
        self.limits = limits
        self.outage = outage
        self.logger = logger
        metrics = StateMetrics(worker: handler.worker)
    }

    /// Whether `partition` holds state restored for assignment `generation`.
    package func isRestored(partition: Int32, generation: UInt64) -> Bool {
        partitions[partition]?.generations.contains(generation) ?? false
    }

    /// Why `bytes` cannot be restored, nil when it can (an empty record is a deletion). Pure:
    /// the restore's reader calls it on its own thread, to keep each key's newest readable one.
    func snapshotProblem(_ bytes: [UInt8]) -> (any Error)? {
        guard !bytes.isEmpty else { return nil }
        do {
            _ = try decode(bytes)
            return nil
        } catch {
            return error
        }
    }

    /// An unreadable changelog record, passed over: logged and counted.
    func rejected(partition: Int32, key: String, offset: Int64, error: any Error) {
        metrics.changelogRejected()
        logger.error("state changelog record unreadable; the key keeps its previous snapshot", metadata: [
            "topic": "\(changelogTopic)", "partition": "\(partition)", "offset": "\(offset)", "key": "\(key)",
            "error": "\(RecordHandler.safeReason(error))",
        ])
    }

    /// Replaces `partition`'s state with the changelog's snapshots (each key's newest wins; an
    /// unreadable one is logged and counted, and the key keeps its previous snapshot).
    package func restore(partition: Int32, generations: Set<UInt64>, snapshots: [(key: String, value: [UInt8], offset: Int64)]) {
        var restored = PartitionState(generations: generations)
        for snapshot in snapshots {
            guard !snapshot.value.isEmpty else {
                restored.keys[snapshot.key] = nil
                continue
            }
            do {
                restored.keys[snapshot.key] = try decode(snapshot.value)
            } catch {
                rejected(partition: partition, key: snapshot.key, offset: snapshot.offset, error: error)
            }
        }
        partitions[partition] = restored
        metrics.restored(keys: restored.keys.count)
        updateGauges()
    }

    /// Drops the state of partitions this replica no longer owns.
    func keepOnly(_ owned: Set<Int32>) {
        let before = partitions.count
        partitions = partitions.filter { owned.contains($0.key) }
        if partitions.count != before { updateGauges() }
    }

    package var ownedPartitions: Set<Int32> { Set(partitions.keys) }

    /// The state of `key` (for tests and diagnostics).
    package func state(of key: String, partition: Int32) -> S.State? {
        partitions[partition]?.keys[key]?.state
    }

    package func timers(of key: String, partition: Int32) -> Timers? {
        partitions[partition]?.keys[key]?.timers
    }

    // MARK: Records

    /// Processes one input record of an owned, restored partition.
    /// What becomes of the record; the state it changed is written later, by `flush()`, once
    /// its outputs are acknowledged.
    package func handle(_ input: StageInput, nowMilliseconds: Int64) async throws -> RecordOutcome {
        let partition = input.partition
        guard let keyBytes = input.key, !keyBytes.isEmpty, let key = String(validating: keyBytes, as: UTF8.self) else {
            return handler.deadLetter(input, reason: "a stateful stage keeps state per key, and this record has no key (or one that is not UTF-8)")
        }
        var keyState = partitions[partition]?.keys[key] ?? KeyState()
        if let next = keyState.nextOffsets[input.topic], input.offset < next {
            // Redelivered after a crash or rebalance: its effect is already in the state, and
            // its outputs were acknowledged before that state was written.
            return .skipped(reason: .alreadyApplied)
        }
        let eventTime = input.eventTimeMilliseconds ?? input.timestampMilliseconds ?? nowMilliseconds
        if keyState.timers.watermark != .min, eventTime < keyState.timers.watermark {
            metrics.late(topic: input.topic)
            let behind = keyState.timers.watermark - eventTime
            return handler.deadLetter(input, reason: "late: event time \(eventTime) is \(behind) ms behind the watermark of key \(key) (allowed lateness \(stage.allowedLateness))")
        }
        if partitions[partition]?.keys[key] == nil, heldKeys >= limits.maxKeys {
            metrics.overCap()
            return handler.deadLetter(input, reason: "state is at its cap of \(limits.maxKeys) keys; a new key (\(key)) cannot be added: raise worker.state-max-keys or scale out")
        }
        var state = keyState.state
        var timers = keyState.timers
        let outcome = try await handler.handle(input, nowMilliseconds: nowMilliseconds) { input in
            try await stage.process(input, key: key, eventTime: eventTime, state: &state, timers: &timers)
        }
        guard case .processed(var outputs) = outcome else {
            // Dead-lettered, skipped or to be retried: the state keeps what it held. Partial
            // outputs are not produced: they would not match the state the record leaves.
            if case .partlyProcessed(_, let copy, let reason) = outcome { return .deadLettered(copy, reason: reason) }
            return outcome
        }
        keyState.state = state
        keyState.timers = timers
        keyState.maxEventTime = max(keyState.maxEventTime, eventTime)
        keyState.timers.watermark = keyState.maxEventTime - stage.allowedLateness.milliseconds
        keyState.nextOffsets[input.topic] = input.offset + 1
        keyState.quietMilliseconds = 0
        outputs += try await fireEventTimers(key: key, keyState: &keyState)
        // Encoding the whole state for every record only to measure it took a third of
        // vigil-match's CPU: measure when the bound says the key may be past half its cap.
        keyState.sizeBound += Self.sizeAllowance(input)
        if keyState.sizeBound > limits.maxKeyBytes / 2 {
            let bytes = try Self.estimatedBytes(keyState, key: key)
            guard bytes <= limits.maxKeyBytes else {
                metrics.overCap()
                return handler.deadLetter(
                    input, reason: "the state of key \(key) would be about \(bytes) bytes, over the \(limits.maxKeyBytes)-byte cap; the record is not applied: raise worker.state-max-key-bytes or keep less per camera"
                )
            }
            keyState.bytes = bytes
            keyState.sizeBound = bytes
        }
        store(keyState, key: key, partition: partition)
        return .processed(outputs)
    }

    // MARK: Timers

    /// Fires the key's event-time timers its watermark has reached, oldest first.
    private func fireEventTimers(key: String, keyState: inout KeyState) async throws -> [StageOutput] {
        var produced: [StageOutput] = []
        // Most records fire nothing: check the earliest timer before building anything.
        guard let earliest = keyState.timers.eventTimers.values.min(), earliest <= keyState.timers.watermark else { return [] }
        while let (name, time) = keyState.timers.eventTimers.filter({ $0.value <= keyState.timers.watermark }).min(by: { ($0.value, $0.key) < ($1.value, $1.key) }) {
            keyState.timers.eventTimers[name] = nil
            produced += try await fire(FiredTimer(name: name, kind: .eventTime, scheduledMilliseconds: time), key: key, keyState: &keyState)
        }
        return produced
    }

    /// Counts `elapsed` caught-up time as silence for every key of `caughtUp` partitions and
    /// fires the silence timers it completes. The outputs of each key that fired.
    package func advanceSilence(caughtUp: Set<Int32>, elapsedMilliseconds: Int64) async throws -> [[StageOutput]] {
        var results: [[StageOutput]] = []
        for partition in caughtUp.sorted() {
            guard let keys = partitions[partition]?.keys.keys.sorted() else { continue }
            for key in keys {
                guard var keyState = partitions[partition]?.keys[key] else { continue }
                keyState.quietMilliseconds += elapsedMilliseconds
                let due = keyState.timers.silenceTimers.filter { $0.value <= keyState.quietMilliseconds }
                    .sorted { ($0.value, $0.key) < ($1.value, $1.key) }
                guard !due.isEmpty else {
                    partitions[partition]?.keys[key] = keyState
                    continue
                }
                var outputs: [StageOutput] = []
                for (name, duration) in due where keyState.timers.silenceTimers[name] == duration {
                    keyState.timers.silenceTimers[name] = nil
                    let scheduled = (keyState.maxEventTime == .min ? 0 : keyState.maxEventTime) + duration
                    outputs += try await fire(FiredTimer(name: name, kind: .silence, scheduledMilliseconds: scheduled), key: key, keyState: &keyState)
                }
                store(keyState, key: key, partition: partition)
                results.append(outputs)
            }
        }
        return results
    }

    /// Runs the stage's timer callback; outputs get record ids from the timer's key, name and
    /// scheduled time, so a firing repeated after a crash is recognisable. A handler that is
    /// unavailable (`StageUnavailable`) is retried as a record is, and past the outage limit
    /// the worker stops with the timer still in the key's last snapshot; one that fails
    /// otherwise, or whose outputs cannot be sent, is dead-lettered with the reason and the
    /// state keeps what it held.
    private func fire(_ timer: FiredTimer, key: String, keyState: inout KeyState) async throws -> [StageOutput] {
        var state = keyState.state
        var timers = keyState.timers
        let started = ContinuousClock.now
        var backoff = OutageBackoff(limit: outage.limit)
        var outputs: [StageOutput]
        while true {
            do {
                outputs = try await stage.timerFired(timer, key: key, state: &state, timers: &timers)
                break
            } catch let unavailable as StageUnavailable {
                if let lasted = backoff.exhausted { throw TimerOutage(timer: timer, key: key, reason: unavailable.reason, lasted: lasted) }
                logger.warning("timer handler unavailable; retrying the firing", metadata: [
                    "key": "\(key)", "timer": "\(timer.name)", "reason": "\(unavailable.reason)", "retry_in": "\(backoff.delay)",
                ])
                metrics.timerRetried()
                outage.onRetry()
                try await backoff.wait()
                state = keyState.state
                timers = keyState.timers
            } catch {
                if error is CancellationError || Task.isCancelled { throw CancellationError() }
                return [timerDeadLetter(timer, key: key, reason: "the timer's handler failed: \(RecordHandler.safeReason(error))")]
            }
        }
        keyState.state = state
        keyState.timers.eventTimers = timers.eventTimers
        keyState.timers.silenceTimers = timers.silenceTimers
        metrics.timerFired(kind: timer.kind)
        // A firing starts a trace of its own: no input record caused it.
        let completed = try handler.complete(
            outputs, trace: handler.newTrace(), previousTiming: nil, elapsed: ContinuousClock.now - started,
            recordIDPrefix: "timer/\(key)/\(timer.name)/\(timer.scheduledMilliseconds)/", eventTime: Array(String(timer.scheduledMilliseconds).utf8)
        )
        switch completed {
        case .success(let records):
            return records
        case .failure(let oversized):
            return [timerDeadLetter(timer, key: key, reason: "the firing's outputs cannot be sent: \(oversized)")]
        }
    }

    /// A timer firing given up: logged, counted, and dead-lettered (the key, the timer, its
    /// scheduled time and the reason; no value), so an operator sees what was not emitted.
    private func timerDeadLetter(_ timer: FiredTimer, key: String, reason: String) -> StageOutput {
        metrics.timerFailed()
        logger.error("a timer firing failed and is dead-lettered; the state keeps what it held", metadata: [
            "key": "\(key)", "timer": "\(timer.name)", "kind": "\(timer.kind.rawValue)", "dlq": "\(timerDeadLetters)", "error": "\(reason)",
        ])
        return StageOutput(topic: timerDeadLetters, key: Array(key.utf8), value: [], headers: [
            RecordHeader(key: RecordHeaders.timer, value: "\(timer.kind.rawValue) \(timer.name)"),
            RecordHeader(key: RecordHeaders.eventTime, value: String(timer.scheduledMilliseconds)),
            RecordHeader(key: RecordHeaders.error, value: reason),
            RecordHeader(key: RecordHeaders.worker, value: handler.worker),
        ])
    }

    // MARK: Flushes and checkpoints

    /// Snapshots of the keys changed since the last flush, each once, in key order per partition.
    /// Throws `StateEncodingFailed` when a key's state cannot be encoded; its key stays changed.
    package func flush() throws -> [StageOutput] {
        var records: [StageOutput] = []
        for partition in partitions.keys.sorted() {
            guard let dirty = partitions[partition]?.dirty, !dirty.isEmpty else { continue }
            for key in dirty.sorted() {
                guard var keyState = partitions[partition]?.keys[key] else { continue }
                records.append(try snapshotRecord(key: key, partition: partition, keyState: &keyState))
                partitions[partition]?.keys[key] = keyState
            }
            partitions[partition]?.dirty = []
        }
        // Counting every key's bytes costs as many steps as there are keys, and flushes come
        // every few dozen records: refresh the gauges at most once a second.
        if !records.isEmpty, ContinuousClock.now - gaugesUpdated >= .seconds(1) { updateGauges() }
        return records
    }

    var hasChanges: Bool { partitions.values.contains { !$0.dirty.isEmpty } }

    /// The flush, plus snapshots of every key not written for `interval`: the changelog's newest
    /// records then always hold every key, so restore never needs older records (nor compaction).
    package func checkpoint(olderThan interval: Duration) throws -> [StageOutput] {
        var records = try flush()
        let now = ContinuousClock.now
        for partition in partitions.keys.sorted() {
            for key in (partitions[partition]?.keys.keys.sorted() ?? []) {
                guard var keyState = partitions[partition]?.keys[key], now - keyState.lastWritten >= interval else { continue }
                records.append(try snapshotRecord(key: key, partition: partition, keyState: &keyState))
                partitions[partition]?.keys[key] = keyState
            }
        }
        return records
    }

    // MARK: Snapshots

    /// The changelog record holding the key's whole state. An empty record is a deletion to
    /// restore, so a state that cannot be encoded throws rather than write one.
    private func snapshotRecord(key: String, partition: Int32, keyState: inout KeyState) throws(StateEncodingFailed) -> StageOutput {
        var snapshot = Vigil_V1_KeyStateSnapshot()
        do {
            if let state = keyState.state { snapshot.state = Data(try state.stateBytes) }
        } catch {
            throw StateEncodingFailed(key: key, partition: partition, error: error)
        }
        snapshot.eventTimers = keyState.timers.eventTimers
        snapshot.silenceTimers = keyState.timers.silenceTimers
        snapshot.maxEventTime = keyState.maxEventTime
        snapshot.nextOffsets = keyState.nextOffsets
        // Deterministic: map fields in key order, so equal states give equal bytes.
        var options = BinaryEncodingOptions()
        options.useDeterministicOrdering = true
        let bytes: [UInt8]
        do {
            bytes = try snapshot.serializedBytes(options: options)
        } catch {
            throw StateEncodingFailed(key: key, partition: partition, error: error)
        }
        keyState.bytes = bytes.count
        keyState.sizeBound = bytes.count
        keyState.lastWritten = .now
        return StageOutput(topic: changelogTopic, partition: partition, key: Array(key.utf8), value: bytes, headers: [])
    }

    /// How much one record may grow a key's snapshot: twice its bytes (a stage keeps at most
    /// about what it reads: a waiting record, a track's boxes) and room for its timers and offsets.
    static func sizeAllowance(_ input: StageInput) -> Int {
        2 * (input.value.count + (input.key?.count ?? 0)) + 256
    }

    /// About what a key's snapshot takes (within a few bytes per entry), for the size cap,
    /// without encoding the whole snapshot.
    static func estimatedBytes(_ keyState: KeyState, key: String) throws(StateEncodingFailed) -> Int {
        let stateBytes: Int
        do {
            stateBytes = try keyState.state?.stateBytes.count ?? 0
        } catch {
            throw StateEncodingFailed(key: key, partition: nil, error: error)
        }
        let entries = keyState.timers.eventTimers.keys.reduce(0) { $0 + $1.utf8.count + 14 }
            + keyState.timers.silenceTimers.keys.reduce(0) { $0 + $1.utf8.count + 14 }
            + keyState.nextOffsets.keys.reduce(0) { $0 + $1.utf8.count + 14 }
        return stateBytes + entries + 16
    }

    func decode(_ bytes: [UInt8]) throws -> KeyState {
        let snapshot = try Vigil_V1_KeyStateSnapshot(serializedBytes: bytes)
        var keyState = KeyState()
        keyState.state = snapshot.state.isEmpty ? nil : try S.State(stateBytes: Array(snapshot.state))
        keyState.maxEventTime = snapshot.maxEventTime
        keyState.timers = Timers(
            watermark: snapshot.maxEventTime == .min ? .min : snapshot.maxEventTime - stage.allowedLateness.milliseconds,
            eventTimers: snapshot.eventTimers, silenceTimers: snapshot.silenceTimers
        )
        keyState.nextOffsets = snapshot.nextOffsets
        keyState.bytes = bytes.count
        keyState.sizeBound = bytes.count
        return keyState
    }

    private func store(_ keyState: KeyState, key: String, partition: Int32) {
        partitions[partition, default: PartitionState(generations: [])].keys[key] = keyState
        partitions[partition]?.dirty.insert(key)
    }

    var heldKeys: Int { partitions.values.reduce(0) { $0 + $1.keys.count } }

    private func updateGauges() {
        gaugesUpdated = .now
        var keys = 0
        var bytes = 0
        var largest = 0
        for partition in partitions.values {
            keys += partition.keys.count
            for keyState in partition.keys.values {
                bytes += keyState.bytes
                largest = max(largest, keyState.bytes)
            }
        }
        metrics.set(keys: keys, bytes: bytes, largestKeyBytes: largest)
    }
}

/// The engine as the runner sees it, whatever the stage's state type.
protocol StateEngine: AnyObject, Sendable {
    var ownedPartitions: Set<Int32> { get }
    func isRestored(partition: Int32, generation: UInt64) -> Bool
    func restore(partition: Int32, generations: Set<UInt64>, snapshots: [(key: String, value: [UInt8], offset: Int64)])
    func snapshotProblem(_ bytes: [UInt8]) -> (any Error)?
    func rejected(partition: Int32, key: String, offset: Int64, error: any Error)
    func keepOnly(_ owned: Set<Int32>)
    func handle(_ input: StageInput, nowMilliseconds: Int64) async throws -> RecordOutcome
    func advanceSilence(caughtUp: Set<Int32>, elapsedMilliseconds: Int64) async throws -> [[StageOutput]]
    var hasChanges: Bool { get }
    func flush() throws -> [StageOutput]
    func checkpoint(olderThan interval: Duration) throws -> [StageOutput]
}

/// A timer handler unavailable for longer than the outage limit: the worker stops, and the
/// timer, still in the key's last snapshot, fires again after the restart.
struct TimerOutage: Error, CustomStringConvertible {
    var timer: FiredTimer
    var key: String
    var reason: String
    var lasted: Duration

    var description: String {
        "the stage was unavailable for \(lasted) (\(reason)) while firing timer \(timer.name) of key \(key); "
            + "stopping without writing the key's state, so the timer fires again after the restart: fix what the stage depends on, or raise worker.outage-timeout-ms"
    }
}

/// A key's state that the stage could not encode. The worker stops: writing nothing would
/// leave an older snapshot to restore (outputs already sent would repeat with other effects),
/// and writing an empty record would delete the key on the next restore.
struct StateEncodingFailed: Error, CustomStringConvertible {
    var key: String
    var partition: Int32?
    var error: any Error

    var description: String {
        let partition = partition.map { " (partition \($0))" } ?? ""
        return "the state of key \(key)\(partition) could not be encoded: \(RecordHandler.safeReason(error)); the worker stops rather than lose it — this is a bug in the stage's state encoding"
    }
}

/// What the runner needs for a stateful stage: the engine, the gate that serializes records,
/// timers and checkpoints, and the changelog reader for restores.
struct StatefulRuntime: Sendable {
    let engine: any StateEngine
    let gate = AsyncSerialGate()
    /// The input topics; with more than one, records are merged by event time per partition.
    let inputs: [String]
    /// How often silence timers are advanced and changed keys flushed.
    let tickInterval: Duration
    /// Records after which changed keys are flushed without waiting for the tick. Records hold
    /// their in-flight slot until the flush after them is written, so flushes must be well
    /// below the in-flight limit; a twentieth keeps several flushes on their way at once
    /// (measured: a flush every half limit halved throughput, waiting for one at a time).
    let flushEvery: Int
    /// Keys not written for this long get a snapshot again.
    let checkpointInterval: Duration
    /// Each key's newest readable snapshot in these changelog partitions (`ChangelogAccumulator`).
    let readChangelog: @Sendable (Set<Int32>) async throws -> ChangelogRead
}

/// What a restore read from the changelog.
struct ChangelogRead: Sendable {
    /// Per partition, each key's newest readable snapshot (or deletion), in offset order.
    var snapshots: [Int32: [(key: String, value: [UInt8], offset: Int64)]] = [:]
    /// Per partition whose log no longer starts at offset 0 (retention deleted records): the
    /// write time of its oldest retained record, milliseconds since the epoch.
    var truncatedSince: [Int32: Int64] = [:]
    /// Records read, all of them (most were superseded by a newer snapshot of their key).
    var recordsRead = 0
}

/// Keeps what a restore needs while the changelog streams past: per partition, each key's
/// newest readable snapshot — never the whole log, which holds a snapshot per change of every
/// key for as long as its retention. Memory is about the state's own size. An unreadable
/// record is reported (`rejected`) and passed over, so the key keeps its previous snapshot.
final class ChangelogAccumulator: @unchecked Sendable {
    private let lock = NSLock()
    private var newest: [Int32: [String: (value: [UInt8], offset: Int64)]] = [:]  // guarded by `lock`
    private var read = ChangelogRead()  // guarded by `lock`
    private var seen: Set<Int32> = []  // guarded by `lock`
    private let problem: @Sendable ([UInt8]) -> (any Error)?
    private let rejected: @Sendable (_ partition: Int32, _ key: String, _ offset: Int64, _ error: any Error) -> Void

    init(
        problem: @escaping @Sendable ([UInt8]) -> (any Error)?,
        rejected: @escaping @Sendable (_ partition: Int32, _ key: String, _ offset: Int64, _ error: any Error) -> Void
    ) {
        self.problem = problem
        self.rejected = rejected
    }

    /// One record of the changelog, in offset order per partition.
    func add(partition: Int32, key: [UInt8]?, value: [UInt8], offset: Int64, timestampMilliseconds: Int64?) {
        lock.withLock {
            read.recordsRead += 1
            // The partition's first retained record is not its first: retention cut the log.
            if seen.insert(partition).inserted, offset > 0 { read.truncatedSince[partition] = timestampMilliseconds ?? 0 }
        }
        guard let key = key.flatMap({ String(validating: $0, as: UTF8.self) }) else { return }
        if let error = problem(value) {
            rejected(partition, key, offset, error)
            return
        }
        lock.withLock { newest[partition, default: [:]][key] = (value, offset) }
    }

    var result: ChangelogRead {
        lock.withLock {
            var result = read
            for (partition, keys) in newest {
                result.snapshots[partition] = keys.map { (key: $0.key, value: $0.value.value, offset: $0.value.offset) }.sorted { $0.offset < $1.offset }
            }
            return result
        }
    }
}

/// One caller at a time, in arrival order, across suspension points: a stateful stage's
/// `process` awaits, and a timer must not touch a key while a record of it is in the stage.
final class AsyncSerialGate: @unchecked Sendable {
    private let lock = NSLock()
    private var busy = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    func run<T>(_ body: () async throws -> T) async rethrows -> T {
        await enter()
        defer { leave() }
        return try await body()
    }

    private func enter() async {
        // Uncontended (almost always: one record at a time, a timer tick now and then): no suspension.
        if lock.withLock({ () -> Bool in
            guard !busy else { return false }
            busy = true
            return true
        }) { return }
        await withCheckedContinuation { continuation in
            let enterNow = lock.withLock {
                if !busy {
                    busy = true
                    return true
                }
                waiters.append(continuation)
                return false
            }
            if enterNow { continuation.resume() }
        }
    }

    private func leave() {
        let next: CheckedContinuation<Void, Never>? = lock.withLock {
            if waiters.isEmpty {
                busy = false
                return nil
            }
            return waiters.removeFirst()
        }
        next?.resume()
    }
}

/// The state metrics: keys and bytes held, restores, late records, caps, timers.
struct StateMetrics {
    let worker: String
    private let keys: Gauge
    private let bytes: Gauge
    private let largest: Gauge

    init(worker: String) {
        self.worker = worker
        keys = Gauge(label: "vigil_state_keys", dimensions: [("worker", worker)])
        bytes = Gauge(label: "vigil_state_bytes", dimensions: [("worker", worker)])
        largest = Gauge(label: "vigil_state_largest_key_bytes", dimensions: [("worker", worker)])
    }

    func set(keys count: Int, bytes total: Int, largestKeyBytes: Int) {
        keys.record(count)
        bytes.record(total)
        largest.record(largestKeyBytes)
    }

    func restored(keys count: Int) {
        Counter(label: "vigil_state_restored_keys_total", dimensions: [("worker", worker)]).increment(by: count)
    }

    func changelogRejected() {
        Counter(label: "vigil_state_changelog_rejected_total", dimensions: [("worker", worker)]).increment()
    }

    func late(topic: String) {
        Counter(label: "vigil_records_late_total", dimensions: [("worker", worker), ("topic", topic)]).increment()
    }

    func overCap() {
        Counter(label: "vigil_state_over_cap_total", dimensions: [("worker", worker)]).increment()
    }

    func timerFired(kind: FiredTimer.Kind) {
        Counter(label: "vigil_timers_fired_total", dimensions: [("worker", worker), ("kind", kind.rawValue)]).increment()
    }

    func timerFailed() {
        Counter(label: "vigil_timer_failures_total", dimensions: [("worker", worker)]).increment()
    }

    func timerRetried() {
        Counter(label: "vigil_timer_retries_total", dimensions: [("worker", worker)]).increment()
    }
}
