import Foundation
import Testing
@testable import WorkerRuntime
import WorkerRuntimeTesting

/// A stage used to exercise the runtime: doubles every record to two topics, refuses the value
/// `bad`, and keeps a per-camera count to show where per-camera state lives.
struct CountingStage: Stage {
    func process(_ input: StageInput) async throws -> [StageOutput] {
        guard input.value != Array("bad".utf8) else { throw BadRecord(offset: input.offset) }
        return [
            StageOutput(topic: "copies.v1", key: input.key, value: input.value, headers: [RecordHeader(key: "content-type", value: "test")]),
            StageOutput(topic: "sizes.v1", key: input.key, value: Array(String(input.value.count).utf8)),
        ]
    }
}

struct BadRecord: Error, CustomStringConvertible {
    let offset: Int64
    var description: String { "record at offset \(offset) is not a valid frame" }
}

func header(_ message: StageOutput, _ key: String) -> String? {
    message.headers.first { $0.key == key }?.value.map { String(decoding: $0, as: UTF8.self) }
}

@Suite("Stages in memory (StageTestDriver)")
struct StageTestDriverTests {
    @Test("outputs keep the key, get a deterministic record id, the input's trace and the stage timing")
    func outputsAndHeaders() async throws {
        let driver = StageTestDriver(stage: CountingStage(), worker: "vigil-test")
        let traceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        try await driver.feed(StageInput(
            topic: "frames.v1", partition: 2, offset: 41, key: Array("camera-7".utf8), value: Array("hello".utf8),
            headers: [RecordHeader(key: "traceparent", value: traceParent), RecordHeader(key: "vigil-stage-timing", value: "vigil-decode:120")]
        ))
        let copies = driver.outputs(topic: "copies.v1")
        let sizes = driver.outputs(topic: "sizes.v1")
        #expect(copies.count == 1 && sizes.count == 1)
        #expect(copies[0].key == Array("camera-7".utf8))
        #expect(copies[0].value == Array("hello".utf8))
        #expect(sizes[0].value == Array("5".utf8))
        #expect(header(copies[0], "content-type") == "test")
        #expect(header(copies[0], "vigil-record-id") == "frames.v1/2/41/0")
        #expect(header(sizes[0], "vigil-record-id") == "frames.v1/2/41/1")

        let outputTrace = try? #require(header(copies[0], "traceparent"))
        let parts = outputTrace?.split(separator: "-") ?? []
        #expect(parts.count == 4)
        #expect(parts[safe: 1] == "4bf92f3577b34da6a3ce929d0e0e4736", "the trace id survives")
        #expect(parts[safe: 2] != "00f067aa0ba902b7", "a new span for this stage")
        let timing = header(copies[0], "vigil-stage-timing") ?? ""
        #expect(timing.hasPrefix("vigil-decode:120,vigil-test:"), "earlier stages' timing kept, this one appended: \(timing)")
    }

    @Test("a record without a trace starts one; the same input always yields the same record id")
    func newTraceAndDeterministicIDs() async throws {
        let first = StageTestDriver(stage: CountingStage())
        let second = StageTestDriver(stage: CountingStage())
        let input = StageInput(topic: "frames.v1", partition: 0, offset: 9, key: Array("c".utf8), value: [1, 2])
        try await first.feed(input)
        try await second.feed(input)
        #expect(first.outputs.map { header($0, "vigil-record-id") } == second.outputs.map { header($0, "vigil-record-id") })
        let trace = header(first.outputs[0], "traceparent") ?? ""
        #expect(trace.split(separator: "-").count == 4 && trace.hasPrefix("00-"))
        #expect(header(first.outputs[0], "traceparent")?.split(separator: "-")[1] != header(second.outputs[0], "traceparent")?.split(separator: "-")[1],
                "independent new traces")
    }

    @Test("a refused record goes to <topic>.dlq with origin and error headers; the next one is processed")
    func deadLetter() async throws {
        let driver = StageTestDriver(stage: CountingStage(), worker: "vigil-test")
        try await driver.feed(StageInput(topic: "frames.v1", partition: 1, offset: 5, key: Array("camera-1".utf8), value: Array("bad".utf8),
                                     headers: [RecordHeader(key: "traceparent", value: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")]))
        try await driver.feed(StageInput(topic: "frames.v1", partition: 1, offset: 6, key: Array("camera-1".utf8), value: Array("good".utf8)))
        let dead = driver.deadLetters
        #expect(dead.count == 1)
        #expect(dead.first?.topic == "frames.v1.dlq")
        #expect(dead.first?.value == Array("bad".utf8), "the original bytes, unchanged")
        #expect(dead.first?.key == Array("camera-1".utf8))
        #expect(dead.first.flatMap { header($0, "vigil-dlq-origin-topic") } == "frames.v1")
        #expect(dead.first.flatMap { header($0, "vigil-dlq-origin-partition") } == "1")
        #expect(dead.first.flatMap { header($0, "vigil-dlq-origin-offset") } == "5")
        #expect(dead.first.flatMap { header($0, "vigil-dlq-error") } == "record at offset 5 is not a valid frame")
        #expect(dead.first.flatMap { header($0, "vigil-dlq-worker") } == "vigil-test")
        #expect(dead.first.flatMap { header($0, "traceparent") } != nil, "the input's own headers are kept")
        #expect(driver.outputs(topic: "copies.v1").map(\.value) == [Array("good".utf8)])
    }

    @Test("records older than the maximum age are skipped and reported, younger ones processed")
    func loadShedding() async throws {
        let driver = StageTestDriver(stage: CountingStage(), maxAge: .seconds(2))
        let now: Int64 = 1_800_000_000_000
        let old = try await driver.feed(StageInput(topic: "frames.v1", key: nil, value: [1], timestampMilliseconds: now - 2_001), nowMilliseconds: now)
        let fresh = try await driver.feed(StageInput(topic: "frames.v1", key: nil, value: [2], timestampMilliseconds: now - 1_999), nowMilliseconds: now)
        guard case .skipped(.tooOld) = old else {
            Issue.record("expected the old record to be skipped, got \(old)")
            return
        }
        guard case .processed(let outputs) = fresh else {
            Issue.record("expected the fresh record to be processed, got \(fresh)")
            return
        }
        #expect(outputs.count == 2)
        #expect(driver.skippedInputs.map(\.value) == [[1]])
    }
}

extension Array {
    subscript(safe index: Int) -> Element? { indices.contains(index) ? self[index] : nil }
}

/// A stage whose dependency can be down: it throws `StageUnavailable` while `down` is set.
final class FlakyDependencyStage: Stage, @unchecked Sendable {
    private let lock = NSLock()
    private var isDown = true
    var down: Bool {
        get { lock.withLock { isDown } }
        set { lock.withLock { isDown = newValue } }
    }

    func process(_ input: StageInput) async throws -> [StageOutput] {
        if down { throw StageUnavailable("model server unreachable") }
        return [StageOutput(topic: "copies.v1", key: input.key, value: input.value)]
    }
}

/// Waits until its task is cancelled, as a stage does that is mid-way through a slow call at shutdown.
struct SlowStage: Stage {
    func process(_ input: StageInput) async throws -> [StageOutput] {
        try await Task.sleep(for: .seconds(3_600))
        return []
    }
}

/// Writes each input, padded to `outputSize` bytes, to `topic`.
struct SizedOutputStage: Stage {
    var topic = "copies.v1"
    var outputSize: Int

    func process(_ input: StageInput) async throws -> [StageOutput] {
        [
            StageOutput(topic: topic, key: input.key, value: Array("small".utf8)),
            StageOutput(topic: topic, key: input.key, value: [UInt8](repeating: 7, count: outputSize)),
        ]
    }
}

@Suite("What a stage's failures mean (StageTestDriver)")
struct StageFailureTests {
    let camera = Array("camera-1".utf8)

    @Test("an outage (StageUnavailable) asks for a retry and is never dead-lettered; once back, the record is processed")
    func outageIsRetriedNotDeadLettered() async throws {
        let stage = FlakyDependencyStage()
        let driver = StageTestDriver(stage: stage)
        let input = StageInput(topic: "frames.v1", key: camera, value: [1, 2, 3])
        let outcome = try await driver.feed(input)
        guard case .retryLater(let reason) = outcome else { Issue.record("expected retryLater, got \(outcome)"); return }
        #expect(reason.contains("model server unreachable"))
        #expect(driver.deadLetters.isEmpty && driver.outputs.isEmpty)
        #expect(driver.retriedInputs.count == 1)
        stage.down = false
        try await driver.feed(input)
        #expect(driver.outputs(topic: "copies.v1").count == 1)
    }

    @Test("a stage cancelled at shutdown leaves its record unjudged: nothing dead-lettered, the cancellation propagates")
    func cancellationIsNotABadRecord() async throws {
        let driver = StageTestDriver(stage: SlowStage())
        let task = Task { try await driver.feed(StageInput(topic: "frames.v1", key: camera, value: [1])) }
        task.cancel()
        await #expect(throws: CancellationError.self) { try await task.value }
        #expect(driver.deadLetters.isEmpty, "cancellation is not a bad record")
    }

    @Test("one oversized output: nothing of the record is produced, it goes to the DLQ with the reason")
    func oversizedOutputIsCheckedBeforeAnyIsProduced() async throws {
        let driver = StageTestDriver(stage: SizedOutputStage(outputSize: 2_000), maxRecordBytes: 1_500)
        let outcome = try await driver.feed(StageInput(topic: "frames.v1", key: camera, value: [1]))
        guard case .deadLettered(let copy, let reason) = outcome else { Issue.record("expected a dead letter, got \(outcome)"); return }
        #expect(driver.outputs.isEmpty, "the small output is not produced alone")
        #expect(copy.topic == "frames.v1.dlq")
        #expect(reason.contains("output 1 for topic copies.v1") && reason.contains("over the 1500-byte record limit"), "\(reason)")
    }

    @Test("a partly processed record (PartiallyProcessed): what the stage made is produced with the runtime's headers, and the record goes to the DLQ with the reason")
    func partlyProcessedRecord() async throws {
        struct HalfGood: Stage {
            func process(_ input: StageInput) async throws -> [StageOutput] {
                let made = StageOutput(topic: "copies.v1", key: input.key, value: [7])
                throw PartiallyProcessed(outputs: [made], reason: "damaged after 1 frame")
            }
        }
        let driver = StageTestDriver(stage: HalfGood(), outputs: ["copies.v1"])
        let outcome = try await driver.feed(StageInput(topic: "frames.v1", key: camera, value: [1, 2]))
        guard case .partlyProcessed(let outputs, let copy, let reason) = outcome else { Issue.record("expected a partly processed record, got \(outcome)"); return }
        #expect(outputs.map(\.value) == [[7]] && outputs.first?.header(RecordHeaders.recordID) != nil)
        #expect(copy.topic == "frames.v1.dlq" && copy.value == [1, 2] && reason == "damaged after 1 frame")
        #expect(copy.header(RecordHeaders.error).map { String(decoding: $0, as: UTF8.self) } == "damaged after 1 frame")
        #expect(driver.outputs(topic: "copies.v1").count == 1 && driver.deadLetters.count == 1)
    }

    @Test("a dead letter of a near-limit input is cut to fit the record limit, and says so")
    func deadLetterCopyIsCapped() async throws {
        struct RefuseAll: Stage {
            func process(_ input: StageInput) async throws -> [StageOutput] { throw BadRecord(offset: input.offset) }
        }
        let refusing = StageTestDriver(stage: RefuseAll(), maxRecordBytes: 1_000)
        let input = StageInput(topic: "frames.v1", key: camera, value: [UInt8](repeating: 9, count: 990), headers: [RecordHeader(key: "content-type", value: "vigil.v1.Frame")])
        let outcome = try await refusing.feed(input)
        guard case .deadLettered(let copy, _) = outcome else { Issue.record("expected a dead letter, got \(outcome)"); return }
        #expect(RecordHandler.byteCount(key: copy.key, value: copy.value, headers: copy.headers) <= 1_000, "the copy fits")
        #expect(header(copy, RecordHeaders.truncatedFrom) == "990")
        #expect(header(copy, RecordHeaders.originOffset) != nil && header(copy, "content-type") == "vigil.v1.Frame")
        #expect(copy.value.allSatisfy { $0 == 9 } && !copy.value.isEmpty, "the copy keeps the value's head")
    }

    @Test("a record whose copy fits is dead-lettered whole, without a truncation header")
    func smallDeadLetterIsWhole() async throws {
        let driver = StageTestDriver(stage: CountingStage())
        let outcome = try await driver.feed(StageInput(topic: "frames.v1", key: camera, value: Array("bad".utf8)))
        guard case .deadLettered(let copy, _) = outcome else { Issue.record("expected a dead letter, got \(outcome)"); return }
        #expect(copy.value == Array("bad".utf8))
        #expect(header(copy, RecordHeaders.truncatedFrom) == nil)
    }

    @Test("a stage writing to a topic the worker did not declare stops the worker, naming the topic")
    func undeclaredOutputIsRefused() async throws {
        let driver = StageTestDriver(stage: SizedOutputStage(topic: "somewhere.else", outputSize: 1), outputs: ["copies.v1"])
        let error = await #expect(throws: UndeclaredOutput.self) {
            try await driver.feed(StageInput(topic: "frames.v1", key: camera, value: [1]))
        }
        #expect(error?.description.contains("\"somewhere.else\"") == true)
        #expect(error?.description.contains("declared: copies.v1") == true)
        #expect(driver.outputs.isEmpty && driver.deadLetters.isEmpty)
    }
}

/// Says on which thread it ran.
struct ThreadReportingStage: Stage {
    let thread = StageThread(name: "test.stage")
    var executor: (any TaskExecutor)? { thread }

    func process(_ input: StageInput) async throws -> [StageOutput] {
        [StageOutput(topic: "out", key: input.key, value: Array((thread.isCurrent ? "stage thread" : "elsewhere").utf8))]
    }
}

@Suite("A stage's own thread")
struct StageThreadTests {
    @Test("a stage that names an executor (heavy synchronous work: decode, inference) runs there, not on a cooperative thread")
    func processRunsOnTheStageThread() async throws {
        let driver = StageTestDriver(stage: ThreadReportingStage(), worker: "test")
        for index in 0..<20 { try await driver.feed(StageInput(topic: "in", key: Array("k\(index)".utf8), value: [])) }
        #expect(driver.outputs.map { String(decoding: $0.value, as: UTF8.self) } == Array(repeating: "stage thread", count: 20))
    }
}
