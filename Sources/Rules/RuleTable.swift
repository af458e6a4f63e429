import Foundation
import SwiftProtobuf
import VigilSchema
import WorkerRuntime

/// The `rules.v1` table: what vigil-match evaluates, by rule id.
public enum RuleTable {
    public static let topic = "rules.v1"

    public static func make(maxVersionsPerKey: Int = 16) -> Table<Vigil_V1_Rule> {
        Table(topic: topic, maxVersionsPerKey: maxVersionsPerKey) { key, bytes in
            let rule = try Vigil_V1_Rule(serializedBytes: bytes)
            guard rule.ruleID == key else { throw RuleRecordMismatch(key: key, ruleID: rule.ruleID) }
            return rule
        }
    }
}

/// A `rules.v1` record whose value names another rule than its key.
struct RuleRecordMismatch: Error, CustomStringConvertible {
    var key: String
    var ruleID: String

    var description: String { "the record's key is \(key) but its rule is \"\(ruleID)\"" }
}
