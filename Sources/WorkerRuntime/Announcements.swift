import Foundation
import Kafka
import Logging

/// Records a worker sends apart from its stage's outputs: a table's refusal notices, the audit
/// events of the models it loaded. No input offset waits for them, so each is sent in a task
/// of its own — tracked, so the runner waits for every one before it closes the producer (an
/// untracked send could lose the race with the close, and the notice with it).
final class Announcements: @unchecked Sendable {
    private let producer: KafkaProducer
    private let logger: Logger
    private let lock = NSLock()
    private var sending: [Int: Task<Void, Never>] = [:]  // guarded by `lock`
    private var nextID = 0  // guarded by `lock`

    init(producer: KafkaProducer, logger: Logger) {
        self.producer = producer
        self.logger = logger
    }

    /// Starts sending `records`; one that cannot be sent is logged (the refusal or load it
    /// announces stands either way).
    func send(_ records: [StageOutput]) {
        guard !records.isEmpty else { return }
        lock.withLock {
            let id = nextID
            nextID += 1
            sending[id] = Task { [producer, logger] in
                do {
                    try await producer.send(all: records.map(KafkaProducerMessage.init))
                } catch {
                    logger.error("an announcement could not be sent; what it announces stands and is in this log", metadata: [
                        "topics": "\(Set(records.map(\.topic)).sorted())", "error": "\(error)",
                    ])
                }
                self.finished(id)
            }
        }
    }

    /// The announcer tables and sources call.
    var announce: @Sendable ([StageOutput]) -> Void { { [self] records in send(records) } }

    /// Waits until every announcement started so far was acknowledged or failed, for at most
    /// `budget`; those still unacknowledged then are given up (and logged as not sent).
    func drain(within budget: Duration = .seconds(30)) async {
        // Unstructured, so a cancelled caller (a stop past its timeout) still gets its budget.
        let deadline = Task.detached { [self] in
            try await Task.sleep(for: budget)
            lock.withLock { sending.values.forEach { $0.cancel() } }
        }
        while let next = lock.withLock({ sending.min { $0.key < $1.key }?.value }) {
            await next.value
        }
        deadline.cancel()
    }

    private func finished(_ id: Int) {
        lock.withLock { sending[id] = nil }
    }
}
