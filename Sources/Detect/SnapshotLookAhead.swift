import Foundation
import VigilSchema
import Vision

/// Where a frame came from, so the stage can tell the runtime which input it still holds.
public struct FrameSource: Sendable, Equatable {
    public var topic: String
    public var partition: Int32
    public var offset: Int64

    public init(topic: String, partition: Int32, offset: Int64) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
    }
}

/// Snapshots waiting for the frames after them. No detector finds every face in every frame:
/// a snapshot is encoded only once its camera's next analysed frames, `lookAheadMilliseconds`
/// of capture time, are in, and is masked with the union of its own regions (detections,
/// holds, head regions), and every region found after it, carried back along the person
/// tracks (or grown, where no track links them). A face first found a frame late is still
/// covered.
///
/// The unredacted frames live only here, in memory, bounded (`maxWaiting`, oldest dropped
/// first) and never written anywhere: a crash loses the wait, and the runtime, which stores no
/// offset at or past a held frame (`oldestHeldOffset`), reads the frames again.
struct SnapshotLookAhead {
    struct Waiting {
        /// Everything but the JPEG and the masks.
        var snapshot: Vigil_V1_Snapshot
        /// The frame, unredacted: never leaves this process.
        var image: RGBImage
        var fill: RedactionFill
        var regions: [PixelBox]
        /// The frame's person tracks: id → box, to carry later regions back along.
        var tracks: [UInt64: PixelBox]
        var captureMilliseconds: Int64
        var source: FrameSource?
        var since: ContinuousClock.Instant
    }

    /// Why a waiting snapshot was dropped unpublished.
    enum DropReason: String {
        /// More snapshots waited than `maxWaiting`.
        case full
        /// The camera's frame size changed (its state was reset): the later frames cannot be mapped.
        case cameraReset = "camera_reset"
        /// No later frame of the camera came within `staleAfter` of wall time (a camera gone
        /// silent, or its partition moved to another replica).
        case stale
    }

    let lookAheadMilliseconds: Int64
    let maxWaiting: Int
    /// Wall time after which a snapshot whose look-ahead never came is dropped.
    let staleAfter: Duration
    /// Per camera, oldest first.
    private(set) var waiting: [String: [Waiting]] = [:]

    var count: Int { waiting.values.reduce(0) { $0 + $1.count } }

    /// Adds `frame`'s regions to the camera's waiting snapshots, carried back to each, and
    /// returns those whose look-ahead is now complete, oldest first.
    mutating func observe(
        camera: String, captureMilliseconds: Int64, regions: [PixelBox], tracks: [UInt64: PixelBox], width: Int, height: Int
    ) -> [Waiting] {
        guard var pending = waiting[camera], !pending.isEmpty else { return [] }
        for index in pending.indices {
            let elapsed = captureMilliseconds - pending[index].captureMilliseconds
            for region in regions {
                pending[index].regions.append(
                    Self.carriedBack(region, now: tracks, then: pending[index].tracks, elapsedMilliseconds: elapsed)
                        .clipped(width: width, height: height)
                )
            }
        }
        let complete = pending.filter { captureMilliseconds - $0.captureMilliseconds >= lookAheadMilliseconds }
        pending.removeAll { captureMilliseconds - $0.captureMilliseconds >= lookAheadMilliseconds }
        waiting[camera] = pending.isEmpty ? nil : pending
        return complete
    }

    /// Queues a snapshot; returns how many were dropped to make room.
    mutating func add(_ snapshot: Waiting, camera: String) -> Int {
        waiting[camera, default: []].append(snapshot)
        var dropped = 0
        while count > maxWaiting, let oldest = waiting.min(by: { ($0.value.first?.since ?? .now) < ($1.value.first?.since ?? .now) })?.key {
            waiting[oldest]?.removeFirst()
            if waiting[oldest]?.isEmpty == true { waiting[oldest] = nil }
            dropped += 1
        }
        return dropped
    }

    /// Drops the camera's waiting snapshots; how many.
    mutating func drop(camera: String) -> Int {
        waiting.removeValue(forKey: camera)?.count ?? 0
    }

    /// Drops the snapshots that waited longer than `staleAfter`; how many.
    mutating func dropStale(now: ContinuousClock.Instant) -> Int {
        var dropped = 0
        for (camera, pending) in waiting {
            let kept = pending.filter { now - $0.since < staleAfter }
            dropped += pending.count - kept.count
            waiting[camera] = kept.isEmpty ? nil : kept
        }
        return dropped
    }

    func oldestHeldOffset(topic: String, partition: Int32) -> Int64? {
        waiting.values.joined().compactMap(\.source).filter { $0.topic == topic && $0.partition == partition }.map(\.offset).min()
    }

    /// Where `region`, found `elapsedMilliseconds` after a waiting frame, was in that frame:
    /// moved as the person track containing it moved (`now` and `then`: track boxes), or, with
    /// no track to follow, grown by half its size per second elapsed (at most doubled) — a
    /// walking head stays within that.
    static func carriedBack(_ region: PixelBox, now: [UInt64: PixelBox], then: [UInt64: PixelBox], elapsedMilliseconds: Int64) -> PixelBox {
        let centre = (x: (region.x0 + region.x1) / 2, y: (region.y0 + region.y1) / 2)
        let track = now.first { _, box in centre.x >= box.x0 && centre.x <= box.x1 && centre.y >= box.y0 && centre.y <= box.y1 }
        if let track, let before = then[track.key] {
            let dx = (before.x0 + before.x1) / 2 - (track.value.x0 + track.value.x1) / 2
            let dy = (before.y0 + before.y1) / 2 - (track.value.y0 + track.value.y1) / 2
            return PixelBox(x0: region.x0 + dx, y0: region.y0 + dy, x1: region.x1 + dx, y1: region.y1 + dy).scaled(by: 1.2)
        }
        return region.scaled(by: 1 + min(1, Float(max(0, elapsedMilliseconds)) / 2_000))
    }
}
