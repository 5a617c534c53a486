/*
** conv.c — Conv2d (im2col + one sgemm per image) and MaxPool2d kernels.
** Images are processed one at a time so the im2col scratch stays the size of
** one image's patches, whatever the batch.
*/
/* The element-wise loops (activations, bias, masks) must vectorise: at -O2
** GCC 12 compiles ReLU's select to a branch that mispredicts on every other
** element (10x slower than the vector form on random signs). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3")
#endif
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "nn.h"
#include "conv_impl.h"
#include "nn_impl.h"

static int conv_check(const eg_tensor *x, const eg_tensor *W, const eg_tensor *cols, int stride, int pad,
                      eg_conv_dims *d) {
  int st;
  if ((st = eg_nn_need(x, "conv2d", "input")) || (st = eg_nn_need(W, "conv2d", "weight")) ||
      (st = eg_nn_need(cols, "conv2d", "scratch")))
    return st;
  if (W->ndim != 4) return eg_seterr(EG_ESHAPE, "conv2d: weight must be 4-D [O x C x kh x kw]");
  if (x->ndim != 4) return eg_seterr(EG_ESHAPE, "conv2d: input must be 4-D [N x C x H x W], got %d-D", x->ndim);
  if (stride < 1 || pad < 0) return eg_seterr(EG_EINVAL, "conv2d: stride %d / padding %d out of range", stride, pad);
  d->N = x->shape[0], d->C = x->shape[1], d->H = x->shape[2], d->W = x->shape[3];
  d->O = W->shape[0], d->kh = W->shape[2], d->kw = W->shape[3];
  if (W->shape[1] != d->C)
    return eg_seterr(EG_ESHAPE, "conv2d: input has %lld channels, weight expects %lld", (long long)d->C,
                     (long long)W->shape[1]);
  if (d->H + 2 * pad < d->kh || d->W + 2 * pad < d->kw)
    return eg_seterr(EG_ESHAPE, "conv2d: input %lldx%lld (padding %d) smaller than kernel %lldx%lld", (long long)d->H,
                     (long long)d->W, pad, (long long)d->kh, (long long)d->kw);
  d->Ho = eg_conv_out_size(d->H, d->kh, stride, pad);
  d->Wo = eg_conv_out_size(d->W, d->kw, stride, pad);
  if (eg_numel(cols) < d->C * d->kh * d->kw * d->Ho * d->Wo)
    return eg_seterr(EG_ESHAPE, "conv2d: scratch has %lld floats, needs %lld", (long long)eg_numel(cols),
                     (long long)(d->C * d->kh * d->kw * d->Ho * d->Wo));
  return EG_OK;
}

static int conv_check_out(const eg_tensor *y, const eg_conv_dims *d, const char *what) {
  int st = eg_nn_need(y, "conv2d", what);
  if (st) return st;
  if (y->ndim != 4 || y->shape[0] != d->N || y->shape[1] != d->O || y->shape[2] != d->Ho || y->shape[3] != d->Wo) {
    char s[96];
    return eg_seterr(EG_ESHAPE, "conv2d: %s %s, expected [%lldx%lldx%lldx%lld]", what, eg_shape_str(y, s, sizeof s),
                     (long long)d->N, (long long)d->O, (long long)d->Ho, (long long)d->Wo);
  }
  return EG_OK;
}

/* See conv_impl.h. */
void eg_im2col(float *cols, const float *x, const eg_conv_dims *d, int s, int p) {
  int64_t HW = d->Ho * d->Wo;
  for (int64_t c = 0; c < d->C; c++)
    for (int64_t i = 0; i < d->kh; i++)
      for (int64_t j = 0; j < d->kw; j++) {
        float *row = cols + ((c * d->kh + i) * d->kw + j) * HW;
        const float *plane = x + c * d->H * d->W;
        for (int64_t oy = 0; oy < d->Ho; oy++) {
          int64_t iy = oy * s - p + i;
          float *o = row + oy * d->Wo;
          if (iy < 0 || iy >= d->H) {
            memset(o, 0, sizeof(float) * (size_t)d->Wo);
            continue;
          }
          const float *src = plane + iy * d->W;
          for (int64_t ox = 0; ox < d->Wo; ox++) {
            int64_t ix = ox * s - p + j;
            o[ox] = (ix >= 0 && ix < d->W) ? src[ix] : 0.0f;
          }
        }
      }
}

/* The adjoint of im2col: gx[c, iy, ix] += cols[...]; gx zeroed first. */
static void col2im(float *gx, const float *cols, const eg_conv_dims *d, int s, int p) {
  int64_t HW = d->Ho * d->Wo;
  memset(gx, 0, sizeof(float) * (size_t)(d->C * d->H * d->W));
  for (int64_t c = 0; c < d->C; c++)
    for (int64_t i = 0; i < d->kh; i++)
      for (int64_t j = 0; j < d->kw; j++) {
        const float *row = cols + ((c * d->kh + i) * d->kw + j) * HW;
        float *plane = gx + c * d->H * d->W;
        for (int64_t oy = 0; oy < d->Ho; oy++) {
          int64_t iy = oy * s - p + i;
          if (iy < 0 || iy >= d->H) continue;
          const float *src = row + oy * d->Wo;
          float *dst = plane + iy * d->W;
          for (int64_t ox = 0; ox < d->Wo; ox++) {
            int64_t ix = ox * s - p + j;
            if (ix >= 0 && ix < d->W) dst[ix] += src[ox];
          }
        }
      }
}

int eg_conv2d_forward(eg_tensor *y, eg_tensor *cols, const eg_tensor *x, const eg_tensor *W, const eg_tensor *b,
                      int stride, int pad) {
  eg_conv_dims d;
  int st;
  if ((st = conv_check(x, W, cols, stride, pad, &d)) || (st = conv_check_out(y, &d, "output"))) return st;
  if (b) {
    if ((st = eg_nn_need(b, "conv2d", "bias"))) return st;
    if (eg_numel(b) != d.O)
      return eg_seterr(EG_ESHAPE, "conv2d: bias has %lld elements, expected %lld", (long long)eg_numel(b),
                       (long long)d.O);
  }
  int64_t K = d.C * d.kh * d.kw, HW = d.Ho * d.Wo;
  for (int64_t n = 0; n < d.N; n++) {
    float *yn = eg_data(y) + n * d.O * HW;
    eg_im2col(eg_data(cols), eg_data(x) + n * d.C * d.H * d.W, &d, stride, pad);
    if (b)
      for (int64_t o = 0; o < d.O; o++)
        for (int64_t k = 0; k < HW; k++) yn[o * HW + k] = eg_data(b)[o];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)d.O, (int)HW, (int)K, 1.0f, eg_data(W), (int)K,
                eg_data(cols), (int)HW, b ? 1.0f : 0.0f, yn, (int)HW);
  }
  return EG_OK;
}

int eg_conv2d_backward(eg_tensor *gx, eg_tensor *gW, eg_tensor *gb, eg_tensor *cols, const eg_tensor *gy,
                       const eg_tensor *x, const eg_tensor *W, int stride, int pad) {
  eg_conv_dims d;
  int st;
  if ((st = conv_check(x, W, cols, stride, pad, &d)) || (st = conv_check_out(gy, &d, "output gradient"))) return st;
  if (gx && ((st = eg_nn_need(gx, "conv2d", "input gradient")) ||
             (st = eg_nn_same(gx, x, "conv2d", "input gradient", "input"))))
    return st;
  if (gW && ((st = eg_nn_need(gW, "conv2d", "weight gradient")) ||
             (st = eg_nn_same(gW, W, "conv2d", "weight gradient", "weight"))))
    return st;
  if (gb) {
    if ((st = eg_nn_need(gb, "conv2d", "bias gradient"))) return st;
    if (eg_numel(gb) != d.O) return eg_seterr(EG_ESHAPE, "conv2d: bias gradient has the wrong size");
  }
  int64_t K = d.C * d.kh * d.kw, HW = d.Ho * d.Wo;
  for (int64_t n = 0; n < d.N; n++) {
    const float *gyn = eg_data(gy) + n * d.O * HW;
    if (gb)
      for (int64_t o = 0; o < d.O; o++) {
        double s = 0;
        for (int64_t k = 0; k < HW; k++) s += gyn[o * HW + k];
        eg_data(gb)[o] += (float)s;
      }
    if (gW) {
      eg_im2col(eg_data(cols), eg_data(x) + n * d.C * d.H * d.W, &d, stride, pad);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)d.O, (int)K, (int)HW, 1.0f, gyn, (int)HW,
                  eg_data(cols), (int)HW, 1.0f, eg_data(gW), (int)K);
    }
    if (gx) {
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)K, (int)HW, (int)d.O, 1.0f, eg_data(W), (int)K, gyn,
                  (int)HW, 0.0f, eg_data(cols), (int)HW);
      col2im(eg_data(gx) + n * d.C * d.H * d.W, eg_data(cols), &d, stride, pad);
    }
  }
  return EG_OK;
}

/* -------------------------------------------------------------- MaxPool2d */

int eg_maxpool2d_forward(eg_tensor *y, eg_tensor *idx, const eg_tensor *x, int k, int stride, int pad) {
  int st;
  if ((st = eg_nn_need(x, "maxpool2d", "input")) || (st = eg_nn_need(y, "maxpool2d", "output")) ||
      (st = eg_nn_need(idx, "maxpool2d", "indices")))
    return st;
  if (x->ndim != 4) return eg_seterr(EG_ESHAPE, "maxpool2d: input must be 4-D [N x C x H x W], got %d-D", x->ndim);
  if (k < 1 || stride < 1 || pad < 0 || 2 * pad > k)
    return eg_seterr(EG_EINVAL, "maxpool2d: kernel %d, stride %d, padding %d out of range", k, stride, pad);
  int64_t N = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
  if (H + 2 * pad < k || W + 2 * pad < k)
    return eg_seterr(EG_ESHAPE, "maxpool2d: input %lldx%lld smaller than window %d", (long long)H, (long long)W, k);
  int64_t Ho = eg_conv_out_size(H, k, stride, pad), Wo = eg_conv_out_size(W, k, stride, pad);
  if (y->ndim != 4 || y->shape[0] != N || y->shape[1] != C || y->shape[2] != Ho || y->shape[3] != Wo) {
    char s[96];
    return eg_seterr(EG_ESHAPE, "maxpool2d: output %s, expected [%lldx%lldx%lldx%lld]", eg_shape_str(y, s, sizeof s),
                     (long long)N, (long long)C, (long long)Ho, (long long)Wo);
  }
  if ((st = eg_nn_same(idx, y, "maxpool2d", "indices", "output"))) return st;
  for (int64_t pl = 0; pl < N * C; pl++) {
    const float *a = eg_data(x) + pl * H * W;
    float *o = eg_data(y) + pl * Ho * Wo, *ix = eg_data(idx) + pl * Ho * Wo;
    for (int64_t oy = 0; oy < Ho; oy++)
      for (int64_t ox = 0; ox < Wo; ox++) {
        float m = -INFINITY;
        int64_t at = -1;
        for (int64_t i = 0; i < k; i++) {
          int64_t iy = oy * stride - pad + i;
          if (iy < 0 || iy >= H) continue;
          for (int64_t j = 0; j < k; j++) {
            int64_t jx = ox * stride - pad + j;
            if (jx < 0 || jx >= W) continue;
            float v = a[iy * W + jx];
            if (at < 0 || v > m || isnan(v)) {
              m = v;
              at = iy * W + jx;
              if (isnan(v)) goto done;
            }
          }
        }
      done:
        o[oy * Wo + ox] = m;
        ix[oy * Wo + ox] = (float)at;
      }
  }
  return EG_OK;
}

int eg_maxpool2d_backward(eg_tensor *gx, const eg_tensor *gy, const eg_tensor *idx) {
  int st;
  if ((st = eg_nn_need(gx, "maxpool2d", "input gradient")) || (st = eg_nn_need(gy, "maxpool2d", "output gradient")) ||
      (st = eg_nn_need(idx, "maxpool2d", "indices")) ||
      (st = eg_nn_same(gy, idx, "maxpool2d", "output gradient", "indices")))
    return st;
  if (gx->ndim != 4 || gy->ndim != 4 || gx->shape[0] != gy->shape[0] || gx->shape[1] != gy->shape[1])
    return eg_seterr(EG_ESHAPE, "maxpool2d: input gradient does not fit the output gradient");
  int64_t planes = gy->shape[0] * gy->shape[1], HW = gx->shape[2] * gx->shape[3], HWo = gy->shape[2] * gy->shape[3];
  memset(eg_data(gx), 0, sizeof(float) * (size_t)eg_numel(gx));
  for (int64_t pl = 0; pl < planes; pl++) {
    const float *g = eg_data(gy) + pl * HWo, *ix = eg_data(idx) + pl * HWo;
    float *o = eg_data(gx) + pl * HW;
    for (int64_t i = 0; i < HWo; i++) {
      int64_t at = (int64_t)ix[i];
      if (at < 0 || at >= HW) return eg_seterr(EG_ERANGE, "maxpool2d: saved index %lld out of range", (long long)at);
      o[at] += g[i];
    }
  }
  return EG_OK;
}
