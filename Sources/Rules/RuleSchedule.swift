import Foundation
import VigilSchema

/// Weekdays as rules files name them.
public enum ScheduleDays {
    static let names: [String: Vigil_V1_Weekday] = [
        "mon": .monday, "tue": .tuesday, "wed": .wednesday, "thu": .thursday, "fri": .friday, "sat": .saturday, "sun": .sunday,
    ]

    /// "mon" or "monday" (any case).
    public static func weekday(_ name: String) -> Vigil_V1_Weekday? {
        let lower = name.lowercased()
        if let day = names[lower] { return day }
        return fullNames.contains(lower) ? names[String(lower.prefix(3))] : nil
    }

    static let fullNames: Set<String> = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]

    public static func next(_ day: Vigil_V1_Weekday) -> Vigil_V1_Weekday {
        Vigil_V1_Weekday(rawValue: day.rawValue % 7 + 1) ?? .monday
    }

    public static func name(_ day: Vigil_V1_Weekday) -> String {
        names.first { $0.value == day }?.key ?? "?"
    }
}

/// A schedule made ready to ask, many times, whether it is active: its time zone's calendar
/// built once (the rule engine asks for every frame).
public struct WeeklySchedule: Sendable {
    let windows: [Vigil_V1_WeeklyWindow]
    let calendar: Calendar

    /// Nil for a schedule with no windows (always active) or whose time zone is unknown
    /// (checked when the rule was applied).
    public init?(_ schedule: Vigil_V1_Schedule) {
        guard !schedule.windows.isEmpty, let zone = TimeZone(identifier: schedule.timeZone) else { return nil }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = zone
        self.windows = schedule.windows
        self.calendar = calendar
    }

    /// Whether the schedule is active at an instant: its weekday and minute in the schedule's
    /// time zone fall in one of the windows. Local time is read off the zone's rules for that
    /// instant, so a window follows daylight saving: on the night clocks go forward, an hour
    /// of local time never happens (a window over it is that much shorter); on the night they
    /// go back, one happens twice (a window over it is active both times).
    public func isActive(atMilliseconds milliseconds: Int64) -> Bool {
        let date = Date(timeIntervalSince1970: Double(milliseconds) / 1_000)
        let parts = calendar.dateComponents([.weekday, .hour, .minute], from: date)
        // Calendar's weekday: 1 Sunday … 7 Saturday; the schema's: 1 Monday … 7 Sunday.
        guard let weekday = parts.weekday, let hour = parts.hour, let minute = parts.minute else { return true }
        let day = Vigil_V1_Weekday(rawValue: (weekday + 5) % 7 + 1) ?? .unspecified
        let minuteOfDay = UInt32(hour * 60 + minute)
        return windows.contains { $0.day == day && $0.startMinute <= minuteOfDay && minuteOfDay < $0.endMinute }
    }
}

extension Vigil_V1_Schedule {
    /// Whether the schedule is active at an instant (see `WeeklySchedule`); no windows: always.
    public func isActive(atMilliseconds milliseconds: Int64) -> Bool {
        WeeklySchedule(self)?.isActive(atMilliseconds: milliseconds) ?? true
    }

    /// "Europe/Berlin mon 08:00–18:00, …" for diffs and listings.
    public var summary: String {
        guard !windows.isEmpty else { return "always" }
        func time(_ minutes: UInt32) -> String { String(format: "%02d:%02d", minutes / 60, minutes % 60) }
        return "\(timeZone) " + windows.map { "\(ScheduleDays.name($0.day)) \(time($0.startMinute))–\(time($0.endMinute))" }.joined(separator: ", ")
    }
}
