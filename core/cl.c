/*
** cl.c — importance accumulation (squared and absolute per-sample
** gradients, SI's path integral) and the quadratic penalty. See cl.h. A
** layer's per-sample gradients from one batch are in cl_importance.c; the
** replay memory and A-GEM's projection in cl_replay.c.
*/
#include "cl.h"
#include "base_impl.h"
#include "cl_impl.h"

#include <math.h>

int eg_cl_check_vec(const eg_tensor *t, int64_t n, const char *op, const char *what) {
  if (!t || !t->storage) return eg_seterr(EG_ESTATE, "%s: %s is empty", op, what);
  if (!eg_is_contiguous(t)) return eg_seterr(EG_ESHAPE, "%s: %s must be contiguous", op, what);
  if (n >= 0 && eg_numel(t) != n)
    return eg_seterr(EG_ESHAPE, "%s: %s has %lld elements, expected %lld", op, what, (long long)eg_numel(t),
                     (long long)n);
  return EG_OK;
}

/* ---- importance ---- */

/* F += scale * h(g), h a square or an absolute value. */
static int h_accumulate(eg_tensor *F, const eg_tensor *g, float scale, int absolute, const char *op) {
  int st = eg_cl_check_vec(F, -1, op, "importance");
  if (st || (st = eg_cl_check_vec(g, eg_numel(F), op, "gradient"))) return st;
  float *f = eg_data(F);
  const float *gg = eg_data(g);
  int64_t n = eg_numel(F);
  if (absolute)
    for (int64_t i = 0; i < n; i++) f[i] += scale * fabsf(gg[i]);
  else
    for (int64_t i = 0; i < n; i++) f[i] += scale * gg[i] * gg[i];
  return EG_OK;
}

int eg_sq_accumulate(eg_tensor *F, const eg_tensor *g, float scale) {
  return h_accumulate(F, g, scale, 0, "sq_accumulate");
}

int eg_abs_accumulate(eg_tensor *F, const eg_tensor *g, float scale) {
  return h_accumulate(F, g, scale, 1, "abs_accumulate");
}

int eg_decay_accumulate(eg_tensor *F, const eg_tensor *Fnew, float gamma) {
  static const char op[] = "decay_accumulate";
  int st = eg_cl_check_vec(F, -1, op, "importance");
  if (st || (st = eg_cl_check_vec(Fnew, eg_numel(F), op, "new importance"))) return st;
  if (!isfinite(gamma)) return eg_seterr(EG_EINVAL, "%s: gamma %g is not finite", op, (double)gamma);
  float *f = eg_data(F);
  const float *fn = eg_data(Fnew);
  int64_t n = eg_numel(F);
  for (int64_t i = 0; i < n; i++) f[i] = gamma * f[i] + fn[i];
  return EG_OK;
}

int eg_sample_labels(eg_tensor *labels, const eg_tensor *logits, const eg_tensor *mask, eg_rng *rng) {
  static const char op[] = "sample_labels";
  int st = eg_cl_check_vec(logits, -1, op, "logits");
  if (st) return st;
  if (logits->ndim != 2) return eg_seterr(EG_ESHAPE, "%s: logits must be 2-D [B x K]", op);
  int64_t B = logits->shape[0], K = logits->shape[1];
  if ((st = eg_cl_check_vec(labels, B, op, "labels"))) return st;
  if (mask && (st = eg_cl_check_vec(mask, K, op, "class mask"))) return st;
  if (K == 0) return eg_seterr(EG_ESHAPE, "%s: no classes", op);
  const float *m = mask ? eg_data(mask) : NULL;
  int any = 0;
  for (int64_t c = 0; c < K && !any; c++) any = !m || m[c] != 0;
  if (!any) return eg_seterr(EG_EINVAL, "%s: the class mask selects no class", op);
  const float *z = eg_data(logits);
  float *y = eg_data(labels);
  for (int64_t n = 0; n < B; n++) {
    const float *zn = z + n * K;
    float mx = -INFINITY;
    for (int64_t c = 0; c < K; c++)
      if ((!m || m[c] != 0) && zn[c] > mx) mx = zn[c];
    if (!isfinite(mx)) return eg_seterr(EG_EINVAL, "%s: row %lld of the logits is not finite", op, (long long)n);
    double sum = 0;
    for (int64_t c = 0; c < K; c++)
      if (!m || m[c] != 0) sum += exp((double)zn[c] - mx);
    double u = eg_rng_uniform(rng) * sum, acc = 0;
    int64_t pick = -1;
    for (int64_t c = 0; c < K; c++) {
      if (m && m[c] == 0) continue;
      pick = c; /* the last allowed class takes what rounding leaves */
      acc += exp((double)zn[c] - mx);
      if (u < acc) break;
    }
    y[n] = (float)pick;
  }
  return EG_OK;
}

/* ---- SI ---- */

int eg_si_accumulate(eg_tensor *omega, eg_tensor *prev, const eg_tensor *g, const eg_tensor *pg,
                     const eg_tensor *theta) {
  static const char op[] = "si_accumulate";
  int st = eg_cl_check_vec(theta, -1, op, "parameters");
  if (st) return st;
  int64_t n = eg_numel(theta);
  if ((st = eg_cl_check_vec(omega, n, op, "path integral")) ||
      (st = eg_cl_check_vec(prev, n, op, "previous parameters")) || (st = eg_cl_check_vec(g, n, op, "gradient")) ||
      (pg && (st = eg_cl_check_vec(pg, n, op, "penalty gradient"))))
    return st;
  float *restrict w = eg_data(omega), *restrict p = eg_data(prev);
  const float *restrict gg = eg_data(g), *restrict t = eg_data(theta);
  if (pg) {
    const float *restrict q = eg_data(pg);
    for (int64_t i = 0; i < n; i++) {
      w[i] -= (gg[i] - q[i]) * (t[i] - p[i]);
      p[i] = t[i];
    }
  } else {
    for (int64_t i = 0; i < n; i++) {
      w[i] -= gg[i] * (t[i] - p[i]);
      p[i] = t[i];
    }
  }
  return EG_OK;
}

int eg_si_consolidate(eg_tensor *Omega, eg_tensor *omega, eg_tensor *start, const eg_tensor *theta, float xi) {
  static const char op[] = "si_consolidate";
  int st = eg_cl_check_vec(theta, -1, op, "parameters");
  if (st) return st;
  int64_t n = eg_numel(theta);
  if ((st = eg_cl_check_vec(Omega, n, op, "importance")) || (st = eg_cl_check_vec(omega, n, op, "path integral")) ||
      (st = eg_cl_check_vec(start, n, op, "start parameters")))
    return st;
  if (!(xi > 0) || !isfinite(xi)) return eg_seterr(EG_EINVAL, "%s: damping xi %g must be > 0 and finite", op, (double)xi);
  float *W = eg_data(Omega), *w = eg_data(omega), *s0 = eg_data(start);
  const float *t = eg_data(theta);
  for (int64_t i = 0; i < n; i++) {
    float d = t[i] - s0[i];
    W[i] += w[i] / (d * d + xi);
    w[i] = 0;
    s0[i] = t[i];
  }
  return EG_OK;
}

/* ---- penalty ---- */

/* sum_i f_i (t_i - a_i)^2 in double, and g += lam f (t - a) when g is
** given. The loop is written for the vectoriser: QLANES float partial sums
** (no reassociation needed), flushed into the double sum every QBLOCK
** elements, so float rounding stays that of a few hundred terms. */
#define QLANES 16
#define QBLOCK 4096
static double quad_sum(float *restrict g, const float *restrict t, const float *restrict a,
                       const float *restrict f, int64_t n, float lam) {
  double s = 0;
  for (int64_t i0 = 0; i0 < n; i0 += QBLOCK) {
    int64_t i1 = n - i0 < QBLOCK ? n : i0 + QBLOCK, i = i0;
    float acc[QLANES] = {0};
    if (g) {
      for (; i + QLANES <= i1; i += QLANES)
        for (int j = 0; j < QLANES; j++) {
          float fd = f[i + j] * (t[i + j] - a[i + j]);
          acc[j] += fd * (t[i + j] - a[i + j]);
          g[i + j] += lam * fd;
        }
    } else {
      for (; i + QLANES <= i1; i += QLANES)
        for (int j = 0; j < QLANES; j++) {
          float d = t[i + j] - a[i + j];
          acc[j] += f[i + j] * d * d;
        }
    }
    for (; i < i1; i++) {
      float d = t[i] - a[i], fd = f[i] * d;
      acc[0] += fd * d;
      if (g) g[i] += lam * fd;
    }
    for (int j = 0; j < QLANES; j++) s += acc[j];
  }
  return s;
}

int eg_quad_penalty(double *value, eg_tensor *grad, const eg_tensor *theta, const eg_tensor *anchor,
                    const eg_tensor *F, double lambda) {
  static const char op[] = "quad_penalty";
  int st = eg_cl_check_vec(theta, -1, op, "parameters");
  if (st) return st;
  int64_t n = eg_numel(theta);
  if ((st = eg_cl_check_vec(anchor, n, op, "anchor")) || (st = eg_cl_check_vec(F, n, op, "importance"))) return st;
  if (grad && (st = eg_cl_check_vec(grad, n, op, "gradient"))) return st;
  if (!isfinite(lambda)) return eg_seterr(EG_EINVAL, "%s: lambda %g is not finite", op, lambda);
  const float *t = eg_data(theta), *a = eg_data(anchor), *f = eg_data(F);
  float *g = grad ? eg_data(grad) : NULL;
  *value = 0.5 * lambda * quad_sum(g, t, a, f, n, (float)lambda);
  return EG_OK;
}

/* sum_i (A_i t_i^2 - 2 B_i t_i) in double, g += lam (A t - B); vectorised as quad_sum. */
static double folded_sum(float *restrict g, const float *restrict t, const float *restrict A,
                         const float *restrict B, int64_t n, float lam) {
  double s = 0;
  for (int64_t i0 = 0; i0 < n; i0 += QBLOCK) {
    int64_t i1 = n - i0 < QBLOCK ? n : i0 + QBLOCK, i = i0;
    float acc[QLANES] = {0};
    if (g) {
      for (; i + QLANES <= i1; i += QLANES)
        for (int j = 0; j < QLANES; j++) {
          float at = A[i + j] * t[i + j];
          acc[j] += (at - 2 * B[i + j]) * t[i + j];
          g[i + j] += lam * (at - B[i + j]);
        }
    } else {
      for (; i + QLANES <= i1; i += QLANES)
        for (int j = 0; j < QLANES; j++) acc[j] += (A[i + j] * t[i + j] - 2 * B[i + j]) * t[i + j];
    }
    for (; i < i1; i++) {
      float at = A[i] * t[i];
      acc[0] += (at - 2 * B[i]) * t[i];
      if (g) g[i] += lam * (at - B[i]);
    }
    for (int j = 0; j < QLANES; j++) s += acc[j];
  }
  return s;
}

int eg_quad_penalty_folded(double *value, eg_tensor *grad, const eg_tensor *theta, const eg_tensor *A,
                           const eg_tensor *B, double C, double lambda) {
  static const char op[] = "quad_penalty_folded";
  int st = eg_cl_check_vec(theta, -1, op, "parameters");
  if (st) return st;
  int64_t n = eg_numel(theta);
  if ((st = eg_cl_check_vec(A, n, op, "summed importance")) || (st = eg_cl_check_vec(B, n, op, "weighted anchors"))) return st;
  if (grad && (st = eg_cl_check_vec(grad, n, op, "gradient"))) return st;
  if (!isfinite(lambda)) return eg_seterr(EG_EINVAL, "%s: lambda %g is not finite", op, lambda);
  if (!isfinite(C)) return eg_seterr(EG_EINVAL, "%s: the constant term %g is not finite", op, C);
  float *g = grad ? eg_data(grad) : NULL;
  double s = folded_sum(g, eg_data(theta), eg_data(A), eg_data(B), n, (float)lambda) + C;
  *value = 0.5 * lambda * (s > 0 ? s : 0); /* a sum of squares: rounding may leave it just below 0 */
  return EG_OK;
}

int eg_quad_fold(eg_tensor *A, eg_tensor *B, double *C, const eg_tensor *F, const eg_tensor *anchor) {
  static const char op[] = "quad_fold";
  int st = eg_cl_check_vec(F, -1, op, "importance");
  if (st) return st;
  int64_t n = eg_numel(F);
  if ((st = eg_cl_check_vec(anchor, n, op, "anchor")) || (st = eg_cl_check_vec(A, n, op, "summed importance")) ||
      (st = eg_cl_check_vec(B, n, op, "weighted anchors")))
    return st;
  float *a = eg_data(A), *b = eg_data(B);
  const float *f = eg_data(F), *x = eg_data(anchor);
  double c = 0;
  for (int64_t i = 0; i < n; i++) {
    a[i] += f[i];
    b[i] += f[i] * x[i];
    c += (double)f[i] * x[i] * x[i];
  }
  *C += c;
  return EG_OK;
}
