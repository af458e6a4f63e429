import CRdKafka
import Foundation

/// A consumer group as its coordinator describes it.
public struct KafkaConsumerGroup: Sendable, Hashable {
    public struct Member: Sendable, Hashable {
        public var memberID: String
        public var clientID: String
        public var host: String
        public var assignment: [KafkaTopicPartition]
    }

    public var name: String
    /// `Stable`, `PreparingRebalance`, `CompletingRebalance`, `Empty`, `Dead`.
    public var state: String
    public var protocolType: String
    public var members: [Member]
    /// Set when the coordinator could not describe the group.
    public var error: String?

    public init(name: String, state: String, protocolType: String, members: [Member], error: String? = nil) {
        self.name = name
        self.state = state
        self.protocolType = protocolType
        self.members = members
        self.error = error
    }
}

extension KafkaAdmin {
    /// Describes `group`, or every group the cluster knows when nil.
    public func consumerGroups(_ group: String? = nil) async throws -> [KafkaConsumerGroup] {
        let timeout = Int32(configuration.requestTimeout.milliseconds)
        let context = group.map { "describing group \($0)" } ?? "listing groups"
        return try await onBlockingThread { [client = self.client] () throws(KafkaError) -> [KafkaConsumerGroup] in
            var list: UnsafePointer<rd_kafka_group_list>?
            let code = try client.withHandle(context) { handle in rd_kafka_list_groups(handle, group, &list, timeout) }
            guard code == RD_KAFKA_RESP_ERR_NO_ERROR, let list else {
                throw .rdKafka(code, kind: .adminFailed, context: context)
            }
            defer { rd_kafka_group_list_destroy(list) }
            let groups = (0..<Int(list.pointee.group_cnt)).map { Self.convert(list.pointee.groups[$0]) }
            return groups.sorted { $0.name < $1.name }
        }
    }

    private static func convert(_ info: rd_kafka_group_info) -> KafkaConsumerGroup {
        let protocolType = info.protocol_type.map { String(cString: $0) } ?? ""
        let members = (0..<Int(info.member_cnt)).map { index -> KafkaConsumerGroup.Member in
            let member = info.members[index]
            let assignment = protocolType == "consumer" && member.member_assignment != nil
                ? ConsumerAssignmentDecoder.partitions(UnsafeRawBufferPointer(start: member.member_assignment, count: Int(member.member_assignment_size)))
                : []
            return KafkaConsumerGroup.Member(
                memberID: String(cString: member.member_id),
                clientID: String(cString: member.client_id),
                host: String(cString: member.client_host),
                assignment: assignment.sorted()
            )
        }
        return KafkaConsumerGroup(
            name: String(cString: info.group),
            state: info.state.map { String(cString: $0) } ?? "",
            protocolType: protocolType,
            members: members.sorted { $0.clientID == $1.clientID ? $0.memberID < $1.memberID : $0.clientID < $1.clientID },
            error: info.err == RD_KAFKA_RESP_ERR_NO_ERROR ? nil : String(cString: rd_kafka_err2str(info.err))
        )
    }
}

/// Reads the "consumer" protocol's member assignment: version (int16), then per topic a
/// string (int16 length) and an array of int32 partitions (int32 count), all big-endian.
/// Malformed bytes yield what was read before the damage.
enum ConsumerAssignmentDecoder {
    static func partitions(_ bytes: UnsafeRawBufferPointer) -> [KafkaTopicPartition] {
        var reader = Reader(bytes: Array(bytes))
        guard reader.int16() != nil, let topicCount = reader.int32(), topicCount >= 0 else { return [] }
        var result: [KafkaTopicPartition] = []
        for _ in 0..<topicCount {
            guard let topic = reader.string(), let count = reader.int32(), count >= 0 else { return result }
            for _ in 0..<count {
                guard let partition = reader.int32() else { return result }
                result.append(KafkaTopicPartition(topic: topic, partition: partition))
            }
        }
        return result
    }

    struct Reader {
        let bytes: [UInt8]
        var position = 0

        mutating func take(_ count: Int) -> ArraySlice<UInt8>? {
            guard count >= 0, position + count <= bytes.count else { return nil }
            defer { position += count }
            return bytes[position..<(position + count)]
        }

        mutating func int16() -> Int16? {
            take(2).map { Int16(bitPattern: $0.reduce(0) { $0 << 8 | UInt16($1) }) }
        }

        mutating func int32() -> Int32? {
            take(4).map { Int32(bitPattern: $0.reduce(0) { $0 << 8 | UInt32($1) }) }
        }

        mutating func string() -> String? {
            guard let length = int16(), let text = take(Int(length)) else { return nil }
            return String(decoding: text, as: UTF8.self)
        }
    }
}
