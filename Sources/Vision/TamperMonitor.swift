import CVision

/// The ways a camera's view can be tampered with (mirrors `vigil.v1.TamperKind`).
public enum TamperKind: Sendable, Hashable, CaseIterable {
    /// Blocked, sprayed over or dark: a nearly uniform or black view.
    case covered
    /// Sharpness fell well below what the camera normally shows.
    case defocused
    /// The view no longer lines up with the camera's reference view.
    case moved
}

/// Watches one camera's view for tampering, against what it learned from the camera's first
/// frames: its usual sharpness and a reference view. A signal is raised after `raiseFrames`
/// frames in a row show it and cleared after `clearFrames` frames in a row do not
/// (hysteresis), so one odd frame raises nothing and a flickering one does not flap.
/// Holds state: feed one camera's analysed frames in order.
public final class TamperMonitor {
    public struct Settings: Sendable {
        /// Frames learned from before anything is judged.
        public var learningFrames = 10
        public var raiseFrames = 3
        public var clearFrames = 5
        /// A view darker than this mean brightness (0–255) is covered…
        public var darkMean = 20.0
        /// …and so is one this uniform (standard deviation of brightness).
        public var flatDeviation = 8.0
        /// Defocused below this share of the learned sharpness.
        public var defocusRatio = 0.3
        /// Moved when the view shifted by more than this share of its width against the
        /// reference (phase correlation; an untouched vtest.avi stays within 3 %).
        public var movedFraction = 0.04
        /// A calm view becomes the reference this often, so people coming and going and the
        /// light of the day do not drift it away from what the camera shows.
        public var referenceRefreshFrames = 25
        /// A view still moved after this many frames becomes the new reference (the camera
        /// was re-aimed on purpose; the signal has been published for the whole time).
        public var relearnFrames = 600

        public init() {}
    }

    public let settings: Settings
    private static let viewWidth = 320
    private var viewHeight = 0
    private var learned = 0
    private var baselineSharpness = 0.0
    private var reference: [Float] = []
    private var calmFrames = 0
    private var positiveRuns: [TamperKind: Int] = [:]
    private var negativeRuns: [TamperKind: Int] = [:]
    private var active: [TamperKind: Double] = [:]

    public init(settings: Settings = Settings()) {
        self.settings = settings
    }

    /// The signals active after this frame, with a score in [0, 1].
    public func observe(_ image: RGBImage) -> [TamperKind: Double] {
        let height = max(1, Self.viewWidth * image.height / max(image.width, 1))
        if height != viewHeight {
            // A new frame size is a new view: learn again.
            viewHeight = height
            learned = 0
            reference = []
            active = [:]
        }
        var view = [Float](repeating: 0, count: Self.viewWidth * viewHeight)
        var measures = vv_view_measures()
        image.pixels.withUnsafeBufferPointer { pixels in
            vv_view_measure(pixels.baseAddress, Int32(image.width), Int32(image.height), Int32(Self.viewWidth), Int32(viewHeight), &view, &measures)
        }
        let coveredScore = max(
            measures.mean < settings.darkMean ? 1 - measures.mean / settings.darkMean : 0,
            measures.deviation < settings.flatDeviation ? 1 - measures.deviation / settings.flatDeviation : 0
        )
        let covered = coveredScore > 0

        if learned < settings.learningFrames {
            guard !covered else { return active }
            learned += 1
            baselineSharpness += (measures.sharpness - baselineSharpness) / Double(learned)
            reference = view
            return active
        }

        var raw: [TamperKind: Double] = [:]
        if covered { raw[.covered] = min(1, coveredScore) }
        if !covered {
            let sharpness = measures.sharpness / max(baselineSharpness, 1e-6)
            if sharpness < settings.defocusRatio {
                // A blurred view cannot be aligned with a sharp one: its shift is noise.
                raw[.defocused] = min(1, 1 - sharpness)
            } else {
                // The correlation's response is too weak a guide here: people walking through a
                // plain scene drive it near zero within seconds. The shift alone decides.
                let (dx, dy) = shift(of: view)
                let distance = (dx * dx + dy * dy).squareRoot() / Double(Self.viewWidth)
                if distance > settings.movedFraction { raw[.moved] = min(1, distance / (2 * settings.movedFraction)) }
            }
            if raw.isEmpty {
                // A calm view keeps the baselines current (lighting drifts over a day).
                baselineSharpness += (measures.sharpness - baselineSharpness) * 0.02
                calmFrames += 1
                if calmFrames >= settings.referenceRefreshFrames {
                    reference = view
                    calmFrames = 0
                }
            } else {
                calmFrames = 0
            }
        }

        for kind in TamperKind.allCases {
            if let score = raw[kind] {
                positiveRuns[kind, default: 0] += 1
                negativeRuns[kind] = 0
                if active[kind] != nil || positiveRuns[kind, default: 0] >= settings.raiseFrames { active[kind] = score }
            } else {
                negativeRuns[kind, default: 0] += 1
                positiveRuns[kind] = 0
                if negativeRuns[kind, default: 0] >= settings.clearFrames { active[kind] = nil }
            }
        }
        if positiveRuns[.moved, default: 0] >= settings.relearnFrames {
            reference = view
            positiveRuns[.moved] = 0
        }
        return active
    }

    private func shift(of view: [Float]) -> (Double, Double) {
        var dx = 0.0, dy = 0.0, response = 0.0
        vv_view_shift(reference, view, Int32(Self.viewWidth), Int32(viewHeight), &dx, &dy, &response)
        return (dx, dy)
    }
}
