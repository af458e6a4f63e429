import Foundation
import Hummingbird
import Kafka
import Logging
import NIOCore
import Prometheus
import ServiceLifecycle

/// Whether the worker can do its job: a broker answers, its tables are loaded, and it owns its
/// assignment — input partitions for a stage worker; for a source worker, its share of the
/// owned table read to the end (possibly no partitions, when there are more replicas than partitions).
final class Readiness: @unchecked Sendable {
    private let tables: KafkaTableReader?
    private let ownership: SourceOwnership?
    private let lock = NSLock()
    private var brokerReachable = false
    private var brokerProblem = "not checked yet"

    init(tables: KafkaTableReader? = nil, ownership: SourceOwnership? = nil) {
        self.tables = tables
        self.ownership = ownership
    }

    func setBroker(reachable: Bool, problem: String) {
        lock.withLock {
            brokerReachable = reachable
            brokerProblem = problem
        }
    }

    /// nil when ready, else why not.
    func problem(assignment: [KafkaTopicPartition]) -> String? {
        let (reachable, problem) = lock.withLock { (brokerReachable, brokerProblem) }
        if !reachable { return "broker unreachable: \(problem)" }
        if let tablesLoading = tables?.catchUpProblem { return tablesLoading }
        if let ownership { return ownership.problem }
        if assignment.isEmpty { return "no partitions assigned (joining the group, or more replicas than partitions)" }
        return nil
    }
}

/// Keeps readiness and the lag gauges current: every few seconds it asks a broker for
/// metadata and reads the consumer's cached watermarks.
struct ClusterWatch: Service {
    let consumer: KafkaConsumer
    let readiness: Readiness
    let metrics: WorkerMetrics
    let interval: Duration
    /// Whether the worker stores offsets of what it processed (a stage worker; a source worker
    /// only reads its table).
    var storesOffsets = true

    func run() async throws {
        // Ends quietly at graceful shutdown: a watch that stops is not a failure of the worker.
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    try await consumer.checkConnectivity()
                    readiness.setBroker(reachable: true, problem: "")
                } catch {
                    readiness.setBroker(reachable: false, problem: "\(error)")
                }
                for (partition, lag) in consumer.lag() {
                    // A source worker never stores offsets: what it has read is all it takes.
                    let behind = storesOffsets ? lag.unprocessed : lag.unread
                    metrics.setLag(topic: partition.topic, partition: partition.partition, lag: behind, fetchedUnprocessed: storesOffsets ? lag.fetchedUnprocessed : 0)
                }
                try? await Task.sleep(for: interval)
            }
        }
    }
}

/// `/metrics` (Prometheus text format), `/livez` and `/readyz`, served by Hummingbird.
enum HealthServer {
    static func router(
        registry: PrometheusCollectorRegistry, consumer: KafkaConsumer, readiness: Readiness, progress: LoopProgress, livenessTimeout: Duration
    ) -> Router<BasicRequestContext> {
        let router = Router()
        router.get("metrics") { _, _ in
            Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: MetricHelp.annotate(registry.emitToString())))
            )
        }
        router.get("livez") { _, _ in
            if let stuck = progress.stuck(longerThan: livenessTimeout, bufferedInput: consumer.bufferedRecords) {
                let text = "stuck: the worker loop has not advanced for \(stuck) while input is waiting (\(progress.inFlight) records in flight)\n"
                return Response(status: .serviceUnavailable, body: .init(byteBuffer: ByteBuffer(string: text)))
            }
            return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: "ok\n")))
        }
        router.get("readyz") { _, _ in
            if let problem = readiness.problem(assignment: consumer.assignment) {
                return Response(status: .serviceUnavailable, body: .init(byteBuffer: ByteBuffer(string: "not ready: \(problem)\n")))
            }
            return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: "ready\n")))
        }
        return router
    }
}

/// `# HELP` lines for vigil's metrics. swift-metrics carries no help text, so the exposition
/// gets them here, one table for every worker.
enum MetricHelp {
    static let texts: [String: String] = [
        "vigil_records_in_total": "Records consumed by the worker, per input topic.",
        "vigil_records_out_total": "Records produced by the worker, per output topic.",
        "vigil_records_dead_lettered_total": "Input records the stage refused, sent to <topic>.dlq with their origin and error.",
        "vigil_records_skipped_total": "Input records skipped on purpose, per reason: too_old (load shedding), already_applied (redelivered, already in the state), partition_revoked (its partition moved on before a stateful stage took it); never produced.",
        "vigil_records_retried_total": "Attempts to process a record again because the stage reported an outage (StageUnavailable).",
        "vigil_records_lost_total": "Records the broker dropped before this consumer read them (offset gaps).",
        "vigil_records_in_flight": "Input records processed whose outputs await the broker's acknowledgement.",
        "vigil_processing_seconds": "Time the stage spent on one input record.",
        "vigil_consumer_lag": "Records not yet processed per assigned partition: the high watermark minus the next offset not stored as processed (fetched and buffered records count; for a source worker, the records not yet read).",
        "vigil_consumer_fetched_unprocessed": "Of the lag, records already fetched into the worker (buffered, in the stage, or awaiting their outputs' acknowledgement).",
        "vigil_kafka_consumer_errors_total": "Errors the Kafka consumer reported while fetching; librdkafka retries them.",
        "vigil_table_records_total": "Table records read, per table and outcome (changed, unchanged, ignored_tombstone, rejected).",
        "vigil_source_keys_owned": "Keys (cameras) a source worker runs now.",
        "vigil_source_runs_failed_total": "Source runs that failed and were restarted after a backoff.",
        "vigil_state_keys": "Keys a stateful worker holds state for.",
        "vigil_state_bytes": "Bytes of the state snapshots of every key held, as last written.",
        "vigil_state_largest_key_bytes": "Bytes of the largest key's state snapshot, as last written.",
        "vigil_state_restored_keys_total": "Keys restored from the state changelog on assignment.",
        "vigil_state_restores_incomplete_total": "Restores from a changelog whose retained history was shorter than one checkpoint interval: keys may be missing.",
        "vigil_state_changelog_rejected_total": "State changelog records that could not be read on restore; the key kept its previous snapshot.",
        "vigil_state_over_cap_total": "Records dead-lettered because the state would pass its key or byte cap.",
        "vigil_records_late_total": "Records behind their key's watermark, dead-lettered as late.",
        "vigil_timers_fired_total": "Timers fired, per kind (event-time, silence).",
        "vigil_timer_failures_total": "Timer firings whose handler failed or whose output was too large; dropped.",
    ]

    static func annotate(_ exposition: String) -> String {
        var lines: [Substring] = []
        for line in exposition.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("# TYPE "), let name = line.split(separator: " ").dropFirst(2).first,
               let help = texts[String(name)], lines.last?.hasPrefix("# HELP \(name) ") != true {
                lines.append("# HELP \(name) \(help)")
            }
            lines.append(line)
        }
        return lines.joined(separator: "\n")
    }
}
