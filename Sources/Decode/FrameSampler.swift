/// Picks which decoded frames of a camera to publish at a target rate, by capture time: the
/// first frame, then the first frame at or after each due time. A frame arriving after a gap
/// restarts the schedule from itself, so a pause never causes a burst.
struct FrameSampler {
    /// Milliseconds between published frames; 0 publishes every frame.
    var intervalMilliseconds: Double
    private var nextDue: Double?

    init(framesPerSecond: Double) {
        intervalMilliseconds = framesPerSecond > 0 ? 1_000 / framesPerSecond : 0
    }

    mutating func take(atMilliseconds time: Double) -> Bool {
        // Half a millisecond of slack: timestamps converted from a 90 kHz clock round.
        if let nextDue, time + 0.5 < nextDue { return false }
        let due = (nextDue ?? time) + intervalMilliseconds
        nextDue = time - due >= intervalMilliseconds ? time + intervalMilliseconds : due
        return true
    }
}
