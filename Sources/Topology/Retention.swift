/// How long a topic keeps records, as written in the topology: a whole number with a unit
/// (`500ms`, `30s`, `10m`, `6h`, `7d`, `2w`) or `forever`.
///
/// Holds the text as written, so a value that is not understood survives loading and
/// `Topology.validate()` can report it together with every other problem.
public struct Retention: Sendable, Hashable, CustomStringConvertible, ExpressibleByStringLiteral {
    public var text: String

    public init(_ text: String) {
        self.text = text
    }

    public init(stringLiteral text: String) {
        self.init(text)
    }

    public static let forever = Retention("forever")

    public static func minutes(_ minutes: Int) -> Retention { Retention("\(minutes)m") }

    /// Milliseconds per unit, longest first.
    static let units: [(suffix: String, milliseconds: Int64)] = [
        ("w", 604_800_000), ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1),
    ]

    public var isForever: Bool { text.trimmingWhitespace == "forever" }

    /// The period in milliseconds; nil for `forever` and for text that is not a retention.
    public var milliseconds: Int64? {
        let trimmed = text.trimmingWhitespace
        // "ms" before "m" and "s", so 500ms is not read as 500m + "s".
        for (suffix, unit) in Self.units.sorted(by: { $0.suffix.count > $1.suffix.count }) where trimmed.hasSuffix(suffix) {
            let digits = trimmed.dropLast(suffix.count)
            guard !digits.isEmpty, digits.allSatisfy(\.isASCIIDigit), let count = Int64(digits), count > 0 else { return nil }
            let (product, overflow) = count.multipliedReportingOverflow(by: unit)
            return overflow ? nil : product
        }
        return nil
    }

    /// True when the text is `forever` or a period vigil understands.
    public var isValid: Bool { isForever || milliseconds != nil }

    /// Kafka's `retention.ms`: `-1` keeps records forever. Nil when the text is not understood.
    public var kafkaRetentionMilliseconds: String? {
        if isForever { return "-1" }
        return milliseconds.map(String.init)
    }

    /// `retention.ms` as a cluster reports it, written the way the topology would (`600000` → `10m`).
    public static func describing(kafkaRetentionMilliseconds value: String) -> String {
        guard let milliseconds = Int64(value.trimmingWhitespace) else { return value }
        if milliseconds < 0 { return "forever" }
        guard milliseconds > 0 else { return "0ms" }
        // Days rather than weeks: retentions are written in days (7d, 30d).
        for (suffix, unit) in units where suffix != "w" && milliseconds % unit == 0 {
            return "\(milliseconds / unit)\(suffix)"
        }
        return "\(milliseconds)ms"
    }

    public var description: String { text }
}

extension String {
    var trimmingWhitespace: String {
        var view = Substring(self)
        while view.first?.isWhitespace == true { view.removeFirst() }
        while view.last?.isWhitespace == true { view.removeLast() }
        return String(view)
    }
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}
