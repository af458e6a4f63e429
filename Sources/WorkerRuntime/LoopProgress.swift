import Dispatch
import Synchronization

/// Whether the worker loop is moving, for `/livez`: the time of its last step (a record taken,
/// an offset stored, a retry) and how many records are in flight. A loop that has input
/// waiting but has not stepped for the liveness timeout is stuck, and the orchestrator should
/// restart it; an idle loop with nothing to do is alive.
final class LoopProgress: Sendable {
    private let lastStep = Atomic<UInt64>(DispatchTime.now().uptimeNanoseconds)
    private let recordsInFlight = Atomic<Int>(0)

    var inFlight: Int { recordsInFlight.load(ordering: .relaxed) }

    func began() {
        recordsInFlight.add(1, ordering: .relaxed)
        touch()
    }

    func completed() {
        recordsInFlight.subtract(1, ordering: .relaxed)
        touch()
    }

    func touch() {
        lastStep.store(DispatchTime.now().uptimeNanoseconds, ordering: .relaxed)
    }

    /// How long the loop has been stuck, or nil while it is moving or has nothing to do.
    /// - Parameter bufferedInput: records fetched and waiting for the loop.
    func stuck(longerThan timeout: Duration, bufferedInput: Int) -> Duration? {
        guard bufferedInput > 0 || inFlight > 0 else { return nil }
        let idle = Duration.nanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - lastStep.load(ordering: .relaxed)))
        return idle > timeout ? idle : nil
    }
}
