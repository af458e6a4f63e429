import Foundation
import Hummingbird
import Kafka
import Logging
import Metrics
import Prometheus
import ServiceLifecycle
import UnixSignals

/// Runs a vigil worker: the whole `main` of a worker executable is
/// `try await Worker.run(stage: MyStage(), name: "vigil-detect")`, or for a worker without an
/// input topic `try await Worker.run(source: MySource(), name: "vigil-ingest", owning: CameraTable.make)`.
public enum Worker {
    /// Mounts a worker's own HTTP routes next to `/metrics`, `/livez` and `/readyz`.
    public typealias Routes = @Sendable (Router<BasicRequestContext>) -> Void

    /// Makes services that live as long as the stage, in the same process (vigil-alert's
    /// webhook delivery): started with it, told to stop after it stopped; one that fails stops
    /// the worker (exit 1, the orchestrator restarts it).
    public typealias Companions = @Sendable (WorkerConfiguration, Logger) throws -> [any Service]

    /// Reads the configuration (file from `--config PATH` or `VIGIL_CONFIG`, then the
    /// environment), bootstraps logging and metrics, and runs until SIGTERM/SIGINT.
    /// - Parameters:
    ///   - tables: the tables the stage looks things up in; each must be declared (`tables` in
    ///     the topology, or `worker.tables`).
    ///   - announcing: records sent once at start, apart from the stage's (the audit events of
    ///     the models it loaded).
    public static func run(
        stage: any Stage, name: String, tables: [any WorkerTable] = [], announcing: [StageOutput] = [], routes: @escaping Routes = { _ in },
        arguments: [String] = CommandLine.arguments
    ) async throws {
        await main(name: name, arguments: arguments) { configuration, registry, logger in
            try await run(
                stage: stage, tables: tables, announcing: announcing, configuration: configuration, registry: registry, logger: logger, routes: routes
            )
        }
    }

    /// Runs a stateful stage (see `StatefulStage`) the same way; its changelog
    /// (`worker.state-changelog`, default `<worker>.state.changelog`) must be among its outputs.
    public static func run<S: StatefulStage>(
        stage: S, name: String, tables: [any WorkerTable] = [], routes: @escaping Routes = { _ in }, companions: @escaping Companions = { _, _ in [] },
        arguments: [String] = CommandLine.arguments
    ) async throws {
        await main(name: name, arguments: arguments) { configuration, registry, logger in
            try await run(
                statefulStage: stage, tables: tables, configuration: configuration, registry: registry, logger: logger, routes: routes,
                companions: try companions(configuration, logger)
            )
        }
    }

    /// Runs a source worker (see `Source`) the same way.
    /// - Parameter owning: makes a table of the topic whose keys the replicas split (the
    ///   worker's `owns`); the runtime keeps one per assigned partition.
    public static func run<S: Source>(
        source: S, name: String, owning makeTable: @escaping @Sendable () -> Table<S.Value>, routes: @escaping Routes = { _ in },
        arguments: [String] = CommandLine.arguments
    ) async throws {
        await main(name: name, arguments: arguments) { configuration, registry, logger in
            try await run(source: source, owning: makeTable, configuration: configuration, registry: registry, logger: logger, routes: routes)
        }
    }

    /// Runs a stage with a ready configuration; tests and benchmarks call this directly.
    public static func run(
        stage: any Stage, tables: [any WorkerTable] = [], announcing: [StageOutput] = [], configuration: WorkerConfiguration,
        registry: PrometheusCollectorRegistry, logger: Logger, routes: @escaping Routes = { _ in }, onListening: @escaping @Sendable (Int) -> Void = { _ in }
    ) async throws {
        try await runStage(
            stage, alreadyCompressedOutputs: stage.alreadyCompressedOutputs, stateful: nil, tables: tables, announcing: announcing,
            configuration: configuration, registry: registry, logger: logger, routes: routes, onListening: onListening
        )
    }

    /// Runs a stateful stage with a ready configuration; tests and benchmarks call this directly.
    public static func run<S: StatefulStage>(
        statefulStage stage: S, tables: [any WorkerTable] = [], configuration: WorkerConfiguration, registry: PrometheusCollectorRegistry,
        logger: Logger, routes: @escaping Routes = { _ in }, companions: [any Service] = [], onListening: @escaping @Sendable (Int) -> Void = { _ in }
    ) async throws {
        let changelog = configuration.stateChangelog
        guard configuration.outputs.contains(changelog) else {
            throw WorkerConfigurationError(
                key: "worker.outputs", problem: "does not list the state changelog \(changelog); a stateful worker writes it (add it to the worker's outputs, or set worker.state-changelog)"
            )
        }
        let cluster = configuration.kafka
        try await runStage(
            nil,
            alreadyCompressedOutputs: stage.alreadyCompressedOutputs,
            stateful: { handler, progress in
                let engine = KeyedStateEngine(
                    stage: stage, handler: handler, changelogTopic: changelog,
                    timerDeadLetters: configuration.inputs[0] + configuration.deadLetterSuffix, limits: configuration.stateLimits,
                    // Waiting out an outage on purpose is not a stuck loop.
                    outage: (configuration.outageTimeout, { progress.touch() }), logger: logger
                )
                return StatefulRuntime(
                    engine: engine,
                    inputs: configuration.inputs, tickInterval: .milliseconds(100), flushEvery: max(1, configuration.maxInFlightRecords / 20),
                    checkpointInterval: configuration.stateCheckpointInterval,
                    readChangelog: { partitions in
                        try await readChangelog(changelog, partitions: partitions, engine: engine, cluster: cluster, logger: logger)
                    }
                )
            },
            tables: tables, companions: companions, configuration: configuration, registry: registry, logger: logger, routes: routes, onListening: onListening
        )
    }

    /// Restores a fresh state of `stage` from `partitions` of `changelog` the way a replica does
    /// on assignment, and returns how many keys it holds: `vigil bench runtime` times it.
    public static func restoreState<S: StatefulStage>(
        of stage: S, changelog: String, partitions: Set<Int32>, cluster: KafkaConfiguration, logger: Logger
    ) async throws -> Int {
        let handler = RecordHandler(worker: cluster.clientID, stage: nil, maxAge: nil, deadLetterSuffix: ".dlq", declaredOutputs: nil)
        let engine = KeyedStateEngine(stage: stage, handler: handler, changelogTopic: changelog, timerDeadLetters: "", limits: StateLimits(maxKeys: .max), logger: logger)
        let read = try await readChangelog(changelog, partitions: partitions, engine: engine, cluster: cluster, logger: logger)
        for (partition, records) in read.snapshots {
            engine.restore(partition: partition, generations: [1], snapshots: records)
        }
        return engine.heldKeys
    }

    /// Each key's newest readable snapshot in `partitions` of a state changelog, read as a
    /// stream (the log holds many snapshots per key), within the reader's deadline.
    private static func readChangelog(
        _ changelog: String, partitions: Set<Int32>, engine: any StateEngine, cluster: KafkaConfiguration, logger: Logger
    ) async throws -> ChangelogRead {
        let accumulator = ChangelogAccumulator(problem: engine.snapshotProblem) { partition, key, offset, error in
            engine.rejected(partition: partition, key: key, offset: offset, error: error)
        }
        try await KafkaTableReader.forEachRecord(cluster: cluster, topic: changelog, partitions: partitions, logger: logger) { record in
            accumulator.add(partition: record.partition, key: record.key, value: record.value, offset: record.offset, timestampMilliseconds: record.timestampMilliseconds)
        }
        return accumulator.result
    }

    private static func runStage(
        _ stage: (any Stage)?, alreadyCompressedOutputs: Set<String>, stateful makeStateful: ((RecordHandler, LoopProgress) -> StatefulRuntime)?, tables: [any WorkerTable],
        announcing: [StageOutput] = [], companions: [any Service] = [], configuration: WorkerConfiguration, registry: PrometheusCollectorRegistry, logger: Logger, routes: @escaping Routes,
        onListening: @escaping @Sendable (Int) -> Void
    ) async throws {
        guard !configuration.inputs.isEmpty else {
            throw WorkerConfigurationError(key: "worker.inputs", problem: "is empty: a stage worker consumes at least one topic (a worker that owns a table's keys runs a Source)")
        }
        if let undeclared = tables.first(where: { !configuration.tables.contains($0.topic) }) {
            throw UndeclaredTable(topic: undeclared.topic, declared: configuration.tables)
        }
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
        let producer = try await makeProducer(configuration, alreadyCompressed: alreadyCompressedOutputs, closingOnFailure: consumer, logger: logger)
        // Not started yet: the runner starts it, so a missing table topic stops the worker with its reason.
        let announcements = Announcements(producer: producer, logger: logger)
        announcements.send(announcing)
        let tableReader: KafkaTableReader?
        do {
            tableReader = try makeTableReader(tables, configuration: configuration, announce: announcements.announce, logger: logger)
        } catch {
            await producer.close()
            await consumer.close()
            throw error
        }
        let declaredOutputs = Set(configuration.outputs + configuration.inputs.map { $0 + configuration.deadLetterSuffix })
        let progress = LoopProgress()
        let handler = RecordHandler(
            worker: configuration.name, stage: stage, maxAge: configuration.maxAge, deadLetterSuffix: configuration.deadLetterSuffix,
            declaredOutputs: declaredOutputs,
            // librdkafka's own size check counts header framing a little differently: keep a margin.
            maxRecordBytes: producer.maxMessageBytes - 512
        )
        let runner = StageRunner(
            consumer: consumer, producer: producer, announcements: announcements,
            shutdown: ShutdownBudget(timeout: configuration.shutdownTimeout), handler: handler,
            tables: tableReader, stateful: makeStateful?(handler, progress), maxInFlightRecords: configuration.maxInFlightRecords, outageLimit: configuration.outageTimeout,
            metrics: metrics, progress: progress, logger: logger
        )
        logger.info("worker starting", metadata: [
            "group": "\(configuration.groupID)", "inputs": "\(configuration.inputs)", "tables": "\(configuration.tables)",
            "outputs": "\(configuration.outputs)", "bootstrap": "\(configuration.kafka.bootstrapServers)", "memory_budget_bytes": "\(budget.bytes)",
        ])
        do {
            try await serve(
                runner, companions: companions, consumer: consumer, readiness: Readiness(tables: tableReader), progress: progress, metrics: metrics,
                configuration: configuration, registry: registry, logger: logger, routes: routes, onListening: onListening
            )
        } catch {
            await tableReader?.close()
            throw error
        }
        await tableReader?.close()
    }

    /// Runs a source with a ready configuration; tests call this directly.
    public static func run<S: Source>(
        source: S, owning makeTable: @escaping @Sendable () -> Table<S.Value>, configuration: WorkerConfiguration,
        registry: PrometheusCollectorRegistry, logger: Logger, routes: @escaping Routes = { _ in },
        onListening: @escaping @Sendable (Int) -> Void = { _ in }
    ) async throws {
        guard let owned = configuration.owns else {
            throw WorkerConfigurationError(key: "worker.owns", problem: "is required for a source worker: the table whose keys (cameras) the replicas split")
        }
        let tableTopic = makeTable().topic
        guard tableTopic == owned else {
            throw WorkerConfigurationError(key: "worker.owns", problem: "is \(owned) but the source's table reads \(tableTopic); declare owns: \(tableTopic)")
        }
        let metrics = WorkerMetrics(worker: configuration.name)
        let budget = configuration.memoryBudget
        let ownership = SourceOwnership()
        let events = AsyncStream<SourceRunner<S>.Event>.makeStream()
        // The group splits the owned table's partitions; offsets are never stored, so each
        // assignment reads its partitions from the beginning.
        let consumer = try KafkaConsumer(
            configuration: KafkaConsumerConfiguration(
                cluster: configuration.kafka, groupID: configuration.groupID, topics: [owned],
                bufferedBytes: budget.consumerBufferBytes, prefetchBytes: budget.consumerPrefetchBytes, offsetGapsAreLoss: false
            ),
            logger: logger,
            eventHandler: SourceRunner<S>.forward(events.1, ownership: ownership)
        )
        let producer = try await makeProducer(configuration, alreadyCompressed: source.alreadyCompressedOutputs, closingOnFailure: consumer, logger: logger)
        let runner = SourceRunner(
            source: source, consumer: consumer, producer: producer, announcements: Announcements(producer: producer, logger: logger),
            shutdown: ShutdownBudget(timeout: configuration.shutdownTimeout), events: events, makeTable: makeTable, ownership: ownership,
            metrics: metrics, worker: configuration.name, declaredOutputs: Set(configuration.outputs),
            maxRecordBytes: producer.maxMessageBytes - 512, logger: logger
        )
        logger.info("source worker starting", metadata: [
            "group": "\(configuration.groupID)", "owns": "\(owned)", "outputs": "\(configuration.outputs)",
            "bootstrap": "\(configuration.kafka.bootstrapServers)", "memory_budget_bytes": "\(budget.bytes)",
        ])
        try await serve(
            runner, consumer: consumer, readiness: Readiness(ownership: ownership), progress: LoopProgress(), metrics: metrics, storesOffsets: false,
            configuration: configuration, registry: registry, logger: logger, routes: routes, onListening: onListening
        )
    }

    /// Serves HTTP and watches the cluster while `runner` runs; stops on SIGTERM/SIGINT.
    private static func serve(
        _ runner: some Service, companions: [any Service] = [], consumer: KafkaConsumer, readiness: Readiness, progress: LoopProgress, metrics: WorkerMetrics, storesOffsets: Bool = true,
        configuration: WorkerConfiguration, registry: PrometheusCollectorRegistry, logger: Logger, routes: Routes,
        onListening: @escaping @Sendable (Int) -> Void
    ) async throws {
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
        // Graceful shutdown runs in reverse: the runner stops, stores its offsets and closes its
        // clients (it owns them: producer flushed, then the consumer commits and leaves), then
        // the HTTP server and the cluster watch end.
        var groupConfiguration = ServiceGroupConfiguration(
            services: [
                .init(service: http),
                .init(service: ClusterWatch(consumer: consumer, readiness: readiness, metrics: metrics, interval: .seconds(5), storesOffsets: storesOffsets)),
            ] + companions.map { .init(service: $0, successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .gracefullyShutdownGroup) } + [
                // On failure too the HTTP server and the watch end gracefully: only the runner's error is logged.
                .init(service: runner, successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .gracefullyShutdownGroup),
            ],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        )
        // A stage or source that does not finish within the shutdown timeout is cancelled: a
        // record still in a stage stays unstored and is processed again by the partition's next owner.
        groupConfiguration.maximumGracefulShutdownDuration = configuration.shutdownTimeout
        let group = ServiceGroup(configuration: groupConfiguration)
        // A caller that cancels the worker (a benchmark, a test, a supervisor) gets the same
        // graceful stop as SIGTERM: the group runs apart from the caller's cancellation, which
        // only triggers its graceful shutdown. Cancelled outright, the HTTP server and the
        // runner would log errors for a normal stop and leave offsets uncommitted.
        let running = Task { try await group.run() }
        try await withTaskCancellationHandler {
            try await running.value
        } onCancel: {
            Task { await group.triggerGracefulShutdown() }
        }
        logger.info("worker stopped")
    }

    /// The worker's producer; when it cannot be made, `consumer` (made first) is closed before the error goes on.
    private static func makeProducer(
        _ configuration: WorkerConfiguration, alreadyCompressed: Set<String>, closingOnFailure consumer: KafkaConsumer, logger: Logger
    ) async throws -> KafkaProducer {
        do {
            return try KafkaProducer(
                configuration: KafkaProducerConfiguration(
                    cluster: configuration.kafka, deliveryTimeout: configuration.deliveryTimeout,
                    maxInFlightBytes: configuration.memoryBudget.producerInFlightBytes,
                    uncompressedTopics: alreadyCompressed.intersection(configuration.outputs)
                ),
                logger: logger
            )
        } catch {
            await consumer.close()
            throw error
        }
    }

    /// A reader for `tables`, not started yet (the runner starts it), or nil when there are none.
    private static func makeTableReader(
        _ tables: [any WorkerTable], configuration: WorkerConfiguration, announce: @escaping @Sendable ([StageOutput]) -> Void, logger: Logger
    ) throws -> KafkaTableReader? {
        guard !tables.isEmpty else { return nil }
        for table in tables { table.limit(versionsPerKey: configuration.tableVersions) }
        let applier = TableApplier(tables: tables, worker: configuration.name, logger: logger, announce: announce)
        return try KafkaTableReader(
            configuration: KafkaTableReaderConfiguration(cluster: configuration.kafka, topics: tables.map(\.topic)), logger: logger
        ) { message in
            applier.apply(TableRecord(message))
        }
    }

    /// A worker executable's life: the configuration (exit 64, EX_USAGE, when it is wrong:
    /// nothing was started), logging and metrics bootstrapped, then `body` until it ends. An
    /// error gets a clear last word instead of a crash report, and exit 1: the orchestrator
    /// restarts the worker, which resumes from its last commit.
    private static func main(
        name: String, arguments: [String], _ body: (WorkerConfiguration, PrometheusCollectorRegistry, Logger) async throws -> Void
    ) async {
        let configuration: WorkerConfiguration
        do {
            configuration = try await WorkerConfiguration.load(defaultName: name, file: configFile(arguments))
        } catch {
            FileHandle.standardError.write(Data("\(name): \(error)\n".utf8))
            exit(64)
        }
        guard configuration.httpPort == 0 || LocalPort.isFree(configuration.httpPort, host: configuration.httpHost) else {
            let problem = "port \(configuration.httpPort) on \(configuration.httpHost) is in use by another process: set HTTP_PORT (http.port) to a free port, or 0 for any"
            FileHandle.standardError.write(Data("\(name): \(problem); nothing was started\n".utf8))
            exit(64)
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
        ParentWatch.start(logger: logger)
        do {
            try await body(configuration, registry, logger)
        } catch {
            logger.critical("worker stopped on an error", metadata: ["error": "\(error)"])
            exit(1)
        }
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
