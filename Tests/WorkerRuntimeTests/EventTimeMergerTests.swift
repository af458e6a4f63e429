import Kafka
import Logging
import Testing
@testable import WorkerRuntime

@Suite("Merging several inputs by event time")
struct EventTimeMergerTests {
    static let logger = Logger(label: "merger-test")

    static func record(_ topic: String, offset: Int64, at eventTime: Int64, partition: Int32 = 0) -> KafkaConsumerMessage {
        KafkaConsumerMessage(
            topic: topic, partition: partition, offset: offset, key: Array("cam-1".utf8), value: [],
            headers: [KafkaHeader(key: RecordHeaders.eventTime, value: String(eventTime))]
        )
    }

    static func names(_ records: [KafkaConsumerMessage]) -> [String] {
        records.map { "\($0.topic)@\($0.offset)" }
    }

    /// Feeds `arrivals` one at a time, releasing what may go after each, then drains with every
    /// topic read to its end.
    static func order(_ arrivals: [KafkaConsumerMessage]) -> [String] {
        var merger = EventTimeMerger(topics: ["detections", "health"])
        var released: [KafkaConsumerMessage] = []
        for arrival in arrivals {
            merger.add(arrival)
            released += merger.release(isReadToEnd: { _ in false }, logger: logger)
        }
        released += merger.release(isReadToEnd: { _ in true }, logger: logger)
        return names(released)
    }

    @Test("the same records in any arrival interleaving come out in one order: event time, then topic, then offset")
    func deterministicOrder() {
        let detections = [Self.record("detections", offset: 0, at: 100), Self.record("detections", offset: 1, at: 300), Self.record("detections", offset: 2, at: 500)]
        let health = [Self.record("health", offset: 0, at: 300), Self.record("health", offset: 1, at: 400)]
        let expected = ["detections@0", "detections@1", "health@0", "health@1", "detections@2"]
        #expect(Self.order(detections + health) == expected)
        #expect(Self.order(health + detections) == expected)
        #expect(Self.order([detections[0], health[0], detections[1], health[1], detections[2]]) == expected)
    }

    @Test("a record waits while another input of its partition may still bring an earlier one, and goes once that input is read to its end")
    func waitsForTheOtherInput() {
        var merger = EventTimeMerger(topics: ["detections", "health"])
        merger.add(Self.record("detections", offset: 0, at: 100))
        #expect(merger.release(isReadToEnd: { _ in false }, logger: Self.logger).isEmpty)
        let released = merger.release(isReadToEnd: { $0.topic == "health" }, logger: Self.logger)
        #expect(Self.names(released) == ["detections@0"])
        merger.add(Self.record("detections", offset: 1, at: 50, partition: 1))
        #expect(Self.names(merger.release(isReadToEnd: { $0.partition == 1 }, logger: Self.logger)) == ["detections@1"], "partitions wait independently")
    }

    @Test("within one topic, offset order holds even when event times go backwards")
    func offsetOrderWithinATopic() {
        let arrivals = [Self.record("detections", offset: 0, at: 500), Self.record("detections", offset: 1, at: 200), Self.record("health", offset: 0, at: 300)]
        #expect(Self.order(arrivals) == ["health@0", "detections@0", "detections@1"])
    }

    @Test("memory stays bounded: past maxHeld records the oldest goes even though another input lags")
    func boundedHolding() {
        var merger = EventTimeMerger(topics: ["detections", "health"], maxHeld: 3)
        for offset in 0..<3 { merger.add(Self.record("detections", offset: Int64(offset), at: 100 + Int64(offset))) }
        #expect(Self.names(merger.release(isReadToEnd: { _ in false }, logger: Self.logger)) == ["detections@0"])
    }
}
