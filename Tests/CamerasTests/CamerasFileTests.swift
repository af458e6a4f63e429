import DeclarationFiles
import Foundation
import Testing
import VigilSchema
@testable import Cameras

@Suite("Cameras file: parsing and checks")
struct CamerasFileTests {
    static let valid = """
        cameras:
          dock-1:
            source: rtsp://10.0.4.21/stream1
            credentials: dock-cameras
            sampling: {fps: 2.5}
            working_resolution: 640x360
            redaction: {target: faces, fill: coarse_mosaic, masked_classes: [vehicle]}
            snapshots_per_minute: 4
            motion_gating: true
            keep_pixels_in_dead_letters: true
            privacy_masks:
              neighbour-window: [[0.70, 0.05], [0.95, 0.05], [0.95, 0.30], [0.70, 0.30]]
            labels: {site: plant-2}
          gate-2:
            source: /media/gate.mp4
            sampling: {keyframes_only: true}
        """

    static func errors(_ yaml: String) -> [CamerasFileError] {
        do {
            _ = try CamerasFile.parse(yaml: yaml, file: "cameras.yaml")
            return []
        } catch {
            return error.errors
        }
    }

    @Test("every key of a valid file lands in the camera's configuration")
    func validFile() throws {
        let cameras = try CamerasFile.parse(yaml: Self.valid, file: "cameras.yaml")
        #expect(cameras.map(\.cameraID) == ["dock-1", "gate-2"])
        let dock = cameras[0]
        #expect(dock.sourceURL == "rtsp://10.0.4.21/stream1")
        #expect(dock.credentialsRef == "dock-cameras")
        #expect(dock.sampling.framesPerSecond == 2.5)
        #expect(dock.workingResolution.width == 640 && dock.workingResolution.height == 360)
        #expect(dock.redactionPolicy.target == .faces && dock.redactionPolicy.fill == .coarseMosaic)
        #expect(dock.redactionPolicy.maskedClasses == ["vehicle"])
        #expect(dock.snapshotsPerMinute == 4)
        #expect(dock.motionGating && !cameras[1].motionGating)
        #expect(dock.keepPixelsInDeadLetters && !cameras[1].keepPixelsInDeadLetters, "off unless declared")
        #expect(dock.privacyMasks.map(\.maskID) == ["neighbour-window"])
        #expect(dock.privacyMasks[0].area.vertices.map { [$0.x, $0.y] } == [[0.70, 0.05], [0.95, 0.05], [0.95, 0.30], [0.70, 0.30]])
        #expect(dock.labels == ["site": "plant-2"])
        let gate = cameras[1]
        #expect(gate.sampling.keyframesOnly == .init())
        #expect(!gate.hasWorkingResolution)
    }

    @Test("a key given without a value means none")
    func emptyValues() throws {
        let cameras = try CamerasFile.parse(yaml: "cameras:\n  c1:\n    source: /media/a.mp4\n    privacy_masks:\n    labels:\n", file: "cameras.yaml")
        #expect(cameras[0].privacyMasks.isEmpty && cameras[0].labels.isEmpty)
    }

    @Test("left out, redaction masks whole persons with a solid fill: the private setting is the default")
    func privateDefaults() throws {
        let cameras = try CamerasFile.parse(yaml: "cameras:\n  c1:\n    source: /media/a.mp4\n", file: "cameras.yaml")
        #expect(cameras[0].redactionPolicy.target == .wholePersons)
        #expect(cameras[0].redactionPolicy.fill == .solid)
        #expect(cameras[0].sampling.framesPerSecond == 2)
    }

    @Test("an unknown key is named with its file, line, camera and key, and what is expected")
    func unknownKey() {
        let found = Self.errors("cameras:\n  dock-1:\n    source: /media/a.mp4\n    sampling: {fsp: 2}\n    colour: red\n")
        let descriptions = found.map(\.description)
        #expect(descriptions.contains("cameras.yaml:4:16: cameras.dock-1.sampling.fsp: unknown key; expected fps or keyframes_only"))
        #expect(descriptions.contains { $0.hasPrefix("cameras.yaml:5:5: cameras.dock-1.colour: unknown key; expected source, credentials") })
    }

    @Test("a URL with credentials or a secret in its query is refused, and the secret is not repeated")
    func credentialsInURL() {
        let found = Self.errors("""
            cameras:
              a:
                source: rtsp://admin:hunter2@10.0.4.21/stream1
              b:
                source: rtsp://10.0.4.22/live?user=x&password=hunter3
              c:
                source: rtsp://operator@10.0.4.23/live
            """)
        #expect(found.map(\.keyPath) == ["cameras.a.source", "cameras.b.source", "cameras.c.source"])
        #expect(found.allSatisfy { $0.message.contains("credentials") })
        #expect(!found.map(\.description).joined().contains("hunter"), "the secret must not be echoed")
    }

    @Test("bad values are each reported; nothing is returned while any remains")
    func badValues() {
        let found = Self.errors("""
            cameras:
              Dock_1:
                source: /a.mp4
              gate:
                source: ftp://x/y
                sampling: {fps: 0}
                working_resolution: 641x360
                redaction: {target: nobody}
                snapshots_per_minute: -1
                privacy_masks:
                  m1: [[0.1, 0.1], [0.2, 0.2]]
                  m2: [[0.1, 0.1], [1.2, 0.2], [0.3, 0.4]]
            """)
        #expect(Set(found.compactMap(\.keyPath)) == [
            "cameras.Dock_1", "cameras.gate.source", "cameras.gate.sampling.fps", "cameras.gate.working_resolution",
            "cameras.gate.redaction.target", "cameras.gate.snapshots_per_minute", "cameras.gate.privacy_masks.m1",
            "cameras.gate.privacy_masks.m2[1]",
        ])
        #expect(found.allSatisfy { $0.line != nil })
    }

    @Test("a file that is not YAML, or has no cameras mapping, says so")
    func wrongShape() {
        #expect(Self.errors("cameras: [a, b]").first?.message.contains("expected a mapping") == true)
        #expect(Self.errors("devices:\n  a: {}\n").map(\.message).contains { $0.contains("unknown key") })
        #expect(Self.errors("cameras:\n  a: {source: [}\n").first?.message.contains("YAML") == true)
    }
}
