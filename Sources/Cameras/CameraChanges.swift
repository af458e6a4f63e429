import Foundation
import PlaneGeometry
import SwiftProtobuf
import VigilSchema
import WorkerRuntime

/// A camera's configuration as the `cameras.v1` table holds it: the value and when it took effect.
public typealias StoredCamera = StoredTableValue<Vigil_V1_CameraConfig>

extension StoredTableValue where Value == Vigil_V1_CameraConfig {
    public init(config: Vigil_V1_CameraConfig, effectiveMilliseconds: Int64) {
        self.init(value: config, effectiveMilliseconds: effectiveMilliseconds)
    }

    public var config: Vigil_V1_CameraConfig { value }
}

/// What `vigil cameras apply` would do: per camera, the change and the record to publish.
public typealias CameraPlan = DeclaredTablePlan<Vigil_V1_CameraConfig>

extension DeclaredValueKind where Value == Vigil_V1_CameraConfig {
    /// Cameras: compared on what the file declares; privacy reductions per `PrivacyCheck`.
    public static let camera = DeclaredValueKind(
        noun: "camera", id: \.cameraID, version: \.version,
        stamp: { config, version, author, milliseconds in
            config.version = version
            config.updatedBy = author
            config.updatedTime = .init(date: Date(timeIntervalSince1970: Double(milliseconds) / 1_000))
        },
        differences: { CameraPlan.differences(from: $0, to: $1) }, summary: { CameraPlan.summary($0) },
        removal: "camera removed: ingest stops reading it", privacyReductions: { PrivacyCheck.reductions(from: $0, to: $1) }
    )
}

extension DeclaredTablePlan where Value == Vigil_V1_CameraConfig {
    public init(current: [String: StoredCamera], desired: [Vigil_V1_CameraConfig], deleteMissing: Bool, actor: String, now: Int64) {
        self.init(.camera, current: current, desired: desired, deleteMissing: deleteMissing, actor: actor, now: now)
    }

    /// The configuration an operator declares: everything but the bookkeeping fields.
    static func declared(_ config: Vigil_V1_CameraConfig) -> Vigil_V1_CameraConfig {
        var copy = config
        copy.version = 0
        copy.updatedBy = ""
        copy.clearUpdatedTime()
        copy.approvedBy = []
        copy.signatures = []
        copy.clearReplaces()
        copy.replacesDigest = Data()
        copy.clearEffectiveTime()
        copy.deleted = false
        return copy
    }

    static func differences(from old: Vigil_V1_CameraConfig, to new: Vigil_V1_CameraConfig) -> [String] {
        guard declared(old) != declared(new) else { return [] }
        var lines: [String] = []
        func compare(_ name: String, _ before: String, _ after: String) {
            if before != after { lines.append("\(name): \(before) → \(after)") }
        }
        compare("source", old.sourceURL, new.sourceURL)
        compare("credentials", old.credentialsRef.isEmpty ? "none" : old.credentialsRef, new.credentialsRef.isEmpty ? "none" : new.credentialsRef)
        compare("sampling", describe(old.sampling), describe(new.sampling))
        compare("working resolution", describe(old), describe(new))
        compare("redaction", describe(old.redactionPolicy), describe(new.redactionPolicy))
        compare("snapshots per minute", old.snapshotsPerMinute.formatted(), new.snapshotsPerMinute.formatted())
        compare("motion gating", old.motionGating ? "on" : "off", new.motionGating ? "on" : "off")
        compare("pixels in dead letters", old.keepPixelsInDeadLetters ? "kept" : "removed", new.keepPixelsInDeadLetters ? "kept" : "removed")
        let oldMasks = Dictionary(old.privacyMasks.map { ($0.maskID, $0) }, uniquingKeysWith: { first, _ in first })
        let newMasks = Dictionary(new.privacyMasks.map { ($0.maskID, $0) }, uniquingKeysWith: { first, _ in first })
        for id in Set(oldMasks.keys).union(newMasks.keys).sorted() {
            switch (oldMasks[id], newMasks[id]) {
            case (nil, .some): lines.append("privacy mask \(id) added")
            case (.some, nil): lines.append("privacy mask \(id) removed")
            case (let before?, let after?) where before != after: lines.append("privacy mask \(id) reshaped")
            default: break
            }
        }
        if old.labels != new.labels {
            compare("labels", describe(old.labels), describe(new.labels))
        }
        return lines
    }

    static func summary(_ config: Vigil_V1_CameraConfig) -> String {
        "\(config.sourceURL), \(describe(config.sampling)), redaction \(describe(config.redactionPolicy)), \(config.privacyMasks.count) privacy mask(s)"
    }

    public static func describe(_ sampling: Vigil_V1_FrameSampling) -> String {
        switch sampling.rate {
        case .framesPerSecond(let fps): "\(fps.formatted()) fps"
        case .keyframesOnly: "keyframes only"
        case nil: "unset"
        }
    }

    public static func describe(_ config: Vigil_V1_CameraConfig) -> String {
        config.hasWorkingResolution ? "\(config.workingResolution.width)x\(config.workingResolution.height)" : "stream's own"
    }

    public static func describe(_ policy: Vigil_V1_RedactionPolicy) -> String {
        let target = switch policy.target {
        case .wholePersons: "whole persons"
        case .faces: "faces"
        default: "unset"
        }
        let fill = switch policy.fill {
        case .solid: "solid"
        case .coarseMosaic: "coarse mosaic"
        default: "unset"
        }
        let classes = policy.maskedClasses.isEmpty ? "" : ", also masking \(policy.maskedClasses.joined(separator: ", "))"
        return "\(target), \(fill)\(classes)"
    }

    public static func describe(_ labels: [String: String]) -> String {
        labels.isEmpty ? "none" : labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
    }
}

extension Vigil_V1_RedactionPolicy {
    /// What masks at least as much as both: whole persons if either does, a solid fill unless
    /// both ask for the mosaic (a mosaic keeps each cell's mean colour), every masked class.
    public func union(_ other: Vigil_V1_RedactionPolicy) -> Vigil_V1_RedactionPolicy {
        var union = self
        if other.target == .wholePersons { union.target = .wholePersons }
        if target != other.target, union.target != .wholePersons { union.target = .faces }
        union.fill = fill == .coarseMosaic && other.fill == .coarseMosaic ? .coarseMosaic : .solid
        union.maskedClasses = Array(Set(maskedClasses).union(other.maskedClasses)).sorted()
        return union
    }
}

/// Which changes to a camera reduce privacy: a privacy mask removed or no longer covering all
/// it covered, redaction weakened from whole persons to faces, a masked class dropped — and
/// what lowers redaction recall: a mosaic instead of a solid fill, a lower working resolution
/// (small faces are found less often), motion gating turned on (models skip frames and tiles),
/// a new source under the old masks (they were drawn for the old view) — and unredacted pixels
/// kept in dead letters. These need a second admin.
public enum PrivacyCheck {
    public static func reductions(from old: Vigil_V1_CameraConfig, to new: Vigil_V1_CameraConfig) -> [String] {
        var reasons: [String] = []
        if old.redactionPolicy.fill != .coarseMosaic, new.redactionPolicy.fill == .coarseMosaic {
            reasons.append("switches the fill from solid to a coarse mosaic")
        }
        if pixels(of: new).map({ newPixels in pixels(of: old).map { newPixels < $0 } ?? true }) == true {
            reasons.append("lowers the working resolution from \(CameraPlan.describe(old)) to \(CameraPlan.describe(new)), so small faces are found less often")
        }
        if !old.motionGating, new.motionGating {
            reasons.append("turns motion gating on, so the models skip frames and tiles")
        }
        if !old.keepPixelsInDeadLetters, new.keepPixelsInDeadLetters {
            reasons.append("keeps the unredacted pixels of dead-lettered frames and chunks")
        }
        if !old.sourceURL.isEmpty, old.sourceURL != new.sourceURL, !new.privacyMasks.isEmpty {
            reasons.append("changes the source while keeping privacy masks drawn for the old view")
        }
        let newMasks = Dictionary(new.privacyMasks.map { ($0.maskID, $0) }, uniquingKeysWith: { first, _ in first })
        for mask in old.privacyMasks {
            guard let replacement = newMasks[mask.maskID] else {
                reasons.append("removes privacy mask \(mask.maskID)")
                continue
            }
            if !PlaneGeometry.covers(replacement.area.vertices.map(PlanePoint.init), polygon: mask.area.vertices.map(PlanePoint.init)) {
                reasons.append("shrinks or moves privacy mask \(mask.maskID): the new shape no longer covers all of the old one")
            }
        }
        if old.redactionPolicy.target == .wholePersons, new.redactionPolicy.target != .wholePersons {
            reasons.append("switches redaction from whole persons to faces only")
        }
        for removed in Set(old.redactionPolicy.maskedClasses).subtracting(new.redactionPolicy.maskedClasses).sorted() {
            reasons.append("stops masking \(removed) objects")
        }
        return reasons
    }

    /// The working resolution's pixel count; nil for the stream's own.
    private static func pixels(of config: Vigil_V1_CameraConfig) -> UInt64? {
        guard config.hasWorkingResolution, config.workingResolution.width > 0, config.workingResolution.height > 0 else { return nil }
        return UInt64(config.workingResolution.width) * UInt64(config.workingResolution.height)
    }
}
