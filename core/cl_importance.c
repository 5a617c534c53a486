/*
** cl_importance.c — per-sample importance of one layer's parameters from one
** batch: sum_n h(g_n) with g_n sample n's own gradient and h a square (EWC's
** Fisher) or an absolute value (MAS), for Linear, Conv2d, LayerNorm and
** Embedding. Each takes what the layer's forward saw (its input, and
** LayerNorm's saved statistics) and delta, the gradient of each sample's own
** loss with respect to the layer's output. See cl.h.
*/
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "base_impl.h"
#include "cl.h"
#include "cl_impl.h"
#include "conv_impl.h"
#include "nn.h"

static inline float h_of(float v, int absolute) { return absolute ? fabsf(v) : v * v; }

/* f[i] += scale * h(g[i]) for i < n. */
static void add_h(float *f, const float *g, int64_t n, float scale, int absolute) {
  if (absolute)
    for (int64_t i = 0; i < n; i++) f[i] += scale * fabsf(g[i]);
  else
    for (int64_t i = 0; i < n; i++) f[i] += scale * g[i] * g[i];
}

static int misfit(const char *op, const char *wa, const eg_tensor *a, const char *wb, const eg_tensor *b) {
  char sa[96], sb[96];
  return eg_seterr(EG_ESHAPE, "%s: %s %s and %s %s do not fit", op, wa, eg_shape_str(a, sa, sizeof sa), wb,
                   eg_shape_str(b, sb, sizeof sb));
}

/* ---- Linear ---- */

/* One position per sample: sum_n h(delta_n x_n^T) = h(delta)^T h(x) since
** h(ab) = h(a) h(b) for both h: one product for the whole batch. */
static int linear_one_product(float *fw, float *fb, const float *dd, const float *xx, int64_t B, int64_t No,
                              int64_t Ni, float scale, int absolute, const char *op) {
  float *d2 = eg_malloc(sizeof(float) * (size_t)(B * No)), *x2 = eg_malloc(sizeof(float) * (size_t)(B * Ni + 1));
  if (!d2 || !x2) {
    eg_free(d2);
    eg_free(x2);
    return eg_seterr(EG_ENOMEM, "%s: out of memory for a batch of %lld", op, (long long)B);
  }
  for (int64_t i = 0; i < B * No; i++) d2[i] = h_of(dd[i], absolute);
  for (int64_t i = 0; i < B * Ni; i++) x2[i] = h_of(xx[i], absolute);
  if (Ni > 0)
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)No, (int)Ni, (int)B, scale, d2, (int)No, x2, (int)Ni,
                1.0f, fw, (int)Ni);
  if (fb)
    for (int64_t n = 0; n < B; n++)
      for (int64_t o = 0; o < No; o++) fb[o] += scale * d2[n * No + o];
  eg_free(d2);
  eg_free(x2);
  return EG_OK;
}

/* R positions per sample: the gradient of sample n is sum_r delta_nr x_nr^T,
** one product per sample ([out x R] [R x in]), then h of it. */
static int linear_per_sample(float *fw, float *fb, const float *dd, const float *xx, int64_t B, int64_t R, int64_t No,
                             int64_t Ni, float scale, int absolute, const char *op) {
  size_t n;
  int st = eg_size_mul((size_t)No, (size_t)Ni, &n, op);
  if (st) return st;
  float *G = eg_malloc(sizeof(float) * (n + (size_t)No));
  if (!G) return eg_seterr(EG_ENOMEM, "%s: out of memory for a %lldx%lld gradient", op, (long long)No, (long long)Ni);
  float *gb = G + n;
  for (int64_t s = 0; s < B; s++) {
    const float *ds = dd + s * R * No, *xs = xx + s * R * Ni;
    if (Ni > 0) {
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)No, (int)Ni, (int)R, 1.0f, ds, (int)No, xs, (int)Ni,
                  0.0f, G, (int)Ni);
      add_h(fw, G, (int64_t)n, scale, absolute);
    }
    if (fb) {
      memset(gb, 0, sizeof(float) * (size_t)No);
      for (int64_t r = 0; r < R; r++)
        for (int64_t o = 0; o < No; o++) gb[o] += ds[r * No + o];
      add_h(fb, gb, No, scale, absolute);
    }
  }
  eg_free(G);
  return EG_OK;
}

static int linear_h_grad_accumulate(eg_tensor *FW, eg_tensor *Fb, const eg_tensor *delta, const eg_tensor *x,
                                    float scale, int absolute, const char *op) {
  int st;
  if ((st = eg_cl_check_vec(delta, -1, op, "delta")) || (st = eg_cl_check_vec(x, -1, op, "input")) ||
      (st = eg_cl_check_vec(FW, -1, op, "weight importance")))
    return st;
  if (delta->ndim < 2 || x->ndim != delta->ndim || FW->ndim != 2)
    return eg_seterr(EG_ESHAPE,
                     "%s: delta [B x ... x out], input [B x ... x in] (the same leading sizes) and weight "
                     "importance [out x in] must be at least 2-D",
                     op);
  int nd = delta->ndim;
  int64_t B = delta->shape[0], No = delta->shape[nd - 1], Ni = x->shape[nd - 1], R = 1;
  int ok = FW->shape[0] == No && FW->shape[1] == Ni;
  for (int d = 0; d < nd - 1; d++) {
    ok = ok && x->shape[d] == delta->shape[d];
    if (d > 0) R *= delta->shape[d];
  }
  if (!ok) {
    char a[64], b[64], c[64];
    return eg_seterr(EG_ESHAPE, "%s: delta %s, input %s and weight importance %s do not fit", op,
                     eg_shape_str(delta, a, sizeof a), eg_shape_str(x, b, sizeof b), eg_shape_str(FW, c, sizeof c));
  }
  if (Fb && (st = eg_cl_check_vec(Fb, No, op, "bias importance"))) return st;
  if (B == 0 || No == 0 || R == 0) return EG_OK;
  float *fb = Fb ? eg_data(Fb) : NULL;
  if (R == 1)
    return linear_one_product(eg_data(FW), fb, eg_data(delta), eg_data(x), B, No, Ni, scale, absolute, op);
  return linear_per_sample(eg_data(FW), fb, eg_data(delta), eg_data(x), B, R, No, Ni, scale, absolute, op);
}

int eg_linear_sq_grad_accumulate(eg_tensor *FW, eg_tensor *Fb, const eg_tensor *delta, const eg_tensor *x,
                                 float scale) {
  return linear_h_grad_accumulate(FW, Fb, delta, x, scale, 0, "linear_sq_grad_accumulate");
}

int eg_linear_abs_grad_accumulate(eg_tensor *FW, eg_tensor *Fb, const eg_tensor *delta, const eg_tensor *x,
                                  float scale) {
  return linear_h_grad_accumulate(FW, Fb, delta, x, scale, 1, "linear_abs_grad_accumulate");
}

/* ---- Conv2d ---- */

int eg_conv2d_h_grad_accumulate(eg_tensor *FW, eg_tensor *Fb, const eg_tensor *delta, const eg_tensor *x, int stride,
                                int pad, float scale, int absolute, eg_tensor *ws) {
  static const char op[] = "conv2d_h_grad_accumulate";
  int st;
  if ((st = eg_cl_check_vec(delta, -1, op, "delta")) || (st = eg_cl_check_vec(x, -1, op, "input")) ||
      (st = eg_cl_check_vec(FW, -1, op, "weight importance")))
    return st;
  if (FW->ndim != 4) return eg_seterr(EG_ESHAPE, "%s: weight importance must be 4-D [O x C x kh x kw]", op);
  if (x->ndim != 4) return eg_seterr(EG_ESHAPE, "%s: input must be 4-D [N x C x H x W], got %d-D", op, x->ndim);
  if (stride < 1 || pad < 0) return eg_seterr(EG_EINVAL, "%s: stride %d / padding %d out of range", op, stride, pad);
  eg_conv_dims d = {x->shape[0], x->shape[1], x->shape[2], x->shape[3], FW->shape[0], FW->shape[2], FW->shape[3], 0, 0};
  if (FW->shape[1] != d.C) return misfit(op, "input", x, "weight importance", FW);
  if (d.H + 2 * pad < d.kh || d.W + 2 * pad < d.kw)
    return eg_seterr(EG_ESHAPE, "%s: input %lldx%lld (padding %d) smaller than kernel %lldx%lld", op, (long long)d.H,
                     (long long)d.W, pad, (long long)d.kh, (long long)d.kw);
  d.Ho = eg_conv_out_size(d.H, d.kh, stride, pad);
  d.Wo = eg_conv_out_size(d.W, d.kw, stride, pad);
  if (delta->ndim != 4 || delta->shape[0] != d.N || delta->shape[1] != d.O || delta->shape[2] != d.Ho ||
      delta->shape[3] != d.Wo) {
    char s[96];
    return eg_seterr(EG_ESHAPE, "%s: delta %s, expected [%lldx%lldx%lldx%lld] for this input and kernel", op,
                     eg_shape_str(delta, s, sizeof s), (long long)d.N, (long long)d.O, (long long)d.Ho,
                     (long long)d.Wo);
  }
  if (Fb && (st = eg_cl_check_vec(Fb, d.O, op, "bias importance"))) return st;
  int64_t K = d.C * d.kh * d.kw, P = d.Ho * d.Wo;
  size_t kp, ok_, need;
  if ((st = eg_size_mul((size_t)K, (size_t)P, &kp, op)) || (st = eg_size_mul((size_t)d.O, (size_t)K, &ok_, op)))
    return st;
  need = kp + ok_;
  if (d.N == 0) return EG_OK;
  float *buf;
  if (ws) {
    if ((st = eg_cl_check_vec(ws, -1, op, "workspace"))) return st;
    if ((size_t)eg_numel(ws) < need)
      return eg_seterr(EG_ESHAPE, "%s: workspace has %lld floats, needs %lld", op, (long long)eg_numel(ws),
                       (long long)need);
    buf = eg_data(ws);
  } else if (!(buf = eg_malloc(sizeof(float) * need))) {
    return eg_seterr(EG_ENOMEM, "%s: out of memory for a workspace of %lld floats", op, (long long)need);
  }
  float *cols = buf, *G = buf + kp, *fw = eg_data(FW), *fb = Fb ? eg_data(Fb) : NULL;
  for (int64_t n = 0; n < d.N; n++) {
    const float *dn = eg_data(delta) + n * d.O * P;
    eg_im2col(cols, eg_data(x) + n * d.C * d.H * d.W, &d, stride, pad);
    /* sample n's weight gradient: delta_n [O x P] cols_n^T [P x K] */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)d.O, (int)K, (int)P, 1.0f, dn, (int)P, cols, (int)P,
                0.0f, G, (int)K);
    add_h(fw, G, d.O * K, scale, absolute);
    if (fb)
      for (int64_t o = 0; o < d.O; o++) {
        double s = 0;
        for (int64_t p = 0; p < P; p++) s += dn[o * P + p];
        fb[o] += scale * h_of((float)s, absolute);
      }
  }
  if (!ws) eg_free(buf);
  return EG_OK;
}

/* ---- LayerNorm ---- */

int eg_layernorm_h_grad_accumulate(eg_tensor *Fw, eg_tensor *Fb, const eg_tensor *delta, const eg_tensor *x,
                                   const eg_tensor *mean, const eg_tensor *rstd, float scale, int absolute) {
  static const char op[] = "layernorm_h_grad_accumulate";
  int st;
  if ((st = eg_cl_check_vec(delta, -1, op, "delta")) || (st = eg_cl_check_vec(x, -1, op, "input")) ||
      (st = eg_cl_check_vec(Fw, -1, op, "weight importance")) || (st = eg_cl_check_vec(mean, -1, op, "mean")) ||
      (st = eg_cl_check_vec(rstd, -1, op, "rstd")))
    return st;
  if (x->ndim < 2) return eg_seterr(EG_ESHAPE, "%s: input must be [N x ... x D], got %d-D", op, x->ndim);
  if (!eg_same_shape(delta, x)) return misfit(op, "delta", delta, "input", x);
  int64_t D = x->shape[x->ndim - 1], N = x->shape[0];
  if (eg_numel(Fw) != D) return misfit(op, "input", x, "weight importance", Fw);
  if (Fb && (st = eg_cl_check_vec(Fb, D, op, "bias importance"))) return st;
  int64_t rows = D ? eg_numel(x) / D : 0;
  if (eg_numel(mean) != rows || eg_numel(rstd) != rows)
    return eg_seterr(EG_ESHAPE, "%s: mean and rstd need %lld elements (one per row of the input), have %lld and %lld",
                     op, (long long)rows, (long long)eg_numel(mean), (long long)eg_numel(rstd));
  if (N == 0 || D == 0) return EG_OK;
  int64_t R = rows / N;
  double *gw = eg_malloc(sizeof(double) * (size_t)(2 * D));
  if (!gw) return eg_seterr(EG_ENOMEM, "%s: out of memory for width %lld", op, (long long)D);
  double *gb = gw + D;
  const float *dd = eg_data(delta), *xx = eg_data(x), *mu = eg_data(mean), *rs = eg_data(rstd);
  float *fw = eg_data(Fw), *fb = Fb ? eg_data(Fb) : NULL;
  for (int64_t n = 0; n < N; n++) {
    memset(gw, 0, sizeof(double) * (size_t)(2 * D));
    for (int64_t r = n * R; r < (n + 1) * R; r++) {
      const float *dr = dd + r * D, *xr = xx + r * D;
      for (int64_t j = 0; j < D; j++) {
        gw[j] += (double)dr[j] * ((xr[j] - mu[r]) * rs[r]); /* x-hat as forward computed it */
        gb[j] += dr[j];
      }
    }
    for (int64_t j = 0; j < D; j++) fw[j] += scale * h_of((float)gw[j], absolute);
    if (fb)
      for (int64_t j = 0; j < D; j++) fb[j] += scale * h_of((float)gb[j], absolute);
  }
  eg_free(gw);
  return EG_OK;
}

/* ---- Embedding ---- */

int eg_embedding_h_grad_accumulate(eg_tensor *FW, const eg_tensor *delta, const eg_tensor *ids, float scale,
                                   int absolute) {
  static const char op[] = "embedding_h_grad_accumulate";
  int st;
  if ((st = eg_cl_check_vec(delta, -1, op, "delta")) || (st = eg_cl_check_vec(ids, -1, op, "ids")) ||
      (st = eg_cl_check_vec(FW, -1, op, "weight importance")))
    return st;
  if (FW->ndim != 2) return eg_seterr(EG_ESHAPE, "%s: weight importance must be 2-D [V x D]", op);
  if (ids->ndim < 1) return eg_seterr(EG_ESHAPE, "%s: ids must be [N x ...], got a scalar", op);
  int64_t V = FW->shape[0], D = FW->shape[1], N = ids->shape[0], n_ids = eg_numel(ids);
  int ok = delta->ndim == ids->ndim + 1 && delta->shape[delta->ndim - 1] == D;
  for (int k = 0; ok && k < ids->ndim; k++) ok = delta->shape[k] == ids->shape[k];
  if (!ok) return misfit(op, "delta", delta, "ids", ids);
  const float *id = eg_data(ids);
  for (int64_t i = 0; i < n_ids; i++) {
    float v = id[i];
    if (!(v >= 0 && v < (float)V) || v != floorf(v))
      return eg_seterr(EG_ERANGE, "%s: id %g at position %lld is not an integer in [0, %lld)", op, (double)v,
                       (long long)i, (long long)V);
  }
  if (N == 0 || D == 0) return EG_OK;
  int64_t L = n_ids / N;
  /* slot[v]: where id v's summed row is kept within the current sample (-1: not met yet) */
  int64_t *slot = eg_malloc(sizeof(int64_t) * (size_t)(V + L));
  double *acc = eg_malloc(sizeof(double) * (size_t)(L * D + 1));
  if (!slot || !acc) {
    eg_free(slot);
    eg_free(acc);
    return eg_seterr(EG_ENOMEM, "%s: out of memory for %lld ids of %lld per sample", op, (long long)V, (long long)L);
  }
  int64_t *met = slot + V;
  for (int64_t v = 0; v < V; v++) slot[v] = -1;
  const float *dd = eg_data(delta);
  float *fw = eg_data(FW);
  for (int64_t n = 0; n < N; n++) {
    int64_t k = 0;
    for (int64_t i = n * L; i < (n + 1) * L; i++) {
      int64_t v = (int64_t)id[i];
      double *a;
      if (slot[v] < 0) {
        slot[v] = k, met[k] = v;
        a = acc + k++ * D;
        for (int64_t j = 0; j < D; j++) a[j] = dd[i * D + j];
      } else {
        a = acc + slot[v] * D;
        for (int64_t j = 0; j < D; j++) a[j] += dd[i * D + j];
      }
    }
    for (int64_t m = 0; m < k; m++) {
      float *row = fw + met[m] * D;
      const double *a = acc + m * D;
      for (int64_t j = 0; j < D; j++) row[j] += scale * h_of((float)a[j], absolute);
      slot[met[m]] = -1;
    }
  }
  eg_free(slot);
  eg_free(acc);
  return EG_OK;
}
