/*
** cl.c — importance accumulation (squared and absolute per-sample
** gradients, SI's path integral), the quadratic penalty and the replay memory.
** See cl.h. A layer's per-sample gradients from one batch are in
** cl_importance.c.
*/
#include "cl.h"
#include "base_impl.h"
#include "cl_impl.h"

#include <math.h>
#include <string.h>

/* Class ids above this are refused in balanced mode: it keeps per-class
** counters, indexed by class id. */
#define EG_MEMORY_MAX_CLASS ((int64_t)1 << 20)
#define EG_MAX_EXACT_INT ((int64_t)1 << 24)

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

/* ---- replay memory ---- */

struct eg_memory {
  int64_t cap, dim, kdim, size, seen;
  int balanced;
  eg_storage *xs, *ys, *ls, *ts; /* [cap,D], [cap], [cap,K] or NULL, [cap] */
  int64_t *perm;                 /* a permutation of 0..size-1, for sampling without replacement */
  int64_t nclass;                /* balanced mode: counters allocated for class ids < nclass */
  int64_t *held, *cseen;         /* per class: samples held, samples seen */
};

int eg_memory_new(eg_memory **out, int64_t capacity, int64_t dim, int64_t logits_dim, int balanced) {
  static const char op[] = "memory";
  *out = NULL;
  if (capacity < 1) return eg_seterr(EG_EINVAL, "%s: capacity %lld must be >= 1", op, (long long)capacity);
  if (dim < 1) return eg_seterr(EG_EINVAL, "%s: sample width %lld must be >= 1", op, (long long)dim);
  if (logits_dim < 0) return eg_seterr(EG_EINVAL, "%s: logits width %lld is negative", op, (long long)logits_dim);
  size_t nx, nl;
  int st;
  if ((st = eg_size_mul((size_t)capacity, (size_t)dim, &nx, op)) ||
      (st = eg_size_mul((size_t)capacity, (size_t)(logits_dim ? logits_dim : 1), &nl, op)))
    return st;
  eg_memory *m = eg_calloc(1, sizeof *m);
  if (!m) return eg_seterr(EG_ENOMEM, "%s: out of memory", op);
  m->cap = capacity;
  m->dim = dim;
  m->kdim = logits_dim;
  m->balanced = balanced != 0;
  m->xs = eg_storage_new((int64_t)nx);
  m->ys = m->xs ? eg_storage_new(capacity) : NULL;
  m->ts = m->ys ? eg_storage_new(capacity) : NULL;
  m->ls = m->ts && logits_dim ? eg_storage_new((int64_t)nl) : NULL;
  m->perm = eg_malloc(sizeof(int64_t) * (size_t)capacity);
  if (!m->xs || !m->ys || !m->ts || (logits_dim && !m->ls) || !m->perm) {
    eg_memory_free(m);
    return eg_seterr(EG_ENOMEM, "%s: out of memory for %lld samples of width %lld", op, (long long)capacity,
                     (long long)dim);
  }
  *out = m;
  return EG_OK;
}

void eg_memory_free(eg_memory *m) {
  if (!m) return;
  eg_storage_release(m->xs);
  eg_storage_release(m->ys);
  eg_storage_release(m->ls);
  eg_storage_release(m->ts);
  eg_free(m->perm);
  eg_free(m->held);
  eg_free(m->cseen);
  eg_free(m);
}

int64_t eg_memory_size(const eg_memory *m) { return m->size; }
int64_t eg_memory_capacity(const eg_memory *m) { return m->cap; }
int64_t eg_memory_seen(const eg_memory *m) { return m->seen; }
int64_t eg_memory_dim(const eg_memory *m) { return m->dim; }
int64_t eg_memory_logits_dim(const eg_memory *m) { return m->kdim; }
int eg_memory_balanced(const eg_memory *m) { return m->balanced; }

void eg_memory_clear(eg_memory *m) {
  m->size = m->seen = 0;
  if (m->held) memset(m->held, 0, sizeof(int64_t) * (size_t)m->nclass);
  if (m->cseen) memset(m->cseen, 0, sizeof(int64_t) * (size_t)m->nclass);
}

/* Grows the per-class counters to cover class ids < n (only when a new class appears). */
static int grow_classes(eg_memory *m, int64_t n) {
  if (n <= m->nclass) return EG_OK;
  int64_t nn = m->nclass ? m->nclass : 16;
  while (nn < n) nn *= 2;
  int64_t *h = eg_realloc(m->held, sizeof(int64_t) * (size_t)nn);
  if (!h) return eg_seterr(EG_ENOMEM, "memory: out of memory for class counters");
  m->held = h;
  int64_t *s = eg_realloc(m->cseen, sizeof(int64_t) * (size_t)nn);
  if (!s) return eg_seterr(EG_ENOMEM, "memory: out of memory for class counters");
  m->cseen = s;
  memset(h + m->nclass, 0, sizeof(int64_t) * (size_t)(nn - m->nclass));
  memset(s + m->nclass, 0, sizeof(int64_t) * (size_t)(nn - m->nclass));
  m->nclass = nn;
  return EG_OK;
}

/* memmove: eg_memory_load may be handed views of this memory's own storage. */
static void put(eg_memory *m, int64_t slot, const float *x, float y, const float *lg, float task) {
  memmove(m->xs->data + slot * m->dim, x, sizeof(float) * (size_t)m->dim);
  if (m->balanced) {
    if (slot < m->size) m->held[(int64_t)m->ys->data[slot]]--;
    m->held[(int64_t)y]++;
  }
  m->ys->data[slot] = y;
  m->ts->data[slot] = task;
  if (m->kdim) memmove(m->ls->data + slot * m->kdim, lg, sizeof(float) * (size_t)m->kdim);
}

static void append(eg_memory *m, const float *x, float y, const float *lg, float task) {
  put(m, m->size, x, y, lg, task);
  m->perm[m->size] = m->size;
  m->size++;
}

/* A uniformly random slot holding class c (rejection: c is a largest class,
** so it holds at least size/C slots and this takes about C draws). */
static int64_t random_slot_of(eg_memory *m, int64_t c, eg_rng *rng) {
  for (;;) {
    int64_t s = (int64_t)eg_rng_below(rng, (uint64_t)m->size);
    if ((int64_t)m->ys->data[s] == c) return s;
  }
}

static void offer_balanced(eg_memory *m, const float *x, float y, const float *lg, float task, eg_rng *rng) {
  int64_t c = (int64_t)y;
  m->cseen[c]++;
  if (m->size < m->cap) {
    append(m, x, y, lg, task);
    return;
  }
  int64_t mx = 0, nmax = 0;
  for (int64_t k = 0; k < m->nclass; k++) {
    if (m->held[k] > mx) mx = m->held[k], nmax = 1;
    else if (m->held[k] == mx && mx > 0) nmax++;
  }
  if (m->held[c] < mx) {
    /* Evict from one of the largest classes, chosen uniformly. */
    int64_t pick = (int64_t)eg_rng_below(rng, (uint64_t)nmax), victim = -1;
    for (int64_t k = 0; k < m->nclass; k++)
      if (m->held[k] == mx && pick-- == 0) {
        victim = k;
        break;
      }
    put(m, random_slot_of(m, victim, rng), x, y, lg, task);
  } else if (eg_rng_uniform(rng) * (double)m->cseen[c] < (double)m->held[c]) {
    put(m, random_slot_of(m, c, rng), x, y, lg, task);
  }
}

static int rows_of(const eg_tensor *t, int64_t width, const char *op, const char *what, int64_t *rows) {
  int st = eg_cl_check_vec(t, -1, op, what);
  if (st) return st;
  if (t->ndim < 1 || eg_numel(t) != t->shape[0] * width) {
    char s[96];
    return eg_seterr(EG_ESHAPE, "%s: %s %s does not have rows of width %lld", op, what, eg_shape_str(t, s, sizeof s),
                     (long long)width);
  }
  *rows = t->shape[0];
  return EG_OK;
}

int eg_memory_add_batch(eg_memory *m, const eg_tensor *x, const eg_tensor *y, const eg_tensor *logits,
                        int64_t task, eg_rng *rng) {
  static const char op[] = "memory_add";
  int64_t B, nb;
  int st = rows_of(x, m->dim, op, "samples", &B);
  if (st) return st;
  if ((st = eg_cl_check_vec(y, B, op, "labels"))) return st;
  if (m->kdim) {
    if (!logits) return eg_seterr(EG_EINVAL, "%s: this memory stores %lld logits per sample; give them", op,
                                  (long long)m->kdim);
    if ((st = rows_of(logits, m->kdim, op, "logits", &nb))) return st;
    if (nb != B)
      return eg_seterr(EG_ESHAPE, "%s: %lld rows of logits for %lld samples", op, (long long)nb, (long long)B);
  } else if (logits) {
    return eg_seterr(EG_EINVAL, "%s: this memory stores no logits (created with logits width 0)", op);
  }
  if (task < 0 || task >= EG_MAX_EXACT_INT)
    return eg_seterr(EG_ERANGE, "%s: task id %lld out of range [0, 2^24)", op, (long long)task);
  const float *yy = eg_data(y);
  int64_t top = m->balanced ? EG_MEMORY_MAX_CLASS : EG_MAX_EXACT_INT, maxc = -1;
  for (int64_t i = 0; i < B; i++) {
    float v = yy[i];
    if (!(v == floorf(v)) || v < 0 || v >= (float)top)
      return eg_seterr(EG_ERANGE, "%s: label %g (sample %lld) is not a class id in [0, %lld)", op, v, (long long)i,
                       (long long)top);
    if ((int64_t)v > maxc) maxc = (int64_t)v;
  }
  if (m->balanced && (st = grow_classes(m, maxc + 1))) return st;
  const float *xx = eg_data(x), *lg = logits ? eg_data(logits) : NULL;
  for (int64_t i = 0; i < B; i++) {
    const float *xi = xx + i * m->dim, *li = lg ? lg + i * m->kdim : NULL;
    m->seen++;
    if (m->balanced) {
      offer_balanced(m, xi, yy[i], li, (float)task, rng);
    } else if (m->size < m->cap) {
      append(m, xi, yy[i], li, (float)task);
    } else {
      /* Algorithm R: the n-th sample replaces a random slot with probability M/n. */
      int64_t j = (int64_t)eg_rng_below(rng, (uint64_t)m->seen);
      if (j < m->cap) put(m, j, xi, yy[i], li, (float)task);
    }
  }
  return EG_OK;
}

int eg_memory_sample(eg_memory *m, eg_tensor *x_out, eg_tensor *y_out, eg_tensor *logits_out, eg_tensor *task_out,
                     eg_rng *rng) {
  static const char op[] = "memory_sample";
  int64_t k, r;
  int st = rows_of(x_out, m->dim, op, "sample buffer", &k);
  if (st) return st;
  if ((st = eg_cl_check_vec(y_out, k, op, "label buffer"))) return st;
  if (logits_out) {
    if (!m->kdim) return eg_seterr(EG_EINVAL, "%s: this memory stores no logits", op);
    if ((st = rows_of(logits_out, m->kdim, op, "logits buffer", &r))) return st;
    if (r != k) return eg_seterr(EG_ESHAPE, "%s: logits buffer has %lld rows, expected %lld", op, (long long)r, (long long)k);
  }
  if (task_out && (st = eg_cl_check_vec(task_out, k, op, "task buffer"))) return st;
  if (m->size == 0) return eg_seterr(EG_ESTATE, "%s: the memory is empty", op);
  float *xo = eg_data(x_out), *yo = eg_data(y_out);
  float *lo = logits_out ? eg_data(logits_out) : NULL, *to = task_out ? eg_data(task_out) : NULL;
  int without = k <= m->size;
  for (int64_t i = 0; i < k; i++) {
    int64_t s;
    if (without) {
      /* Partial Fisher-Yates over a persistent permutation: any starting
      ** order gives a uniform draw, so it is never reset. */
      int64_t j = i + (int64_t)eg_rng_below(rng, (uint64_t)(m->size - i)), tmp = m->perm[i];
      m->perm[i] = m->perm[j];
      m->perm[j] = tmp;
      s = m->perm[i];
    } else {
      s = (int64_t)eg_rng_below(rng, (uint64_t)m->size);
    }
    memcpy(xo + i * m->dim, m->xs->data + s * m->dim, sizeof(float) * (size_t)m->dim);
    yo[i] = m->ys->data[s];
    if (lo) memcpy(lo + i * m->kdim, m->ls->data + s * m->kdim, sizeof(float) * (size_t)m->kdim);
    if (to) to[i] = m->ts->data[s];
  }
  return EG_OK;
}

int eg_memory_views(const eg_memory *m, eg_tensor *x, eg_tensor *y, eg_tensor *logits, eg_tensor *task) {
  int64_t sx[2] = {m->size, m->dim}, sl[2] = {m->size, m->kdim}, s1[1] = {m->size};
  int st;
  if (x && (st = eg_tensor_from_storage(x, m->xs, 0, 2, sx, NULL))) return st;
  if (y && (st = eg_tensor_from_storage(y, m->ys, 0, 1, s1, NULL))) return st;
  if (logits && m->kdim && (st = eg_tensor_from_storage(logits, m->ls, 0, 2, sl, NULL))) return st;
  if (task && (st = eg_tensor_from_storage(task, m->ts, 0, 1, s1, NULL))) return st;
  return EG_OK;
}

int eg_memory_load(eg_memory *m, const eg_tensor *x, const eg_tensor *y, const eg_tensor *logits,
                   const eg_tensor *task, int64_t seen) {
  static const char op[] = "memory_load";
  int64_t n, r;
  int st = rows_of(x, m->dim, op, "samples", &n);
  if (st) return st;
  if (n > m->cap)
    return eg_seterr(EG_ESHAPE, "%s: %lld samples for a capacity of %lld", op, (long long)n, (long long)m->cap);
  if ((st = eg_cl_check_vec(y, n, op, "labels"))) return st;
  if (task && (st = eg_cl_check_vec(task, n, op, "task ids"))) return st;
  if (m->kdim) {
    if (!logits) return eg_seterr(EG_EINVAL, "%s: this memory stores %lld logits per sample; give them", op,
                                  (long long)m->kdim);
    if ((st = rows_of(logits, m->kdim, op, "logits", &r))) return st;
    if (r != n) return eg_seterr(EG_ESHAPE, "%s: %lld rows of logits for %lld samples", op, (long long)r, (long long)n);
  } else if (logits) {
    return eg_seterr(EG_EINVAL, "%s: this memory stores no logits", op);
  }
  if (seen < n) return eg_seterr(EG_EINVAL, "%s: seen %lld is below the %lld samples", op, (long long)seen, (long long)n);
  const float *yy = eg_data(y), *tt = task ? eg_data(task) : NULL;
  int64_t top = m->balanced ? EG_MEMORY_MAX_CLASS : EG_MAX_EXACT_INT, maxc = -1;
  for (int64_t i = 0; i < n; i++) {
    float v = yy[i], t = tt ? tt[i] : 0.0f;
    if (!(v == floorf(v)) || v < 0 || v >= (float)top)
      return eg_seterr(EG_ERANGE, "%s: label %g (sample %lld) is not a class id in [0, %lld)", op, v, (long long)i,
                       (long long)top);
    if (!(t == floorf(t)) || t < 0 || t >= (float)EG_MAX_EXACT_INT)
      return eg_seterr(EG_ERANGE, "%s: task id %g (sample %lld) is not an integer >= 0", op, t, (long long)i);
    if ((int64_t)v > maxc) maxc = (int64_t)v;
  }
  if (m->balanced && (st = grow_classes(m, maxc + 1))) return st;
  eg_memory_clear(m);
  const float *xx = eg_data(x), *lg = logits ? eg_data(logits) : NULL;
  for (int64_t i = 0; i < n; i++)
    append(m, xx + i * m->dim, yy[i], lg ? lg + i * m->kdim : NULL, tt ? tt[i] : 0.0f);
  m->seen = seen;
  if (m->balanced && n > 0)
    for (int64_t c = 0; c < m->nclass; c++)
      m->cseen[c] = m->held[c] ? (int64_t)((double)m->held[c] * (double)seen / (double)n) : 0;
  return EG_OK;
}
