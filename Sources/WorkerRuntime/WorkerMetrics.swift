import Foundation
import Metrics

/// The runtime's metrics, one vocabulary for every worker (names end in `_total`/`_seconds`).
/// Handles are cached per label set: creating them per record would cost a registry lookup.
final class WorkerMetrics: @unchecked Sendable {
    private let worker: String
    private let lock = NSLock()
    private var counters: [String: Counter] = [:]
    private var gauges: [String: Gauge] = [:]
    private var topicCounters: [String: TopicCounters] = [:]
    private let processing: Timer
    private let inFlight: Gauge

    init(worker: String) {
        self.worker = worker
        processing = Timer(label: "vigil_processing_seconds", dimensions: [("worker", worker)], preferredDisplayUnit: .seconds)
        inFlight = Gauge(label: "vigil_records_in_flight", dimensions: [("worker", worker)])
    }

    func recordIn(topic: String) { counters(topic).recordsIn.increment() }
    func recordOut(topic: String) { counters(topic).recordsOut.increment() }
    func deadLettered(topic: String) { counters(topic).deadLettered.increment() }
    func retried(topic: String) { counters(topic).retried.increment() }

    func skipped(topic: String, reason: RecordOutcome.SkipReason) {
        cached(&counters, "vigil_records_skipped_total|\(topic)|\(reason.rawValue)") {
            Counter(label: "vigil_records_skipped_total", dimensions: [("worker", worker), ("topic", topic), ("reason", reason.rawValue)])
        }.increment()
    }

    func processed(in duration: Duration) {
        processing.recordNanoseconds(duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000)
    }

    func setInFlight(_ count: Int) { inFlight.record(count) }

    func setLag(topic: String, partition: Int32, lag: Int64) {
        cached(&gauges, "\(topic)|\(partition)") {
            Gauge(label: "vigil_consumer_lag", dimensions: [("worker", worker), ("topic", topic), ("partition", String(partition))])
        }.record(lag)
    }

    /// The per-topic counters, made on first use. Looked up by topic alone: no label string
    /// is built per record.
    private func counters(_ topic: String) -> TopicCounters {
        lock.lock()
        defer { lock.unlock() }
        if let counters = topicCounters[topic] { return counters }
        let made = TopicCounters(worker: worker, topic: topic)
        topicCounters[topic] = made
        return made
    }

    private struct TopicCounters {
        let recordsIn: Counter
        let recordsOut: Counter
        let deadLettered: Counter
        let retried: Counter

        init(worker: String, topic: String) {
            let dimensions = [("worker", worker), ("topic", topic)]
            recordsIn = Counter(label: "vigil_records_in_total", dimensions: dimensions)
            recordsOut = Counter(label: "vigil_records_out_total", dimensions: dimensions)
            deadLettered = Counter(label: "vigil_records_dead_lettered_total", dimensions: dimensions)
            retried = Counter(label: "vigil_records_retried_total", dimensions: dimensions)
        }
    }

    private func cached<Handle>(_ table: inout [String: Handle], _ key: String, make: () -> Handle) -> Handle {
        lock.lock()
        defer { lock.unlock() }
        if let handle = table[key] { return handle }
        let handle = make()
        table[key] = handle
        return handle
    }
}
