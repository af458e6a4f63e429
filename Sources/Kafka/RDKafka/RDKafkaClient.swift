import CRdKafka
import Foundation
import Logging

/// Callbacks librdkafka calls from its own threads, reached through the handle's opaque pointer.
///
/// Set up before the handle exists and never changed afterwards, so reading the closures
/// from any thread is safe. The box outlives the handle: it is released only after
/// `rd_kafka_destroy` returns, because librdkafka may still log while destroying.
final class RDKafkaCallbacks: @unchecked Sendable {
    let logger: Logger
    /// Consumer group rebalance; runs on the thread that polls the consumer.
    let rebalance: (@Sendable (OpaquePointer, rd_kafka_resp_err_t, UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) -> Void)?
    /// librdkafka's statistics JSON, every `statistics.interval.ms`; runs on the polling thread.
    let statistics: (@Sendable (Data) -> Void)?

    init(
        logger: Logger,
        rebalance: (@Sendable (OpaquePointer, rd_kafka_resp_err_t, UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) -> Void)? = nil,
        statistics: (@Sendable (Data) -> Void)? = nil
    ) {
        self.logger = logger
        self.rebalance = rebalance
        self.statistics = statistics
    }

    static func from(_ handle: OpaquePointer?) -> RDKafkaCallbacks? {
        guard let handle, let opaque = rd_kafka_opaque(handle) else { return nil }
        return Unmanaged<RDKafkaCallbacks>.fromOpaque(opaque).takeUnretainedValue()
    }
}

/// What is left to free of a client: its handle, its topic handles and its callbacks box, in
/// that order (librdkafka may log while destroying, through the box).
private struct DestroyedHandle: @unchecked Sendable {
    let handle: OpaquePointer
    let topics: [OpaquePointer]
    let callbacks: Unmanaged<RDKafkaCallbacks>

    func destroy(skipConsumerClose: Bool = false) {
        topics.forEach { rd_kafka_topic_destroy($0) }
        if skipConsumerClose {
            rd_kafka_destroy_flags(handle, Int32(RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE))
        } else {
            rd_kafka_destroy(handle)
        }
        callbacks.release()
    }
}

/// Owns one `rd_kafka_t` handle: creates it from checked properties and destroys it exactly once.
final class RDKafkaClient: @unchecked Sendable {
    enum Role {
        case producer, consumer

        var cType: rd_kafka_type_t { self == .producer ? RD_KAFKA_PRODUCER : RD_KAFKA_CONSUMER }
    }

    let handle: OpaquePointer
    let logger: Logger
    private let callbacks: Unmanaged<RDKafkaCallbacks>

    /// - Parameter configure: installs role-specific callbacks on the configuration
    ///   (delivery reports, rebalance) before the handle is created.
    init(
        role: Role,
        properties: [(String, String)],
        callbacks: RDKafkaCallbacks,
        configure: (OpaquePointer) -> Void = { _ in }
    ) throws(KafkaError) {
        let configuration = try Self.makeConfiguration(properties)
        let retained = Unmanaged.passRetained(callbacks)
        rd_kafka_conf_set_opaque(configuration, retained.toOpaque())
        rd_kafka_conf_set_log_cb(configuration) { handle, level, facility, message in
            RDKafkaCallbacks.from(handle)?.logger.log(
                level: Logger.Level(syslogLevel: level),
                "\(String(cString: message!))",
                metadata: ["librdkafka.facility": "\(String(cString: facility!))"]
            )
        }
        rd_kafka_conf_set_error_cb(configuration) { handle, code, reason, _ in
            // Transport errors are routine (a broker restarts) and librdkafka retries them itself;
            // they are logged so an operator can see a broker going away.
            let error = rd_kafka_resp_err_t(rawValue: code)
            let fatal = error == RD_KAFKA_RESP_ERR__FATAL
            RDKafkaCallbacks.from(handle)?.logger.log(
                level: fatal ? .critical : .warning,
                "kafka client error: \(String(cString: reason!))",
                metadata: ["kafka.error": "\(String(cString: rd_kafka_err2name(error)))"]
            )
        }
        if callbacks.rebalance != nil {
            rd_kafka_conf_set_rebalance_cb(configuration) { handle, code, partitions, _ in
                guard let handle, let partitions, let callbacks = RDKafkaCallbacks.from(handle) else { return }
                callbacks.rebalance?(handle, code, partitions)
            }
        }
        if callbacks.statistics != nil {
            rd_kafka_conf_set_stats_cb(configuration) { handle, json, length, _ in
                guard let json else { return 0 }
                RDKafkaCallbacks.from(handle)?.statistics?(Data(bytes: json, count: length))
                return 0  // librdkafka frees the JSON
            }
        }
        configure(configuration)

        var errorText = [CChar](repeating: 0, count: 512)
        // On success rd_kafka_new takes ownership of the configuration; on failure we still own it.
        guard let handle = rd_kafka_new(role.cType, configuration, &errorText, errorText.count) else {
            rd_kafka_conf_destroy(configuration)
            retained.release()
            throw KafkaError(kind: .clientFailed, detail: "cannot create Kafka client: \(String(cBuffer: errorText))")
        }
        self.handle = handle
        self.logger = callbacks.logger
        self.callbacks = retained
    }

    /// The handle's life, one way only: `open` (with the calls in progress) → `destroying`
    /// (no new call; waiting for those in progress) → `destroyed`. A call once it is not open
    /// fails with `.closed` instead of touching freed memory.
    enum Lifecycle: Equatable {
        case open(activeCalls: Int)
        case destroying(activeCalls: Int)
        case destroyed
    }

    private let users = NSCondition()
    private var lifecycle = Lifecycle.open(activeCalls: 0)  // guarded by `users`
    /// Topic handles made with their own configuration; destroyed before the client.
    private var topicHandles: [OpaquePointer] = []  // guarded by `users`

    /// Makes the client's handle for `topic` with topic-level `properties`, before anything is
    /// produced to it: records produced by topic name then use this handle and its settings.
    func configureTopic(_ topic: String, properties: [(String, String)]) throws(KafkaError) {
        let configuration = rd_kafka_topic_conf_new()!
        var errorText = [CChar](repeating: 0, count: 512)
        for (name, value) in properties {
            let result = rd_kafka_topic_conf_set(configuration, name, value, &errorText, errorText.count)
            guard result == RD_KAFKA_CONF_OK else {
                rd_kafka_topic_conf_destroy(configuration)
                throw Self.invalidProperty(name, value: value, result: result, librdkafkaText: String(cBuffer: errorText))
            }
        }
        // rd_kafka_topic_new takes ownership of the configuration, on failure too.
        let topicHandle = try withHandle("configure topic \(topic)") { handle throws(KafkaError) in
            guard let topicHandle = rd_kafka_topic_new(handle, topic, configuration) else {
                throw KafkaError.rdKafka(rd_kafka_last_error(), kind: .clientFailed, context: "cannot configure topic \(topic)")
            }
            return topicHandle
        }
        users.withLock { topicHandles.append(topicHandle) }
    }

    /// Handles nobody destroyed explicitly (admin clients) go when their last user does, on a
    /// thread of their own: `rd_kafka_destroy` blocks (it joins librdkafka's threads and may wait
    /// for brokers), and a deinit may run on the cooperative pool. No call is in progress here:
    /// every call holds a reference to the client.
    deinit {
        guard lifecycle == .open(activeCalls: 0) else { return }
        let remains = DestroyedHandle(handle: handle, topics: topicHandles, callbacks: callbacks)
        Thread.detachNewThread { remains.destroy() }
    }

    /// Runs `body` with the live handle, or throws `.closed` once the client is being destroyed.
    func withHandle<T>(_ operation: @autoclosure () -> String, _ body: (OpaquePointer) throws(KafkaError) -> T) throws(KafkaError) -> T {
        users.lock()
        guard case .open(let calls) = lifecycle else {
            users.unlock()
            throw KafkaError.closed(operation())
        }
        lifecycle = .open(activeCalls: calls + 1)
        users.unlock()
        defer {
            users.lock()
            switch lifecycle {
            case .open(let calls): lifecycle = .open(activeCalls: calls - 1)
            case .destroying(let calls):
                lifecycle = .destroying(activeCalls: calls - 1)
                if calls == 1 { users.broadcast() }
            case .destroyed: preconditionFailure("the Kafka handle was destroyed during a call")
            }
            users.unlock()
        }
        return try body(handle)
    }

    /// Destroys the handle, once, after the calls in progress have returned; later calls do
    /// nothing. Blocks: call it off the cooperative pool (`onBlockingThread`).
    func destroy(skipConsumerClose: Bool = false) {
        users.lock()
        guard case .open(let calls) = lifecycle else {
            users.unlock()
            return
        }
        lifecycle = .destroying(activeCalls: calls)
        while case .destroying(let remaining) = lifecycle, remaining > 0 { users.wait() }
        lifecycle = .destroyed
        let topics = topicHandles
        topicHandles = []
        users.unlock()
        DestroyedHandle(handle: handle, topics: topics, callbacks: callbacks).destroy(skipConsumerClose: skipConsumerClose)
    }

    /// Asks any broker for cluster metadata, off the cooperative pool: proves the bootstrap
    /// servers answer, or throws `.brokersUnreachable` after the cluster's request timeout.
    func checkConnectivity(_ cluster: KafkaConfiguration) async throws {
        try await onBlockingThread { [self] () throws(KafkaError) in
            try checkConnectivity(bootstrapServers: cluster.bootstrapServers, timeout: cluster.requestTimeout)
        }
    }

    private func checkConnectivity(bootstrapServers: String, timeout: Duration) throws(KafkaError) {
        let code = try withHandle("check connectivity") { handle in
            var metadata: UnsafePointer<rd_kafka_metadata>?
            let code = rd_kafka_metadata(handle, 0, nil, &metadata, Int32(timeout.milliseconds))
            if let metadata { rd_kafka_metadata_destroy(metadata) }
            return code
        }
        guard code == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw KafkaError(
                kind: .brokersUnreachable,
                code: Int32(code.rawValue),
                isRetriable: true,
                detail: "no broker of \(bootstrapServers) answered within \(timeout); "
                    + "check the address, that the cluster is running, and TLS/SASL settings"
            )
        }
    }

    /// Builds and checks an `rd_kafka_conf_t`; the caller owns the result.
    static func makeConfiguration(_ properties: [(String, String)]) throws(KafkaError) -> OpaquePointer {
        let configuration = rd_kafka_conf_new()!
        var errorText = [CChar](repeating: 0, count: 512)
        for (name, value) in properties {
            let result = rd_kafka_conf_set(configuration, name, value, &errorText, errorText.count)
            guard result == RD_KAFKA_CONF_OK else {
                rd_kafka_conf_destroy(configuration)
                throw invalidProperty(name, value: value, result: result, librdkafkaText: String(cBuffer: errorText))
            }
        }
        return configuration
    }

    private static func invalidProperty(
        _ name: String, value: String, result: rd_kafka_conf_res_t, librdkafkaText: String
    ) -> KafkaError {
        if result == RD_KAFKA_CONF_UNKNOWN {
            return KafkaError(
                kind: .invalidConfiguration,
                detail: "unknown Kafka property \"\(name)\": check its spelling against librdkafka's CONFIGURATION.md"
            )
        }
        let reason = KafkaConfiguration.isSecret(name) && !value.isEmpty
            ? librdkafkaText.replacingOccurrences(of: value, with: "<redacted>")
            : librdkafkaText
        return KafkaError(kind: .invalidConfiguration, detail: "invalid value for Kafka property \"\(name)\": \(reason)")
    }
}

extension Logger.Level {
    /// librdkafka logs with syslog levels (0 emergency … 7 debug).
    init(syslogLevel: Int32) {
        switch syslogLevel {
        case ...2: self = .critical
        case 3: self = .error
        case 4: self = .warning
        case 5: self = .notice
        case 6: self = .info
        default: self = .debug
        }
    }
}

extension String {
    /// Text librdkafka wrote into a fixed-size, NUL-terminated buffer.
    init(cBuffer: [CChar]) {
        let bytes = cBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        self = String(decoding: bytes, as: UTF8.self)
    }
}
