import Foundation
import Synchronization
import Video

/// Reads a stream's packets on a thread of its own — FFmpeg's reads block — and hands them to
/// async code. A file is paced at its native frame rate (as a camera would send it) and can
/// loop; a network stream paces itself.
final class PacketReader: Sendable {
    enum Event: Sendable {
        case opened(StreamCodec)
        case packet(Demuxer.Packet)
    }

    private let stopped = Atomic<Bool>(false)
    /// Packets the thread may read ahead of the consumer (a few seconds at camera rates).
    /// Created at 0 and raised: libdispatch traps when a semaphore is freed below its
    /// initial value, as it is when a camera's run stops mid-stream.
    private let room: DispatchSemaphore = {
        let semaphore = DispatchSemaphore(value: 0)
        for _ in 0..<256 { semaphore.signal() }
        return semaphore
    }()

    /// The consumer took a packet: the thread may read one more.
    func consumed() {
        room.signal()
    }

    /// Starts reading `url` (call once per reader; call `consumed()` after each packet); the stream ends at the end of a file that does not loop, and
    /// throws `VideoError` when the stream cannot be opened or read (a timeout included).
    func events(url: String, paced: Bool, loop: Bool, timeout: Duration) -> AsyncThrowingStream<Event, any Error> {
        // Bounded by `room`: the thread waits when the consumer falls behind.
        let (stream, continuation) = AsyncThrowingStream<Event, any Error>.makeStream(bufferingPolicy: .unbounded)
        let thread = Thread { [self] in
            do {
                repeat {
                    let demuxer = try Demuxer(url: url, timeout: timeout)
                    continuation.yield(.opened(StreamCodec(demuxer)))
                    let secondsPerTick = Double(demuxer.timeBase.numerator) / Double(max(demuxer.timeBase.denominator, 1))
                    let started = Date()
                    var firstTime: Int64?
                    while !stopped.load(ordering: .relaxed), let packet = try demuxer.next() {
                        if paced, let time = packet.presentationTime {
                            let first = firstTime ?? time
                            firstTime = first
                            let due = started.addingTimeInterval(Double(time - first) * secondsPerTick)
                            let wait = due.timeIntervalSinceNow
                            if wait > 0 { Thread.sleep(forTimeInterval: min(wait, 1)) }
                        }
                        while room.wait(timeout: .now() + .milliseconds(100)) == .timedOut, !stopped.load(ordering: .relaxed) {}
                        continuation.yield(.packet(packet))
                    }
                } while loop && !stopped.load(ordering: .relaxed)
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
        }
        thread.name = "vigil-ingest-reader"
        thread.start()
        continuation.onTermination = { [self] _ in stopped.store(true, ordering: .relaxed) }
        return stream
    }
}
