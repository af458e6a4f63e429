import ArgumentParser
import CommandLineSupport
import Foundation
import Kafka
import Logging

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Consumer groups: their members, assigned partitions and lag per partition.",
        discussion: """
            Lag = high watermark − committed offset. Members and assignments come from the group coordinator (DescribeGroups); librdkafka's mock cluster does not answer that request, so against the dev cluster give --group and --topic and the lag is shown without members.
            """
    )

    @Option(help: "Bootstrap servers of the cluster.") var bootstrap: String
    @Option(name: .customLong("group"), help: "A group to show (repeatable). Default: every group.") var groups: [String] = []
    @Option(name: .customLong("topic"), help: "Topics whose lag to show when the cluster cannot describe groups (repeatable).") var topics: [String] = []
    @Option(name: .customLong("property"), help: "Extra librdkafka property NAME=VALUE (TLS/SASL). Repeatable.") var properties: [String] = []

    func run() async throws {
        var logger = Logger(label: "vigil.status")
        logger.logLevel = .error
        let extra = try KafkaConfiguration.properties(fromAssignments: properties)
        let admin = try KafkaAdmin(configuration: .init(bootstrapServers: bootstrap, clientID: "vigil-status", properties: extra), logger: logger)
        let described: [KafkaConsumerGroup]
        do {
            described = groups.isEmpty
                ? try await admin.consumerGroups()
                : try await groups.asyncFlatMap { try await admin.consumerGroups($0) }
        } catch let error as KafkaError where error.codeName == "_UNSUPPORTED_FEATURE" {
            writeLine("this cluster does not describe consumer groups (librdkafka's mock cluster does not); members unknown")
            guard !groups.isEmpty, !topics.isEmpty else {
                throw ValidationError("give --group and --topic to see lag on this cluster")
            }
            described = groups.map { KafkaConsumerGroup(name: $0, state: "unknown", protocolType: "consumer", members: [], error: nil) }
        }
        if described.isEmpty { writeLine("no consumer groups") }
        for group in described {
            writeLine("group \(group.name)  state \(group.state)  members \(group.members.count)\(group.error.map { "  error: \($0)" } ?? "")")
            var owner: [KafkaTopicPartition: String] = [:]
            for member in group.members {
                writeLine("  member \(member.clientID) \(member.host) \(member.memberID)")
                writeLine("    partitions \(describe(member.assignment))")
                for partition in member.assignment { owner[partition] = member.clientID }
            }
            let topics = owner.isEmpty ? self.topics : Array(Set(owner.keys.map(\.topic))).sorted()
            guard !topics.isEmpty else { continue }
            writeLine("  topic\tpartition\tcommitted\thigh\tlag\towner")
            var total: Int64 = 0
            for lag in try await admin.lag(group: group.name, topics: topics) {
                total += lag.lag
                writeLine("  \(lag.topicPartition.topic)\t\(lag.topicPartition.partition)\t\(lag.committedOffset.map(String.init) ?? "-")\t\(lag.highWatermark)\t\(lag.lag)\t\(owner[lag.topicPartition] ?? "-")")
            }
            writeLine("  total lag \(total)")
        }
    }

    private func describe(_ partitions: [KafkaTopicPartition]) -> String {
        guard !partitions.isEmpty else { return "none" }
        return Dictionary(grouping: partitions, by: \.topic).sorted { $0.key < $1.key }
            .map { topic, parts in "\(topic)[\(parts.map { String($0.partition) }.joined(separator: ","))]" }
            .joined(separator: " ")
    }
}

extension Array {
    func asyncFlatMap<T>(_ transform: (Element) async throws -> [T]) async rethrows -> [T] {
        var result: [T] = []
        for element in self { result += try await transform(element) }
        return result
    }
}
