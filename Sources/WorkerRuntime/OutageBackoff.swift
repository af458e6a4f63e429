/// Waiting out a stage's outage (`StageUnavailable`), the same for a record and for a timer
/// firing: capped exponential backoff (100 ms … 5 s) until the outage has lasted `limit`
/// (`WORKER_OUTAGE_TIMEOUT_MS`), when the caller stops the worker.
struct OutageBackoff {
    let limit: Duration
    private let started = ContinuousClock.now
    /// How long the next wait is.
    private(set) var delay: Duration = .milliseconds(100)

    init(limit: Duration) {
        self.limit = limit
    }

    /// How long the outage has lasted once it reached `limit`; nil while it may be waited out.
    var exhausted: Duration? {
        let lasted = ContinuousClock.now - started
        return lasted < limit ? nil : lasted
    }

    /// Waits `delay`, then doubles it up to 5 s.
    mutating func wait() async throws {
        try await Task.sleep(for: delay)
        delay = min(delay * 2, .seconds(5))
    }
}
