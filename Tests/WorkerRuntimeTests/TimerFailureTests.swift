import Foundation
import Synchronization
import Testing
@testable import WorkerRuntime
import WorkerRuntimeTesting

/// A stage whose timer handler fails as told: each record schedules a timer one second of
/// event time later; firing it says "fired <key>" unless the handler is unavailable (the
/// first `unavailableFirings` times), fails outright, or emits a record over the size limit.
struct FlakyTimerStage: StatefulStage {
    struct Fired: StageState {
        var firings = 0
        init() {}
        init(stateBytes: [UInt8]) throws { firings = Int(String(decoding: stateBytes, as: UTF8.self)) ?? 0 }
        var stateBytes: [UInt8] { Array(String(firings).utf8) }
    }

    enum Failure: Sendable { case none, unavailable(times: Int), broken, oversized }
    struct Broken: Error, CustomStringConvertible {
        var description: String { "the rule file names a zone that is gone" }
    }

    /// Counts the handler's calls across copies of the stage.
    final class Attempts: Sendable {
        let count = Atomic<Int>(0)
    }

    let failure: Failure
    let attempts = Attempts()
    var allowedLateness: Duration { .zero }

    func process(_ input: StageInput, key: String, eventTime: Int64, state: inout Fired?, timers: inout Timers) async throws -> [StageOutput] {
        if state == nil { state = Fired() }
        timers.schedule("due-\(eventTime)", atEventTime: eventTime + 1_000)
        return []
    }

    func timerFired(_ timer: FiredTimer, key: String, state: inout Fired?, timers: inout Timers) async throws -> [StageOutput] {
        let attempt = attempts.count.add(1, ordering: .relaxed).newValue
        switch failure {
        case .unavailable(let times) where attempt <= times: throw StageUnavailable("the model server is restarting")
        case .broken: throw Broken()
        case .oversized: return [StageOutput(topic: "alerts", key: Array(key.utf8), value: [UInt8](repeating: 1, count: 2_000_000))]
        default: break
        }
        state?.firings += 1
        return [StageOutput(topic: "alerts", key: Array(key.utf8), value: Array("fired \(key)".utf8))]
    }
}

@Suite("Timer firings that fail: retried, dead-lettered, never lost silently")
struct TimerFailureTests {
    /// Records at offsets 1, 2, … by event time (10 000 ms, 11 500 ms …).
    static func event(at milliseconds: Int64) -> StageInput {
        StatefulStageTests.event("cam-1", at: milliseconds, offset: milliseconds == 10_000 ? 1 : 2)
    }

    @Test("a timer handler that is unavailable is retried until it works: the firing happens once, with its outputs")
    func unavailableIsRetried() async throws {
        let stage = FlakyTimerStage(failure: .unavailable(times: 2))
        let driver = StatefulStageTestDriver(stage: stage)
        try await driver.feed(Self.event(at: 10_000))
        try await driver.feed(Self.event(at: 11_500))
        #expect(stage.attempts.count.load(ordering: .relaxed) == 3, "two unavailable, then fired")
        #expect(StatefulStageTests.texts(driver.outputs) == ["fired cam-1"])
        #expect(driver.state(of: "cam-1")?.firings == 1)
    }

    @Test("unavailable past the outage limit: the worker stops (feed throws) with the timer still in the key's state, so it fires after the restart")
    func outageStopsWithTheTimerKept() async throws {
        let driver = StatefulStageTestDriver(stage: FlakyTimerStage(failure: .unavailable(times: .max)), outageLimit: .milliseconds(300))
        try await driver.feed(Self.event(at: 10_000))
        await #expect(throws: TimerOutage.self) { try await driver.feed(Self.event(at: 11_500)) }
        #expect(driver.timers(of: "cam-1")?.eventTimers["due-10000"] == 11_000, "the timer is kept")
        // The record whose firing stopped the worker was not applied: it comes again.
        let restarted = StatefulStageTestDriver(stage: FlakyTimerStage(failure: .none), restoredFrom: driver.changelog)
        try await restarted.feed(Self.event(at: 11_500))
        #expect(StatefulStageTests.texts(restarted.outputs) == ["fired cam-1"])
    }

    @Test("a timer handler that fails, or whose outputs cannot be sent, is dead-lettered with the key, the timer and the reason; the state keeps what it held")
    func failuresAreDeadLettered() async throws {
        for (failure, reason) in [(FlakyTimerStage.Failure.broken, "the rule file names a zone that is gone"), (.oversized, "cannot be sent")] {
            let driver = StatefulStageTestDriver(stage: FlakyTimerStage(failure: failure))
            try await driver.feed(Self.event(at: 10_000))
            try await driver.feed(Self.event(at: 11_500))
            let letters = driver.outputs.filter { $0.topic == "detections.dlq" }
            #expect(letters.count == 1 && driver.outputs.count == 1, "\(failure): only the dead letter: \(driver.outputs.map(\.topic))")
            let letter = try #require(letters.first)
            func header(_ name: String) -> String? { letter.header(name).map { String(decoding: $0, as: UTF8.self) } }
            #expect(letter.key == Array("cam-1".utf8) && letter.value.isEmpty)
            #expect(header(RecordHeaders.timer) == "event-time due-10000" && header(RecordHeaders.eventTime) == "11000")
            #expect(header(RecordHeaders.error)?.contains(reason) == true, "\(header(RecordHeaders.error) ?? "none")")
            #expect(driver.state(of: "cam-1")?.firings == 0, "the state keeps what it held")
        }
    }
}
