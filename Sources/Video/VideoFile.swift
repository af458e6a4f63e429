import CVideo

/// A video codec vigil decodes (the values of `vigil.v1.VideoCodec`).
public enum VideoCodec: Int32, Sendable {
    case h264 = 1
    case hevc = 2
}

/// What went wrong with a stream, a packet or a frame. The message never contains the
/// stream's URL: it may carry credentials.
public struct VideoError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        case cannotOpen, unsupportedCodec, readFailed, corruptData
        /// No data within the read timeout: the stream stalled.
        case timedOut
    }

    public var kind: Kind
    public var message: String
    public var description: String { message }

    public init(kind: Kind, message: String) {
        self.kind = kind
        self.message = message
    }
}

func message(_ buffer: [CChar]) -> String {
    String(decoding: buffer.prefix { $0 != 0 }.map(UInt8.init(bitPattern:)), as: UTF8.self)
}

/// The video stream of a file or `rtsp://` URL, read packet by packet without decoding
/// (what ingest publishes). Not shared between tasks.
public final class Demuxer {
    private let handle: OpaquePointer
    public let codecName: String
    /// nil when the stream's codec is not one vigil decodes.
    public let codec: VideoCodec?
    public let width: Int
    public let height: Int
    /// Packet timestamps count in units of this many seconds.
    public let timeBase: (numerator: Int32, denominator: Int32)
    public let framesPerSecond: Double
    /// The codec's parameters (SPS/PPS…), for a decoder that starts anywhere.
    public let codecParameters: [UInt8]

    /// Opens the stream; opening and every read give up after `timeout` without data.
    public init(url: String, timeout: Duration = .seconds(5)) throws(VideoError) {
        var buffer = [CChar](repeating: 0, count: 512)
        let milliseconds = Int32(timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        guard let opened = vd_demuxer_open(url, milliseconds, &buffer, buffer.count) else {
            throw VideoError(kind: .cannotOpen, message: message(buffer))
        }
        handle = opened
        let info = vd_demuxer_info(opened)
        codecName = String(cString: info.codec_name)
        codec = VideoCodec(rawValue: info.codec)
        width = Int(info.width)
        height = Int(info.height)
        timeBase = (info.time_base_num, info.time_base_den)
        framesPerSecond = info.frames_per_second
        codecParameters = info.extradata_size > 0 ? Array(UnsafeBufferPointer(start: info.extradata, count: info.extradata_size)) : []
    }

    deinit { vd_demuxer_close(handle) }

    /// One compressed packet of the video stream.
    public struct Packet: Sendable {
        public var data: [UInt8]
        /// Presentation and decoding timestamps in `timeBase` units (nil when unknown).
        public var presentationTime: Int64?
        public var decodingTime: Int64?
        public var keyframe: Bool
    }

    /// The next packet, or nil at the end of the stream.
    public func next() throws(VideoError) -> Packet? {
        var packet = vd_packet()
        var buffer = [CChar](repeating: 0, count: 512)
        switch vd_demuxer_read(handle, &packet, &buffer, buffer.count) {
        case 0:
            return Packet(
                data: Array(UnsafeBufferPointer(start: packet.data, count: packet.size)),
                presentationTime: packet.pts == Int64.min ? nil : packet.pts, decodingTime: packet.dts == Int64.min ? nil : packet.dts,
                keyframe: packet.keyframe != 0
            )
        case 1:
            return nil
        case -2:
            throw VideoError(kind: .timedOut, message: message(buffer))
        default:
            throw VideoError(kind: .readFailed, message: message(buffer))
        }
    }
}
