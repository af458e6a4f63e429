import ChildProcesses
import Foundation
import Testing

/// Consumer-group guarantees, each party in its own process on a `vigil dev-cluster`.
@Suite("Consumer groups across processes", .serialized, .timeLimit(.minutes(5)))
struct ConsumerGroupTests {
    @Test("10,000 keyed records reach a group of two consumer processes exactly once, in per-key order")
    func exactlyOncePerGroupInKeyOrder() async throws {
        let cluster = try await DevClusterProcess(topics: ["orders:6"])
        let first = try cluster.consumer(topic: "orders", group: "orders-group")
        let second = try cluster.consumer(topic: "orders", group: "orders-group")
        try await eventually("both members own partitions and together all six") {
            let owned = [first, second].map { Set(($0.events("assigned").last?["partitions"] as? [Int]) ?? []) }
            return !owned[0].isEmpty && !owned[1].isEmpty && owned[0].isDisjoint(with: owned[1]) && owned[0].union(owned[1]).count == 6
        }

        try await cluster.produce(topic: "orders", count: 10_000, keys: 50)
        try await eventually("10,000 records consumed") { consumedSequences([first, second]).count >= 10_000 }
        for consumer in [first, second] { consumer.signal(SIGTERM) }
        for consumer in [first, second] { try await consumer.waitForExit() }

        let sequences = consumedSequences([first, second])
        #expect(sequences.count == 10_000, "duplicates: \(sequences.count - Set(sequences).count)")
        #expect(Set(sequences) == Set(0..<10_000))
        #expect(!first.events("message").isEmpty && !second.events("message").isEmpty, "both members did work")
        for consumer in [first, second] {
            let byKey = Dictionary(grouping: consumer.events("message")) { $0["key"] as! String }
            for (key, messages) in byKey {
                let order = messages.compactMap { Int($0["seq"] as! String) }
                #expect(order == order.sorted(), "records of \(key) out of order")
            }
        }
        let keysSeenByBoth = Set(first.events("message").map { $0["key"] as! String })
            .intersection(second.events("message").map { $0["key"] as! String })
        #expect(keysSeenByBoth.isEmpty, "a key is read by one member only")
        try await cluster.stop()
    }

    @Test("a consumer killed with SIGKILL before committing: the survivor gets all its records")
    func killedConsumersRecordsAreRedelivered() async throws {
        let cluster = try await DevClusterProcess(topics: ["jobs:3"])
        let doomed = try cluster.consumer(topic: "jobs", group: "jobs-group", extra: ["--store", "none"])
        try await eventually("the first member owns all partitions") { (doomed.events("assigned").last?["partitions"] as? [Int])?.count == 3 }
        try await cluster.produce(topic: "jobs", count: 1_000)
        try await eventually("the first member read everything") { consumedSequences([doomed]).count >= 1_000 }
        doomed.signal(SIGKILL)
        try await doomed.waitForExit()

        let survivor = try cluster.consumer(topic: "jobs", group: "jobs-group")
        try await eventually(timeout: .seconds(90), "the survivor read all 1,000 records") { Set(consumedSequences([survivor])).count >= 1_000 }
        #expect(Set(consumedSequences([survivor])) == Set(0..<1_000))
        survivor.signal(SIGTERM)
        try await survivor.waitForExit()
        try await cluster.stop()
    }

    @Test("members joining and leaving: offsets committed on revoke, SIGTERM commits and leaves the group")
    func rebalanceOnJoinAndLeave() async throws {
        let cluster = try await DevClusterProcess(topics: ["events:4"])
        let stayer = try cluster.consumer(topic: "events", group: "events-group")
        try await eventually("the first member owns all partitions") { (stayer.events("assigned").last?["partitions"] as? [Int])?.count == 4 }
        try await cluster.produce(topic: "events", count: 500)
        try await eventually("first batch consumed") { consumedSequences([stayer]).count >= 500 }
        // librdkafka's mock broker refuses commits while a rebalance is in progress (real Kafka
        // accepts them from the revoke callback), so let the periodic commit land before joining.
        try await cluster.waitUntilCommitted(topic: "events", group: "events-group")
        #expect(try await cluster.lag(topic: "events", group: "events-group") == 0)

        let joiner = try cluster.consumer(topic: "events", group: "events-group")
        try await eventually("the group split the partitions") {
            let owned = [stayer, joiner].map { Set(($0.events("assigned").last?["partitions"] as? [Int]) ?? []) }
            return !stayer.events("revoked").isEmpty && !owned[1].isEmpty && owned[0].union(owned[1]).count == 4 && owned[0].isDisjoint(with: owned[1])
        }
        try await cluster.produce(topic: "events", count: 500, first: 500)
        try await eventually("second batch consumed") { Set(consumedSequences([stayer, joiner])).count >= 1_000 }
        #expect(!joiner.events("message").isEmpty, "the new member took over partitions")

        // The leaving member commits on its own revoke; the staying one is revoked mid-rebalance
        // too, where the mock refuses commits: its periodic commit must have landed first.
        try await cluster.waitUntilCommitted(topic: "events", group: "events-group")
        joiner.signal(SIGTERM)
        try await joiner.waitForExit()
        #expect(joiner.exitStatus == 0)
        #expect(joiner.events("revoked").last.map { ($0["commitError"] as? String) == "" } == true, "leaving member committed")
        try await eventually("the remaining member owns all partitions again") { (stayer.events("assigned").last?["partitions"] as? [Int])?.count == 4 }
        try await cluster.produce(topic: "events", count: 500, first: 1_000)
        try await eventually("third batch consumed") { Set(consumedSequences([stayer, joiner])).count >= 1_500 }

        stayer.signal(SIGTERM)
        try await stayer.waitForExit()
        let all = consumedSequences([stayer, joiner])
        #expect(all.count == 1_500, "no record read twice: \(all.count - Set(all).count) duplicates")
        #expect(Set(all) == Set(0..<1_500))

        // Everything was committed on the way out: a new member starts after record 1,499.
        let successor = try cluster.consumer(topic: "events", group: "events-group")
        try await eventually("the successor joined") { !(successor.events("assigned").last?["partitions"] as? [Int] ?? []).isEmpty }
        try await cluster.produce(topic: "events", count: 100, first: 1_500)
        try await eventually("the successor read the new records") { consumedSequences([successor]).count >= 100 }
        successor.signal(SIGTERM)
        try await successor.waitForExit()
        #expect(consumedSequences([successor]).sorted() == Array(1_500..<1_600))
        try await cluster.stop()
    }

    @Test("a slow member loses partitions in a rebalance: the records it had buffered for them are dropped, not processed")
    func revokedPartitionsBufferedRecordsAreDropped() async throws {
        let cluster = try await DevClusterProcess(topics: ["slow:4"])
        try await cluster.produce(topic: "slow", count: 2_000)
        // 20 ms per record: the member fetches far ahead of what it processes.
        let slow = try cluster.consumer(topic: "slow", group: "slow-group", extra: ["--delay-ms", "20"])
        try await eventually("the slow member is processing") { slow.events("message").count >= 30 }
        let joiner = try cluster.consumer(topic: "slow", group: "slow-group")
        try await eventually("the slow member was revoked, got its new share, and processed more") {
            let events = slow.events
            guard let revoked = events.lastIndex(where: { $0["event"] as? String == "revoked" }),
                  let assigned = events.lastIndex(where: { $0["event"] as? String == "assigned" }), assigned > revoked else { return false }
            return events[assigned...].filter { $0["event"] as? String == "message" }.count >= 20
        }
        for process in [slow, joiner] {
            process.signal(SIGTERM)
            try await process.waitForExit()
        }
        // Walk the slow member's events in order: after a revoke, a record is processed only for
        // a partition of the assignment that followed it.
        var owned: Set<Int>? = []
        var violations: [String] = []
        var sawRevoke = false
        for event in slow.events {
            switch event["event"] as? String {
            case "assigned": owned = Set(event["partitions"] as? [Int] ?? [])
            case "revoked":
                owned = []
                sawRevoke = true
            case "message":
                let partition = event["partition"] as? Int ?? -1
                if sawRevoke, owned?.contains(partition) != true { violations.append("partition \(partition) offset \(event["offset"] ?? "?")") }
            default: break
            }
        }
        #expect(sawRevoke)
        // One record may already be in the member's hands when the revoke lands.
        #expect(violations.count <= 1, "records of revoked partitions processed after the revoke: \(violations.prefix(10))")
        try await cluster.stop()
    }

    @Test("SIGTERM: the consumer commits what it processed on its way out of the group")
    func gracefulShutdownCommits() async throws {
        let cluster = try await DevClusterProcess(topics: ["shifts:3"])
        try await cluster.produce(topic: "shifts", count: 300)
        // A ten-minute commit interval: only the commit on revoke/close can commit these offsets.
        let consumer = try cluster.consumer(topic: "shifts", group: "shifts-group", extra: ["--commit-interval-ms", "600000"])
        try await eventually("all records processed") { consumedSequences([consumer]).count >= 300 }
        #expect(try await cluster.lag(topic: "shifts", group: "shifts-group") == 300, "nothing committed before shutdown")

        consumer.signal(SIGTERM)
        try await consumer.waitForExit()
        #expect(consumer.exitStatus == 0)
        #expect(consumer.events("revoked").last?["commitError"] as? String == "")
        #expect(consumer.events("stopped").first?["count"] as? Int == 300)
        #expect(try await cluster.lag(topic: "shifts", group: "shifts-group") == 0, "all 300 committed on the way out")

        let successor = try cluster.consumer(topic: "shifts", group: "shifts-group")
        try await eventually("the successor joined") { !(successor.events("assigned").last?["partitions"] as? [Int] ?? []).isEmpty }
        try await cluster.produce(topic: "shifts", count: 10, first: 300)
        try await eventually("the successor read the new records") { consumedSequences([successor]).count >= 10 }
        successor.signal(SIGTERM)
        try await successor.waitForExit()
        #expect(consumedSequences([successor]).sorted() == Array(300..<310), "the successor starts after the committed records")
        try await cluster.stop()
    }
}

@Suite("vigil status", .timeLimit(.minutes(3)))
struct StatusCommandTests {
    @Test("lag per partition of a group, against the dev cluster")
    func lagOfAGroup() async throws {
        let cluster = try await DevClusterProcess(topics: ["status:2"])
        try await cluster.produce(topic: "status", count: 100, keys: 2)
        let consumer = try cluster.consumer(topic: "status", group: "status-group", extra: ["--max", "40"])
        try await consumer.waitForExit()
        #expect(consumer.exitStatus == 0)

        let status = try ChildProcess("vigil", ["status", "--bootstrap", cluster.bootstrapServers, "--group", "status-group", "--topic", "status"])
        try await status.waitForExit()
        #expect(status.exitStatus == 0, "\(status.standardError)")
        let rows = status.output.filter { $0.hasPrefix("  status\t") }.map { $0.split(separator: "\t").map(String.init) }
        #expect(rows.count == 2, "\(status.output)")
        let committed = rows.compactMap { Int($0[2]) }.reduce(0, +)
        let high = rows.compactMap { Int($0[3]) }.reduce(0, +)
        let lag = rows.compactMap { Int($0[4]) }.reduce(0, +)
        #expect(committed == 40, "the consumer stored and committed 40 records")
        #expect(high == 100)
        #expect(lag == 60)
        #expect(status.output.contains("  total lag 60"))
        try await cluster.stop()
    }
}
