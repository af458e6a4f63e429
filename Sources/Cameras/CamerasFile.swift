import Foundation
import VigilSchema
import Yams

/// A problem in a cameras file, located by file, line, camera and key:
/// `cameras.yaml:12:7: cameras.dock-1.sampling.fsp: unknown key; expected fps or keyframes_only`.
public struct CamerasFileError: Error, Sendable, Hashable, CustomStringConvertible {
    public var file: String
    public var line: Int?
    public var column: Int?
    /// `cameras.<camera>.<key>…`; nil for problems of the whole file.
    public var keyPath: String?
    public var message: String

    public var description: String {
        var location = file
        if let line {
            location += ":\(line)"
            if let column { location += ":\(column)" }
        }
        return "\(location): " + (keyPath.map { "\($0): " } ?? "") + message
    }
}

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
        var parser = Parser(file: file)
        let cameras = parser.parse(yaml)
        guard parser.errors.isEmpty else {
            throw CamerasFileErrors(errors: parser.errors.sorted { ($0.line ?? 0, $0.column ?? 0) < ($1.line ?? 0, $1.column ?? 0) })
        }
        return cameras
    }

    public static func load(path: String) throws(CamerasFileErrors) -> [Vigil_V1_CameraConfig] {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw CamerasFileErrors(errors: [CamerasFileError(file: path, message: "cannot read the file: \(error.localizedDescription)")])
        }
        return try parse(yaml: text, file: path)
    }
}

/// Every problem found in a cameras file.
public struct CamerasFileErrors: Error, Sendable, CustomStringConvertible {
    public var errors: [CamerasFileError]

    public var description: String { errors.map(\.description).joined(separator: "\n") }
}

private struct Parser {
    let file: String
    var errors: [CamerasFileError] = []

    init(file: String) {
        self.file = file
    }

    static let cameraKeys = [
        "source", "credentials", "sampling", "working_resolution", "redaction", "snapshots_per_minute", "privacy_masks", "labels", "motion_gating",
    ]
    /// Query parameters that carry secrets in stream URLs seen in the wild.
    static let secretParameters: Set<String> = ["password", "passwd", "pwd", "pass", "token", "secret", "key", "apikey", "api_key", "auth"]

    mutating func parse(_ yaml: String) -> [Vigil_V1_CameraConfig] {
        let root: Node
        do {
            guard let composed = try Yams.compose(yaml: yaml) else {
                fail(nil, nil, "the file is empty; it needs a `cameras:` mapping")
                return []
            }
            root = composed
        } catch let error as YamlError {
            fail(nil, nil, "YAML syntax error: \(error)")
            return []
        } catch {
            fail(nil, nil, "not readable as YAML: \(error)")
            return []
        }
        guard let top = mapping(root, path: nil) else { return [] }
        for (key, _) in top where key.string != "cameras" {
            fail(key, key.string ?? "?", "unknown key; a cameras file has only `cameras:`")
        }
        guard let camerasNode = top["cameras"] else {
            fail(root, nil, "has no `cameras:` mapping (camera id → its configuration)")
            return []
        }
        guard let cameras = mapping(camerasNode, path: "cameras") else { return [] }
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

    /// A key given without a value (`privacy_masks:` with nothing under it) means "none".
    static func isNull(_ node: Node) -> Bool {
        guard case .scalar(let scalar) = node else { return false }
        return ["", "~", "null", "Null", "NULL"].contains(scalar.string)
    }

    static func isValidID(_ id: String) -> Bool {
        guard let first = id.unicodeScalars.first, id.unicodeScalars.count <= 64 else { return false }
        let allowed = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyz0123456789-_.")
        return CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyz0123456789").contains(first) && id.unicodeScalars.allSatisfy(allowed.contains)
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
        if let classes = body["masked_classes"] {
            guard case .sequence(let items) = classes else {
                fail(classes, "\(path).masked_classes", "must be a list of object-detector slot classes, e.g. [vehicle]")
                return policy
            }
            for item in items {
                guard let text = scalar(item, path: "\(path).masked_classes"), !text.isEmpty else { continue }
                policy.maskedClasses.append(text)
            }
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
            guard case .sequence(let vertices) = points, vertices.count >= 3 else {
                fail(points, maskPath, "must list at least 3 points [x, y], each from 0 to 1 (fractions of the frame, origin top-left)")
                continue
            }
            var polygon = Vigil_V1_Polygon()
            for (index, vertex) in vertices.enumerated() {
                guard case .sequence(let pair) = vertex, pair.count == 2,
                      let x = pair[0].float, let y = pair[1].float, (0...1).contains(x), (0...1).contains(y) else {
                    fail(vertex, "\(maskPath)[\(index)]", "must be a point [x, y] with x and y from 0 to 1")
                    continue
                }
                var point = Vigil_V1_Point()
                point.x = Float(x)
                point.y = Float(y)
                polygon.vertices.append(point)
            }
            var mask = Vigil_V1_PrivacyMask()
            mask.maskID = id
            mask.area = polygon
            masks.append(mask)
        }
        return masks.sorted { $0.maskID < $1.maskID }
    }

    // MARK: - Node helpers that report what they expected

    mutating func mapping(_ node: Node, path: String?) -> Node.Mapping? {
        guard case .mapping(let mapping) = node else {
            fail(node, path, "expected a mapping (key: value lines)")
            return nil
        }
        return mapping
    }

    mutating func scalar(_ node: Node, path: String) -> String? {
        guard case .scalar(let scalar) = node else {
            fail(node, path, "expected a single value")
            return nil
        }
        return scalar.string
    }

    mutating func number(_ node: Node, path: String, in range: ClosedRange<Double>) -> Double? {
        guard let value = node.float, range.contains(value) else {
            fail(node, path, "must be a number from \(range.lowerBound.formatted()) to \(range.upperBound.formatted())")
            return nil
        }
        return value
    }

    mutating func bool(_ node: Node, path: String) -> Bool? {
        guard let value = node.bool else {
            fail(node, path, "must be true or false")
            return nil
        }
        return value
    }

    mutating func rejectUnknownKeys(_ mapping: Node.Mapping, allowed: [String], path: String) {
        for (key, _) in mapping where !allowed.contains(key.string ?? "") {
            fail(key, "\(path).\(key.string ?? "?")", "unknown key; expected \(Self.list(allowed))")
        }
    }

    static func list(_ names: [String]) -> String {
        names.count == 1 ? names[0] : names.dropLast().joined(separator: ", ") + " or " + names.last!
    }

    mutating func fail(_ node: Node?, _ path: String?, _ message: String) {
        errors.append(CamerasFileError(file: file, line: node?.mark.map { $0.line }, column: node?.mark.map { $0.column }, keyPath: path, message: message))
    }
}
