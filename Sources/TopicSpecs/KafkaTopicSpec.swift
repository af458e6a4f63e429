// Topics as a deployment declares them, checked without a broker: shared by the Kafka client
// (which creates them) and the Topology (which declares them), so the model of the YAML links
// no librdkafka.

/// What is wrong with a declared topic, in words an operator can act on.
public struct TopicSpecProblem: Error, Sendable, Equatable {
    public var detail: String

    public init(detail: String) {
        self.detail = detail
    }
}

/// A topic as the deployment declares it.
public struct KafkaTopicSpec: Sendable, Hashable {
    public var name: String
    public var partitions: Int
    public var replicationFactor: Int
    /// Broker-side topic configs, e.g. `retention.ms`, `cleanup.policy`, `min.insync.replicas`.
    public var configs: [String: String]

    public init(name: String, partitions: Int, replicationFactor: Int, configs: [String: String] = [:]) {
        self.name = name
        self.partitions = partitions
        self.replicationFactor = replicationFactor
        self.configs = configs
    }

    /// Kafka's own accepted `cleanup.policy` values.
    static let cleanupPolicies: Set<String> = ["delete", "compact", "compact,delete", "delete,compact"]

    /// Catches what the broker would reject (or silently accept and regret) before any request is sent.
    public func validate() throws(TopicSpecProblem) {
        try Self.validateName(name)
        guard partitions >= 1 else {
            throw invalid("partitions is \(partitions); a topic needs at least 1 partition")
        }
        guard replicationFactor >= 1 else {
            throw invalid(
                "replicationFactor is \(replicationFactor); use at least 1 (3 on production clusters, so a broker can fail without losing data)"
            )
        }
        for key in configs.keys where key.isEmpty {
            throw invalid("has a config with an empty key; remove it or give it a name such as \"retention.ms\"")
        }
        if let retention = configs["retention.ms"] {
            guard let milliseconds = Int64(retention), milliseconds >= -1 else {
                throw invalid(
                    "config \"retention.ms\" is \"\(retention)\", not a whole number of milliseconds; "
                        + "write e.g. \"604800000\" for 7 days, or \"-1\" to keep records forever"
                )
            }
        }
        if let minInSync = configs["min.insync.replicas"] {
            guard let replicas = Int(minInSync), replicas >= 1 else {
                throw invalid("config \"min.insync.replicas\" is \"\(minInSync)\"; use a whole number of at least 1, e.g. \"2\"")
            }
            guard replicas <= replicationFactor else {
                throw invalid(
                    "config \"min.insync.replicas\" is \(replicas) but replicationFactor is \(replicationFactor), "
                        + "so every acks=all write would fail; lower min.insync.replicas or raise replicationFactor"
                )
            }
        }
        if let policy = configs["cleanup.policy"], !Self.cleanupPolicies.contains(policy) {
            throw invalid(
                "config \"cleanup.policy\" is \"\(policy)\"; use one of \"delete\", \"compact\" or \"compact,delete\""
            )
        }
    }

    /// Kafka's topic-name rule: 1–249 characters of `[a-zA-Z0-9._-]`, and not `.` or `..`.
    public static func validateName(_ name: String) throws(TopicSpecProblem) {
        let allowed = name.utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"):
                true
            default:
                false
            }
        }
        guard allowed, (1...249).contains(name.utf8.count), name != ".", name != ".." else {
            throw TopicSpecProblem(
                detail: "topic name \"\(name)\" is invalid: use 1 to 249 characters from a-z, A-Z, 0-9, \".\", \"_\" and \"-\", "
                    + "and not \".\" or \"..\""
            )
        }
    }

    private func invalid(_ problem: String) -> TopicSpecProblem {
        TopicSpecProblem(detail: "topic \"\(name)\": \(problem)")
    }
}
