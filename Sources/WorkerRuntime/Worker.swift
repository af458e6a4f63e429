import Foundation
import Hummingbird
import Kafka
import Logging
import Metrics
import Prometheus
import ServiceLifecycle
import UnixSignals

/// Runs one stage as a vigil worker: the whole `main` of a worker executable is
/// `try await Worker.run(stage: MyStage(), name: "vigil-detect")`.
public enum Worker {
    /// Reads the configuration (file from `--config PATH` or `VIGIL_CONFIG`, then the
    /// environment), bootstraps logging and metrics, and runs until SIGTERM/SIGINT.
    /// - Parameters:
    ///   - tables: the tables the stage looks things up in; each must be declared (`tables` in
    ///     the topology, or `worker.tables`).
    ///   - routes: mounts the worker's own HTTP routes next to `/metrics`, `/livez` and `/readyz`.
    public static func run(
        stage: any Stage, name: String, tables: [any WorkerTable] = [], routes: @Sendable (Router<BasicRequestContext>) -> Void = { _ in },
        arguments: [String] = CommandLine.arguments
    ) async throws {
        let configuration: WorkerConfiguration
        do {
            configuration = try await WorkerConfiguration.load(defaultName: name, file: configFile(arguments))
        } catch {
            FileHandle.standardError.write(Data("\(name): \(error)\n".utf8))
            exit(64)  // EX_USAGE: nothing started, fix the configuration
        }
        let level = configuration.logLevel
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        let logger = Logger(label: configuration.name)
        do {
            try await run(stage: stage, tables: tables, configuration: configuration, registry: registry, logger: logger, routes: routes)
        } catch {
            // A clear last word instead of a crash report: the orchestrator restarts the worker,
            // which resumes from its last commit.
            logger.critical("worker stopped on an error", metadata: ["error": "\(error)"])
            exit(1)
        }
    }

    /// Runs with a ready configuration; tests and benchmarks call this directly.
    public static func run(
        stage: any Stage, tables: [any WorkerTable] = [], configuration: WorkerConfiguration, registry: PrometheusCollectorRegistry, logger: Logger,
        routes: @Sendable (Router<BasicRequestContext>) -> Void = { _ in }, onListening: @escaping @Sendable (Int) -> Void = { _ in }
    ) async throws {
        if let undeclared = tables.first(where: { !configuration.tables.contains($0.topic) }) {
            throw UndeclaredTable(topic: undeclared.topic, declared: configuration.tables)
        }
        let tableReader = try makeTableReader(tables, configuration: configuration, logger: logger)
        do {
            try await run(
                stage: stage, tableReader: tableReader, configuration: configuration, registry: registry, logger: logger, routes: routes,
                onListening: onListening
            )
        } catch {
            await tableReader?.close()
            throw error
        }
        await tableReader?.close()
    }

    /// A reader for `tables`, not started yet (the runner starts it), or nil when there are none.
    private static func makeTableReader(_ tables: [any WorkerTable], configuration: WorkerConfiguration, logger: Logger) throws -> KafkaTableReader? {
        guard !tables.isEmpty else { return nil }
        let applier = TableApplier(tables: tables, worker: configuration.name, logger: logger)
        return try KafkaTableReader(
            configuration: KafkaTableReaderConfiguration(cluster: configuration.kafka, topics: tables.map(\.topic)), logger: logger
        ) { message in
            applier.apply(TableRecord(message))
        }
    }

    private static func run(
        stage: any Stage, tableReader: KafkaTableReader?, configuration: WorkerConfiguration, registry: PrometheusCollectorRegistry, logger: Logger,
        routes: @Sendable (Router<BasicRequestContext>) -> Void, onListening: @escaping @Sendable (Int) -> Void
    ) async throws {
        let metrics = WorkerMetrics(worker: configuration.name)
        let budget = configuration.memoryBudget
        let consumer = try KafkaConsumer(
            configuration: KafkaConsumerConfiguration(
                cluster: configuration.kafka, groupID: configuration.groupID, topics: configuration.inputs,
                commitInterval: configuration.commitInterval,
                bufferedBytes: budget.consumerBufferBytes, prefetchBytes: budget.consumerPrefetchBytes
            ),
            logger: logger
        )
        let producer: KafkaProducer
        do {
            producer = try KafkaProducer(
                configuration: KafkaProducerConfiguration(
                    cluster: configuration.kafka, deliveryTimeout: configuration.deliveryTimeout, maxInFlightBytes: budget.producerInFlightBytes
                ),
                logger: logger
            )
        } catch {
            await consumer.close()
            throw error
        }
        let declaredOutputs = Set(configuration.outputs + configuration.inputs.map { $0 + configuration.deadLetterSuffix })
        let progress = LoopProgress()
        let runner = StageRunner(
            consumer: consumer, producer: producer,
            handler: RecordHandler(
                worker: configuration.name, stage: stage, maxAge: configuration.maxAge, deadLetterSuffix: configuration.deadLetterSuffix,
                declaredOutputs: declaredOutputs,
                // librdkafka's own size check counts header framing a little differently: keep a margin.
                maxRecordBytes: producer.maxMessageBytes - 512
            ),
            tables: tableReader, maxInFlightRecords: configuration.maxInFlightRecords, outageLimit: configuration.outageTimeout,
            metrics: metrics, progress: progress, logger: logger
        )
        let readiness = Readiness(tables: tableReader)
        let router = HealthServer.router(
            registry: registry, consumer: consumer, readiness: readiness, progress: progress, livenessTimeout: configuration.livenessTimeout
        )
        routes(router)
        let http = Application(
            router: router,
            configuration: .init(address: .hostname(configuration.httpHost, port: configuration.httpPort), serverName: configuration.name),
            onServerRunning: { channel in onListening(channel.localAddress?.port ?? configuration.httpPort) },
            logger: logger
        )
        logger.info("worker starting", metadata: [
            "group": "\(configuration.groupID)", "inputs": "\(configuration.inputs)", "outputs": "\(configuration.outputs)",
            "bootstrap": "\(configuration.kafka.bootstrapServers)", "memory_budget_bytes": "\(budget.bytes)",
        ])
        // Graceful shutdown runs in reverse: the loop stops, stores its offsets and closes its
        // clients (it owns them: producer flushed, then the consumer commits and leaves), then
        // the HTTP server and the cluster watch end.
        var groupConfiguration = ServiceGroupConfiguration(
            services: [
                .init(service: http),
                .init(service: ClusterWatch(consumer: consumer, readiness: readiness, metrics: metrics, interval: .seconds(5))),
                // On failure too the HTTP server and the watch end gracefully: only the runner's error is logged.
                .init(service: runner, successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .gracefullyShutdownGroup),
            ],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        )
        // A stage that does not finish its record within the shutdown timeout is cancelled: the
        // record stays unstored and is processed again by the partition's next owner.
        groupConfiguration.maximumGracefulShutdownDuration = configuration.shutdownTimeout
        let group = ServiceGroup(configuration: groupConfiguration)
        try await group.run()
        logger.info("worker stopped")
    }

    private static func configFile(_ arguments: [String]) -> String? {
        if let index = arguments.firstIndex(of: "--config"), arguments.indices.contains(index + 1) {
            return arguments[index + 1]
        }
        return ProcessInfo.processInfo.environment["VIGIL_CONFIG"]
    }
}

/// The worker's code reads a table its configuration does not declare: the topology (the
/// source of truth for who reads what) must say so first.
public struct UndeclaredTable: Error, CustomStringConvertible {
    public var topic: String
    public var declared: [String]

    public var description: String {
        "the worker reads table \"\(topic)\", which its configuration does not declare (declared: \(declared.isEmpty ? "none" : declared.joined(separator: ", "))); "
            + "add it to the worker's tables in Topology/topology.yaml (worker.topology) or to worker.tables"
    }
}
