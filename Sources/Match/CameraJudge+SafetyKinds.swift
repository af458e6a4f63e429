import Foundation
import PlaneGeometry
import Rules
import SwiftProtobuf
import VigilSchema

/// Rule engine II's kinds: person down, wrong way, detector class, sudden motion, abandoned
/// object and redaction health. Like the others, each is a function of the frames and their
/// event times only, and keeps what it needs in the rule's state.
extension CameraJudge {
    /// Still things whose centres are at most this far apart (a fraction of the frame) are one
    /// thing: a static region seen again in the next frame.
    static let samePlace: Double = 0.03
    /// The most still things an abandoned-object rule keeps per camera: the oldest go first.
    static let maxStillThings = 32
    /// A speed is measured only between frames at most this far apart: across a longer gap the
    /// tracker may have followed someone else.
    static let maxSpeedGap: Int64 = 1_000

    /// Person down: a person whose posture is LYING (or, when no posture was assessed, whose
    /// box is at least `min_width_to_height` times wider than tall), inside the zone if the
    /// rule has one, for `lying_for`. Upright again restarts the time; a frame whose posture
    /// could not be called keeps it.
    func personDown(
        _ frame: Vigil_V1_FrameDetections, _ rule: Vigil_V1_Rule, _ parameters: Vigil_V1_PersonDownParameters, at time: Int64,
        _ ruleState: inout Vigil_V1_RuleMatchState
    ) -> Holding? {
        let zone = rule.zone.vertices.map(PlanePoint.init)
        var filter = Vigil_V1_ObjectFilter()
        filter.classLabels = ["person"]
        filter.minScore = parameters.minScore
        return presence(frame, rule, filter, confirmAfter: parameters.lyingFor.milliseconds, needsTrack: true, at: time, &ruleState) { object, point in
            if !zone.isEmpty, !PlaneGeometry.covers(zone, point) { return .no }
            switch object.posture {
            case .lying: return .yes
            case .upright: return .no
            default:
                guard parameters.minWidthToHeight > 0 else { return .unsure }
                let width = object.box.xMax - object.box.xMin, height = object.box.yMax - object.box.yMin
                return width >= parameters.minWidthToHeight * height ? .yes : .unsure
            }
        }
    }

    /// Wrong way: a track inside the zone that has moved at least `min_displacement` against
    /// the zone's direction since it entered. Leaving the zone forgets it.
    func wrongWay(
        _ frame: Vigil_V1_FrameDetections, _ rule: Vigil_V1_Rule, _ parameters: Vigil_V1_WrongWayParameters, at time: Int64,
        _ ruleState: inout Vigil_V1_RuleMatchState
    ) -> Holding? {
        let zone = rule.zone.vertices.map(PlanePoint.init)
        let length = hypot(Double(parameters.direction.x), Double(parameters.direction.y))
        guard length > 0 else { return nil }
        let (unitX, unitY) = (Double(parameters.direction.x) / length, Double(parameters.direction.y) / length)
        var against: [Vigil_V1_DetectedObject] = []
        for object in frame.objects where object.trackID != 0 && Self.admits(parameters.objects, object) {
            let point = groundPoint(of: object.box)
            guard PlaneGeometry.covers(zone, point) else {
                ruleState.tracks[object.trackID] = nil
                continue
            }
            var track = ruleState.tracks[object.trackID] ?? Vigil_V1_RuleTrack()
            if track.enteredMs == 0 {
                track.enteredMs = time
                track.startX = Float(point.x)
                track.startY = Float(point.y)
            }
            track.lastSeenMs = time
            ruleState.tracks[object.trackID] = track
            let along = (point.x - Double(track.startX)) * unitX + (point.y - Double(track.startY)) * unitY
            if along <= -Double(parameters.minDisplacement) { against.append(object) }
        }
        return against.isEmpty ? nil : Holding(since: time, objects: against)
    }

    /// Detector class: the class seen (at the filter's score, inside the zone if any) in at
    /// least `min_frames` of the camera's last `of_last_frames` analysed frames.
    func detectorClass(
        _ frame: Vigil_V1_FrameDetections, _ rule: Vigil_V1_Rule, _ parameters: Vigil_V1_DetectorClassParameters, at time: Int64,
        _ ruleState: inout Vigil_V1_RuleMatchState
    ) -> Holding? {
        let zone = rule.zone.vertices.map(PlanePoint.init)
        let seen = frame.objects.filter { object in
            Self.admits(parameters.objects, object) && (zone.isEmpty || PlaneGeometry.covers(zone, groundPoint(of: object.box)))
        }
        let window = min(64, max(1, Int(parameters.ofLastFrames)))
        let mask: UInt64 = window == 64 ? .max : (1 << UInt64(window)) - 1
        ruleState.recentFrames = ((ruleState.recentFrames << 1) | (seen.isEmpty ? 0 : 1)) & mask
        guard ruleState.recentFrames.nonzeroBitCount >= max(1, Int(parameters.minFrames)) else { return nil }
        return Holding(since: time, objects: seen)
    }

    /// Sudden motion: a track faster than `min_speed` (fractions of the frame per second,
    /// between frames at most a second apart), or moving regions covering at least
    /// `min_motion_fraction` of the zone (of the frame without one), for `sustained_for`.
    func suddenMotion(
        _ frame: Vigil_V1_FrameDetections, _ rule: Vigil_V1_Rule, _ parameters: Vigil_V1_SuddenMotionParameters, at time: Int64,
        _ ruleState: inout Vigil_V1_RuleMatchState
    ) -> Holding? {
        let zone = rule.zone.vertices.map(PlanePoint.init)
        var fast: [Vigil_V1_DetectedObject] = []
        var fastest: Float = 0
        for object in frame.objects where object.trackID != 0 && Self.admits(parameters.objects, object) {
            let point = groundPoint(of: object.box)
            var track = ruleState.tracks[object.trackID] ?? Vigil_V1_RuleTrack()
            let gap = time - track.lastSeenMs
            if parameters.minSpeed > 0, track.positionKnown, gap > 0, gap <= Self.maxSpeedGap, zone.isEmpty || PlaneGeometry.covers(zone, point) {
                let speed = Float(point.distance(to: track.position) * 1_000 / Double(gap))
                if speed >= parameters.minSpeed {
                    fast.append(object)
                    fastest = max(fastest, speed)
                }
            }
            track.positionKnown = true
            track.x = Float(point.x)
            track.y = Float(point.y)
            track.lastSeenMs = time
            ruleState.tracks[object.trackID] = track
        }
        var fraction: Float = 0
        if parameters.minMotionFraction > 0 {
            fraction = Self.motionFraction(frame.motionRegions, within: zone)
        }
        let burst = parameters.minMotionFraction > 0 && fraction >= parameters.minMotionFraction
        guard !fast.isEmpty || burst, sustained(for: parameters.sustainedFor.milliseconds, at: time, &ruleState) else { return nil }
        return Holding(since: ruleState.holdingSinceMs, objects: fast, speed: fastest, motionFraction: burst ? fraction : 0)
    }

    /// The share of the zone's bounding box (the frame's, without a zone) the moving regions
    /// cover; overlapping regions count once, on a 32 × 32 grid.
    static func motionFraction(_ regions: [Vigil_V1_BoundingBox], within zone: [PlanePoint]) -> Float {
        guard !regions.isEmpty else { return 0 }
        let (left, top, right, bottom) = zone.isEmpty ? (0.0, 0.0, 1.0, 1.0)
            : (zone.map(\.x).min()!, zone.map(\.y).min()!, zone.map(\.x).max()!, zone.map(\.y).max()!)
        guard right > left, bottom > top else { return 0 }
        let cells = 32
        var covered = 0
        for row in 0..<cells {
            let y = top + (Double(row) + 0.5) * (bottom - top) / Double(cells)
            for column in 0..<cells {
                let x = left + (Double(column) + 0.5) * (right - left) / Double(cells)
                if regions.contains(where: { Double($0.xMin) <= x && x < Double($0.xMax) && Double($0.yMin) <= y && y < Double($0.yMax) }) { covered += 1 }
            }
        }
        return Float(covered) / Float(cells * cells)
    }

    /// Abandoned object: a static region (something that appeared and stopped moving) or a
    /// stationary object of the rule's classes, inside the zone if any, with no person within
    /// `clearance` of it for `stationary_for`. A person standing still is a static region too,
    /// but the person is near it, so it never counts.
    func abandonedObject(
        _ frame: Vigil_V1_FrameDetections, _ rule: Vigil_V1_Rule, _ parameters: Vigil_V1_AbandonedObjectParameters, at time: Int64,
        _ ruleState: inout Vigil_V1_RuleMatchState
    ) -> Holding? {
        let zone = rule.zone.vertices.map(PlanePoint.init)
        var candidates = frame.staticRegions
        if !parameters.objects.classLabels.isEmpty {
            candidates += frame.objects.filter { Self.admits(parameters.objects, $0) }.map(\.box)
        }
        let persons = frame.objects.filter { $0.classLabel == "person" }.map(\.box)
        var things = ruleState.stillThings.filter { time - $0.lastSeenMs <= Self.trackMemory }
        for box in candidates {
            let center = PlanePoint(x: Double(box.xMin + box.xMax) / 2, y: Double(box.yMin + box.yMax) / 2)
            guard zone.isEmpty || PlaneGeometry.covers(zone, center) else { continue }
            if let index = things.firstIndex(where: { Self.center(of: $0).distance(to: center) <= Self.samePlace }) {
                things[index].lastSeenMs = time
            } else {
                things.append(.with {
                    $0.xMin = box.xMin; $0.yMin = box.yMin; $0.xMax = box.xMax; $0.yMax = box.yMax
                    $0.firstSeenMs = time; $0.lastSeenMs = time; $0.unattendedSinceMs = time
                })
            }
        }
        var left: [Vigil_V1_DetectedObject] = []
        var since = time
        for index in things.indices {
            let thing = things[index]
            let attended = persons.contains { Self.distance(between: $0, and: thing) <= Double(parameters.clearance) }
            if attended { things[index].unattendedSinceMs = time }
            guard thing.lastSeenMs == time, time - things[index].unattendedSinceMs >= parameters.stationaryFor.milliseconds else { continue }
            since = min(since, things[index].unattendedSinceMs)
            left.append(.with {
                $0.classLabel = "object"
                $0.box = .with { $0.xMin = thing.xMin; $0.yMin = thing.yMin; $0.xMax = thing.xMax; $0.yMax = thing.yMax }
            })
        }
        ruleState.stillThings = Array(things.suffix(Self.maxStillThings))
        return left.isEmpty ? nil : Holding(since: since, objects: left)
    }

    static func center(of thing: Vigil_V1_StillThing) -> PlanePoint {
        PlanePoint(x: Double(thing.xMin + thing.xMax) / 2, y: Double(thing.yMin + thing.yMax) / 2)
    }

    /// The gap between a person's box and a thing's box (0 when they overlap).
    static func distance(between person: Vigil_V1_BoundingBox, and thing: Vigil_V1_StillThing) -> Double {
        let dx = max(0, Double(max(thing.xMin - person.xMax, person.xMin - thing.xMax)))
        let dy = max(0, Double(max(thing.yMin - person.yMax, person.yMin - thing.yMax)))
        return hypot(dx, dy)
    }

    /// Redaction health, judged by the camera's policy: under whole-person redaction, persons
    /// tracked and nothing masked; under either policy, frames with persons the redactor did
    /// not run on, masks that leave part of the persons' protected area (head regions or whole
    /// persons) uncovered, detect restarting over and over, or objects seen for
    /// `max_snapshot_gap` with no snapshot taken.
    func redactionHealth(
        _ frame: Vigil_V1_FrameDetections, _ parameters: Vigil_V1_RedactionHealthParameters, camera: Vigil_V1_CameraConfig?, at time: Int64,
        _ ruleState: inout Vigil_V1_RuleMatchState
    ) -> Holding? {
        let persons = frame.objects.filter { $0.classLabel == "person" }
        var failures: [String] = []
        if frame.redaction == .notRun, !persons.isEmpty {
            failures.append("the redactor did not run on frames with persons")
        }
        if camera?.redactionPolicy.target == .wholePersons, persons.contains(where: { $0.trackID != 0 }), frame.redactedRegionCount == 0 {
            failures.append("persons tracked and nothing masked under whole-person redaction")
        }
        if !persons.isEmpty, frame.hasMaskedPersonFraction, frame.maskedPersonFraction < Self.minimumMaskedPersonFraction {
            let protected = camera?.redactionPolicy.target == .wholePersons ? "the persons" : "the persons' head regions"
            failures.append("masks covered only \(Int(frame.maskedPersonFraction * 100)) % of \(protected)")
        }
        // Objects seen since when: a stretch survives frames in which the detector missed
        // everyone for less than `objectsGap`.
        if !frame.objects.isEmpty {
            if ruleState.objectsSinceMs == 0 || time - ruleState.lastObjectsMs > Self.objectsGap { ruleState.objectsSinceMs = time }
            ruleState.lastObjectsMs = time
        }
        if !frame.snapshotID.isEmpty { ruleState.lastSnapshotMs = time }
        if let restarts = Self.detectorRestarts(frame, at: time, &ruleState) { failures.append(restarts) }
        let gap = Self.snapshotGap(parameters, camera: camera)
        let seeingObjects = ruleState.objectsSinceMs != 0 && time - ruleState.lastObjectsMs <= Self.objectsGap
        if seeingObjects, time - max(ruleState.objectsSinceMs, ruleState.lastSnapshotMs) >= gap {
            failures.append("no snapshot for \(gap / 1_000) s while objects were seen")
        }
        guard !failures.isEmpty else { return nil }
        guard sustained(for: parameters.sustainedFor.milliseconds, at: time, &ruleState) else { return nil }
        return Holding(since: ruleState.holdingSinceMs, objects: persons, redactionFailure: failures.joined(separator: "; "))
    }

    /// Detect masks every published person's protected area whole (`RedactionPlan`): less is a
    /// redaction that shrank. A little slack for boxes clipped by rounding.
    static let minimumMaskedPersonFraction: Float = 0.95

    /// Detector restarts counted within this window (ms), and how many make a failure: a
    /// vigil-detect that keeps restarting (a model that fails, a crash loop) analyses little
    /// and starts every camera's tracks and holds afresh.
    static let restartWindow: Int64 = 600_000
    static let restartsTolerated = 2

    /// Notes a new detector epoch (the start time in the frame's track ids: a new one after
    /// every vigil-detect restart, camera move or frame-size change); the failure when the
    /// camera had more than `restartsTolerated` within `restartWindow`.
    static func detectorRestarts(_ frame: Vigil_V1_FrameDetections, at time: Int64, _ ruleState: inout Vigil_V1_RuleMatchState) -> String? {
        guard let epoch = frame.objects.lazy.map(\.trackID).filter({ $0 != 0 }).map({ Int64($0 >> 20) }).max() else { return nil }
        if epoch > ruleState.detectorEpoch {
            if ruleState.detectorEpoch != 0 { ruleState.detectorRestartsMs.append(time) }
            ruleState.detectorEpoch = epoch
        }
        ruleState.detectorRestartsMs.removeAll { time - $0 > restartWindow }
        let restarts = ruleState.detectorRestartsMs.count
        guard restarts > restartsTolerated else { return nil }
        return "vigil-detect restarted (or the camera moved, or its frame size changed) \(restarts) times in \(restartWindow / 60_000) min"
    }

    /// How long ingest may report the camera online with frames while none reaches detections (ms).
    static let framesMissingAfter: Int64 = 30_000

    /// Redaction health on a health record: ingest reports the camera online and receiving
    /// frames, yet no frame has reached detections for `framesMissingAfter` — decode or detect
    /// is not analysing what the camera sends.
    func redactionHealth(
        _ health: Vigil_V1_CameraHealth, _ parameters: Vigil_V1_RedactionHealthParameters, at time: Int64, _ ruleState: inout Vigil_V1_RuleMatchState
    ) -> Holding? {
        guard health.state == .online, health.framesPerSecond > 0, state.newestFrameMs != 0, time - state.newestFrameMs >= Self.framesMissingAfter else {
            return nil
        }
        guard sustained(for: parameters.sustainedFor.milliseconds, at: time, &ruleState) else { return nil }
        return Holding(
            since: ruleState.holdingSinceMs, objects: [],
            redactionFailure: "ingest reports the camera online and receiving frames, but none has reached detections for \(Self.framesMissingAfter / 1_000) s or more"
        )
    }

    /// Frames with no object for less than this do not end a stretch of objects being seen.
    static let objectsGap: Int64 = 5_000

    /// How long objects may be seen without a snapshot: the rule's `max_snapshot_gap`, else
    /// three of the camera's snapshot intervals (at least 10 s), else 60 s.
    static func snapshotGap(_ parameters: Vigil_V1_RedactionHealthParameters, camera: Vigil_V1_CameraConfig?) -> Int64 {
        if parameters.hasMaxSnapshotGap { return max(1_000, parameters.maxSnapshotGap.milliseconds) }
        if let rate = camera?.snapshotsPerMinute, rate > 0 { return max(10_000, Int64(3 * 60_000 / rate)) }
        return 60_000
    }
}
