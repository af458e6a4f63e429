import PlaneGeometry
import VigilSchema

/// How a rule sees a track's movement: which way it crossed a rule's line, whether a point is in
/// its zone, and whether the rule watches a camera.
extension Vigil_V1_Rule {
    /// Whether the rule watches `camera`: named among `camera_ids`, or carrying every label of
    /// `camera_selector` (when one is given).
    public func watches(_ camera: Vigil_V1_CameraConfig) -> Bool {
        watches(cameraID: camera.cameraID, labels: camera.labels)
    }

    /// Whether the rule watches the camera `cameraID` carrying `labels`.
    public func watches(cameraID: String, labels: [String: String]) -> Bool {
        if cameraIds.contains(cameraID) { return true }
        return !cameraSelector.isEmpty && cameraSelector.allSatisfy { labels[$0.key] == $0.value }
    }

    /// Whether `point` is inside the rule's zone (its boundary counts).
    public func zoneCovers(_ point: PlanePoint) -> Bool {
        PlaneGeometry.covers(zone.vertices.map(PlanePoint.init), point)
    }

    /// The way a track moving from `previous` to `current` crossed the rule's line, or nil when
    /// it did not cross it. Forward is from the line's left to its right as seen in the image.
    /// A point exactly on the line is on neither side, so a step onto or off the line is no
    /// crossing: the caller compares a track's last positions off the line, so a track that
    /// stops on the line is counted once, when it leaves it on the other side.
    public func lineCrossing(from previous: PlanePoint, to current: PlanePoint) -> Vigil_V1_CrossingDirection? {
        let start = PlanePoint(line.start), end = PlanePoint(line.end)
        let before = PlaneGeometry.side(of: previous, from: start, to: end)
        let after = PlaneGeometry.side(of: current, from: start, to: end)
        guard before != 0, after != 0, (before > 0) != (after > 0),
              PlaneGeometry.segmentsCross(previous, current, start, end, touching: true) else { return nil }
        return after > 0 ? .forward : .backward
    }
}

/// The point of a box a rule follows: the middle of its bottom edge, where a person stands.
public func groundPoint(of box: Vigil_V1_BoundingBox) -> PlanePoint {
    PlanePoint(x: Double(box.xMin + box.xMax) / 2, y: Double(box.yMax))
}
