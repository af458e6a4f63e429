import Kafka
import Synchronization

/// How long a worker's stop may take (`WORKER_SHUTDOWN_TIMEOUT_MS`) and when it began: the
/// runners finish their records within it and close their clients within what is left, so
/// SIGTERM ends the process within the timeout plus `closingMargin`, even with a broker down.
final class ShutdownBudget: Sendable {
    let timeout: Duration
    private let began = Mutex<ContinuousClock.Instant?>(nil)

    /// The most a stop may take past `timeout`: the floors of the client closes below, which
    /// give the final commit a chance even when the records used the whole timeout.
    static let closingMargin: Duration = .seconds(5)

    init(timeout: Duration) {
        self.timeout = timeout
    }

    /// The stop began now (SIGTERM), unless it began before.
    func begin() {
        began.withLock { began in
            if began == nil { began = .now }
        }
    }

    /// What is left of the timeout, but at least `floor`. A worker stopping on an error (no
    /// SIGTERM) counts from now.
    func remaining(atLeast floor: Duration) -> Duration {
        let start = began.withLock { began in
            if began == nil { began = .now }
            return began!
        }
        return max(floor, start + timeout - .now)
    }

    /// Closes the clients a runner owns, in order and within the budget: announcements sent,
    /// the producer flushed, then the consumer commits the stored offsets and leaves the group.
    func close(announcements: Announcements, producer: KafkaProducer, consumer: KafkaConsumer) async {
        await announcements.drain(within: remaining(atLeast: .seconds(1)))
        await producer.close(timeout: remaining(atLeast: .seconds(1)))
        await consumer.close(timeout: remaining(atLeast: .seconds(3)))
    }
}
