import CVision

/// Moving regions from a per-camera background model (OpenCV MOG2 at half resolution), and
/// static foreground from a second, slower one: what the slow model still sees as new while
/// the quick one has absorbed it appeared and then stopped moving — a bag left behind, a
/// person standing still. The quick model absorbs a still object in about 20 frames; the slow
/// one in about `slowHistory / 10` (MOG2 with its default background ratio), after which the
/// object is background again: at 5 analysed frames a second the defaults report it from
/// about 6 s to about 60 s after it stopped. Both learn the scene together for the quick
/// model's `history` frames first, so static regions appear only after that (40 s at 5 fps).
/// Holds state: feed one camera's frames in order.
public final class MotionDetector {
    private let handle: OpaquePointer
    /// Regions smaller than this many pixels are noise.
    public let minimumArea: Int

    public init(history: Int = 200, slowHistory: Int = 3_000, varianceThreshold: Double = 16, minimumArea: Int = 64) {
        handle = vv_motion_new(Int32(history), Int32(slowHistory), varianceThreshold)
        self.minimumArea = minimumArea
    }

    deinit { vv_motion_free(handle) }

    public func movingRegions(in image: RGBImage) -> [PixelBox] {
        var boxes = [Int32](repeating: 0, count: 4 * 256)
        let count = image.pixels.withUnsafeBufferPointer {
            vv_motion_apply(handle, $0.baseAddress, Int32(image.width), Int32(image.height), Int32(minimumArea), &boxes, 256)
        }
        return Self.pixelBoxes(boxes, count: Int(count))
    }

    /// After `movingRegions(in:)`: regions static for at least `minimumFrames` frames in a row.
    public func staticRegions(minimumFrames: Int = 10) -> [PixelBox] {
        var boxes = [Int32](repeating: 0, count: 4 * 64)
        let count = vv_motion_static(handle, Int32(minimumFrames), Int32(minimumArea), &boxes, 64)
        return Self.pixelBoxes(boxes, count: Int(count))
    }

    private static func pixelBoxes(_ boxes: [Int32], count: Int) -> [PixelBox] {
        (0..<count).map {
            PixelBox(x: Float(boxes[4 * $0]), y: Float(boxes[4 * $0 + 1]), width: Float(boxes[4 * $0 + 2]), height: Float(boxes[4 * $0 + 3]))
        }
    }
}
