import Cameras
import Foundation
import Hummingbird
import SwiftProtobuf
import Synchronization
import VigilSchema
import WorkerRuntime

/// Forwards every record unchanged to `<input topic>.out`: the runtime's own test and
/// overhead benchmark. A record whose `content-type` header names a vigil message is decoded
/// first, so an undecodable one is refused and lands in the dead-letter queue.
///
/// `PASSTHROUGH_DELAY_MS` makes the stage spend that long on each record: the runtime's tests
/// use it for a slow stage (memory budgets, liveness, shutdown while records are in flight).
///
/// `PASSTHROUGH_CAMERAS=1` makes it read the `cameras.v1` table and serve `GET /cameras`
/// (one line per camera: id and version): the runtime's table tests read it.
///
/// `PASSTHROUGH_SOURCE=1` runs it as a source worker instead (`SyntheticCameraSource`): it owns
/// its share of `cameras.v1` and emits a heartbeat per owned camera.
struct PassThroughStage: Stage {
    var delay: Duration = .zero

    /// The messages this stage can check, by `content-type` (the protobuf message name).
    static let messageTypes: [String: any SwiftProtobuf.Message.Type] = Dictionary(
        uniqueKeysWithValues: ([
            Vigil_V1_CameraHealth.self, Vigil_V1_VideoChunk.self, Vigil_V1_Frame.self, Vigil_V1_FrameDetections.self,
            Vigil_V1_Incident.self, Vigil_V1_Alert.self,
        ] as [any SwiftProtobuf.Message.Type]).map { ($0.protoMessageName, $0) }
    )

    func process(_ input: StageInput) async throws -> [StageOutput] {
        if delay > .zero { try await Task.sleep(for: delay) }
        if let contentType = input.header("content-type").map({ String(decoding: $0, as: UTF8.self) }) {
            guard let type = Self.messageTypes[contentType] else { throw UndecodableRecord(reason: "unknown content-type \(contentType)") }
            do {
                _ = try type.init(serializedBytes: input.value)
            } catch {
                throw UndecodableRecord(reason: "not a valid \(contentType): \(error)")
            }
        }
        return [StageOutput(topic: input.topic + ".out", key: input.key, value: input.value, headers: input.headers)]
    }
}

struct UndecodableRecord: Error, CustomStringConvertible {
    let reason: String
    var description: String { "cannot decode the record: \(reason)" }
}

/// Stands in for ingest in the runtime's tests: for each owned camera, a record every
/// `interval` on `topic` (key: camera id, value: "<camera> <pid> <n>"), and `GET /owned`
/// lists the cameras this replica runs.
struct SyntheticCameraSource: Source {
    let topic: String
    let interval: Duration
    let owned = OwnedCameras()

    func run(key: String, value: Vigil_V1_CameraConfig, output: SourceOutput) async throws {
        owned.withLock { _ = $0.insert(key) }
        defer { owned.withLock { _ = $0.remove(key) } }
        var count = 0
        while true {
            try await output.send(StageOutput(topic: topic, key: Array(key.utf8), value: Array("\(key) \(getpid()) \(count)".utf8)))
            count += 1
            try await Task.sleep(for: interval)
        }
    }
}

final class OwnedCameras: Sendable {
    private let cameras = Mutex<Set<String>>([])

    func withLock<R>(_ body: (inout Set<String>) -> R) -> R { cameras.withLock { body(&$0) } }
}

WorkerCommandLine.answerHelpOrVersion(worker: "vigil-passthrough", summary: "the runtime's test and benchmark worker: forwards each record of its inputs, or runs a synthetic camera source", settings: [
    WorkerSetting("PASSTHROUGH_DELAY_MS", default: "0", "time the stage takes per record"),
    WorkerSetting("PASSTHROUGH_CAMERAS", default: "off", "1: read the cameras.v1 table and serve GET /cameras (one line per camera: id and version)"),
    WorkerSetting("PASSTHROUGH_SOURCE", default: "off", "1: run as a source worker that owns its share of cameras.v1 and emits a heartbeat per owned camera"),
    WorkerSetting("PASSTHROUGH_SOURCE_TOPIC", default: "source.out", "the source's output topic"),
])
let environment = ProcessInfo.processInfo.environment
if environment["PASSTHROUGH_SOURCE"] == "1" {
    let source = SyntheticCameraSource(topic: environment["PASSTHROUGH_SOURCE_TOPIC"] ?? "source.out", interval: .milliseconds(100))
    let admins = CameraAdmins.forWorker("vigil-passthrough")
    try await Worker.run(source: source, name: "vigil-passthrough", owning: { CameraTable.make(admins: admins) }) { router in
        router.get("owned") { _, _ in source.owned.withLock { $0.sorted().map { $0 + "\n" }.joined() } }
    }
    exit(0)
}
let delayMilliseconds = environment["PASSTHROUGH_DELAY_MS"].flatMap { Int($0) } ?? 0
let cameras = environment["PASSTHROUGH_CAMERAS"] == "1" ? CameraTable.forWorker("vigil-passthrough") : nil
try await Worker.run(
    stage: PassThroughStage(delay: .milliseconds(delayMilliseconds)), name: "vigil-passthrough", tables: cameras.map { [$0] } ?? []
) { router in
    guard let cameras else { return }
    router.get("cameras") { _, _ in
        cameras.keys.map { "\($0) \(cameras.current($0)?.version ?? 0)\n" }.joined()
    }
}
