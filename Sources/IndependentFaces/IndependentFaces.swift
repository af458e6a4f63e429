import CIndependentFaces
import Foundation
import Vision

/// Faces found by detectors vigil does not redact with: dlib's HOG detector and OpenCV's
/// Haar cascades (Debian libdlib-dev, opencv-data). Test support: no worker links this.
public enum IndependentFaces {
    public static let cascades = [
        "/usr/share/opencv4/haarcascades/haarcascade_frontalface_default.xml",
        "/usr/share/opencv4/haarcascades/haarcascade_frontalface_alt2.xml",
        "/usr/share/opencv4/haarcascades/haarcascade_profileface.xml",
    ]

    /// Every face any of them finds, by detector name.
    public static func faces(in image: RGBImage) -> [(detector: String, box: PixelBox)] {
        dlibFaces(in: image).map { ("dlib HOG", $0) } + cascades.flatMap { cascade in
            detect(in: image, by: URL(fileURLWithPath: cascade).lastPathComponent) { pixels, boxes in
                independent_cascade_faces(cascade, pixels, Int32(image.width), Int32(image.height), boxes, 256)
            }.map { (URL(fileURLWithPath: cascade).lastPathComponent, $0) }
        }
    }

    /// The faces dlib's HOG detector finds (image upsampled once: faces down to about 40 px).
    /// The cascades also fire on textures and on a mask's edge next to hair; dlib rarely does,
    /// so it alone can check an image that should hold no face at all.
    public static func dlibFaces(in image: RGBImage) -> [PixelBox] {
        detect(in: image, by: "dlib HOG") { pixels, boxes in
            independent_dlib_faces(pixels, Int32(image.width), Int32(image.height), 1, boxes, 256)
        }
    }

    /// Runs one C detector, which writes up to 256 boxes as x, y, w, h and returns their count.
    private static func detect(
        in image: RGBImage, by name: String, _ run: (UnsafePointer<UInt8>?, UnsafeMutablePointer<Int32>) -> Int32
    ) -> [PixelBox] {
        var boxes = [Int32](repeating: 0, count: 4 * 256)
        let count = image.pixels.withUnsafeBufferPointer { pixels in boxes.withUnsafeMutableBufferPointer { run(pixels.baseAddress, $0.baseAddress!) } }
        precondition(count >= 0, "\(name) could not be loaded (install-deps installs opencv-data)")
        return (0..<Int(count)).map { index in
            PixelBox(x: Float(boxes[4 * index]), y: Float(boxes[4 * index + 1]), width: Float(boxes[4 * index + 2]), height: Float(boxes[4 * index + 3]))
        }
    }
}
