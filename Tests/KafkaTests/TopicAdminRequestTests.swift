import Foundation
@testable import Kafka
import Logging
import Testing
import TopicSpecs

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Topic administration without a broker: spec validation, the C request objects handed to
/// librdkafka, and the diff behind `vigil topics apply --dry-run`. (librdkafka's mock cluster
/// does not answer CreateTopics; no real broker is available here.)
@Suite("Topic admin requests, validation and diff")
struct TopicAdminRequestTests {
    static let alerts = KafkaTopicSpec(
        name: "vigil.alerts",
        partitions: 6,
        replicationFactor: 3,
        configs: ["retention.ms": "604800000", "cleanup.policy": "delete", "min.insync.replicas": "2"]
    )

    /// The error `validate()` throws, or nil.
    static func validationError(_ spec: KafkaTopicSpec) -> TopicSpecProblem? {
        do throws(TopicSpecProblem) {
            try spec.validate()
            return nil
        } catch {
            return error
        }
    }

    static func requestError(_ specs: [KafkaTopicSpec]) -> KafkaError? {
        do throws(KafkaError) {
            _ = try NewTopicRequest(specs)
            return nil
        } catch {
            return error
        }
    }

    // MARK: Validation

    @Test("a production-like spec and boundary names are valid")
    func validSpecs() {
        #expect(Self.validationError(Self.alerts) == nil)
        let longest = String(repeating: "a", count: 249)
        for name in [longest, "a", "...", "_-.", "Camera_01-frames.v2"] {
            #expect(Self.validationError(KafkaTopicSpec(name: name, partitions: 1, replicationFactor: 1)) == nil, "\(name)")
        }
        for policy in ["delete", "compact", "compact,delete", "delete,compact"] {
            var spec = Self.alerts
            spec.configs["cleanup.policy"] = policy
            #expect(Self.validationError(spec) == nil, "\(policy)")
        }
        var forever = Self.alerts
        forever.configs["retention.ms"] = "-1"
        #expect(Self.validationError(forever) == nil)
    }

    @Test(
        "invalid topic names are rejected, naming the topic and the rule",
        arguments: ["", ".", "..", String(repeating: "x", count: 250), "camera frames", "camera/frames", "kamera-ü", "alerts\n"]
    )
    func invalidNames(name: String) throws {
        let error = try #require(Self.validationError(KafkaTopicSpec(name: name, partitions: 1, replicationFactor: 1)))
        #expect(error.detail.hasPrefix("topic name \"\(name)\" is invalid"))
        #expect(error.detail.contains("1 to 249 characters from a-z, A-Z, 0-9"))
    }

    @Test("partitions and replication factor below 1 are rejected")
    func countsBelowOne() throws {
        for partitions in [0, -1] {
            var spec = Self.alerts
            spec.partitions = partitions
            let error = try #require(Self.validationError(spec))
            #expect(error.detail == "topic \"vigil.alerts\": partitions is \(partitions); a topic needs at least 1 partition")
        }
        var spec = Self.alerts
        spec.replicationFactor = 0
        spec.configs["min.insync.replicas"] = nil
        let error = try #require(Self.validationError(spec))
        #expect(error.detail.hasPrefix("topic \"vigil.alerts\": replicationFactor is 0; use at least 1"))
    }

    @Test("min.insync.replicas above the replication factor is rejected")
    func minInSyncAboveReplication() throws {
        var spec = Self.alerts
        spec.configs["min.insync.replicas"] = "4"
        let error = try #require(Self.validationError(spec))
        #expect(error.detail.hasPrefix("topic \"vigil.alerts\": config \"min.insync.replicas\" is 4 but replicationFactor is 3"))
        #expect(error.detail.contains("lower min.insync.replicas or raise replicationFactor"))
        // Equal is the strictest allowed setting.
        spec.configs["min.insync.replicas"] = "3"
        #expect(Self.validationError(spec) == nil)
    }

    @Test(
        "non-numeric or out-of-range retention.ms and min.insync.replicas are rejected",
        arguments: [
            ("retention.ms", "7d"), ("retention.ms", "1.5"), ("retention.ms", "-2"), ("retention.ms", ""),
            ("min.insync.replicas", "two"), ("min.insync.replicas", "0"), ("min.insync.replicas", " 2"),
        ]
    )
    func badNumbers(key: String, value: String) throws {
        var spec = Self.alerts
        spec.configs[key] = value
        let error = try #require(Self.validationError(spec))
        #expect(error.detail.hasPrefix("topic \"vigil.alerts\": config \"\(key)\" is \"\(value)\""))
    }

    @Test("cleanup.policy outside Kafka's values is rejected with the allowed ones", arguments: ["compaction", "Compact", "delete, compact", ""])
    func badCleanupPolicy(policy: String) throws {
        var spec = Self.alerts
        spec.configs["cleanup.policy"] = policy
        let error = try #require(Self.validationError(spec))
        #expect(
            error.detail == "topic \"vigil.alerts\": config \"cleanup.policy\" is \"\(policy)\"; "
                + "use one of \"delete\", \"compact\" or \"compact,delete\""
        )
    }

    @Test("an empty config key is rejected")
    func emptyConfigKey() throws {
        var spec = Self.alerts
        spec.configs[""] = "1"
        let error = try #require(Self.validationError(spec))
        #expect(error.detail.hasPrefix("topic \"vigil.alerts\": has a config with an empty key"))
    }

    // MARK: Request building

    @Test("NewTopic request holds one C object per spec, in order, with configs sorted by key")
    func newTopicRequestContents() throws {
        let frames = KafkaTopicSpec(name: "vigil.frames", partitions: 24, replicationFactor: 2)
        let request = try NewTopicRequest([Self.alerts, frames])
        #expect(request.count == 2)
        #expect(
            request.entries == [
                .init(
                    name: "vigil.alerts", partitions: 6, replicationFactor: 3,
                    configs: [
                        .init(key: "cleanup.policy", value: "delete"),
                        .init(key: "min.insync.replicas", value: "2"),
                        .init(key: "retention.ms", value: "604800000"),
                    ]
                ),
                .init(name: "vigil.frames", partitions: 24, replicationFactor: 2, configs: []),
            ]
        )
        let pointers = request.withCArray { array, count in (0..<count).map { array?[$0] } }
        #expect(pointers.count == 2)
        #expect(pointers.allSatisfy { $0 != nil })
        #expect(Set(pointers).count == 2)
    }

    @Test("an empty request builds an empty C array")
    func emptyNewTopicRequest() throws {
        let request = try NewTopicRequest([])
        #expect(request.count == 0)
        #expect(request.entries.isEmpty)
        #expect(request.withCArray { _, count in count } == 0)
    }

    @Test("librdkafka's own range checks surface as KafkaErrors naming the topic")
    func librdkafkaRejections() throws {
        // Both pass our validation; librdkafka caps partitions at 100,000 and replicas at 10,000.
        let tooManyPartitions = try #require(
            Self.requestError([Self.alerts, KafkaTopicSpec(name: "huge", partitions: 100_001, replicationFactor: 3)])
        )
        #expect(tooManyPartitions.kind == .invalidConfiguration)
        #expect(tooManyPartitions.detail.hasPrefix("topic \"huge\": librdkafka rejected it: num_partitions out of expected range"))

        let tooManyReplicas = try #require(Self.requestError([KafkaTopicSpec(name: "wide", partitions: 1, replicationFactor: 10_001)]))
        #expect(tooManyReplicas.detail == "topic \"wide\": librdkafka rejected it: replication_factor out of expected range -1..10000")

        // Beyond Int32: clamped and still rejected by librdkafka rather than trapping.
        let beyondInt32 = try #require(Self.requestError([KafkaTopicSpec(name: "vast", partitions: Int(Int32.max) + 1, replicationFactor: 1)]))
        #expect(beyondInt32.detail.hasPrefix("topic \"vast\": librdkafka rejected it: num_partitions"))

        // The upper limits themselves are accepted.
        let limits = try NewTopicRequest([KafkaTopicSpec(name: "limits", partitions: 100_000, replicationFactor: 10_000)])
        #expect(limits.entries.map(\.partitions) == [100_000])
        #expect(limits.entries.map(\.replicationFactor) == [10_000])
    }

    @Test("request building validates specs first and rejects duplicate topics")
    func requestValidatesFirst() throws {
        let zeroReplicas = try #require(Self.requestError([KafkaTopicSpec(name: "t", partitions: 1, replicationFactor: 0)]))
        #expect(zeroReplicas.detail.hasPrefix("topic \"t\": replicationFactor is 0"))

        let duplicate = try #require(Self.requestError([Self.alerts, KafkaTopicSpec(name: "x", partitions: 1, replicationFactor: 1), Self.alerts]))
        #expect(duplicate.detail == "topic \"vigil.alerts\" is declared twice; keep one declaration")
    }

    @Test("DescribeConfigs request holds one TOPIC resource per name, read back from the C objects")
    func configResourceRequest() throws {
        let request = try TopicConfigResourceRequest(topics: ["vigil.alerts", "vigil.frames"])
        let described = request.typesAndNames
        #expect(described.map(\.type) == ["TOPIC", "TOPIC"])
        #expect(described.map(\.name) == ["vigil.alerts", "vigil.frames"])
        #expect(request.withCArray { _, count in count } == 2)
    }

    @Test("DescribeConfigs request rejects invalid and duplicate names")
    func configResourceRequestRejects() throws {
        do throws(KafkaError) {
            _ = try TopicConfigResourceRequest(topics: ["ok", ""])
            Issue.record("an empty topic name was accepted")
        } catch {
            #expect(error.detail.hasPrefix("topic name \"\" is invalid"))
        }
        do throws(KafkaError) {
            _ = try TopicConfigResourceRequest(topics: ["a", "b", "a"])
            Issue.record("a duplicate topic was accepted")
        } catch {
            #expect(error.detail.hasPrefix("describe configs: a topic is listed twice"))
        }
    }

    // MARK: Diff

    static func topic(_ name: String, partitions: Int, replicas: Int) -> KafkaClusterMetadata.Topic {
        KafkaClusterMetadata.Topic(
            name: name,
            partitions: (0..<partitions).map { id in
                let ids = (0..<Int32(replicas)).map { (Int32(id) + $0) % 5 }
                return KafkaClusterMetadata.Partition(id: Int32(id), leader: ids.first ?? -1, replicas: ids, inSyncReplicas: ids)
            },
            error: nil
        )
    }

    static func cluster(_ topics: [KafkaClusterMetadata.Topic]) -> KafkaClusterMetadata {
        KafkaClusterMetadata(brokers: [.init(id: 0, host: "b0", port: 9092)], topics: topics)
    }

    static let alertsConfigs = ["retention.ms": "604800000", "cleanup.policy": "delete", "min.insync.replicas": "2", "segment.ms": "3600000"]

    @Test("a cluster that matches the declaration needs no change")
    func diffNoChange() {
        let changes = KafkaAdmin.diff(
            declared: [Self.alerts],
            actual: Self.cluster([Self.topic("vigil.alerts", partitions: 6, replicas: 3), Self.topic("other", partitions: 1, replicas: 1)]),
            actualConfigs: ["vigil.alerts": Self.alertsConfigs]
        )
        #expect(changes == [])
    }

    @Test("missing topics are created; a topic reported only with an error counts as missing")
    func diffCreates() {
        let frames = KafkaTopicSpec(name: "vigil.frames", partitions: 24, replicationFactor: 3)
        let errored = KafkaClusterMetadata.Topic(name: "vigil.frames", partitions: [], error: "Broker: Unknown topic or partition")
        let changes = KafkaAdmin.diff(declared: [Self.alerts, frames], actual: Self.cluster([errored]), actualConfigs: [:])
        #expect(changes == [.createTopic(Self.alerts), .createTopic(frames)])
        #expect(changes.allSatisfy { !$0.needsOperator })
        #expect(
            changes[0].description
                == "create topic vigil.alerts: 6 partitions, replication factor 3, cleanup.policy=delete, min.insync.replicas=2, retention.ms=604800000"
        )
    }

    @Test("partitions grow, never shrink")
    func diffPartitions() throws {
        let grow = KafkaAdmin.diff(
            declared: [Self.alerts],
            actual: Self.cluster([Self.topic("vigil.alerts", partitions: 4, replicas: 3)]),
            actualConfigs: ["vigil.alerts": Self.alertsConfigs]
        )
        #expect(grow == [.increasePartitions(topic: "vigil.alerts", from: 4, to: 6)])
        #expect(grow.first?.needsOperator == false)

        let shrink = KafkaAdmin.diff(
            declared: [Self.alerts],
            actual: Self.cluster([Self.topic("vigil.alerts", partitions: 12, replicas: 3)]),
            actualConfigs: ["vigil.alerts": Self.alertsConfigs]
        )
        #expect(shrink == [.cannotShrinkPartitions(topic: "vigil.alerts", actual: 12, declared: 6)])
        let change = try #require(shrink.first)
        #expect(change.needsOperator)
        #expect(change.description.hasPrefix("topic vigil.alerts: cannot shrink partitions from 12 to 6"))
    }

    @Test("a replication-factor mismatch is reported with the weakest partition, not fixed")
    func diffReplication() {
        var topic = Self.topic("vigil.alerts", partitions: 6, replicas: 3)
        topic.partitions[4].replicas = [1, 2]  // one partition lost a replica
        let changes = KafkaAdmin.diff(declared: [Self.alerts], actual: Self.cluster([topic]), actualConfigs: ["vigil.alerts": Self.alertsConfigs])
        #expect(changes == [.replicationFactorMismatch(topic: "vigil.alerts", actual: 2, declared: 3)])
        #expect(changes.first?.needsOperator == true)
    }

    @Test("differing and unknown config values are reported in key order; cluster-only configs are left alone")
    func diffConfigs() {
        var actual = Self.alertsConfigs
        actual["retention.ms"] = "86400000"
        actual["min.insync.replicas"] = nil
        actual["cleanup.policy"] = "compact"
        let changes = KafkaAdmin.diff(
            declared: [Self.alerts],
            actual: Self.cluster([Self.topic("vigil.alerts", partitions: 6, replicas: 3)]),
            actualConfigs: ["vigil.alerts": actual]
        )
        #expect(
            changes == [
                .alterConfig(topic: "vigil.alerts", key: "cleanup.policy", actual: "compact", declared: "delete"),
                .alterConfig(topic: "vigil.alerts", key: "min.insync.replicas", actual: nil, declared: "2"),
                .alterConfig(topic: "vigil.alerts", key: "retention.ms", actual: "86400000", declared: "604800000"),
            ]
        )
        #expect(changes[1].description == "topic vigil.alerts: set min.insync.replicas from (not set) to \"2\"")
    }

    @Test("cleanup.policy lists compare as sets; a topic without described configs reports every declared config")
    func diffConfigNormalisationAndUnknown() {
        var rules = KafkaTopicSpec(name: "vigil.rules", partitions: 1, replicationFactor: 3, configs: ["cleanup.policy": "compact,delete"])
        let topics = Self.cluster([Self.topic("vigil.rules", partitions: 1, replicas: 3)])
        #expect(KafkaAdmin.diff(declared: [rules], actual: topics, actualConfigs: ["vigil.rules": ["cleanup.policy": "delete,compact"]]) == [])
        #expect(
            KafkaAdmin.diff(declared: [rules], actual: topics, actualConfigs: [:])
                == [.alterConfig(topic: "vigil.rules", key: "cleanup.policy", actual: nil, declared: "compact,delete")]
        )
        rules.configs["cleanup.policy"] = "compact"
        #expect(
            KafkaAdmin.diff(declared: [rules], actual: topics, actualConfigs: ["vigil.rules": ["cleanup.policy": "delete,compact"]])
                == [.alterConfig(topic: "vigil.rules", key: "cleanup.policy", actual: "delete,compact", declared: "compact")]
        )
    }

    @Test("changes follow declaration order, grouped per topic")
    func diffOrdering() {
        let frames = KafkaTopicSpec(name: "vigil.frames", partitions: 24, replicationFactor: 3, configs: ["retention.ms": "3600000"])
        let changes = KafkaAdmin.diff(
            declared: [frames, Self.alerts],
            actual: Self.cluster([Self.topic("vigil.alerts", partitions: 3, replicas: 1), Self.topic("vigil.frames", partitions: 48, replicas: 3)]),
            actualConfigs: ["vigil.alerts": Self.alertsConfigs, "vigil.frames": ["retention.ms": "7200000"]]
        )
        #expect(
            changes == [
                .cannotShrinkPartitions(topic: "vigil.frames", actual: 48, declared: 24),
                .alterConfig(topic: "vigil.frames", key: "retention.ms", actual: "7200000", declared: "3600000"),
                .increasePartitions(topic: "vigil.alerts", from: 3, to: 6),
                .replicationFactorMismatch(topic: "vigil.alerts", actual: 1, declared: 3),
            ]
        )
        #expect(changes.map(\.topic) == ["vigil.frames", "vigil.frames", "vigil.alerts", "vigil.alerts"])
    }

    // MARK: Against no broker at all

    @Test("createTopics against an unreachable broker throws within the request timeout", .timeLimit(.minutes(1)))
    func createTopicsUnreachable() async throws {
        var logger = Logger(label: "topic-admin-test")
        logger.logLevel = .critical
        let admin = try KafkaAdmin(
            configuration: KafkaConfiguration(bootstrapServers: "127.0.0.1:1", requestTimeout: .seconds(2)),
            logger: logger
        )
        do {
            let results = try await admin.createTopics([Self.alerts])
            Issue.record("createTopics returned \(results) without any broker")
        } catch let error as KafkaError {
            #expect(error.kind == .adminFailed)
            #expect(error.codeName == "_TIMED_OUT")
            #expect(error.isRetriable)
            #expect(error.detail.hasPrefix("creating topics vigil.alerts on 127.0.0.1:1: "))
        }
    }
}

// MARK: - Against a scripted Kafka protocol peer

/// The Admin API calls end to end, with librdkafka speaking the real wire protocol to a
/// scripted peer: what it sends is decoded and checked, what it receives is each outcome.
@Suite("Topic admin against a scripted Kafka protocol peer", .serialized, .timeLimit(.minutes(1)))
struct TopicAdminWireTests {
    static func admin(_ broker: ScriptedAdminBroker) throws -> KafkaAdmin {
        var logger = Logger(label: "topic-admin-wire-test")
        logger.logLevel = .critical
        return try KafkaAdmin(
            configuration: KafkaConfiguration(bootstrapServers: broker.bootstrapServers, requestTimeout: .seconds(10)),
            logger: logger
        )
    }

    @Test("createTopics sends each spec as declared and maps created, already-exists and refused topics")
    func createTopics() async throws {
        let broker = try ScriptedAdminBroker(
            creationErrors: [
                "vigil.frames": (code: 36, message: "Topic 'vigil.frames' already exists."),
                "vigil.audit": (code: 38, message: "Replication factor: 3 larger than available brokers: 1."),
            ]
        )
        defer { broker.stop() }
        let admin = try Self.admin(broker)
        let specs = [
            TopicAdminRequestTests.alerts,
            KafkaTopicSpec(name: "vigil.frames", partitions: 24, replicationFactor: 2),
            KafkaTopicSpec(name: "vigil.audit", partitions: 1, replicationFactor: 3, configs: ["cleanup.policy": "compact"]),
        ]
        let results = try await admin.createTopics(specs)

        #expect(results.map(\.topic) == ["vigil.alerts", "vigil.frames", "vigil.audit"])
        #expect(results[0].outcome == .created)
        #expect(results[1].outcome == .alreadyExists)
        guard case .failed(let refusal) = results[2].outcome else {
            Issue.record("vigil.audit was not refused: \(results[2].outcome)")
            return
        }
        #expect(refusal.kind == .adminFailed)
        #expect(refusal.codeName == "INVALID_REPLICATION_FACTOR")
        #expect(refusal.detail == "creating topic \"vigil.audit\": Replication factor: 3 larger than available brokers: 1.")

        let calls = broker.createTopicsCalls
        #expect(calls.count == 1)
        let call = try #require(calls.first)
        #expect(
            call.topics == [
                .init(
                    name: "vigil.alerts", partitions: 6, replicationFactor: 3,
                    configs: [
                        .init(name: "cleanup.policy", value: "delete"),
                        .init(name: "min.insync.replicas", value: "2"),
                        .init(name: "retention.ms", value: "604800000"),
                    ]
                ),
                .init(name: "vigil.frames", partitions: 24, replicationFactor: 2, configs: []),
                .init(name: "vigil.audit", partitions: 1, replicationFactor: 3, configs: [.init(name: "cleanup.policy", value: "compact")]),
            ]
        )
        // The broker's operation timeout: 4/5 of the 10 s request timeout.
        #expect(call.timeoutMilliseconds == 8_000)
        #expect(call.validateOnly == false)
        #expect(broker.protocolErrors == [])
    }

    @Test("describeTopicConfigs returns every value with its source; sensitive values never appear")
    func describeConfigs() async throws {
        let broker = try ScriptedAdminBroker(
            describedConfigs: [
                "vigil.alerts": [
                    .init(name: "retention.ms", value: "604800000", source: 1, isSensitive: false),
                    .init(name: "segment.bytes", value: "1073741824", source: 5, isSensitive: false),
                    // Brokers send no value for sensitive configs; this one does, and it must still not come through.
                    .init(name: "sasl.jaas.config", value: "not-for-logs", source: 1, isSensitive: true),
                ],
                "vigil.frames": [.init(name: "cleanup.policy", value: "delete", source: 4, isSensitive: false)],
            ]
        )
        defer { broker.stop() }
        let admin = try Self.admin(broker)

        let entries = try await admin.describeTopicConfigEntries(["vigil.alerts", "vigil.frames"])
        #expect(
            entries["vigil.alerts"] == [
                "retention.ms": KafkaTopicConfigEntry(value: "604800000", isDefault: false, source: "DYNAMIC_TOPIC_CONFIG"),
                "segment.bytes": KafkaTopicConfigEntry(value: "1073741824", isDefault: true, source: "DEFAULT_CONFIG"),
                "sasl.jaas.config": KafkaTopicConfigEntry(value: nil, isDefault: false, isSensitive: true, source: "DYNAMIC_TOPIC_CONFIG"),
            ]
        )
        #expect(entries["vigil.frames"] == ["cleanup.policy": KafkaTopicConfigEntry(value: "delete", isDefault: false, source: "STATIC_BROKER_CONFIG")])

        let values = try await admin.describeTopicConfigs(["vigil.alerts"])
        #expect(values == ["vigil.alerts": ["retention.ms": "604800000", "segment.bytes": "1073741824"]])
        #expect(broker.describeConfigsCalls == [["vigil.alerts", "vigil.frames"], ["vigil.alerts"]])
        #expect(broker.protocolErrors == [])
    }

    @Test("a topic the broker cannot describe fails the call, naming the topic")
    func describeConfigsUnknownTopic() async throws {
        let broker = try ScriptedAdminBroker(describedConfigs: [:])
        defer { broker.stop() }
        let admin = try Self.admin(broker)
        do {
            let configs = try await admin.describeTopicConfigs(["vigil.missing"])
            Issue.record("described a topic the broker does not know: \(configs)")
        } catch let error as KafkaError {
            #expect(error.codeName == "UNKNOWN_TOPIC_OR_PART")
            #expect(error.detail == "describing configs of topic \"vigil.missing\": This server does not host this topic-partition.")
        }
        #expect(broker.protocolErrors == [])
    }
}

/// A minimal Kafka broker for the Admin API paths librdkafka's mock cluster does not answer.
///
/// It advertises ApiVersions v3, Metadata v4, CreateTopics v2 and DescribeConfigs v1, so
/// librdkafka uses the non-flexible encodings of the last three; it names itself (node 1)
/// as controller, records each decoded CreateTopics and DescribeConfigs request and answers
/// from its script. Every socket wait is bounded, and `stop()` joins every thread.
final class ScriptedAdminBroker: @unchecked Sendable {
    struct CreateTopicsCall: Equatable {
        var topics: [NewTopic]
        var timeoutMilliseconds: Int32
        var validateOnly: Bool
    }

    struct NewTopic: Equatable {
        var name: String
        var partitions: Int32
        var replicationFactor: Int16
        var configs: [Config]
    }

    struct Config: Equatable {
        var name: String
        var value: String?
    }

    struct DescribedConfig {
        var name: String
        var value: String?
        /// Kafka's ConfigSource: 1 topic, 4 static broker, 5 default.
        var source: Int8
        var isSensitive: Bool
    }

    let bootstrapServers: String
    private let listener: Int32
    private let port: UInt16
    private let creationErrors: [String: (code: Int16, message: String?)]
    private let describedConfigs: [String: [DescribedConfig]]

    private let lock = NSLock()
    private var isStopping = false
    private var recordedCreateTopics: [CreateTopicsCall] = []
    private var recordedDescribeConfigs: [[String]] = []
    private var recordedProtocolErrors: [String] = []
    private let threads = DispatchGroup()

    var createTopicsCalls: [CreateTopicsCall] { lock.withLock { recordedCreateTopics } }
    var describeConfigsCalls: [[String]] { lock.withLock { recordedDescribeConfigs } }
    /// Requests it could not decode or did not expect; a passing test wants none.
    var protocolErrors: [String] { lock.withLock { recordedProtocolErrors } }
    private var shouldStop: Bool { lock.withLock { isStopping } }

    init(
        creationErrors: [String: (code: Int16, message: String?)] = [:],
        describedConfigs: [String: [DescribedConfig]] = [:]
    ) throws {
        self.creationErrors = creationErrors
        self.describedConfigs = describedConfigs
        #if os(Linux)
        let streamType = Int32(SOCK_STREAM.rawValue)
        #else
        let streamType = SOCK_STREAM
        #endif
        let listener = socket(AF_INET, streamType, 0)
        guard listener >= 0 else { throw WireError("socket() failed: errno \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0  // any free port
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { generic in
                bind(listener, generic, length) == 0 && listen(listener, 16) == 0 && getsockname(listener, generic, &length) == 0
            }
        }
        guard bound else {
            close(listener)
            throw WireError("cannot listen on 127.0.0.1: errno \(errno)")
        }
        self.listener = listener
        self.port = UInt16(bigEndian: address.sin_port)
        self.bootstrapServers = "127.0.0.1:\(port)"
        threads.enter()
        Thread.detachNewThread { [self] in
            acceptConnections()
            threads.leave()
        }
    }

    /// Stops accepting, waits (bounded) for every connection thread, closes the listener.
    func stop() {
        lock.withLock { isStopping = true }
        if threads.wait(timeout: .now() + 5) == .timedOut {
            record("threads still running 5 s after stop")
        }
        close(listener)
    }

    private func record(_ problem: String) {
        lock.withLock { recordedProtocolErrors.append(problem) }
    }

    /// Waits up to 100 ms for `descriptor` to become readable, so a stop is noticed.
    private func waitReadable(_ descriptor: Int32) -> Bool {
        var entry = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        return poll(&entry, 1, 100) > 0
    }

    private func acceptConnections() {
        while !shouldStop {
            guard waitReadable(listener) else { continue }
            let connection = accept(listener, nil, nil)
            guard connection >= 0 else { continue }
            threads.enter()
            Thread.detachNewThread { [self] in
                serve(connection)
                close(connection)
                threads.leave()
            }
        }
    }

    /// Exactly `count` bytes, or nil when the peer closed or the broker is stopping.
    private func read(_ connection: Int32, count: Int) -> [UInt8]? {
        var bytes = [UInt8](repeating: 0, count: count)
        var filled = 0
        while filled < count {
            if shouldStop { return nil }
            guard waitReadable(connection) else { continue }
            let received = bytes.withUnsafeMutableBytes { recv(connection, $0.baseAddress! + filled, count - filled, 0) }
            guard received > 0 else { return nil }
            filled += received
        }
        return bytes
    }

    private func serve(_ connection: Int32) {
        while let sizeBytes = read(connection, count: 4) {
            var sizeReader = WireReader(sizeBytes)
            guard let size = try? sizeReader.int32(), size > 0, size < 1 << 20, let frame = read(connection, count: Int(size)) else { return }
            do {
                var request = WireReader(frame)
                let apiKey = try request.int16()
                let apiVersion = try request.int16()
                let correlationID = try request.int32()
                _ = try request.nullableString()  // client id
                var response = WireWriter()
                response.int32(correlationID)  // response header v0, also used by ApiVersions v3
                try answer(apiKey: apiKey, version: apiVersion, request: &request, into: &response)
                var framed = WireWriter()
                framed.int32(Int32(response.bytes.count))
                framed.bytes += response.bytes
                guard framed.bytes.withUnsafeBytes({ send(connection, $0.baseAddress!, $0.count, 0) }) == framed.bytes.count else { return }
            } catch {
                record("\(error)")
                return
            }
        }
    }

    private func answer(apiKey: Int16, version: Int16, request: inout WireReader, into response: inout WireWriter) throws {
        switch (apiKey, version) {
        case (18, 3):
            // ApiVersions v3: the request header is flexible; its body is not needed.
            response.int16(0)
            let supported: [(key: Int16, max: Int16)] = [(18, 3), (3, 4), (19, 2), (32, 1)]
            response.unsignedVarint(UInt32(supported.count + 1))
            for api in supported {
                response.int16(api.key)
                response.int16(0)
                response.int16(api.max)
                response.unsignedVarint(0)  // no tagged fields
            }
            response.int32(0)  // throttle
            response.unsignedVarint(0)
        case (3, 4):
            // Metadata v4: one broker, itself, which is also the controller; no topics.
            response.int32(0)
            response.array([Int32(1)]) { writer, nodeID in
                writer.int32(nodeID)
                writer.string("127.0.0.1")
                writer.int32(Int32(port))
                writer.nullableString(nil)
            }
            response.nullableString("scripted-admin-broker")
            response.int32(1)
            response.array([Int32]()) { _, _ in }
        case (19, 2):
            let topics = try request.array { reader in
                let name = try reader.string()
                let partitions = try reader.int32()
                let replicationFactor = try reader.int16()
                _ = try reader.array { reader in (try reader.int32(), try reader.array { try $0.int32() }) }
                let configs = try reader.array { reader in Config(name: try reader.string(), value: try reader.nullableString()) }
                return NewTopic(name: name, partitions: partitions, replicationFactor: replicationFactor, configs: configs)
            }
            let call = CreateTopicsCall(topics: topics, timeoutMilliseconds: try request.int32(), validateOnly: try request.bool())
            lock.withLock { recordedCreateTopics.append(call) }
            response.int32(0)
            response.array(topics) { writer, topic in
                writer.string(topic.name)
                let scripted = creationErrors[topic.name]
                writer.int16(scripted?.code ?? 0)
                writer.nullableString(scripted?.message)
            }
        case (32, 1):
            let resources = try request.array { reader in
                let type = try reader.int8()
                let name = try reader.string()
                _ = try reader.nullableArray { try $0.string() }
                return (type: type, name: name)
            }
            _ = try request.bool()  // include synonyms
            lock.withLock { recordedDescribeConfigs.append(resources.map(\.name)) }
            response.int32(0)
            response.array(resources) { writer, resource in
                let configs = describedConfigs[resource.name]
                writer.int16(configs == nil ? 3 : 0)  // UNKNOWN_TOPIC_OR_PARTITION
                writer.nullableString(configs == nil ? "This server does not host this topic-partition." : nil)
                writer.int8(resource.type)
                writer.string(resource.name)
                writer.array(configs ?? []) { writer, config in
                    writer.string(config.name)
                    writer.nullableString(config.value)
                    writer.bool(false)  // read-only
                    writer.int8(config.source)
                    writer.bool(config.isSensitive)
                    writer.array([Int8]()) { _, _ in }  // synonyms
                }
            }
        default:
            throw WireError("unexpected request: api key \(apiKey) version \(version)")
        }
    }
}

struct WireError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Big-endian reads of Kafka's non-flexible encodings.
struct WireReader {
    private let bytes: [UInt8]
    private var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    private mutating func take(_ count: Int) throws -> ArraySlice<UInt8> {
        guard count >= 0, offset + count <= bytes.count else { throw WireError("read past the end of a request at byte \(offset)") }
        defer { offset += count }
        return bytes[offset..<offset + count]
    }

    private mutating func integer<T: FixedWidthInteger>(_: T.Type) throws -> T {
        try take(MemoryLayout<T>.size).reduce(T.zero) { $0 << 8 | T(truncatingIfNeeded: $1) }
    }

    mutating func int8() throws -> Int8 { try integer(Int8.self) }
    mutating func int16() throws -> Int16 { try integer(Int16.self) }
    mutating func int32() throws -> Int32 { try integer(Int32.self) }
    mutating func bool() throws -> Bool { try int8() != 0 }

    mutating func nullableString() throws -> String? {
        let length = try int16()
        guard length >= 0 else { return nil }
        return String(decoding: try take(Int(length)), as: UTF8.self)
    }

    mutating func string() throws -> String {
        guard let value = try nullableString() else { throw WireError("null where a string was required") }
        return value
    }

    mutating func nullableArray<T>(_ element: (inout WireReader) throws -> T) throws -> [T]? {
        let count = try int32()
        guard count >= 0 else { return nil }
        return try (0..<count).map { _ in try element(&self) }
    }

    mutating func array<T>(_ element: (inout WireReader) throws -> T) throws -> [T] {
        try nullableArray(element) ?? []
    }
}

/// Big-endian writes of Kafka's encodings.
struct WireWriter {
    var bytes: [UInt8] = []

    private mutating func integer<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.bigEndian) { bytes += $0 }
    }

    mutating func int8(_ value: Int8) { integer(value) }
    mutating func int16(_ value: Int16) { integer(value) }
    mutating func int32(_ value: Int32) { integer(value) }
    mutating func bool(_ value: Bool) { int8(value ? 1 : 0) }

    mutating func unsignedVarint(_ value: UInt32) {
        var rest = value
        while rest >= 0x80 {
            bytes.append(UInt8(rest & 0x7F) | 0x80)
            rest >>= 7
        }
        bytes.append(UInt8(rest))
    }

    mutating func nullableString(_ value: String?) {
        guard let value else { return int16(-1) }
        int16(Int16(value.utf8.count))
        bytes += value.utf8
    }

    mutating func string(_ value: String) { nullableString(value) }

    mutating func array<T>(_ elements: [T], _ element: (inout WireWriter, T) -> Void) {
        int32(Int32(elements.count))
        for value in elements { element(&self, value) }
    }
}
