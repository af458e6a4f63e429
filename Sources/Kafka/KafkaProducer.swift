import CRdKafka
import Foundation
import Logging
import ServiceLifecycle

/// Produces records with librdkafka's idempotent producer (`acks=all`, zstd except for the
/// configuration's `uncompressedTopics`).
///
/// `send` completes when the cluster acknowledged the record, with its partition and offset,
/// or throws a `KafkaError`. At most `maxInFlightMessages` records are held at once; beyond
/// that `send` waits. Run it as a `Service` (graceful shutdown flushes), or call `close()`.
public final class KafkaProducer: Service, @unchecked Sendable {
    private let client: RDKafkaClient
    private let limiter: InFlightLimiter
    private let pollThread: PollingThread
    private let state = NSLock()
    private var isClosed = false  // guarded by `state`
    private let configuration: KafkaProducerConfiguration
    private let statisticsSink: StatisticsSink

    /// Creates the producer and checks every property. Does not contact the cluster;
    /// call `checkConnectivity()` to fail fast on a wrong address.
    public init(configuration: KafkaProducerConfiguration, logger: Logger) throws(KafkaError) {
        try KafkaConfiguration.checkPassThrough(configuration.cluster.properties)
        self.configuration = configuration
        let statisticsSink = StatisticsSink()
        var receiveStatistics: (@Sendable (Data) -> Void)?
        if configuration.statisticsInterval != nil {
            receiveStatistics = { @Sendable data in statisticsSink.receive(data) }
        }
        let client = try RDKafkaClient(
            role: .producer,
            properties: configuration.librdkafkaProperties,
            callbacks: RDKafkaCallbacks(logger: logger, statistics: receiveStatistics)
        ) { configuration in
            rd_kafka_conf_set_dr_msg_cb(configuration) { _, message, _ in
                guard let message, let opaque = message.pointee._private else { return }
                let delivery = Unmanaged<PendingDeliveryState>.fromOpaque(opaque).takeRetainedValue()
                delivery.complete(with: message.pointee)
            }
        }
        for topic in configuration.uncompressedTopics.sorted() {
            try client.configureTopic(topic, properties: [("compression.codec", "none")])
        }
        self.client = client
        self.statisticsSink = statisticsSink
        self.limiter = InFlightLimiter(limit: configuration.maxInFlightMessages, byteLimit: configuration.maxInFlightBytes)
        // Delivery reports are served by rd_kafka_poll on this thread, off the cooperative pool.
        self.pollThread = PollingThread(name: "vigil.kafka.producer.poll") {
            rd_kafka_poll(client.handle, 100)
        }
    }

    /// Waits until a broker answers a metadata request, or throws `.brokersUnreachable`
    /// after the configured request timeout.
    public func checkConnectivity() async throws {
        try await client.checkConnectivity(configuration.cluster)
    }

    /// Produces one record and waits for the cluster's acknowledgement.
    @discardableResult
    public func send(_ message: KafkaProducerMessage) async throws -> KafkaDeliveryReport {
        try await enqueue(message).report()
    }

    /// Produces `messages` with all of them in flight at once, and returns once the cluster
    /// acknowledged every one (throws the first failure).
    public func send(all messages: [KafkaProducerMessage]) async throws {
        var deliveries: [KafkaPendingDelivery] = []
        for message in messages { deliveries.append(try await enqueue(message)) }
        for delivery in deliveries { _ = try await delivery.report() }
    }

    /// Hands one record to the producer and returns as soon as it is queued, so a caller can
    /// keep many records in flight and await their reports later. Waits while the in-flight
    /// limit is reached. Throws at once for records that can never be sent (too large,
    /// unknown partition, producer closed).
    public func enqueue(_ message: KafkaProducerMessage) async throws -> KafkaPendingDelivery {
        let bytes = message.byteCount
        try await limiter.acquire(bytes: bytes)
        let delivery = PendingDeliveryState(limiter: limiter, bytes: bytes)
        do {
            // librdkafka's own limits can fill before ours with many small records: wait for
            // deliveries to drain them, never drop.
            while try !produceUnlessQueueFull(message, delivery: delivery) {
                try await Task.sleep(for: .milliseconds(5))
            }
            return KafkaPendingDelivery(state: delivery)
        } catch {
            // Not queued (refused, or cancelled while waiting for room): give the slot back.
            limiter.release(bytes: bytes)
            throw error
        }
    }

    /// False when librdkafka's queue is full; throws when the record can never be queued.
    private func produceUnlessQueueFull(_ message: KafkaProducerMessage, delivery: PendingDeliveryState) throws(KafkaError) -> Bool {
        do {
            try produce(message, delivery: delivery)
            return true
        } catch where error.code == Int32(RD_KAFKA_RESP_ERR__QUEUE_FULL.rawValue) {
            return false
        }
    }

    /// librdkafka's latest statistics (with `statisticsInterval` set), or nil before the first report.
    public var statistics: KafkaProducerStatistics? { statisticsSink.latest }

    /// The largest record the producer accepts (key, value and headers), `message.max.bytes`.
    public var maxMessageBytes: Int { configuration.maxMessageBytes }

    private func produce(_ message: KafkaProducerMessage, delivery: PendingDeliveryState) throws(KafkaError) {
        if state.withLock({ isClosed }) { throw KafkaError.closed("send") }
        let headers = makeHeaders(message.headers)
        let opaque = Unmanaged.passRetained(delivery).toOpaque()
        let code = (try? client.withHandle("send") { handle in
            message.value.withUnsafeBytes { value in
                withOptionalBytes(message.key) { key in
                    vigil_rd_kafka_produce(
                        handle, message.topic, message.partition ?? RD_KAFKA_PARTITION_UA,
                        key?.baseAddress, key?.count ?? 0,
                        value.baseAddress, value.count,
                        headers, opaque
                    )
                }
            }
        }) ?? RD_KAFKA_RESP_ERR__DESTROY
        guard code == RD_KAFKA_RESP_ERR_NO_ERROR else {
            // Not queued: librdkafka owns neither the headers nor the delivery state.
            if let headers { rd_kafka_headers_destroy(headers) }
            Unmanaged<PendingDeliveryState>.fromOpaque(opaque).release()
            throw produceError(code, message: message)
        }
    }

    private func produceError(_ code: rd_kafka_resp_err_t, message: KafkaProducerMessage) -> KafkaError {
        let size = message.value.count + (message.key?.count ?? 0)
        if code == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE {
            return KafkaError(
                kind: .messageTooLarge,
                code: Int32(code.rawValue),
                detail: "a record of \(size) bytes for topic \(message.topic) exceeds message.max.bytes "
                    + "(\(configuration.maxMessageBytes)); split the payload or raise the limit on producer, topic and broker"
            )
        }
        if code == RD_KAFKA_RESP_ERR__FATAL { return fatalError() }
        if code == RD_KAFKA_RESP_ERR__DESTROY { return KafkaError.closed("send") }
        return KafkaError.rdKafka(code, kind: .deliveryFailed, context: "cannot queue a record for topic \(message.topic)")
    }

    private func fatalError() -> KafkaError {
        var reason = [CChar](repeating: 0, count: 512)
        let code = (try? client.withHandle("read the fatal error") { rd_kafka_fatal_error($0, &reason, reason.count) }) ?? RD_KAFKA_RESP_ERR__FATAL
        return KafkaError(
            kind: .deliveryFailed, code: Int32(code.rawValue), isFatal: true,
            detail: "the producer hit a fatal error and must be restarted: \(String(cBuffer: reason))"
        )
    }

    private func makeHeaders(_ headers: [KafkaHeader]) -> OpaquePointer? {
        guard !headers.isEmpty else { return nil }
        let list = rd_kafka_headers_new(headers.count)!
        for header in headers {
            if let value = header.value {
                value.withUnsafeBytes { bytes in
                    _ = rd_kafka_header_add(list, header.key, -1, bytes.baseAddress, bytes.count)
                }
            } else {
                _ = rd_kafka_header_add(list, header.key, -1, nil, 0)
            }
        }
        return list
    }

    /// Waits until every queued record was delivered or failed, for at most `timeout`.
    public func flush(timeout: Duration = .seconds(30)) async throws {
        let client = client
        let code = try await onBlockingThread { () throws(KafkaError) in try client.withHandle("flush") { rd_kafka_flush($0, Int32(timeout.milliseconds)) } }
        guard code == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw KafkaError.rdKafka(code, kind: .deliveryFailed, context: "flush did not finish within \(timeout)")
        }
    }

    /// Stops accepting records, flushes what is queued (records still undelivered after
    /// `timeout` fail their `send` with an error, never silently), and releases the client.
    public func close(timeout: Duration = .seconds(30)) async {
        let firstClose = state.withLock {
            defer { isClosed = true }
            return !isClosed
        }
        guard firstClose else { return }
        limiter.close(with: KafkaError.closed("send"))
        let client = client
        let pollThread = pollThread
        // Flush, purge and destroy block: on a thread of their own, never the cooperative pool.
        await onBlockingThread {
            if rd_kafka_flush(client.handle, Int32(timeout.milliseconds)) != RD_KAFKA_RESP_ERR_NO_ERROR {
                client.logger.error("producer closing with records undelivered after \(timeout); they are reported as failed")
                rd_kafka_purge(client.handle, Int32(RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT))
                _ = rd_kafka_flush(client.handle, 5_000)
            }
            pollThread.stop()
            client.destroy()
        }
    }

    /// Service entry point: runs until graceful shutdown, then flushes and closes.
    public func run() async throws {
        try? await gracefulShutdown()
        await close()
    }
}

/// A record the producer accepted; `report()` waits for the cluster's acknowledgement.
public struct KafkaPendingDelivery: Sendable {
    fileprivate let state: PendingDeliveryState

    public func report() async throws -> KafkaDeliveryReport {
        try await state.wait()
    }
}

/// Holds one record's outcome until someone asks for it. Created per record, retained
/// by librdkafka (as the message opaque) until its delivery report arrives.
final class PendingDeliveryState: @unchecked Sendable {
    private let lock = NSLock()
    private var result: Result<KafkaDeliveryReport, KafkaError>?
    private var waiters: [Int: CheckedContinuation<KafkaDeliveryReport, any Error>] = [:]
    private var nextWaiter = 0
    private let limiter: InFlightLimiter
    private let bytes: Int

    init(limiter: InFlightLimiter, bytes: Int) {
        self.limiter = limiter
        self.bytes = bytes
    }

    /// Called from the delivery-report callback.
    func complete(with message: rd_kafka_message_t) {
        let topic = message.rkt.map { String(cString: rd_kafka_topic_name($0)) } ?? "?"
        let outcome: Result<KafkaDeliveryReport, KafkaError>
        if message.err == RD_KAFKA_RESP_ERR_NO_ERROR {
            outcome = .success(KafkaDeliveryReport(topic: topic, partition: message.partition, offset: message.offset))
        } else {
            outcome = .failure(.rdKafka(message.err, kind: .deliveryFailed, context: "record for topic \(topic) was not delivered"))
        }
        limiter.release(bytes: bytes)
        let waiting = lock.withLock {
            result = outcome
            defer { waiters = [:] }
            return waiters.values
        }
        for waiter in waiting { waiter.resume(with: outcome.mapError { $0 as any Error }) }
    }

    /// The outcome, once the cluster answered. Cancelling the waiting task ends the wait with a
    /// `CancellationError` (the record's fate is then unknown to the caller): a shutdown
    /// bounded by its timeout must not wait for a broker that is down.
    func wait() async throws -> KafkaDeliveryReport {
        let id = lock.withLock {
            defer { nextWaiter += 1 }
            return nextWaiter
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let ready = lock.withLock { () -> Result<KafkaDeliveryReport, any Error>? in
                    if let result { return result.mapError { $0 as any Error } }
                    // Cancelled before the handler could find this waiter: end it here.
                    if Task.isCancelled { return .failure(CancellationError()) }
                    waiters[id] = continuation
                    return nil
                }
                if let ready { continuation.resume(with: ready) }
            }
        } onCancel: {
            lock.withLock { waiters.removeValue(forKey: id) }?.resume(throwing: CancellationError())
        }
    }
}

/// Calls `body` with the bytes of `bytes`, or with nil when there are none.
func withOptionalBytes<R>(_ bytes: [UInt8]?, _ body: (UnsafeRawBufferPointer?) -> R) -> R {
    guard let bytes else { return body(nil) }
    return bytes.withUnsafeBytes { body($0) }
}

/// The producer's totals since it started, from librdkafka's statistics.
public struct KafkaProducerStatistics: Sendable, Decodable {
    /// Records sent to brokers.
    public var records: Int
    /// Their key and value bytes, before compression.
    public var recordBytes: Int
    /// Bytes sent to brokers: requests, after compression.
    public var transmittedBytes: Int

    enum CodingKeys: String, CodingKey {
        case records = "txmsgs", recordBytes = "txmsg_bytes", transmittedBytes = "tx_bytes"
    }
}

/// Keeps the newest statistics report; written on the polling thread.
private final class StatisticsSink: @unchecked Sendable {
    private let lock = NSLock()
    private var newest: KafkaProducerStatistics?

    func receive(_ json: Data) {
        guard let report = try? JSONDecoder().decode(KafkaProducerStatistics.self, from: json) else { return }
        lock.withLock { newest = report }
    }

    var latest: KafkaProducerStatistics? { lock.withLock { newest } }
}
