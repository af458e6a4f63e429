import DeclarationFiles
import Foundation
import SwiftProtobuf
import Testing
import VigilSchema
import WorkerRuntime
@testable import Cameras

@Suite("Camera changes: diff, republishing and the privacy check")
struct CameraPlanTests {
    static func camera(
        _ id: String, masks: [String: [(Float, Float)]] = [:], target: Vigil_V1_RedactionTarget = .wholePersons, fps: Double = 2, maskedClasses: [String] = []
    ) -> Vigil_V1_CameraConfig {
        var config = Vigil_V1_CameraConfig()
        config.redactionPolicy.maskedClasses = maskedClasses
        config.cameraID = id
        config.sourceURL = "/media/\(id).mp4"
        config.sampling.framesPerSecond = fps
        config.redactionPolicy.target = target
        config.redactionPolicy.fill = .solid
        config.privacyMasks = masks.keys.sorted().map { name in
            var mask = Vigil_V1_PrivacyMask()
            mask.maskID = name
            mask.area.vertices = masks[name]!.map { x, y in
                var point = Vigil_V1_Point()
                point.x = x
                point.y = y
                return point
            }
            return mask
        }
        return config
    }

    static let square: [(Float, Float)] = [(0.2, 0.2), (0.6, 0.2), (0.6, 0.6), (0.2, 0.6)]

    static func stored(_ config: Vigil_V1_CameraConfig, version: UInt64 = 3, at effective: Int64 = 1_000) -> StoredCamera {
        var config = config
        config.version = version
        config.updatedBy = "alice"
        return StoredCamera(config: config, effectiveMilliseconds: effective)
    }

    static func plan(_ old: Vigil_V1_CameraConfig, _ new: Vigil_V1_CameraConfig) -> CameraPlan.Entry {
        CameraPlan(current: [old.cameraID: stored(old)], desired: [new], deleteMissing: false, actor: "bob", now: 5_000).entries[0]
    }

    @Test("an unchanged camera is republished exactly as stored: same version, same effective time")
    func unchangedIsRepublishedAsStored() {
        let config = Self.camera("c1")
        let entry = Self.plan(config, config)
        #expect(entry.kind == .unchanged)
        #expect(entry.publish == Self.stored(config).config)
        #expect(entry.effectiveMilliseconds == 1_000)
    }

    @Test("a change gets the next version, the actor, and takes effect now; a new camera starts at version 1")
    func changedAndAdded() {
        let entry = Self.plan(Self.camera("c1"), Self.camera("c1", fps: 5))
        #expect(entry.kind == .changed)
        #expect(entry.differences == ["sampling: 2 fps → 5 fps"])
        #expect(entry.publish?.version == 4 && entry.publish?.updatedBy == "bob" && entry.effectiveMilliseconds == 5_000)
        let added = CameraPlan(current: [:], desired: [Self.camera("c2")], deleteMissing: false, actor: "bob", now: 5_000).entries[0]
        #expect(added.kind == .added && added.publish?.version == 1)
    }

    @Test("cameras missing from the file are kept unless removal is asked for")
    func missingCameras() {
        let current = ["c1": Self.stored(Self.camera("c1"))]
        #expect(CameraPlan(current: current, desired: [], deleteMissing: false, actor: "bob", now: 5_000).entries.map(\.kind) == [.notInFile])
        let removal = CameraPlan(current: current, desired: [], deleteMissing: true, actor: "bob", now: 5_000).entries[0]
        #expect(removal.kind == .removed && removal.publish == nil && removal.effectiveMilliseconds == 5_000)
        #expect(removal.privacyReductions.isEmpty, "no longer watching a camera does not reduce privacy")
    }

    @Test("removing, shrinking or moving a mask, or weakening whole-person redaction to faces, reduces privacy")
    func privacyReducingChanges() {
        let masked = Self.camera("c1", masks: ["window": Self.square])
        #expect(Self.plan(masked, Self.camera("c1")).privacyReductions == ["removes privacy mask window"])
        let smaller: [(Float, Float)] = [(0.25, 0.2), (0.6, 0.2), (0.6, 0.6), (0.25, 0.6)]
        #expect(Self.plan(masked, Self.camera("c1", masks: ["window": smaller])).privacyReductions.count == 1)
        let moved = Self.square.map { ($0.0 + 0.1, $0.1) }
        #expect(Self.plan(masked, Self.camera("c1", masks: ["window": moved])).privacyReductions.count == 1)
        #expect(Self.plan(Self.camera("c1"), Self.camera("c1", target: .faces)).privacyReductions == ["switches redaction from whole persons to faces only"])
        #expect(
            Self.plan(Self.camera("c1", maskedClasses: ["vehicle", "bicycle"]), Self.camera("c1", maskedClasses: ["bicycle"])).privacyReductions
                == ["stops masking vehicle objects"]
        )
    }

    @Test("what lowers redaction recall needs two admins too: a mosaic fill, a lower working resolution, motion gating, a new source under the old masks, pixels kept in dead letters")
    func recallLoweringChanges() {
        let masked = Self.camera("c1", masks: ["window": Self.square])
        var mosaic = masked
        mosaic.redactionPolicy.fill = .coarseMosaic
        #expect(Self.plan(masked, mosaic).privacyReductions == ["switches the fill from solid to a coarse mosaic"])
        #expect(Self.plan(mosaic, masked).privacyReductions.isEmpty, "back to solid masks more")
        var fullHD = masked
        fullHD.workingResolution = .with { $0.width = 1920; $0.height = 1080 }
        var small = masked
        small.workingResolution = .with { $0.width = 640; $0.height = 360 }
        #expect(Self.plan(fullHD, small).privacyReductions == ["lowers the working resolution from 1920x1080 to 640x360, so small faces are found less often"])
        #expect(Self.plan(masked, small).privacyReductions.count == 1, "from the stream's own resolution to a set one")
        #expect(Self.plan(small, fullHD).privacyReductions.isEmpty && Self.plan(small, masked).privacyReductions.isEmpty)
        var gated = masked
        gated.motionGating = true
        #expect(Self.plan(masked, gated).privacyReductions == ["turns motion gating on, so the models skip frames and tiles"])
        #expect(Self.plan(gated, masked).privacyReductions.isEmpty)
        var keeping = masked
        keeping.keepPixelsInDeadLetters = true
        #expect(Self.plan(masked, keeping).privacyReductions == ["keeps the unredacted pixels of dead-lettered frames and chunks"])
        #expect(Self.plan(masked, keeping).differences.contains("pixels in dead letters: removed → kept"))
        #expect(Self.plan(keeping, masked).privacyReductions.isEmpty)
        var moved = masked
        moved.sourceURL = "rtsp://elsewhere/stream"
        #expect(Self.plan(masked, moved).privacyReductions == ["changes the source while keeping privacy masks drawn for the old view"])
        var movedUnmasked = Self.camera("c1")
        movedUnmasked.sourceURL = "rtsp://elsewhere/stream"
        #expect(Self.plan(Self.camera("c1"), movedUnmasked).privacyReductions.isEmpty, "no masks to misplace")
    }

    @Test("growing a mask, adding one, or strengthening redaction does not reduce privacy")
    func privacyKeepingChanges() {
        let masked = Self.camera("c1", masks: ["window": Self.square])
        let larger: [(Float, Float)] = [(0.1, 0.1), (0.7, 0.1), (0.7, 0.7), (0.1, 0.7)]
        #expect(Self.plan(masked, Self.camera("c1", masks: ["window": larger])).privacyReductions.isEmpty)
        #expect(Self.plan(masked, Self.camera("c1", masks: ["window": Self.square, "door": larger])).privacyReductions.isEmpty)
        #expect(Self.plan(Self.camera("c1", target: .faces), Self.camera("c1")).privacyReductions.isEmpty)
        #expect(Self.plan(Self.camera("c1"), Self.camera("c1", maskedClasses: ["vehicle"])).privacyReductions.isEmpty)
    }

    @Test("a concave new mask that holds every old vertex but lets an edge out still counts as shrinking")
    func concaveMask() {
        // The old mask is a wide bar; the new one is a U whose notch cuts through the bar's middle.
        let bar: [(Float, Float)] = [(0.1, 0.4), (0.9, 0.4), (0.9, 0.5), (0.1, 0.5)]
        let notched: [(Float, Float)] = [(0.0, 0.0), (0.4, 0.0), (0.4, 0.45), (0.6, 0.45), (0.6, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)]
        let entry = Self.plan(Self.camera("c1", masks: ["bar": bar]), Self.camera("c1", masks: ["bar": notched]))
        #expect(entry.privacyReductions.count == 1)
    }
}
