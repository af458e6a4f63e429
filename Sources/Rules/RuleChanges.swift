import Foundation
import SwiftProtobuf
import VigilSchema
import WorkerRuntime

/// What `vigil rules apply` would do: per rule, the change and the record to publish.
public typealias RulePlan = DeclaredTablePlan<Vigil_V1_Rule>

extension DeclaredValueKind where Value == Vigil_V1_Rule {
    /// Rules: compared on what the file declares, each changed part shown whole (the audit
    /// event carries the full diff).
    public static let rule = DeclaredValueKind(
        noun: "rule", id: \.ruleID, version: \.version,
        stamp: { rule, version, author, milliseconds in
            rule.version = version
            rule.author = author
            rule.updatedTime = .init(date: Date(timeIntervalSince1970: Double(milliseconds) / 1_000))
        },
        differences: { RuleChanges.differences(from: $0, to: $1) }, summary: { RuleChanges.summary($0) },
        removal: "rule removed: vigil-match closes its open incidents"
    )
}

public enum RuleChanges {
    /// The parts of the rule that changed, each as "part: before → after".
    public static func differences(from old: Vigil_V1_Rule, to new: Vigil_V1_Rule) -> [String] {
        let parts: [(String, (Vigil_V1_Rule) -> String)] = [
            ("kind", { describe($0.kind) }),
            ("cameras", { $0.cameraIds.joined(separator: ", ") }),
            ("camera labels", { $0.cameraSelector.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",") }),
            ("geometry", { geometry($0) }),
            ("parameters", { parameters($0) }),
            ("severity", { describe($0.severity) }),
            ("enabled", { $0.enabled ? "yes" : "no" }),
            ("purpose", { $0.purpose }),
            ("close after", { $0.hasCloseAfter ? oneLine($0.closeAfter) : "default" }),
            ("schedule", { $0.hasSchedule ? $0.schedule.summary : "always" }),
        ]
        return parts.compactMap { name, part in
            let before = part(old), after = part(new)
            return before == after ? nil : "\(name): \(before.isEmpty ? "none" : before) → \(after.isEmpty ? "none" : after)"
        }
    }

    public static func summary(_ rule: Vigil_V1_Rule) -> String {
        let cameras = rule.cameraIds.isEmpty ? "" : "cameras \(rule.cameraIds.joined(separator: ", "))"
        let labels = rule.cameraSelector.isEmpty ? "" : "cameras labelled \(rule.cameraSelector.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ","))"
        return "\(describe(rule.kind)) on \([cameras, labels].filter { !$0.isEmpty }.joined(separator: " and ")), severity \(describe(rule.severity))"
    }

    public static func describe(_ kind: Vigil_V1_RuleKind) -> String {
        switch kind {
        case .zoneIntrusion: "zone_intrusion"
        case .lineCrossing: "line_crossing"
        case .hazardDwell: "hazard_dwell"
        case .crowdDensity: "crowd_density"
        case .personDown: "person_down"
        case .abandonedObject: "abandoned_object"
        case .wrongWay: "wrong_way"
        case .detectorClass: "detector_class"
        case .cameraTamper: "camera_tamper"
        case .cameraOffline: "camera_offline"
        case .redactionHealth: "redaction_health"
        case .suddenMotion: "sudden_motion"
        default: "unspecified"
        }
    }

    public static func describe(_ severity: Vigil_V1_Severity) -> String {
        switch severity {
        case .info: "info"
        case .warning: "warning"
        case .major: "major"
        case .critical: "critical"
        default: "unspecified"
        }
    }

    private static func geometry(_ rule: Vigil_V1_Rule) -> String {
        switch rule.geometry {
        case .zone(let zone): "zone " + zone.vertices.map { "[\($0.x), \($0.y)]" }.joined(separator: " ")
        case .line(let line): "line [\(line.start.x), \(line.start.y)] → [\(line.end.x), \(line.end.y)]"
        case nil: ""
        }
    }

    private static func parameters(_ rule: Vigil_V1_Rule) -> String {
        switch rule.parameters {
        case .zoneIntrusion(let value): oneLine(value)
        case .lineCrossing(let value): oneLine(value)
        case .hazardDwell(let value): oneLine(value)
        case .crowdDensity(let value): oneLine(value)
        case .personDown(let value): oneLine(value)
        case .abandonedObject(let value): oneLine(value)
        case .wrongWay(let value): oneLine(value)
        case .detectorClass(let value): oneLine(value)
        case .cameraTamper(let value): oneLine(value)
        case .cameraOffline(let value): oneLine(value)
        case .suddenMotion(let value): oneLine(value)
        case .redactionHealth(let value): oneLine(value)
        case nil: ""
        }
    }

    /// A message in protobuf text format on one line.
    private static func oneLine(_ message: some SwiftProtobuf.Message) -> String {
        message.textFormatString().split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: " ")
    }
}
