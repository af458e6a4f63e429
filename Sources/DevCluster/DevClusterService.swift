import Foundation
import Hummingbird
import Kafka
import Logging
import NIOCore
import ServiceLifecycle

/// Hosts librdkafka's mock cluster for local runs and tests: creates the topics, serves the
/// fault-injection control API on loopback, writes a state file with the addresses, and
/// runs until graceful shutdown (SIGINT/SIGTERM), when it removes the state file again.
public struct DevClusterService: Service {
    public struct Configuration: Sendable {
        public var brokers: Int
        public var topics: [DevClusterTopic]
        /// 0 picks a free port; the chosen one is in the state file.
        public var controlPort: Int
        /// JSON `DevClusterState`, written once the cluster and control API are up.
        public var stateFile: URL
        /// Optional plain-text file holding only the bootstrap servers, for shell scripts.
        public var bootstrapFile: URL?

        public init(brokers: Int, topics: [DevClusterTopic], controlPort: Int = 0, stateFile: URL, bootstrapFile: URL? = nil) {
            self.brokers = brokers
            self.topics = topics
            self.controlPort = controlPort
            self.stateFile = stateFile
            self.bootstrapFile = bootstrapFile
        }
    }

    let configuration: Configuration
    let logger: Logger
    /// Called once the cluster is reachable, with what the state file says.
    let onReady: @Sendable (DevClusterState) -> Void

    public init(configuration: Configuration, logger: Logger, onReady: @escaping @Sendable (DevClusterState) -> Void = { _ in }) {
        self.configuration = configuration
        self.logger = logger
        self.onReady = onReady
    }

    public func run() async throws {
        let cluster = try KafkaMockCluster(brokers: configuration.brokers, logger: logger)
        defer { cluster.shutdown() }
        let control = DevClusterControl(cluster: cluster, logger: logger)
        for topic in configuration.topics {
            try control.createTopic(topic)
        }
        let configuration = configuration
        let logger = logger
        let onReady = onReady
        let application = Application(
            router: control.router(),
            configuration: .init(address: .hostname("127.0.0.1", port: configuration.controlPort), serverName: "vigil-dev-cluster"),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? configuration.controlPort
                let state = DevClusterState(
                    bootstrapServers: cluster.bootstrapServers,
                    controlURL: "http://127.0.0.1:\(port)",
                    brokers: configuration.brokers,
                    topics: control.topics,
                    processID: getpid()
                )
                do {
                    try Self.write(state, configuration: configuration)
                } catch {
                    logger.error("cannot write the dev cluster's state file", metadata: ["path": "\(configuration.stateFile.path)", "error": "\(error)"])
                }
                onReady(state)
            },
            logger: logger
        )
        defer {
            try? FileManager.default.removeItem(at: configuration.stateFile)
            if let bootstrapFile = configuration.bootstrapFile { try? FileManager.default.removeItem(at: bootstrapFile) }
        }
        try await application.run()
    }

    private static func write(_ state: DevClusterState, configuration: Configuration) throws {
        let directory = configuration.stateFile.deletingLastPathComponent()
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        // Written to a temporary name and moved, so a reader never sees half a file.
        let temporary = directory.appendingPathComponent(".\(configuration.stateFile.lastPathComponent).tmp")
        try encoder.encode(state).write(to: temporary)
        guard rename(temporary.path, configuration.stateFile.path) == 0 else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: configuration.stateFile.path])
        }
        if let bootstrapFile = configuration.bootstrapFile {
            try (state.bootstrapServers + "\n").write(to: bootstrapFile, atomically: true, encoding: .utf8)
        }
    }
}
