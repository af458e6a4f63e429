import DeclarationFiles
import Foundation
import VigilSchema
import Yams

/// A problem in a cameras file, located by file, line, camera and key:
/// `cameras.yaml:12:7: cameras.dock-1.sampling.fsp: unknown key; expected fps or keyframes_only`.
public typealias CamerasFileError = DeclarationProblem
/// Every problem found in a cameras file.
public typealias CamerasFileErrors = DeclarationProblems

/// The cameras an operator declares in a YAML file, for `vigil cameras apply`:
///
/// ```yaml
/// cameras:
///   dock-1:
///     source: rtsp://10.0.4.21/stream1
///     credentials: dock-cameras        # name of a secret; never the password itself
///     sampling: {fps: 2}               # or {keyframes_only: true}
///     working_resolution: 640x360
///     redaction: {target: whole_persons, fill: solid, masked_classes: [vehicle]}
///     snapshots_per_minute: 6
///     motion_gating: true              # models only on frames with motion or live tracks
///     keep_pixels_in_dead_letters: false  # true keeps unredacted pixels in the DLQs (two admins)
///     privacy_masks:
///       neighbour-window: [[0.70, 0.05], [0.95, 0.05], [0.95, 0.30], [0.70, 0.30]]
///     labels: {site: plant-2}
/// ```
///
/// Every problem is collected, not just the first, so one run shows everything to fix.
public enum CamerasFile {
    /// Redaction defaults to whole persons: the most private setting is the one you get by omission.
    public static let defaultRedaction = RedactionDefaults(target: .wholePersons, fill: .solid)
    public static let defaultSnapshotsPerMinute = 6.0

    public struct RedactionDefaults: Sendable {
        public var target: Vigil_V1_RedactionTarget
        public var fill: Vigil_V1_RedactionFill
    }

    /// Parses and checks `yaml`; `file` names it in errors. Versions, authors and times are
    /// left unset: `CameraChanges` fills them when it decides what changed.
    public static func parse(yaml: String, file: String) throws(CamerasFileErrors) -> [Vigil_V1_CameraConfig] {
        var reader = DeclarationReader(file: file)
        let cameras = reader.cameras(yaml)
        guard reader.errors.isEmpty else { throw CamerasFileErrors(errors: reader.errors) }
        return cameras
    }

    public static func load(path: String) throws(CamerasFileErrors) -> [Vigil_V1_CameraConfig] {
        try parse(yaml: try DeclarationReader.text(of: path), file: path)
    }
}

private extension DeclarationReader {
    static let cameraKeys = [
        "source", "credentials", "sampling", "working_resolution", "redaction", "snapshots_per_minute", "privacy_masks", "labels", "motion_gating",
        "keep_pixels_in_dead_letters",
    ]
    /// Query parameters that carry secrets in stream URLs seen in the wild.
    static let secretParameters: Set<String> = ["password", "passwd", "pwd", "pass", "token", "secret", "key", "apikey", "api_key", "auth"]

    mutating func cameras(_ yaml: String) -> [Vigil_V1_CameraConfig] {
        guard let cameras = section(yaml, top: "cameras", holding: "camera id → its configuration") else { return [] }
        var configs: [Vigil_V1_CameraConfig] = []
        for (idNode, body) in cameras {
            let id = idNode.string ?? ""
            let path = "cameras.\(id)"
            guard Self.isValidID(id) else {
                fail(idNode, path, "is not a valid camera id: use 1 to 64 lowercase letters, digits, '-', '_' or '.', starting with a letter or digit")
                continue
            }
            if let config = camera(id: id, body, path: path) { configs.append(config) }
        }
        return configs.sorted { $0.cameraID < $1.cameraID }
    }

    mutating func camera(id: String, _ node: Node, path: String) -> Vigil_V1_CameraConfig? {
        guard let body = mapping(node, path: path) else { return nil }
        let before = errors.count
        rejectUnknownKeys(body, allowed: Self.cameraKeys, path: path)
        var config = Vigil_V1_CameraConfig()
        config.cameraID = id
        if let source = body["source"] {
            config.sourceURL = self.source(source, path: "\(path).source") ?? ""
        } else {
            fail(node, "\(path).source", "is missing; give the stream URL (rtsp://…) or a file path")
        }
        if let credentials = body["credentials"], let name = scalar(credentials, path: "\(path).credentials") {
            if Self.isValidID(name) {
                config.credentialsRef = name
            } else {
                fail(credentials, "\(path).credentials", "must name a secret (lowercase letters, digits, '-', '_', '.'), not hold credentials")
            }
        }
        config.sampling = sampling(body["sampling"], path: "\(path).sampling")
        if let resolution = body["working_resolution"] {
            if let value = self.resolution(resolution, path: "\(path).working_resolution") { config.workingResolution = value }
        }
        config.redactionPolicy = redaction(body["redaction"], path: "\(path).redaction")
        config.snapshotsPerMinute = CamerasFile.defaultSnapshotsPerMinute
        if let rate = body["snapshots_per_minute"] {
            if let value = number(rate, path: "\(path).snapshots_per_minute", in: 0...600) { config.snapshotsPerMinute = value }
        }
        if let gating = body["motion_gating"], let flag = bool(gating, path: "\(path).motion_gating") {
            config.motionGating = flag
        }
        if let keep = body["keep_pixels_in_dead_letters"], let flag = bool(keep, path: "\(path).keep_pixels_in_dead_letters") {
            config.keepPixelsInDeadLetters = flag
        }
        if let masks = body["privacy_masks"], !Self.isNull(masks) {
            config.privacyMasks = privacyMasks(masks, path: "\(path).privacy_masks")
        }
        if let labels = body["labels"], !Self.isNull(labels), let entries = mapping(labels, path: "\(path).labels") {
            for (key, value) in entries {
                guard let name = key.string, Self.isValidID(name) else {
                    fail(key, "\(path).labels", "label names use lowercase letters, digits, '-', '_' or '.'")
                    continue
                }
                if let text = scalar(value, path: "\(path).labels.\(name)") { config.labels[name] = text }
            }
        }
        return errors.count == before ? config : nil
    }

    mutating func source(_ node: Node, path: String) -> String? {
        guard let text = scalar(node, path: path), !text.isEmpty else {
            fail(node, path, "must be a stream URL (rtsp://, rtsps://, http(s)://, file://) or a file path")
            return nil
        }
        guard text.contains("://") else { return text }  // a plain file path
        guard let url = URLComponents(string: text), let scheme = url.scheme?.lowercased(),
              ["rtsp", "rtsps", "http", "https", "file"].contains(scheme) else {
            fail(node, path, "is not a URL vigil can read; use rtsp://, rtsps://, http(s)://, file:// or a file path")
            return nil
        }
        // The URL is stored in Kafka and shown in lists and audit events: credentials never go in it.
        if url.user != nil || url.password != nil {
            fail(node, path, "carries credentials (user:password@); remove them, store them as a secret for vigil-ingest and name it under `credentials:`")
            return nil
        }
        if let secret = url.queryItems?.first(where: { Self.secretParameters.contains($0.name.lowercased()) }) {
            fail(node, path, "carries a secret in its query (\(secret.name)=…); remove it, store it as a secret for vigil-ingest and name it under `credentials:`")
            return nil
        }
        return text
    }

    mutating func sampling(_ node: Node?, path: String) -> Vigil_V1_FrameSampling {
        var sampling = Vigil_V1_FrameSampling()
        sampling.framesPerSecond = 2
        guard let node, let body = mapping(node, path: path) else { return sampling }
        rejectUnknownKeys(body, allowed: ["fps", "keyframes_only"], path: path)
        switch (body["fps"], body["keyframes_only"]) {
        case (let fps?, nil):
            if let value = number(fps, path: "\(path).fps", in: 0.01...60) { sampling.framesPerSecond = value }
        case (nil, let keyframes?):
            guard let flag = bool(keyframes, path: "\(path).keyframes_only") else { break }
            if flag {
                sampling.keyframesOnly = .init()
            } else {
                fail(keyframes, "\(path).keyframes_only", "false means nothing; give fps instead")
            }
        case (.some, .some):
            fail(node, path, "give either fps or keyframes_only, not both")
        case (nil, nil):
            fail(node, path, "give fps (frames per second) or keyframes_only: true")
        }
        return sampling
    }

    mutating func resolution(_ node: Node, path: String) -> Vigil_V1_Resolution? {
        guard let text = scalar(node, path: path) else { return nil }
        let parts = text.lowercased().split(separator: "x")
        guard parts.count == 2, let width = UInt32(parts[0]), let height = UInt32(parts[1]),
              (16...7680).contains(width), (16...4320).contains(height), width % 2 == 0, height % 2 == 0 else {
            fail(node, path, "must be WIDTHxHEIGHT with even sizes from 16x16 to 7680x4320, e.g. 640x360")
            return nil
        }
        var resolution = Vigil_V1_Resolution()
        resolution.width = width
        resolution.height = height
        return resolution
    }

    mutating func redaction(_ node: Node?, path: String) -> Vigil_V1_RedactionPolicy {
        var policy = Vigil_V1_RedactionPolicy()
        policy.target = CamerasFile.defaultRedaction.target
        policy.fill = CamerasFile.defaultRedaction.fill
        guard let node, let body = mapping(node, path: path) else { return policy }
        rejectUnknownKeys(body, allowed: ["target", "fill", "masked_classes"], path: path)
        if let target = body["target"], let text = scalar(target, path: "\(path).target") {
            switch text {
            case "whole_persons": policy.target = .wholePersons
            case "faces": policy.target = .faces
            default: fail(target, "\(path).target", "must be whole_persons or faces (whole_persons when left out)")
            }
        }
        if let fill = body["fill"], let text = scalar(fill, path: "\(path).fill") {
            switch text {
            case "solid": policy.fill = .solid
            case "coarse_mosaic": policy.fill = .coarseMosaic
            default: fail(fill, "\(path).fill", "must be solid or coarse_mosaic (both irreversible; solid when left out)")
            }
        }
        if let classes = body["masked_classes"], let names = strings(classes, path: "\(path).masked_classes") {
            policy.maskedClasses = names.filter { !$0.isEmpty }
        }
        return policy
    }

    mutating func privacyMasks(_ node: Node, path: String) -> [Vigil_V1_PrivacyMask] {
        guard let entries = mapping(node, path: path) else { return [] }
        var masks: [Vigil_V1_PrivacyMask] = []
        for (idNode, points) in entries {
            let id = idNode.string ?? ""
            let maskPath = "\(path).\(id)"
            guard Self.isValidID(id) else {
                fail(idNode, maskPath, "is not a valid mask id: lowercase letters, digits, '-', '_' or '.'")
                continue
            }
            guard let polygon = polygon(points, path: maskPath) else { continue }
            var mask = Vigil_V1_PrivacyMask()
            mask.maskID = id
            mask.area = polygon
            masks.append(mask)
        }
        return masks.sorted { $0.maskID < $1.maskID }
    }
}
