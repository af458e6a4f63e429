import ArgumentParser
import Foundation
import Video

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
            let elapsed = ContinuousClock.now - start
            let ours = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            let anchor = try timedRun("/usr/bin/ffmpeg", ["-nostdin", "-v", "error", "-threads", "1", "-i", clip.path, "-f", "null", "-"])
            ratios.append(anchor / ours)
            writeLine(String(format: "%5d  %7.2f  %8.2f  %6d  %.2f×", round, ours, anchor, frames, anchor / ours))
        }
        let median = ratios.sorted()[ratios.count / 2]
        writeLine("")
        writeLine(String(format: "ratio  vigil decode / ffmpeg -threads 1: %.2f× (median of %d rounds; goal ≥ 0.95×)", median, rounds))
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
