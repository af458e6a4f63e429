import Foundation

/// A stage's own settings from the environment (`DETECT_*`, `DECODE_*`), read one way in every
/// worker: unset takes the default; set but not a number, or below the floor the worker
/// enforces (a setting that would lower redaction recall), stops the worker at start naming the
/// variable, the value and what it expects — never silently ignored.
public struct StageSettings: Sendable {
    public let worker: String
    let environment: [String: String]

    public init(worker: String, environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.worker = worker
        self.environment = environment
    }

    /// A setting that cannot be used; says which and why, never more than the value given.
    public struct Problem: Error, Equatable, CustomStringConvertible {
        public var variable: String
        public var description: String
    }

    /// `variable` as a whole number of at least `minimum` (nil when unset).
    /// - Parameter floor: why the minimum, for the error ("person recall needs 4 tiles").
    public func integer(_ variable: String, atLeast minimum: Int64, floor: String? = nil) throws(Problem) -> Int64? {
        guard let text = environment[variable] else { return nil }
        guard let value = Int64(text.trimmingCharacters(in: .whitespaces)) else {
            throw Problem(variable: variable, description: "\(variable) is \"\(text)\"; give a whole number, at least \(minimum)")
        }
        guard value >= minimum else {
            throw Problem(variable: variable, description: "\(variable) is \(value); it must be at least \(minimum)\(floor.map { ": \($0)" } ?? "")")
        }
        return value
    }

    /// `variable` as a number of at least `minimum` (nil when unset).
    public func number(_ variable: String, atLeast minimum: Double) throws(Problem) -> Double? {
        guard let text = environment[variable] else { return nil }
        guard let value = Double(text.trimmingCharacters(in: .whitespaces)), value.isFinite, value >= minimum else {
            throw Problem(variable: variable, description: "\(variable) is \"\(text)\"; give a number, at least \(minimum)")
        }
        return value
    }

    /// Runs `read`; a problem stops the worker with exit 64 (EX_USAGE), saying what to set.
    public func reading<T>(_ read: (StageSettings) throws(Problem) -> T) -> T {
        do {
            return try read(self)
        } catch {
            FileHandle.standardError.write(Data("\(worker): \(error)\n".utf8))
            exit(64)
        }
    }
}
