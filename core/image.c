/*
** image.c — sample grids and PNG encoding (zlib for the compressed data and
** the CRCs). See image.h.
*/
#include "image.h"

#include <math.h>
#include <string.h>
#include <zlib.h>

#include "io.h"

int eg_image_grid(eg_tensor *out, const eg_tensor *src, int64_t h, int64_t w, int64_t rows, int64_t cols,
                  int64_t pad, float lo, float hi) {
  static const char op[] = "image_grid";
  if (!src || !src->storage) return eg_seterr(EG_ESTATE, "%s: the images are empty", op);
  if (src->ndim < 2) return eg_seterr(EG_ESHAPE, "%s: expected images [n, h*w], [n, h, w] or [n, 1, h, w]", op);
  int64_t n = src->shape[0], per = n ? eg_numel(src) / n : 0;
  if (h < 1 || w < 1 || per != h * w) {
    char b[64];
    return eg_seterr(EG_ESHAPE, "%s: images %s do not hold %lld x %lld pixels each", op,
                     eg_shape_str(src, b, sizeof b), (long long)h, (long long)w);
  }
  if (n < 1) return eg_seterr(EG_ESHAPE, "%s: no images", op);
  if (rows < 1 || cols < 1 || pad < 0 || pad > 64)
    return eg_seterr(EG_EINVAL, "%s: rows and columns must be >= 1 and padding in [0, 64]", op);
  if (n > rows * cols)
    return eg_seterr(EG_EINVAL, "%s: %lld images do not fit %lld x %lld cells", op, (long long)n, (long long)rows,
                     (long long)cols);
  if (n <= (rows - 1) * cols)
    return eg_seterr(EG_EINVAL, "%s: a grid of %lld x %lld cells for %lld images (more cells than images)", op,
                     (long long)rows, (long long)cols, (long long)n);
  int64_t H = rows * (h + pad) + pad, W = cols * (w + pad) + pad;
  if (H > 32768 || W > 32768) return eg_seterr(EG_EINVAL, "%s: a grid of %lld x %lld pixels is too large", op,
                                               (long long)H, (long long)W);
  eg_tensor c = EG_TENSOR_INIT;
  int st = eg_contiguous(&c, src);
  if (st) return st;
  const float *p = eg_data(&c);
  if (!(lo < hi)) { /* the images' own range */
    lo = INFINITY, hi = -INFINITY;
    for (int64_t i = 0; i < n * per; i++)
      if (isfinite(p[i])) lo = p[i] < lo ? p[i] : lo, hi = p[i] > hi ? p[i] : hi;
    if (!(lo < hi)) hi = lo + 1; /* constant images */
  }
  int64_t sh[2] = {H, W};
  if ((st = eg_tensor_resize(out, 2, sh)) || (st = eg_fill(out, 0.0f))) {
    eg_tensor_release(&c);
    return st;
  }
  float *o = eg_data(out), scale = 1.0f / (hi - lo);
  for (int64_t k = 0; k < n; k++) {
    int64_t r0 = pad + (k / cols) * (h + pad), c0 = pad + (k % cols) * (w + pad);
    for (int64_t y = 0; y < h; y++)
      for (int64_t x = 0; x < w; x++) {
        float v = (p[k * per + y * w + x] - lo) * scale;
        o[(r0 + y) * W + c0 + x] = isfinite(v) ? (v < 0 ? 0 : v > 1 ? 1 : v) : 0;
      }
  }
  eg_tensor_release(&c);
  return EG_OK;
}

static void be32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16), p[2] = (unsigned char)(v >> 8);
  p[3] = (unsigned char)v;
}

/* A chunk at p: length, type, data, CRC of type and data; returns its size. */
static size_t chunk(unsigned char *p, const char *type, const unsigned char *data, uint32_t len) {
  be32(p, len);
  memcpy(p + 4, type, 4);
  if (len) memcpy(p + 8, data, len);
  be32(p + 8 + len, (uint32_t)crc32(crc32(0L, Z_NULL, 0), p + 4, len + 4));
  return 12 + len;
}

int eg_png_encode(unsigned char **png, size_t *n, const eg_tensor *img) {
  static const char op[] = "png";
  *png = NULL, *n = 0;
  if (!img || !img->storage) return eg_seterr(EG_ESTATE, "%s: the image is empty", op);
  if (img->ndim != 2 || img->shape[0] < 1 || img->shape[1] < 1 || img->shape[0] > 32768 || img->shape[1] > 32768)
    return eg_seterr(EG_ESHAPE, "%s: expected an image [H, W] of 1 to 32768 pixels a side", op);
  int64_t H = img->shape[0], W = img->shape[1];
  size_t raw_n = (size_t)H * (size_t)(W + 1);
  unsigned char *raw = eg_malloc(raw_n);
  uLongf zn = compressBound((uLong)raw_n);
  unsigned char *z = eg_malloc(zn);
  int st = EG_OK;
  if (!raw || !z) st = eg_seterr(EG_ENOMEM, "%s: out of memory for a %lld x %lld image", op, (long long)H, (long long)W);
  eg_tensor c = EG_TENSOR_INIT;
  if (!st) st = eg_contiguous(&c, img);
  if (!st) {
    const float *p = eg_data(&c);
    for (int64_t y = 0; y < H; y++) {
      unsigned char *row = raw + y * (W + 1);
      row[0] = 0; /* filter: none */
      for (int64_t x = 0; x < W; x++) {
        float v = p[y * W + x];
        v = isfinite(v) ? (v < 0 ? 0 : v > 1 ? 1 : v) : 0;
        row[1 + x] = (unsigned char)lrintf(v * 255.0f);
      }
    }
    if (compress2(z, &zn, raw, (uLong)raw_n, 6) != Z_OK) st = eg_seterr(EG_ENOMEM, "%s: zlib failed", op);
  }
  eg_tensor_release(&c);
  unsigned char *out = NULL;
  if (!st) {
    size_t total = 8 + (12 + 13) + (12 + zn) + 12;
    out = eg_malloc(total);
    if (!out) {
      st = eg_seterr(EG_ENOMEM, "%s: out of memory", op);
    } else {
      static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
      unsigned char ihdr[13];
      be32(ihdr, (uint32_t)W), be32(ihdr + 4, (uint32_t)H);
      ihdr[8] = 8, ihdr[9] = 0, ihdr[10] = 0, ihdr[11] = 0, ihdr[12] = 0; /* 8-bit gray, deflate, no interlace */
      size_t k = 8;
      memcpy(out, sig, 8);
      k += chunk(out + k, "IHDR", ihdr, 13);
      k += chunk(out + k, "IDAT", z, (uint32_t)zn);
      k += chunk(out + k, "IEND", NULL, 0);
      *png = out, *n = k;
    }
  }
  eg_free(raw);
  eg_free(z);
  return st;
}

int eg_png_write(const char *path, const eg_tensor *img) {
  unsigned char *png;
  size_t n;
  int st = eg_png_encode(&png, &n, img);
  if (st) return st;
  st = eg_write_file_atomic(path, png, n);
  eg_free(png);
  return st;
}
