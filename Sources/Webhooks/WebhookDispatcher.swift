import AsyncHTTPClient
import Foundation
import Kafka
import Logging
import ServiceLifecycle
import VigilSchema
import WorkerRuntime

/// How webhook delivery retries and waits, from vigil-alert's settings.
public struct WebhookSettings: Sendable, Equatable {
    public var schedule: RetrySchedule
    /// One attempt's limit, connecting included.
    public var timeout: Duration

    public init(schedule: RetrySchedule = RetrySchedule(attempts: 8, base: .seconds(1), cap: .seconds(300)), timeout: Duration = .seconds(10)) {
        self.schedule = schedule
        self.timeout = timeout
    }
}

/// Runs one `EndpointDelivery` per enabled endpoint of the `webhooks.v1` table, in the
/// worker's process: started when an endpoint appears or is enabled, stopped when it is
/// removed or disabled. Every replica runs one per endpoint, and the endpoint's consumer group
/// splits `alerts.v1`'s partitions among them.
public final class WebhookDispatcher: Service, @unchecked Sendable {
    private let endpoints: Table<Vigil_V1_WebhookEndpoint>
    private let cluster: KafkaConfiguration
    private let workerGroup: String
    private let settings: WebhookSettings
    private let logger: Logger
    private let lock = NSLock()
    // Guarded by `lock`: the running deliveries by endpoint name, and the shared clients once started.
    private var running: [String: Task<Void, Never>] = [:]
    private var clients: (producer: KafkaProducer, sender: WebhookSender)?
    private var stopping = false

    /// - Parameter workerGroup: the worker's consumer group; each endpoint's is derived from it.
    public init(endpoints: Table<Vigil_V1_WebhookEndpoint>, cluster: KafkaConfiguration, workerGroup: String, settings: WebhookSettings, logger: Logger) {
        self.endpoints = endpoints
        self.cluster = cluster
        self.workerGroup = workerGroup
        self.settings = settings
        self.logger = logger
        endpoints.onChange { [weak self] _ in self?.reconcile() }
    }

    public func run() async throws {
        let producer = try KafkaProducer(configuration: KafkaProducerConfiguration(cluster: cluster), logger: logger)
        let client = WebhookSender.makeClient(timeout: settings.timeout)
        lock.withLock { clients = (producer, WebhookSender(client: client, timeout: settings.timeout)) }
        reconcile()
        // Delivery runs in the tasks; this waits for the worker's stop, then ends them.
        try? await gracefulShutdown()
        let tasks = lock.withLock {
            stopping = true
            defer { running = [:] }
            return Array(running.values)
        }
        for task in tasks { task.cancel() }
        for task in tasks { await task.value }
        await producer.close()
        try? await client.shutdown()
    }

    /// Starts a delivery for each enabled endpoint without one, and stops those whose endpoint
    /// is gone or disabled. Called on the table reader's thread: it only starts and cancels tasks.
    private func reconcile() {
        lock.withLock {
            guard let clients, !stopping else { return }
            let enabled = Set(endpoints.keys.filter { endpoints.current($0)?.disabledReason.isEmpty == true })
            for (name, task) in running where !enabled.contains(name) {
                logger.info("webhook endpoint removed or disabled; its delivery stops", metadata: ["endpoint": "\(name)"])
                task.cancel()
                running[name] = nil
            }
            for name in enabled.subtracting(running.keys) {
                running[name] = start(name, producer: clients.producer, sender: clients.sender)
            }
        }
    }

    private func start(_ name: String, producer: KafkaProducer, sender: WebhookSender) -> Task<Void, Never> {
        let group = WebhookEndpoints.consumerGroup(of: name, worker: workerGroup)
        let (cluster, settings, logger, endpoints) = (cluster, settings, logger, endpoints)
        return Task {
            // A delivery whose reading failed starts again, from its group's last commit.
            while !Task.isCancelled {
                let consumer: KafkaConsumer
                do {
                    consumer = try KafkaConsumer(
                        configuration: KafkaConsumerConfiguration(cluster: cluster, groupID: group, topics: ["alerts.v1"], bufferedMessages: 100),
                        logger: logger
                    )
                } catch {
                    logger.error("cannot start delivery to the webhook endpoint; trying again in 5 s", metadata: ["endpoint": "\(name)", "error": "\(error)"])
                    try? await Task.sleep(for: .seconds(5))
                    continue
                }
                logger.info("webhook delivery started", metadata: ["endpoint": "\(name)", "group": "\(group)"])
                let delivery = EndpointDelivery(
                    name: name, consumer: consumer, producer: producer, sender: sender, schedule: settings.schedule,
                    endpoint: { endpoints.current(name) }, logger: logger
                )
                let ending = await delivery.run()
                // Commits what was stored: every revision accepted or dead-lettered, nothing else.
                await consumer.close()
                guard ending == .failed else { return }
                try? await Task.sleep(for: .seconds(5))
            }
        }
    }
}
