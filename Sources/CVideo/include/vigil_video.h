// vigil's video shim: the one C interface Swift sees over FFmpeg (libavformat to demux,
// libavcodec to decode, libswscale to scale). Every function that can fail returns a status
// and writes a message into `error`; messages never contain the stream's URL (it may carry
// credentials).
#ifndef VIGIL_VIDEO_H
#define VIGIL_VIDEO_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// The codecs vigil decodes (values of vigil.v1.VideoCodec); anything else is unsupported.
enum {
    VD_CODEC_UNSUPPORTED = 0,
    VD_CODEC_H264 = 1,
    VD_CODEC_HEVC = 2,
};

// MARK: Demuxing (ingest): packets as they are in the stream, never decoded.

typedef struct vd_demuxer vd_demuxer;

typedef struct {
    int codec;                 // VD_CODEC_*
    const char *codec_name;    // FFmpeg's name, for messages about unsupported codecs
    int width, height;
    int time_base_num, time_base_den;  // of packet timestamps
    double frames_per_second;  // the stream's average rate; 0 when unknown
    const uint8_t *extradata;  // codec parameters (SPS/PPS…), valid while the demuxer lives
    size_t extradata_size;
} vd_stream_info;

// Opens a file or rtsp:// URL (RTSP over TCP) and finds its first video stream. Opening and
// every later read give up after `timeout_ms` without data.
vd_demuxer *vd_demuxer_open(const char *url, int timeout_ms, char *error, size_t error_size);
void vd_demuxer_close(vd_demuxer *demuxer);
vd_stream_info vd_demuxer_info(const vd_demuxer *demuxer);

typedef struct {
    const uint8_t *data;  // valid until the next read or close
    size_t size;
    int64_t pts, dts, duration;  // in the stream's time base; INT64_MIN when unknown
    int keyframe;
} vd_packet;

// The next packet of the video stream: 0 a packet, 1 end of stream, -1 an error, -2 no data
// within the timeout (a stall).
int vd_demuxer_read(vd_demuxer *demuxer, vd_packet *packet, char *error, size_t error_size);

// MARK: Decoding (decode)

typedef struct vd_decoder vd_decoder;

// A decoder for `codec` with its parameters (`extradata` may be empty for Annex B streams
// that carry them in-band), on `threads` threads (1 for per-core figures).
vd_decoder *vd_decoder_new(int codec, const uint8_t *extradata, size_t extradata_size, int threads,
                           char *error, size_t error_size);
void vd_decoder_free(vd_decoder *decoder);

// Keyframes only (1) or every frame (0): frames that are not keyframes are dropped unread.
void vd_decoder_keyframes_only(vd_decoder *decoder, int keyframes_only);

// Feeds one packet (`data` NULL: end of stream, flush). 0 accepted, -1 the data is corrupt.
int vd_decoder_send(vd_decoder *decoder, const uint8_t *data, size_t size, int64_t pts, int keyframe,
                    char *error, size_t error_size);

// After the end-of-stream flush has given up every frame: ready for new packets again.
void vd_decoder_reset(vd_decoder *decoder);

typedef struct {
    int width, height;
    int64_t pts;
    int keyframe;
} vd_frame_info;

// The next decoded frame: 1 a frame (held until the next receive), 0 none ready, -1 error.
int vd_decoder_receive(vd_decoder *decoder, vd_frame_info *info, char *error, size_t error_size);

// The held frame as packed RGB24 scaled to out_width × out_height (libswscale, bicubic when
// shrinking). 0 ok, -1 error.
int vd_decoder_frame_rgb(vd_decoder *decoder, uint8_t *out, int out_width, int out_height,
                         char *error, size_t error_size);

#ifdef __cplusplus
}
#endif

#endif
