/// An axis-aligned box in image pixels (x grows right, y grows down; `x1 > x0`, `y1 > y0`).
/// Detectors and redaction work in pixels; the schema's normalized `BoundingBox` is made at
/// the edge of the stage.
public struct PixelBox: Sendable, Hashable, CustomStringConvertible {
    public var x0: Float
    public var y0: Float
    public var x1: Float
    public var y1: Float

    public init(x0: Float, y0: Float, x1: Float, y1: Float) {
        self.x0 = x0
        self.y0 = y0
        self.x1 = x1
        self.y1 = y1
    }

    public init(x: Float, y: Float, width: Float, height: Float) {
        self.init(x0: x, y0: y, x1: x + width, y1: y + height)
    }

    public var width: Float { max(0, x1 - x0) }
    public var height: Float { max(0, y1 - y0) }
    public var area: Float { width * height }
    public var centerX: Float { (x0 + x1) / 2 }
    public var centerY: Float { (y0 + y1) / 2 }
    public var description: String { "[\(Int(x0)),\(Int(y0)) \(Int(width))x\(Int(height))]" }

    public func intersection(_ other: PixelBox) -> Float {
        let width = min(x1, other.x1) - max(x0, other.x0)
        let height = min(y1, other.y1) - max(y0, other.y0)
        return width > 0 && height > 0 ? width * height : 0
    }

    public func intersectionOverUnion(_ other: PixelBox) -> Float {
        let shared = intersection(other)
        let union = area + other.area - shared
        return union > 0 ? shared / union : 0
    }

    /// The share of `other` this box covers, in [0, 1].
    public func coverage(of other: PixelBox) -> Float {
        other.area > 0 ? intersection(other) / other.area : 0
    }

    /// Grown about its centre by `factor` in each dimension (1.3 = 30 % wider and taller).
    public func scaled(by factor: Float) -> PixelBox {
        let halfWidth = width * factor / 2, halfHeight = height * factor / 2
        return PixelBox(x0: centerX - halfWidth, y0: centerY - halfHeight, x1: centerX + halfWidth, y1: centerY + halfHeight)
    }

    public func clipped(width imageWidth: Int, height imageHeight: Int) -> PixelBox {
        PixelBox(
            x0: min(max(x0, 0), Float(imageWidth)), y0: min(max(y0, 0), Float(imageHeight)),
            x1: min(max(x1, 0), Float(imageWidth)), y1: min(max(y1, 0), Float(imageHeight))
        )
    }

    /// The smallest box holding both.
    public func union(_ other: PixelBox) -> PixelBox {
        PixelBox(x0: min(x0, other.x0), y0: min(y0, other.y0), x1: max(x1, other.x1), y1: max(y1, other.y1))
    }
}

/// A box a detector found, with its confidence in [0, 1].
public struct Detection: Sendable, Hashable {
    public var box: PixelBox
    public var score: Float

    public init(box: PixelBox, score: Float) {
        self.box = box
        self.score = score
    }
}

/// Greedy non-maximum suppression: the best-scoring box wins; boxes overlapping a winner by
/// at least `threshold` IoU are dropped.
public func nonMaximumSuppression(_ detections: [Detection], threshold: Float) -> [Detection] {
    nonMaximumSuppression(detections, threshold: threshold, by: \.self)
}

/// Non-maximum suppression over anything that carries a detection.
public func nonMaximumSuppression<Item>(_ items: [Item], threshold: Float, by detection: KeyPath<Item, Detection>) -> [Item] {
    var kept: [Item] = []
    for candidate in items.sorted(by: { $0[keyPath: detection].score > $1[keyPath: detection].score })
    where !kept.contains(where: { $0[keyPath: detection].box.intersectionOverUnion(candidate[keyPath: detection].box) >= threshold }) {
        kept.append(candidate)
    }
    return kept
}
