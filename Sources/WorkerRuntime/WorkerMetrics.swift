import Foundation
import Metrics

/// The runtime's metrics, one vocabulary for every worker (names end in `_total`/`_seconds`).
/// Handles are cached per label set: creating them per record would cost a registry lookup.
final class WorkerMetrics: @unchecked Sendable {
    private let worker: String
    private let lock = NSLock()
    private var counters: [String: Counter] = [:]
    private var gauges: [String: Gauge] = [:]
    private var recordsIn: [String: Counter] = [:]
    private var recordsOut: [String: Counter] = [:]
    private var recordsDeadLettered: [String: Counter] = [:]
    private var recordsRetried: [String: Counter] = [:]
    private let processing: Timer
    private let inFlight: Gauge

    init(worker: String) {
        self.worker = worker
        processing = Timer(label: "vigil_processing_seconds", dimensions: [("worker", worker)], preferredDisplayUnit: .seconds)
        inFlight = Gauge(label: "vigil_records_in_flight", dimensions: [("worker", worker)])
    }

    func recordIn(topic: String) { counter(&recordsIn, "vigil_records_in_total", topic).increment() }
    func recordOut(topic: String) { counter(&recordsOut, "vigil_records_out_total", topic).increment() }
    func deadLettered(topic: String) { counter(&recordsDeadLettered, "vigil_records_dead_lettered_total", topic).increment() }
    func retried(topic: String) { counter(&recordsRetried, "vigil_records_retried_total", topic).increment() }

    func skipped(topic: String, reason: RecordOutcome.SkipReason) {
        cached(&counters, "vigil_records_skipped_total|\(topic)|\(reason.rawValue)") {
            Counter(label: "vigil_records_skipped_total", dimensions: [("worker", worker), ("topic", topic), ("reason", reason.rawValue)])
        }.increment()
    }

    func processed(in duration: Duration) {
        processing.recordNanoseconds(duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000)
    }

    func setInFlight(_ count: Int) { inFlight.record(count) }

    /// Keys (cameras) a source worker runs now.
    func setKeysOwned(_ count: Int) {
        cached(&gauges, "keys_owned") { Gauge(label: "vigil_source_keys_owned", dimensions: [("worker", worker)]) }.record(count)
    }

    func sourceRunFailed() {
        cached(&counters, "source_runs_failed") { Counter(label: "vigil_source_runs_failed_total", dimensions: [("worker", worker)]) }.increment()
    }

    func setLag(topic: String, partition: Int32, lag: Int64, fetchedUnprocessed: Int64) {
        let dimensions = [("worker", worker), ("topic", topic), ("partition", String(partition))]
        cached(&gauges, "lag|\(topic)|\(partition)") { Gauge(label: "vigil_consumer_lag", dimensions: dimensions) }.record(lag)
        cached(&gauges, "fetched|\(topic)|\(partition)") { Gauge(label: "vigil_consumer_fetched_unprocessed", dimensions: dimensions) }.record(fetchedUnprocessed)
    }

    /// A per-topic counter, made on first use and looked up by topic alone: no label string is
    /// built per record.
    private func counter(_ table: inout [String: Counter], _ name: String, _ topic: String) -> Counter {
        lock.lock()
        defer { lock.unlock() }
        if let counter = table[topic] { return counter }
        let counter = Counter(label: name, dimensions: [("worker", worker), ("topic", topic)])
        table[topic] = counter
        return counter
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
