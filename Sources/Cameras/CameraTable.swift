import Foundation
import SwiftProtobuf
import VigilSchema
import WorkerRuntime

/// The `cameras.v1` table: what ingest, decode and detect look camera configuration up in.
public enum CameraTable {
    public static let topic = "cameras.v1"

    /// A table of camera configurations; `maxVersionsPerKey` as `worker.table-versions`.
    public static func make(maxVersionsPerKey: Int = 16) -> Table<Vigil_V1_CameraConfig> {
        Table(topic: topic, maxVersionsPerKey: maxVersionsPerKey) { key, bytes in
            let config = try Vigil_V1_CameraConfig(serializedBytes: bytes)
            guard config.cameraID == key else {
                throw CameraRecordMismatch(key: key, cameraID: config.cameraID)
            }
            return config
        }
    }

    /// The record that publishes `config` (nil: a tombstone for `cameraID`), in force from `effectiveMilliseconds`.
    public static func record(cameraID: String, config: Vigil_V1_CameraConfig?, effectiveMilliseconds: Int64) throws -> (key: [UInt8], value: [UInt8], headers: [RecordHeader]) {
        TableRecords.record(key: cameraID, value: try config.map { try $0.serializedBytes() }, effectiveMilliseconds: effectiveMilliseconds)
    }
}

/// A `cameras.v1` record whose value names another camera than its key.
struct CameraRecordMismatch: Error, CustomStringConvertible {
    var key: String
    var cameraID: String

    var description: String { "the record's key is \(key) but its configuration is for camera \"\(cameraID)\"" }
}

/// A record names a camera that `cameras.v1` does not hold at the record's capture time.
public struct UnknownCamera: Error, CustomStringConvertible {
    public var cameraID: String
    public var description: String {
        "camera \"\(cameraID)\" is not in \(CameraTable.topic) at the record's capture time; add it with `vigil cameras apply`"
    }
}

extension Table where Value == Vigil_V1_CameraConfig {
    /// The camera's configuration in force at `milliseconds` (a capture time). When older
    /// versions were dropped to bound memory, the current one is the best known answer (no
    /// version can turn redaction or masks off without the privacy check).
    public func camera(_ cameraID: String, atMilliseconds milliseconds: Int64) throws(UnknownCamera) -> Vigil_V1_CameraConfig {
        switch value(cameraID, asOf: milliseconds) {
        case .value(let config):
            return config
        case .beforeRetainedHistory:
            if let current = current(cameraID) { return current }
        case .absent:
            break
        }
        throw UnknownCamera(cameraID: cameraID)
    }
}
