/*
** image.h — images out of tensors: a grid of samples (what a replay memory
** holds, what a generator makes) as an 8-bit grayscale PNG.
*/
#ifndef EG_IMAGE_H
#define EG_IMAGE_H

#include <stddef.h>

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Tiles n images of h x w (src: [n, h*w], [n, h, w] or [n, 1, h, w], any
** values) into out [rows*(h+pad)+pad, cols*(w+pad)+pad], row by row, with
** pad pixels of background between and around them. Values are mapped to
** [0, 1]: from [lo, hi] when lo < hi, else from the images' own minimum and
** maximum; the background is 0. Needs n <= rows*cols, and n > (rows-1)*cols
** (no empty last row: a grid of more cells than images is an error). */
EG_API int eg_image_grid(eg_tensor *out, const eg_tensor *src, int64_t h, int64_t w, int64_t rows, int64_t cols,
                         int64_t pad, float lo, float hi);

/* An 8-bit grayscale PNG of img [H, W] (values in [0, 1], clamped) in a new
** buffer *png of *n bytes (free with eg_free). */
EG_API int eg_png_encode(unsigned char **png, size_t *n, const eg_tensor *img);

/* eg_png_encode, written to path atomically (io.h). */
EG_API int eg_png_write(const char *path, const eg_tensor *img);

#ifdef __cplusplus
}
#endif

#endif
