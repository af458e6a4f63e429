import SwiftProtobuf

/// A record whose value is not the message its topic carries, or whose key (the camera id on
/// every vigil topic) disagrees with the camera its message names. Dead-lettered with this reason.
public struct MismatchedRecord: Error, CustomStringConvertible {
    public var reason: String
    public var description: String { reason }

    public init(reason: String) {
        self.reason = reason
    }
}

extension StageInput {
    /// The value decoded as `type`, its camera (`cameraID`) checked against the record's key.
    public func cameraMessage<M: SwiftProtobuf.Message>(_ type: M.Type, cameraID: (M) -> String) throws(MismatchedRecord) -> M {
        let message: M
        do {
            message = try M(serializedBytes: value)
        } catch {
            throw MismatchedRecord(reason: "not a \(M.protoMessageName): \(error)")
        }
        if let key, String(decoding: key, as: UTF8.self) != cameraID(message) {
            throw MismatchedRecord(reason: "the record's key is \(String(decoding: key, as: UTF8.self)) but the \(M.protoMessageName) is from camera \"\(cameraID(message))\"")
        }
        return message
    }
}
