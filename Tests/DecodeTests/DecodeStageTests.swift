import Cameras
import ChildProcesses
import Foundation
import Logging
import SwiftProtobuf
import Testing
import VigilSchema
import Video
import Vision
import WorkerRuntime
import WorkerRuntimeTesting
@testable import Decode
import Ingest

/// Clips made by the ffmpeg CLI for these tests: 2 s of testsrc2, 25 fps, a keyframe every 25.
enum TestClips {
    static let directory: URL = {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-decode-clips-\(getpid())")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }()

    static func h264() throws -> URL {
        let url = directory.appendingPathComponent("testsrc2.mp4")
        if !FileManager.default.fileExists(atPath: url.path) {
            let run = try ChildProcess.run("/usr/bin/ffmpeg", ["-nostdin", "-y", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25", "-t", "2", "-g", "25",
                                 "-keyint_min", "25", "-sc_threshold", "0", "-pix_fmt", "yuv420p", "-c:v", "libx264", "-preset", "veryfast", url.path])
            #expect(run.termination == .exited(0))
        }
        return url
    }
}

/// The clip as ingest would publish it: GOP chunks of at most `maxBytes`.
func chunks(of url: URL, camera: String, maxBytes: Int = 900_000, captureMilliseconds: Int64) throws -> [Vigil_V1_VideoChunk] {
    try Vigil_V1_VideoChunk.chunks(ofFile: url.path, cameraID: camera, maxBytes: maxBytes, start: Date(timeIntervalSince1970: Double(captureMilliseconds) / 1000))
}

@Suite("Decode stage", .serialized)
struct DecodeStageTests {
    static let capture: Int64 = 1_800_000_000_000

    static func camera(_ id: String = "cam-1", version: UInt64 = 1, sampling: Vigil_V1_FrameSampling.OneOf_Rate? = nil, masks: [[(Float, Float)]] = []) -> Vigil_V1_CameraConfig {
        var config = Vigil_V1_CameraConfig()
        config.cameraID = id
        config.sourceURL = "/media/\(id).mp4"
        config.version = version
        config.sampling.rate = sampling
        config.privacyMasks = masks.enumerated().map { index, points in
            var mask = Vigil_V1_PrivacyMask()
            mask.maskID = "mask-\(index)"
            mask.area.vertices = points.map { var point = Vigil_V1_Point(); point.x = $0.0; point.y = $0.1; return point }
            return mask
        }
        return config
    }

    /// A driver over a cameras table whose versions take effect at the given times.
    /// - Parameter now: the stage's clock; by default just after the clip, so decode is not behind.
    static func driver(_ versions: [(config: Vigil_V1_CameraConfig, effective: Int64)], now: Int64 = capture + 2_500) throws -> StageTestDriver {
        let admins = LocalAdmins()
        let table = admins.table()
        for (config, effective) in versions {
            try admins.apply(config, to: table, effectiveMilliseconds: effective)
        }
        let stage = DecodeStage(cameras: table, logger: Logger(label: "decode-tests"), clock: { now })
        return StageTestDriver(stage: stage, worker: "vigil-decode", outputs: [DecodeStage.framesTopic, DecodeStage.healthTopic])
    }

    static func input(_ chunk: Vigil_V1_VideoChunk) throws -> StageInput {
        StageInput(topic: "video.packets.v1", key: Array(chunk.cameraID.utf8), value: try chunk.serializedBytes())
    }

    static func frames(_ driver: StageTestDriver) throws -> [Vigil_V1_Frame] {
        try driver.outputs(topic: DecodeStage.framesTopic).map { try Vigil_V1_Frame(serializedBytes: $0.value) }
    }

    @Test("sampling: 5 fps gives 10 ± 1 frames of 2 s, keyframes only gives the 2 keyframes, 25 fps gives all 50; capture times are in order")
    func sampling() async throws {
        let clip = try TestClips.h264()
        for (rate, expected) in [(Vigil_V1_FrameSampling.OneOf_Rate.framesPerSecond(5), 9...11), (.keyframesOnly(.init()), 2...2), (.framesPerSecond(25), 50...50)] {
            let driver = try Self.driver([(Self.camera(sampling: rate), Self.capture - 60_000)])
            for chunk in try chunks(of: clip, camera: "cam-1", captureMilliseconds: Self.capture) { try await driver.feed(try Self.input(chunk)) }
            let frames = try Self.frames(driver)
            #expect(expected.contains(frames.count), "\(rate): \(frames.count) frames")
            let times = frames.map { $0.captureTime.timeIntervalSince1970 }
            #expect(times == times.sorted() && Set(times).count == times.count)
            #expect(frames.allSatisfy { $0.pixelFormat == .jpeg && $0.width == 640 && $0.height == 360 })
        }
    }

    @Test("behind by more than 5 s: decode falls back to keyframes only and says so on each frame")
    func behindFallsBackToKeyframes() async throws {
        let clip = try TestClips.h264()
        let driver = try Self.driver([(Self.camera(sampling: .framesPerSecond(25)), Self.capture - 60_000)], now: Self.capture + 60_000)
        for chunk in try chunks(of: clip, camera: "cam-1", captureMilliseconds: Self.capture) { try await driver.feed(try Self.input(chunk)) }
        let frames = try Self.frames(driver)
        #expect(frames.count == 2 && frames.allSatisfy(\.keyframeOnly))
    }

    @Test("privacy masks: inside the polygon every published pixel is black (≤ 4 after JPEG); outside, the frame matches the unmasked decode (PSNR ≥ 40 dB)")
    func privacyMask() async throws {
        let clip = try TestClips.h264()
        let square: [(Float, Float)] = [(0.1, 0.1), (0.4, 0.1), (0.4, 0.5), (0.1, 0.5)]
        let masked = try Self.driver([(Self.camera(sampling: .framesPerSecond(5), masks: [square]), Self.capture - 60_000)])
        let plain = try Self.driver([(Self.camera(sampling: .framesPerSecond(5)), Self.capture - 60_000)])
        for chunk in try chunks(of: clip, camera: "cam-1", captureMilliseconds: Self.capture) {
            try await masked.feed(try Self.input(chunk))
            try await plain.feed(try Self.input(chunk))
        }
        let maskedFrames = try Self.frames(masked), plainFrames = try Self.frames(plain)
        #expect(maskedFrames.count == plainFrames.count && !maskedFrames.isEmpty)
        for (withMask, without) in zip(maskedFrames, plainFrames) {
            #expect(withMask.privacyMaskVersion == 1 && withMask.currentPrivacyMaskVersion == 1)
            let a = try RGBImage(encoded: [UInt8](withMask.data)), b = try RGBImage(encoded: [UInt8](without.data))
            var insideMax: UInt8 = 0, outsideError = 0.0, outsideCount = 0
            for y in 0..<a.height {
                for x in 0..<a.width {
                    let index = (y * a.width + x) * 3
                    // Leave 16 px (a JPEG block of 4:2:0 chroma) either side of the mask's edge:
                    // the encoder's blocks blur across it.
                    let inside = x >= 80 && x < 240 && y >= 52 && y < 164
                    let outside = x < 48 || x >= 272 || y < 20 || y >= 196
                    for channel in 0..<3 {
                        if inside { insideMax = max(insideMax, a.pixels[index + channel]) }
                        if outside {
                            let difference = Double(a.pixels[index + channel]) - Double(b.pixels[index + channel])
                            outsideError += difference * difference
                            outsideCount += 1
                        }
                    }
                }
            }
            #expect(insideMax <= 4, "a pixel inside the mask has value \(insideMax)")
            let psnr = 10 * log10(255 * 255 / max(outsideError / Double(outsideCount), 1e-9))
            #expect(psnr >= 40, "outside the mask PSNR \(psnr) dB")
        }
    }

    @Test("a redelivered old chunk is masked with the masks of its capture time and the current ones together")
    func unionOfMaskVersions() async throws {
        let clip = try TestClips.h264()
        let left: [(Float, Float)] = [(0.0, 0.0), (0.2, 0.0), (0.2, 1.0), (0.0, 1.0)]
        let right: [(Float, Float)] = [(0.8, 0.0), (1.0, 0.0), (1.0, 1.0), (0.8, 1.0)]
        // Version 1 (in force at capture) masks the left strip; version 2 (current) the right.
        let driver = try Self.driver([
            (Self.camera(version: 1, sampling: .keyframesOnly(.init()), masks: [left]), Self.capture - 60_000),
            (Self.camera(version: 2, sampling: .keyframesOnly(.init()), masks: [right]), Self.capture + 5_000),
        ])
        try await driver.feed(try Self.input(try chunks(of: clip, camera: "cam-1", captureMilliseconds: Self.capture)[0]))
        let frame = try #require(try Self.frames(driver).first)
        #expect(frame.privacyMaskVersion == 1 && frame.currentPrivacyMaskVersion == 2)
        let image = try RGBImage(encoded: [UInt8](frame.data))
        func brightest(_ columns: Range<Int>) -> UInt8 {
            var value: UInt8 = 0
            for y in 0..<image.height { for x in columns { for c in 0..<3 { value = max(value, image.pixels[(y * image.width + x) * 3 + c]) } } }
            return value
        }
        #expect(brightest(0..<120) <= 8 && brightest(520..<640) <= 8)
        #expect(brightest(200..<440) > 100)
    }

    @Test("a lost chunk mid-GOP: decode waits for the next chunk that starts at a keyframe, then resumes")
    func gapWaitsForKeyframe() async throws {
        let clip = try TestClips.h264()
        // Small chunks: each GOP is split, and continuations do not start at a keyframe.
        let all = try chunks(of: clip, camera: "cam-1", maxBytes: 20_000, captureMilliseconds: Self.capture)
        let continuation = try #require(all.firstIndex { $0.sequence > 0 && $0.packets.first?.keyframe == false && $0.sequence < all.count - 2 })
        let driver = try Self.driver([(Self.camera(sampling: .framesPerSecond(25)), Self.capture - 60_000)])
        for (index, chunk) in all.enumerated() where index != continuation { try await driver.feed(try Self.input(chunk)) }
        let frames = try Self.frames(driver)
        let resumeAt = try #require(all.indices.first { $0 > continuation && all[$0].packets.first?.keyframe == true })
        // Frames before the gap, none from the lost chunk to the next keyframe, all after.
        let before = all[..<continuation].reduce(0) { $0 + $1.packets.count }
        let after = all[resumeAt...].reduce(0) { $0 + $1.packets.count }
        #expect(frames.count >= before - 2 && frames.count <= before + after)
        #expect(frames.count >= after, "decode resumed at the next keyframe: \(frames.count) frames")
        #expect(driver.deadLetters.isEmpty)
    }

    @Test("decoding runs on decode's own thread, not one of the cooperative threads the runtime's delivery tasks need")
    func ownThread() {
        #expect(DecodeStage(cameras: LocalAdmins().table(), logger: Logger(label: "decode-tests"), clock: { 0 }).executor is StageThread)
    }

    @Test("bad chunks go to the DLQ with the reason and the stream continues: not a chunk, unknown camera, unsupported codec (also a health record), key mismatch, flipped bytes")
    func badChunks() async throws {
        let clip = try TestClips.h264()
        let good = try chunks(of: clip, camera: "cam-1", captureMilliseconds: Self.capture)
        let driver = try Self.driver([(Self.camera(sampling: .keyframesOnly(.init())), Self.capture - 60_000)])
        var unknown = good[0]
        unknown.cameraID = "cam-9"
        var vp9 = good[0]
        vp9.codec.codecName = "vp9"
        vp9.cameraID = "cam-1"
        vp9.discontinuity = true
        try await driver.feed(StageInput(topic: "video.packets.v1", key: Array("cam-1".utf8), value: [0x0A, 0xFF, 0xFF]))
        try await driver.feed(try Self.input(unknown))
        try await driver.feed(try Self.input(vp9))
        try await driver.feed(StageInput(topic: "video.packets.v1", key: Array("cam-2".utf8), value: try good[0].serializedBytes()))
        let reasons = driver.deadLetters.map { String(decoding: $0.header(RecordHeaders.error) ?? [], as: UTF8.self) }
        #expect(reasons.count == 4)
        #expect(reasons[0].contains("not a vigil.v1.VideoChunk"))
        #expect(reasons[1].contains("cam-9") && reasons[1].contains("is not in cameras.v1"))
        #expect(reasons[2].contains("vp9") && reasons[2].contains("H.264 and H.265 only"))
        // Dead letters keep metadata, never the compressed pictures.
        #expect(driver.deadLetters[0].value.isEmpty, "an unreadable record is kept as its origin and reason only")
        for letter in driver.deadLetters.dropFirst() {
            let kept = try Vigil_V1_VideoChunk(serializedBytes: letter.value)
            #expect(kept.packets.count == good[0].packets.count && kept.packets.allSatisfy(\.data.isEmpty), "a dead-lettered chunk carries pixels")
        }
        // The camera's health says so, once; other cameras are unaffected.
        let health = try driver.outputs(topic: DecodeStage.healthTopic).map { try Vigil_V1_CameraHealth(serializedBytes: $0.value) }
        #expect(health.count == 1 && health.first?.cameraID == "cam-1" && health.first?.state == .offline && health.first?.reason.contains("vp9") == true)
        #expect(reasons[3].contains("the record's key is cam-2"))

        // Flipped bytes in every packet of the first GOP: whatever the decoder makes of it,
        // the next GOP decodes.
        var flipped = good[0]
        flipped.discontinuity = true
        flipped.packets = flipped.packets.map { packet in
            var bytes = [UInt8](packet.data)
            for index in stride(from: 8, to: bytes.count, by: 97) { bytes[index] ^= 0xFF }
            var copy = packet
            copy.data = Data(bytes)
            return copy
        }
        try await driver.feed(try Self.input(flipped))
        let framesBefore = try Self.frames(driver).count
        try await driver.feed(try Self.input(good[1]))
        #expect(try Self.frames(driver).count == framesBefore + 1, "the GOP after the damaged one decodes")
        print("flipped bytes: \(framesBefore) frames published, dead letters: \(driver.deadLetters.count - 4)")
    }
}
