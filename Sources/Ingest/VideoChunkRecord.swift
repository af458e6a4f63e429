import Foundation
import SwiftProtobuf
import VigilSchema
import Video

/// What a decoder needs to know of a stream, as its demuxer reports it.
public struct StreamCodec: Sendable {
    public var name: String
    public var width: Int
    public var height: Int
    public var timeBase: (numerator: Int32, denominator: Int32)
    /// FFmpeg's extradata (SPS/PPS…).
    public var parameters: [UInt8]

    /// Seconds per tick of the stream's timestamps.
    public var secondsPerTick: Double { Double(timeBase.numerator) / Double(max(timeBase.denominator, 1)) }

    public init(_ demuxer: Demuxer) {
        name = demuxer.codecName
        width = demuxer.width
        height = demuxer.height
        timeBase = demuxer.timeBase
        parameters = demuxer.codecParameters
    }
}

extension Vigil_V1_VideoChunk {
    /// The `video.packets.v1` record for one chunk of a camera's stream; every chunk carries
    /// the codec parameters, so a decoder can start at any chunk that starts at a keyframe.
    public init(
        cameraID: String, sequence: UInt64, epoch: UInt64, captureTime: Date, codec: StreamCodec, chunk: GOPChunker.Chunk, discontinuity: Bool
    ) {
        self.init()
        self.cameraID = cameraID
        self.sequence = sequence
        self.epoch = epoch
        self.captureTime = Google_Protobuf_Timestamp(date: captureTime)
        self.codec.codecName = codec.name
        self.codec.width = UInt32(codec.width)
        self.codec.height = UInt32(codec.height)
        self.codec.extradata = Data(codec.parameters)
        self.codec.timeBase.numerator = codec.timeBase.numerator
        self.codec.timeBase.denominator = codec.timeBase.denominator
        self.discontinuity = discontinuity
        endsGop = chunk.endsGOP
        packets = chunk.packets.map { packet in
            var video = Vigil_V1_VideoPacket()
            video.data = Data(packet.data)
            video.pts = packet.presentationTime ?? 0
            video.dts = packet.decodingTime ?? 0
            video.duration = 0
            video.keyframe = packet.keyframe
            return video
        }
    }

    /// A whole file as ingest would publish it (one epoch, no pacing), capture times counted
    /// from `start` by the packets' timestamps: for tests and benchmarks.
    public static func chunks(ofFile path: String, cameraID: String, maxBytes: Int = 900_000, start: Date) throws -> [Vigil_V1_VideoChunk] {
        let demuxer = try Demuxer(url: path)
        let codec = StreamCodec(demuxer)
        var chunker = GOPChunker(maxBytes: maxBytes)
        var groups: [GOPChunker.Chunk] = []
        while let packet = try demuxer.next() {
            if let chunk = chunker.add(packet) { groups.append(chunk) }
        }
        if let last = chunker.finish() { groups.append(last) }
        let firstTime = groups.first?.packets.first?.presentationTime ?? 0
        return groups.enumerated().map { index, group in
            let time = group.packets.compactMap(\.presentationTime).min() ?? firstTime
            return Vigil_V1_VideoChunk(
                cameraID: cameraID, sequence: UInt64(index), epoch: 1, captureTime: start.addingTimeInterval(Double(time - firstTime) * codec.secondsPerTick),
                codec: codec, chunk: group, discontinuity: index == 0
            )
        }
    }
}
