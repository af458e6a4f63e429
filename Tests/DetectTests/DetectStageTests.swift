import Cameras
import Foundation
import SwiftProtobuf
import Testing
import VigilSchema
import Vision
import WorkerRuntime
import WorkerRuntimeTesting
@testable import Detect

/// The stage as vigil-detect runs it, fed in memory: what it publishes for good frames, and
/// what happens to bad ones.
@Suite("Detect stage", .serialized)
struct DetectStageTests {
    static let captureMilliseconds: Int64 = 1_800_000_000_000

    static func camera(_ id: String, target: Vigil_V1_RedactionTarget = .unspecified, snapshotsPerMinute: Double = 0) -> Vigil_V1_CameraConfig {
        var config = Vigil_V1_CameraConfig()
        config.cameraID = id
        config.sourceURL = "rtsp://camera.example/\(id)"
        config.version = 1
        config.redactionPolicy.target = target
        config.snapshotsPerMinute = snapshotsPerMinute
        return config
    }

    /// A cameras table holding `configs`, in force long before the test frames.
    static func cameras(_ configs: [Vigil_V1_CameraConfig]) throws -> Table<Vigil_V1_CameraConfig> {
        let admins = LocalAdmins()
        let table = admins.table()
        for config in configs {
            try admins.apply(config, to: table, effectiveMilliseconds: captureMilliseconds - 60_000)
        }
        return table
    }

    static func frame(camera: String, sequence: UInt64, jpeg: [UInt8], atMilliseconds milliseconds: Int64) -> Vigil_V1_Frame {
        var frame = Vigil_V1_Frame()
        frame.cameraID = camera
        frame.sequence = sequence
        frame.captureTime = Google_Protobuf_Timestamp(timeIntervalSince1970: Double(milliseconds) / 1000)
        frame.pixelFormat = .jpeg
        frame.data = Data(jpeg)
        return frame
    }

    static func input(_ frame: Vigil_V1_Frame, key: String? = nil) throws -> StageInput {
        StageInput(topic: "frames.v1", key: Array((key ?? frame.cameraID).utf8), value: try frame.serializedBytes())
    }

    static func driver(cameras: [Vigil_V1_CameraConfig]) throws -> StageTestDriver {
        let stage = DetectStage(analyzer: try FrameAnalyzer(settings: sharedAnalyzerSettings, logger: testLogger), cameras: try Self.cameras(cameras))
        return StageTestDriver(stage: stage, worker: "vigil-detect", outputs: [DetectStage.detectionsTopic, DetectStage.snapshotsTopic])
    }

    static func photo(_ name: String) throws -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: testMedia.appendingPathComponent(name).path) else {
            throw MissingTestMedia(path: testMedia.appendingPathComponent(name).path)
        }
        return [UInt8](data)
    }

    @Test("every frame gives one FrameDetections; a frame with a person gives a snapshot in which dlib and the cascades find no face")
    func detectionsAndRedactedSnapshot() async throws {
        let driver = try Self.driver(cameras: [Self.camera("cam-1")])
        let jpeg = try Self.photo("faces/obama.jpg")
        let original = try RGBImage(encoded: jpeg)
        let truth = try #require(try FaceAnnotations.load().images.first { $0.file == "obama.jpg" }).faces.map(\.pixelBox)
        #expect(!IndependentDetectorTests.annotatedFaces(in: original, truth: truth).isEmpty, "the independent detectors must see the face before redaction")

        try await driver.feed(try Self.input(Self.frame(camera: "cam-1", sequence: 7, jpeg: jpeg, atMilliseconds: Self.captureMilliseconds)))
        #expect(driver.outputs(topic: DetectStage.snapshotsTopic).isEmpty, "a snapshot waits for the second of frames after it")
        #expect(driver.committableOffset(topic: "frames.v1") == 0, "the waiting frame's offset is held")
        try await driver.feed(try Self.input(Self.frame(camera: "cam-1", sequence: 8, jpeg: jpeg, atMilliseconds: Self.captureMilliseconds + 1_000)))
        let detections = try driver.outputs(topic: DetectStage.detectionsTopic).map { try Vigil_V1_FrameDetections(serializedBytes: $0.value) }
        #expect(detections.count == 2)
        let first = try #require(detections.first)
        #expect(first.cameraID == "cam-1" && first.frameSequence == 7 && first.objects.contains { $0.classLabel == "person" })
        #expect(first.redactedRegionCount >= 1)
        #expect(first.hasMaskedPersonFraction && first.maskedPersonFraction >= 0.999, "every person's head region masked: \(first.maskedPersonFraction)")

        let snapshots = try driver.outputs(topic: DetectStage.snapshotsTopic).map { try Vigil_V1_Snapshot(serializedBytes: $0.value) }
        let snapshot = try #require(snapshots.first)
        #expect(snapshots.count == 1 && snapshot.snapshotID == "cam-1/\(Self.captureMilliseconds)" && snapshot.redactionPolicy.target == .faces)
        #expect(snapshot.maskedRegionCount >= first.redactedRegionCount && snapshot.maskedRegions.count == Int(snapshot.maskedRegionCount))
        #expect(snapshot.objects == first.objects)
        let published = try RGBImage(encoded: [UInt8](snapshot.redactedJpeg))
        #expect(published.width == original.width && published.height == original.height)
        #expect(IndependentDetectorTests.annotatedFaces(in: published, truth: truth).isEmpty, "a face is visible in the published snapshot")
    }

    /// `original`'s size, grey, with `original` shrunk to a third in the bottom left: a frame
    /// published (a person in it) with nothing where `original`'s person was — to the stage,
    /// that person missed by the detectors.
    static func personMovedAway(from original: RGBImage) -> RGBImage {
        var frame = RGBImage(width: original.width, height: original.height, pixels: [UInt8](repeating: 128, count: original.pixels.count))
        frame.paste(original.resized(width: original.width / 3, height: original.height / 3), x: 10, y: original.height - original.height / 3 - 10)
        return frame
    }

    static func pixels(_ box: Vigil_V1_BoundingBox, _ image: RGBImage) -> PixelBox {
        PixelBox(x0: box.xMin * Float(image.width), y0: box.yMin * Float(image.height), x1: box.xMax * Float(image.width), y1: box.yMax * Float(image.height))
    }

    @Test("look-ahead: a snapshot is published only once a second of frames after it is in, masked with what they found, carried back; its frame's offset is held until then")
    func faceFoundLateIsMaskedInTheFrameBefore() async throws {
        let driver = try Self.driver(cameras: [Self.camera("cam-1", snapshotsPerMinute: 600)])
        let jpeg = try Self.photo("faces/obama.jpg")
        let original = try RGBImage(encoded: jpeg)
        let face = try #require(try FaceAnnotations.load().images.first { $0.file == "obama.jpg" }?.faces.first).pixelBox
        // Frame 0: a small person in the bottom left, nothing yet where the face will be found
        // (to the stage: a face the detectors missed). Frames 1–5: the face is found there.
        let before = Self.personMovedAway(from: original)
        let frames = [try before.jpeg(quality: 95)] + Array(repeating: jpeg, count: 5)
        for (sequence, frame) in frames.enumerated() {
            try await driver.feed(try Self.input(Self.frame(camera: "cam-1", sequence: UInt64(sequence), jpeg: frame, atMilliseconds: Self.captureMilliseconds + Int64(sequence) * 200)))
            if sequence < 5 {
                #expect(driver.outputs(topic: DetectStage.snapshotsTopic).isEmpty, "published before its look-ahead (frame \(sequence))")
                #expect(driver.committableOffset(topic: "frames.v1") == 0, "frame 0's offset is held while its snapshot waits")
            }
        }
        let snapshots = try driver.outputs(topic: DetectStage.snapshotsTopic).map { try Vigil_V1_Snapshot(serializedBytes: $0.value) }
        #expect(snapshots.map(\.frameSequence) == [0])
        #expect(driver.committableOffset(topic: "frames.v1") == 1, "published: frame 0 is done; frame 1's snapshot now waits")
        let masks = try #require(snapshots.first).maskedRegions.map { Self.pixels($0, original) }
        #expect(PersonRecallTests.covered(face, by: masks) >= 0.7, "the face found a frame later is masked where it was")
    }

    @Test("a face the detector misses for a frame stays masked in that frame's snapshot: detect masks with its holds")
    func holdsMaskAMissedFace() async throws {
        let driver = try Self.driver(cameras: [Self.camera("cam-1", snapshotsPerMinute: 600)])
        let jpeg = try Self.photo("faces/obama.jpg")
        let face = try #require(try FaceAnnotations.load().images.first { $0.file == "obama.jpg" }?.faces.first).pixelBox
        // The next frame with the face gone from the detectors' view (grey where the person
        // was): what a miss looks like to the stage. The person, shrunk, stands in the bottom
        // left, far from the face, so the frame is published and nothing found in it covers
        // where the face was: only the hold can.
        let original = try RGBImage(encoded: jpeg)
        let missed = Self.personMovedAway(from: original)
        // Frame 1 is the miss; frames 2–6 its look-ahead (to 1.2 s).
        for (sequence, frame) in ([jpeg] + Array(repeating: try missed.jpeg(quality: 95), count: 6)).enumerated() {
            try await driver.feed(try Self.input(Self.frame(
                camera: "cam-1", sequence: UInt64(sequence), jpeg: frame, atMilliseconds: Self.captureMilliseconds + Int64(sequence) * 200
            )))
        }
        let snapshots = try driver.outputs(topic: DetectStage.snapshotsTopic).map { try Vigil_V1_Snapshot(serializedBytes: $0.value) }
        #expect(snapshots.map(\.frameSequence) == [0, 1])
        let second = try #require(snapshots.last)
        let published = try RGBImage(encoded: [UInt8](second.redactedJpeg))
        // Masked where the face was last seen: black, not the grey of the frame itself.
        let centre = published.cropped(to: PixelBox(x0: face.x0 + face.width * 0.3, y0: face.y0 + face.height * 0.3, x1: face.x1 - face.width * 0.3, y1: face.y1 - face.height * 0.3)).pixels
        #expect((centre.max() ?? 255) <= 40, "the held face region is masked in the frame where the detector missed it (brightest \(centre.max() ?? 0))")
        // By the hold itself: frame 0's face mask is among frame 1's masks.
        let first = try #require(snapshots.first)
        let faceMask = try #require(first.maskedRegions.first { Self.pixels($0, published).intersectionOverUnion(face) >= 0.4 })
        #expect(second.maskedRegions.contains { Self.pixels($0, published).intersectionOverUnion(Self.pixels(faceMask, published)) >= 0.9 }, "the held face mask")
    }

    @Test("a person tracked but missed by the detector for longer than the holds last keeps the head masked where the track has them")
    func trackedPersonsHeadMasked() async throws {
        let driver = try Self.driver(cameras: [Self.camera("cam-1", snapshotsPerMinute: 600)])
        let jpeg = try Self.photo("faces/obama.jpg")
        let original = try RGBImage(encoded: jpeg)
        let face = try #require(try FaceAnnotations.load().images.first { $0.file == "obama.jpg" }?.faces.first).pixelBox
        // The person gone from where they were (grey), another one small in the bottom left, so
        // every frame is published: to the stage, the detector missing the person.
        let missed = Self.personMovedAway(from: original)
        let missedJPEG = try missed.jpeg(quality: 95)
        // Seen twice (a confirmed track), then missed 7 frames: the holds (5 frames) are over,
        // the track (kept 10 missed frames) is not.
        let frames = [jpeg, jpeg] + Array(repeating: missedJPEG, count: 12)  // frame 8's look-ahead: to frame 13
        for (sequence, frame) in frames.enumerated() {
            try await driver.feed(try Self.input(Self.frame(
                camera: "cam-1", sequence: UInt64(sequence), jpeg: frame, atMilliseconds: Self.captureMilliseconds + Int64(sequence) * 200
            )))
        }
        let snapshots = try driver.outputs(topic: DetectStage.snapshotsTopic).map { try Vigil_V1_Snapshot(serializedBytes: $0.value) }
        let last = try #require(snapshots.last { $0.frameSequence == 8 })
        let published = try RGBImage(encoded: [UInt8](last.redactedJpeg))
        let centre = published.cropped(to: PixelBox(x0: face.x0 + face.width * 0.3, y0: face.y0 + face.height * 0.3, x1: face.x1 - face.width * 0.3, y1: face.y1 - face.height * 0.3)).pixels
        #expect((centre.max() ?? 255) <= 40, "the tracked person's head is masked in the 7th frame the detector missed them (brightest \(centre.max() ?? 0))")
    }

    @Test("a frame captured under faces-only redaction, analysed once the camera masks whole persons, is published with whole persons masked")
    func strongerOfCaptureTimeAndCurrentRedaction() async throws {
        let admins = LocalAdmins()
        let table = admins.table()
        try admins.apply(Self.camera("cam-1", target: .faces), to: table, effectiveMilliseconds: Self.captureMilliseconds - 60_000)
        try admins.apply(Self.camera("cam-1", target: .wholePersons), to: table, effectiveMilliseconds: Self.captureMilliseconds + 60_000)
        let stage = DetectStage(analyzer: try FrameAnalyzer(settings: sharedAnalyzerSettings, logger: testLogger), cameras: table)
        let driver = StageTestDriver(stage: stage, worker: "vigil-detect", outputs: [DetectStage.detectionsTopic, DetectStage.snapshotsTopic])
        for sequence in [1, 2] {
            let frame = Self.frame(camera: "cam-1", sequence: UInt64(sequence), jpeg: try Self.photo("faces/obama.jpg"), atMilliseconds: Self.captureMilliseconds + Int64(sequence - 1) * 1_000)
            try await driver.feed(try Self.input(frame))
        }
        let snapshot = try #require(try driver.outputs(topic: DetectStage.snapshotsTopic).map { try Vigil_V1_Snapshot(serializedBytes: $0.value) }.first)
        #expect(snapshot.redactionPolicy.target == .wholePersons)
        let person = try #require(snapshot.objects.first { $0.classLabel == "person" }).box
        #expect(snapshot.maskedRegions.contains { $0.xMin <= person.xMin && $0.yMin <= person.yMin && $0.xMax >= person.xMax && $0.yMax >= person.yMax }, "the person is masked whole")
    }

    @Test("snapshots follow the camera's rate in capture time; frames without objects give detections but no snapshot")
    func snapshotPacing() async throws {
        let driver = try Self.driver(cameras: [Self.camera("cam-1", snapshotsPerMinute: 30)])
        let person = try Self.photo("faces/obama.jpg")
        let empty = try RGBImage(width: 320, height: 240, pixels: [UInt8](repeating: 90, count: 320 * 240 * 3)).jpeg(quality: 90)
        // 30 a minute = one per 2 s: frames at 0, 0.5, 1.0, 2.0, 2.5, 3.0 s give snapshots at 0
        // and 2.0 s, each published once a second of frames after it is in (at 1.0 and 3.0 s).
        for (sequence, offset) in [0, 500, 1_000, 2_000, 2_500, 3_000].enumerated() {
            try await driver.feed(try Self.input(Self.frame(camera: "cam-1", sequence: UInt64(sequence), jpeg: person, atMilliseconds: Self.captureMilliseconds + Int64(offset))))
        }
        try await driver.feed(try Self.input(Self.frame(camera: "cam-1", sequence: 9, jpeg: empty, atMilliseconds: Self.captureMilliseconds + 60_000)))
        let snapshots = try driver.outputs(topic: DetectStage.snapshotsTopic).map { try Vigil_V1_Snapshot(serializedBytes: $0.value) }
        #expect(snapshots.map(\.frameSequence) == [0, 3])
        let detections = try driver.outputs(topic: DetectStage.detectionsTopic).map { try Vigil_V1_FrameDetections(serializedBytes: $0.value) }
        #expect(detections.map(\.frameSequence) == [0, 1, 2, 3, 4, 5, 9])
        #expect(detections.last?.objects.isEmpty == true)
    }

    @Test("bad frames are dead-lettered with the reason and the stream continues: corrupt pixels, zero size, not a Frame, unknown camera, key mismatch")
    func badFramesAreDeadLettered() async throws {
        let driver = try Self.driver(cameras: [Self.camera("cam-1")])
        let good = try RGBImage(width: 64, height: 48, pixels: [UInt8](repeating: 200, count: 64 * 48 * 3)).jpeg(quality: 90)
        var corrupt = Self.frame(camera: "cam-1", sequence: 1, jpeg: Array(good.prefix(40)) + [UInt8](repeating: 0x55, count: 300), atMilliseconds: Self.captureMilliseconds)
        var zeroSize = Self.frame(camera: "cam-1", sequence: 2, jpeg: [], atMilliseconds: Self.captureMilliseconds)
        zeroSize.pixelFormat = .rgb24
        var wrongSize = Self.frame(camera: "cam-1", sequence: 3, jpeg: [UInt8](repeating: 0, count: 100), atMilliseconds: Self.captureMilliseconds)
        wrongSize.pixelFormat = .rgb24
        wrongSize.width = 64
        wrongSize.height = 48
        let unknownCamera = Self.frame(camera: "cam-unknown", sequence: 4, jpeg: good, atMilliseconds: Self.captureMilliseconds)
        corrupt.keyframeOnly = false
        let cases: [(StageInput, String)] = [
            (try Self.input(corrupt), "cannot be read"),
            (try Self.input(zeroSize), "has no pixels"),
            (try Self.input(wrongSize), "needs 9216"),
            (StageInput(topic: "frames.v1", key: Array("cam-1".utf8), value: [0xFF, 0x01, 0x02]), "not a vigil.v1.Frame"),
            (try Self.input(unknownCamera), "is not in cameras.v1 at the record's capture time"),
            (try Self.input(Self.frame(camera: "cam-1", sequence: 5, jpeg: good, atMilliseconds: Self.captureMilliseconds), key: "cam-2"), "the record's key is cam-2"),
        ]
        for (input, _) in cases { try await driver.feed(input) }
        try await driver.feed(try Self.input(Self.frame(camera: "cam-1", sequence: 6, jpeg: good, atMilliseconds: Self.captureMilliseconds)))

        #expect(driver.deadLetters.count == cases.count)
        for (letter, (input, reason)) in zip(driver.deadLetters, cases) {
            #expect(letter.topic == "frames.v1.dlq")
            // Metadata and the reason, never pixels: a readable frame loses its data, an unreadable record its value.
            let kept = try? Vigil_V1_Frame(serializedBytes: letter.value)
            #expect(kept?.data.isEmpty ?? letter.value.isEmpty, "a dead letter of frames.v1 carries pixels (\(reason))")
            if let original = try? Vigil_V1_Frame(serializedBytes: input.value), !original.data.isEmpty {
                #expect(kept?.sequence == original.sequence && kept?.cameraID == original.cameraID, "the frame's metadata is kept")
                #expect(letter.header(RecordHeaders.pixelsRemovedFrom).map { String(decoding: $0, as: UTF8.self) } == String(input.value.count))
            }
            let error = letter.header("vigil-dlq-error").map { String(decoding: $0, as: UTF8.self) } ?? ""
            #expect(error.contains(reason), "dead letter says \(error), expected \(reason)")
        }
        // The stream continues: the good frame after them is analysed.
        let detections = try driver.outputs(topic: DetectStage.detectionsTopic).map { try Vigil_V1_FrameDetections(serializedBytes: $0.value) }
        #expect(detections.map(\.frameSequence) == [6])
    }

    @Test("inference runs on detect's own thread, not one of the cooperative threads the runtime's delivery tasks need")
    func ownThread() throws {
        let stage = DetectStage(analyzer: try FrameAnalyzer(settings: sharedAnalyzerSettings, logger: testLogger), cameras: try Self.cameras([]))
        #expect(stage.executor is StageThread)
    }

    @Test("a dead-lettered frame keeps its pixels only while the configurations of its capture time and of now both keep them (a two-admin switch)")
    func pixelsInDeadLettersOnlyWhereSwitchedOn() async throws {
        let admins = LocalAdmins()
        let table = admins.table()
        var keeping = Self.camera("cam-1")
        keeping.keepPixelsInDeadLetters = true
        try admins.apply(Self.camera("cam-1"), to: table, effectiveMilliseconds: Self.captureMilliseconds - 60_000)
        try admins.apply(keeping, to: table, effectiveMilliseconds: Self.captureMilliseconds)
        let stage = DetectStage(analyzer: try FrameAnalyzer(settings: sharedAnalyzerSettings, logger: testLogger), cameras: table)
        let driver = StageTestDriver(stage: stage, worker: "vigil-detect", outputs: [DetectStage.detectionsTopic, DetectStage.snapshotsTopic])
        let unreadable = [UInt8](repeating: 0x55, count: 300)
        let before = try Self.input(Self.frame(camera: "cam-1", sequence: 1, jpeg: unreadable, atMilliseconds: Self.captureMilliseconds - 1_000))
        let after = try Self.input(Self.frame(camera: "cam-1", sequence: 2, jpeg: unreadable, atMilliseconds: Self.captureMilliseconds + 1_000))
        try await driver.feed(before)
        try await driver.feed(after)
        // Switched off again: a frame captured while it was on loses its pixels too.
        try admins.apply(Self.camera("cam-1"), to: table, effectiveMilliseconds: Self.captureMilliseconds + 60_000)
        try await driver.feed(after)
        let letters = driver.deadLetters
        try #require(letters.count == 3)
        func pixels(_ letter: StageOutput) throws -> Int { try Vigil_V1_Frame(serializedBytes: letter.value).data.count }
        #expect(try pixels(letters[0]) == 0 && letters[0].header(RecordHeaders.pixelsRemovedFrom) != nil, "captured before the switch")
        #expect(letters[1].value == after.value && letters[1].header(RecordHeaders.pixelsRemovedFrom) == nil, "captured and dead-lettered while it is on")
        #expect(try pixels(letters[2]) == 0, "dead-lettered after it was switched off")
    }

    @Test("a missing or altered model stops detect at start-up with an error naming the file and Scripts/fetch-models")
    func missingModelIsAClearError() throws {
        let copy = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-detect-models-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: copy, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: copy) }
        for name in ["manifest.json", "pose_detection.tflite"] {
            try FileManager.default.copyItem(atPath: "\(modelsDirectory)/\(name)", toPath: copy.appendingPathComponent(name).path)
        }
        #expect {
            _ = try FrameAnalyzer(settings: DetectSettings(modelsDirectory: copy.path), logger: testLogger)
        } throws: { error in
            let message = "\(error)"
            return message.contains("centerface.onnx") && message.contains("Scripts/fetch-models") && message.contains("missing")
        }
        // Altered: same size, one byte changed.
        var bytes = try Data(contentsOf: URL(fileURLWithPath: "\(modelsDirectory)/centerface.onnx"))
        bytes[bytes.count / 2] ^= 0xFF
        try bytes.write(to: copy.appendingPathComponent("centerface.onnx"))
        #expect {
            _ = try FrameAnalyzer(settings: DetectSettings(modelsDirectory: copy.path), logger: testLogger)
        } throws: { error in
            "\(error)".contains("centerface.onnx") && "\(error)".contains("altered")
        }
    }
}
