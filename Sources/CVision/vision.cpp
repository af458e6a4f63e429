// The vision shim's implementation: OpenVINO's C API for models, OpenCV for pixels. Kept
// small and stateless apart from the model and motion handles; all policy lives in Swift.
#include "vigil_vision.h"

#include <openvino/c/openvino.h>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/video/background_segm.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

namespace {

void set_error(char *error, size_t size, const std::string &message) {
    if (error != nullptr && size > 0) std::snprintf(error, size, "%s", message.c_str());
}

std::string openvino_error(const char *step, ov_status_e status) {
    std::string message = std::string(step) + ": " + ov_get_error_info(status);
    const char *detail = ov_get_last_err_msg();
    if (detail != nullptr && detail[0] != 0) message += " (" + std::string(detail) + ")";
    return message;
}

// One OpenVINO core for the process: it caches plugins and is safe to share.
ov_core_t *shared_core(std::string &problem) {
    static std::once_flag once;
    static ov_core_t *core = nullptr;
    static std::string failure;
    std::call_once(once, [] {
        ov_status_e status = ov_core_create(&core);
        if (status != OK) failure = openvino_error("creating the OpenVINO core", status);
    });
    problem = failure;
    return core;
}

}  // namespace

struct vv_model {
    ov_model_t *model = nullptr;
    ov_compiled_model_t *compiled = nullptr;
    ov_infer_request_t *request = nullptr;
    std::vector<int64_t> input_dims;
    std::vector<std::string> output_names;
    std::vector<ov_tensor_t *> outputs;  // held from the last vv_model_output calls

    void release_outputs() {
        for (ov_tensor_t *tensor : outputs) if (tensor != nullptr) ov_tensor_free(tensor);
        outputs.assign(output_names.size(), nullptr);
    }
    ~vv_model() {
        release_outputs();
        if (request != nullptr) ov_infer_request_free(request);
        if (compiled != nullptr) ov_compiled_model_free(compiled);
        if (model != nullptr) ov_model_free(model);
    }
};

extern "C" vv_model *vv_model_load(const char *path, const int64_t *input_dims, int input_rank,
                                   int threads, char *error, size_t error_size) {
    // Reading and compiling share the core and its frontends: one load at a time (inference on
    // each model's own request runs in parallel).
    static std::mutex loading;
    std::lock_guard<std::mutex> guard(loading);
    std::string problem;
    ov_core_t *core = shared_core(problem);
    if (core == nullptr) { set_error(error, error_size, problem); return nullptr; }
    auto result = new vv_model();
    auto fail = [&](const char *step, ov_status_e status) -> vv_model * {
        set_error(error, error_size, openvino_error(step, status));
        delete result;
        return nullptr;
    };
    ov_status_e status = ov_core_read_model(core, path, nullptr, &result->model);
    if (status != OK) return fail("reading the model", status);
    size_t inputs = 0;
    ov_model_inputs_size(result->model, &inputs);
    if (inputs != 1) {
        set_error(error, error_size, "the model has " + std::to_string(inputs) + " inputs; vigil runs models with one image input");
        delete result;
        return nullptr;
    }
    if (input_rank > 0) {
        ov_partial_shape_t shape;
        status = ov_partial_shape_create_static(input_rank, input_dims, &shape);
        if (status != OK) return fail("describing the input shape", status);
        status = ov_model_reshape_single_input(result->model, shape);
        ov_partial_shape_free(&shape);
        if (status != OK) return fail("reshaping the input", status);
    }
    ov_output_const_port_t *input = nullptr;
    status = ov_model_const_input(result->model, &input);
    if (status != OK) return fail("reading the input", status);
    ov_element_type_e type;
    ov_port_get_element_type(input, &type);
    ov_shape_t shape;
    status = ov_const_port_get_shape(input, &shape);
    ov_output_const_port_free(input);
    if (status != OK) return fail("reading the input shape (is it dynamic? give input dims)", status);
    result->input_dims.assign(shape.dims, shape.dims + shape.rank);
    ov_shape_free(&shape);
    if (type != F32) {
        set_error(error, error_size, "the model's input is not float32; vigil feeds float32 images");
        delete result;
        return nullptr;
    }
    size_t outputs = 0;
    ov_model_outputs_size(result->model, &outputs);
    for (size_t index = 0; index < outputs; index++) {
        ov_output_const_port_t *port = nullptr;
        std::string name;
        if (ov_model_const_output_by_index(result->model, index, &port) == OK) {
            char *any = nullptr;
            if (ov_port_get_any_name(port, &any) == OK && any != nullptr) {
                name = any;
                ov_free(any);
            }
            ov_output_const_port_free(port);
        }
        result->output_names.push_back(name);
    }
    result->outputs.assign(outputs, nullptr);
    // Precision pinned to f32: left to itself the CPU plugin infers in bf16 on CPUs that have
    // it (AVX-512 BF16, AMX) and in f32 elsewhere, so the same frame gave other boxes and
    // scores on another machine (Privacy II, item 0). Kernels still differ by instruction set;
    // those differences are rounding-sized.
    std::string thread_count = std::to_string(threads);
    if (threads > 0) {
        status = ov_core_compile_model(core, result->model, "CPU", 6, &result->compiled,
                                       ov_property_key_inference_num_threads, thread_count.c_str(),
                                       ov_property_key_hint_performance_mode, "LATENCY",
                                       ov_property_key_hint_inference_precision, "f32");
    } else {
        status = ov_core_compile_model(core, result->model, "CPU", 4, &result->compiled,
                                       ov_property_key_hint_performance_mode, "LATENCY",
                                       ov_property_key_hint_inference_precision, "f32");
    }
    if (status != OK) return fail("compiling the model for the CPU", status);
    status = ov_compiled_model_create_infer_request(result->compiled, &result->request);
    if (status != OK) return fail("creating an inference request", status);
    return result;
}

extern "C" void vv_model_free(vv_model *model) { delete model; }

extern "C" int vv_model_input_shape(const vv_model *model, int64_t *dims, int max_rank) {
    int rank = static_cast<int>(model->input_dims.size());
    for (int index = 0; index < rank && index < max_rank; index++) dims[index] = model->input_dims[index];
    return rank;
}

extern "C" size_t vv_model_output_count(const vv_model *model) { return model->output_names.size(); }

extern "C" const char *vv_model_output_name(const vv_model *model, size_t index) {
    return index < model->output_names.size() ? model->output_names[index].c_str() : "";
}

extern "C" int vv_model_infer(vv_model *model, const float *input, char *error, size_t error_size) {
    model->release_outputs();
    ov_shape_t shape;
    ov_status_e status = ov_shape_create(static_cast<int64_t>(model->input_dims.size()), model->input_dims.data(), &shape);
    if (status != OK) { set_error(error, error_size, openvino_error("describing the input", status)); return 1; }
    ov_tensor_t *tensor = nullptr;
    status = ov_tensor_create_from_host_ptr(F32, shape, const_cast<float *>(input), &tensor);
    ov_shape_free(&shape);
    if (status != OK) { set_error(error, error_size, openvino_error("wrapping the input", status)); return 1; }
    status = ov_infer_request_set_input_tensor_by_index(model->request, 0, tensor);
    if (status == OK) status = ov_infer_request_infer(model->request);
    ov_tensor_free(tensor);
    if (status != OK) { set_error(error, error_size, openvino_error("running the model", status)); return 1; }
    return 0;
}

extern "C" const float *vv_model_output(vv_model *model, size_t index, int64_t *dims, int max_rank, int *rank) {
    *rank = 0;
    if (index >= model->outputs.size()) return nullptr;
    if (model->outputs[index] == nullptr &&
        ov_infer_request_get_output_tensor_by_index(model->request, index, &model->outputs[index]) != OK) {
        return nullptr;
    }
    ov_tensor_t *tensor = model->outputs[index];
    ov_element_type_e type;
    if (ov_tensor_get_element_type(tensor, &type) != OK || type != F32) return nullptr;
    ov_shape_t shape;
    if (ov_tensor_get_shape(tensor, &shape) != OK) return nullptr;
    *rank = static_cast<int>(shape.rank);
    for (int axis = 0; axis < *rank && axis < max_rank; axis++) dims[axis] = shape.dims[axis];
    ov_shape_free(&shape);
    void *data = nullptr;
    if (ov_tensor_data(tensor, &data) != OK) return nullptr;
    return static_cast<const float *>(data);
}

// MARK: Images

namespace {

bool hand_over(const cv::Mat &rgb, vv_image *out) {
    size_t bytes = static_cast<size_t>(rgb.cols) * rgb.rows * 3;
    out->pixels = static_cast<uint8_t *>(std::malloc(bytes));
    if (out->pixels == nullptr) return false;
    cv::Mat destination(rgb.rows, rgb.cols, CV_8UC3, out->pixels);
    rgb.copyTo(destination);
    out->width = rgb.cols;
    out->height = rgb.rows;
    return true;
}

cv::Rect clipped(int width, int height, int x, int y, int w, int h) {
    return cv::Rect(x, y, w, h) & cv::Rect(0, 0, width, height);
}

}  // namespace

extern "C" void vv_image_free(vv_image *image) {
    std::free(image->pixels);
    image->pixels = nullptr;
}

extern "C" int vv_decode_image(const uint8_t *data, size_t size, vv_image *out, char *error, size_t error_size) {
    *out = vv_image{nullptr, 0, 0};
    if (size == 0) { set_error(error, error_size, "the image is empty"); return 1; }
    try {
        cv::Mat encoded(1, static_cast<int>(size), CV_8UC1, const_cast<uint8_t *>(data));
        cv::Mat bgr = cv::imdecode(encoded, cv::IMREAD_COLOR);
        if (bgr.empty()) { set_error(error, error_size, "the image could not be decoded (corrupt or not a JPEG/PNG)"); return 1; }
        cv::Mat rgb;
        cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
        if (!hand_over(rgb, out)) { set_error(error, error_size, "out of memory"); return 1; }
        return 0;
    } catch (const cv::Exception &exception) {
        set_error(error, error_size, std::string("decoding the image: ") + exception.what());
        return 1;
    }
}

extern "C" int vv_convert_to_rgb(int format, const uint8_t *data, size_t size, int width, int height,
                                 vv_image *out, char *error, size_t error_size) {
    *out = vv_image{nullptr, 0, 0};
    if (width <= 0 || height <= 0) { set_error(error, error_size, "the frame has no pixels (zero width or height)"); return 1; }
    size_t pixels = static_cast<size_t>(width) * height;
    size_t expected = 0;
    switch (format) {
        case VV_FORMAT_RGB24: case VV_FORMAT_BGR24: expected = pixels * 3; break;
        case VV_FORMAT_GRAY8: expected = pixels; break;
        case VV_FORMAT_YUV420P: case VV_FORMAT_NV12:
            if (width % 2 != 0 || height % 2 != 0) { set_error(error, error_size, "4:2:0 frames need even width and height"); return 1; }
            expected = pixels * 3 / 2;
            break;
        default: set_error(error, error_size, "unsupported pixel format " + std::to_string(format)); return 1;
    }
    if (size != expected) {
        set_error(error, error_size, "the frame holds " + std::to_string(size) + " bytes; " + std::to_string(width) + "x" +
                  std::to_string(height) + " in this pixel format needs " + std::to_string(expected));
        return 1;
    }
    void *source = const_cast<uint8_t *>(data);
    cv::Mat rgb;
    switch (format) {
        case VV_FORMAT_RGB24: rgb = cv::Mat(height, width, CV_8UC3, source); break;
        case VV_FORMAT_BGR24: cv::cvtColor(cv::Mat(height, width, CV_8UC3, source), rgb, cv::COLOR_BGR2RGB); break;
        case VV_FORMAT_GRAY8: cv::cvtColor(cv::Mat(height, width, CV_8UC1, source), rgb, cv::COLOR_GRAY2RGB); break;
        case VV_FORMAT_YUV420P: cv::cvtColor(cv::Mat(height * 3 / 2, width, CV_8UC1, source), rgb, cv::COLOR_YUV2RGB_I420); break;
        case VV_FORMAT_NV12: cv::cvtColor(cv::Mat(height * 3 / 2, width, CV_8UC1, source), rgb, cv::COLOR_YUV2RGB_NV12); break;
    }
    if (!hand_over(rgb, out)) { set_error(error, error_size, "out of memory"); return 1; }
    return 0;
}

extern "C" int vv_encode_jpeg(const uint8_t *rgb, int width, int height, int quality, uint8_t **out,
                              size_t *out_size, char *error, size_t error_size) {
    *out = nullptr;
    *out_size = 0;
    try {
        cv::Mat bgr;
        cv::cvtColor(cv::Mat(height, width, CV_8UC3, const_cast<uint8_t *>(rgb)), bgr, cv::COLOR_RGB2BGR);
        std::vector<uint8_t> encoded;
        if (!cv::imencode(".jpg", bgr, encoded, {cv::IMWRITE_JPEG_QUALITY, quality})) {
            set_error(error, error_size, "JPEG encoding failed");
            return 1;
        }
        *out = static_cast<uint8_t *>(std::malloc(encoded.size()));
        if (*out == nullptr) { set_error(error, error_size, "out of memory"); return 1; }
        std::memcpy(*out, encoded.data(), encoded.size());
        *out_size = encoded.size();
        return 0;
    } catch (const cv::Exception &exception) {
        set_error(error, error_size, std::string("encoding the JPEG: ") + exception.what());
        return 1;
    }
}

extern "C" void vv_buffer_free(uint8_t *buffer) { std::free(buffer); }

extern "C" void vv_resize_rgb(const uint8_t *rgb, int width, int height, uint8_t *out, int out_width, int out_height) {
    cv::Mat destination(out_height, out_width, CV_8UC3, out);
    int interpolation = out_width < width ? cv::INTER_AREA : cv::INTER_LINEAR;
    cv::resize(cv::Mat(height, width, CV_8UC3, const_cast<uint8_t *>(rgb)), destination, destination.size(), 0, 0, interpolation);
}

extern "C" vv_placement vv_image_to_tensor(const uint8_t *rgb, int full_width, int full_height, int region_x,
                                           int region_y, int region_width, int region_height, int out_width,
                                           int out_height, int channels_first, int keep_aspect, int bgr,
                                           float multiplier, float bias, float *out) {
    vv_placement placement{1, 1, 0, 0};
    cv::Rect region = clipped(full_width, full_height, region_x, region_y, region_width, region_height);
    if (region.empty()) region = cv::Rect(0, 0, full_width, full_height);
    int width = region.width, height = region.height;
    placement.scale_x = static_cast<float>(out_width) / width;
    placement.scale_y = static_cast<float>(out_height) / height;
    int resized_width = out_width, resized_height = out_height;
    if (keep_aspect) {
        float scale = std::min(placement.scale_x, placement.scale_y);
        placement.scale_x = placement.scale_y = scale;
        resized_width = std::max(1, static_cast<int>(width * scale + 0.5f));
        resized_height = std::max(1, static_cast<int>(height * scale + 0.5f));
        placement.pad_x = (out_width - resized_width) / 2;
        placement.pad_y = (out_height - resized_height) / 2;
    }
    cv::Mat source = cv::Mat(full_height, full_width, CV_8UC3, const_cast<uint8_t *>(rgb))(region);
    cv::Mat resized;
    cv::resize(source, resized, cv::Size(resized_width, resized_height), 0, 0, cv::INTER_AREA);
    cv::Mat canvas(out_height, out_width, CV_8UC3, cv::Scalar(0, 0, 0));
    resized.copyTo(canvas(cv::Rect(static_cast<int>(placement.pad_x), static_cast<int>(placement.pad_y), resized_width, resized_height)));
    if (bgr) cv::cvtColor(canvas, canvas, cv::COLOR_RGB2BGR);
    cv::Mat values;
    canvas.convertTo(values, CV_32FC3, multiplier, bias);
    // Letterbox padding takes the value of a black pixel (bias), as the models were trained.
    if (channels_first) {
        std::vector<cv::Mat> planes;
        for (int channel = 0; channel < 3; channel++) {
            planes.emplace_back(out_height, out_width, CV_32FC1, out + static_cast<size_t>(channel) * out_width * out_height);
        }
        cv::split(values, planes);
    } else {
        cv::Mat destination(out_height, out_width, CV_32FC3, out);
        values.copyTo(destination);
    }
    return placement;
}

extern "C" void vv_fill_rect(uint8_t *rgb, int width, int height, int x, int y, int w, int h,
                             uint8_t red, uint8_t green, uint8_t blue) {
    cv::Rect area = clipped(width, height, x, y, w, h);
    if (area.empty()) return;
    cv::Mat image(height, width, CV_8UC3, rgb);
    image(area).setTo(cv::Scalar(red, green, blue));
}

extern "C" void vv_fill_polygon(uint8_t *rgb, int width, int height, const float *points, int count,
                                uint8_t red, uint8_t green, uint8_t blue) {
    if (count < 3) return;
    std::vector<cv::Point> vertices;
    for (int index = 0; index < count; index++) {
        vertices.emplace_back(static_cast<int>(std::lround(points[2 * index])), static_cast<int>(std::lround(points[2 * index + 1])));
    }
    cv::Mat image(height, width, CV_8UC3, rgb);
    // Anti-aliasing off: every pixel the polygon touches is filled outright.
    cv::fillPoly(image, std::vector<std::vector<cv::Point>>{vertices}, cv::Scalar(red, green, blue), cv::LINE_8);
}

extern "C" void vv_mosaic_rect(uint8_t *rgb, int width, int height, int x, int y, int w, int h, int cell) {
    cv::Rect area = clipped(width, height, x, y, w, h);
    if (area.empty()) return;
    cell = std::max(cell, 1);
    cv::Mat image(height, width, CV_8UC3, rgb);
    for (int top = area.y; top < area.y + area.height; top += cell) {
        for (int left = area.x; left < area.x + area.width; left += cell) {
            cv::Rect block = cv::Rect(left, top, cell, cell) & area;
            image(block).setTo(cv::mean(image(block)));
        }
    }
}

// MARK: Motion

struct vv_motion {
    cv::Ptr<cv::BackgroundSubtractorMOG2> model;
    // A slow model: what it still sees as foreground after the quick one absorbed it has
    // appeared and then stopped moving.
    cv::Ptr<cv::BackgroundSubtractorMOG2> slow_model;
    cv::Mat small, mask, slow_mask;
    // Per pixel: frames in a row it has been static foreground (CV_16U).
    cv::Mat static_frames;
    int history = 0, slow_history = 0;
    long frames = 0;
};

extern "C" vv_motion *vv_motion_new(int history, int slow_history, double variance_threshold) {
    auto motion = new vv_motion();
    motion->model = cv::createBackgroundSubtractorMOG2(history, variance_threshold, false);
    motion->slow_model = cv::createBackgroundSubtractorMOG2(slow_history, variance_threshold, false);
    motion->history = history;
    motion->slow_history = slow_history;
    return motion;
}

// Boxes of the connected regions of `binary` at half resolution, in full-resolution pixels.
static int boxes_of(const cv::Mat &binary, int min_area, int *boxes, int max_boxes) {
    std::vector<std::vector<cv::Point>> contours;
    cv::findContours(binary, contours, cv::RETR_EXTERNAL, cv::CHAIN_APPROX_SIMPLE);
    int count = 0;
    for (const auto &contour : contours) {
        cv::Rect box = cv::boundingRect(contour);
        cv::Rect full(box.x * 2, box.y * 2, box.width * 2, box.height * 2);
        if (full.area() < min_area) continue;
        if (count == max_boxes) break;
        boxes[count * 4 + 0] = full.x;
        boxes[count * 4 + 1] = full.y;
        boxes[count * 4 + 2] = full.width;
        boxes[count * 4 + 3] = full.height;
        count++;
    }
    return count;
}

extern "C" void vv_motion_free(vv_motion *motion) { delete motion; }

extern "C" int vv_motion_apply(vv_motion *motion, const uint8_t *rgb, int width, int height, int min_area,
                               int *boxes, int max_boxes) {
    // Half resolution: motion regions need no fine detail, and it quarters the cost.
    cv::Mat source(height, width, CV_8UC3, const_cast<uint8_t *>(rgb));
    cv::resize(source, motion->small, cv::Size(width / 2, height / 2), 0, 0, cv::INTER_AREA);
    motion->model->apply(motion->small, motion->mask);
    // MOG2 learns fast at first (rate 1 / 2n): both models learn the scene together for the
    // quick model's history, then the slow one settles to its own rate, or it would take in a
    // still object as fast as the quick one for many minutes.
    motion->frames++;
    double slow_rate = motion->frames < motion->history ? -1 : 1.0 / motion->slow_history;
    motion->slow_model->apply(motion->small, motion->slow_mask, slow_rate);
    cv::Mat cleaned;
    cv::morphologyEx(motion->mask, cleaned, cv::MORPH_OPEN, cv::getStructuringElement(cv::MORPH_ELLIPSE, {3, 3}));
    cv::dilate(cleaned, cleaned, cv::getStructuringElement(cv::MORPH_ELLIPSE, {7, 7}));

    cv::Mat still;
    cv::bitwise_and(motion->slow_mask, ~cleaned, still);
    if (motion->static_frames.size() != still.size()) motion->static_frames = cv::Mat::zeros(still.size(), CV_16U);
    cv::Mat counted;
    cv::add(motion->static_frames, cv::Scalar(1), counted, cv::noArray(), CV_16U);
    motion->static_frames = cv::Mat::zeros(still.size(), CV_16U);
    counted.copyTo(motion->static_frames, still);
    return boxes_of(cleaned, min_area, boxes, max_boxes);
}

extern "C" int vv_motion_static(vv_motion *motion, int min_frames, int min_area, int *boxes, int max_boxes) {
    if (motion->static_frames.empty()) return 0;
    cv::Mat settled = motion->static_frames >= min_frames;
    cv::morphologyEx(settled, settled, cv::MORPH_OPEN, cv::getStructuringElement(cv::MORPH_ELLIPSE, {5, 5}));
    cv::dilate(settled, settled, cv::getStructuringElement(cv::MORPH_ELLIPSE, {5, 5}));
    return boxes_of(settled, min_area, boxes, max_boxes);
}

extern "C" void vv_view_measure(const uint8_t *rgb, int width, int height, int view_width, int view_height, float *view,
                                vv_view_measures *measures) {
    cv::Mat source(height, width, CV_8UC3, const_cast<uint8_t *>(rgb));
    cv::Mat small, grey;
    cv::resize(source, small, cv::Size(view_width, view_height), 0, 0, cv::INTER_AREA);
    cv::cvtColor(small, grey, cv::COLOR_RGB2GRAY);
    cv::Scalar mean, deviation;
    cv::meanStdDev(grey, mean, deviation);
    cv::Mat laplacian;
    cv::Laplacian(grey, laplacian, CV_32F);
    cv::Scalar lapMean, lapDeviation;
    cv::meanStdDev(laplacian, lapMean, lapDeviation);
    measures->mean = mean[0];
    measures->deviation = deviation[0];
    measures->sharpness = lapDeviation[0] * lapDeviation[0];
    cv::Mat out(view_height, view_width, CV_32F, view);
    grey.convertTo(out, CV_32F);
}

extern "C" void vv_view_shift(const float *reference, const float *current, int view_width, int view_height, double *dx,
                              double *dy, double *response) {
    cv::Mat first(view_height, view_width, CV_32F, const_cast<float *>(reference));
    cv::Mat second(view_height, view_width, CV_32F, const_cast<float *>(current));
    // A Hann window keeps the image borders from dominating the correlation.
    cv::Mat window;
    cv::createHanningWindow(window, first.size(), CV_32F);
    double peak = 0;
    cv::Point2d shift = cv::phaseCorrelate(first, second, window, &peak);
    *dx = shift.x;
    *dy = shift.y;
    *response = peak;
}
