import Crypto
import Foundation
import SwiftProtobuf
import VigilSchema
import WorkerRuntime

/// The `cameras.v1` table: what ingest, decode and detect look camera configuration up in.
public enum CameraTable {
    public static let topic = "cameras.v1"

    /// A table of camera configurations; `maxVersionsPerKey` as `worker.table-versions`. A
    /// record that fails the two-person rule (`CameraAdmission`) with `admins` is refused: the
    /// camera keeps its previous configuration, and the worker announces the refusal.
    public static func make(admins: CameraAdmins, maxVersionsPerKey: Int = 16) -> Table<Vigil_V1_CameraConfig> {
        let deletions = Table<Vigil_V1_CameraConfig>.SignedDeletions(isDeletion: \.deleted) { key, record in
            refusal(
                key: key, version: 0,
                reason: CameraRefusalReason(
                    "is an unsigned deletion (an empty value): a camera is removed only by an admin's signed deletion (`vigil cameras apply --delete-missing`)"
                ),
                record: record
            )
        }
        return Table(
            topic: topic, maxVersionsPerKey: maxVersionsPerKey,
            decode: { key, bytes in
                let config = try Vigil_V1_CameraConfig(serializedBytes: bytes)
                guard config.cameraID == key else {
                    throw CameraRecordMismatch(key: key, cameraID: config.cameraID)
                }
                return config
            },
            admit: { key, config, last, record, readWholePartition in
                let reason = CameraAdmission.refusal(of: config, last: last, readWholePartition: readWholePartition, admins: admins)
                    ?? effectiveTimeMismatch(config, record)
                guard let reason else { return nil }
                return refusal(key: key, version: config.version, reason: reason, record: record)
            },
            signedDeletions: deletions
        )
    }

    private static func refusal(key: String, version: UInt64, reason: CameraRefusalReason, record: TableRecord) -> TableRefusal {
        let place = "\(record.topic)[\(record.partition)] offset \(record.offset)"
        let what = version > 0 ? "camera \(key) version \(version)" : "camera \(key)"
        return TableRefusal(reason: "\(what) (\(place)) \(reason)") { worker in
            refusalNotices(cameraID: key, version: version, reason: reason.description, place: place, worker: worker)
        }
    }

    /// The time the table takes the record to be in force from must be what the admins signed.
    private static func effectiveTimeMismatch(_ config: Vigil_V1_CameraConfig, _ record: TableRecord) -> CameraRefusalReason? {
        let signed = config.effectiveTime.milliseconds
        let effective = TableRecords.effectiveMilliseconds(of: record)
        guard effective != signed else { return nil }
        return CameraRefusalReason(
            "takes effect at \(effective.map(String.init) ?? "no time") by its \(TableHeaders.effectiveTime) header (or Kafka timestamp), but its admins signed \(signed): the record was altered or re-sent for another time"
        )
    }

    /// A refused record's announcements: a `camera.health.v1` record (operators on shift see
    /// it with the camera) and an audit event. Ids name the worker and the record, so every
    /// replica of a worker announces the same event.
    static func refusalNotices(cameraID: String, version: UInt64, reason: String, place: String, worker: String) -> [StageOutput] {
        let now = Date()
        var refusal = Vigil_V1_CameraConfigRefusal()
        refusal.refusedVersion = version
        refusal.reason = reason
        refusal.worker = worker
        refusal.record = place
        var health = Vigil_V1_CameraHealth()
        health.cameraID = cameraID
        health.reason = "\(worker) refused configuration version \(version); the camera keeps its previous configuration"
        health.observedTime = Google_Protobuf_Timestamp(date: now)
        health.configRefusal = refusal
        let event = AuditEvents.event(
            id: "camera-refused:\(worker):\(place)", kind: .privacyChangeRejected, actor: worker, subject: "camera:\(cameraID)", cameraID: cameraID,
            detail: "refused configuration version \(version) (\(place)): it \(reason)", origin: worker, at: now
        )
        return [
            StageOutput(topic: "camera.health.v1", key: Array(cameraID.utf8), value: (try? health.serializedBytes()) ?? [], headers: []),
            AuditEvents.record(event, key: cameraID),
        ]
    }

    /// The record that publishes `config` as signed, in force from its signed effective time.
    public static func record(_ config: Vigil_V1_CameraConfig) throws -> (key: [UInt8], value: [UInt8], headers: [RecordHeader]) {
        TableRecords.record(key: config.cameraID, value: try config.serializedBytes(), effectiveMilliseconds: config.effectiveTime.milliseconds)
    }

    /// The record that publishes `config` signed by `signers` (accounts and their private keys),
    /// in force from `effectiveMilliseconds` and replacing `last` (nil: a new camera): for
    /// benchmarks and tests that fill a table in memory.
    public static func record(
        config: Vigil_V1_CameraConfig, replacing last: Vigil_V1_CameraConfig?, signedBy signers: [(account: String, key: Curve25519.Signing.PrivateKey)],
        effectiveMilliseconds: Int64
    ) throws -> TableRecord {
        var signed = config
        signed.stamp(replacing: last, effectiveMilliseconds: effectiveMilliseconds)
        for signer in signers { try CameraSignatures.sign(&signed, account: signer.account, key: signer.key) }
        let record = try self.record(signed)
        return TableRecord(topic: topic, partition: 0, offset: 0, key: record.key, value: record.value, headers: record.headers, timestampMilliseconds: nil)
    }
}

extension Vigil_V1_CameraConfig {
    /// Makes this version ready to sign: what it replaces (`last`, the camera's last
    /// configuration, deleted ones included; nil for a camera never configured) and when it
    /// takes effect. Signatures made before are dropped: they covered other bytes.
    public mutating func stamp(replacing last: Vigil_V1_CameraConfig?, effectiveMilliseconds: Int64) {
        if let last {
            replaces = last.privacy
            replacesDigest = CameraSignatures.digest(last)
        } else {
            clearReplaces()
            replacesDigest = Data()
        }
        effectiveTime = Google_Protobuf_Timestamp(milliseconds: effectiveMilliseconds)
        signatures = []
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

    /// Whether a dead letter of the camera's record captured at `milliseconds` keeps its
    /// unredacted pixels: only when the configuration of the capture time and the current one
    /// both switch it on (two admins signed that), so neither a late record nor a switch
    /// turned off since keeps them.
    public func keepsPixelsInDeadLetters(_ cameraID: String, capturedAtMilliseconds milliseconds: Int64) -> Bool {
        guard current(cameraID)?.keepPixelsInDeadLetters == true else { return false }
        return (try? camera(cameraID, atMilliseconds: milliseconds))?.keepPixelsInDeadLetters == true
    }
}

extension CameraAdmins {
    /// The setting every worker reading `cameras.v1` needs, for its `--help`.
    public static let workerSetting = WorkerSetting(
        environmentKey, default: "required", "a file naming the admins (one per line: account, Ed25519 public key) whose signatures on cameras.v1 this worker trusts"
    )

    /// The admins a worker executable trusts (`CAMERA_ADMIN_KEYS_FILE`). Without them nothing
    /// could be trusted: the worker exits 64 (EX_USAGE) saying what to set, before it starts anything.
    public static func forWorker(_ name: String, environment: [String: String] = ProcessInfo.processInfo.environment) -> CameraAdmins {
        do {
            return try fromEnvironment(environment)
        } catch {
            FileHandle.standardError.write(Data("\(name): \(error)\n".utf8))
            exit(64)
        }
    }
}

extension CameraTable {
    /// A worker executable's camera table, trusting the admins `CAMERA_ADMIN_KEYS_FILE` names.
    public static func forWorker(_ name: String) -> Table<Vigil_V1_CameraConfig> {
        make(admins: CameraAdmins.forWorker(name))
    }
}
