import Foundation
import WorkerRuntime

/// A stateful worker for the runtime's own tests and benchmark: counts the records of each
/// key (camera) per one-second event-time window of `events`, and writes each window's count
/// to `counts` once the key's watermark has passed the window's end ("key-3 window 1012000
/// count 5"), and "key-3 silent <time>" after `COUNTING_SILENCE_MS` of caught-up time without
/// a record. Its state and timers live in the runtime, restored from
/// `vigil-counting.state.changelog`. `COUNTING_UNENCODABLE_KEY` names a key whose state
/// refuses to encode, for the runtime's test of a stage with that bug.
struct WindowCountingStage: StatefulStage {
    struct Counts: StageState {
        /// Window end (ms since the epoch) → records counted in that window.
        var windows: [Int64: Int] = [:]
        var unencodable = false

        init() {}

        init(stateBytes: [UInt8]) throws {
            for entry in String(decoding: stateBytes, as: UTF8.self).split(separator: ",") {
                let pair = entry.split(separator: ":")
                guard pair.count == 2, let end = Int64(pair[0]), let count = Int(pair[1]) else { throw MalformedCounts() }
                windows[end] = count
            }
        }

        var stateBytes: [UInt8] {
            get throws {
                guard !unencodable else { throw UnencodableCounts() }
                return Array(windows.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }.joined(separator: ",").utf8)
            }
        }
    }

    struct UnencodableCounts: Error, CustomStringConvertible {
        var description: String { "COUNTING_UNENCODABLE_KEY names this key" }
    }

    struct MalformedCounts: Error, CustomStringConvertible {
        var description: String { "counting state is not a list of end:count pairs" }
    }

    let output: String
    let allowedLateness: Duration
    let silence: Duration
    var unencodableKey: String?

    func process(_ input: StageInput, key: String, eventTime: Int64, state: inout Counts?, timers: inout Timers) async throws -> [StageOutput] {
        var counts = state ?? Counts()
        if key == unencodableKey { counts.unencodable = true }
        let windowEnd = (eventTime / 1_000 + 1) * 1_000
        counts.windows[windowEnd, default: 0] += 1
        state = counts
        timers.schedule("window-\(windowEnd)", atEventTime: windowEnd)
        timers.scheduleSilence("silent", after: silence)
        return []
    }

    func timerFired(_ timer: FiredTimer, key: String, state: inout Counts?, timers: inout Timers) async throws -> [StageOutput] {
        let text = switch timer.kind {
        case .eventTime: "\(key) window \(timer.scheduledMilliseconds) count \(state?.windows.removeValue(forKey: timer.scheduledMilliseconds) ?? 0)"
        case .silence: "\(key) silent \(timer.scheduledMilliseconds)"
        }
        return [StageOutput(topic: output, key: Array(key.utf8), value: Array(text.utf8))]
    }
}

WorkerCommandLine.answerHelpOrVersion(worker: "vigil-counting", summary: "the runtime's stateful test and benchmark worker: counts records per key and one-second event-time window", settings: [
    WorkerSetting("COUNTING_OUTPUT", default: "counts", "the topic the counts go to"),
    WorkerSetting("COUNTING_LATENESS_MS", default: "500", "allowed lateness in event time"),
    WorkerSetting("COUNTING_SILENCE_MS", default: "3000", "caught-up time without a record after which a key says it is silent"),
    WorkerSetting("COUNTING_UNENCODABLE_KEY", default: "none", "a key whose state refuses to encode (tests the runtime's answer to that bug)"),
])
let environment = ProcessInfo.processInfo.environment
try await Worker.run(
    stage: WindowCountingStage(
        output: environment["COUNTING_OUTPUT"] ?? "counts",
        allowedLateness: .milliseconds(Int(environment["COUNTING_LATENESS_MS"] ?? "") ?? 500),
        silence: .milliseconds(Int(environment["COUNTING_SILENCE_MS"] ?? "") ?? 3_000),
        unencodableKey: environment["COUNTING_UNENCODABLE_KEY"]
    ),
    name: "vigil-counting"
)
