import Foundation
import Logging
import Metrics
import SwiftProtobuf
import Synchronization
import VigilSchema
import Video
import WorkerRuntime

/// How ingest reads cameras; the worker reads it from `INGEST_*` settings.
public struct IngestSettings: Sendable {
    /// Chunks stay under this many bytes of packets (declared on `video.packets.v1` in the
    /// Topology): under the producer's 1 MB record limit with room for headers and parameters.
    public var maxChunkBytes = 900_000
    /// Opening a stream, and every read, gives up after this long without data (a stall).
    public var readTimeout: Duration = .seconds(5)
    /// A health record at least this often while nothing changes.
    public var healthInterval: Duration = .seconds(10)
    /// Where camera credentials are mounted: one file per `credentials_ref`, holding
    /// `user:password` (a Kubernetes secret volume). nil: cameras with a reference cannot start.
    public var secretsDirectory: String?
    /// Reconnect backoff: doubling from the first delay up to the cap, with ±20 % jitter.
    public var firstRetryDelay: Duration = .milliseconds(500)
    public var maxRetryDelay: Duration = .seconds(30)

    public init() {}
}

/// Where a camera's stream is: `rtsp://…`, `file:///path` or a plain path; a file's query
/// `?loop=1` plays it in a loop. Files are paced at their native frame rate.
struct StreamLocation: Equatable {
    var url: String
    var isFile: Bool
    var loop: Bool

    /// `credentials` (`user:password`) go into an `rtsp://` URL's user info, percent-encoded.
    /// Split at the first colon only, empty parts kept: `:pw` is an empty user with password
    /// `pw`, and a password may hold colons.
    init(_ source: String, credentials: String? = nil) {
        var text = source
        if let credentials, source.hasPrefix("rtsp://") {
            let colon = credentials.firstIndex(of: ":")
            let name = colon.map { String(credentials[..<$0]) } ?? credentials
            let secret = colon.map { String(credentials[credentials.index(after: $0)...]) }
            let allowed = CharacterSet.urlUserAllowed.subtracting(CharacterSet(charactersIn: ":@/"))
            let user = name.addingPercentEncoding(withAllowedCharacters: allowed) ?? ""
            let password = secret.map { ":" + ($0.addingPercentEncoding(withAllowedCharacters: allowed) ?? "") } ?? ""
            text = "rtsp://" + user + password + "@" + source.dropFirst("rtsp://".count)
        }
        var loop = false
        if let query = text.firstIndex(of: "?"), !text.hasPrefix("rtsp://") {
            loop = text[text.index(after: query)...].split(separator: "&").contains("loop=1")
            text = String(text[..<query])
        }
        if text.hasPrefix("file://") { text = String(text.dropFirst("file://".count)) }
        url = text
        isFile = !source.hasPrefix("rtsp://")
        self.loop = loop
    }
}

/// vigil-ingest's source: for each owned camera, reads its stream without decoding, cuts it
/// into GOP chunks on `video.packets.v1`, and reports the camera's health on
/// `camera.health.v1` (online, stalled, offline — on every change and every
/// `healthInterval`). A failed stream is reconnected with capped exponential backoff and
/// jitter. The stream's URL never appears in a log, metric, error or record.
public struct IngestSource: Source {
    public typealias Value = Vigil_V1_CameraConfig
    public static let chunksTopic = "video.packets.v1"
    public static let healthTopic = "camera.health.v1"
    /// Chunks are H.264 or H.265.
    public var alreadyCompressedOutputs: Set<String> { [Self.chunksTopic] }

    let settings: IngestSettings
    let logger: Logger
    /// The cameras this replica streams now (served at `GET /cameras`).
    public let running = RunningCameras()

    public init(settings: IngestSettings = IngestSettings(), logger: Logger) {
        self.settings = settings
        self.logger = logger
    }

    public func run(key: String, value: Vigil_V1_CameraConfig, output: SourceOutput) async throws {
        running.insert(key)
        defer { running.remove(key) }
        var camera = CameraStream(cameraID: key, settings: settings, output: output, logger: logger)
        let credentials: String?
        do {
            credentials = try Self.credentials(value.credentialsRef, in: settings.secretsDirectory)
        } catch {
            // Nothing to retry until the secret appears: say so, and end this run (it starts
            // again when the camera's configuration changes or the worker restarts).
            try await camera.report(.offline, reason: error.description)
            logger.error("camera cannot start", metadata: ["camera": "\(key)", "error": "\(error.description)"])
            return
        }
        let location = StreamLocation(value.sourceURL, credentials: credentials)
        var delay = settings.firstRetryDelay
        while true {
            try Task.checkCancellation()
            let connected = ContinuousClock.now
            do {
                try await camera.stream(location)
                guard location.isFile else {
                    // A camera's stream has no end: it dropped, so reconnect.
                    throw VideoError(kind: .readFailed, message: "the camera closed the stream")
                }
                try await camera.report(.offline, reason: "the stream ended")
                logger.info("camera stream ended", metadata: ["camera": "\(key)"])
                return
            } catch let error as VideoError {
                let state: Vigil_V1_CameraState = error.kind == .timedOut ? .stalled : .offline
                try await camera.report(state, reason: error.message)
                // A stream that ran for a while starts its backoff afresh.
                if ContinuousClock.now - connected > .seconds(30) { delay = settings.firstRetryDelay }
                let jittered = delay * Double.random(in: 0.8...1.2)
                logger.warning("camera stream failed; reconnecting", metadata: [
                    "camera": "\(key)", "state": "\(state)", "error": "\(error.message)", "retry_in": "\(jittered)",
                ])
                try await Task.sleep(for: jittered)
                delay = min(delay * 2, settings.maxRetryDelay)
            }
        }
    }
}

/// The camera ids a replica is streaming.
public final class RunningCameras: Sendable {
    private let cameras = Mutex<Set<String>>([])

    func insert(_ camera: String) { cameras.withLock { _ = $0.insert(camera) } }
    func remove(_ camera: String) { cameras.withLock { _ = $0.remove(camera) } }

    public var sorted: [String] { cameras.withLock { $0.sorted() } }
}

extension IngestSource {
    /// A camera's credentials could not be read; the message names the reference, never a value.
    struct MissingCredentials: Error, CustomStringConvertible {
        var description: String
    }

    /// The `user:password` a camera's `credentials_ref` names, from `directory`; nil when the
    /// camera has no reference.
    static func credentials(_ reference: String, in directory: String?) throws(MissingCredentials) -> String? {
        guard !reference.isEmpty else { return nil }
        guard !reference.contains("/"), !reference.hasPrefix(".") else {
            throw MissingCredentials(description: "credentials reference \"\(reference)\" is not a plain secret name")
        }
        guard let directory else {
            throw MissingCredentials(description: "the camera needs secret \"\(reference)\" but INGEST_SECRETS_DIR is not set")
        }
        guard let data = FileManager.default.contents(atPath: directory + "/" + reference),
              let text = String(data: data, encoding: .utf8)?.trimmingCharacters(in: .whitespacesAndNewlines), text.contains(":") else {
            throw MissingCredentials(description: "secret \"\(reference)\" is missing from INGEST_SECRETS_DIR or is not user:password")
        }
        return text
    }
}

/// Notices a stream whose packets keep coming while their timestamps stand still (a frozen
/// encoder): stalled once the timestamp has not advanced for `limit`.
struct FreezeWatch {
    let limit: Duration
    private var lastTime: Int64?
    private var advancedAt = ContinuousClock.now

    init(limit: Duration) {
        self.limit = limit
    }

    /// Notes a packet's timestamp; true when the stream has been frozen for `limit`.
    mutating func isFrozen(afterPacketAt time: Int64?, now: ContinuousClock.Instant = .now) -> Bool {
        guard let time else { return false }
        if let lastTime, time <= lastTime {
            return now - advancedAt >= limit
        }
        lastTime = time
        advancedAt = now
        return false
    }
}

/// One camera's run: its chunk numbering (`epoch` new per run), health and rates.
struct CameraStream {
    let cameraID: String
    let settings: IngestSettings
    let output: SourceOutput
    let logger: Logger
    let epoch = UInt64.random(in: 1...UInt64.max)
    var sequence: UInt64 = 0
    var state: Vigil_V1_CameraState = .unspecified
    var lastHealth = ContinuousClock.now
    var lastFrameTime: Google_Protobuf_Timestamp?
    var meter = RateMeter()
    let framesPerSecond: Gauge
    let bitsPerSecond: Gauge

    init(cameraID: String, settings: IngestSettings, output: SourceOutput, logger: Logger) {
        self.cameraID = cameraID
        self.settings = settings
        self.output = output
        self.logger = logger
        framesPerSecond = Gauge(label: "vigil_ingest_frames_per_second", dimensions: [("camera", cameraID)])
        bitsPerSecond = Gauge(label: "vigil_ingest_bits_per_second", dimensions: [("camera", cameraID)])
    }

    /// Reads the stream until it ends (or throws `VideoError`), publishing its chunks.
    mutating func stream(_ location: StreamLocation) async throws {
        let reader = PacketReader()
        var chunker = GOPChunker(maxBytes: settings.maxChunkBytes)
        var opened: StreamCodec?
        var discontinuity = true
        var chunkStart: Date?
        var freeze = FreezeWatch(limit: settings.readTimeout)
        for try await event in reader.events(url: location.url, paced: location.isFile, loop: location.loop, timeout: settings.readTimeout) {
            switch event {
            case .opened(let stream):
                // A reopened stream (a loop, a reconnect) does not continue the last chunk.
                if let pending = chunker.finish(), let opened { try await publish(pending, stream: opened, discontinuity: discontinuity, start: chunkStart ?? Date()) }
                opened = stream
                discontinuity = true
                chunkStart = nil
                freeze = FreezeWatch(limit: settings.readTimeout)
                try await report(.online, reason: "receiving \(stream.name) \(stream.width)x\(stream.height)")
            case .packet(let packet):
                reader.consumed()
                if freeze.isFrozen(afterPacketAt: packet.decodingTime ?? packet.presentationTime) {
                    throw VideoError(kind: .timedOut, message: "packets arrive but their timestamps have not advanced for \(settings.readTimeout)")
                }
                let now = Date()
                meter.add(bytes: packet.data.count, at: now)
                if let chunk = chunker.add(packet), let opened {
                    try await publish(chunk, stream: opened, discontinuity: discontinuity, start: chunkStart ?? now)
                    discontinuity = false
                    chunkStart = nil
                }
                if chunkStart == nil { chunkStart = now }
                if ContinuousClock.now - lastHealth >= settings.healthInterval { try await report(.online, reason: "receiving") }
            }
        }
        if let pending = chunker.finish(), let opened { try await publish(pending, stream: opened, discontinuity: discontinuity, start: chunkStart ?? Date()) }
    }

    private mutating func publish(_ chunk: GOPChunker.Chunk, stream: StreamCodec, discontinuity: Bool, start: Date) async throws {
        // Capture time: the wall clock when the chunk's first packet arrived.
        let record = Vigil_V1_VideoChunk(
            cameraID: cameraID, sequence: sequence, epoch: epoch, captureTime: start, codec: stream, chunk: chunk, discontinuity: discontinuity
        )
        let milliseconds = Int64(start.timeIntervalSince1970 * 1000)
        try await output.send(StageOutput(
            topic: IngestSource.chunksTopic, key: Array(cameraID.utf8), value: try record.serializedBytes(),
            headers: [
                RecordHeader(key: "content-type", value: Vigil_V1_VideoChunk.protoMessageName),
                RecordHeader(key: RecordHeaders.eventTime, value: String(milliseconds)),
            ]
        ))
        sequence += 1
        // The newest frame sent: the chunk's last packet, counted from its first by their timestamps.
        let timestamps = chunk.packets.compactMap(\.presentationTime)
        let ticks = (timestamps.max() ?? 0) - (timestamps.min() ?? 0)
        lastFrameTime = Google_Protobuf_Timestamp(date: start.addingTimeInterval(Double(ticks) * stream.secondsPerTick))
    }

    /// Publishes the camera's health; `reason` must not carry the URL (FFmpeg's messages don't).
    mutating func report(_ state: Vigil_V1_CameraState, reason: String) async throws {
        let rates = meter.rates(at: Date())
        framesPerSecond.record(rates.packetsPerSecond)
        bitsPerSecond.record(rates.bitsPerSecond)
        var health = Vigil_V1_CameraHealth()
        health.cameraID = cameraID
        health.state = state
        health.reason = reason
        health.observedTime = Google_Protobuf_Timestamp(date: Date())
        if let lastFrameTime { health.lastFrameTime = lastFrameTime }
        health.framesPerSecond = state == .online ? rates.packetsPerSecond : 0
        health.bitsPerSecond = state == .online ? rates.bitsPerSecond : 0
        if state != self.state { logger.info("camera health", metadata: ["camera": "\(cameraID)", "state": "\(state)", "reason": "\(reason)"]) }
        self.state = state
        lastHealth = ContinuousClock.now
        // Event time. While the stream runs, where it stands: the capture time of its newest
        // frame. Its frames reach the rule engine through decode and detect, seconds behind its
        // health: stamped with the wall clock, an ONLINE record would run ahead of them and make
        // them late. A stream that stopped sends no frame after `last_frame_time`, so OFFLINE
        // and STALLED records take the wall clock: the time the camera has been down for must
        // grow with every report (vigil-match waits for the frames up to `last_frame_time`).
        let eventTime = state == .online && health.hasLastFrameTime ? health.lastFrameTime : health.observedTime
        try await output.send(StageOutput(
            topic: IngestSource.healthTopic, key: Array(cameraID.utf8), value: try health.serializedBytes(),
            headers: [
                RecordHeader(key: "content-type", value: Vigil_V1_CameraHealth.protoMessageName),
                RecordHeader(key: RecordHeaders.eventTime, value: String(eventTime.milliseconds)),
            ]
        ))
    }
}

/// Packets and bits per second over the last five seconds.
struct RateMeter {
    private var samples: [(time: Date, bytes: Int)] = []

    mutating func add(bytes: Int, at time: Date) {
        samples.append((time, bytes))
        samples.removeAll { time.timeIntervalSince($0.time) > 5 }
    }

    func rates(at time: Date) -> (packetsPerSecond: Double, bitsPerSecond: Double) {
        let recent = samples.filter { time.timeIntervalSince($0.time) <= 5 }
        guard let first = recent.first, recent.count > 1 else { return (0, 0) }
        let span = max(time.timeIntervalSince(first.time), 0.001)
        return (Double(recent.count - 1) / span, Double(recent.dropFirst().reduce(0) { $0 + $1.bytes } * 8) / span)
    }
}
