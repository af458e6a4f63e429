import CVideo

/// Decodes one camera's packets into frames (libavcodec). Feed packets in stream order;
/// not shared between tasks.
public final class VideoDecoder {
    private let handle: OpaquePointer

    /// - Parameters:
    ///   - parameters: the codec parameters (SPS/PPS…) from the demuxer; empty when the
    ///     stream carries them in-band.
    ///   - threads: decoding threads (1 for per-core figures).
    public init(codec: VideoCodec, parameters: [UInt8] = [], threads: Int = 1) throws(VideoError) {
        var buffer = [CChar](repeating: 0, count: 512)
        let created = parameters.withUnsafeBufferPointer {
            vd_decoder_new(codec.rawValue, $0.baseAddress, $0.count, Int32(threads), &buffer, buffer.count)
        }
        guard let created else { throw VideoError(kind: .unsupportedCodec, message: message(buffer)) }
        handle = created
    }

    deinit { vd_decoder_free(handle) }

    /// Decode keyframes only (frames between them are dropped unread), or every frame.
    public var keyframesOnly = false {
        didSet { vd_decoder_keyframes_only(handle, keyframesOnly ? 1 : 0) }
    }

    /// A decoded frame, held by the decoder until the next `receive`.
    public struct Frame: Sendable {
        public var width: Int
        public var height: Int
        public var presentationTime: Int64?
        public var keyframe: Bool
    }

    /// Feeds a packet; nil data ends the stream (the decoder then gives up what it holds).
    public func send(_ data: [UInt8]?, presentationTime: Int64? = nil, keyframe: Bool = false) throws(VideoError) {
        var buffer = [CChar](repeating: 0, count: 512)
        let status: Int32
        if let data {
            status = data.withUnsafeBufferPointer {
                vd_decoder_send(handle, $0.baseAddress, $0.count, presentationTime ?? Int64.min, keyframe ? 1 : 0, &buffer, buffer.count)
            }
        } else {
            status = vd_decoder_send(handle, nil, 0, Int64.min, 0, &buffer, buffer.count)
        }
        guard status == 0 else { throw VideoError(kind: .corruptData, message: message(buffer)) }
    }

    /// Ready for new packets after `send(nil)` gave up every frame.
    public func reset() {
        vd_decoder_reset(handle)
    }

    /// The next decoded frame, or nil when the decoder needs more packets.
    public func receive() throws(VideoError) -> Frame? {
        var info = vd_frame_info()
        var buffer = [CChar](repeating: 0, count: 512)
        switch vd_decoder_receive(handle, &info, &buffer, buffer.count) {
        case 1:
            return Frame(width: Int(info.width), height: Int(info.height), presentationTime: info.pts == Int64.min ? nil : info.pts, keyframe: info.keyframe != 0)
        case 0:
            return nil
        default:
            throw VideoError(kind: .corruptData, message: message(buffer))
        }
    }

    /// The frame last received, as packed RGB24 scaled to `width` × `height`.
    public func rgb(width: Int, height: Int) throws(VideoError) -> [UInt8] {
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        var buffer = [CChar](repeating: 0, count: 512)
        let status = pixels.withUnsafeMutableBufferPointer {
            vd_decoder_frame_rgb(handle, $0.baseAddress, Int32(width), Int32(height), &buffer, buffer.count)
        }
        guard status == 0 else { throw VideoError(kind: .corruptData, message: message(buffer)) }
        return pixels
    }
}
