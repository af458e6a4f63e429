import ArgumentParser
import CommandLineSupport
import Foundation
import Cameras
import Decode
import Ingest
import Logging
import SwiftProtobuf
import VigilSchema
import Video
import Vision
import WorkerRuntime

/// Decoding every frame — the cost no implementation avoids — by vigil's decode path against
/// the ffmpeg CLI on the same file in the same run, both on one core with one thread.
struct DecodeBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decode",
        abstract: "Decode every frame: vigil's demux + decode vs ffmpeg -threads 1, one core.",
        discussion: """
            The clip: testsrc2 encoded by ffmpeg (libx264 veryfast, 4 Mbit/s, a keyframe every 50 frames) at the chosen size, 25 fps. vigil: Demuxer + VideoDecoder (one thread), every frame decoded, no scaling or conversion. Anchor: `ffmpeg -threads 1 -i clip.mp4 -f null -`. Both pinned to CPU 0 (taskset). The sides take turns for --rounds rounds; the ratio is the median of the rounds' (anchor time / vigil time: above 1 means vigil is faster). Goal: ≥ 0.95×.
            """
    )

    @Option(help: "Frame size of the clip.") var size = "1920x1080"
    @Option(help: "Seconds of video.") var seconds = 20
    @Option(help: "Rounds; the median ratio is reported.") var rounds = 3

    func run() async throws {
        if try rerunPinnedToOneCore() { return }
        let clip = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-bench-decode-\(size)-\(seconds)s.mp4")
        if !FileManager.default.fileExists(atPath: clip.path) {
            writeLine("encoding the clip (\(size), \(seconds) s) with ffmpeg…")
            _ = try timedRun("/usr/bin/ffmpeg", [
                "-nostdin", "-y", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=\(size):rate=25", "-t", String(seconds),
                "-c:v", "libx264", "-preset", "veryfast", "-b:v", "4M", "-maxrate", "4M", "-bufsize", "8M", "-g", "50", "-pix_fmt", "yuv420p", clip.path,
            ])
        }
        writeLine("vigil bench decode — \(size) H.264 4 Mbit/s, \(seconds) s at 25 fps, every frame, one core (CPU 0), one thread")
        writeLine("")
        writeLine("round  vigil s  ffmpeg s  frames  ratio")
        var ratios: [Double] = []
        for round in 1...rounds {
            let start = ContinuousClock.now
            let frames = try decodeEveryFrame(clip.path)
            let ours = elapsedSeconds(since: start)
            let anchor = try timedRun("/usr/bin/ffmpeg", ["-nostdin", "-v", "error", "-threads", "1", "-i", clip.path, "-f", "null", "-"])
            ratios.append(anchor / ours)
            writeLine(String(format: "%5d  %7.2f  %8.2f  %6d  %.2f×", round, ours, anchor, frames, anchor / ours))
        }
        let median = ratios.sorted()[ratios.count / 2]
        writeLine("")
        writeLine(String(format: "ratio  vigil decode / ffmpeg -threads 1: %.2f× (median of %d rounds; goal ≥ 0.95×)", median, rounds))
        try compareFrameEncodings(clip.path)
        try await measureWorker(clip.path, clipSeconds: Double(seconds))
    }

    /// The whole decode stage as vigil-decode runs it (chunks in, masked JPEG frames at the
    /// camera's working resolution out), at 5 frames/s and keyframes only.
    private func measureWorker(_ path: String, clipSeconds: Double) async throws {
        let start: Int64 = 1_800_000_000_000
        let inputs = try Vigil_V1_VideoChunk.chunks(ofFile: path, cameraID: "bench", start: Date(timeIntervalSince1970: Double(start) / 1000)).map {
            StageInput(topic: "video.packets.v1", key: Array("bench".utf8), value: try $0.serializedBytes())
        }
        writeLine("")
        writeLine("the decode stage (\(Int(clipSeconds)) s of this clip as chunks; masked JPEG q90 frames at 1280x720):")
        for sampling in [Vigil_V1_FrameSampling.OneOf_Rate.framesPerSecond(5), .keyframesOnly(.init())] {
            var camera = Vigil_V1_CameraConfig()
            camera.cameraID = "bench"
            camera.version = 1
            camera.sampling.rate = sampling
            camera.workingResolution.width = 1280
            camera.workingResolution.height = 720
            var mask = Vigil_V1_PrivacyMask()
            mask.maskID = "window"
            mask.area.vertices = [(Float(0.1), Float(0.1)), (0.3, 0.1), (0.3, 0.3), (0.1, 0.3)].map { var point = Vigil_V1_Point(); point.x = $0.0; point.y = $0.1; return point }
            camera.privacyMasks = [mask]
            let admins = LocalAdmins()
            let table = admins.table()
            try admins.apply(camera, to: table, effectiveMilliseconds: start - 60_000)
            let stage = DecodeStage(cameras: table, logger: Logger(label: "bench"), clock: { start })
            let began = ContinuousClock.now
            var frames = 0
            for input in inputs { frames += try await stage.process(input).count }
            let elapsed = elapsedSeconds(since: began)
            let label = if case .framesPerSecond = sampling { "5 frames/s    " } else { "keyframes only" }
            writeLine(String(format: "  %@  %4d frames  %.2f s  %.1f camera-seconds per CPU-second", label, frames, elapsed, clipSeconds / elapsed))
        }
    }

    /// What each way of carrying a frame from decode to detect costs at 1280x720: bytes on
    /// Kafka (the record limit is 1 MB), encoding in decode and decoding in detect, per frame.
    private func compareFrameEncodings(_ path: String) throws {
        let (width, height) = (1280, 720)
        var frames: [RGBImage] = []
        let demuxer = try Demuxer(url: path)
        guard let codec = demuxer.codec else { return }
        let decoder = try VideoDecoder(codec: codec, parameters: demuxer.codecParameters, threads: 1)
        decoder.keyframesOnly = true
        while frames.count < 10, let packet = try demuxer.next() {
            try decoder.send(packet.data, presentationTime: packet.presentationTime, keyframe: packet.keyframe)
            while frames.count < 10, try decoder.receive() != nil {
                frames.append(RGBImage(width: width, height: height, pixels: try decoder.rgb(width: width, height: height)))
            }
        }
        guard !frames.isEmpty else { return }
        writeLine("")
        writeLine("frame encodings at \(width)x\(height), decode → Kafka → detect (mean of \(frames.count) frames, one core):")
        writeLine("encoding          bytes     encode ms  decode ms  fits 1 MB")
        let rawRGB = width * height * 3, rawYUV = width * height * 3 / 2
        writeLine(String(format: "raw RGB24       %8d          -          -  %@", rawRGB, rawRGB <= 1_000_000 ? "yes" : "no"))
        writeLine(String(format: "raw YUV 4:2:0   %8d          -          -  %@", rawYUV, rawYUV <= 1_000_000 ? "yes" : "no"))
        for quality in [95, 90, 75] {
            var bytes = 0, encodeSeconds = 0.0, decodeSeconds = 0.0
            for frame in frames {
                var start = ContinuousClock.now
                let jpeg = try frame.jpeg(quality: quality)
                encodeSeconds += elapsedSeconds(since: start)
                bytes += jpeg.count
                start = ContinuousClock.now
                _ = try RGBImage(encoded: jpeg)
                decodeSeconds += elapsedSeconds(since: start)
            }
            let count = Double(frames.count)
            writeLine(String(format: "JPEG q%-3d       %8d   %8.2f   %8.2f  yes", quality, bytes / frames.count, encodeSeconds / count * 1000, decodeSeconds / count * 1000))
        }
    }


    private func decodeEveryFrame(_ path: String) throws -> Int {
        let demuxer = try Demuxer(url: path)
        guard let codec = demuxer.codec else { throw ValidationError("\(path): codec \(demuxer.codecName) is not one vigil decodes") }
        let decoder = try VideoDecoder(codec: codec, parameters: demuxer.codecParameters, threads: 1)
        var frames = 0
        while let packet = try demuxer.next() {
            try decoder.send(packet.data, presentationTime: packet.presentationTime, keyframe: packet.keyframe)
            while try decoder.receive() != nil { frames += 1 }
        }
        try decoder.send(nil)
        while try decoder.receive() != nil { frames += 1 }
        return frames
    }
}
