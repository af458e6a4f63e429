import CVision

/// Moving regions from a per-camera background model (OpenCV MOG2 at half resolution).
/// Holds state: feed one camera's frames in order; a new camera needs a new detector.
public final class MotionDetector {
    private let handle: OpaquePointer
    /// Regions smaller than this many pixels are noise.
    public let minimumArea: Int

    public init(history: Int = 200, varianceThreshold: Double = 16, minimumArea: Int = 64) {
        handle = vv_motion_new(Int32(history), varianceThreshold)
        self.minimumArea = minimumArea
    }

    deinit { vv_motion_free(handle) }

    public func movingRegions(in image: RGBImage) -> [PixelBox] {
        var boxes = [Int32](repeating: 0, count: 4 * 256)
        let count = image.pixels.withUnsafeBufferPointer {
            vv_motion_apply(handle, $0.baseAddress, Int32(image.width), Int32(image.height), Int32(minimumArea), &boxes, 256)
        }
        return (0..<Int(count)).map {
            PixelBox(x: Float(boxes[4 * $0]), y: Float(boxes[4 * $0 + 1]), width: Float(boxes[4 * $0 + 2]), height: Float(boxes[4 * $0 + 3]))
        }
    }
}
