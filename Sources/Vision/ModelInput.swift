import CVision

/// How an image was placed into a model's input: input pixel = image pixel × scale + pad.
struct Placement {
    var scaleX: Float, scaleY: Float, padX: Float, padY: Float

    /// Maps a box in input pixels back to image pixels.
    func imageBox(_ box: PixelBox) -> PixelBox {
        PixelBox(x0: (box.x0 - padX) / scaleX, y0: (box.y0 - padY) / scaleY, x1: (box.x1 - padX) / scaleX, y1: (box.y1 - padY) / scaleY)
    }

    func imagePoint(x: Float, y: Float) -> (x: Float, y: Float) { ((x - padX) / scaleX, (y - padY) / scaleY) }
}

/// The layout and value range a model expects of its image input.
struct InputFormat {
    enum Layout { case nhwc, nchw }
    var layout: Layout
    /// Letterbox (keep the aspect ratio, pad with black) or scale each axis alone.
    var keepAspect: Bool
    var channelsBGR = false
    /// value = pixel × multiplier + bias
    var multiplier: Float
    var bias: Float

    /// MediaPipe's TFLite detectors: NHWC RGB in [-1, 1], letterboxed.
    static let mediaPipe = InputFormat(layout: .nhwc, keepAspect: true, multiplier: 1 / 127.5, bias: -1)

    /// `region` of `image` (default: all of it) resized into a `width` × `height` input
    /// tensor; the placement maps region coordinates to input pixels.
    func tensor(from image: RGBImage, region: PixelBox? = nil, width: Int, height: Int) -> (values: [Float], placement: Placement) {
        let (regionX, regionY, regionWidth, regionHeight) = (region ?? PixelBox(x: 0, y: 0, width: Float(image.width), height: Float(image.height)))
            .clipped(width: image.width, height: image.height).integerRect
        var values = [Float](repeating: 0, count: width * height * 3)
        let placement = image.pixels.withUnsafeBufferPointer { pixels in
            values.withUnsafeMutableBufferPointer { output in
                vv_image_to_tensor(
                    pixels.baseAddress, Int32(image.width), Int32(image.height), regionX, regionY, regionWidth, regionHeight, Int32(width), Int32(height),
                    layout == .nchw ? 1 : 0, keepAspect ? 1 : 0, channelsBGR ? 1 : 0, multiplier, bias, output.baseAddress
                )
            }
        }
        return (values, Placement(scaleX: placement.scale_x, scaleY: placement.scale_y, padX: placement.pad_x, padY: placement.pad_y))
    }
}
