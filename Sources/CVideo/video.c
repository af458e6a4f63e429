// The video shim's implementation over FFmpeg 5.1. Kept thin: demux, decode, scale; every
// decision (sampling, masks, health) lives in Swift.
#include "vigil_video.h"

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libavutil/time.h>
#include <libswscale/swscale.h>

#include <stdio.h>
#include <string.h>

// FFmpeg's own log lines can quote the stream's URL (credentials included): silence them;
// vigil reports every failure itself, without the URL.
static void quiet_ffmpeg(void) {
    av_log_set_level(AV_LOG_QUIET);
}

static void set_error(char *error, size_t size, const char *step, int code) {
    if (error == NULL || size == 0) return;
    char reason[AV_ERROR_MAX_STRING_SIZE] = "";
    if (code != 0) av_strerror(code, reason, sizeof(reason));
    snprintf(error, size, "%s%s%s", step, code != 0 ? ": " : "", reason);
}

static int codec_of(enum AVCodecID id) {
    switch (id) {
        case AV_CODEC_ID_H264: return VD_CODEC_H264;
        case AV_CODEC_ID_HEVC: return VD_CODEC_HEVC;
        default: return VD_CODEC_UNSUPPORTED;
    }
}

// MARK: Demuxing

struct vd_demuxer {
    AVFormatContext *format;
    AVPacket *packet;
    int stream;
    int64_t timeout_us;
    int64_t deadline_us;  // the interrupt callback aborts blocking I/O past this
};

static int interrupt(void *opaque) {
    struct vd_demuxer *demuxer = opaque;
    return demuxer->deadline_us > 0 && av_gettime_relative() > demuxer->deadline_us;
}

vd_demuxer *vd_demuxer_open(const char *url, int timeout_ms, char *error, size_t error_size) {
    quiet_ffmpeg();
    struct vd_demuxer *demuxer = av_mallocz(sizeof(struct vd_demuxer));
    if (demuxer == NULL) { set_error(error, error_size, "out of memory", 0); return NULL; }
    demuxer->timeout_us = (int64_t)timeout_ms * 1000;
    demuxer->format = avformat_alloc_context();
    demuxer->packet = av_packet_alloc();
    if (demuxer->format == NULL || demuxer->packet == NULL) {
        set_error(error, error_size, "out of memory", 0);
        vd_demuxer_close(demuxer);
        return NULL;
    }
    demuxer->format->interrupt_callback.callback = interrupt;
    demuxer->format->interrupt_callback.opaque = demuxer;
    AVDictionary *options = NULL;
    if (strncmp(url, "rtsp://", 7) == 0) {
        av_dict_set(&options, "rtsp_transport", "tcp", 0);
        av_dict_set_int(&options, "timeout", demuxer->timeout_us, 0);  // socket I/O
    }
    demuxer->deadline_us = av_gettime_relative() + demuxer->timeout_us;
    AVFormatContext *format = demuxer->format;
    int code = avformat_open_input(&format, url, NULL, &options);
    av_dict_free(&options);
    if (code < 0) {
        demuxer->format = NULL;  // freed by avformat_open_input on failure
        set_error(error, error_size, "cannot open the stream", code);
        vd_demuxer_close(demuxer);
        return NULL;
    }
    demuxer->format = format;
    code = avformat_find_stream_info(format, NULL);
    if (code < 0) {
        set_error(error, error_size, "cannot read the stream's parameters", code);
        vd_demuxer_close(demuxer);
        return NULL;
    }
    demuxer->stream = av_find_best_stream(format, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
    if (demuxer->stream < 0) {
        set_error(error, error_size, "the stream has no video", 0);
        vd_demuxer_close(demuxer);
        return NULL;
    }
    demuxer->deadline_us = 0;
    return demuxer;
}

void vd_demuxer_close(vd_demuxer *demuxer) {
    if (demuxer == NULL) return;
    if (demuxer->packet != NULL) av_packet_free(&demuxer->packet);
    if (demuxer->format != NULL) avformat_close_input(&demuxer->format);
    av_free(demuxer);
}

vd_stream_info vd_demuxer_info(const vd_demuxer *demuxer) {
    const AVStream *stream = demuxer->format->streams[demuxer->stream];
    const AVCodecParameters *parameters = stream->codecpar;
    vd_stream_info info;
    info.codec = codec_of(parameters->codec_id);
    info.codec_name = avcodec_get_name(parameters->codec_id);
    info.width = parameters->width;
    info.height = parameters->height;
    info.time_base_num = stream->time_base.num;
    info.time_base_den = stream->time_base.den;
    info.frames_per_second = stream->avg_frame_rate.den > 0 ? av_q2d(stream->avg_frame_rate) : 0;
    info.extradata = parameters->extradata;
    info.extradata_size = (size_t)parameters->extradata_size;
    return info;
}

int vd_demuxer_read(vd_demuxer *demuxer, vd_packet *packet, char *error, size_t error_size) {
    for (;;) {
        av_packet_unref(demuxer->packet);
        demuxer->deadline_us = av_gettime_relative() + demuxer->timeout_us;
        int code = av_read_frame(demuxer->format, demuxer->packet);
        demuxer->deadline_us = 0;
        if (code == AVERROR_EOF) return 1;
        if (code == AVERROR_EXIT) { set_error(error, error_size, "no data within the read timeout", 0); return -2; }
        if (code < 0) { set_error(error, error_size, "cannot read from the stream", code); return -1; }
        if (demuxer->packet->stream_index != demuxer->stream) continue;
        packet->data = demuxer->packet->data;
        packet->size = (size_t)demuxer->packet->size;
        packet->pts = demuxer->packet->pts == AV_NOPTS_VALUE ? INT64_MIN : demuxer->packet->pts;
        packet->dts = demuxer->packet->dts == AV_NOPTS_VALUE ? INT64_MIN : demuxer->packet->dts;
        packet->duration = demuxer->packet->duration;
        packet->keyframe = (demuxer->packet->flags & AV_PKT_FLAG_KEY) != 0;
        return 0;
    }
}

// MARK: Decoding

struct vd_decoder {
    AVCodecContext *context;
    AVPacket *packet;
    AVFrame *frame;
    struct SwsContext *scaler;
};

vd_decoder *vd_decoder_new(int codec, const uint8_t *extradata, size_t extradata_size, int threads,
                           char *error, size_t error_size) {
    quiet_ffmpeg();
    enum AVCodecID id = codec == VD_CODEC_H264 ? AV_CODEC_ID_H264 : codec == VD_CODEC_HEVC ? AV_CODEC_ID_HEVC : AV_CODEC_ID_NONE;
    const AVCodec *decoder_codec = id == AV_CODEC_ID_NONE ? NULL : avcodec_find_decoder(id);
    if (decoder_codec == NULL) { set_error(error, error_size, "unsupported codec", 0); return NULL; }
    struct vd_decoder *decoder = av_mallocz(sizeof(struct vd_decoder));
    if (decoder == NULL) { set_error(error, error_size, "out of memory", 0); return NULL; }
    decoder->context = avcodec_alloc_context3(decoder_codec);
    decoder->packet = av_packet_alloc();
    decoder->frame = av_frame_alloc();
    if (decoder->context == NULL || decoder->packet == NULL || decoder->frame == NULL) {
        set_error(error, error_size, "out of memory", 0);
        vd_decoder_free(decoder);
        return NULL;
    }
    if (extradata_size > 0) {
        decoder->context->extradata = av_mallocz(extradata_size + AV_INPUT_BUFFER_PADDING_SIZE);
        if (decoder->context->extradata == NULL) { set_error(error, error_size, "out of memory", 0); vd_decoder_free(decoder); return NULL; }
        memcpy(decoder->context->extradata, extradata, extradata_size);
        decoder->context->extradata_size = (int)extradata_size;
    }
    decoder->context->thread_count = threads;
    int code = avcodec_open2(decoder->context, decoder_codec, NULL);
    if (code < 0) { set_error(error, error_size, "cannot open the decoder", code); vd_decoder_free(decoder); return NULL; }
    return decoder;
}

void vd_decoder_free(vd_decoder *decoder) {
    if (decoder == NULL) return;
    if (decoder->scaler != NULL) sws_freeContext(decoder->scaler);
    if (decoder->frame != NULL) av_frame_free(&decoder->frame);
    if (decoder->packet != NULL) av_packet_free(&decoder->packet);
    if (decoder->context != NULL) avcodec_free_context(&decoder->context);
    av_free(decoder);
}

void vd_decoder_keyframes_only(vd_decoder *decoder, int keyframes_only) {
    decoder->context->skip_frame = keyframes_only ? AVDISCARD_NONKEY : AVDISCARD_DEFAULT;
}

int vd_decoder_send(vd_decoder *decoder, const uint8_t *data, size_t size, int64_t pts, int keyframe,
                    char *error, size_t error_size) {
    int code;
    if (data == NULL) {
        code = avcodec_send_packet(decoder->context, NULL);
    } else {
        av_packet_unref(decoder->packet);
        code = av_new_packet(decoder->packet, (int)size);
        if (code < 0) { set_error(error, error_size, "out of memory", code); return -1; }
        memcpy(decoder->packet->data, data, size);
        decoder->packet->pts = pts == INT64_MIN ? AV_NOPTS_VALUE : pts;
        if (keyframe) decoder->packet->flags |= AV_PKT_FLAG_KEY;
        code = avcodec_send_packet(decoder->context, decoder->packet);
    }
    if (code == AVERROR_EOF || code == AVERROR(EAGAIN)) return 0;
    if (code < 0) { set_error(error, error_size, "the decoder refused the data", code); return -1; }
    return 0;
}

void vd_decoder_reset(vd_decoder *decoder) {
    avcodec_flush_buffers(decoder->context);
}

int vd_decoder_receive(vd_decoder *decoder, vd_frame_info *info, char *error, size_t error_size) {
    int code = avcodec_receive_frame(decoder->context, decoder->frame);
    if (code == AVERROR(EAGAIN) || code == AVERROR_EOF) return 0;
    if (code < 0) { set_error(error, error_size, "cannot decode the frame", code); return -1; }
    info->width = decoder->frame->width;
    info->height = decoder->frame->height;
    info->pts = decoder->frame->best_effort_timestamp == AV_NOPTS_VALUE ? INT64_MIN : decoder->frame->best_effort_timestamp;
    info->keyframe = decoder->frame->key_frame;
    return 1;
}

int vd_decoder_frame_rgb(vd_decoder *decoder, uint8_t *out, int out_width, int out_height, char *error, size_t error_size) {
    AVFrame *frame = decoder->frame;
    int flags = (out_width < frame->width || out_height < frame->height) ? SWS_BICUBIC : SWS_BILINEAR;
    decoder->scaler = sws_getCachedContext(decoder->scaler, frame->width, frame->height, frame->format, out_width, out_height,
                                           AV_PIX_FMT_RGB24, flags, NULL, NULL, NULL);
    if (decoder->scaler == NULL) { set_error(error, error_size, "cannot convert this frame's pixel format", 0); return -1; }
    uint8_t *planes[4] = {out, NULL, NULL, NULL};
    int strides[4] = {out_width * 3, 0, 0, 0};
    sws_scale(decoder->scaler, (const uint8_t *const *)frame->data, frame->linesize, 0, frame->height, planes, strides);
    return 0;
}
