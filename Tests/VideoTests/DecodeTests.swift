import ChildProcesses
import Foundation
import Testing
@testable import Video

/// Runs the ffmpeg CLI (Debian's, the reference) and waits.
func ffmpeg(_ arguments: [String]) throws {
    let run = try ChildProcess.run("/usr/bin/ffmpeg", ["-nostdin", "-y", "-v", "error"] + arguments, standardError: .lines)
    guard run.termination == .exited(0) else {
        throw VideoError(kind: .readFailed, message: "ffmpeg \(arguments.joined(separator: " ")) \(run.termination): \(run.errorOutput.joined(separator: "\n"))")
    }
}

/// Test clips made by the ffmpeg CLI: 2 s of testsrc2 at 25 fps, a keyframe every 25 frames.
enum Clips {
    static let directory: URL = {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-clips-\(getpid())")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }()

    /// 2 s of a real photo (face_recognition's obama.jpg, fetched by Scripts/fetch-test-media)
    /// as H.264, 640 pixels wide.
    static func photoClip() throws -> URL {
        let url = directory.appendingPathComponent("photo-h264.mp4")
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let photo = repository.appendingPathComponent(".test-media/faces/obama.jpg")
        if !FileManager.default.fileExists(atPath: url.path) {
            try ffmpeg(["-loop", "1", "-i", photo.path, "-t", "2", "-r", "25", "-vf", "scale=640:-2", "-g", "25", "-pix_fmt", "yuv420p",
                        "-c:v", "libx264", "-preset", "veryfast", url.path])
        }
        return url
    }

    static func clip(_ codec: String, size: String = "640x360") throws -> URL {
        let url = directory.appendingPathComponent("testsrc2-\(codec)-\(size).mp4")
        if !FileManager.default.fileExists(atPath: url.path) {
            let encoder = codec == "h264" ? ["-c:v", "libx264", "-preset", "veryfast"] : ["-c:v", "libx265", "-preset", "veryfast", "-x265-params", "log-level=error"]
            try ffmpeg(["-f", "lavfi", "-i", "testsrc2=size=\(size):rate=25", "-t", "2", "-g", "25", "-keyint_min", "25", "-sc_threshold", "0", "-pix_fmt", "yuv420p"] + encoder + [url.path])
        }
        return url
    }
}

/// Every frame of a file, decoded by our path: demux → decode.
func decodeAll(_ url: URL, keyframesOnly: Bool = false) throws -> [VideoDecoder.Frame] {
    let demuxer = try Demuxer(url: url.path)
    let decoder = try VideoDecoder(codec: try #require(demuxer.codec), parameters: demuxer.codecParameters)
    decoder.keyframesOnly = keyframesOnly
    var frames: [VideoDecoder.Frame] = []
    while let packet = try demuxer.next() {
        try decoder.send(packet.data, presentationTime: packet.presentationTime, keyframe: packet.keyframe)
        while let frame = try decoder.receive() { frames.append(frame) }
    }
    try decoder.send(nil)
    while let frame = try decoder.receive() { frames.append(frame) }
    return frames
}

func psnr(_ a: [UInt8], _ b: [UInt8]) -> Double {
    precondition(a.count == b.count)
    var squared = 0.0
    for index in a.indices { let difference = Double(a[index]) - Double(b[index]); squared += difference * difference }
    let mse = squared / Double(a.count)
    return mse == 0 ? .infinity : 10 * log10(255 * 255 / mse)
}

@Suite("Demux and decode with FFmpeg", .serialized)
struct DecodeTests {
    @Test("H.264 and H.265: every frame decodes (50 of 50), keyframe-only gives the 2 keyframes", arguments: ["h264", "hevc"])
    func frameCounts(codec: String) throws {
        let clip = try Clips.clip(codec)
        let demuxer = try Demuxer(url: clip.path)
        #expect(demuxer.codec == (codec == "h264" ? .h264 : .hevc) && demuxer.width == 640 && demuxer.height == 360)
        #expect(abs(demuxer.framesPerSecond - 25) < 0.01)
        let all = try decodeAll(clip)
        #expect(all.count == 50)
        let keyframes = try decodeAll(clip, keyframesOnly: true)
        #expect(keyframes.count == 2 && keyframes.allSatisfy(\.keyframe))
    }

    @Test("decoded pixels match ffmpeg's own decode of the same frame (PSNR ≥ 40 dB): testsrc2 in H.264 and H.265, a real photo in H.264", arguments: ["h264", "hevc", "photo"])
    func pixelsMatchFFmpeg(codec: String) throws {
        let clip = codec == "photo" ? try Clips.photoClip() : try Clips.clip(codec)
        let reference = Clips.directory.appendingPathComponent("reference-\(codec).rgb")
        try ffmpeg(["-i", clip.path, "-frames:v", "1", "-pix_fmt", "rgb24", "-f", "rawvideo", reference.path])
        let expected = [UInt8](try Data(contentsOf: reference))

        let demuxer = try Demuxer(url: clip.path)
        let decoder = try VideoDecoder(codec: try #require(demuxer.codec), parameters: demuxer.codecParameters)
        var first: [UInt8]?
        while first == nil, let packet = try demuxer.next() {
            try decoder.send(packet.data, presentationTime: packet.presentationTime, keyframe: packet.keyframe)
            if try decoder.receive() != nil { first = try decoder.rgb(width: demuxer.width, height: demuxer.height) }
        }
        let ours = try #require(first)
        #expect(ours.count == expected.count)
        let quality = psnr(ours, expected)
        print("\(codec) first frame vs ffmpeg -pix_fmt rgb24: PSNR \(quality) dB")
        #expect(quality >= 40)
    }

    @Test("a file that is not video, and a missing file, are clear errors")
    func notVideo() throws {
        let text = Clips.directory.appendingPathComponent("notes.mp4")
        try Data("these are not the frames you are looking for\n".utf8).write(to: text)
        #expect { try Demuxer(url: text.path) } throws: { ($0 as? VideoError)?.kind == .cannotOpen }
        #expect { try Demuxer(url: Clips.directory.appendingPathComponent("absent.mp4").path) } throws: { ($0 as? VideoError)?.kind == .cannotOpen }
    }
}

@Suite("Damaged video files")
struct DamagedFileTests {
    @Test("a file truncated mid-GOP: the frames before the cut decode, then reading stops with an error or the end, without a crash")
    func truncatedFile() throws {
        // The index first (faststart), so the cut file still opens.
        let full = Clips.directory.appendingPathComponent("faststart-\(UUID().uuidString).mp4")
        try ffmpeg(["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25", "-t", "2", "-g", "25", "-pix_fmt", "yuv420p", "-c:v", "libx264",
                    "-preset", "veryfast", "-movflags", "+faststart", full.path])
        let data = try Data(contentsOf: full)
        let cut = Clips.directory.appendingPathComponent("truncated-\(UUID().uuidString).mp4")
        try data.prefix(data.count * 6 / 10).write(to: cut)

        let demuxer = try Demuxer(url: cut.path)
        let decoder = try VideoDecoder(codec: try #require(demuxer.codec), parameters: demuxer.codecParameters)
        var frames = 0, failures = 0
        do {
            while let packet = try demuxer.next() {
                do {
                    try decoder.send(packet.data, presentationTime: packet.presentationTime, keyframe: packet.keyframe)
                    while try decoder.receive() != nil { frames += 1 }
                } catch {
                    failures += 1
                }
            }
        } catch {
            #expect(error.kind == .readFailed && !error.message.contains(cut.path), "the error names no path: \(error.message)")
        }
        #expect(frames > 10 && frames < 50, "\(frames) frames before the cut")
        print("truncated at 60 %: \(frames) frames decoded, \(failures) packets refused")
    }
}
