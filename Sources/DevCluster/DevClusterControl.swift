import Foundation
import Hummingbird
import Kafka
import Logging
import Synchronization

/// The dev cluster's control API: topic creation and fault injection over HTTP on loopback.
///
/// | request | body | effect |
/// |---|---|---|
/// | `GET /status` | | brokers, bootstrap servers, topics |
/// | `POST /topics` | `{"name","partitions","replicationFactor"}` | create a topic |
/// | `POST /brokers/{id}/down`, `/up` | | take a broker off the network / back |
/// | `POST /brokers/{id}/rtt` | `{"milliseconds"}` | add round-trip time |
/// | `POST /partitions/leader` | `{"topic","partition","broker"}` | move leadership |
/// | `POST /request-errors` | `{"apiKey","errors":[codes]}` | fail the next requests of one API |
/// | `POST /coordinator` | `{"keyType","key","broker"}` | move a group coordinator |
final class DevClusterControl: Sendable {
    private let cluster: KafkaMockCluster
    private let logger: Logger
    private let created = Mutex<[DevClusterTopic]>([])

    init(cluster: KafkaMockCluster, logger: Logger) {
        self.cluster = cluster
        self.logger = logger
    }

    var topics: [DevClusterTopic] { created.withLock { $0 } }

    func createTopic(_ topic: DevClusterTopic) throws(KafkaError) {
        try cluster.createTopic(topic.name, partitions: topic.partitions, replicationFactor: topic.replicationFactor)
        created.withLock { $0.append(topic) }
        logger.info("topic created", metadata: ["topic": "\(topic.name)", "partitions": "\(topic.partitions)"])
    }

    struct Status: ResponseCodable {
        var bootstrapServers: String
        var brokers: Int
        var topics: [DevClusterTopic]
    }

    struct RoundTripTime: Codable { var milliseconds: Int }
    struct Leader: Codable { var topic: String; var partition: Int32; var broker: Int32 }
    struct RequestErrors: Codable { var apiKey: Int16; var errors: [Int32] }
    struct Coordinator: Codable { var keyType: String; var key: String; var broker: Int32 }

    func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.get("status") { _, _ in
            Status(bootstrapServers: self.cluster.bootstrapServers, brokers: self.cluster.brokerCount, topics: self.topics)
        }
        router.post("topics") { request, context in
            let topic = try await request.decode(as: DevClusterTopic.self, context: context)
            return try self.fault("create topic \(topic.name)") { () throws(KafkaError) in try self.createTopic(topic) }
        }
        router.post("brokers/:id/down") { _, context in
            let broker = try context.parameters.require("id", as: Int32.self)
            return try self.fault("broker \(broker) down") { () throws(KafkaError) in try self.cluster.setBrokerDown(broker) }
        }
        router.post("brokers/:id/up") { _, context in
            let broker = try context.parameters.require("id", as: Int32.self)
            return try self.fault("broker \(broker) up") { () throws(KafkaError) in try self.cluster.setBrokerUp(broker) }
        }
        router.post("brokers/:id/rtt") { request, context in
            let broker = try context.parameters.require("id", as: Int32.self)
            let rtt = try await request.decode(as: RoundTripTime.self, context: context)
            return try self.fault("broker \(broker) rtt \(rtt.milliseconds) ms") { () throws(KafkaError) in
                try self.cluster.setBrokerRoundTripTime(broker, milliseconds: rtt.milliseconds)
            }
        }
        router.post("partitions/leader") { request, context in
            let leader = try await request.decode(as: Leader.self, context: context)
            return try self.fault("leader of \(leader.topic)[\(leader.partition)] -> broker \(leader.broker)") { () throws(KafkaError) in
                try self.cluster.setPartitionLeader(topic: leader.topic, partition: leader.partition, broker: leader.broker)
            }
        }
        router.post("request-errors") { request, context in
            let errors = try await request.decode(as: RequestErrors.self, context: context)
            return try self.fault("errors \(errors.errors) for API \(errors.apiKey)") { () throws(KafkaError) in
                self.cluster.pushRequestErrors(apiKey: errors.apiKey, errors: errors.errors)
            }
        }
        router.post("coordinator") { request, context in
            let coordinator = try await request.decode(as: Coordinator.self, context: context)
            return try self.fault("coordinator of \(coordinator.key) -> broker \(coordinator.broker)") { () throws(KafkaError) in
                try self.cluster.setCoordinator(keyType: coordinator.keyType, key: coordinator.key, broker: coordinator.broker)
            }
        }
        return router
    }

    /// Runs one control action: logs it, and turns a refusal into a 400 that says why.
    private func fault(_ action: String, _ body: () throws(KafkaError) -> Void) throws -> HTTPResponse.Status {
        do {
            try body()
        } catch {
            throw HTTPError(.badRequest, message: error.description)
        }
        logger.notice("dev cluster: \(action)")
        return .noContent
    }
}
