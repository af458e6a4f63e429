import Foundation

/// Runs librdkafka's blocking calls (flush, commit, close, metadata) on a thread of their own,
/// so they never hold one of the cooperative pool's few threads.
func onBlockingThread<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        Thread.detachNewThread { continuation.resume(returning: work()) }
    }
}

/// `onBlockingThread` for work that can fail with a `KafkaError`.
func onBlockingThread<T: Sendable>(_ work: @escaping @Sendable () throws(KafkaError) -> T) async throws(KafkaError) -> T {
    try await onBlockingThread { () -> Result<T, KafkaError> in Result(catching: work) }.get()
}

/// A thread that calls `body` until stopped; `stop()` returns once the thread has finished.
final class PollingThread: @unchecked Sendable {
    private let stopRequested = NSLock()
    private var isStopRequested = false
    private let finished = DispatchSemaphore(value: 0)

    /// - Parameter body: one round of polling; it should block for at most ~100 ms so a stop is noticed.
    init(name: String, body: @escaping @Sendable () -> Void) {
        let thread = Thread { [self] in
            while !self.shouldStop { body() }
            self.finished.signal()
        }
        thread.name = name
        thread.start()
    }

    var shouldStop: Bool {
        stopRequested.withLock { isStopRequested }
    }

    func stop() {
        let alreadyStopped = stopRequested.withLock {
            defer { isStopRequested = true }
            return isStopRequested
        }
        if !alreadyStopped { finished.wait() }
    }
}
