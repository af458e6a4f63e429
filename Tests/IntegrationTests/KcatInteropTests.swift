import ChildProcesses
import Foundation
import Testing

/// kcat is an independent Kafka client: records must cross between it and ours both ways, headers included.
@Suite("Interop with kcat", .serialized, .timeLimit(.minutes(3)))
struct KcatInteropTests {
    static let kcat = "/usr/bin/kcat"

    @Test("our producer → kcat consumer")
    func ourProducerToKcat() async throws {
        let cluster = try await DevClusterProcess(topics: ["interop-out:3"])
        try await cluster.produce(topic: "interop-out", count: 100, keys: 7)
        let kcat = try ChildProcess(Self.kcat, ["-C", "-b", cluster.bootstrapServers, "-t", "interop-out", "-o", "beginning", "-e", "-q", "-f", "%k\t%s\t%h\n"], name: "kcat consumer")
        try await kcat.waitForExit(timeout: .seconds(60))
        #expect(kcat.exitStatus == 0, "\(kcat.standardError)")

        var seen: Set<Int> = []
        for line in kcat.output where !line.isEmpty {
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            try #require(fields.count == 3, "unexpected kcat line: \(line)")
            let seq = try #require(Int(fields[2].replacingOccurrences(of: "seq=", with: "")), "header seq in \(line)")
            #expect(fields[0] == "key-\(seq % 7)")
            #expect(fields[1].hasPrefix("\(seq)."))
            seen.insert(seq)
        }
        #expect(seen == Set(0..<100))
        try await cluster.stop()
    }

    @Test("kcat producer → our consumer")
    func kcatToOurConsumer() async throws {
        let cluster = try await DevClusterProcess(topics: ["interop-in:3"])
        let input = (0..<50).map { "camera-\($0 % 4):frame-\($0)" }.joined(separator: "\n") + "\n"
        let kcat = try ChildProcess(
            Self.kcat, ["-P", "-b", cluster.bootstrapServers, "-t", "interop-in", "-K:", "-H", "origin=kcat", "-H", "seq=n/a"],
            name: "kcat producer", standardInput: Data(input.utf8)
        )
        try await kcat.waitForExit(timeout: .seconds(60))
        #expect(kcat.exitStatus == 0, "\(kcat.standardError)")

        let consumer = try cluster.consumer(topic: "interop-in", group: "interop-group")
        try await eventually("all 50 kcat records consumed") { consumer.events("message").count >= 50 }
        consumer.signal(SIGTERM)
        try await consumer.waitForExit()
        let messages = consumer.events("message")
        #expect(messages.count == 50)
        var values: Set<String> = []
        for message in messages {
            let value = message["value"] as! String
            let index = Int(value.dropFirst("frame-".count))!
            #expect(message["key"] as? String == "camera-\(index % 4)")
            #expect((message["headers"] as? [String: String]) == ["origin": "kcat", "seq": "n/a"])
            values.insert(value)
        }
        #expect(values == Set((0..<50).map { "frame-\($0)" }))
        try await cluster.stop()
    }
}
