#include "independent_faces.h"

#include <dlib/image_processing/frontal_face_detector.h>
#include <dlib/image_transforms.h>
#include <opencv2/imgproc.hpp>
#include <opencv2/objdetect.hpp>

#include <vector>

extern "C" int independent_cascade_faces(const char *cascade_path, const uint8_t *rgb, int width, int height,
                                         int *boxes, int max_faces) {
    cv::CascadeClassifier cascade;
    if (!cascade.load(cascade_path)) return -1;
    cv::Mat gray;
    cv::cvtColor(cv::Mat(height, width, CV_8UC3, const_cast<uint8_t *>(rgb)), gray, cv::COLOR_RGB2GRAY);
    cv::equalizeHist(gray, gray);
    std::vector<cv::Rect> faces;
    cascade.detectMultiScale(gray, faces, 1.1, 3, 0, cv::Size(20, 20));
    int count = 0;
    for (const cv::Rect &face : faces) {
        if (count == max_faces) break;
        boxes[count * 4 + 0] = face.x;
        boxes[count * 4 + 1] = face.y;
        boxes[count * 4 + 2] = face.width;
        boxes[count * 4 + 3] = face.height;
        count++;
    }
    return count;
}

extern "C" int independent_dlib_faces(const uint8_t *rgb, int width, int height, int upsample, int *boxes,
                                      int max_faces) {
    dlib::array2d<unsigned char> gray(height, width);
    for (int row = 0; row < height; row++) {
        for (int column = 0; column < width; column++) {
            const uint8_t *pixel = rgb + (static_cast<size_t>(row) * width + column) * 3;
            gray[row][column] = static_cast<unsigned char>((299 * pixel[0] + 587 * pixel[1] + 114 * pixel[2]) / 1000);
        }
    }
    double scale = 1;
    for (int step = 0; step < upsample; step++) {
        dlib::pyramid_up(gray);
        scale *= 2;
    }
    // dlib's detectors keep scratch memory: one per thread (tests run suites in parallel).
    thread_local dlib::frontal_face_detector detector = dlib::get_frontal_face_detector();
    std::vector<dlib::rectangle> faces = detector(gray);
    int count = 0;
    for (const dlib::rectangle &face : faces) {
        if (count == max_faces) break;
        boxes[count * 4 + 0] = static_cast<int>(face.left() / scale);
        boxes[count * 4 + 1] = static_cast<int>(face.top() / scale);
        boxes[count * 4 + 2] = static_cast<int>(face.width() / scale);
        boxes[count * 4 + 3] = static_cast<int>(face.height() / scale);
        count++;
    }
    return count;
}
