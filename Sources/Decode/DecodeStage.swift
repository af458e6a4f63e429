import Cameras
import Foundation
import Logging
import Metrics
import SwiftProtobuf
import VigilSchema
import Video
import Vision
import WorkerRuntime

/// How decode turns chunks into frames; the worker reads it from `DECODE_*` settings.
public struct DecodeSettings: Sendable {
    /// JPEG quality of published frames: high, since detect must still find small faces.
    public var jpegQuality = 90
    /// Frames per second when the camera sets no sampling.
    public var defaultFramesPerSecond = 5.0
    /// A chunk whose capture time is this far behind the clock is decoded keyframes only
    /// (load shedding, counted), until decode has caught up.
    public var behindMilliseconds: Int64 = 5_000
    /// Decoding threads per camera (1: replicas scale out instead).
    public var threads = 1

    public init() {}
}

/// A chunk decode cannot use: the record is dead-lettered with the reason.
public struct UnusableChunk: Error, CustomStringConvertible {
    public var reason: String
    public var description: String { reason }
}

/// vigil-decode's stage: `video.packets.v1` → `frames.v1`. Keeps one decoder per camera;
/// samples frames by capture time at the camera's rate (or keyframes only), burns in the
/// camera's static privacy masks — those in force at the capture time and the current ones —
/// scales to the working resolution and publishes each frame as a JPEG.
public final class DecodeStage: Stage, @unchecked Sendable {
    public static let framesTopic = "frames.v1"
    public static let healthTopic = "camera.health.v1"
    /// Frames are JPEG.
    public var alreadyCompressedOutputs: Set<String> { [Self.framesTopic] }

    private let cameras: Table<Vigil_V1_CameraConfig>
    private let settings: DecodeSettings
    private let logger: Logger
    private let clock: @Sendable () -> Int64
    private let lock = NSLock()
    /// Decoding is heavy and synchronous: on a thread of its own, not a cooperative one.
    public let executor: (any TaskExecutor)? = StageThread(name: "vigil.decode.stage")
    private var decoders: [String: CameraDecoder] = [:]  // guarded by `lock`
    /// Cameras whose stream decode cannot decode, with the codec reported (once per codec).
    private var unsupported: [String: String] = [:]  // guarded by `lock`
    private let skippedChunks = Counter(label: "vigil_decode_chunks_skipped_total", dimensions: [("reason", "waiting_for_keyframe")])
    private let shedChunks = Counter(label: "vigil_decode_chunks_keyframes_only_total", dimensions: [("reason", "behind")])

    /// One camera's decoding state: the decoder, where the stream is, the sampler.
    final class CameraDecoder {
        let decoder: VideoDecoder
        let codecName: String
        let parameters: Data
        var epoch: UInt64
        var lastSequence: UInt64
        /// True after a reset until a chunk starting at a keyframe arrives.
        var waitingForKeyframe = true
        var sampler: FrameSampler
        var samplingRate: Double

        init(decoder: VideoDecoder, chunk: Vigil_V1_VideoChunk, framesPerSecond: Double) {
            self.decoder = decoder
            codecName = chunk.codec.codecName
            parameters = chunk.codec.extradata
            epoch = chunk.epoch
            lastSequence = chunk.sequence
            sampler = FrameSampler(framesPerSecond: framesPerSecond)
            samplingRate = framesPerSecond
        }
    }

    /// - Parameter clock: now, in milliseconds since the epoch (tests pass their own).
    public init(
        cameras: Table<Vigil_V1_CameraConfig>, settings: DecodeSettings = DecodeSettings(), logger: Logger,
        clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1000) }
    ) {
        self.cameras = cameras
        self.settings = settings
        self.logger = logger
        self.clock = clock
    }

    /// A dead-lettered chunk keeps its metadata and packet timing, and the compressed pictures
    /// only where its camera's signed configuration keeps them (nothing when unreadable).
    public func deadLetterValue(of input: StageInput) -> [UInt8] {
        guard var chunk = try? Vigil_V1_VideoChunk(serializedBytes: input.value) else { return [] }
        if cameras.keepsPixelsInDeadLetters(chunk.cameraID, capturedAtMilliseconds: chunk.captureTime.milliseconds) { return input.value }
        for index in chunk.packets.indices { chunk.packets[index].data = Data() }
        return (try? chunk.serializedBytes()) ?? []
    }

    public func process(_ input: StageInput) async throws -> [StageOutput] {
        let chunk = try input.cameraMessage(Vigil_V1_VideoChunk.self) { $0.cameraID }
        let captureMilliseconds = Int64(chunk.captureTime.timeIntervalSince1970 * 1000)
        let camera = try cameras.camera(chunk.cameraID, atMilliseconds: captureMilliseconds)
        let current = cameras.current(chunk.cameraID) ?? camera
        return try lock.withLock { try decode(chunk, camera: camera, current: current, captureMilliseconds: captureMilliseconds, key: input.key) }
    }

    private func decode(
        _ chunk: Vigil_V1_VideoChunk, camera: Vigil_V1_CameraConfig, current: Vigil_V1_CameraConfig, captureMilliseconds: Int64, key: [UInt8]?
    ) throws -> [StageOutput] {
        let state = try decoderState(for: chunk, camera: camera)
        if state.waitingForKeyframe {
            guard chunk.packets.first?.keyframe == true else {
                skippedChunks.increment()
                logger.debug("chunk skipped until a keyframe", metadata: ["camera": "\(chunk.cameraID)", "sequence": "\(chunk.sequence)"])
                return []
            }
            state.waitingForKeyframe = false
        }
        let behind = clock() - captureMilliseconds > settings.behindMilliseconds
        let keyframesOnly = if case .keyframesOnly = camera.sampling.rate { true } else { false }
        if behind && !keyframesOnly { shedChunks.increment() }
        state.decoder.keyframesOnly = keyframesOnly || behind

        let timeBase = chunk.codec.timeBase
        let secondsPerTick = timeBase.denominator > 0 ? Double(timeBase.numerator) / Double(timeBase.denominator) : 0
        let firstTime = chunk.packets.map(\.pts).min() ?? 0
        var outputs: [StageOutput] = []
        var frameIndex: UInt64 = 0
        func drain() throws {
            while let decoded = try state.decoder.receive() {
                defer { frameIndex += 1 }
                let offset = Double((decoded.presentationTime ?? firstTime) - firstTime) * secondsPerTick * 1000
                let frameMilliseconds = Double(captureMilliseconds) + offset
                guard state.decoder.keyframesOnly || state.sampler.take(atMilliseconds: frameMilliseconds) else { continue }
                outputs.append(try frame(
                    decoded, from: state.decoder, chunk: chunk, index: frameIndex, atMilliseconds: Int64(frameMilliseconds.rounded()),
                    camera: camera, current: current, keyframesOnly: state.decoder.keyframesOnly, key: key
                ))
            }
        }
        do {
            for packet in chunk.packets {
                try state.decoder.send([UInt8](packet.data), presentationTime: packet.pts, keyframe: packet.keyframe)
                try drain()
            }
            if chunk.endsGop || state.decoder.keyframesOnly {
                // The decoder holds frames back for reordering (and, keyframes only, for frames
                // it will never get): flush it at the GOP's end, and start the next chunk
                // afresh at its keyframe.
                try state.decoder.send(nil)
                try drain()
                state.decoder.reset()
                state.waitingForKeyframe = true
            }
        } catch let error as VideoError {
            // Resume at the next keyframe; the frames decoded before the damage are published.
            state.waitingForKeyframe = true
            throw PartiallyProcessed(outputs: outputs, reason: "chunk \(chunk.sequence) of camera \(chunk.cameraID) is corrupt after \(outputs.count) frames: \(error)")
        }
        return outputs
    }

    /// The camera's decoder, new (waiting for a keyframe) on a discontinuity, a new epoch, a
    /// sequence gap or changed codec parameters.
    private func decoderState(for chunk: Vigil_V1_VideoChunk, camera: Vigil_V1_CameraConfig) throws -> CameraDecoder {
        let rate = camera.sampling.framesPerSecond > 0 ? camera.sampling.framesPerSecond : settings.defaultFramesPerSecond
        if let state = decoders[chunk.cameraID], !chunk.discontinuity, chunk.epoch == state.epoch,
           chunk.codec.codecName == state.codecName, chunk.codec.extradata == state.parameters {
            if chunk.sequence != state.lastSequence + 1 {
                logger.warning("chunk sequence gap: waiting for a keyframe", metadata: [
                    "camera": "\(chunk.cameraID)", "expected": "\(state.lastSequence + 1)", "got": "\(chunk.sequence)",
                ])
                state.waitingForKeyframe = true
            }
            state.lastSequence = chunk.sequence
            if state.samplingRate != rate { state.sampler = FrameSampler(framesPerSecond: rate); state.samplingRate = rate }
            return state
        }
        let name = chunk.codec.codecName
        guard let codec = VideoCodec(name: name) else {
            let reason = "camera \(chunk.cameraID) sends \(name.isEmpty ? "an unnamed codec" : name), which vigil does not decode (H.264 and H.265 only): set the camera to H.264 or H.265"
            // The camera's operators learn it from its health, once per codec; the chunk is kept in the DLQ.
            guard unsupported[chunk.cameraID] != name else { throw UnusableChunk(reason: reason) }
            unsupported[chunk.cameraID] = name
            throw PartiallyProcessed(outputs: [try Self.health(chunk.cameraID, reason: reason)], reason: reason)
        }
        unsupported[chunk.cameraID] = nil
        let decoder: VideoDecoder
        do {
            decoder = try VideoDecoder(codec: codec, parameters: [UInt8](chunk.codec.extradata), threads: settings.threads)
        } catch {
            throw UnusableChunk(reason: "cannot start a \(name) decoder for camera \(chunk.cameraID): \(error)")
        }
        let state = CameraDecoder(decoder: decoder, chunk: chunk, framesPerSecond: rate)
        decoders[chunk.cameraID] = state
        return state
    }

    /// A published frame: scaled, masked, JPEG.
    private func frame(
        _ decoded: VideoDecoder.Frame, from decoder: VideoDecoder, chunk: Vigil_V1_VideoChunk, index: UInt64, atMilliseconds milliseconds: Int64,
        camera: Vigil_V1_CameraConfig, current: Vigil_V1_CameraConfig, keyframesOnly: Bool, key: [UInt8]?
    ) throws -> StageOutput {
        let working = camera.hasWorkingResolution && camera.workingResolution.width > 0 && camera.workingResolution.height > 0
        let width = working ? Int(camera.workingResolution.width) : decoded.width
        let height = working ? Int(camera.workingResolution.height) : decoded.height
        var image = RGBImage(width: width, height: height, pixels: try decoder.rgb(width: width, height: height))
        // The union of both versions' masks: a redelivered old chunk never gets less masking.
        for mask in camera.privacyMasks + current.privacyMasks {
            image.fill(polygon: mask.area.vertices.map { (x: $0.x, y: $0.y) })
        }
        var frame = Vigil_V1_Frame()
        frame.cameraID = chunk.cameraID
        // Deterministic for a redelivered chunk; ids that must survive an ingest restart use
        // camera and capture time instead.
        frame.sequence = chunk.sequence &* 4_096 &+ index
        frame.captureTime = Google_Protobuf_Timestamp(timeIntervalSince1970: Double(milliseconds) / 1000)
        frame.width = UInt32(width)
        frame.height = UInt32(height)
        frame.pixelFormat = .jpeg
        frame.data = Data(try image.jpeg(quality: settings.jpegQuality))
        frame.privacyMaskVersion = camera.version
        frame.currentPrivacyMaskVersion = current.version
        frame.keyframeOnly = keyframesOnly
        return StageOutput(
            topic: Self.framesTopic, key: key, value: try frame.serializedBytes(),
            headers: [
                RecordHeader(key: "content-type", value: Vigil_V1_Frame.protoMessageName),
                RecordHeader(key: RecordHeaders.eventTime, value: String(milliseconds)),
            ]
        )
    }

    /// A health record saying the camera's stream cannot be decoded.
    static func health(_ cameraID: String, reason: String) throws -> StageOutput {
        var health = Vigil_V1_CameraHealth()
        health.cameraID = cameraID
        health.state = .offline
        health.reason = reason
        health.observedTime = Google_Protobuf_Timestamp(date: Date())
        return StageOutput(
            topic: healthTopic, key: Array(cameraID.utf8), value: try health.serializedBytes(),
            headers: [RecordHeader(key: "content-type", value: Vigil_V1_CameraHealth.protoMessageName)]
        )
    }

}

extension VideoCodec {
    /// From FFmpeg's codec name, as `CodecParameters.codec_name` carries it.
    init?(name: String) {
        switch name {
        case "h264": self = .h264
        case "hevc", "h265": self = .hevc
        default: return nil
        }
    }
}
