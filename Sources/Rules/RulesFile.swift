import DeclarationFiles
import Foundation
import PlaneGeometry
import SwiftProtobuf
import VigilSchema
import Yams

/// The rules an operator declares in YAML files (`rules/*.yaml`), for `vigil rules apply`:
///
/// ```yaml
/// rules:
///   platform-2-edge:
///     cameras: [platform-2]              # and/or camera_labels: {site: north}
///     kind: hazard_dwell
///     zone: [[0.05, 0.80], [0.95, 0.75], [0.95, 0.95], [0.05, 0.95]]
///     objects: {classes: [person], min_score: 0.5}
///     dwell: 10s
///     severity: critical
///     purpose: Nobody stays on the track side of the platform edge
/// ```
///
/// Coordinates are fractions of the frame (0 to 1, origin top-left). Kinds and their keys:
///
/// | kind | geometry | keys |
/// |---|---|---|
/// | `zone_intrusion` | `zone` | `objects`, `confirm_after` |
/// | `line_crossing` | `line: {from: [x, y], to: [x, y]}` | `objects`, `direction` (forward, backward, both) |
/// | `hazard_dwell` | `zone` | `objects`, `dwell` |
/// | `crowd_density` | `zone` | `objects`, `max_count` or `area_m2` + `max_per_m2`, `sustained_for`; `purpose` required |
/// | `camera_tamper` | none | `tamper_kinds` (covered, defocused, moved), `min_score`, `sustained_for` |
/// | `camera_offline` | none | `states` (offline, stalled), `sustained_for` |
/// | `person_down` | optional `zone` | `lying_for`, `min_score`, `min_width_to_height` |
/// | `abandoned_object` | optional `zone` | `stationary_for`, `clearance`, `objects` (stationary objects of these classes besides static regions) |
/// | `wrong_way` | `zone` | `direction: [x, y]`, `min_displacement`, `objects` |
/// | `detector_class` | optional `zone` | `objects` (classes required), `min_frames`, `of_last_frames` |
/// | `sudden_motion` | optional `zone` | `min_speed` and/or `min_motion_fraction`, `sustained_for`, `objects`; `purpose` required |
/// | `redaction_health` | none | `sustained_for`, `max_snapshot_gap` |
///
/// Every rule may also give `severity` (info, warning, major, critical; default warning),
/// `purpose`, `enabled` (default true), `close_after` (how long the condition must stop
/// holding before its incident closes; default 5s) and `schedule` (when it is active:
/// `{time_zone: Europe/Berlin, windows: [{days: [mon, fri], from: "08:00", to: "18:00"}]}`) and
/// `alert` (vigil-alert's policy: `{confirm_revisions: 2, confirm_within: 30s, escalate_after: 10m}`,
/// each key defaulting by kind). Every problem is collected, each with its file, line,
/// rule and key.
public enum RulesFile {
    /// Classes detect publishes without an operator model.
    public static let builtInClasses: Set<String> = ["person"]

    /// Parses and checks `yaml`; `knownClasses` are the object classes rules may name (person,
    /// and the classes of detect's slot models). Versions, authors and times are left unset.
    public static func parse(yaml: String, file: String, knownClasses: Set<String> = builtInClasses) throws(DeclarationProblems) -> [Vigil_V1_Rule] {
        var reader = DeclarationReader(file: file)
        let rules = reader.rules(yaml, knownClasses: knownClasses)
        guard reader.errors.isEmpty else { throw DeclarationProblems(errors: reader.errors) }
        return rules
    }

    /// Every file's rules; ids must be unique across the files.
    public static func load(paths: [String], knownClasses: Set<String> = builtInClasses) throws(DeclarationProblems) -> [Vigil_V1_Rule] {
        try loadDeclarations(paths: paths, section: "rules", noun: "rule", id: \.ruleID) { yaml, file throws(DeclarationProblems) in
            try parse(yaml: yaml, file: file, knownClasses: knownClasses)
        }
    }
}

private enum Kind: String, CaseIterable {
    case zoneIntrusion = "zone_intrusion", lineCrossing = "line_crossing", hazardDwell = "hazard_dwell"
    case crowdDensity = "crowd_density", cameraTamper = "camera_tamper", cameraOffline = "camera_offline"
    case personDown = "person_down", abandonedObject = "abandoned_object", wrongWay = "wrong_way"
    case detectorClass = "detector_class", suddenMotion = "sudden_motion", redactionHealth = "redaction_health"

    var schema: Vigil_V1_RuleKind {
        switch self {
        case .zoneIntrusion: .zoneIntrusion
        case .lineCrossing: .lineCrossing
        case .hazardDwell: .hazardDwell
        case .crowdDensity: .crowdDensity
        case .cameraTamper: .cameraTamper
        case .cameraOffline: .cameraOffline
        case .personDown: .personDown
        case .abandonedObject: .abandonedObject
        case .wrongWay: .wrongWay
        case .detectorClass: .detectorClass
        case .suddenMotion: .suddenMotion
        case .redactionHealth: .redactionHealth
        }
    }

    /// The keys of this kind besides those every rule has.
    var keys: [String] {
        switch self {
        case .zoneIntrusion: ["zone", "objects", "confirm_after"]
        case .lineCrossing: ["line", "objects", "direction"]
        case .hazardDwell: ["zone", "objects", "dwell"]
        case .crowdDensity: ["zone", "objects", "max_count", "area_m2", "max_per_m2", "sustained_for"]
        case .cameraTamper: ["tamper_kinds", "min_score", "sustained_for"]
        case .cameraOffline: ["states", "sustained_for"]
        case .personDown: ["zone", "lying_for", "min_score", "min_width_to_height"]
        case .abandonedObject: ["zone", "objects", "stationary_for", "clearance"]
        case .wrongWay: ["zone", "objects", "direction", "min_displacement"]
        case .detectorClass: ["zone", "objects", "min_frames", "of_last_frames"]
        case .suddenMotion: ["zone", "objects", "min_speed", "min_motion_fraction", "sustained_for"]
        case .redactionHealth: ["sustained_for", "max_snapshot_gap"]
        }
    }
}

private extension DeclarationReader {
    static let commonKeys = ["cameras", "camera_labels", "kind", "severity", "purpose", "enabled", "close_after", "schedule", "alert"]
    static let alertKeys = ["confirm_revisions", "confirm_within", "escalate_after"]

    mutating func rules(_ yaml: String, knownClasses: Set<String>) -> [Vigil_V1_Rule] {
        guard let rules = section(yaml, top: "rules", holding: "rule id → the rule") else { return [] }
        var parsed: [Vigil_V1_Rule] = []
        for (idNode, body) in rules {
            let id = idNode.string ?? ""
            let path = "rules.\(id)"
            guard Self.isValidID(id) else {
                fail(idNode, path, "is not a valid rule id: use 1 to 64 lowercase letters, digits, '-', '_' or '.', starting with a letter or digit")
                continue
            }
            if let rule = rule(id: id, body, path: path, knownClasses: knownClasses) { parsed.append(rule) }
        }
        return parsed.sorted { $0.ruleID < $1.ruleID }
    }

    mutating func rule(id: String, _ node: Node, path: String, knownClasses: Set<String>) -> Vigil_V1_Rule? {
        guard let body = mapping(node, path: path) else { return nil }
        let before = errors.count
        if id.hasPrefix("vigil-") {
            // vigil's own checks (the built-in redaction health) carry these ids.
            fail(node, path, "uses the reserved prefix vigil-; give the rule another id")
            return nil
        }
        var rule = Vigil_V1_Rule()
        rule.ruleID = id
        rule.enabled = true
        rule.severity = .warning
        guard let kindNode = body["kind"], let kindText = scalar(kindNode, path: "\(path).kind") else {
            fail(node, "\(path).kind", "is missing; one of \(Self.list(Kind.allCases.map(\.rawValue)))")
            return nil
        }
        guard let kind = Kind(rawValue: kindText) else {
            fail(kindNode, "\(path).kind", "\"\(kindText)\" is not a rule kind; use \(Self.list(Kind.allCases.map(\.rawValue)))")
            return nil
        }
        rule.kind = kind.schema
        for (key, _) in body where !(Self.commonKeys + kind.keys).contains(key.string ?? "") {
            let name = key.string ?? "?"
            let owners = Kind.allCases.filter { $0.keys.contains(name) }.map(\.rawValue)
            let hint = owners.isEmpty ? "" : " (it belongs to \(Self.list(owners)))"
            fail(key, "\(path).\(name)", "is not a key of a \(kind.rawValue) rule\(hint); it takes \(Self.list(Self.commonKeys + kind.keys))")
        }
        cameras(body, into: &rule, node: node, path: path)
        if let severity = body["severity"], let text = scalar(severity, path: "\(path).severity") {
            switch text {
            case "info": rule.severity = .info
            case "warning": rule.severity = .warning
            case "major": rule.severity = .major
            case "critical": rule.severity = .critical
            default: fail(severity, "\(path).severity", "must be info, warning, major or critical")
            }
        }
        if let purpose = body["purpose"], let text = scalar(purpose, path: "\(path).purpose") { rule.purpose = text }
        if let enabled = body["enabled"], let flag = bool(enabled, path: "\(path).enabled") { rule.enabled = flag }
        if let value = body["close_after"], let closeAfter = duration(value, path: "\(path).close_after") { rule.closeAfter = closeAfter }
        if let value = body["schedule"], let schedule = schedule(value, path: "\(path).schedule") { rule.schedule = schedule }
        if let value = body["alert"], let policy = alertPolicy(value, path: "\(path).alert") { rule.alertPolicy = policy }

        switch kind {
        case .zoneIntrusion:
            rule.zone = zone(body, node: node, path: path) ?? .init()
            var parameters = Vigil_V1_ZoneIntrusionParameters()
            parameters.objects = objects(body["objects"], path: "\(path).objects", knownClasses: knownClasses)
            if let value = body["confirm_after"] { parameters.confirmAfter = duration(value, path: "\(path).confirm_after") ?? .init() }
            rule.zoneIntrusion = parameters
        case .lineCrossing:
            rule.line = line(body, node: node, path: path) ?? .init()
            var parameters = Vigil_V1_LineCrossingParameters()
            parameters.objects = objects(body["objects"], path: "\(path).objects", knownClasses: knownClasses)
            parameters.direction = .both
            if let value = body["direction"], let text = scalar(value, path: "\(path).direction") {
                switch text {
                case "forward": parameters.direction = .forward
                case "backward": parameters.direction = .backward
                case "both": parameters.direction = .both
                default: fail(value, "\(path).direction", "must be forward (from the left of from→to to its right, as seen in the image), backward or both")
                }
            }
            rule.lineCrossing = parameters
        case .hazardDwell:
            rule.zone = zone(body, node: node, path: path) ?? .init()
            var parameters = Vigil_V1_HazardDwellParameters()
            parameters.objects = objects(body["objects"], path: "\(path).objects", knownClasses: knownClasses)
            parameters.dwell = required(body, "dwell", node: node, path: path, hint: "how long a track may stay in the zone, e.g. 10s") ?? .init()
            rule.hazardDwell = parameters
        case .crowdDensity:
            rule.zone = zone(body, node: node, path: path) ?? .init()
            rule.crowdDensity = crowd(body, node: node, path: path, knownClasses: knownClasses)
            if rule.purpose.trimmingCharacters(in: .whitespaces).count < 10 {
                fail(body["purpose"] ?? node, "\(path).purpose", "must state the safety purpose of a crowd rule (capacity, crush risk…) in words; it is shown on its incidents and audited. Monitoring lawful assembly or protest, or targeting groups, is a prohibited use")
            }
        case .cameraTamper:
            var parameters = Vigil_V1_CameraTamperParameters()
            if let value = body["tamper_kinds"], let names = strings(value, path: "\(path).tamper_kinds") {
                for name in names {
                    switch name {
                    case "covered": parameters.kinds.append(.covered)
                    case "defocused": parameters.kinds.append(.defocused)
                    case "moved": parameters.kinds.append(.moved)
                    default: fail(value, "\(path).tamper_kinds", "\"\(name)\" is not a tamper kind; use covered, defocused or moved")
                    }
                }
            }
            if let value = body["min_score"], let score = number(value, path: "\(path).min_score", in: 0...1) { parameters.minScore = Float(score) }
            if let value = body["sustained_for"] { parameters.sustainedFor = duration(value, path: "\(path).sustained_for") ?? .init() }
            rule.cameraTamper = parameters
        case .cameraOffline:
            var parameters = Vigil_V1_CameraOfflineParameters()
            if let value = body["states"], let names = strings(value, path: "\(path).states") {
                for name in names {
                    switch name {
                    case "offline": parameters.states.append(.offline)
                    case "stalled": parameters.states.append(.stalled)
                    default: fail(value, "\(path).states", "\"\(name)\" is not a camera state a rule can watch; use offline or stalled")
                    }
                }
            }
            if let value = body["sustained_for"] { parameters.sustainedFor = duration(value, path: "\(path).sustained_for") ?? .init() }
            rule.cameraOffline = parameters
        case .personDown:
            if body["zone"] != nil { rule.zone = zone(body, node: node, path: path) ?? .init() }
            var parameters = Vigil_V1_PersonDownParameters()
            parameters.minScore = 0.5
            parameters.lyingFor = required(body, "lying_for", node: node, path: path, hint: "how long a person must stay lying, e.g. 5s") ?? .init()
            if let value = body["min_score"], let score = number(value, path: "\(path).min_score", in: 0...1) { parameters.minScore = Float(score) }
            if let value = body["min_width_to_height"], let ratio = number(value, path: "\(path).min_width_to_height", in: 1...10) { parameters.minWidthToHeight = Float(ratio) }
            rule.personDown = parameters
        case .abandonedObject:
            if body["zone"] != nil { rule.zone = zone(body, node: node, path: path) ?? .init() }
            var parameters = Vigil_V1_AbandonedObjectParameters()
            // Without `objects`, static regions only: detect's person model names no bag.
            if body["objects"] != nil { parameters.objects = objects(body["objects"], path: "\(path).objects", knownClasses: knownClasses) }
            if parameters.objects.classLabels.contains("person") {
                fail(body["objects"] ?? node, "\(path).objects.classes", "cannot include person: a person standing still is not an abandoned object")
            }
            parameters.stationaryFor = required(body, "stationary_for", node: node, path: path, hint: "how long an object must stay still with nobody near, e.g. 60s") ?? .init()
            parameters.clearance = 0.1
            if let value = body["clearance"], let clearance = number(value, path: "\(path).clearance", in: 0...1) { parameters.clearance = Float(clearance) }
            rule.abandonedObject = parameters
        case .wrongWay:
            rule.zone = zone(body, node: node, path: path) ?? .init()
            var parameters = Vigil_V1_WrongWayParameters()
            parameters.objects = objects(body["objects"], path: "\(path).objects", knownClasses: knownClasses)
            parameters.minDisplacement = 0.1
            if let value = body["direction"] {
                if case .sequence(let pair) = value, pair.count == 2, let x = pair[0].float, let y = pair[1].float, x != 0 || y != 0 {
                    parameters.direction = .with { $0.x = Float(x); $0.y = Float(y) }
                } else {
                    fail(value, "\(path).direction", "must be a vector [x, y], not [0, 0]: the way traffic should go, e.g. [1, 0] for left to right, [0, 1] for downwards")
                }
            } else {
                fail(node, "\(path).direction", "is missing: the way traffic should go through the zone as [x, y], e.g. [1, 0] for left to right, [0, 1] for downwards")
            }
            if let value = body["min_displacement"], let distance = number(value, path: "\(path).min_displacement", in: 0.01...1) { parameters.minDisplacement = Float(distance) }
            rule.wrongWay = parameters
        case .detectorClass:
            if body["zone"] != nil { rule.zone = zone(body, node: node, path: path) ?? .init() }
            var parameters = Vigil_V1_DetectorClassParameters()
            if body["objects"] == nil {
                fail(node, "\(path).objects", "is missing: the classes to watch, e.g. {classes: [smoke], min_score: 0.6}; they come from an operator model in detect's slot")
            }
            parameters.objects = objects(body["objects"], path: "\(path).objects", knownClasses: knownClasses)
            parameters.minFrames = 3
            parameters.ofLastFrames = 5
            if let value = body["of_last_frames"], let frames = number(value, path: "\(path).of_last_frames", in: 1...64) { parameters.ofLastFrames = UInt32(frames) }
            if let value = body["min_frames"], let frames = number(value, path: "\(path).min_frames", in: 1...64) { parameters.minFrames = UInt32(frames) }
            if parameters.minFrames > parameters.ofLastFrames {
                fail(body["min_frames"] ?? node, "\(path).min_frames", "is \(parameters.minFrames), more than of_last_frames (\(parameters.ofLastFrames)): the class must be seen in min_frames of the last of_last_frames frames")
            }
            rule.detectorClass = parameters
        case .suddenMotion:
            if body["zone"] != nil { rule.zone = zone(body, node: node, path: path) ?? .init() }
            var parameters = Vigil_V1_SuddenMotionParameters()
            parameters.objects = objects(body["objects"], path: "\(path).objects", knownClasses: knownClasses)
            if let value = body["min_speed"], let speed = number(value, path: "\(path).min_speed", in: 0.01...10) { parameters.minSpeed = Float(speed) }
            if let value = body["min_motion_fraction"], let fraction = number(value, path: "\(path).min_motion_fraction", in: 0.01...1) {
                parameters.minMotionFraction = Float(fraction)
            }
            if body["min_speed"] == nil && body["min_motion_fraction"] == nil {
                fail(node, path, "give min_speed (a track's speed in fractions of the frame per second, e.g. 0.5) and/or min_motion_fraction (the share of the zone in motion, e.g. 0.6)")
            }
            if let value = body["sustained_for"] { parameters.sustainedFor = duration(value, path: "\(path).sustained_for") ?? .init() }
            rule.suddenMotion = parameters
            if rule.purpose.trimmingCharacters(in: .whitespaces).count < 10 {
                fail(body["purpose"] ?? node, "\(path).purpose", "must state the safety purpose of a sudden-motion rule (panic near the exits, a stampede on the stairs…) in words; it is shown on its incidents and audited. It is a motion heuristic, not a fight detector; monitoring lawful assembly or protest, or targeting groups, is a prohibited use")
            }
        case .redactionHealth:
            var parameters = Vigil_V1_RedactionHealthParameters()
            parameters.sustainedFor = Google_Protobuf_Duration(seconds: 2)
            if let value = body["sustained_for"] { parameters.sustainedFor = duration(value, path: "\(path).sustained_for") ?? .init() }
            if let value = body["max_snapshot_gap"] { parameters.maxSnapshotGap = duration(value, path: "\(path).max_snapshot_gap") ?? .init() }
            rule.redactionHealth = parameters
        }
        return errors.count == before ? rule : nil
    }

    mutating func cameras(_ body: Node.Mapping, into rule: inout Vigil_V1_Rule, node: Node, path: String) {
        if let value = body["cameras"], let ids = strings(value, path: "\(path).cameras") {
            for id in ids where !Self.isValidID(id) {
                fail(value, "\(path).cameras", "\"\(id)\" is not a camera id")
            }
            rule.cameraIds = ids.filter(Self.isValidID)
        }
        if let value = body["camera_labels"], let labels = mapping(value, path: "\(path).camera_labels") {
            for (key, label) in labels {
                guard let name = key.string, Self.isValidID(name), let text = scalar(label, path: "\(path).camera_labels.\(name)") else {
                    fail(key, "\(path).camera_labels", "label names use lowercase letters, digits, '-', '_' or '.'")
                    continue
                }
                rule.cameraSelector[name] = text
            }
        }
        if rule.cameraIds.isEmpty && rule.cameraSelector.isEmpty {
            fail(node, "\(path).cameras", "is missing: name the cameras (cameras: [id, …]) or select them by label (camera_labels: {site: north})")
        }
    }

    /// A simple polygon of non-zero area inside the frame.
    mutating func zone(_ body: Node.Mapping, node: Node, path: String) -> Vigil_V1_Polygon? {
        guard let value = body["zone"] else {
            fail(node, "\(path).zone", "is missing: the zone's corners [[x, y], …], fractions of the frame")
            return nil
        }
        guard let polygon = polygon(value, path: "\(path).zone") else { return nil }
        let points = polygon.vertices.map(PlanePoint.init)
        if let (first, second) = PlaneGeometry.selfIntersection(points) {
            fail(value, "\(path).zone", "crosses itself: its edges \(first + 1) and \(second + 1) (from point \(first) and from point \(second)) intersect; list the corners in order around the zone")
            return nil
        }
        if abs(PlaneGeometry.doubleArea(points)) < 1e-6 {
            fail(value, "\(path).zone", "has no area: its corners lie on one line")
            return nil
        }
        return polygon
    }

    mutating func line(_ body: Node.Mapping, node: Node, path: String) -> Vigil_V1_DirectedLine? {
        guard let value = body["line"] else {
            fail(node, "\(path).line", "is missing: {from: [x, y], to: [x, y]}, fractions of the frame; forward crossings go from its left to its right")
            return nil
        }
        guard let ends = mapping(value, path: "\(path).line") else { return nil }
        rejectUnknownKeys(ends, allowed: ["from", "to"], path: "\(path).line")
        guard let fromNode = ends["from"], let toNode = ends["to"] else {
            fail(value, "\(path).line", "needs from: [x, y] and to: [x, y]")
            return nil
        }
        guard let from = point(fromNode, path: "\(path).line.from"), let to = point(toNode, path: "\(path).line.to") else { return nil }
        guard from != to else {
            fail(value, "\(path).line", "starts and ends at the same point")
            return nil
        }
        var line = Vigil_V1_DirectedLine()
        line.start = from
        line.end = to
        return line
    }

    /// The objects a rule counts: detector classes (default person) at or above a score.
    mutating func objects(_ node: Node?, path: String, knownClasses: Set<String>) -> Vigil_V1_ObjectFilter {
        var filter = Vigil_V1_ObjectFilter()
        filter.classLabels = ["person"]
        filter.minScore = 0.5
        guard let node, let body = mapping(node, path: path) else { return filter }
        rejectUnknownKeys(body, allowed: ["classes", "min_score"], path: path)
        if let value = body["classes"], let names = strings(value, path: "\(path).classes") {
            for name in names where !knownClasses.contains(name) {
                fail(value, "\(path).classes", "\"\(name)\" is not a class detect publishes; it publishes \(Self.list(knownClasses.sorted())) (an operator model's classes come with its slot file)")
            }
            if names.isEmpty { fail(value, "\(path).classes", "must name at least one class") }
            filter.classLabels = names
        }
        if let value = body["min_score"], let score = number(value, path: "\(path).min_score", in: 0...1) { filter.minScore = Float(score) }
        return filter
    }

    mutating func crowd(_ body: Node.Mapping, node: Node, path: String, knownClasses: Set<String>) -> Vigil_V1_CrowdDensityParameters {
        var parameters = Vigil_V1_CrowdDensityParameters()
        parameters.objects = objects(body["objects"], path: "\(path).objects", knownClasses: knownClasses)
        switch (body["max_count"], body["area_m2"], body["max_per_m2"]) {
        case (let count?, nil, nil):
            if let value = number(count, path: "\(path).max_count", in: 1...10_000) { parameters.maxCount = UInt32(value) }
        case (nil, let area?, let density?):
            if let area = number(area, path: "\(path).area_m2", in: 0.1...1_000_000), let density = number(density, path: "\(path).max_per_m2", in: 0.01...10) {
                parameters.zoneAreaSquareMetres = Float(area)
                parameters.maxPerSquareMetre = Float(density)
                parameters.maxCount = UInt32((area * density).rounded(.up))
            }
        default:
            fail(node, path, "give max_count (objects in the zone), or area_m2 (the zone's real area) with max_per_m2 (objects per square metre), not both")
        }
        parameters.sustainedFor = required(body, "sustained_for", node: node, path: path, hint: "how long the zone must stay that full, e.g. 30s") ?? .init()
        return parameters
    }

    /// A duration the kind cannot do without; a missing one is reported with `hint`.
    mutating func required(_ body: Node.Mapping, _ key: String, node: Node, path: String, hint: String) -> Google_Protobuf_Duration? {
        guard let value = body[key] else {
            fail(node, "\(path).\(key)", "is missing: \(hint)")
            return nil
        }
        return duration(value, path: "\(path).\(key)")
    }

    /// `{time_zone: Europe/Berlin, windows: [{days: [mon, tue], from: "08:00", to: "18:00"}]}`:
    /// weekly windows in the zone's local time. A window whose `to` is not after its `from`
    /// runs over midnight into the next day.
    mutating func schedule(_ node: Node, path: String) -> Vigil_V1_Schedule? {
        guard let body = mapping(node, path: path) else { return nil }
        rejectUnknownKeys(body, allowed: ["time_zone", "windows"], path: path)
        var schedule = Vigil_V1_Schedule()
        guard let zoneNode = body["time_zone"], let zone = scalar(zoneNode, path: "\(path).time_zone") else {
            fail(node, "\(path).time_zone", "is missing: the IANA time zone of the windows, e.g. Europe/Berlin or UTC, so that daylight saving is followed")
            return nil
        }
        guard TimeZone(identifier: zone) != nil else {
            fail(zoneNode, "\(path).time_zone", "\"\(zone)\" is not an IANA time zone; use a name such as Europe/Berlin, America/New_York or UTC")
            return nil
        }
        schedule.timeZone = zone
        guard let windowsNode = body["windows"], case .sequence(let windows) = windowsNode, !windows.isEmpty else {
            fail(body["windows"] ?? node, "\(path).windows", "needs at least one window: [{days: [mon, …], from: \"08:00\", to: \"18:00\"}]")
            return nil
        }
        let before = errors.count
        for (index, windowNode) in windows.enumerated() {
            let windowPath = "\(path).windows[\(index)]"
            guard let window = mapping(windowNode, path: windowPath) else { continue }
            rejectUnknownKeys(window, allowed: ["days", "from", "to"], path: windowPath)
            guard let daysNode = window["days"], let days = strings(daysNode, path: "\(windowPath).days"), !days.isEmpty else {
                fail(windowNode, "\(windowPath).days", "is missing: the weekdays, e.g. [mon, tue, wed, thu, fri]")
                continue
            }
            guard let from = window["from"].flatMap({ minuteOfDay($0, path: "\(windowPath).from") }),
                  let to = window["to"].flatMap({ minuteOfDay($0, path: "\(windowPath).to") }) else {
                if window["from"] == nil || window["to"] == nil { fail(windowNode, windowPath, "needs from: \"HH:MM\" and to: \"HH:MM\" (local time; to may be \"24:00\")") }
                continue
            }
            for name in days {
                guard let day = ScheduleDays.weekday(name) else {
                    fail(daysNode, "\(windowPath).days", "\"\(name)\" is not a weekday; use mon, tue, wed, thu, fri, sat or sun")
                    continue
                }
                if to > from {
                    schedule.windows.append(.with { $0.day = day; $0.startMinute = UInt32(from); $0.endMinute = UInt32(to) })
                } else {
                    // Over midnight: the evening of this day and the morning of the next.
                    schedule.windows.append(.with { $0.day = day; $0.startMinute = UInt32(from); $0.endMinute = 1_440 })
                    if to > 0 { schedule.windows.append(.with { $0.day = ScheduleDays.next(day); $0.startMinute = 0; $0.endMinute = UInt32(to) }) }
                }
            }
        }
        return errors.count == before ? schedule : nil
    }

    /// "HH:MM" (00:00 to 24:00) → minutes since midnight.
    mutating func minuteOfDay(_ node: Node, path: String) -> Int? {
        guard let text = scalar(node, path: path) else { return nil }
        let parts = text.split(separator: ":")
        guard parts.count == 2, parts[1].count == 2, let hours = Int(parts[0]), let minutes = Int(parts[1]), (0...59).contains(minutes),
              (0...23).contains(hours) || (hours == 24 && minutes == 0) else {
            fail(node, path, "\"\(text)\" is not a time of day; use \"HH:MM\", 00:00 to 24:00")
            return nil
        }
        return hours * 60 + minutes
    }

    /// `{confirm_revisions: 2, confirm_within: 30s, escalate_after: 10m}`: vigil-alert's policy;
    /// what is left out takes the rule kind's default (`escalate_after: 0s` never escalates).
    mutating func alertPolicy(_ node: Node, path: String) -> Vigil_V1_AlertPolicy? {
        guard let body = mapping(node, path: path) else { return nil }
        for (key, _) in body where !Self.alertKeys.contains(key.string ?? "") {
            fail(key, "\(path).\(key.string ?? "?")", "is not a key of a rule's alert policy; it takes \(Self.list(Self.alertKeys))")
        }
        var policy = Vigil_V1_AlertPolicy()
        if let value = body["confirm_revisions"], let count = number(value, path: "\(path).confirm_revisions", in: 1...100) {
            guard count == count.rounded() else {
                fail(value, "\(path).confirm_revisions", "must be a whole number of revisions from 1 to 100")
                return nil
            }
            policy.confirmRevisions = UInt32(count)
        }
        if let value = body["confirm_within"], let within = duration(value, path: "\(path).confirm_within") { policy.confirmWithin = within }
        if let value = body["escalate_after"], let after = duration(value, path: "\(path).escalate_after") { policy.escalateAfter = after }
        return policy
    }

    /// `500ms`, `10s`, `2m` or `1h`.
    mutating func duration(_ node: Node, path: String) -> Google_Protobuf_Duration? {
        guard let text = scalar(node, path: path) else { return nil }
        let units: [(suffix: String, milliseconds: Double)] = [("ms", 1), ("s", 1_000), ("m", 60_000), ("h", 3_600_000)]
        for unit in units where text.hasSuffix(unit.suffix) {
            guard let amount = Double(text.dropLast(unit.suffix.count)), amount >= 0, amount * unit.milliseconds <= 86_400_000 else { break }
            let milliseconds = Int64((amount * unit.milliseconds).rounded())
            return Google_Protobuf_Duration(seconds: milliseconds / 1_000, nanos: Int32(milliseconds % 1_000) * 1_000_000)
        }
        fail(node, path, "must be a duration up to a day such as 500ms, 10s, 2m or 1h")
        return nil
    }
}
