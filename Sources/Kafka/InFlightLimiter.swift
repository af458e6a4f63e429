import Foundation

/// Caps how many things are in flight at once (records a producer holds, records a worker
/// awaits): `acquire` waits while the cap is reached, so a fast caller slows down instead of
/// growing memory without bound.
public final class InFlightLimiter: @unchecked Sendable {
    private let lock = NSLock()
    private var available: Int
    private var waiters: [CheckedContinuation<Void, any Error>] = []
    private var closedError: KafkaError?

    public init(limit: Int) {
        precondition(limit > 0, "in-flight limit must be positive")
        available = limit
    }

    public func acquire() async throws {
        if try tryAcquire() { return }
        try await withCheckedThrowingContinuation { continuation in
            enqueueOrResume(continuation)
        }
    }

    private func tryAcquire() throws -> Bool {
        try lock.withLock {
            if let closedError { throw closedError }
            guard available > 0 else { return false }
            available -= 1
            return true
        }
    }

    /// A slot may have been released since `tryAcquire`: take it now, or wait in line.
    private func enqueueOrResume(_ continuation: CheckedContinuation<Void, any Error>) {
        lock.lock()
        if let closedError {
            lock.unlock()
            continuation.resume(throwing: closedError)
        } else if available > 0 {
            available -= 1
            lock.unlock()
            continuation.resume()
        } else {
            waiters.append(continuation)
            lock.unlock()
        }
    }

    public func release() {
        lock.lock()
        if waiters.isEmpty {
            available += 1
            lock.unlock()
        } else {
            let next = waiters.removeFirst()
            lock.unlock()
            next.resume()
        }
    }

    /// Fails every waiting and future `acquire` with `error`.
    public func close(with error: KafkaError) {
        lock.lock()
        closedError = error
        let pending = waiters
        waiters = []
        lock.unlock()
        for waiter in pending { waiter.resume(throwing: error) }
    }
}
