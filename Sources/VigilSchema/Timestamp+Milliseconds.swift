import SwiftProtobuf

// Event times travel as milliseconds since the epoch (`vigil-event-time-ms`) and sit in
// messages as Timestamps; these convert exactly, with no floating point in between.

extension Google_Protobuf_Timestamp {
    /// Whole milliseconds since the epoch (sub-millisecond nanos dropped).
    public var milliseconds: Int64 {
        seconds * 1_000 + Int64(nanos / 1_000_000)
    }

    /// The time `milliseconds` after the epoch (before it when negative).
    public init(milliseconds: Int64) {
        let (quotient, remainder) = milliseconds.quotientAndRemainder(dividingBy: 1_000)
        self = remainder >= 0
            ? Google_Protobuf_Timestamp(seconds: quotient, nanos: Int32(remainder) * 1_000_000)
            : Google_Protobuf_Timestamp(seconds: quotient - 1, nanos: Int32(remainder + 1_000) * 1_000_000)
    }
}

extension Google_Protobuf_Duration {
    /// Whole milliseconds (sub-millisecond nanos dropped).
    public var milliseconds: Int64 {
        seconds * 1_000 + Int64(nanos / 1_000_000)
    }
}
