import ChildProcesses
import CommandLineSupport
import Foundation

/// `vigil up`'s periodic summary: per worker replica, records taken and written per second
/// since the last summary, lag, dead-lettered and skipped records (shed as too old, or
/// already applied), restarts — from each
/// replica's own `/metrics`.
public struct PipelineSummary: Sendable {
    let workers: [SupervisedWorker]
    let interval: Duration

    public init(workers: [SupervisedWorker], interval: Duration) {
        self.workers = workers
        self.interval = interval
    }

    /// A replica's counters at one moment.
    struct Sample {
        var taken = 0.0
        var written = 0.0
        var lag = 0.0
        var deadLettered = 0.0
        var skipped = 0.0
    }

    public func run() async {
        var previous: [String: (sample: Sample, at: ContinuousClock.Instant)] = [:]
        while !Task.isCancelled {
            try? await Task.sleep(for: interval)
            guard !Task.isCancelled else { return }
            var rows: [[String]] = []
            for worker in workers {
                guard let port = worker.metricsPort, let sample = Self.sample(port: port) else {
                    rows.append([worker.name, "starting", "", "", "", "", "\(worker.restartCount)"])
                    continue
                }
                let now = ContinuousClock.now
                let seconds = previous[worker.name].map { max(0.001, elapsedSeconds(since: $0.at)) } ?? 0
                let before = previous[worker.name]?.sample
                func rate(_ value: Double, _ old: Double?) -> String {
                    guard let old, seconds > 0 else { return "–" }
                    return String(format: "%.1f", max(0, value - old) / seconds)
                }
                rows.append([
                    worker.name, rate(sample.taken, before?.taken), rate(sample.written, before?.written), String(format: "%.0f", sample.lag),
                    String(format: "%.0f", sample.deadLettered), String(format: "%.0f", sample.skipped), "\(worker.restartCount)",
                ])
                previous[worker.name] = (sample, now)
            }
            writeLine("")
            printTable(header: ["WORKER", "IN/S", "OUT/S", "LAG", "DLQ", "SKIPPED", "RESTARTS"], rows: rows)
        }
    }

    /// The replica's counters, summed over topics; nil when its /metrics does not answer.
    static func sample(port: Int) -> Sample? {
        guard let run = try? ChildProcess.run("/usr/bin/curl", ["-sf", "--max-time", "2", "http://127.0.0.1:\(port)/metrics"], standardError: .discard),
              run.termination == .exited(0) else { return nil }
        var sample = Sample()
        for line in run.output where !line.hasPrefix("#") {
            guard let value = line.split(separator: " ").last.flatMap({ Double($0) }) else { continue }
            if line.hasPrefix("vigil_records_in_total") { sample.taken += value }
            else if line.hasPrefix("vigil_records_out_total") { sample.written += value }
            else if line.hasPrefix("vigil_consumer_lag") { sample.lag += value }
            else if line.hasPrefix("vigil_records_dead_lettered_total") { sample.deadLettered += value }
            else if line.hasPrefix("vigil_records_skipped_total") { sample.skipped += value }
        }
        return sample
    }
}
