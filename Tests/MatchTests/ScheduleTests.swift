import Foundation
import Rules
import Testing
import VigilSchema
@testable import Match

/// Weekly schedules in a time zone, across the two daylight-saving changes of 2027 in
/// Europe/Berlin: clocks go forward at 01:00 UTC on Sunday 28 March (02:00 CET → 03:00 CEST)
/// and back at 01:00 UTC on Sunday 31 October (03:00 CEST → 02:00 CET).
@Suite("Rule schedules across daylight saving")
struct ScheduleTests {
    static let springSunday: Int64 = 1_806_192_000_000  // 2027-03-28T00:00:00Z
    static let autumnSunday: Int64 = 1_824_940_800_000  // 2027-10-31T00:00:00Z
    static let minute: Int64 = 60_000

    static func schedule(_ yaml: String) throws -> Vigil_V1_Schedule {
        let rules = try RulesFile.parse(yaml: "rules:\n  r:\n    cameras: [cam-1]\n    kind: camera_offline\n    schedule: \(yaml)\n", file: "s.yaml")
        return rules[0].schedule
    }

    @Test("a Sunday 01:00–04:00 window is 2 hours long on the night clocks go forward and 4 on the night they go back")
    func windowAcrossChanges() throws {
        let night = try Self.schedule("{time_zone: Europe/Berlin, windows: [{days: [sun], from: \"01:00\", to: \"04:00\"}]}")
        func active(_ milliseconds: Int64) -> Bool { night.isActive(atMilliseconds: milliseconds) }
        // Forward: 01:00 CET is 00:00 UTC, 04:00 CEST is 02:00 UTC.
        #expect(!active(Self.springSunday - Self.minute))
        #expect(active(Self.springSunday))
        #expect(active(Self.springSunday + 119 * Self.minute))
        #expect(!active(Self.springSunday + 120 * Self.minute))
        // Back: 01:00 CEST is 23:00 UTC the day before, 04:00 CET is 03:00 UTC; 02:00–03:00 local happens twice.
        #expect(!active(Self.autumnSunday - 61 * Self.minute))
        #expect(active(Self.autumnSunday - 60 * Self.minute))
        #expect(active(Self.autumnSunday + 30 * Self.minute), "02:30 CEST, the first time")
        #expect(active(Self.autumnSunday + 90 * Self.minute), "02:30 CET, the second time")
        #expect(active(Self.autumnSunday + 179 * Self.minute))
        #expect(!active(Self.autumnSunday + 180 * Self.minute))
    }

    @Test("a window inside the skipped hour never opens; one over midnight covers both days")
    func skippedHourAndMidnight() throws {
        let skipped = try Self.schedule("{time_zone: Europe/Berlin, windows: [{days: [sun], from: \"02:00\", to: \"03:00\"}]}")
        for offset in stride(from: Int64(-120), through: 240, by: 1) {
            #expect(!skipped.isActive(atMilliseconds: Self.springSunday + offset * Self.minute), "minute \(offset)")
        }
        let overnight = try Self.schedule("{time_zone: UTC, windows: [{days: [sat], from: \"22:00\", to: \"06:00\"}]}")
        #expect(overnight.isActive(atMilliseconds: Self.springSunday - 2 * 60 * Self.minute))  // Sat 22:00
        #expect(overnight.isActive(atMilliseconds: Self.springSunday + 359 * Self.minute))  // Sun 05:59
        #expect(!overnight.isActive(atMilliseconds: Self.springSunday + 360 * Self.minute))
        #expect(!overnight.isActive(atMilliseconds: Self.springSunday - 121 * Self.minute))
    }

    @Test("through the stage, a scheduled rule's incident opens when its window starts and closes when it ends, in both changes")
    func incidentsFollowTheSchedule() async throws {
        let yaml = """
        rules:
          night-yard:
            cameras: [cam-1]
            kind: zone_intrusion
            zone: [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]
            close_after: 2m
            schedule: {time_zone: Europe/Berlin, windows: [{days: [sun], from: "01:00", to: "04:00"}]}
        """
        let cases: [(sunday: Int64, opens: Int64, lastInWindow: Int64)] = [
            (Self.springSunday, Self.springSunday, Self.springSunday + 119 * Self.minute),
            (Self.autumnSunday, Self.autumnSunday - 60 * Self.minute, Self.autumnSunday + 179 * Self.minute),
        ]
        for (sunday, opens, lastInWindow) in cases {
            let match = try MatchHarness(yaml)
            // Someone in the yard all night, a frame a minute from 22:00 to 05:00 UTC.
            let first: Int64 = sunday - 120 * Self.minute, last: Int64 = sunday + 300 * Self.minute
            for time in stride(from: first, through: last, by: Int(Self.minute)) {
                try await match.frame(time - MatchHarness.start, [object(1, at: 0.5, 0.5)])
            }
            let start = opens - MatchHarness.start, end = lastInWindow - MatchHarness.start
            #expect(match.lifecycle == ["OPENED r1 \(start)..\(start) tracks [1]", "CLOSED r2 \(start)..\(end) tracks [1]"])
            #expect(match.incidents.last?.summary.contains("left its schedule") == true)
        }
    }
}
