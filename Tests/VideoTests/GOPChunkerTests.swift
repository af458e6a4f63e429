import Testing
@testable import Video

@Suite("GOP chunks")
struct GOPChunkerTests {
    static func packet(_ size: Int, key: Bool) -> Demuxer.Packet {
        Demuxer.Packet(data: [UInt8](repeating: 1, count: size), presentationTime: nil, decodingTime: nil, keyframe: key)
    }

    @Test("a chunk is a GOP: it starts at a keyframe and ends where the next begins")
    func chunksAreGOPs() {
        var chunker = GOPChunker(maxBytes: 10_000)
        var chunks: [GOPChunker.Chunk] = []
        for index in 0..<30 {
            if let chunk = chunker.add(Self.packet(100, key: index % 10 == 0)) { chunks.append(chunk) }
        }
        if let last = chunker.finish() { chunks.append(last) }
        #expect(chunks.map(\.packets.count) == [10, 10, 10])
        #expect(chunks.allSatisfy { $0.packets.first?.keyframe == true && $0.endsGOP })
    }

    @Test("a GOP over the byte bound is split; continuations do not start at a keyframe and no chunk passes the bound")
    func largeGOPsAreSplit() {
        var chunker = GOPChunker(maxBytes: 1_000)
        var chunks: [GOPChunker.Chunk] = []
        for index in 0..<25 {
            if let chunk = chunker.add(Self.packet(300, key: index % 25 == 0)) { chunks.append(chunk) }
        }
        if let last = chunker.finish() { chunks.append(last) }
        #expect(chunks.reduce(0) { $0 + $1.packets.count } == 25)
        #expect(chunks.allSatisfy { $0.packets.reduce(0) { $0 + $1.data.count } <= 1_000 })
        #expect(chunks.first?.packets.first?.keyframe == true)
        #expect(chunks.dropFirst().allSatisfy { $0.packets.first?.keyframe == false })
        #expect(chunks.dropLast().allSatisfy { !$0.endsGOP } && chunks.last?.endsGOP == true)
    }
}
