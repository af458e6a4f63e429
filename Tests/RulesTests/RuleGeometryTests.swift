import Foundation
import PlaneGeometry
import SwiftProtobuf
import Testing
import VigilSchema
import WorkerRuntime
@testable import Rules

@Suite("What a rule sees of a track")
struct RuleGeometryTests {
    /// A line down the middle of the frame, from top to bottom: its right, as seen in the image,
    /// is the left half of the frame.
    static let rule: Vigil_V1_Rule = {
        var rule = Vigil_V1_Rule()
        rule.ruleID = "gate"
        rule.line = .with { $0.start = .with { $0.x = 0.5; $0.y = 0.1 }; $0.end = .with { $0.x = 0.5; $0.y = 0.9 } }
        rule.cameraIds = ["gate-1"]
        rule.cameraSelector = ["site": "north"]
        return rule
    }()

    /// A square zone at the top left.
    static let zoneRule: Vigil_V1_Rule = {
        var rule = Vigil_V1_Rule()
        rule.ruleID = "corner"
        rule.zone = .with { $0.vertices = [(Float(0.1), Float(0.1)), (0.4, 0.1), (0.4, 0.4), (0.1, 0.4)].map { p in .with { $0.x = p.0; $0.y = p.1 } } }
        return rule
    }()

    static func point(_ x: Double, _ y: Double) -> PlanePoint { PlanePoint(x: x, y: y) }

    @Test("a crossing is counted once, in its direction; passing beyond the segment's ends is no crossing")
    func crossings() {
        #expect(Self.rule.lineCrossing(from: Self.point(0.7, 0.5), to: Self.point(0.3, 0.5)) == .forward, "from its left to its right")
        #expect(Self.rule.lineCrossing(from: Self.point(0.3, 0.5), to: Self.point(0.7, 0.5)) == .backward)
        #expect(Self.rule.lineCrossing(from: Self.point(0.3, 0.5), to: Self.point(0.4, 0.6)) == nil, "same side")
        #expect(Self.rule.lineCrossing(from: Self.point(0.3, 0.95), to: Self.point(0.7, 0.95)) == nil, "below the segment's end")
        // Steps onto and off the line are no crossing; the positions off it, compared, are one.
        let path = [Self.point(0.7, 0.5), Self.point(0.5, 0.5), Self.point(0.5, 0.5), Self.point(0.3, 0.5)]
        #expect(zip(path, path.dropFirst()).compactMap { Self.rule.lineCrossing(from: $0, to: $1) }.isEmpty)
        #expect(Self.rule.lineCrossing(from: path[0], to: path[3]) == .forward)
    }

    @Test("zones by the ground point of a box; cameras by id or by every label of the selector")
    func zonesAndCameras() {
        var box = Vigil_V1_BoundingBox()
        (box.xMin, box.yMin, box.xMax, box.yMax) = (0.2, 0.1, 0.3, 0.35)
        #expect(Self.zoneRule.zoneCovers(groundPoint(of: box)))
        box.yMax = 0.6
        #expect(!Self.zoneRule.zoneCovers(groundPoint(of: box)), "the feet are out of the zone")

        var camera = Vigil_V1_CameraConfig()
        camera.cameraID = "gate-1"
        #expect(Self.rule.watches(camera))
        camera.cameraID = "yard-2"
        #expect(!Self.rule.watches(camera))
        camera.labels = ["site": "north", "floor": "0"]
        #expect(Self.rule.watches(camera))
        camera.labels = ["site": "south"]
        #expect(!Self.rule.watches(camera))
    }

    @Test("the rules.v1 table refuses a record whose rule is not its key")
    func table() throws {
        let table = RuleTable.make()
        let record = try Self.rule.serializedBytes() as [UInt8]
        let effective = [RecordHeader(key: TableHeaders.effectiveTime, value: "1000")]
        _ = table.apply(TableRecord(topic: RuleTable.topic, key: Array("gate".utf8), value: record, headers: effective))
        #expect(table.current("gate")?.ruleID == "gate")
        _ = table.apply(TableRecord(topic: RuleTable.topic, key: Array("other".utf8), value: record, headers: effective))
        #expect(table.current("other") == nil)
    }
}
