import Foundation
import VigilSchema

/// A point in normalized frame coordinates (0 to 1, origin top-left, y down).
public struct PlanePoint: Sendable, Hashable {
    public var x: Double
    public var y: Double

    public init(x: Double, y: Double) {
        self.x = x
        self.y = y
    }

    public init(_ point: Vigil_V1_Point) {
        self.init(x: Double(point.x), y: Double(point.y))
    }

    public func distance(to other: PlanePoint) -> Double {
        hypot(x - other.x, y - other.y)
    }
}

/// Geometry in the frame's normalized plane, shared by privacy masks (cameras), rule zones and
/// lines (rules, match): sides of a directed line, crossing segments, simple polygons,
/// containment.
public enum PlaneGeometry {
    private static let tolerance = 1e-9

    /// > 0 when `point` is to the right of `from → to` as seen in the image (y grows down),
    /// < 0 to the left, 0 on the line.
    public static func side(of point: PlanePoint, from: PlanePoint, to: PlanePoint) -> Double {
        // With y pointing down, a positive cross product is clockwise: the right-hand side.
        let value = (to.x - from.x) * (point.y - from.y) - (to.y - from.y) * (point.x - from.x)
        return abs(value) < tolerance * tolerance ? 0 : value
    }

    /// Whether segments a1–a2 and b1–b2 cross at a point inside both; with `touching`, a segment
    /// ending on the other counts too.
    public static func segmentsCross(_ a1: PlanePoint, _ a2: PlanePoint, _ b1: PlanePoint, _ b2: PlanePoint, touching: Bool) -> Bool {
        let d1 = side(of: b1, from: a1, to: a2), d2 = side(of: b2, from: a1, to: a2)
        let d3 = side(of: a1, from: b1, to: b2), d4 = side(of: a2, from: b1, to: b2)
        if d1 * d2 < 0 && d3 * d4 < 0 { return true }
        guard touching else { return false }
        return (d1 == 0 && onSegment(b1, a1, a2)) || (d2 == 0 && onSegment(b2, a1, a2))
            || (d3 == 0 && onSegment(a1, b1, b2)) || (d4 == 0 && onSegment(a2, b1, b2))
    }

    /// Twice the polygon's signed area (shoelace); zero for a degenerate polygon.
    public static func doubleArea(_ polygon: [PlanePoint]) -> Double {
        zip(polygon, polygon.dropFirst() + polygon.prefix(1)).reduce(0) { $0 + $1.0.x * $1.1.y - $1.1.x * $1.0.y }
    }

    /// The first two non-adjacent edges that cross or touch (edge i runs from vertex i to the
    /// next), or nil for a simple polygon.
    public static func selfIntersection(_ polygon: [PlanePoint]) -> (Int, Int)? {
        let count = polygon.count
        guard count > 3 else { return nil }
        for first in 0..<count {
            for second in stride(from: first + 2, to: count, by: 1) where !(first == 0 && second == count - 1) {
                if segmentsCross(polygon[first], polygon[(first + 1) % count], polygon[second], polygon[(second + 1) % count], touching: true) {
                    return (first, second)
                }
            }
        }
        return nil
    }

    /// Whether `point` is inside the polygon or on its boundary (even-odd rule).
    public static func covers(_ polygon: [PlanePoint], _ point: PlanePoint) -> Bool {
        var inside = false
        for (a, b) in edges(polygon) {
            if side(of: point, from: a, to: b) == 0 && onSegment(point, a, b) { return true }
            if (a.y > point.y) != (b.y > point.y), point.x < (b.x - a.x) * (point.y - a.y) / (b.y - a.y) + a.x { inside.toggle() }
        }
        return inside
    }

    /// Whether `outer` covers all of `inner`: every vertex of `inner` lies in `outer` (its
    /// boundary counts) and no edges of the two cross. For simple polygons that is exact: the
    /// inner boundary then lies wholly inside the outer one, and so does its interior.
    public static func covers(_ outer: [PlanePoint], polygon inner: [PlanePoint]) -> Bool {
        guard outer.count >= 3 else { return inner.isEmpty }
        guard inner.allSatisfy({ covers(outer, $0) }) else { return false }
        for (a, b) in edges(inner) {
            for (c, d) in edges(outer) where segmentsCross(a, b, c, d, touching: false) {
                return false
            }
        }
        return true
    }

    private static func edges(_ polygon: [PlanePoint]) -> [(PlanePoint, PlanePoint)] {
        polygon.indices.map { (polygon[$0], polygon[($0 + 1) % polygon.count]) }
    }

    /// `point` within the bounding box of a–b (it is known to be on their line).
    private static func onSegment(_ point: PlanePoint, _ a: PlanePoint, _ b: PlanePoint) -> Bool {
        point.x >= min(a.x, b.x) - tolerance && point.x <= max(a.x, b.x) + tolerance
            && point.y >= min(a.y, b.y) - tolerance && point.y <= max(a.y, b.y) + tolerance
    }
}
