import CRdKafka
import Foundation
import TopicSpecs

// Topic administration for production clusters: declared topics, CreateTopics, DescribeConfigs
// and the plan that `vigil topics apply` shows. librdkafka's mock cluster does not answer the
// Admin API, so everything that does not need a broker (validation, request building, the diff)
// is a plain function, tested without one.

/// A declared topic's problem (`TopicSpecs` knows no Kafka) as the admin's callers see it.
private func reportedAsKafkaError(_ check: () throws(TopicSpecProblem) -> Void) throws(KafkaError) {
    do {
        try check()
    } catch {
        throw KafkaError(kind: .invalidConfiguration, detail: error.detail)
    }
}

/// What CreateTopics did with one topic.
public struct KafkaTopicCreationResult: Sendable, Equatable {
    public enum Outcome: Sendable, Equatable {
        case created
        /// Not an error for `apply`: the diff decides whether the existing topic matches.
        case alreadyExists
        /// The broker refused this topic; the error carries its code and the broker's explanation.
        case failed(KafkaError)
    }

    public var topic: String
    public var outcome: Outcome

    public init(topic: String, outcome: Outcome) {
        self.topic = topic
        self.outcome = outcome
    }
}

/// One topic config as DescribeConfigs reports it.
public struct KafkaTopicConfigEntry: Sendable, Hashable {
    /// Nil for sensitive configs (brokers never send their values) and for unset ones.
    public var value: String?
    /// True when the value is the broker's default rather than set on this topic.
    public var isDefault: Bool
    public var isSensitive: Bool
    public var isReadOnly: Bool
    /// Where the value comes from, in librdkafka's words, e.g. `DYNAMIC_TOPIC_CONFIG`, `DEFAULT_CONFIG`.
    public var source: String

    public init(value: String?, isDefault: Bool, isSensitive: Bool = false, isReadOnly: Bool = false, source: String) {
        self.value = value
        self.isDefault = isDefault
        self.isSensitive = isSensitive
        self.isReadOnly = isReadOnly
        self.source = source
    }
}

// MARK: - The plan: declared topics against the cluster

/// One difference between a declared topic and the cluster.
public enum KafkaTopicChange: Sendable, Hashable, CustomStringConvertible {
    case createTopic(KafkaTopicSpec)
    case increasePartitions(topic: String, from: Int, to: Int)
    /// Kafka cannot remove partitions: the topic must be recreated (losing its data) or the declaration raised.
    case cannotShrinkPartitions(topic: String, actual: Int, declared: Int)
    /// Changing replication needs a partition reassignment; reported, never done automatically.
    /// `actual` is the smallest replica count of any partition: the weakest partition is the one that loses data.
    case replicationFactorMismatch(topic: String, actual: Int, declared: Int)
    /// `actual` is nil when the cluster's value is not known (config not set or not described).
    case alterConfig(topic: String, key: String, actual: String?, declared: String)

    public var topic: String {
        switch self {
        case .createTopic(let spec): spec.name
        case .increasePartitions(let topic, _, _), .cannotShrinkPartitions(let topic, _, _),
            .replicationFactorMismatch(let topic, _, _), .alterConfig(let topic, _, _, _):
            topic
        }
    }

    /// True for differences `apply` cannot make on its own: an operator has to decide.
    public var needsOperator: Bool {
        switch self {
        case .cannotShrinkPartitions, .replicationFactorMismatch: true
        case .createTopic, .increasePartitions, .alterConfig: false
        }
    }

    public var description: String {
        switch self {
        case .createTopic(let spec):
            let configs = spec.configs.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
            return "create topic \(spec.name): \(spec.partitions) partitions, replication factor \(spec.replicationFactor)"
                + (configs.isEmpty ? "" : ", " + configs.joined(separator: ", "))
        case .increasePartitions(let topic, let from, let to):
            return "topic \(topic): increase partitions from \(from) to \(to) (keys move to new partitions)"
        case .cannotShrinkPartitions(let topic, let actual, let declared):
            return "topic \(topic): cannot shrink partitions from \(actual) to \(declared); "
                + "raise the declaration to \(actual) or recreate the topic (its data is lost)"
        case .replicationFactorMismatch(let topic, let actual, let declared):
            return "topic \(topic): replication factor is \(actual), declared \(declared); "
                + "not changed automatically, reassign partitions with kafka-reassign-partitions"
        case .alterConfig(let topic, let key, let actual, let declared):
            return "topic \(topic): set \(key) from \(actual.map { "\"\($0)\"" } ?? "(not set)") to \"\(declared)\""
        }
    }
}

extension KafkaAdmin {
    /// What it would take for the cluster to match `declared`. Pure: feed it `metadata()` and
    /// `describeTopicConfigs(_:)`; behind `vigil topics apply --dry-run`.
    ///
    /// Changes come in declaration order, per topic: creation or partitions, replication, then
    /// configs sorted by key. Configs only the cluster sets are left alone. A topic missing from
    /// `actualConfigs` has every declared config reported, with an unknown actual value.
    public static func diff(
        declared: [KafkaTopicSpec],
        actual: KafkaClusterMetadata,
        actualConfigs: [String: [String: String]]
    ) -> [KafkaTopicChange] {
        declared.flatMap { spec -> [KafkaTopicChange] in
            // A topic the broker reports only with an error and no partitions does not exist.
            guard let topic = actual.topic(spec.name), !topic.partitions.isEmpty else {
                return [.createTopic(spec)]
            }
            var changes: [KafkaTopicChange] = []
            let partitionCount = topic.partitions.count
            if spec.partitions > partitionCount {
                changes.append(.increasePartitions(topic: spec.name, from: partitionCount, to: spec.partitions))
            } else if spec.partitions < partitionCount {
                changes.append(.cannotShrinkPartitions(topic: spec.name, actual: partitionCount, declared: spec.partitions))
            }
            let replicaCounts = topic.partitions.map(\.replicas.count)
            if replicaCounts.contains(where: { $0 != spec.replicationFactor }) {
                changes.append(.replicationFactorMismatch(topic: spec.name, actual: replicaCounts.min()!, declared: spec.replicationFactor))
            }
            let configs = actualConfigs[spec.name]
            for (key, declaredValue) in spec.configs.sorted(by: { $0.key < $1.key }) {
                let actualValue = configs?[key]
                if actualValue.map({ Self.sameConfigValue(key, $0, declaredValue) }) != true {
                    changes.append(.alterConfig(topic: spec.name, key: key, actual: actualValue, declared: declaredValue))
                }
            }
            return changes
        }
    }

    /// Brokers may list `cleanup.policy` in any order, and YAML leaves stray spaces.
    private static func sameConfigValue(_ key: String, _ actual: String, _ declared: String) -> Bool {
        func normalized(_ value: String) -> String {
            let trimmed = value.trimmingCharacters(in: .whitespaces)
            guard key == "cleanup.policy" else { return trimmed }
            return trimmed.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.sorted().joined(separator: ",")
        }
        return normalized(actual) == normalized(declared)
    }
}

// MARK: - Request building (no broker needed)

/// The `rd_kafka_NewTopic_t` array for one CreateTopics call.
///
/// Owns the C objects and destroys them exactly once, in `deinit` (or at once, if building
/// fails half-way). Immutable after `init`, and `rd_kafka_CreateTopics` copies what it needs,
/// so sharing it with the blocking thread is safe.
final class NewTopicRequest: @unchecked Sendable {
    struct Entry: Equatable {
        var name: String
        var partitions: Int32
        var replicationFactor: Int32
        /// Sorted by key, so requests are reproducible.
        var configs: [Config]
    }

    struct Config: Equatable {
        var key: String
        var value: String
    }

    /// What was handed to librdkafka, in the order of the C array. librdkafka offers no way
    /// to read a `rd_kafka_NewTopic_t` back, so this record is what tests can check.
    let entries: [Entry]
    private var topics: [OpaquePointer?]

    /// Validates every spec, then builds the C objects. librdkafka's own range checks
    /// (e.g. more than 100,000 partitions or a replication factor above 10,000) surface
    /// as `KafkaError`s naming the topic.
    init(_ specs: [KafkaTopicSpec]) throws(KafkaError) {
        var seen: Set<String> = []
        for spec in specs {
            try reportedAsKafkaError { () throws(TopicSpecProblem) in try spec.validate() }
            guard seen.insert(spec.name).inserted else {
                throw KafkaError(
                    kind: .invalidConfiguration,
                    detail: "topic \"\(spec.name)\" is declared twice; keep one declaration"
                )
            }
        }
        var built: [OpaquePointer?] = []
        var entries: [Entry] = []
        do throws(KafkaError) {
            for spec in specs {
                let entry = Entry(
                    name: spec.name,
                    // Clamped, not trapped: out-of-range values reach librdkafka, which rejects them with its own text.
                    partitions: Int32(clamping: spec.partitions),
                    replicationFactor: Int32(clamping: spec.replicationFactor),
                    configs: spec.configs.sorted { $0.key < $1.key }.map { Config(key: $0.key, value: $0.value) }
                )
                built.append(try Self.makeNewTopic(entry))
                entries.append(entry)
            }
        } catch {
            built.withUnsafeMutableBufferPointer { rd_kafka_NewTopic_destroy_array($0.baseAddress, $0.count) }
            throw error
        }
        self.topics = built
        self.entries = entries
    }

    deinit {
        topics.withUnsafeMutableBufferPointer { rd_kafka_NewTopic_destroy_array($0.baseAddress, $0.count) }
    }

    var count: Int { topics.count }

    /// The C array and its length, valid only inside `body`.
    func withCArray<R>(_ body: (UnsafeMutablePointer<OpaquePointer?>?, Int) -> R) -> R {
        topics.withUnsafeMutableBufferPointer { body($0.baseAddress, $0.count) }
    }

    /// One `rd_kafka_NewTopic_t`, owned by the caller.
    private static func makeNewTopic(_ entry: Entry) throws(KafkaError) -> OpaquePointer {
        var errorText = [CChar](repeating: 0, count: 512)
        guard let topic = rd_kafka_NewTopic_new(entry.name, entry.partitions, entry.replicationFactor, &errorText, errorText.count) else {
            throw KafkaError(
                kind: .invalidConfiguration,
                detail: "topic \"\(entry.name)\": librdkafka rejected it: \(String(cBuffer: errorText))"
            )
        }
        for config in entry.configs {
            let code = rd_kafka_NewTopic_set_config(topic, config.key, config.value)
            guard code == RD_KAFKA_RESP_ERR_NO_ERROR else {
                rd_kafka_NewTopic_destroy(topic)
                throw .rdKafka(code, kind: .invalidConfiguration, context: "topic \"\(entry.name)\": config \"\(config.key)\"")
            }
        }
        return topic
    }
}

/// The `rd_kafka_ConfigResource_t` array (one TOPIC resource per name) for one DescribeConfigs
/// call. Owns the C objects and destroys them exactly once, in `deinit`.
final class TopicConfigResourceRequest: @unchecked Sendable {
    private var resources: [OpaquePointer?]

    init(topics: [String]) throws(KafkaError) {
        for topic in topics {
            try reportedAsKafkaError { () throws(TopicSpecProblem) in try KafkaTopicSpec.validateName(topic) }
        }
        guard Set(topics).count == topics.count else {
            throw KafkaError(kind: .invalidConfiguration, detail: "describe configs: a topic is listed twice in \(topics)")
        }
        // rd_kafka_ConfigResource_new returns NULL only for a NULL or empty name, which the check above excludes.
        resources = topics.map { rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, $0) }
    }

    deinit {
        resources.withUnsafeMutableBufferPointer { rd_kafka_ConfigResource_destroy_array($0.baseAddress, $0.count) }
    }

    /// Type and name of each resource, read back from the C objects.
    var typesAndNames: [(type: String, name: String)] {
        resources.map { resource in
            (String(cString: rd_kafka_ResourceType_name(rd_kafka_ConfigResource_type(resource))),
             String(cString: rd_kafka_ConfigResource_name(resource)))
        }
    }

    /// The C array and its length, valid only inside `body`.
    func withCArray<R>(_ body: (UnsafeMutablePointer<OpaquePointer?>?, Int) -> R) -> R {
        resources.withUnsafeMutableBufferPointer { body($0.baseAddress, $0.count) }
    }
}

// MARK: - Admin API calls

extension KafkaAdmin {
    /// Asks the controller to create every topic; topics that exist already come back as
    /// `.alreadyExists`, untouched. Each topic gets its own outcome: the call itself throws
    /// only when a spec is invalid or the cluster could not be asked at all (no controller
    /// answered within `requestTimeout`).
    public func createTopics(_ specs: [KafkaTopicSpec]) async throws -> [KafkaTopicCreationResult] {
        guard !specs.isEmpty else { return [] }
        let request = try NewTopicRequest(specs)
        let (client, configuration) = (self.client, self.configuration)
        let names = specs.map(\.name)
        let context = "creating topics \(names.joined(separator: ", ")) on \(configuration.bootstrapServers)"
        return try await onBlockingThread { () -> Result<[KafkaTopicCreationResult], KafkaError> in
            RDKafkaAdminRequest.perform(
                on: client,
                operation: RD_KAFKA_ADMIN_OP_CREATETOPICS,
                resultType: RD_KAFKA_EVENT_CREATETOPICS_RESULT,
                requestTimeout: configuration.requestTimeout,
                // Shorter than the request timeout, so a slow controller still answers per topic
                // (REQUEST_TIMED_OUT: creation continues) before the client gives up on the whole request.
                operationTimeout: configuration.requestTimeout * 4 / 5,
                context: context,
                send: { handle, options, queue in
                    request.withCArray { rd_kafka_CreateTopics(handle, $0, $1, options, queue) }
                },
                readResult: { event in .success(Self.creationResults(event, requested: names)) }
            )
        }.get()
    }

    /// Every config of each topic with its value, source and default flag.
    public func describeTopicConfigEntries(_ topics: [String]) async throws -> [String: [String: KafkaTopicConfigEntry]] {
        guard !topics.isEmpty else { return [:] }
        let request = try TopicConfigResourceRequest(topics: topics)
        let (client, configuration) = (self.client, self.configuration)
        let context = "describing configs of topics \(topics.joined(separator: ", ")) on \(configuration.bootstrapServers)"
        return try await onBlockingThread { () -> Result<[String: [String: KafkaTopicConfigEntry]], KafkaError> in
            RDKafkaAdminRequest.perform(
                on: client,
                operation: RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS,
                resultType: RD_KAFKA_EVENT_DESCRIBECONFIGS_RESULT,
                requestTimeout: configuration.requestTimeout,
                operationTimeout: nil,  // librdkafka rejects an operation timeout for DescribeConfigs
                context: context,
                send: { handle, options, queue in
                    request.withCArray { rd_kafka_DescribeConfigs(handle, $0, $1, options, queue) }
                },
                readResult: Self.configEntries
            )
        }.get()
    }

    /// Each topic's config values (defaults included; sensitive values, which brokers never send, left out).
    public func describeTopicConfigs(_ topics: [String]) async throws -> [String: [String: String]] {
        try await describeTopicConfigEntries(topics).mapValues { entries in entries.compactMapValues(\.value) }
    }

    private static func creationResults(_ event: OpaquePointer, requested names: [String]) -> [KafkaTopicCreationResult] {
        var count = 0
        let results = rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(event), &count)
        var outcomes: [String: KafkaTopicCreationResult.Outcome] = [:]
        for index in 0..<count {
            guard let result = results?[index] else { continue }
            let name = String(cString: rd_kafka_topic_result_name(result))
            let code = rd_kafka_topic_result_error(result)
            switch code {
            case RD_KAFKA_RESP_ERR_NO_ERROR:
                outcomes[name] = .created
            case RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS:
                outcomes[name] = .alreadyExists
            default:
                let message = rd_kafka_topic_result_error_string(result).map { String(cString: $0) }
                outcomes[name] = .failed(.adminResult(code, message: message, context: "creating topic \"\(name)\""))
            }
        }
        return names.map { name in
            KafkaTopicCreationResult(
                topic: name,
                outcome: outcomes[name] ?? .failed(KafkaError(kind: .adminFailed, detail: "creating topic \"\(name)\": the broker's answer did not mention it"))
            )
        }
    }

    private static func configEntries(_ event: OpaquePointer) -> Result<[String: [String: KafkaTopicConfigEntry]], KafkaError> {
        var resourceCount = 0
        let resources = rd_kafka_DescribeConfigs_result_resources(rd_kafka_event_DescribeConfigs_result(event), &resourceCount)
        var topics: [String: [String: KafkaTopicConfigEntry]] = [:]
        for resourceIndex in 0..<resourceCount {
            guard let resource = resources?[resourceIndex] else { continue }
            let topic = String(cString: rd_kafka_ConfigResource_name(resource))
            let code = rd_kafka_ConfigResource_error(resource)
            guard code == RD_KAFKA_RESP_ERR_NO_ERROR else {
                let message = rd_kafka_ConfigResource_error_string(resource).map { String(cString: $0) }
                return .failure(.adminResult(code, message: message, context: "describing configs of topic \"\(topic)\""))
            }
            var entryCount = 0
            let entries = rd_kafka_ConfigResource_configs(resource, &entryCount)
            var configs: [String: KafkaTopicConfigEntry] = [:]
            for entryIndex in 0..<entryCount {
                guard let entry = entries?[entryIndex] else { continue }
                let isSensitive = rd_kafka_ConfigEntry_is_sensitive(entry) == 1
                configs[String(cString: rd_kafka_ConfigEntry_name(entry))] = KafkaTopicConfigEntry(
                    // Brokers already withhold sensitive values; never pass one on if one arrives.
                    value: isSensitive ? nil : rd_kafka_ConfigEntry_value(entry).map { String(cString: $0) },
                    isDefault: rd_kafka_ConfigEntry_is_default(entry) == 1,
                    isSensitive: isSensitive,
                    isReadOnly: rd_kafka_ConfigEntry_is_read_only(entry) == 1,
                    source: String(cString: rd_kafka_ConfigSource_name(rd_kafka_ConfigEntry_source(entry)))
                )
            }
            topics[topic] = configs
        }
        return .success(topics)
    }
}

/// One Admin API request on a queue of its own, waited for with a bounded poll.
enum RDKafkaAdminRequest {
    /// Extra wait beyond the request timeout, so librdkafka's own timeout (with its more specific
    /// reason, e.g. "Failed while waiting for controller") arrives before ours.
    static let timeoutGrace: Duration = .seconds(1)

    /// Appended to every Admin API timeout: the dev cluster is the likeliest cause here.
    static let mockClusterHint =
        "; note that librdkafka's mock cluster (vigil dev-cluster) never answers CreateTopics or DescribeConfigs, "
        + "so against it these requests always time out (the dev cluster creates its topics itself)"

    /// Blocks the calling thread for at most `requestTimeout + timeoutGrace`. The client's handle
    /// is held for the whole request (`withHandle`): a close waits for it, and a request after
    /// the close fails with `.closed` instead of touching a destroyed handle.
    static func perform<Value>(
        on client: RDKafkaClient,
        operation: rd_kafka_admin_op_t,
        resultType: rd_kafka_event_type_t,
        requestTimeout: Duration,
        operationTimeout: Duration?,
        context: String,
        send: (_ handle: OpaquePointer, _ options: OpaquePointer, _ queue: OpaquePointer) -> Void,
        readResult: (_ event: OpaquePointer) -> Result<Value, KafkaError>
    ) -> Result<Value, KafkaError> {
        let held = Result { () throws(KafkaError) in
            try client.withHandle(context) { handle in
                request(handle, operation, resultType, requestTimeout, operationTimeout, context, send, readResult)
            }
        }
        return held.flatMap { $0 }
    }

    private static func request<Value>(
        _ handle: OpaquePointer, _ operation: rd_kafka_admin_op_t, _ resultType: rd_kafka_event_type_t, _ requestTimeout: Duration,
        _ operationTimeout: Duration?, _ context: String,
        _ send: (_ handle: OpaquePointer, _ options: OpaquePointer, _ queue: OpaquePointer) -> Void,
        _ readResult: (_ event: OpaquePointer) -> Result<Value, KafkaError>
    ) -> Result<Value, KafkaError> {
        let options: OpaquePointer
        switch makeOptions(handle: handle, operation: operation, requestTimeout: requestTimeout, operationTimeout: operationTimeout) {
        case .success(let made): options = made
        case .failure(let error): return .failure(error)
        }
        defer { rd_kafka_AdminOptions_destroy(options) }
        // A temporary queue: only this request's result lands on it, and destroying it
        // after a timeout makes librdkafka drop a late result.
        let queue = rd_kafka_queue_new(handle)!
        defer { rd_kafka_queue_destroy(queue) }

        send(handle, options, queue)

        let clock = ContinuousClock()
        let deadline = clock.now + requestTimeout + timeoutGrace
        while true {
            let remaining = deadline - clock.now
            guard remaining > .zero else { break }
            guard let event = rd_kafka_queue_poll(queue, Int32(clamping: max(1, remaining.milliseconds))) else { continue }
            defer { rd_kafka_event_destroy(event) }
            guard rd_kafka_event_type(event) == resultType else { continue }
            let code = rd_kafka_event_error(event)
            guard code == RD_KAFKA_RESP_ERR_NO_ERROR else {
                let message = rd_kafka_event_error_string(event).map { String(cString: $0) }
                let error = KafkaError.adminResult(code, message: message, context: context)
                return .failure(code == RD_KAFKA_RESP_ERR__TIMED_OUT ? error.appending(mockClusterHint) : error)
            }
            return readResult(event)
        }
        return .failure(
            KafkaError(
                kind: .adminFailed,
                code: Int32(RD_KAFKA_RESP_ERR__TIMED_OUT.rawValue),
                isRetriable: true,
                detail: "\(context): no answer within \(requestTimeout); check that the brokers are reachable" + mockClusterHint
            )
        )
    }

    /// `rd_kafka_AdminOptions_t` with the timeouts set; the caller destroys it.
    static func makeOptions(
        handle: OpaquePointer, operation: rd_kafka_admin_op_t, requestTimeout: Duration, operationTimeout: Duration?
    ) -> Result<OpaquePointer, KafkaError> {
        let options = rd_kafka_AdminOptions_new(handle, operation)!
        var errorText = [CChar](repeating: 0, count: 512)
        var code = rd_kafka_AdminOptions_set_request_timeout(
            options, Int32(clamping: requestTimeout.milliseconds), &errorText, errorText.count
        )
        if code == RD_KAFKA_RESP_ERR_NO_ERROR, let operationTimeout {
            code = rd_kafka_AdminOptions_set_operation_timeout(
                options, Int32(clamping: operationTimeout.milliseconds), &errorText, errorText.count
            )
        }
        guard code == RD_KAFKA_RESP_ERR_NO_ERROR else {
            rd_kafka_AdminOptions_destroy(options)
            return .failure(
                KafkaError(kind: .invalidConfiguration, code: Int32(code.rawValue), detail: "admin request options: \(String(cBuffer: errorText))")
            )
        }
        return .success(options)
    }
}

extension KafkaError {
    /// The same error with more explanation after its detail.
    fileprivate func appending(_ text: String) -> KafkaError {
        KafkaError(kind: kind, code: code, isFatal: isFatal, isRetriable: isRetriable, detail: detail + text)
    }

    /// An Admin API error with the broker's (or librdkafka's) own explanation, which is more
    /// specific than the code's generic text; neither ever contains configuration secrets.
    fileprivate static func adminResult(_ code: rd_kafka_resp_err_t, message: String?, context: String) -> KafkaError {
        let generic = KafkaError.rdKafka(code, kind: .adminFailed, context: context)
        guard let message, !message.isEmpty else { return generic }
        return KafkaError(
            kind: .adminFailed, code: generic.code, isFatal: generic.isFatal, isRetriable: generic.isRetriable,
            detail: "\(context): \(message)"
        )
    }
}
