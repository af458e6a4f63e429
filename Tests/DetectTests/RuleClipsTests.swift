import ChildProcesses
import Foundation
import Match
import Rules
import SwiftProtobuf
import Testing
import VigilSchema
import Vision
@testable import Detect

/// Real video for the person-down and abandoned-object rules: the two clips
/// Scripts/make-rule-clips composites from vtest.avi (a woman who stands on the lawn, then lies
/// there; a box left on the pavement), through detect as vigil-detect runs it, then through
/// vigil-match. Judged against what was seen in the clips by eye (`rule-clips.json`), never
/// against a detector.
@Suite("Rule clips: a person lying, a box left behind", .serialized)
struct RuleClipsTests {
    struct Truth: Decodable {
        /// Frames `fromFrame...untilFrame` of a clip (10 frames/s), and where, normalized.
        struct Span: Decodable {
            var fromFrame: Int
            var untilFrame: Int
            var box: [Float]?

            var frames: ClosedRange<Int> { fromFrame...untilFrame }
        }

        struct PersonDown: Decodable {
            var file: String
            var camera: String
            var frames: Int
            var width: Float
            var height: Float
            var standing: Span
            var lying: Span
        }

        struct AbandonedObject: Decodable {
            var file: String
            var camera: String
            var frames: Int
            var width: Float
            var height: Float
            var appearsFrame: Int
            var box: [Float]
            var clearance: Float
            var peopleWithin: [Span]
            var nobodyWithin: [Span]
        }

        var personDown: PersonDown
        var abandonedObject: AbandonedObject

        static func load() throws -> Truth {
            let decoder = JSONDecoder()
            decoder.keyDecodingStrategy = .convertFromSnakeCase
            return try decoder.decode(Truth.self, from: Data(contentsOf: fixtures.appendingPathComponent("rule-clips.json")))
        }
    }

    static let clips = repositoryRoot.appendingPathComponent(".vigil/rule-clips")
    static let frameMilliseconds: Int64 = 100  // the clips' 10 frames/s
    /// The person-down clip is analysed at 5 frames/s, as the demo's street camera; the
    /// abandoned-object clip at 10, every frame: detect's static-foreground model learns the
    /// scene for 200 frames, which at 5 frames/s is 40 s, longer than the box is there.
    static let personDownStep = 2
    static let abandonedObjectStep = 1

    /// What detect publishes for every `step`-th frame of a clip (made first where missing).
    static func analyzed(_ file: String, camera: String, frames: Int, step: Int) throws -> [Vigil_V1_FrameDetections] {
        let make = try ChildProcess.run(repositoryRoot.appendingPathComponent("Scripts/make-rule-clips").path, [clips.path], standardError: .lines)
        #expect(make.termination == .exited(0), "Scripts/make-rule-clips: \(make.errorOutput)")
        return try TrackingTests.analyzedFrames(
            of: clips.appendingPathComponent(file).path, camera: camera, select: "not(mod(n\\,\(step)))",
            expecting: (frames + step - 1) / step, spacing: Int64(step) * frameMilliseconds
        )
    }

    // Analysed once for both tests: the models run on 575 frames.
    static let personDownFrames = Result {
        let truth = try Truth.load().personDown
        return try analyzed(truth.file, camera: truth.camera, frames: truth.frames, step: personDownStep)
    }

    static let abandonedObjectFrames = Result {
        let truth = try Truth.load().abandonedObject
        return try analyzed(truth.file, camera: truth.camera, frames: truth.frames, step: abandonedObjectStep)
    }

    /// A normalized box in a clip's pixels.
    static func pixels(_ box: [Float], _ width: Float, _ height: Float) -> PixelBox {
        PixelBox(x0: box[0] * width, y0: box[1] * height, x1: box[2] * width, y1: box[3] * height)
    }

    static func pixels(_ box: Vigil_V1_BoundingBox, _ width: Float, _ height: Float) -> PixelBox {
        pixels([box.xMin, box.yMin, box.xMax, box.yMax], width, height)
    }

    /// The person detect publishes over `truth` (best IoU, at least `matchIoU`; IoU is the same
    /// in pixels and in normalized coordinates).
    static func person(over truth: [Float], in frame: Vigil_V1_FrameDetections) -> Vigil_V1_DetectedObject? {
        let box = pixels(truth, 1, 1)
        let iou = { (object: Vigil_V1_DetectedObject) in pixels(object.box, 1, 1).intersectionOverUnion(box) }
        return frame.objects.filter { $0.classLabel == "person" && iou($0) >= matchIoU }.max { iou($0) < iou($1) }
    }

    /// Seconds into a clip of an event time.
    static func seconds(_ timestamp: Google_Protobuf_Timestamp) -> Double {
        Double(timestamp.milliseconds - DetectStageTests.captureMilliseconds) / 1000
    }

    static func name(_ posture: Vigil_V1_Posture?) -> String {
        guard let posture else { return "missed" }
        return switch posture {
        case .upright: "upright"
        case .lying: "lying"
        case .unknown: "unknown"
        default: "not assessed"
        }
    }

    static func percent(_ part: Int, of whole: Int) -> String {
        "\(part)/\(whole) (\(whole > 0 ? 100 * part / whole : 0) %)"
    }

    @Test("person down in detect: the woman found lying while she lies on the lawn, upright while she stands, and nobody else lying for 3 s", .enabled(if: FileManager.default.fileExists(atPath: TrackingTests.video)))
    func lyingInDetect() throws {
        let truth = try Truth.load().personDown
        let frames = try Self.personDownFrames.get()
        let lyingBox = try #require(truth.lying.box), standingBox = try #require(truth.standing.box)
        var whileLying: [String: Int] = [:], whileStanding: [String: Int] = [:]
        var lyingFrames: [Int] = [], tracks: Set<UInt64> = [], firstTracked: Int?, lyingElsewhere: [Int] = []
        // Others called lying: per track, since when it has been lying without being seen upright
        // (as a person-down rule would follow it), and the longest such stretch.
        var othersLyingSince: [UInt64: Int] = [:], othersLongest = (frames: 0, from: 0)
        for (index, frame) in frames.enumerated() {
            let clipFrame = index * Self.personDownStep
            let her: Vigil_V1_DetectedObject?
            if truth.lying.frames.contains(clipFrame) {
                her = Self.person(over: lyingBox, in: frame)
                whileLying[Self.name(her?.posture), default: 0] += 1
                if let her, her.posture == .lying {
                    lyingFrames.append(clipFrame)
                    if her.trackID != 0 {
                        tracks.insert(her.trackID)
                        firstTracked = firstTracked ?? clipFrame
                    }
                }
            } else if truth.standing.frames.contains(clipFrame) {
                her = Self.person(over: standingBox, in: frame)
                whileStanding[Self.name(her?.posture), default: 0] += 1
            } else {
                her = nil
            }
            let others = frame.objects.filter { $0.classLabel == "person" && $0 != her }
            if others.contains(where: { $0.posture == .lying }) { lyingElsewhere.append(clipFrame) }
            for other in others where other.trackID != 0 {
                if other.posture == .upright { othersLyingSince[other.trackID] = nil }
                guard other.posture == .lying else { continue }
                let since = othersLyingSince[other.trackID] ?? clipFrame
                othersLyingSince[other.trackID] = since
                if clipFrame - since > othersLongest.frames { othersLongest = (clipFrame - since, since) }
            }
        }
        let sampled = { (span: Truth.Span) in span.frames.filter { $0 % Self.personDownStep == 0 }.count }
        // The longest run of sampled frames in a row in which she is found lying.
        var run = 0, longest = 0, previous = Int.min
        for frame in lyingFrames {
            run = frame == previous + Self.personDownStep ? run + 1 : 1
            longest = max(longest, run)
            previous = frame
        }
        print("""
        person-down clip through detect (5 frames/s): while she lies (frames \(truth.lying.fromFrame)–\(truth.lying.untilFrame)) \
        found lying on \(Self.percent(lyingFrames.count, of: sampled(truth.lying))) frames, postures \(whileLying); \
        first found lying on frame \(lyingFrames.first ?? -1) (\(Double(lyingFrames.first ?? -1) / 10) s); \
        longest run \(longest) frames (\(Double(longest * Self.personDownStep) / 10) s); on \(tracks.count) confirmed track(s), from frame \(firstTracked ?? -1); \
        while she stands (frames \(truth.standing.fromFrame)–\(truth.standing.untilFrame)) \(whileStanding); \
        frames with anyone else called lying: \(lyingElsewhere), the longest a track of theirs was lying without being seen upright \
        in between: \(Double(othersLongest.frames) / 10) s (from frame \(othersLongest.from))
        """)
        // Measured when this was written: lying on 50 of 50 frames (one track, confirmed on her
        // second lying frame), upright on 25 of 25 while she stands; people on the path called lying
        // now and then (24 frames), one track at most 0.8 s without being seen upright in between.
        // Floors under that: a drop is a regression.
        #expect(Float(lyingFrames.count) / Float(sampled(truth.lying)) >= 0.9, "found lying while she lies")
        #expect(whileStanding["upright", default: 0] * 10 >= sampled(truth.standing) * 9, "upright while she stands")
        #expect(whileStanding["lying", default: 0] == 0, "not lying while she stands")
        #expect(othersLongest.frames < 30, "nobody else lying for the 3 s of the fall rule")
    }

    @Test("abandoned object in detect: a static region over the box soon after it appears, staying to the end; none there before", .enabled(if: FileManager.default.fileExists(atPath: TrackingTests.video)))
    func staticBoxInDetect() throws {
        let truth = try Truth.load().abandonedObject
        let frames = try Self.abandonedObjectFrames.get()
        let (width, height) = (truth.width, truth.height)
        let box = Self.pixels(truth.box, width, height)
        // The box grown by the clearance, a fraction of the frame, on every side.
        let near = Self.pixels(truth.box.enumerated().map { $0 < 2 ? $1 - truth.clearance : $1 + truth.clearance }, width, height)
        var covering: [Int] = [], elsewhere = 0, elsewhereRun = 0, elsewhereLongest = 0, widest: Float = 0
        var seenNear = 0, annotatedNear = 0, falseNear: [Int] = [], annotatedQuiet = 0
        for (clipFrame, frame) in frames.enumerated() {
            let regions = frame.staticRegions.map { Self.pixels($0, width, height) }
            if let over = regions.filter({ $0.coverage(of: box) >= 0.5 }).max(by: { $0.area < $1.area }) {
                covering.append(clipFrame)
                widest = max(widest, over.width)
            }
            let others = regions.filter { $0.intersection(box) == 0 }.count
            elsewhere += others
            elsewhereRun = others > 0 ? elsewhereRun + 1 : 0
            elsewhereLongest = max(elsewhereLongest, elsewhereRun)
            // Persons detect reports within the clearance: what the rule will know of passers-by.
            let personNear = frame.objects.contains { $0.classLabel == "person" && Self.pixels($0.box, width, height).intersection(near) > 0 }
            if truth.peopleWithin.contains(where: { $0.frames.contains(clipFrame) }) {
                annotatedNear += 1
                if personNear { seenNear += 1 }
            } else if truth.nobodyWithin.contains(where: { $0.frames.contains(clipFrame) }) {
                annotatedQuiet += 1
                if personNear { falseNear.append(clipFrame) }
            }
        }
        let first = covering.first { $0 >= truth.appearsFrame }
        let afterFirst = first.map { first in covering.filter { $0 >= first }.count } ?? 0
        let stretch = first.map { truth.frames - $0 } ?? 0
        print("""
        abandoned-object clip through detect (10 frames/s): the box appears on frame \(truth.appearsFrame) (\(Double(truth.appearsFrame) / 10) s); \
        a static region covers it from frame \(first ?? -1) (\(first.map { "\(Double($0 - truth.appearsFrame) / 10) s after it appeared" } ?? "never")) \
        on \(Self.percent(afterFirst, of: stretch)) of the frames from then to the end, widest \(Int(widest)) px (the box is \(Int(box.width)) px); \
        before it appeared: \(covering.filter { $0 < truth.appearsFrame }.count) frames; static regions elsewhere: \(elsewhere) over \(frames.count) frames, \
        at most \(elsewhereLongest) frames in a row; \
        a person within \(truth.clearance) found on \(Self.percent(seenNear, of: annotatedNear)) frames where someone passes within it, \
        and on \(falseNear.count) of \(annotatedQuiet) frames where nobody does (frames \(falseNear))
        """)
        // Measured when this was written: static from frame 230, 3.0 s after the box appeared,
        // on every frame to the end, at most 36 px wide; static regions elsewhere for at most
        // 2 s in a row; a person within the clearance on 58 of the 64 frames someone passes, and
        // on 12 of 186 where nobody does (11 of them within 0.3 s of a pass: detect's boxes are
        // wider than the people). Floors under that.
        #expect(covering.allSatisfy { $0 >= truth.appearsFrame }, "nothing static there before the box")
        let appeared = try #require(first, "a static region over the box")
        #expect(appeared - truth.appearsFrame <= 50, "static within 5 s of appearing")
        #expect(afterFirst * 100 >= stretch * 95, "and from then to the end")
        #expect(widest <= 2 * box.width, "a region about the box, not half the pavement")
        #expect(elsewhereLongest < 100, "nothing else static for the 10 s of the abandoned-object rule")
        #expect(seenNear * 10 >= annotatedNear * 8, "people passing near it found near it")
    }

    static let rulesYAML = """
    rules:
      fall:
        cameras: [clip-1]
        kind: person_down
        lying_for: 3s
        purpose: Someone fell in the yard
      left-bag:
        cameras: [clip-2]
        kind: abandoned_object
        stationary_for: 10s
        clearance: 0.1
        purpose: Unattended item on the path

    """

    /// Rule level: until vigil-match knows `person_down` and `abandoned_object`,
    /// `RulesFile.parse` rejects these rules and this test fails at its first line.
    @Test("rules on the clips: one person_down 3 s after she lies down, one abandoned_object after the box stood 10 s with nobody near; none sooner", .enabled(if: FileManager.default.fileExists(atPath: TrackingTests.video)))
    func rulesOnClips() async throws {
        let truth = try Truth.load()
        let fallRules = try RulesOnVideoTests.ruleBook(yaml: Self.rulesYAML, file: "rule-clips.yaml")
        let bagRules = try RulesOnVideoTests.ruleBook(yaml: Self.rulesYAML, file: "rule-clips.yaml")
        let fallIncidents = try await RulesOnVideoTests.incidents(of: Self.personDownFrames.get(), camera: truth.personDown.camera, rules: fallRules)
        let bagIncidents = try await RulesOnVideoTests.incidents(of: Self.abandonedObjectFrames.get(), camera: truth.abandonedObject.camera, rules: bagRules)
        let opened = { (incidents: [Vigil_V1_Incident], rule: String) in
            incidents.filter { $0.ruleID == rule && $0.state == .opened }.sorted { $0.keyFrameTime.milliseconds < $1.keyFrameTime.milliseconds }
        }
        let falls = opened(fallIncidents, "fall"), bags = opened(bagIncidents, "left-bag")
        let describe = { (incidents: [Vigil_V1_Incident]) in
            incidents.map { incident in
                let boxes = incident.keyObjects.map { String(format: "[%.2f %.2f %.2f %.2f]", $0.box.xMin, $0.box.yMin, $0.box.xMax, $0.box.yMax) }
                return String(format: "opened at %.1f s (window from %.1f s) over %@", Self.seconds(incident.keyFrameTime), Self.seconds(incident.windowStart), boxes.joined(separator: ", "))
            }
        }
        // Due by eye: 3 s after she lay down; 10 s into the first stretch after the box appeared
        // in which nobody came within the clearance for 10 s, and before that stretch ends.
        let lyingFrom = Double(truth.personDown.lying.fromFrame) / 10
        let quiet = try #require(truth.abandonedObject.nobodyWithin.first { $0.fromFrame >= truth.abandonedObject.appearsFrame && $0.frames.count >= 100 })
        let (unattendedFrom, unattendedUntil) = (Double(quiet.fromFrame) / 10, Double(quiet.untilFrame + 1) / 10)
        print("""
        rules on the clips: fall \(describe(falls)) — by eye she lies from \(lyingFrom) s to \(Double(truth.personDown.lying.untilFrame + 1) / 10) s, \
        so due at \(lyingFrom + 3) s; left-bag \(describe(bags)) — by eye the box is there from \(Double(truth.abandonedObject.appearsFrame) / 10) s \
        and nobody within \(truth.abandonedObject.clearance) of it from \(unattendedFrom) s to \(unattendedUntil) s, so due at \(unattendedFrom + 10) s; \
        other incidents: \(fallIncidents.filter { $0.ruleID != "fall" }.count + bagIncidents.filter { $0.ruleID != "left-bag" }.count)
        """)
        // None sooner than the rules allow, whatever detect misses: a fall before she lay 3 s,
        // or a box reported while people were still passing near it (a rule that ignores the
        // clearance fires about a second sooner, 10 s after the static region appeared).
        #expect(falls.allSatisfy { Self.seconds($0.keyFrameTime) >= lyingFrom + 3 - 0.05 }, "a fall before she lay 3 s")
        #expect(bags.allSatisfy { Self.seconds($0.keyFrameTime) >= unattendedFrom + 10 - 0.05 }, "an abandoned object before it was 10 s with nobody near")
        #expect(fallIncidents.allSatisfy { $0.ruleID == "fall" } && bagIncidents.allSatisfy { $0.ruleID == "left-bag" }, "each rule only on its camera")
        // One each, given what detect gave when this was written (lyingInDetect: her lying on
        // every frame from 8.0 s on one track from 8.2 s, nobody else lying 3 s;
        // staticBoxInDetect: the box static within a few seconds, people seen near it as
        // annotated): the fall within a second of being due (her track is confirmed a frame or
        // two after she appears), the box within the stretch with nobody near.
        #expect(falls.count == 1, "one person down")
        if let fall = falls.first { #expect(Self.seconds(fall.keyFrameTime) <= lyingFrom + 3 + 1, "the fall on time") }
        #expect(bags.count == 1, "one abandoned object")
        if let bag = bags.first { #expect(Self.seconds(bag.keyFrameTime) <= unattendedUntil, "the box reported while nobody is near") }
    }
}
