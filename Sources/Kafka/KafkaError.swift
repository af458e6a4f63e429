import CRdKafka

/// An error from the Kafka layer.
///
/// `description` is safe to log: it names topics, partitions, properties and librdkafka's
/// error code, and never contains payload bytes, keys or configuration values that could
/// be secrets.
public struct KafkaError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What went wrong, in terms an operator can act on.
    public enum Kind: String, Sendable, Equatable {
        /// A configuration property is unknown or has an invalid value.
        case invalidConfiguration
        /// No broker could be reached within the configured timeout.
        case brokersUnreachable
        /// A message could not be delivered (after librdkafka's own retries).
        case deliveryFailed
        /// A message is larger than `message.max.bytes` allows.
        case messageTooLarge
        /// The consumer reported an error while fetching.
        case consumerFailed
        /// Committing or storing offsets failed.
        case offsetCommitFailed
        /// The partition is no longer this member's (revoked in a rebalance): its new owner
        /// processes the record again. Not a fault of the caller.
        case partitionNotAssigned
        /// An admin request (metadata, topics, offsets) failed.
        case adminFailed
        /// The client was closed before the operation completed.
        case closed
        /// The librdkafka handle could not be created, or a mock-cluster call failed.
        case clientFailed
        /// A bounded wait ran out (a topic not read to its end in time).
        case timedOut
    }

    public let kind: Kind
    /// librdkafka's `rd_kafka_resp_err_t` value; 0 when the error did not come from librdkafka.
    public let code: Int32
    /// True when librdkafka says the client can no longer be used (for example an
    /// idempotent producer that lost its sequence): restart the worker.
    public let isFatal: Bool
    /// True when trying again later may succeed.
    public let isRetriable: Bool
    /// A safe, operator-facing explanation.
    public let detail: String

    public init(kind: Kind, code: Int32 = 0, isFatal: Bool = false, isRetriable: Bool = false, detail: String) {
        self.kind = kind
        self.code = code
        self.isFatal = isFatal
        self.isRetriable = isRetriable
        self.detail = detail
    }

    /// librdkafka's symbolic name for `code`, e.g. `_MSG_TIMED_OUT` or `NOT_LEADER_FOR_PARTITION`.
    public var codeName: String {
        guard code != 0 else { return "NO_ERROR" }
        return String(cString: rd_kafka_err2name(rd_kafka_resp_err_t(code)))
    }

    public var description: String {
        var text = "\(kind.rawValue): \(detail)"
        if code != 0 { text += " [\(codeName)]" }
        if isFatal { text += " (fatal: restart the client)" }
        return text
    }
}

extension KafkaError {
    /// Builds an error from a librdkafka response code; `context` says what was being done.
    static func rdKafka(_ code: rd_kafka_resp_err_t, kind: Kind, context: String) -> KafkaError {
        let reason = String(cString: rd_kafka_err2str(code))
        return KafkaError(
            kind: kind,
            code: Int32(code.rawValue),
            isFatal: code == RD_KAFKA_RESP_ERR__FATAL,
            isRetriable: Self.retriableCodes.contains(code),
            detail: "\(context): \(reason)"
        )
    }

    /// Takes ownership of an `rd_kafka_error_t` (destroying it) and turns it into a `KafkaError`.
    static func consuming(_ error: OpaquePointer, kind: Kind, context: String) -> KafkaError {
        defer { rd_kafka_error_destroy(error) }
        let code = rd_kafka_error_code(error)
        return KafkaError(
            kind: kind,
            code: Int32(code.rawValue),
            isFatal: rd_kafka_error_is_fatal(error) != 0,
            isRetriable: rd_kafka_error_is_retriable(error) != 0 || Self.retriableCodes.contains(code),
            detail: "\(context): \(String(cString: rd_kafka_error_string(error)))"
        )
    }

    static func closed(_ operation: String) -> KafkaError {
        KafkaError(kind: .closed, detail: "\(operation) after the client was closed")
    }

    /// Codes where the same request may succeed later without any change by the operator.
    private static let retriableCodes: Set<rd_kafka_resp_err_t> = [
        RD_KAFKA_RESP_ERR__TRANSPORT,
        RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN,
        RD_KAFKA_RESP_ERR__TIMED_OUT,
        RD_KAFKA_RESP_ERR__MSG_TIMED_OUT,
        RD_KAFKA_RESP_ERR__QUEUE_FULL,
        RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
        RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
        RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
        RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND,
        RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
        RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
        RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS,
        RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS,
    ]
}
