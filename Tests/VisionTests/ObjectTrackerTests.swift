import Testing
@testable import Vision

@Suite("Object tracker")
struct ObjectTrackerTests {
    static let start: Int64 = 1_800_000_000_000

    /// A box walking right by `step` pixels a frame.
    static func walker(_ frame: Int, x: Float = 100, y: Float = 200, step: Float = 6) -> PixelBox {
        PixelBox(x: x + Float(frame) * step, y: y, width: 40, height: 100)
    }

    @Test("two people walking past each other keep their ids; a track is confirmed on its second hit")
    func crossingWalkersKeepIDs() {
        var tracker = ObjectTracker(startedAtMilliseconds: Self.start)
        var ids: [[UInt64?]] = []
        for frame in 0..<40 {
            let right = Self.walker(frame, x: 100, y: 200, step: 12)
            let left = Self.walker(frame, x: 560, y: 205, step: -12)
            ids.append(tracker.update([Detection(box: right, score: 0.9), Detection(box: left, score: 0.8)]).trackIDs)
        }
        #expect(ids[0] == [nil, nil], "not confirmed on the first sighting")
        let first = ids[1]
        #expect(first[0] != nil && first[1] != nil && first[0] != first[1])
        for frame in 1..<40 { #expect(ids[frame] == first, "frame \(frame): ids switched or changed") }
    }

    @Test("a person missed for a few frames keeps the id; after more than maximumMissedFrames it gets a new one")
    func missedFramesAndTrackEnd() {
        var tracker = ObjectTracker(startedAtMilliseconds: Self.start)
        var lastID: UInt64?
        for frame in 0..<5 { lastID = tracker.update([Detection(box: Self.walker(frame), score: 0.9)]).trackIDs[0] }
        for frame in 5..<8 {
            let update = tracker.update([])
            #expect(update.coasting.count == 1)
            #expect(update.coasting[0].coverage(of: Self.walker(frame)) > 0.5, "the coasting box follows the walk")
        }
        #expect(tracker.update([Detection(box: Self.walker(8), score: 0.9)]).trackIDs[0] == lastID)
        for _ in 0..<6 { _ = tracker.update([]) }
        #expect(tracker.liveTrackCount == 0)
        _ = tracker.update([Detection(box: Self.walker(15), score: 0.9)])
        let renewed = tracker.update([Detection(box: Self.walker(16), score: 0.9)]).trackIDs[0]
        #expect(renewed != nil && renewed != lastID, "an ended track's id is never reused")
    }

    @Test("a weak detection continues a track but never starts one")
    func weakDetections() {
        var tracker = ObjectTracker(startedAtMilliseconds: Self.start)
        #expect(tracker.update([Detection(box: Self.walker(0), score: 0.35)]).trackIDs == [nil])
        #expect(tracker.liveTrackCount == 0)
        _ = tracker.update([Detection(box: Self.walker(1), score: 0.9)])
        let id = tracker.update([Detection(box: Self.walker(2), score: 0.9)]).trackIDs[0]
        #expect(id != nil)
        #expect(tracker.update([Detection(box: Self.walker(3), score: 0.35)]).trackIDs[0] == id)
    }

    @Test("ids of a tracker started later (a restart, a camera moved) never repeat the earlier tracker's")
    func idsAreUniqueAcrossRestarts() {
        func ids(startedAt: Int64) -> Set<UInt64> {
            var tracker = ObjectTracker(startedAtMilliseconds: startedAt)
            var seen = Set<UInt64>()
            for frame in 0..<30 {
                // A new person every 3 frames.
                let boxes = (0...(frame / 3)).map { Detection(box: PixelBox(x: Float($0) * 60, y: 0, width: 40, height: 100), score: 0.9) }
                seen.formUnion(tracker.update(boxes).trackIDs.compactMap { $0 })
            }
            return seen
        }
        let before = ids(startedAt: Self.start), after = ids(startedAt: Self.start + 1)
        #expect(before.count == 10 && after.count == 10)
        #expect(before.isDisjoint(with: after))
    }
}
