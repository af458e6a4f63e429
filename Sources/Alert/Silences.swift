import Foundation
import SwiftProtobuf
import VigilSchema
import WorkerRuntime

/// Maintenance windows: the `silences.v1` table, and which incidents a silence covers.
public enum Silences {
    public static let topic = "silences.v1"
    /// Kinds whose alerts no silence may hide: a masking failure or a covered lens is exactly
    /// what a maintenance window must not swallow. They can only be acknowledged.
    public static let unsilenceable: Set<Vigil_V1_RuleKind> = [.redactionHealth, .cameraTamper]

    public static func table() -> Table<Vigil_V1_Silence> {
        Table(topic: topic) { key, bytes in
            let silence = try Vigil_V1_Silence(serializedBytes: bytes)
            guard silence.silenceID == key else { throw SilenceRecordMismatch(key: key, silenceID: silence.silenceID) }
            return silence
        }
    }

    /// Whether `silence` covers `incident` at `eventTime` (ms): its cameras and rules match (an
    /// empty list matches all, but a silence naming neither matches nothing) and the time lies
    /// in [start, end).
    public static func covers(_ silence: Vigil_V1_Silence, _ incident: Vigil_V1_Incident, at eventTime: Int64) -> Bool {
        guard !unsilenceable.contains(incident.kind), !(silence.cameraIds.isEmpty && silence.ruleIds.isEmpty) else { return false }
        return (silence.cameraIds.isEmpty || silence.cameraIds.contains(incident.cameraID))
            && (silence.ruleIds.isEmpty || silence.ruleIds.contains(incident.ruleID))
            && silence.startTime.milliseconds <= eventTime && eventTime < silence.endTime.milliseconds
    }

    /// The first silence of `table` covering `incident` at `eventTime`, by id.
    public static func covering(_ incident: Vigil_V1_Incident, at eventTime: Int64, in table: Table<Vigil_V1_Silence>) -> Vigil_V1_Silence? {
        table.keys.sorted().lazy.compactMap { table.current($0) }.first { covers($0, incident, at: eventTime) }
    }
}

/// A `silences.v1` record whose value names another silence than its key.
struct SilenceRecordMismatch: Error, CustomStringConvertible {
    var key: String
    var silenceID: String

    var description: String { "the record's key is \(key) but its silence is \"\(silenceID)\"" }
}
