import Alert
import Foundation
import Kafka
import Logging
import Metrics
import SwiftProtobuf
import VigilSchema
import WorkerRuntime

/// Delivers `alerts.v1` to one endpoint, in the endpoint's own consumer group: each revision
/// in order per partition, retried on its schedule, then either accepted or dead-lettered —
/// and only then is its offset stored. A crash anywhere before that leaves the offset
/// unstored, so the revision is sent again (the receiver deduplicates by `webhook-id`);
/// nothing a receiver has not accepted or the dead letters do not hold is ever skipped.
///
/// A revision that keeps failing holds back this endpoint's later ones for at most its retry
/// schedule; other endpoints have their own groups and never wait.
final class EndpointDelivery: Sendable {
    /// What became of one record.
    enum Outcome: Sendable, Equatable {
        /// Accepted, dead-lettered or not for this endpoint: store its offset.
        case settled
        /// Stop without storing it (shutdown, the endpoint removed or gone): it is sent again
        /// when delivery resumes.
        case stopped
    }

    let name: String
    let consumer: KafkaConsumer
    let producer: KafkaProducer
    let sender: WebhookSender
    let schedule: RetrySchedule
    /// The endpoint as the table holds it now: a rotation or a new URL applies to the next attempt.
    let endpoint: @Sendable () -> Vigil_V1_WebhookEndpoint?
    let logger: Logger
    let environment: [String: String]

    init(
        name: String, consumer: KafkaConsumer, producer: KafkaProducer, sender: WebhookSender, schedule: RetrySchedule,
        environment: [String: String] = ProcessInfo.processInfo.environment,
        endpoint: @escaping @Sendable () -> Vigil_V1_WebhookEndpoint?, logger: Logger
    ) {
        self.name = name
        self.consumer = consumer
        self.producer = producer
        self.sender = sender
        self.schedule = schedule
        self.environment = environment
        self.endpoint = endpoint
        var logger = logger
        logger[metadataKey: "endpoint"] = "\(name)"
        self.logger = logger
    }

    /// Why a run ended.
    enum Ending: Sendable, Equatable {
        /// Cancelled, or the endpoint removed, disabled or gone (410): nothing to resume.
        case stopped
        /// Reading `alerts.v1` failed: worth starting again from the last commit.
        case failed
    }

    /// Runs until cancelled, or until the endpoint is removed, disabled or answers 410, or
    /// reading fails.
    func run() async -> Ending {
        do {
            for try await message in consumer.messages {
                guard await deliver(message) == .settled else { return .stopped }
                do {
                    try consumer.storeOffset(message)
                } catch {
                    // Revoked meanwhile: the partition's new owner sends it again.
                    logger.debug("offset not stored", metadata: ["error": "\(error)"])
                }
            }
            return .stopped
        } catch {
            logger.error("reading alerts.v1 for the endpoint failed; delivery starts again from its last commit", metadata: ["error": "\(error)"])
            return .failed
        }
    }

    /// Sends the revision in `message` if the endpoint takes it, with retries.
    func deliver(_ message: KafkaConsumerMessage) async -> Outcome {
        guard let current = endpoint(), current.disabledReason.isEmpty else { return .stopped }
        let alert: Vigil_V1_Alert
        do {
            alert = try Vigil_V1_Alert(serializedBytes: message.value)
        } catch {
            Counter(label: "vigil_webhook_deliveries_total", dimensions: [("endpoint", name), ("outcome", "undecodable")]).increment()
            return await deadLetter(nil, from: message, eventType: "", reason: "the alerts.v1 record is not an Alert: \(error)", attempts: 0)
        }
        guard WebhookEndpoints.takes(alert, recordedAt: message.timestampMilliseconds, by: current) else { return .settled }
        let eventType = message.header("ce_type").map { String(decoding: $0, as: UTF8.self) } ?? AlertChange.updated.eventType
        let id = WebhookSender.Request.webhookID(alert)
        let started = ContinuousClock.now
        var reason = ""
        for attempt in 1...max(1, schedule.attempts) {
            guard let endpoint = endpoint(), endpoint.disabledReason.isEmpty else { return .stopped }
            let result: WebhookSender.Attempt
            switch SecretReference.secrets(of: endpoint, environment: environment) {
            case .failure(let problem):
                // Never sent unsigned: the operator fixes the secret, a later attempt or a replay sends it.
                result = .failed(reason: "cannot sign: \(problem)", retryAfter: nil)
            case .success(let secrets):
                result = await sender.send(.revision(alert, eventType: eventType, to: endpoint.url, secrets: secrets))
            }
            if Task.isCancelled { return .stopped }
            switch result {
            case .accepted(let status):
                Counter(label: "vigil_webhook_deliveries_total", dimensions: [("endpoint", name), ("outcome", "accepted")]).increment()
                Timer(label: "vigil_webhook_delivery_seconds", dimensions: [("endpoint", name)]).recordNanoseconds(
                    (ContinuousClock.now - started).nanoseconds
                )
                logger.debug("delivered", metadata: ["webhook_id": "\(id)", "status": "\(status)", "attempt": "\(attempt)"])
                return .settled
            case .gone:
                await disable(endpoint, because: "the endpoint answered 410 Gone to \(id)")
                return .stopped
            case .failed(let why, let retryAfter):
                reason = why
                Counter(label: "vigil_webhook_failed_attempts_total", dimensions: [("endpoint", name)]).increment()
                guard attempt < schedule.attempts else { break }
                if let retryAfter, retryAfter > schedule.cap {
                    reason = "\(why); asked to retry after \(retryAfter), longer than WEBHOOK_RETRY_CAP_MS (\(schedule.cap))"
                    return await deadLetter(alert, from: message, eventType: eventType, reason: reason, attempts: attempt)
                }
                let wait = max(schedule.delay(after: attempt), retryAfter ?? .zero)
                logger.warning("delivery failed; retrying", metadata: [
                    "webhook_id": "\(id)", "attempt": "\(attempt)", "of": "\(schedule.attempts)", "reason": "\(why)", "retry_in": "\(wait)",
                ])
                do { try await Task.sleep(for: wait) } catch { return .stopped }
            }
        }
        return await deadLetter(alert, from: message, eventType: eventType, reason: reason, attempts: schedule.attempts)
    }

    /// Writes the revision to this endpoint's dead letters and waits for the broker to have it;
    /// while it cannot be written, tries again (the offset is never stored before).
    private func deadLetter(_ alert: Vigil_V1_Alert?, from message: KafkaConsumerMessage, eventType: String, reason: String, attempts: Int) async -> Outcome {
        var letter = Vigil_V1_WebhookDeadLetter()
        letter.endpoint = name
        if let alert { letter.alert = alert }
        letter.eventType = eventType
        letter.reason = reason
        letter.attempts = UInt32(attempts)
        letter.lastAttemptTime = Google_Protobuf_Timestamp(date: Date())
        letter.source.topic = message.topic
        letter.source.partition = message.partition
        letter.source.offset = message.offset
        logger.error("dead-lettered after its last attempt; vigil webhooks replay sends it again", metadata: [
            "webhook_id": "\(alert.map { "\($0.alertID)/\($0.revision)" } ?? "?")", "attempts": "\(attempts)", "reason": "\(reason)",
        ])
        Counter(label: "vigil_webhook_deliveries_total", dimensions: [("endpoint", name), ("outcome", "dead_lettered")]).increment()
        return await sendUntilAcknowledged([
            KafkaProducerMessage(topic: WebhookEndpoints.deadLetterTopic, key: name, value: (try? letter.serializedBytes()) ?? [])
        ]) ? .settled : .stopped
    }

    /// Writes the endpoint back disabled (and its audit event first): nothing more is sent to
    /// it until the endpoints file is applied again.
    private func disable(_ endpoint: Vigil_V1_WebhookEndpoint, because reason: String) async {
        let now = Int64(Date().timeIntervalSince1970 * 1_000)
        var disabled = endpoint
        disabled.version += 1
        disabled.author = WebhookEndpoints.workerAuthor
        disabled.updatedTime = Google_Protobuf_Timestamp(milliseconds: now)
        disabled.disabledReason = reason
        let event = AuditEvents.event(
            id: "webhook:\(name):v\(disabled.version)", kind: .subscriptionChanged, actor: WebhookEndpoints.workerAuthor, subject: "webhook:\(name)",
            detail: "disabled: \(reason); apply the endpoints file again (vigil webhooks apply) to enable it", origin: "vigil-alert",
            at: Date(timeIntervalSince1970: Double(now) / 1_000)
        )
        let record = TableRecords.record(key: name, value: try? disabled.serializedBytes(), effectiveMilliseconds: now)
        logger.error("endpoint disabled: it answered 410 Gone; apply the endpoints file again to enable it")
        Counter(label: "vigil_webhook_endpoints_disabled_total", dimensions: [("endpoint", name)]).increment()
        _ = await sendUntilAcknowledged([
            KafkaProducerMessage(topic: "audit.events.v1", key: "webhook:\(name)", value: (try? event.serializedBytes()) ?? []),
            KafkaProducerMessage(topic: WebhookEndpoints.topic, key: record.key, value: record.value, headers: record.headers.map { KafkaHeader(key: $0.key, value: $0.value) }),
        ])
    }

    /// Sends `messages` in order, retrying every second while the cluster refuses; false when
    /// cancelled first.
    private func sendUntilAcknowledged(_ messages: [KafkaProducerMessage]) async -> Bool {
        while !Task.isCancelled {
            do {
                try await producer.send(all: messages)
                return true
            } catch {
                logger.warning("cannot write to the cluster; trying again in 1 s", metadata: ["error": "\(error)"])
                do { try await Task.sleep(for: .seconds(1)) } catch { return false }
            }
        }
        return false
    }
}

extension Duration {
    /// Whole nanoseconds, as the metrics' timers and the HTTP client's deadlines take them.
    var nanoseconds: Int64 {
        components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000
    }
}
