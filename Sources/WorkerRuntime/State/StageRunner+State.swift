import Foundation
import Kafka
import Logging
import Metrics

/// The runner's part for stateful stages: flushing changed state in step with offsets, flushing
/// before a revoke, merging several inputs by event time, restoring partitions, silence timers
/// and checkpoints. Everything here runs inside `StatefulRuntime.gate`, or takes it.
extension StageRunner {
    /// Queues a flush of the state changed since the last one (call inside `stateful.gate`);
    /// `stored` is signalled once the offsets it reflects are stored. Throws when a key's state
    /// cannot be encoded (`StateEncodingFailed`): the worker stops.
    func flush(
        _ stateful: StatefulRuntime, into pending: AsyncStream<PendingRecord>.Continuation, snapshots: [StageOutput]? = nil,
        stored: DispatchSemaphore? = nil
    ) throws {
        // Only the state of partitions still assigned as they were when it was restored: a
        // flush that ran late (a revoke's, after its 5 s) would otherwise write a stale
        // snapshot after the new owner's, and the next restore would take it as the newest.
        let records = try snapshots ?? stateful.engine.flush()
        let current = partitionsWithCurrentState(stateful)
        recordsSinceFlush = 0
        pending.yield(.withoutInput(deliveries: [], changelog: records.filter { current.contains($0.partition ?? -1) }, stored: stored))
    }

    /// The partitions whose state this replica holds for their current assignment: every input
    /// partition of that number still assigned in the generation the state was restored for.
    /// Reads the assignment once, for a whole flush.
    func partitionsWithCurrentState(_ stateful: StatefulRuntime) -> Set<Int32> {
        let generations = Dictionary(grouping: consumer.assignmentGenerations, by: \.key.partition).mapValues { $0.map(\.value) }
        return Set(generations.filter { partition, current in
            current.allSatisfy { stateful.engine.isRestored(partition: partition, generation: $0) }
        }.keys)
    }

    /// Before a revoke commits: the state of every record processed so far is flushed and their
    /// offsets stored, so the partitions' next owner restores it and the commit covers them;
    /// then the revoked partitions' state is dropped. Bounded: after 5 s the
    /// rebalance goes on, and the next owner processes the rest again (at-least-once).
    func flushBeforeRevoke(_ revoked: [KafkaTopicPartition], _ stateful: StatefulRuntime, into pending: AsyncStream<PendingRecord>.Continuation) {
        guard !loopEnded.withLock({ isLoopEnded }) else { return }
        let stored = DispatchSemaphore(value: 0)
        let task = Task {
            await stateful.gate.run {
                do {
                    try flush(stateful, into: pending, stored: stored)
                } catch {
                    // The key stays changed: the stop's own flush meets it again and stops
                    // the worker with the error. Let the rebalance go on meanwhile.
                    logger.critical("state could not be written before a revoke; the worker stops", metadata: ["error": "\(error)"])
                    stopTaking(error)
                    stored.signal()
                    return
                }
                let revokedNumbers = Set(revoked.map(\.partition))
                let kept = Set(consumer.assignment.filter { !revoked.contains($0) }.map(\.partition))
                stateful.engine.keepOnly(stateful.engine.ownedPartitions.subtracting(revokedNumbers.subtracting(kept)))
            }
        }
        if stored.wait(timeout: .now() + .seconds(5)) == .timedOut {
            task.cancel()
            logger.warning("state not flushed within 5 s of a revoke; the partitions' next owner processes the latest records again", metadata: [
                "partitions": "\(revoked)",
            ])
        }
    }

    /// Processes the records whose event-time turn has come (call inside `stateful.gate`).
    func processMerged(into pending: AsyncStream<PendingRecord>.Continuation) async throws {
        guard merger != nil else { return }
        merger!.keepOnly(Set(consumer.assignment))
        let consumer = consumer
        for message in merger!.release(isReadToEnd: { consumer.isReadToEnd($0) }, logger: logger) {
            try await process(message, into: pending)
        }
    }

    /// Reads the state of every assigned partition not restored for its current assignment,
    /// before the first record of any of them: one changelog read however many partitions a
    /// rebalance brought. Outputs already queued are flushed first, so the snapshots this
    /// replica wrote for an earlier assignment of a partition are in the changelog when it is read.
    func restore(partition: Int32, generation: UInt64, _ stateful: StatefulRuntime) async throws {
        let started = ContinuousClock.now
        // Per partition number, the generations of its input partitions (one per input topic).
        var generations: [Int32: Set<UInt64>] = [partition: [generation]]
        for (assigned, assignedGeneration) in consumer.assignmentGenerations {
            generations[assigned.partition, default: []].insert(assignedGeneration)
        }
        generations = generations.filter { partitionNumber, current in
            partitionNumber == partition || !current.allSatisfy { stateful.engine.isRestored(partition: partitionNumber, generation: $0) }
        }
        try await producer.flush()
        let read = try await stateful.readChangelog(Set(generations.keys))
        let snapshots = read.snapshots
        warnIfCheckpointsWereCut(read, stateful)
        for (restoring, current) in generations {
            stateful.engine.restore(partition: restoring, generations: current, snapshots: snapshots[restoring] ?? [])
        }
        stateful.engine.keepOnly(Set(consumer.assignment.map(\.partition)))
        logger.info("state restored", metadata: [
            "partitions": "\(generations.keys.sorted())", "records_read": "\(read.recordsRead)", "keys": "\(snapshots.values.reduce(0) { $0 + $1.count })",
            "took": "\(ContinuousClock.now - started)",
        ])
    }

    /// Restore relies on every key having a snapshot newer than the oldest retained record.
    /// Checkpoints rewrite each key once per interval, so that holds while the retained history
    /// reaches back at least one interval; when retention (or the dev cluster's 5 MiB per
    /// partition) cut it shorter, keys written only before the cut are gone: say so loudly.
    private func warnIfCheckpointsWereCut(_ read: ChangelogRead, _ stateful: StatefulRuntime) {
        let now = Int64(Date().timeIntervalSince1970 * 1_000)
        for (partition, oldest) in read.truncatedSince.sorted(by: { $0.key < $1.key }) where now - oldest < stateful.checkpointInterval.milliseconds {
            logger.error("the state changelog no longer holds a full checkpoint of this partition: its oldest retained record is younger than the checkpoint interval, so keys not written since may be missing from the restored state; give the changelog more retention or lower worker.state-checkpoint-ms", metadata: [
                "partition": "\(partition)", "oldest_record_age_ms": "\(now - oldest)", "checkpoint_interval": "\(stateful.checkpointInterval)",
            ])
            Counter(label: "vigil_state_restores_incomplete_total", dimensions: [("worker", handler.worker)]).increment()
        }
    }

    /// Fires silence timers for keys of partitions the worker is caught up on (time spent away
    /// or catching up never counts), and writes checkpoints of keys not written for a while.
    func runTimersAndCheckpoints(_ stateful: StatefulRuntime, into pending: AsyncStream<PendingRecord>.Continuation) async throws {
        var last = ContinuousClock.now
        var lastCheckpoint = ContinuousClock.now
        while !Task.isCancelled {
            try await Task.sleep(for: stateful.tickInterval)
            let now = ContinuousClock.now
            let elapsed = (now - last).milliseconds
            last = now
            try await stateful.gate.run {
                // A record held for another input's turn goes once that input is read to its end.
                try await processMerged(into: pending)
                let caughtUp = caughtUpPartitions(stateful)
                for outputs in try await stateful.engine.advanceSilence(caughtUp: caughtUp, elapsedMilliseconds: elapsed) {
                    pending.yield(.withoutInput(deliveries: try await enqueue(outputs)))
                }
                if now - lastCheckpoint >= stateful.checkpointInterval {
                    lastCheckpoint = now
                    try flush(stateful, into: pending, snapshots: stateful.engine.checkpoint(olderThan: stateful.checkpointInterval))
                } else if recordsSinceFlush > 0 || stateful.engine.hasChanges {
                    try flush(stateful, into: pending)
                }
            }
        }
    }

    /// Restored partitions whose every input is read to its end, with nothing waiting in the buffer.
    func caughtUpPartitions(_ stateful: StatefulRuntime) -> Set<Int32> {
        guard consumer.bufferedRecords == 0 else { return [] }
        let lag = consumer.lag()
        let assigned = consumer.assignment
        return stateful.engine.ownedPartitions.filter { partition in
            let inputs = assigned.filter { $0.partition == partition }
            return !inputs.isEmpty && inputs.allSatisfy { lag[$0]?.unread == 0 }
        }
    }
}
