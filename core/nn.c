/*
** nn.c — dense layer kernels (Linear, activations, Softmax, LogSoftmax,
** Dropout, LayerNorm, Embedding). Convolution and pooling are in conv.c.
*/
/* The element-wise loops (activations, bias, masks) must vectorise: at -O2
** GCC 12 compiles ReLU's select to a branch that mispredicts on every other
** element (10x slower than the vector form on random signs). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3", "no-trapping-math")
#endif
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "nn.h"
#include "fastmath_impl.h"
#include "nn_impl.h"

int eg_nn_need(const eg_tensor *t, const char *layer, const char *what) {
  if (!t || !t->storage) return eg_seterr(EG_ESTATE, "%s: %s is empty", layer, what);
  if (!eg_is_contiguous(t)) return eg_seterr(EG_ESHAPE, "%s: %s must be contiguous", layer, what);
  return EG_OK;
}

int eg_nn_same(const eg_tensor *a, const eg_tensor *b, const char *layer, const char *wa, const char *wb) {
  if (eg_same_shape(a, b)) return EG_OK;
  char sa[96], sb[96];
  return eg_seterr(EG_ESHAPE, "%s: %s %s does not match %s %s", layer, wa, eg_shape_str(a, sa, sizeof sa), wb,
                   eg_shape_str(b, sb, sizeof sb));
}

/* ---------------------------------------------------------------- Linear */

static int linear_check(const eg_tensor *x, const eg_tensor *W, int64_t *rows) {
  int st;
  if ((st = eg_nn_need(x, "linear", "input")) || (st = eg_nn_need(W, "linear", "weight"))) return st;
  if (W->ndim != 2) return eg_seterr(EG_ESHAPE, "linear: weight must be 2-D [out x in], got %d-D", W->ndim);
  if (x->ndim < 1) return eg_seterr(EG_ESHAPE, "linear: input must have at least 1 dimension");
  int64_t in = W->shape[1];
  if (x->shape[x->ndim - 1] != in)
    return eg_seterr(EG_ESHAPE, "linear: input width %lld does not match %lld", (long long)x->shape[x->ndim - 1],
                     (long long)in);
  *rows = in ? eg_numel(x) / in : 0;
  return EG_OK;
}

/* y must have x's leading dimensions and a last dimension of out. */
static int linear_check_out(const eg_tensor *y, const eg_tensor *x, int64_t out, const char *what) {
  int ok = y->ndim == x->ndim && y->shape[y->ndim - 1] == out;
  for (int d = 0; ok && d < x->ndim - 1; d++) ok = y->shape[d] == x->shape[d];
  if (ok) return EG_OK;
  char sy[96], sx[96];
  return eg_seterr(EG_ESHAPE, "linear: %s %s does not fit input %s and %lld outputs", what,
                   eg_shape_str(y, sy, sizeof sy), eg_shape_str(x, sx, sizeof sx), (long long)out);
}

int eg_linear_forward(eg_tensor *y, const eg_tensor *x, const eg_tensor *W, const eg_tensor *b) {
  return eg_linear_forward_ws(y, NULL, x, W, b);
}

int eg_linear_forward_ws(eg_tensor *y, eg_tensor *ws, const eg_tensor *x, const eg_tensor *W, const eg_tensor *b) {
  int64_t rows = 0;
  int st;
  if ((st = linear_check(x, W, &rows)) || (st = eg_nn_need(y, "linear", "output"))) return st;
  int64_t out = W->shape[0], in = W->shape[1];
  if ((st = linear_check_out(y, x, out, "output"))) return st;
  if (b) {
    if ((st = eg_nn_need(b, "linear", "bias"))) return st;
    if (eg_numel(b) != out)
      return eg_seterr(EG_ESHAPE, "linear: bias has %lld elements, expected %lld", (long long)eg_numel(b),
                       (long long)out);
  }
  if (rows == 0 || out == 0) return EG_OK;
  float *py = eg_data(y);
  if (ws && rows <= EG_LINEAR_FEW_ROWS && in > 0) { /* checked whether or not it is used: one contract */
    if ((st = eg_nn_need(ws, "linear", "workspace"))) return st;
    if (eg_numel(ws) < rows * out)
      return eg_seterr(EG_ESHAPE, "linear: workspace has %lld floats, needs %lld", (long long)eg_numel(ws),
                       (long long)(rows * out));
  }
  if (ws && rows <= EG_LINEAR_FEW_ROWS && in > 0 && eg_get_threads() == 1) {
    float *t = eg_data(ws); /* y^T [out x rows] */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)out, (int)rows, (int)in, 1.0f, eg_data(W), (int)in,
                eg_data(x), (int)in, 0.0f, t, (int)rows);
    const float *pb = b ? eg_data(b) : NULL;
    for (int64_t r = 0; r < rows; r++) {
      float *o = py + r * out;
      for (int64_t j = 0; j < out; j++) o[j] = t[j * rows + r] + (pb ? pb[j] : 0.0f);
    }
    return EG_OK;
  }
  if (b) {
    const float *pb = eg_data(b);
    for (int64_t r = 0; r < rows; r++) memcpy(py + r * out, pb, sizeof(float) * (size_t)out);
  }
  if (in == 0) {
    if (!b) memset(py, 0, sizeof(float) * (size_t)(rows * out));
    return EG_OK;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)out, (int)in, 1.0f, eg_data(x), (int)in,
              eg_data(W), (int)in, b ? 1.0f : 0.0f, py, (int)out);
  return EG_OK;
}

int eg_linear_backward(eg_tensor *gx, eg_tensor *gW, eg_tensor *gb, const eg_tensor *gy, const eg_tensor *x,
                       const eg_tensor *W) {
  int64_t rows = 0;
  int st;
  if ((st = linear_check(x, W, &rows)) || (st = eg_nn_need(gy, "linear", "output gradient"))) return st;
  int64_t out = W->shape[0], in = W->shape[1];
  if ((st = linear_check_out(gy, x, out, "output gradient"))) return st;
  if (gx && ((st = eg_nn_need(gx, "linear", "input gradient")) ||
             (st = eg_nn_same(gx, x, "linear", "input gradient", "input"))))
    return st;
  if (gW && ((st = eg_nn_need(gW, "linear", "weight gradient")) ||
             (st = eg_nn_same(gW, W, "linear", "weight gradient", "weight"))))
    return st;
  if (gb) {
    if ((st = eg_nn_need(gb, "linear", "bias gradient"))) return st;
    if (eg_numel(gb) != out)
      return eg_seterr(EG_ESHAPE, "linear: bias gradient has %lld elements, expected %lld", (long long)eg_numel(gb),
                       (long long)out);
  }
  const float *pgy = eg_data(gy);
  if (gx) {
    if (rows && in) {
      if (out)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)in, (int)out, 1.0f, pgy, (int)out,
                    eg_data(W), (int)in, 0.0f, eg_data(gx), (int)in);
      else
        memset(eg_data(gx), 0, sizeof(float) * (size_t)(rows * in));
    }
  }
  if (gW && rows && in && out)
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)out, (int)in, (int)rows, 1.0f, pgy, (int)out, eg_data(x),
                (int)in, 1.0f, eg_data(gW), (int)in);
  if (gb) {
    float *pb = eg_data(gb);
    for (int64_t r = 0; r < rows; r++) {
      const float *g = pgy + r * out;
      for (int64_t j = 0; j < out; j++) pb[j] += g[j];
    }
  }
  return EG_OK;
}

/* ----------------------------------------------------------- activations */

const char *eg_act_name(eg_act a) {
  switch (a) {
    case EG_ACT_RELU: return "relu";
    case EG_ACT_LEAKY_RELU: return "leaky_relu";
    case EG_ACT_TANH: return "tanh";
    case EG_ACT_SIGMOID: return "sigmoid";
    case EG_ACT_GELU: return "gelu";
    case EG_ACT_IDENTITY: return "identity";
  }
  return "?";
}

#define GELU_C 0.7978845608028654f /* sqrt(2/pi) */
#define GELU_A 0.044715f

/* GELU through eg_tanhf_, which vectorises (fastmath_impl.h): 8x glibc's
** tanhf on the GPT's feed-forward, more with the AVX clones. */
static EG_CLONES void gelu_forward(float *y, const float *x, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    float v = x[i];
    y[i] = 0.5f * v * (1.0f + eg_tanhf_(GELU_C * (v + GELU_A * v * v * v)));
  }
}

static EG_CLONES void gelu_backward(float *gx, const float *gy, const float *x, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    float u = x[i], inner = GELU_C * (u + GELU_A * u * u * u), t = eg_tanhf_(inner);
    float d = 0.5f * (1.0f + t) + 0.5f * u * (1.0f - t * t) * GELU_C * (1.0f + 3.0f * GELU_A * u * u);
    gx[i] = gy[i] * d;
  }
}

int eg_act_forward(eg_tensor *y, const eg_tensor *x, eg_act a, float alpha) {
  const char *op = eg_act_name(a);
  int st;
  if ((st = eg_nn_need(x, op, "input")) || (st = eg_nn_need(y, op, "output")) ||
      (st = eg_nn_same(y, x, op, "output", "input")))
    return st;
  int64_t n = eg_numel(x);
  const float *px = eg_data(x);
  float *py = eg_data(y);
  switch (a) {
    case EG_ACT_RELU:
      for (int64_t i = 0; i < n; i++) { float v = px[i]; py[i] = v > 0 ? v : 0.0f; }
      break;
    case EG_ACT_LEAKY_RELU:
      for (int64_t i = 0; i < n; i++) { float v = px[i]; py[i] = v > 0 ? v : alpha * v; }
      break;
    case EG_ACT_TANH:
      for (int64_t i = 0; i < n; i++) py[i] = tanhf(px[i]);
      break;
    case EG_ACT_SIGMOID:
      for (int64_t i = 0; i < n; i++) py[i] = 1.0f / (1.0f + expf(-px[i]));
      break;
    case EG_ACT_GELU: gelu_forward(py, px, n); break;
    case EG_ACT_IDENTITY:
      if (py != px) memmove(py, px, sizeof(float) * (size_t)n);
      break;
    default: return eg_seterr(EG_EINVAL, "activation: unknown kind %d", (int)a);
  }
  return EG_OK;
}

int eg_act_backward(eg_tensor *gx, const eg_tensor *gy, const eg_tensor *x, const eg_tensor *y, eg_act a,
                    float alpha) {
  const char *op = eg_act_name(a);
  int st;
  if ((st = eg_nn_need(gy, op, "output gradient")) || (st = eg_nn_need(gx, op, "input gradient")) ||
      (st = eg_nn_same(gx, gy, op, "input gradient", "output gradient")))
    return st;
  const eg_tensor *s = (a == EG_ACT_GELU || (a == EG_ACT_LEAKY_RELU && !(alpha > 0)) || !y) ? x : y;
  int from_x = s == x;
  if (a == EG_ACT_IDENTITY) s = gy;
  if (!s) return eg_seterr(EG_EINVAL, "%s: backward needs the saved %s", op, from_x ? "input" : "output");
  if ((st = eg_nn_need(s, op, "saved tensor")) || (st = eg_nn_same(s, gy, op, "saved tensor", "output gradient")))
    return st;
  int64_t n = eg_numel(gy);
  const float *g = eg_data(gy), *v = eg_data(s);
  float *o = eg_data(gx);
  switch (a) {
    case EG_ACT_RELU: /* unconditional loads: a select of two loaded values vectorises, a conditional load does not */
      for (int64_t i = 0; i < n; i++) { float gi = g[i], vi = v[i]; o[i] = vi > 0 ? gi : 0.0f; }
      break;
    case EG_ACT_LEAKY_RELU:
      for (int64_t i = 0; i < n; i++) { float gi = g[i], vi = v[i]; o[i] = vi > 0 ? gi : alpha * gi; }
      break;
    case EG_ACT_TANH:
      if (from_x)
        for (int64_t i = 0; i < n; i++) { float t = tanhf(v[i]); o[i] = g[i] * (1.0f - t * t); }
      else
        for (int64_t i = 0; i < n; i++) o[i] = g[i] * (1.0f - v[i] * v[i]);
      break;
    case EG_ACT_SIGMOID:
      if (from_x)
        for (int64_t i = 0; i < n; i++) { float t = 1.0f / (1.0f + expf(-v[i])); o[i] = g[i] * t * (1.0f - t); }
      else
        for (int64_t i = 0; i < n; i++) o[i] = g[i] * v[i] * (1.0f - v[i]);
      break;
    case EG_ACT_GELU: gelu_backward(o, g, v, n); break;
    case EG_ACT_IDENTITY:
      if (o != g) memmove(o, g, sizeof(float) * (size_t)n);
      break;
    default: return eg_seterr(EG_EINVAL, "activation: unknown kind %d", (int)a);
  }
  return EG_OK;
}

/* ------------------------------------------------- Softmax / LogSoftmax */

static int lastdim(const eg_tensor *x, int64_t *rows, int64_t *cols, const char *op) {
  if (x->ndim < 1) return eg_seterr(EG_ESHAPE, "%s: input must have at least 1 dimension", op);
  *cols = x->shape[x->ndim - 1];
  *rows = *cols ? eg_numel(x) / *cols : 0;
  return EG_OK;
}

static int softmax_any(eg_tensor *y, const eg_tensor *x, int logspace) {
  const char *op = logspace ? "logsoftmax" : "softmax";
  int64_t rows = 0, cols = 0;
  int st;
  if ((st = eg_nn_need(x, op, "input")) || (st = eg_nn_need(y, op, "output")) ||
      (st = eg_nn_same(y, x, op, "output", "input")) || (st = lastdim(x, &rows, &cols, op)))
    return st;
  for (int64_t r = 0; r < rows; r++) {
    const float *a = eg_data(x) + r * cols;
    float *o = eg_data(y) + r * cols;
    float m = -INFINITY;
    for (int64_t j = 0; j < cols; j++) m = a[j] > m ? a[j] : m;
    double s = 0;
    for (int64_t j = 0; j < cols; j++) s += exp((double)(a[j] - m));
    if (logspace) {
      float ls = m + (float)log(s);
      for (int64_t j = 0; j < cols; j++) o[j] = a[j] - ls;
    } else {
      float inv = (float)(1.0 / s);
      for (int64_t j = 0; j < cols; j++) o[j] = expf(a[j] - m) * inv;
    }
  }
  return EG_OK;
}

static int softmax_back_any(eg_tensor *gx, const eg_tensor *gy, const eg_tensor *y, int logspace) {
  const char *op = logspace ? "logsoftmax" : "softmax";
  int64_t rows = 0, cols = 0;
  int st;
  if ((st = eg_nn_need(gy, op, "output gradient")) || (st = eg_nn_need(y, op, "saved output")) ||
      (st = eg_nn_need(gx, op, "input gradient")) || (st = eg_nn_same(gy, y, op, "output gradient", "output")) ||
      (st = eg_nn_same(gx, y, op, "input gradient", "output")) || (st = lastdim(y, &rows, &cols, op)))
    return st;
  for (int64_t r = 0; r < rows; r++) {
    const float *g = eg_data(gy) + r * cols, *p = eg_data(y) + r * cols;
    float *o = eg_data(gx) + r * cols;
    double s = 0;
    if (logspace) {
      for (int64_t j = 0; j < cols; j++) s += g[j];
      for (int64_t j = 0; j < cols; j++) o[j] = g[j] - expf(p[j]) * (float)s;
    } else {
      for (int64_t j = 0; j < cols; j++) s += (double)g[j] * p[j];
      for (int64_t j = 0; j < cols; j++) o[j] = p[j] * (g[j] - (float)s);
    }
  }
  return EG_OK;
}

int eg_softmax_forward(eg_tensor *y, const eg_tensor *x) { return softmax_any(y, x, 0); }
int eg_softmax_backward(eg_tensor *gx, const eg_tensor *gy, const eg_tensor *y) {
  return softmax_back_any(gx, gy, y, 0);
}
int eg_logsoftmax_forward(eg_tensor *y, const eg_tensor *x) { return softmax_any(y, x, 1); }
int eg_logsoftmax_backward(eg_tensor *gx, const eg_tensor *gy, const eg_tensor *y) {
  return softmax_back_any(gx, gy, y, 1);
}

/* --------------------------------------------------------------- Dropout */

int eg_dropout_forward(eg_tensor *y, eg_tensor *mask, const eg_tensor *x, eg_rng *r, float p) {
  int st;
  if ((st = eg_nn_need(x, "dropout", "input")) || (st = eg_nn_need(y, "dropout", "output")) ||
      (st = eg_nn_need(mask, "dropout", "mask")) || (st = eg_nn_same(y, x, "dropout", "output", "input")) ||
      (st = eg_nn_same(mask, x, "dropout", "mask", "input")))
    return st;
  if (!(p >= 0 && p < 1)) return eg_seterr(EG_EINVAL, "dropout: probability %g not in [0, 1)", (double)p);
  if (!r) return eg_seterr(EG_EINVAL, "dropout: no generator");
  if ((st = eg_fill_bernoulli_scaled(mask, r, 1.0f - p))) return st;
  int64_t n = eg_numel(x);
  const float *px = eg_data(x), *pm = eg_data(mask);
  float *py = eg_data(y);
  for (int64_t i = 0; i < n; i++) py[i] = px[i] * pm[i];
  return EG_OK;
}

int eg_dropout_backward(eg_tensor *gx, const eg_tensor *gy, const eg_tensor *mask) {
  int st;
  if ((st = eg_nn_need(gy, "dropout", "output gradient")) || (st = eg_nn_need(gx, "dropout", "input gradient")) ||
      (st = eg_nn_need(mask, "dropout", "mask")) ||
      (st = eg_nn_same(gy, mask, "dropout", "output gradient", "mask")) ||
      (st = eg_nn_same(gx, mask, "dropout", "input gradient", "mask")))
    return st;
  int64_t n = eg_numel(gy);
  const float *g = eg_data(gy), *m = eg_data(mask);
  float *o = eg_data(gx);
  for (int64_t i = 0; i < n; i++) o[i] = g[i] * m[i];
  return EG_OK;
}

/* ------------------------------------------------------------- LayerNorm */

static int ln_check(const eg_tensor *x, const eg_tensor *mean, const eg_tensor *rstd, const eg_tensor *w,
                    int64_t *rows, int64_t *D) {
  int st;
  if ((st = eg_nn_need(x, "layernorm", "input")) || (st = eg_nn_need(mean, "layernorm", "mean")) ||
      (st = eg_nn_need(rstd, "layernorm", "rstd")) || (st = eg_nn_need(w, "layernorm", "weight")) ||
      (st = lastdim(x, rows, D, "layernorm")))
    return st;
  if (eg_numel(w) != *D)
    return eg_seterr(EG_ESHAPE, "layernorm: input width %lld does not match %lld", (long long)*D,
                     (long long)eg_numel(w));
  if (eg_numel(mean) != *rows || eg_numel(rstd) != *rows)
    return eg_seterr(EG_ESHAPE, "layernorm: statistics need %lld elements", (long long)*rows);
  return EG_OK;
}

int eg_layernorm_forward(eg_tensor *y, eg_tensor *mean, eg_tensor *rstd, const eg_tensor *x, const eg_tensor *w,
                         const eg_tensor *b, float eps) {
  int64_t rows = 0, D = 0;
  int st;
  if ((st = ln_check(x, mean, rstd, w, &rows, &D)) || (st = eg_nn_need(y, "layernorm", "output")) ||
      (st = eg_nn_same(y, x, "layernorm", "output", "input")))
    return st;
  if (b && ((st = eg_nn_need(b, "layernorm", "bias")) || (st = eg_nn_same(b, w, "layernorm", "bias", "weight"))))
    return st;
  const float *pw = eg_data(w), *pb = b ? eg_data(b) : NULL;
  for (int64_t r = 0; r < rows; r++) {
    const float *a = eg_data(x) + r * D;
    float *o = eg_data(y) + r * D;
    double m = 0, v = 0;
    for (int64_t j = 0; j < D; j++) m += a[j];
    m /= (double)(D ? D : 1);
    for (int64_t j = 0; j < D; j++) v += ((double)a[j] - m) * ((double)a[j] - m);
    v /= (double)(D ? D : 1);
    float fm = (float)m, rs = (float)(1.0 / sqrt(v + eps));
    for (int64_t j = 0; j < D; j++) o[j] = (a[j] - fm) * rs * pw[j] + (pb ? pb[j] : 0.0f);
    eg_data(mean)[r] = fm;
    eg_data(rstd)[r] = rs;
  }
  return EG_OK;
}

int eg_layernorm_backward(eg_tensor *gx, eg_tensor *gw, eg_tensor *gb, const eg_tensor *gy, const eg_tensor *x,
                          const eg_tensor *mean, const eg_tensor *rstd, const eg_tensor *w) {
  int64_t rows = 0, D = 0;
  int st;
  if ((st = ln_check(x, mean, rstd, w, &rows, &D)) || (st = eg_nn_need(gy, "layernorm", "output gradient")) ||
      (st = eg_nn_same(gy, x, "layernorm", "output gradient", "input")))
    return st;
  if (gx && ((st = eg_nn_need(gx, "layernorm", "input gradient")) ||
             (st = eg_nn_same(gx, x, "layernorm", "input gradient", "input"))))
    return st;
  if (gw && ((st = eg_nn_need(gw, "layernorm", "weight gradient")) ||
             (st = eg_nn_same(gw, w, "layernorm", "weight gradient", "weight"))))
    return st;
  if (gb && ((st = eg_nn_need(gb, "layernorm", "bias gradient")) ||
             (st = eg_nn_same(gb, w, "layernorm", "bias gradient", "weight"))))
    return st;
  const float *pw = eg_data(w);
  for (int64_t r = 0; r < rows; r++) {
    const float *a = eg_data(x) + r * D, *g = eg_data(gy) + r * D;
    float m = eg_data(mean)[r], rs = eg_data(rstd)[r];
    double s1 = 0, s2 = 0; /* mean of dnorm and of dnorm*norm */
    for (int64_t j = 0; j < D; j++) {
      float nrm = (a[j] - m) * rs, dn = g[j] * pw[j];
      s1 += dn;
      s2 += (double)dn * nrm;
      if (gw) eg_data(gw)[j] += g[j] * nrm;
      if (gb) eg_data(gb)[j] += g[j];
    }
    if (gx) {
      float f1 = (float)(s1 / (double)D), f2 = (float)(s2 / (double)D);
      float *o = eg_data(gx) + r * D;
      for (int64_t j = 0; j < D; j++) {
        float nrm = (a[j] - m) * rs;
        o[j] = rs * (g[j] * pw[j] - f1 - nrm * f2);
      }
    }
  }
  return EG_OK;
}

/* ------------------------------------------------------------- Embedding */

static int emb_check(const eg_tensor *out, const eg_tensor *ids, const eg_tensor *W, const char *what) {
  int st;
  if ((st = eg_nn_need(ids, "embedding", "ids")) || (st = eg_nn_need(W, "embedding", "weight")) ||
      (st = eg_nn_need(out, "embedding", what)))
    return st;
  if (W->ndim != 2) return eg_seterr(EG_ESHAPE, "embedding: weight must be 2-D [V x D]");
  int ok = out->ndim == ids->ndim + 1 && out->shape[out->ndim - 1] == W->shape[1];
  for (int d = 0; ok && d < ids->ndim; d++) ok = out->shape[d] == ids->shape[d];
  if (!ok) {
    char so[96], si[96];
    return eg_seterr(EG_ESHAPE, "embedding: %s %s does not fit ids %s and width %lld", what,
                     eg_shape_str(out, so, sizeof so), eg_shape_str(ids, si, sizeof si), (long long)W->shape[1]);
  }
  int64_t n = eg_numel(ids), V = W->shape[0];
  const float *p = eg_data(ids);
  for (int64_t i = 0; i < n; i++) {
    float v = p[i];
    if (!(v >= 0 && v < (float)V) || v != floorf(v))
      return eg_seterr(EG_ERANGE, "embedding: id %g at position %lld is not an integer in [0, %lld)", (double)v,
                       (long long)i, (long long)V);
  }
  return EG_OK;
}

int eg_embedding_forward(eg_tensor *y, const eg_tensor *ids, const eg_tensor *W) {
  int st = emb_check(y, ids, W, "output");
  if (st) return st;
  int64_t n = eg_numel(ids), D = W->shape[1];
  for (int64_t i = 0; i < n; i++)
    memcpy(eg_data(y) + i * D, eg_data(W) + (int64_t)eg_data(ids)[i] * D, sizeof(float) * (size_t)D);
  return EG_OK;
}

int eg_embedding_backward(eg_tensor *gW, const eg_tensor *gy, const eg_tensor *ids) {
  int st;
  if ((st = eg_nn_need(gW, "embedding", "weight gradient")) || (st = emb_check(gy, ids, gW, "output gradient")))
    return st;
  int64_t n = eg_numel(ids), D = gW->shape[1];
  for (int64_t i = 0; i < n; i++) {
    float *o = eg_data(gW) + (int64_t)eg_data(ids)[i] * D;
    const float *g = eg_data(gy) + i * D;
    for (int64_t j = 0; j < D; j++) o[j] += g[j];
  }
  return EG_OK;
}
