import Configuration
import Foundation
import Kafka
import Logging
import SystemPackage
import Topology

/// Everything a worker needs at start, read once from a YAML file and the environment
/// (environment wins) and validated before anything connects.
///
/// The settings, their keys, variables and defaults: `WorkerConfiguration.settings` (also what
/// every worker's `--help` lists).
public struct WorkerConfiguration: Sendable {
    public var name: String
    public var groupID: String
    public var inputs: [String]
    /// The topics the stage may write. The worker also writes its inputs' dead-letter topics.
    public var outputs: [String]
    /// Table topics the worker may read whole (`tables` in the topology).
    public var tables: [String]
    /// A source worker's table, whose partitions (and keys) the replicas split (`owns`).
    public var owns: String?
    /// Versions per key a table keeps for lookups by event time.
    public var tableVersions: Int
    /// A stateful worker's changelog topic.
    public var stateChangelog: String
    public var stateLimits: StateLimits
    public var stateCheckpointInterval: Duration
    public var kafka: KafkaConfiguration
    public var commitInterval: Duration
    public var deliveryTimeout: Duration
    public var maxInFlightRecords: Int
    public var memoryBudget: MemoryBudget
    public var livenessTimeout: Duration
    public var outageTimeout: Duration
    public var shutdownTimeout: Duration
    public var maxAge: Duration?
    public var deadLetterSuffix: String
    public var httpHost: String
    public var httpPort: Int
    public var logLevel: Logger.Level

    public init(
        name: String, groupID: String? = nil, inputs: [String], outputs: [String], tables: [String] = [], owns: String? = nil, tableVersions: Int = 16,
        stateChangelog: String? = nil, stateLimits: StateLimits = StateLimits(), stateCheckpointInterval: Duration = .seconds(60),
        kafka: KafkaConfiguration,
        commitInterval: Duration = .seconds(1), deliveryTimeout: Duration = .seconds(120), maxInFlightRecords: Int = 1_000,
        memoryBudget: MemoryBudget = MemoryBudget(bytes: 256 << 20), livenessTimeout: Duration = .seconds(180),
        outageTimeout: Duration = .seconds(60), shutdownTimeout: Duration = .seconds(25), maxAge: Duration? = nil,
        deadLetterSuffix: String = ".dlq", httpHost: String = "0.0.0.0", httpPort: Int = 9090, logLevel: Logger.Level = .info
    ) {
        self.name = name
        self.groupID = groupID ?? name
        self.inputs = inputs
        self.outputs = outputs
        self.tables = tables
        self.owns = owns
        self.tableVersions = tableVersions
        self.stateChangelog = stateChangelog ?? name + ".state.changelog"
        self.stateLimits = stateLimits
        self.stateCheckpointInterval = stateCheckpointInterval
        self.kafka = kafka
        self.commitInterval = commitInterval
        self.deliveryTimeout = deliveryTimeout
        self.maxInFlightRecords = maxInFlightRecords
        self.memoryBudget = memoryBudget
        self.livenessTimeout = livenessTimeout
        self.outageTimeout = outageTimeout
        self.shutdownTimeout = shutdownTimeout
        self.maxAge = maxAge
        self.deadLetterSuffix = deadLetterSuffix
        self.httpHost = httpHost
        self.httpPort = httpPort
        self.logLevel = logLevel
    }

    /// Reads the configuration: environment over the YAML file at `file` (if given).
    public static func load(
        defaultName: String, file: String?, environment: [String: String] = ProcessInfo.processInfo.environment
    ) async throws -> WorkerConfiguration {
        var providers: [any ConfigProvider] = [EnvironmentVariablesProvider(environmentVariables: environment)]
        if let file {
            guard FileManager.default.fileExists(atPath: file) else {
                throw WorkerConfigurationError(key: "config file", problem: "\(file) does not exist")
            }
            providers.append(try await FileProvider<YAMLSnapshot>(filePath: FilePath(file)))
        }
        return try read(ConfigReader(providers: providers), defaultName: defaultName)
    }

    static func read(_ config: ConfigReader, defaultName: String) throws -> WorkerConfiguration {
        guard let bootstrap = config.string(forKey: "kafka.bootstrap"), !bootstrap.isEmpty else {
            throw WorkerConfigurationError(key: "kafka.bootstrap", problem: "is required: the Kafka bootstrap servers, host:port[,host:port]")
        }
        let name = config.string(forKey: "worker.name", default: defaultName)
        let declared = try topologyEntry(config, worker: name)
        let inputs = topicList(config, "worker.inputs") ?? declared?.inputs ?? []
        let owns = config.string(forKey: "worker.owns").flatMap { $0.isEmpty ? nil : $0 } ?? declared?.owns
        guard !inputs.isEmpty || owns != nil else {
            throw WorkerConfigurationError(
                key: "worker.inputs", problem: "is required: the topics this worker consumes, comma-separated (or worker.owns for a source worker, or worker.topology)"
            )
        }
        let outputs = topicList(config, "worker.outputs") ?? declared?.outputs.map(\.topic) ?? []
        guard !outputs.isEmpty else {
            throw WorkerConfigurationError(
                key: "worker.outputs", problem: "is required: the topics this worker may write, comma-separated (its outputs in Topology/topology.yaml, or worker.topology)"
            )
        }
        let tables = topicList(config, "worker.tables") ?? declared?.tables ?? []
        let tableVersions = try positive(config, "worker.table-versions", default: 16)
        let stateLimits = StateLimits(
            maxKeys: try positive(config, "worker.state-max-keys", default: 100_000),
            maxKeyBytes: try positive(config, "worker.state-max-key-bytes", default: 64 << 10)
        )
        let checkpointMilliseconds = try positive(config, "worker.state-checkpoint-ms", default: 60_000)
        let properties: [String: String]
        do {
            properties = try KafkaConfiguration.properties(fromAssignments: config.stringArray(forKey: "kafka.properties", isSecret: true) ?? [])
        } catch {
            throw WorkerConfigurationError(key: "kafka.properties", problem: "entries must look like name=value: \(error.detail)")
        }
        do {
            try KafkaConfiguration.checkPassThrough(properties)
        } catch {
            throw WorkerConfigurationError(key: "kafka.properties", problem: "refused: \(error.detail)")
        }
        let commitMilliseconds = try positive(config, "kafka.commit-interval-ms", default: 1_000)
        let timeoutMilliseconds = try positive(config, "kafka.request-timeout-ms", default: 10_000)
        let deliveryMilliseconds = try positive(config, "kafka.delivery-timeout-ms", default: 120_000)
        let maxInFlight = try positive(config, "worker.max-in-flight", default: 1_000)
        let budgetMegabytes = try positive(config, "worker.memory-budget-mb", default: 256)
        guard budgetMegabytes >= MemoryBudget.minimumMegabytes else {
            throw WorkerConfigurationError(
                key: "worker.memory-budget-mb", problem: "must be at least \(MemoryBudget.minimumMegabytes): every buffer must hold one 1 MB record"
            )
        }
        let livenessMilliseconds = try positive(config, "worker.liveness-timeout-ms", default: 180_000)
        let outageMilliseconds = try positive(config, "worker.outage-timeout-ms", default: 60_000)
        let shutdownMilliseconds = try positive(config, "worker.shutdown-timeout-ms", default: 25_000)
        let maxAge = try integer(config, "worker.max-age-ms").map { value in
            guard value > 0 else { throw WorkerConfigurationError(key: "worker.max-age-ms", problem: "must be positive, or left out to never skip") }
            return Duration.milliseconds(value)
        }
        let port = try integer(config, "http.port") ?? 9090
        guard (0...65_535).contains(port) else {
            throw WorkerConfigurationError(key: "http.port", problem: "must be 0 to 65535")
        }
        let levelText = config.string(forKey: "log.level", default: "info")
        guard let level = Logger.Level(rawValue: levelText) else {
            throw WorkerConfigurationError(key: "log.level", problem: "\"\(levelText)\" is not one of trace, debug, info, notice, warning, error, critical")
        }
        let suffix = config.string(forKey: "worker.dlq-suffix", default: ".dlq")
        guard !suffix.isEmpty else { throw WorkerConfigurationError(key: "worker.dlq-suffix", problem: "must not be empty") }
        return WorkerConfiguration(
            name: name,
            groupID: config.string(forKey: "worker.group", default: declared?.consumerGroup ?? name),
            inputs: inputs,
            outputs: outputs,
            tables: tables,
            owns: owns,
            tableVersions: tableVersions,
            stateChangelog: config.string(forKey: "worker.state-changelog"),
            stateLimits: stateLimits,
            stateCheckpointInterval: .milliseconds(checkpointMilliseconds),
            kafka: KafkaConfiguration(
                bootstrapServers: bootstrap, clientID: name, requestTimeout: .milliseconds(timeoutMilliseconds), properties: properties
            ),
            commitInterval: .milliseconds(commitMilliseconds),
            deliveryTimeout: .milliseconds(deliveryMilliseconds),
            maxInFlightRecords: maxInFlight,
            memoryBudget: MemoryBudget(bytes: budgetMegabytes << 20),
            livenessTimeout: .milliseconds(livenessMilliseconds),
            outageTimeout: .milliseconds(outageMilliseconds),
            shutdownTimeout: .milliseconds(shutdownMilliseconds),
            maxAge: maxAge,
            deadLetterSuffix: suffix,
            httpHost: config.string(forKey: "http.host", default: "0.0.0.0"),
            httpPort: port,
            logLevel: level
        )
    }

    /// A comma-separated topic list, or nil when the key is not set.
    private static func topicList(_ config: ConfigReader, _ key: ConfigKey) -> [String]? {
        let topics = (config.stringArray(forKey: key) ?? []).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        return topics.isEmpty ? nil : topics
    }

    /// This worker's entry in the topology file named by `worker.topology`, if one is named.
    private static func topologyEntry(_ config: ConfigReader, worker: String) throws -> Topology.Worker? {
        guard let path = config.string(forKey: "worker.topology") else { return nil }
        let topology: Topology
        do {
            topology = try Topology.load(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw WorkerConfigurationError(key: "worker.topology", problem: "cannot be read: \(error)")
        }
        guard let entry = topology.workers.first(where: { $0.name == worker }) else {
            throw WorkerConfigurationError(
                key: "worker.topology",
                problem: "\(path) declares no worker \"\(worker)\" (it declares \(topology.workers.map(\.name).joined(separator: ", "))); set worker.name or add the worker"
            )
        }
        return entry
    }

    /// The whole number at `key`, nil when unset. A value set but not a whole number ("1k") is
    /// an error naming the key, never the default in silence.
    private static func integer(_ config: ConfigReader, _ key: ConfigKey) throws -> Int? {
        if let number = config.int(forKey: key) { return number }
        guard let text = config.string(forKey: key) else { return nil }
        throw WorkerConfigurationError(key: key.components.joined(separator: "."), problem: "is \"\(text)\"; give a whole number")
    }

    private static func positive(_ config: ConfigReader, _ key: ConfigKey, default value: Int) throws -> Int {
        let number = try integer(config, key) ?? value
        guard number > 0 else {
            throw WorkerConfigurationError(key: key.components.joined(separator: "."), problem: "must be positive, not \(number)")
        }
        return number
    }
}

/// A configuration value that is missing or wrong, named by its key and environment variable.
public struct WorkerConfigurationError: Error, CustomStringConvertible {
    public let key: String
    public let problem: String

    public var description: String {
        let environment = key.uppercased().replacingOccurrences(of: ".", with: "_").replacingOccurrences(of: "-", with: "_")
        return "configuration \(key) (environment \(environment)) \(problem)"
    }
}

/// A worker's memory for records in transit, in bytes, split between the Kafka buffers so
/// that a worker on large records (frames, video chunks) stays inside it however large they
/// are: a quarter for librdkafka's prefetch queue, a quarter for fetched records waiting for
/// the stage, half for outputs awaiting acknowledgement. The stage's own memory comes on top.
public struct MemoryBudget: Sendable, Equatable {
    /// Each share must hold at least one record of the 1 MB limit.
    public static let minimumMegabytes = 16

    public var bytes: Int

    public init(bytes: Int) {
        self.bytes = bytes
    }

    public var consumerPrefetchBytes: Int { bytes / 4 }
    public var consumerBufferBytes: Int { bytes / 4 }
    public var producerInFlightBytes: Int { bytes / 2 }
}

extension WorkerConfiguration {
    /// Every setting the configuration reads, as `--help` lists them; `load` reads these keys.
    public static let settings: [WorkerSetting] = [
        WorkerSetting("KAFKA_BOOTSTRAP", key: "kafka.bootstrap", default: "required", "the brokers, host:port,host:port"),
        WorkerSetting("KAFKA_PROPERTIES", key: "kafka.properties", default: "none", "librdkafka properties as a name=value list, e.g. TLS and SASL"),
        WorkerSetting("KAFKA_COMMIT_INTERVAL_MS", key: "kafka.commit-interval-ms", default: "1000", "how often stored offsets are committed"),
        WorkerSetting("KAFKA_REQUEST_TIMEOUT_MS", key: "kafka.request-timeout-ms", default: "10000", "how long a request to a broker may take"),
        WorkerSetting("KAFKA_DELIVERY_TIMEOUT_MS", key: "kafka.delivery-timeout-ms", default: "120000", "an output undelivered this long stops the worker"),
        WorkerSetting("WORKER_NAME", key: "worker.name", default: "the executable's name", "the name in logs, metrics and audit events"),
        WorkerSetting("WORKER_GROUP", key: "worker.group", default: "the topology's, else the worker name", "the consumer group the replicas share"),
        WorkerSetting("WORKER_TOPOLOGY", key: "worker.topology", default: "none", "a topology.yaml whose entry for this worker gives group, inputs, outputs and tables"),
        WorkerSetting("WORKER_INPUTS", key: "worker.inputs", default: "the topology's, else required", "comma-separated input topics"),
        WorkerSetting("WORKER_OUTPUTS", key: "worker.outputs", default: "the topology's, else required", "the only topics the stage may write (its inputs' DLQs are added)"),
        WorkerSetting("WORKER_OWNS", key: "worker.owns", default: "the topology's", "a source worker's table, whose keys the replicas split"),
        WorkerSetting("WORKER_TABLES", key: "worker.tables", default: "the topology's, else none", "table topics the worker may read whole"),
        WorkerSetting("WORKER_TABLE_VERSIONS", key: "worker.table-versions", default: "16", "versions per key a table keeps for lookups by event time"),
        WorkerSetting("WORKER_STATE_CHANGELOG", key: "worker.state-changelog", default: "<worker>.state.changelog", "a stateful worker's changelog (one of its outputs)"),
        WorkerSetting("WORKER_STATE_MAX_KEYS", key: "worker.state-max-keys", default: "100000", "keys a stateful worker holds across its partitions"),
        WorkerSetting("WORKER_STATE_MAX_KEY_BYTES", key: "worker.state-max-key-bytes", default: "65536", "bytes of one key's state snapshot"),
        WorkerSetting("WORKER_STATE_CHECKPOINT_MS", key: "worker.state-checkpoint-ms", default: "60000", "keys not written this long get a snapshot again"),
        WorkerSetting("WORKER_MAX_IN_FLIGHT", key: "worker.max-in-flight", default: "1000", "records processed and awaiting their outputs' delivery"),
        WorkerSetting("WORKER_MEMORY_BUDGET_MB", key: "worker.memory-budget-mb", default: "256", "memory for Kafka buffers (see MemoryBudget)"),
        WorkerSetting("WORKER_LIVENESS_TIMEOUT_MS", key: "worker.liveness-timeout-ms", default: "180000", "/livez fails when the loop is stuck this long (above the delivery timeout: a broker outage ends in the worker's own exit, with its reason)"),
        WorkerSetting("WORKER_OUTAGE_TIMEOUT_MS", key: "worker.outage-timeout-ms", default: "60000", "a stage unavailable this long stops the worker"),
        WorkerSetting("WORKER_SHUTDOWN_TIMEOUT_MS", key: "worker.shutdown-timeout-ms", default: "25000", "after SIGTERM, a stage still busy this long is cancelled"),
        WorkerSetting("WORKER_MAX_AGE_MS", key: "worker.max-age-ms", default: "none (never skip)", "records older than this in event time are skipped (load shedding)"),
        WorkerSetting("WORKER_DLQ_SUFFIX", key: "worker.dlq-suffix", default: ".dlq", "a dead letter goes to its input topic plus this"),
        WorkerSetting("HTTP_HOST", key: "http.host", default: "0.0.0.0", "where /metrics, /livez and /readyz listen"),
        WorkerSetting("HTTP_PORT", key: "http.port", default: "9090", "their port; 0 takes any free one"),
        WorkerSetting("LOG_LEVEL", key: "log.level", default: "info", "trace, debug, info, notice, warning, error or critical"),
    ]
}
