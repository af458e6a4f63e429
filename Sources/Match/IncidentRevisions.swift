import Crypto
import Foundation
import SwiftProtobuf
import VigilSchema

/// The parts of an incident that follow from its rule and window: the deterministic id (the
/// formula documented on `Incident.incident_id`) and the one-line summary.
enum IncidentText {
    /// Lowercase hex of the first 16 bytes of SHA-256 over `rule_id` 0x00 `camera_id` 0x00
    /// `window_start` (decimal Unix nanoseconds).
    static func id(ruleID: String, cameraID: String, windowStartMilliseconds: Int64) -> String {
        let text = "\(ruleID)\u{0}\(cameraID)\u{0}\(windowStartMilliseconds * 1_000_000)"
        return SHA256.hash(data: Data(text.utf8)).prefix(16).map { String(format: "%02x", $0) }.joined()
    }

    /// One line for operators, from what the incident holds.
    /// - Parameter reason: camera offline: the health record's reason.
    static func summary(_ incident: Vigil_V1_Incident, rule: Vigil_V1_Rule, reason: String = "") -> String {
        let start = incident.windowStart.milliseconds
        let lasted = seconds(incident.windowEnd.milliseconds - start)
        let objects = objectNoun(rule)
        var text: String
        switch incident.kind {
        case .zoneIntrusion:
            text = "\(count(incident.keyObjects.count, objects)) in the zone of rule \(incident.ruleID)"
            if lasted != "0 s" { text += " for \(lasted)" }
        case .hazardDwell:
            let dwell = seconds(incident.keyFrameTime.milliseconds - start)
            text = "\(count(incident.keyObjects.count, objects)) in the hazardous zone of rule \(incident.ruleID) for \(dwell) (limit \(seconds(rule.hazardDwell.dwell.milliseconds)))"
        case .lineCrossing:
            let total = incident.forwardCrossings + incident.backwardCrossings
            text = "\(count(Int(total), "crossing")) of the line of rule \(incident.ruleID): \(incident.forwardCrossings) forward, \(incident.backwardCrossings) backward"
        case .crowdDensity:
            text = "\(count(Int(incident.peakCount), objects)) in the zone of rule \(incident.ruleID) (limit \(incident.limitCount))"
            if lasted != "0 s" { text += " for \(lasted)" }
        case .cameraTamper:
            let kinds = incident.tamperKinds.map { String(describing: $0) }.joined(separator: ", ")
            text = "camera \(kinds) for \(seconds(incident.keyFrameTime.milliseconds - start))"
        case .cameraOffline:
            text = "camera \(incident.cameraState == .stalled ? "stalled" : "offline") for \(seconds(incident.keyFrameTime.milliseconds - start))"
            if !reason.isEmpty { text += " (\(reason))" }
        case .personDown:
            let lying = seconds(incident.keyFrameTime.milliseconds - start)
            text = "\(count(incident.keyObjects.count, "person")) lying down for \(lying) (limit \(seconds(rule.personDown.lyingFor.milliseconds))), rule \(incident.ruleID)"
        case .wrongWay:
            text = "\(count(incident.keyObjects.count, objects)) going the wrong way through the zone of rule \(incident.ruleID)"
        case .detectorClass:
            let classes = Set(incident.keyObjects.map(\.classLabel)).sorted()
            let parameters = rule.detectorClass
            text = "\(classes.isEmpty ? objects : classes.joined(separator: ", ")) seen in \(parameters.minFrames) or more of \(parameters.ofLastFrames) frames, rule \(incident.ruleID)"
            if lasted != "0 s" { text += ", for \(lasted)" }
        case .suddenMotion:
            var seen: [String] = []
            if incident.peakSpeed > 0 { seen.append(String(format: "a track at %.2f of the frame per second", incident.peakSpeed)) }
            if incident.peakMotionFraction > 0 { seen.append(String(format: "motion over %.0f%% of the zone", incident.peakMotionFraction * 100)) }
            text = "sudden motion (a heuristic): \(seen.joined(separator: " and ")), rule \(incident.ruleID)"
        case .abandonedObject:
            let still = seconds(incident.keyFrameTime.milliseconds - start)
            text = "\(count(incident.keyObjects.count, "object")) left with nobody near for \(still) (limit \(seconds(rule.abandonedObject.stationaryFor.milliseconds))), rule \(incident.ruleID)"
        case .redactionHealth:
            text = "redaction may be failing on camera \(incident.cameraID): \(incident.redactionFailure)"
        default:
            text = "rule \(incident.ruleID) fired"
        }
        if !incident.purpose.isEmpty { text += " — \(incident.purpose)" }
        if incident.state == .closed { text += "; cleared after \(lasted)" }
        return text
    }

    private static func objectNoun(_ rule: Vigil_V1_Rule) -> String {
        let filter: Vigil_V1_ObjectFilter = switch rule.parameters {
        case .zoneIntrusion(let parameters): parameters.objects
        case .hazardDwell(let parameters): parameters.objects
        case .crowdDensity(let parameters): parameters.objects
        case .lineCrossing(let parameters): parameters.objects
        case .wrongWay(let parameters): parameters.objects
        case .detectorClass(let parameters): parameters.objects
        case .suddenMotion(let parameters): parameters.objects
        default: Vigil_V1_ObjectFilter()
        }
        return filter.classLabels.count == 1 ? filter.classLabels[0] : filter.classLabels.isEmpty ? "person" : "object"
    }

    private static func count(_ number: Int, _ noun: String) -> String {
        "\(number) \(noun)\(number == 1 ? "" : "s")"
    }

    private static func seconds(_ milliseconds: Int64) -> String {
        milliseconds % 1_000 == 0 || milliseconds >= 60_000 ? "\(milliseconds / 1_000) s" : String(format: "%.1f s", Double(milliseconds) / 1_000)
    }
}
