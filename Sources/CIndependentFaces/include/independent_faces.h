// Face detectors vigil does NOT use for redaction — OpenCV's cascades and dlib's HOG
// detector — so tests can check redacted images with a detector that shares nothing with
// ours. Test support only; no worker links this.
#ifndef VIGIL_INDEPENDENT_FACES_H
#define VIGIL_INDEPENDENT_FACES_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Runs the OpenCV cascade in `cascade_path` on an RGB image (stride 3 * width) and writes up
// to `max_faces` boxes as x, y, w, h. Returns the face count, or -1 when the cascade file
// cannot be loaded.
int independent_cascade_faces(const char *cascade_path, const uint8_t *rgb, int width, int height,
                              int *boxes, int max_faces);

// dlib's HOG frontal-face detector, with the image upsampled `upsample` times (1 finds faces
// down to about 40 px). Same output as above.
int independent_dlib_faces(const uint8_t *rgb, int width, int height, int upsample, int *boxes,
                           int max_faces);

#ifdef __cplusplus
}
#endif

#endif
