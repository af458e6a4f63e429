import ArgumentParser
import CommandLineSupport
import Foundation
import Kafka
import Logging
import TopicSpecs
import Topology

struct TopicsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "topics",
        abstract: "Check the topology and bring a cluster's topics in line with it.",
        discussion: """
            Topology/topology.yaml declares every topic (partitions, replication, retention, compaction, dead-letter topics), the workers that read and write them, and the regions. `validate` checks the file; `describe` compares it with a cluster; `apply` creates what is missing and lists what an operator has to change.
            """,
        subcommands: [Validate.self, Describe.self, Apply.self]
    )
}

/// How to reach a cluster: every command that talks to Kafka takes these.
struct ConnectionOptions: ParsableArguments {
    @Option(help: "Bootstrap servers of the cluster, host:port[,host:port].")
    var bootstrap: String

    @Option(help: "Seconds to wait for the cluster to answer each request.")
    var timeout = 10

    @Option(name: .customLong("property"), help: "A librdkafka property as KEY=VALUE (TLS, SASL). Repeatable.")
    var properties: [String] = []

    func validate() throws {
        guard timeout >= 1 else { throw ValidationError("--timeout must be at least 1 second") }
        do {
            _ = try KafkaConfiguration.properties(fromAssignments: properties)
        } catch {
            throw ValidationError("--property: \(error.detail)")
        }
    }

    /// The client settings, named `clientID` in the cluster's logs and quotas.
    func configuration(clientID: String) -> KafkaConfiguration {
        // `validate()` has checked the properties.
        let pairs = (try? KafkaConfiguration.properties(fromAssignments: properties)) ?? [:]
        return KafkaConfiguration(bootstrapServers: bootstrap, clientID: clientID, requestTimeout: .seconds(timeout), properties: pairs)
    }
}

/// How to reach the cluster and which of the topology's profiles applies to it.
struct ClusterOptions: ParsableArguments {
    @OptionGroup var connection: ConnectionOptions

    @Option(help: "Region whose partition counts apply (see regions in the topology); `dev` for the dev cluster's profile. Default: the base counts.")
    var region: String?

    var bootstrap: String { connection.bootstrap }

    func admin(logger: Logger) throws -> KafkaAdmin {
        do {
            return try KafkaAdmin(configuration: connection.configuration(clientID: "vigil-topics"), logger: logger)
        } catch {
            writeError("vigil: cannot reach \(bootstrap): \(error)")
            throw ExitCode.failure
        }
    }

    func profile(of topology: Topology) throws -> Topology.Profile {
        do {
            return try topology.profile(region: region)
        } catch {
            throw ValidationError("--region \(region ?? ""): \(error.message)")
        }
    }
}

extension ClusterOptions {
    /// The topology's topics for this cluster's profile and what the cluster has, with the
    /// header that says which values could not be read. Both `describe` and `apply` start here.
    func declaredAndActual(topology: TopologyOption, logger: Logger) async throws -> (specs: [KafkaTopicSpec], view: ClusterView, admin: KafkaAdmin) {
        let loaded = try topology.loadValid()
        let profile = try profile(of: loaded)
        let specs = loaded.topicSpecs(profile: profile)
        let admin = try admin(logger: logger)
        let view = try await ClusterView.read(admin, bootstrap: bootstrap, declared: specs)
        view.printHeader(topology: topology.topology, profile: profile, declared: specs.count, bootstrap: bootstrap)
        return (specs, view, admin)
    }
}

/// What the cluster says about the declared topics: metadata always, configs when the cluster
/// answers DescribeConfigs (librdkafka's mock cluster does not).
struct ClusterView {
    var metadata: KafkaClusterMetadata
    /// Nil when the configs could not be read; `configsError` says why.
    var configs: [String: [String: String]]?
    var configsError: String?

    static func read(_ admin: KafkaAdmin, bootstrap: String, declared: [KafkaTopicSpec]) async throws -> ClusterView {
        let metadata: KafkaClusterMetadata
        do {
            metadata = try await admin.metadata()
        } catch {
            writeError("vigil: cannot read the cluster's metadata from \(bootstrap): \(error)")
            throw ExitCode.failure
        }
        let existing = declared.map(\.name).filter { metadata.topic($0).map { !$0.partitions.isEmpty } ?? false }
        guard !existing.isEmpty else { return ClusterView(metadata: metadata, configs: [:]) }
        do {
            return ClusterView(metadata: metadata, configs: try await admin.describeTopicConfigs(existing))
        } catch {
            return ClusterView(metadata: metadata, configs: nil, configsError: "\(error)")
        }
    }

    /// Printed before any table or plan, so an unknown value is never mistaken for a mismatch.
    func printHeader(topology file: String, profile: Topology.Profile, declared: Int, bootstrap: String) {
        let userTopics = metadata.topics.filter { !$0.name.hasPrefix("__") }
        writeLine("topology: \(file) (\(profile)), \(TopologyOption.count(declared, "topic")) declared")
        writeLine("cluster:  \(bootstrap), \(TopologyOption.count(metadata.brokers.count, "broker")), \(TopologyOption.count(userTopics.count, "topic"))")
        if let configsError {
            writeLine("configs:  cannot be read, so retention, cleanup and min.insync are unknown:")
            writeLine("          \(configsError)")
        }
    }

    /// Topics on the cluster that the topology does not declare (internal `__` topics left out).
    func undeclared(_ declared: [KafkaTopicSpec]) -> [KafkaClusterMetadata.Topic] {
        let names = Set(declared.map(\.name))
        return metadata.topics.filter { !names.contains($0.name) && !$0.name.hasPrefix("__") && !$0.partitions.isEmpty }
    }
}

extension TopicsCommand {
    struct Validate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check the topology file and print every problem (exit 1 on any).",
            discussion: "Problems name their key path, e.g. workers.vigil-detect.inputs[0], and say what to change."
        )

        @OptionGroup var topology: TopologyOption

        func run() async throws {
            let loaded = try topology.load()
            let problems = loaded.validate()
            for problem in problems { writeLine(loaded.description(of: problem, file: topology.topology)) }
            guard problems.isEmpty else {
                writeLine("\(TopologyOption.count(problems.count, "problem")) in \(topology.topology)")
                throw ExitCode.failure
            }
            writeLine(
                "\(topology.topology): valid — \(TopologyOption.count(loaded.topics.count, "topic")), "
                    + "\(TopologyOption.count(loaded.workers.count, "worker")), \(TopologyOption.count(loaded.regions.count, "region"))"
            )
        }
    }

    struct Describe: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show each declared topic next to what the cluster has.",
            discussion: """
                Columns show declared/actual. `?` means the cluster did not say: librdkafka's mock cluster (`vigil dev-cluster`) answers metadata but not DescribeConfigs, so there retention, cleanup and min.insync are unknown. Leaders are counted per broker (broker×partitions).
                """
        )

        @OptionGroup var cluster: ClusterOptions
        @OptionGroup var topology: TopologyOption
        @OptionGroup var logging: LoggingOptions

        func run() async throws {
            let (specs, view, _) = try await cluster.declaredAndActual(topology: topology, logger: logging.bootstrap(label: "vigil.topics"))
            writeLine("")

            var rows = [["TOPIC", "PARTITIONS", "REPLICATION", "RETENTION", "CLEANUP", "MIN.INSYNC", "LEADERS", "STATUS"]]
            for spec in specs {
                rows.append(Self.row(spec, view: view))
            }
            for line in alignedColumns(rows) { writeLine(line) }
            writeLine("(declared/actual; ? = not known)")
            let undeclared = view.undeclared(specs)
            if !undeclared.isEmpty {
                writeLine("")
                writeLine("not in the topology: " + undeclared.map { "\($0.name) (\($0.partitions.count))" }.joined(separator: ", "))
            }
        }

        static func row(_ spec: KafkaTopicSpec, view: ClusterView) -> [String] {
            let declaredRetention = spec.configs["retention.ms"].map(Retention.describing(kafkaRetentionMilliseconds:)) ?? "?"
            let declaredCleanup = spec.configs["cleanup.policy"] ?? "?"
            let declaredMinInsync = spec.configs["min.insync.replicas"] ?? "?"
            guard let topic = view.metadata.topic(spec.name), !topic.partitions.isEmpty else {
                return [
                    spec.name, "\(spec.partitions)/-", "\(spec.replicationFactor)/-", "\(declaredRetention)/-", "\(declaredCleanup)/-",
                    "\(declaredMinInsync)/-", "-", "missing",
                ]
            }
            let configs = view.configs?[spec.name]
            let actualRetention = configs?["retention.ms"].map(Retention.describing(kafkaRetentionMilliseconds:)) ?? "?"
            let replicaCounts = Set(topic.partitions.map(\.replicas.count))
            let actualReplication = replicaCounts.count == 1 ? "\(replicaCounts.first!)" : "\(replicaCounts.min()!)-\(replicaCounts.max()!)"

            var leaders: [Int32: Int] = [:]
            for partition in topic.partitions { leaders[partition.leader, default: 0] += 1 }
            let leaderText = leaders.keys.sorted().map { broker in
                broker < 0 ? "none×\(leaders[broker]!)" : "\(broker)×\(leaders[broker]!)"
            }.joined(separator: " ")

            let changes = KafkaAdmin.diff(
                declared: [spec], actual: ClusterView.single(topic, of: view.metadata), actualConfigs: view.configs ?? [:]
            )
            var status: [String] = []
            let structural = changes.contains { if case .alterConfig = $0 { false } else { true } }
            let configMismatch = view.configs != nil && changes.contains { if case .alterConfig = $0 { true } else { false } }
            status.append(structural || configMismatch ? "differs" : "ok")
            if view.configs == nil { status.append("configs unknown") }
            let underReplicated = topic.partitions.filter { $0.inSyncReplicas.count < $0.replicas.count }.count
            if underReplicated > 0 { status.append("\(underReplicated) under-replicated") }
            if leaders[-1] != nil { status.append("partitions without leader") }

            return [
                spec.name,
                "\(spec.partitions)/\(topic.partitions.count)",
                "\(spec.replicationFactor)/\(actualReplication)",
                "\(declaredRetention)/\(actualRetention)",
                "\(declaredCleanup)/\(configs?["cleanup.policy"] ?? "?")",
                "\(declaredMinInsync)/\(configs?["min.insync.replicas"] ?? "?")",
                leaderText,
                status.joined(separator: ", "),
            ]
        }
    }

    struct Apply: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create the topology's missing topics on a cluster and list what needs an operator.",
            discussion: """
                Reads the cluster (metadata and topic configs), prints the plan, then creates the missing topics (CreateTopics) and reports each. Differences it cannot make on its own are listed for an operator: fewer partitions than declared (CreatePartitions is not implemented yet), more partitions than declared (Kafka cannot shrink a topic), another replication factor (needs a reassignment) and config values (AlterConfigs is not implemented yet). When the cluster does not answer DescribeConfigs, configs are reported as unknown.

                librdkafka's mock cluster (`vigil dev-cluster`) answers neither CreateTopics nor DescribeConfigs: there, `vigil dev-cluster` creates the topology's topics itself, and `apply` waits --timeout seconds for configs before reporting them unknown.

                Exit status: 0 the cluster matches (or, with --dry-run, nothing to do); 1 an error (invalid topology, cluster unreachable, a creation refused); 2 changes remain for an operator or could not be checked (with --dry-run: any change planned).
                """
        )

        @OptionGroup var cluster: ClusterOptions
        @OptionGroup var topology: TopologyOption

        @Flag(help: "Print the plan only; change nothing.")
        var dryRun = false

        @OptionGroup var logging: LoggingOptions

        /// Exit status when changes are left for an operator, or could not be checked.
        static let operatorNeeded = ExitCode(2)

        enum Step {
            case create(KafkaTopicSpec)
            case operatorNeeded(String)
            /// A declared config whose value on the cluster could not be read.
            case unknown(topic: String, key: String, declared: String)
        }

        func run() async throws {
            let (specs, view, admin) = try await cluster.declaredAndActual(topology: topology, logger: logging.bootstrap(label: "vigil.topics"))

            let changes = KafkaAdmin.diff(declared: specs, actual: view.metadata, actualConfigs: view.configs ?? [:])
            let steps = changes.map { Self.step($0, configsKnown: view.configs != nil) }
            writeLine("")
            if steps.isEmpty {
                writeLine("plan: nothing to do, the cluster matches the topology")
                return
            }
            writeLine("plan:")
            for line in Self.planLines(steps) { writeLine("  " + line) }
            let creations = steps.compactMap { if case .create(let spec) = $0 { spec } else { nil } }
            let manual = steps.count - creations.count
            let unknownTopics = Set(steps.compactMap { if case .unknown(let topic, _, _) = $0 { topic } else { nil } })
            let unknown = steps.filter { if case .unknown = $0 { true } else { false } }.count
            writeLine(
                "plan: \(creations.count) to create, \(manual - unknown) for an operator, "
                    + "\(TopologyOption.count(unknownTopics.count, "topic")) with unknown configs"
            )
            let undeclared = view.undeclared(specs)
            if !undeclared.isEmpty {
                writeLine("not in the topology (left alone): " + undeclared.map(\.name).joined(separator: ", "))
            }
            if dryRun {
                writeLine("dry run: nothing changed")
                throw Self.operatorNeeded
            }

            var failed = 0
            if !creations.isEmpty {
                writeLine("")
                let results: [KafkaTopicCreationResult]
                do {
                    results = try await admin.createTopics(creations)
                } catch {
                    writeError("vigil: creating topics failed: \(error)")
                    throw ExitCode.failure
                }
                for result in results {
                    switch result.outcome {
                    case .created:
                        writeLine("created   \(result.topic)")
                    case .alreadyExists:
                        writeLine("exists    \(result.topic) (created by someone else meanwhile; run apply again to compare it)")
                    case .failed(let error):
                        failed += 1
                        writeLine("failed    \(result.topic): \(error)")
                    }
                }
            }
            if failed > 0 {
                writeError("vigil: \(TopologyOption.count(failed, "topic")) could not be created")
                throw ExitCode.failure
            }
            if manual > 0 {
                writeError("vigil: \(TopologyOption.count(manual, "change")) left for an operator (listed above)")
                throw Self.operatorNeeded
            }
        }

        /// One line per step; a topic's unknown configs share one line.
        static func planLines(_ steps: [Step]) -> [String] {
            var lines: [String] = []
            var pending: (topic: String, configs: [String])?
            func flush() {
                if let unread = pending {
                    lines.append("unknown   topic \(unread.topic): \(unread.configs.joined(separator: ", ")) not verified (configs could not be read)")
                }
                pending = nil
            }
            for step in steps {
                if case .unknown(let topic, let key, let declared) = step, pending == nil || pending?.topic == topic {
                    pending = (topic, (pending?.configs ?? []) + ["\(key)=\(declared)"])
                    continue
                }
                flush()
                switch step {
                case .create(let spec):
                    let configs = spec.configs.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ")
                    lines.append(
                        "create    topic \(spec.name): \(spec.partitions) partitions, replication factor \(spec.replicationFactor)"
                            + (configs.isEmpty ? "" : ", \(configs)")
                    )
                case .operatorNeeded(let text):
                    lines.append("operator  \(text)")
                case .unknown(let topic, let key, let declared):
                    pending = (topic, ["\(key)=\(declared)"])
                }
            }
            flush()
            return lines
        }

        static func step(_ change: KafkaTopicChange, configsKnown: Bool) -> Step {
            switch change {
            case .createTopic(let spec):
                return .create(spec)
            case .increasePartitions(let topic, _, let to):
                return .operatorNeeded(
                    "\(change); not automatic yet (CreatePartitions is not implemented): kafka-topics.sh --alter --topic \(topic) --partitions \(to)"
                )
            case .cannotShrinkPartitions, .replicationFactorMismatch:
                return .operatorNeeded(change.description)
            case .alterConfig(let topic, let key, nil, let declared) where !configsKnown:
                return .unknown(topic: topic, key: key, declared: declared)
            case .alterConfig(let topic, let key, _, let declared):
                return .operatorNeeded(
                    "\(change); not automatic yet (AlterConfigs is not implemented): "
                        + "kafka-configs.sh --alter --entity-type topics --entity-name \(topic) --add-config \(key)=\(declared)"
                )
            }
        }
    }
}

extension ClusterView {
    /// Metadata holding just one topic, for a per-topic diff.
    static func single(_ topic: KafkaClusterMetadata.Topic, of metadata: KafkaClusterMetadata) -> KafkaClusterMetadata {
        var copy = metadata
        copy.topics = [topic]
        return copy
    }
}
