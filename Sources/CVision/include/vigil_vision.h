// vigil's vision shim: the one C interface Swift sees over OpenVINO (every model) and OpenCV
// (image operations). Images are packed 8-bit RGB, rows tightly packed (stride = 3 * width).
// Every function that can fail returns 0 on success and writes a message into `error`.
#ifndef VIGIL_VISION_H
#define VIGIL_VISION_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// MARK: Models (OpenVINO, CPU)

typedef struct vv_model vv_model;

// Reads a model file (.tflite, .onnx, .pb, .xml) and compiles it for the CPU with `threads`
// inference threads (0: OpenVINO's choice). With `input_rank` > 0 the single input is first
// reshaped to `input_dims` (for fully convolutional models such as CenterFace).
vv_model *vv_model_load(const char *path, const int64_t *input_dims, int input_rank, int threads,
                        char *error, size_t error_size);
void vv_model_free(vv_model *model);

// The input's static shape; returns its rank (at most `max_rank` dims are written).
int vv_model_input_shape(const vv_model *model, int64_t *dims, int max_rank);
size_t vv_model_output_count(const vv_model *model);
// The output's first tensor name ("" when it has none); valid while the model lives.
const char *vv_model_output_name(const vv_model *model, size_t index);

// Runs the model on `input`: float32 values in the input's shape and layout.
int vv_model_infer(vv_model *model, const float *input, char *error, size_t error_size);
// The index-th output of the last inference (float32); its shape goes to `dims`/`rank`.
// Valid until the next inference or free.
const float *vv_model_output(vv_model *model, size_t index, int64_t *dims, int max_rank, int *rank);

// MARK: Images (OpenCV)

// An RGB image owned by the shim; release with vv_image_free.
typedef struct {
    uint8_t *pixels;
    int width;
    int height;
} vv_image;

void vv_image_free(vv_image *image);

// Decodes a JPEG (or PNG) into RGB.
int vv_decode_image(const uint8_t *data, size_t size, vv_image *out, char *error, size_t error_size);

// Pixel layouts vv_convert_to_rgb accepts (the values of vigil.v1.PixelFormat).
enum {
    VV_FORMAT_RGB24 = 1,
    VV_FORMAT_BGR24 = 2,
    VV_FORMAT_GRAY8 = 3,
    VV_FORMAT_YUV420P = 4,
    VV_FORMAT_NV12 = 5,
};

// Converts raw pixels (planes tightly packed) to RGB; `size` must match the layout exactly.
int vv_convert_to_rgb(int format, const uint8_t *data, size_t size, int width, int height,
                      vv_image *out, char *error, size_t error_size);

// Encodes RGB as a baseline JPEG; release `*out` with vv_buffer_free.
int vv_encode_jpeg(const uint8_t *rgb, int width, int height, int quality, uint8_t **out,
                   size_t *out_size, char *error, size_t error_size);
void vv_buffer_free(uint8_t *buffer);

// Resizes an RGB image into `out` (out_width × out_height × 3 bytes), area averaging.
void vv_resize_rgb(const uint8_t *rgb, int width, int height, uint8_t *out, int out_width, int out_height);

// How an image maps into a model input: input = image * scale + pad (per axis).
typedef struct {
    float scale_x, scale_y;
    float pad_x, pad_y;
} vv_placement;

// Resizes the region (x, y, w, h) of an RGB image into a float tensor of `out_width` ×
// `out_height` (NHWC when `channels_first` is 0, else NCHW), value = pixel * multiplier +
// bias. With `keep_aspect` the region is letterboxed (centred, padding = a black pixel);
// otherwise each axis is scaled alone. With `bgr` the channels are written B, G, R. The
// placement maps region pixels (origin at the region's corner) to input pixels.
vv_placement vv_image_to_tensor(const uint8_t *rgb, int width, int height, int region_x, int region_y,
                                int region_width, int region_height, int out_width,
                                int out_height, int channels_first, int keep_aspect, int bgr,
                                float multiplier, float bias, float *out);

// Irreversible masks, clipped to the image: a solid fill, or a mosaic of cells at most
// `cell` pixels wide whose colour is the cell's mean.
void vv_fill_rect(uint8_t *rgb, int width, int height, int x, int y, int w, int h,
                  uint8_t red, uint8_t green, uint8_t blue);
// Fills the polygon with `count` vertices (x, y pairs in image pixels) in one colour.
void vv_fill_polygon(uint8_t *rgb, int width, int height, const float *points, int count,
                     uint8_t red, uint8_t green, uint8_t blue);
void vv_mosaic_rect(uint8_t *rgb, int width, int height, int x, int y, int w, int h, int cell);

// MARK: Motion (OpenCV MOG2 background model, one per camera)

typedef struct vv_motion vv_motion;

// `history` frames for the moving-region model, `slow_history` for the slower one that finds
// static foreground (something that appeared and stopped moving).
vv_motion *vv_motion_new(int history, int slow_history, double variance_threshold);
void vv_motion_free(vv_motion *motion);
// Feeds a frame and writes up to `max_boxes` moving regions as x, y, w, h quadruples (image
// pixels); regions smaller than `min_area` pixels are dropped. Returns the region count.
int vv_motion_apply(vv_motion *motion, const uint8_t *rgb, int width, int height, int min_area,
                    int *boxes, int max_boxes);
// After vv_motion_apply: regions that have been static foreground for at least `min_frames`
// frames in a row — the slow model still sees them, the quick one has taken them in.
int vv_motion_static(vv_motion *motion, int min_frames, int min_area, int *boxes, int max_boxes);

// Whole-view measurements for tamper checks, on a grey copy scaled to `view_width` ×
// `view_height`: mean brightness and its standard deviation (0-255), and sharpness (variance
// of the Laplacian). The grey copy is written to `view` (view_width × view_height floats) for
// vv_view_shift.
typedef struct {
    double mean;
    double deviation;
    double sharpness;
} vv_view_measures;
void vv_view_measure(const uint8_t *rgb, int width, int height, int view_width, int view_height, float *view,
                     vv_view_measures *measures);
// The global translation of `current` against `reference` (two vv_view_measure views), by
// phase correlation: dx, dy in view pixels and the peak's response in [0, 1] (low when the
// two views share little).
void vv_view_shift(const float *reference, const float *current, int view_width, int view_height, double *dx,
                   double *dy, double *response);

#ifdef __cplusplus
}
#endif

#endif
