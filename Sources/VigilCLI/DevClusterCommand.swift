import ArgumentParser
import CommandLineSupport
import DevCluster
import Foundation
import WorkerRuntime
import Kafka
import Logging
import ServiceLifecycle
import Topology
import UnixSignals

struct DevClusterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dev-cluster",
        abstract: "Run a local Kafka cluster (librdkafka's mock brokers) and inject faults into it.",
        discussion: """
            `vigil dev-cluster` (same as `vigil dev-cluster start`) starts brokers on loopback that speak the real Kafka protocol; any Kafka client, kcat included, can use them. It creates the topics of Topology/topology.yaml with the dev profile's partitions (or only the --topic ones), prints the bootstrap servers and writes them, with the control API's address, to the state file. The other subcommands talk to the running cluster through that file.

            Limits (librdkafka's): every partition keeps only its newest 5 MiB or 100,000 batches, data lives in memory, there is no compaction, and topics are created here, not through the Admin API. Consumers detect and count records the broker dropped.
            """,
        subcommands: [Start.self, BrokerCommand.self, RoundTripTime.self, Leader.self, Coordinator.self, RequestErrors.self, CreateTopic.self, Status.self],
        defaultSubcommand: Start.self
    )
}

/// Where the running dev cluster's state file is.
struct StateFileOption: ParsableArguments {
    @Option(name: .long, help: "State file of the dev cluster (env VIGIL_DEV_CLUSTER_STATE).")
    var stateFile: String = ProcessInfo.processInfo.environment["VIGIL_DEV_CLUSTER_STATE"] ?? ".vigil/dev-cluster.json"

    var url: URL { URL(fileURLWithPath: stateFile) }

    func client() throws -> DevClusterClient {
        do {
            return try DevClusterClient(stateFile: url)
        } catch {
            throw ValidationError("\(error)")
        }
    }
}

extension DevClusterCommand {
    struct Start: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Start the cluster and run until SIGINT or SIGTERM."
        )

        @Option(help: "Number of brokers (1-32). Default: the topology's dev.brokers, or 3 with --topic.")
        var brokers: Int?

        @Option(
            name: .customLong("topic"),
            help: "A topic to create instead of the topology's, as NAME[:PARTITIONS[:REPLICATION]]. Repeatable."
        )
        var topics: [String] = []

        @Option(help: "Replication factor for --topic entries that do not give one (at most --brokers).")
        var replicationFactor = 3

        @OptionGroup(title: "Topology (used without --topic)") var topology: TopologyOption

        @Option(help: "Port of the control API on 127.0.0.1; 0 picks a free one.")
        var controlPort = 0

        @Option(help: "Also write just the bootstrap servers to this file, for scripts.")
        var bootstrapFile: String?

        @OptionGroup var stateFile: StateFileOption
        @OptionGroup var logging: LoggingOptions

        func validate() throws {
            if let brokers, !(1...32).contains(brokers) { throw ValidationError("--brokers must be 1 to 32") }
            if !topics.isEmpty, !(1...(brokers ?? 3)).contains(replicationFactor) {
                throw ValidationError("--replication-factor must be 1 to --brokers (\(brokers ?? 3))")
            }
        }

        func run() async throws {
            let logger = logging.bootstrap(label: "vigil.dev-cluster")
            ParentWatch.start(logger: logger)
            let brokerCount: Int
            let topicList: [DevClusterTopic]
            if topics.isEmpty {
                let loaded = try topology.loadValid()
                brokerCount = brokers ?? loaded.dev.brokers
                topicList = loaded.devClusterTopics(brokers: brokerCount)
                if loaded.dev.replicationFactor > brokerCount {
                    logger.notice(
                        "replication factor lowered to the broker count",
                        metadata: ["declared": "\(loaded.dev.replicationFactor)", "brokers": "\(brokerCount)"]
                    )
                }
            } else {
                brokerCount = brokers ?? 3
                let replication = min(replicationFactor, brokerCount)
                topicList = try topics.map { argument in
                    do {
                        return try DevClusterTopic(argument: argument, defaultReplicationFactor: replication)
                    } catch {
                        throw ValidationError("\(error)")
                    }
                }
            }
            let service = DevClusterService(
                configuration: .init(
                    brokers: brokerCount, topics: topicList, controlPort: controlPort,
                    stateFile: stateFile.url, bootstrapFile: bootstrapFile.map { URL(fileURLWithPath: $0) }
                ),
                logger: logger
            ) { state in
                writeLine("bootstrap servers: \(state.bootstrapServers)")
                writeLine("control API:       \(state.controlURL)")
                writeLine("state file:        \(stateFile.url.path)")
                writeLine("topics:            \(state.topics.map { "\($0.name) (\($0.partitions))" }.joined(separator: ", "))")
            }
            let group = ServiceGroup(
                configuration: .init(services: [service], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
            )
            try await group.run()
        }
    }

    struct BrokerCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "broker",
            abstract: "Take a broker off the network (down) or bring it back (up)."
        )

        enum Action: String, ExpressibleByArgument, CaseIterable { case down, up }

        @Argument(help: "down or up.")
        var action: Action

        @Argument(help: "Broker id (1 to the broker count).")
        var broker: Int32

        @OptionGroup var stateFile: StateFileOption

        func run() async throws {
            try await stateFile.client().setBroker(broker, up: action == .up)
            print("broker \(broker) \(action.rawValue)")
        }
    }

    struct RoundTripTime: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "rtt", abstract: "Add round-trip time to one broker's requests.")

        @Argument var broker: Int32
        @Argument(help: "Milliseconds; 0 removes the delay.") var milliseconds: Int
        @OptionGroup var stateFile: StateFileOption

        func run() async throws {
            try await stateFile.client().setRoundTripTime(broker: broker, milliseconds: milliseconds)
            print("broker \(broker) rtt \(milliseconds) ms")
        }
    }

    struct Leader: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Move a partition's leadership to another broker.")

        @Option var topic: String
        @Option var partition: Int32
        @Option var broker: Int32
        @OptionGroup var stateFile: StateFileOption

        func run() async throws {
            try await stateFile.client().setLeader(topic: topic, partition: partition, broker: broker)
            print("leader of \(topic)[\(partition)] is broker \(broker)")
        }
    }

    struct Coordinator: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Move a consumer group's coordinator to another broker.")

        @Option(help: "Consumer group id.") var group: String
        @Option var broker: Int32
        @OptionGroup var stateFile: StateFileOption

        func run() async throws {
            try await stateFile.client().setCoordinator(keyType: "group", key: group, broker: broker)
            print("coordinator of group \(group) is broker \(broker)")
        }
    }

    struct RequestErrors: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "request-errors",
            abstract: "Fail the next requests of one Kafka API with the given error codes.",
            discussion: "API keys: 0 Produce, 1 Fetch, 3 Metadata, 8 OffsetCommit, 9 OffsetFetch, 11 JoinGroup, 12 Heartbeat. Error codes: 6 NOT_LEADER_FOR_PARTITION, 7 REQUEST_TIMED_OUT, 19 NOT_ENOUGH_REPLICAS."
        )

        @Option(help: "Kafka API key.") var api: Int16
        @Option(name: .customLong("error"), help: "Kafka error code; repeat for several requests.") var errors: [Int32]
        @OptionGroup var stateFile: StateFileOption

        func run() async throws {
            try await stateFile.client().pushRequestErrors(apiKey: api, errors: errors)
            print("next \(errors.count) requests of API \(api) fail with \(errors)")
        }
    }

    struct CreateTopic: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "create-topic", abstract: "Create a topic in the running cluster.")

        @Argument(help: "NAME[:PARTITIONS[:REPLICATION]]") var topic: String
        @OptionGroup var stateFile: StateFileOption

        func run() async throws {
            let client = try stateFile.client()
            let spec: DevClusterTopic
            do {
                spec = try DevClusterTopic(argument: topic, defaultReplicationFactor: min(3, client.state.brokers))
            } catch {
                throw ValidationError("\(error)")
            }
            try await client.createTopic(spec)
            print("created \(spec.name) with \(spec.partitions) partitions")
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the running cluster's brokers and topics.")

        @OptionGroup var stateFile: StateFileOption

        func run() async throws {
            let client = try stateFile.client()
            var logger = Logger(label: "vigil.dev-cluster.status")
            logger.logLevel = .error
            let admin = try KafkaAdmin(configuration: .init(bootstrapServers: client.state.bootstrapServers), logger: logger)
            let metadata = try await admin.metadata()
            print("bootstrap servers: \(client.state.bootstrapServers)")
            print("brokers: \(metadata.brokers.map { "\($0.id)@\($0.host):\($0.port)" }.joined(separator: " "))")
            for topic in metadata.topics {
                let leaders = topic.partitions.map { String($0.leader) }.joined(separator: ",")
                print("\(topic.name)\t\(topic.partitions.count) partitions\tleaders \(leaders)")
            }
        }
    }
}
