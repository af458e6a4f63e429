/// A multi-object tracker in the manner of ByteTrack: a constant-velocity Kalman filter per
/// track, association by IoU with the predicted boxes — confident detections first, then the
/// weak ones, which may only continue a track (never start one) — and tracks that coast on
/// their prediction for a few frames when their object is missed.
///
/// Track ids are per camera and carry no identity: a track ends when its object is gone for
/// `maximumMissedFrames`, and its id is never reused (see `TrackIDs`).
public struct ObjectTracker: Sendable {
    public struct Settings: Sendable {
        /// Detections at or above this score start tracks and are matched first.
        public var confidentScore: Float = 0.5
        /// Overlap a confident detection needs with a track's predicted box.
        public var confidentOverlap: Float = 0.2
        /// Overlap a weak detection needs to continue a track.
        public var weakOverlap: Float = 0.4
        /// Frames a track is kept (coasting) without a detection.
        public var maximumMissedFrames = 5
        /// Detections a new track needs before it gets an id.
        public var confirmationHits = 2

        public init() {}
    }

    /// What became of one frame's detections.
    public struct Update: Sendable, Equatable {
        /// Per input detection, in order: the id of the confirmed track it continues or starts;
        /// nil for a detection on a track not yet confirmed, or a weak one matching no track.
        public var trackIDs: [UInt64?]
        /// Live tracks not seen in this frame, each as the box its object may now occupy: the
        /// last box seen together with the filter's prediction (masks cover both).
        public var coasting: [PixelBox]
    }

    public let settings: Settings
    private let ids: TrackIDs
    private var tracks: [Track] = []

    /// A tracker drawing ids from `ids`, which a camera's trackers share.
    public init(settings: Settings = Settings(), ids: TrackIDs) {
        self.settings = settings
        self.ids = ids
    }

    /// A tracker with ids of its own, from `startedAtMilliseconds` (wall clock, since 1970).
    public init(settings: Settings = Settings(), startedAtMilliseconds: Int64) {
        self.init(settings: settings, ids: TrackIDs(startedAtMilliseconds: startedAtMilliseconds))
    }

    /// Tracks alive now (confirmed or not).
    public var liveTrackCount: Int { tracks.count }

    /// Where the live tracks' objects are: last seen and predicted (motion gating keeps
    /// looking there while a person stands still).
    public var liveBoxes: [PixelBox] { tracks.map { $0.lastSeen.union($0.predictedBox) } }

    public mutating func update(_ detections: [Detection]) -> Update {
        for index in tracks.indices { tracks[index].predict() }
        var assigned = [Int?](repeating: nil, count: detections.count)  // detection → track index
        var matchedTracks = Set<Int>()

        let confident = detections.indices.filter { detections[$0].score >= settings.confidentScore }
        let weak = detections.indices.filter { detections[$0].score < settings.confidentScore }
        for (detection, track) in greedyMatches(confident, among: detections, tracks: Array(tracks.indices), minimumOverlap: settings.confidentOverlap) {
            assigned[detection] = track
            matchedTracks.insert(track)
        }
        // Weak detections only continue tracks that were seen last frame (ByteTrack's second pass).
        let recentlySeen = tracks.indices.filter { !matchedTracks.contains($0) && tracks[$0].missedFrames == 0 }
        for (detection, track) in greedyMatches(weak, among: detections, tracks: recentlySeen, minimumOverlap: settings.weakOverlap) {
            assigned[detection] = track
            matchedTracks.insert(track)
        }

        for (detection, track) in assigned.enumerated() {
            guard let track else { continue }
            tracks[track].correct(with: detections[detection].box)
        }
        var coasting: [PixelBox] = []
        var survivors: [Track] = []
        var remap: [Int: Int] = [:]
        for (index, var track) in tracks.enumerated() {
            if !matchedTracks.contains(index) {
                track.missedFrames += 1
                // A track never confirmed is dropped at its first miss: it was noise.
                guard track.id != nil, track.missedFrames <= settings.maximumMissedFrames else { continue }
                coasting.append(track.lastSeen.union(track.predictedBox))
            }
            remap[index] = survivors.count
            survivors.append(track)
        }
        tracks = survivors
        var trackIDs = [UInt64?](repeating: nil, count: detections.count)
        for (detection, track) in assigned.enumerated() {
            guard let track, let index = remap[track] else { continue }
            if tracks[index].id == nil, tracks[index].hits >= settings.confirmationHits {
                tracks[index].id = makeID()
            }
            trackIDs[detection] = tracks[index].id
        }
        for detection in confident where assigned[detection] == nil {
            var track = Track(box: detections[detection].box)
            if settings.confirmationHits <= 1 { track.id = makeID() }
            trackIDs[detection] = track.id
            tracks.append(track)
        }
        return Update(trackIDs: trackIDs, coasting: coasting)
    }

    private func makeID() -> UInt64 { ids.next() }

    /// Pairs with the highest overlap first; each detection and track used once.
    private func greedyMatches(_ candidates: [Int], among detections: [Detection], tracks candidatesTracks: [Int], minimumOverlap: Float) -> [(Int, Int)] {
        var pairs: [(overlap: Float, detection: Int, track: Int)] = []
        for detection in candidates {
            for track in candidatesTracks {
                let overlap = detections[detection].box.intersectionOverUnion(tracks[track].predictedBox)
                if overlap >= minimumOverlap { pairs.append((overlap, detection, track)) }
            }
        }
        var usedDetections = Set<Int>(), usedTracks = Set<Int>()
        var matches: [(Int, Int)] = []
        for pair in pairs.sorted(by: { $0.overlap > $1.overlap }) where !usedDetections.contains(pair.detection) && !usedTracks.contains(pair.track) {
            usedDetections.insert(pair.detection)
            usedTracks.insert(pair.track)
            matches.append((pair.detection, pair.track))
        }
        return matches
    }
}

/// Hands out one camera's track ids, `epoch << 20 | counter`, to all its trackers (persons and
/// every slot class draw from one sequence, so no two objects of a camera share an id). The
/// epoch is when the ids started (milliseconds since 2020), so a restarted or moved camera never
/// repeats an id of its earlier life; a counter that would wrap starts a new epoch.
public final class TrackIDs: @unchecked Sendable {
    /// Milliseconds from 1970 to 2020-01-01, so an epoch fits 44 bits for a long time.
    private static let epochOrigin: Int64 = 1_577_836_800_000
    private static let counterBits = 20
    private var epoch: UInt64
    private var counter: UInt64 = 0

    public init(startedAtMilliseconds: Int64) {
        epoch = UInt64(max(0, startedAtMilliseconds - Self.epochOrigin))
    }

    func next() -> UInt64 {
        if counter == 1 << Self.counterBits {
            // Over a million tracks in one epoch: the next millisecond is a new epoch no id used.
            epoch += 1
            counter = 0
        }
        defer { counter += 1 }
        return epoch << UInt64(Self.counterBits) | counter
    }
}

/// One tracked object: a Kalman filter per box coordinate (centre x, centre y, width, height),
/// each with its position and velocity; noise scales with the box's height, as in SORT and ByteTrack.
private struct Track: Sendable {
    var id: UInt64?
    var hits = 1
    var missedFrames = 0
    var lastSeen: PixelBox
    private var filters: [ConstantVelocityFilter]

    init(box: PixelBox) {
        lastSeen = box
        let scale = max(box.height, 1)
        filters = [box.centerX, box.centerY, box.width, box.height].map { ConstantVelocityFilter(position: $0, scale: scale) }
    }

    var predictedBox: PixelBox {
        let (x, y, w, h) = (filters[0].position, filters[1].position, max(filters[2].position, 1), max(filters[3].position, 1))
        return PixelBox(x0: x - w / 2, y0: y - h / 2, x1: x + w / 2, y1: y + h / 2)
    }

    mutating func predict() {
        let scale = max(filters[3].position, 1)
        for index in filters.indices { filters[index].predict(scale: scale) }
    }

    mutating func correct(with box: PixelBox) {
        let scale = max(box.height, 1)
        for (index, measured) in [box.centerX, box.centerY, box.width, box.height].enumerated() {
            filters[index].correct(measured, scale: scale)
        }
        lastSeen = box
        hits += 1
        missedFrames = 0
    }
}

/// A 1-D Kalman filter with state (position, velocity) and a time step of one frame.
private struct ConstantVelocityFilter: Sendable {
    private static let positionNoise: Float = 1.0 / 20
    private static let velocityNoise: Float = 1.0 / 160
    private(set) var position: Float
    private var velocity: Float = 0
    // Covariance [[a, b], [b, d]].
    private var a: Float, b: Float = 0, d: Float

    init(position: Float, scale: Float) {
        self.position = position
        a = (2 * Self.positionNoise * scale) * (2 * Self.positionNoise * scale)
        d = (10 * Self.velocityNoise * scale) * (10 * Self.velocityNoise * scale)
    }

    mutating func predict(scale: Float) {
        position += velocity
        // P = F P Fᵀ + Q with F = [[1, 1], [0, 1]].
        let q = (Self.positionNoise * scale) * (Self.positionNoise * scale)
        let r = (Self.velocityNoise * scale) * (Self.velocityNoise * scale)
        a = a + 2 * b + d + q
        b = b + d
        d = d + r
    }

    mutating func correct(_ measured: Float, scale: Float) {
        let noise = (Self.positionNoise * scale) * (Self.positionNoise * scale)
        let innovation = measured - position
        let total = a + noise
        let gainPosition = a / total, gainVelocity = b / total
        position += gainPosition * innovation
        velocity += gainVelocity * innovation
        let (oldA, oldB) = (a, b)
        a = (1 - gainPosition) * oldA
        b = (1 - gainPosition) * oldB
        d = d - gainVelocity * oldB
    }
}
