import Foundation
import Kafka
import W3CTraceContext

/// A worker with no input topic (vigil-ingest): its replicas split the partitions of a table
/// (`cameras.v1`, the worker's `owns` in the topology) through their consumer group, and each
/// runs `run(key:value:output:)` once for every key (camera) of its partitions.
///
/// The runtime keeps one run per owned key: it starts it once the key's partition is read to
/// its end, cancels it when the partition moves to another replica or the key is deleted, and
/// cancels and restarts it when the key's value changes. A run that throws is restarted after
/// a backoff; one that returns (a file that ended) is done until its value changes.
public protocol Source: Sendable {
    associatedtype Value: Sendable & Equatable

    /// Works on one owned key until cancelled. Check for cancellation (any `await` on a
    /// cancellable call does): ownership may move at any moment, and the next owner starts
    /// as soon as this run returns.
    func run(key: String, value: Value, output: SourceOutput) async throws

    /// Output topics whose records are already compressed media (H.264 chunks, JPEG images):
    /// the producer sends them without its zstd, which would cost CPU and save nothing.
    var alreadyCompressedOutputs: Set<String> { get }
}

extension Source {
    public var alreadyCompressedOutputs: Set<String> { [] }
}

/// Where a source's records go: the worker's producer, with its byte budget.
public struct SourceOutput: Sendable {
    let emitter: SourceEmitter

    /// Queues `record` for delivery; waits while the producer's in-flight budget is full.
    /// Delivery is awaited by the runtime in the background: an output not delivered within
    /// the delivery timeout stops the worker (restarted, the source produces again).
    /// - Throws: `UndeclaredOutput` for a topic the worker does not declare (the worker stops),
    ///   `SourceRecordTooLarge` for a record over the size limit (the run is restarted),
    ///   `CancellationError` when the run is being stopped.
    public func send(_ record: StageOutput) async throws {
        try await emitter.send(record)
    }
}

/// A source record over the producer's size limit.
public struct SourceRecordTooLarge: Error, CustomStringConvertible {
    public var topic: String
    public var bytes: Int
    public var limit: Int

    public var description: String {
        "a record for \(topic) is \(bytes) bytes, over the \(limit)-byte limit; the source must cut smaller records"
    }
}

/// Checks and produces source records, and hands their deliveries to the runner's watcher.
final class SourceEmitter: @unchecked Sendable {
    private let producer: KafkaProducer
    private let declaredOutputs: Set<String>
    private let maxRecordBytes: Int
    private let metrics: WorkerMetrics
    private let deliveries: AsyncStream<(topic: String, delivery: KafkaPendingDelivery)>.Continuation
    private let spanIDs = SpanIDGenerator()

    init(
        producer: KafkaProducer, declaredOutputs: Set<String>, maxRecordBytes: Int, metrics: WorkerMetrics,
        deliveries: AsyncStream<(topic: String, delivery: KafkaPendingDelivery)>.Continuation
    ) {
        self.producer = producer
        self.declaredOutputs = declaredOutputs
        self.maxRecordBytes = maxRecordBytes
        self.metrics = metrics
        self.deliveries = deliveries
    }

    func send(_ record: StageOutput) async throws {
        try Task.checkCancellation()
        guard declaredOutputs.contains(record.topic) else {
            throw UndeclaredOutput(topic: record.topic, declared: declaredOutputs.sorted())
        }
        var headers = record.headers
        if !headers.contains(where: { $0.key == RecordHeaders.traceParent }) {
            // A source begins the record's trace.
            headers.append(RecordHeader(key: RecordHeaders.traceParent, value: spanIDs.newTrace().traceParentHeaderValue))
        }
        let size = RecordHandler.byteCount(key: record.key, value: record.value, headers: headers)
        guard size <= maxRecordBytes else { throw SourceRecordTooLarge(topic: record.topic, bytes: size, limit: maxRecordBytes) }
        let delivery = try await producer.enqueue(KafkaProducerMessage(StageOutput(topic: record.topic, key: record.key, value: record.value, headers: headers)))
        metrics.recordOut(topic: record.topic)
        deliveries.yield((record.topic, delivery))
    }
}
