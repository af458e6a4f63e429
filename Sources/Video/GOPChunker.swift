/// Cuts a camera's packets into chunks for `video.packets.v1`: a chunk starts at a keyframe
/// and holds its group of pictures, unless the GOP is larger than `maxBytes` — then it is
/// split, and the continuation chunks do not start at a keyframe (a decoder that starts
/// fresh waits for the next chunk that does).
///
/// Why fragments rather than whole GOPs: a 2 s GOP at 4 Mbit/s is about 1 MB, the producer's
/// record limit, and cameras configured with long GOPs are common; a bound below the limit
/// (with room for headers and the codec parameters) keeps every chunk producible.
public struct GOPChunker {
    public let maxBytes: Int
    private var pending: [Demuxer.Packet] = []
    private var pendingBytes = 0

    public init(maxBytes: Int) {
        self.maxBytes = maxBytes
    }

    /// A chunk's packets, and whether it ends where the next GOP begins.
    public struct Chunk: Sendable {
        public var packets: [Demuxer.Packet]
        public var endsGOP: Bool
    }

    /// Adds a packet; returns the chunk it completed, if any.
    public mutating func add(_ packet: Demuxer.Packet) -> Chunk? {
        var completed: Chunk?
        if !pending.isEmpty, packet.keyframe || pendingBytes + packet.data.count > maxBytes {
            completed = Chunk(packets: pending, endsGOP: packet.keyframe)
            pending = []
            pendingBytes = 0
        }
        pending.append(packet)
        pendingBytes += packet.data.count
        return completed
    }

    /// The last chunk at the end of the stream (or a disconnect), if any.
    public mutating func finish() -> Chunk? {
        defer { pending = []; pendingBytes = 0 }
        return pending.isEmpty ? nil : Chunk(packets: pending, endsGOP: true)
    }
}
