import Foundation

/// Caps what is in flight at once (records a producer holds, records a worker awaits), by
/// count and optionally by bytes: `acquire` waits while either cap is reached, so a fast
/// caller slows down instead of growing memory without bound. Waiters are served in order;
/// a waiting `acquire` ends with `CancellationError` when its task is cancelled.
public final class InFlightLimiter: @unchecked Sendable {
    private let lock = NSLock()
    private var availableSlots: Int
    private let byteLimit: Int
    private var availableBytes: Int
    private var waiters: [Waiter] = []
    private var nextWaiterID = 0
    private var closedError: (any Error)?

    private struct Waiter {
        let id: Int
        let bytes: Int
        let continuation: CheckedContinuation<Void, any Error>
    }

    /// - Parameters:
    ///   - limit: things in flight at once.
    ///   - byteLimit: their bytes at once; one thing larger than the whole limit is let
    ///     through when nothing else is in flight.
    public init(limit: Int, byteLimit: Int = .max) {
        precondition(limit > 0 && byteLimit > 0, "in-flight limits must be positive")
        availableSlots = limit
        self.byteLimit = byteLimit
        availableBytes = byteLimit
    }

    /// Takes one slot and `bytes` of the byte budget, waiting while they are not free.
    public func acquire(bytes: Int = 0) async throws {
        let charge = min(max(0, bytes), byteLimit)
        let id: Int? = try lock.withLock {
            if let closedError { throw closedError }
            if waiters.isEmpty && fits(charge) {
                take(charge)
                return nil
            }
            nextWaiterID += 1
            return nextWaiterID
        }
        guard let id else { return }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                lock.lock()
                if let closedError {
                    lock.unlock()
                    continuation.resume(throwing: closedError)
                } else if Task.isCancelled {
                    lock.unlock()
                    continuation.resume(throwing: CancellationError())
                } else if waiters.isEmpty && fits(charge) {
                    take(charge)
                    lock.unlock()
                    continuation.resume()
                } else {
                    waiters.append(Waiter(id: id, bytes: charge, continuation: continuation))
                    lock.unlock()
                }
            }
        } onCancel: {
            lock.lock()
            let cancelled = waiters.firstIndex { $0.id == id }.map { waiters.remove(at: $0) }
            let ready = cancelled == nil ? [] : admitWaiters()
            lock.unlock()
            cancelled?.continuation.resume(throwing: CancellationError())
            for waiter in ready { waiter.continuation.resume() }
        }
    }

    /// Callers waiting for a slot right now.
    public var waiting: Int { lock.withLock { waiters.count } }

    /// Gives back one slot and `bytes` (as passed to `acquire`).
    public func release(bytes: Int = 0) {
        lock.lock()
        availableSlots += 1
        availableBytes += min(max(0, bytes), byteLimit)
        let ready = admitWaiters()
        lock.unlock()
        for waiter in ready { waiter.continuation.resume() }
    }

    /// Fails every waiting and future `acquire` with `error`.
    public func close(with error: any Error) {
        lock.lock()
        closedError = error
        let pending = waiters
        waiters = []
        lock.unlock()
        for waiter in pending { waiter.continuation.resume(throwing: error) }
    }

    private func fits(_ bytes: Int) -> Bool {
        availableSlots > 0 && (bytes <= availableBytes || availableBytes == byteLimit)
    }

    private func take(_ bytes: Int) {
        availableSlots -= 1
        availableBytes -= bytes
    }

    /// Admits waiters from the front while they fit; called with the lock held.
    private func admitWaiters() -> [Waiter] {
        var ready: [Waiter] = []
        while let first = waiters.first, fits(first.bytes) {
            waiters.removeFirst()
            take(first.bytes)
            ready.append(first)
        }
        return ready
    }
}
