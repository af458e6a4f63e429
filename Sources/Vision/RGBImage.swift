import CVision

/// A packed 8-bit RGB image (stride = 3 × width): what every detector and the redactor take.
public struct RGBImage: Sendable {
    public let width: Int
    public let height: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(pixels.count == width * height * 3, "RGB pixels must be 3 × width × height bytes")
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// Decodes a JPEG or PNG.
    public init(encoded: [UInt8]) throws(ImageError) {
        var image = vv_image()
        var message = [CChar](repeating: 0, count: 512)
        let status = encoded.withUnsafeBufferPointer { vv_decode_image($0.baseAddress, $0.count, &image, &message, message.count) }
        guard status == 0 else { throw ImageError(message: String(decoding: message.prefix { $0 != 0 }.map(UInt8.init), as: UTF8.self)) }
        self.init(taking: image)
    }

    /// Raw pixels in one of `vigil.v1.PixelFormat`'s layouts (1 RGB24 … 5 NV12), planes packed.
    public init(raw: [UInt8], pixelFormat: Int32, width: Int, height: Int) throws(ImageError) {
        var image = vv_image()
        var message = [CChar](repeating: 0, count: 512)
        let status = raw.withUnsafeBufferPointer {
            vv_convert_to_rgb(pixelFormat, $0.baseAddress, $0.count, Int32(width), Int32(height), &image, &message, message.count)
        }
        guard status == 0 else { throw ImageError(message: String(decoding: message.prefix { $0 != 0 }.map(UInt8.init), as: UTF8.self)) }
        self.init(taking: image)
    }

    private init(taking image: vv_image) {
        var image = image
        let count = Int(image.width) * Int(image.height) * 3
        self.init(width: Int(image.width), height: Int(image.height), pixels: Array(UnsafeBufferPointer(start: image.pixels, count: count)))
        vv_image_free(&image)
    }

    /// Baseline JPEG at `quality` (1–100).
    public func jpeg(quality: Int) throws(ImageError) -> [UInt8] {
        var output: UnsafeMutablePointer<UInt8>?
        var size = 0
        var message = [CChar](repeating: 0, count: 512)
        let status = pixels.withUnsafeBufferPointer {
            vv_encode_jpeg($0.baseAddress, Int32(width), Int32(height), Int32(quality), &output, &size, &message, message.count)
        }
        guard status == 0, let output else { throw ImageError(message: String(decoding: message.prefix { $0 != 0 }.map(UInt8.init), as: UTF8.self)) }
        defer { vv_buffer_free(output) }
        return Array(UnsafeBufferPointer(start: output, count: size))
    }

    /// Scaled to `width` × `height` (area averaging when shrinking).
    public func resized(width newWidth: Int, height newHeight: Int) -> RGBImage {
        var output = [UInt8](repeating: 0, count: newWidth * newHeight * 3)
        pixels.withUnsafeBufferPointer { source in
            output.withUnsafeMutableBufferPointer {
                vv_resize_rgb(source.baseAddress, Int32(width), Int32(height), $0.baseAddress, Int32(newWidth), Int32(newHeight))
            }
        }
        return RGBImage(width: newWidth, height: newHeight, pixels: output)
    }

    /// Copies `image` onto this one with its top-left corner at (`x`, `y`), clipped.
    public mutating func paste(_ image: RGBImage, x: Int, y: Int) {
        for row in 0..<image.height where y + row >= 0 && y + row < height {
            let left = max(0, x), right = min(width, x + image.width)
            guard right > left else { return }
            let source = (row * image.width + (left - x)) * 3
            let destination = ((y + row) * width + left) * 3
            pixels.replaceSubrange(destination..<(destination + (right - left) * 3), with: image.pixels[source..<(source + (right - left) * 3)])
        }
    }

    /// Fills `box` (clipped to the image) with one colour: nothing of what was there remains.
    public mutating func fill(_ box: PixelBox, red: UInt8 = 0, green: UInt8 = 0, blue: UInt8 = 0) {
        let (x, y, w, h) = box.integerRect
        let (width, height) = (Int32(width), Int32(height))
        pixels.withUnsafeMutableBufferPointer { vv_fill_rect($0.baseAddress, width, height, x, y, w, h, red, green, blue) }
    }

    /// Fills a polygon given in normalized coordinates ((0, 0) top-left, (1, 1) bottom-right).
    public mutating func fill(polygon vertices: [(x: Float, y: Float)], red: UInt8 = 0, green: UInt8 = 0, blue: UInt8 = 0) {
        let points = vertices.flatMap { [$0.x * Float(width), $0.y * Float(height)] }
        let (imageWidth, imageHeight) = (Int32(width), Int32(height))
        pixels.withUnsafeMutableBufferPointer { image in
            points.withUnsafeBufferPointer { vv_fill_polygon(image.baseAddress, imageWidth, imageHeight, $0.baseAddress, Int32(vertices.count), red, green, blue) }
        }
    }

    /// Draws the outline of `box` (clipped), `thickness` pixels wide inside its edge: for
    /// showing detections on an exported image, never for masking.
    public mutating func outline(_ box: PixelBox, thickness: Int = 2, red: UInt8, green: UInt8, blue: UInt8) {
        let (x, y, w, h) = box.integerRect
        let t = Int32(max(1, thickness))
        for edge in [(x, y, w, t), (x, y + h - t, w, t), (x, y, t, h), (x + w - t, y, t, h)] where edge.2 > 0 && edge.3 > 0 {
            let (imageWidth, imageHeight) = (Int32(width), Int32(height))
            pixels.withUnsafeMutableBufferPointer { vv_fill_rect($0.baseAddress, imageWidth, imageHeight, edge.0, edge.1, edge.2, edge.3, red, green, blue) }
        }
    }

    /// Replaces `box` (clipped) by cells of their mean colour, at most `cell` pixels wide.
    public mutating func mosaic(_ box: PixelBox, cell: Int) {
        let (x, y, w, h) = box.integerRect
        let (width, height) = (Int32(width), Int32(height))
        pixels.withUnsafeMutableBufferPointer { vv_mosaic_rect($0.baseAddress, width, height, x, y, w, h, Int32(cell)) }
    }
}

extension PixelBox {
    /// The whole pixels the box touches (rounded outwards, so a mask never falls short).
    var integerRect: (Int32, Int32, Int32, Int32) {
        let left = x0.rounded(.down), top = y0.rounded(.down)
        return (Int32(left), Int32(top), Int32(x1.rounded(.up) - left), Int32(y1.rounded(.up) - top))
    }
}

/// An image that could not be decoded, converted or encoded; the message says why.
public struct ImageError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }

    public init(message: String) {
        self.message = message
    }
}
