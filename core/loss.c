/*
** loss.c — cross-entropy, MSE, BCE with logits, KL distillation, accuracy.
** See loss.h for the conventions. Everything accumulates in double and
** nothing allocates, so a warm training step stays allocation-free.
*/
#include "loss.h"

#include <math.h>

/* ---- argument checks ---- */

static int check_present(const eg_tensor *t, const char *op, const char *what) {
  if (!t || !t->storage) return eg_seterr(EG_ESTATE, "%s: %s is empty", op, what);
  return EG_OK;
}

static int check_logits(const eg_tensor *x, const char *op, const char *what, int64_t *B, int64_t *C) {
  int st = check_present(x, op, what);
  if (st) return st;
  if (x->ndim != 2) {
    char s[96];
    return eg_seterr(EG_ESHAPE, "%s: %s must be 2-D [batch x classes], got %s", op, what,
                     eg_shape_str(x, s, sizeof s));
  }
  if (!eg_is_contiguous(x)) return eg_seterr(EG_ESHAPE, "%s: %s must be contiguous", op, what);
  *B = x->shape[0];
  *C = x->shape[1];
  if (*B == 0) return eg_seterr(EG_ESHAPE, "%s: empty batch", op);
  if (*C == 0) return eg_seterr(EG_ESHAPE, "%s: %s has no classes", op, what);
  return EG_OK;
}

/* A vector of n values readable with one stride: 1-D (any stride) or contiguous. */
static int vector_stride(const eg_tensor *v, int64_t n, const char *op, const char *what, int64_t *stride) {
  int st = check_present(v, op, what);
  if (st) return st;
  if (eg_numel(v) != n) {
    char s[96];
    return eg_seterr(EG_ESHAPE, "%s: %s %s must have %lld elements", op, what, eg_shape_str(v, s, sizeof s),
                     (long long)n);
  }
  if (v->ndim == 1)
    *stride = v->stride[0];
  else if (eg_is_contiguous(v))
    *stride = 1;
  else
    return eg_seterr(EG_ESHAPE, "%s: %s must be 1-D or contiguous", op, what);
  return EG_OK;
}

static int check_grad(const eg_tensor *grad, const eg_tensor *x, const char *op) {
  if (!grad) return EG_OK;
  int st = check_present(grad, op, "gradient buffer");
  if (st) return st;
  if (!eg_same_shape(grad, x)) {
    char a[96], b[96];
    return eg_seterr(EG_ESHAPE, "%s: gradient buffer %s does not match input %s", op,
                     eg_shape_str(grad, a, sizeof a), eg_shape_str(x, b, sizeof b));
  }
  if (!eg_is_contiguous(grad)) return eg_seterr(EG_ESHAPE, "%s: gradient buffer must be contiguous", op);
  return EG_OK;
}

/* Reads the active mask into a pointer + stride; *mask stays NULL without one. */
static int read_active(const eg_tensor *active, int64_t C, const char *op, const float **mask, int64_t *ms) {
  *mask = NULL;
  *ms = 0;
  if (!active) return EG_OK;
  int st = vector_stride(active, C, op, "active-class mask", ms);
  if (st) return st;
  *mask = eg_data(active);
  int64_t any = 0;
  for (int64_t j = 0; j < C; j++) any += (*mask)[j * *ms] != 0;
  if (!any) return eg_seterr(EG_EINVAL, "%s: no class is active", op);
  return EG_OK;
}

#define IS_ACTIVE(mask, ms, j) (!(mask) || (mask)[(j) * (ms)] != 0)

int eg_check_labels(const eg_tensor *labels, int64_t batch, int64_t nclasses, const eg_tensor *active, int base,
                    const char *op) {
  int64_t ls, ms;
  const float *mask;
  int st = vector_stride(labels, batch, op, "labels", &ls);
  if (st) return st;
  if ((st = read_active(active, nclasses, op, &mask, &ms))) return st;
  const float *y = eg_data(labels);
  for (int64_t i = 0; i < batch; i++) {
    float v = y[i * ls];
    long long s = (long long)(i + base);
    if (!(v == floorf(v))) return eg_seterr(EG_EINVAL, "%s: label %g is not an integer (sample %lld)", op, v, s);
    if (v < 0 || v >= (float)nclasses)
      return eg_seterr(EG_ERANGE, "%s: label %g out of range for %lld classes (sample %lld)", op, v,
                       (long long)nclasses, s);
    if (!IS_ACTIVE(mask, ms, (int64_t)v))
      return eg_seterr(EG_EINVAL, "%s: label %g is not an active class (sample %lld)", op, v, s);
  }
  return EG_OK;
}

/* log-sum-exp of row x[0..C-1] over the active classes; *mx gets their max. */
static double row_lse(const float *x, int64_t C, const float *mask, int64_t ms, double scale) {
  double mx = -INFINITY, s = 0;
  for (int64_t j = 0; j < C; j++)
    if (IS_ACTIVE(mask, ms, j) && x[j] * scale > mx) mx = x[j] * scale;
  for (int64_t j = 0; j < C; j++)
    if (IS_ACTIVE(mask, ms, j)) s += exp(x[j] * scale - mx);
  return mx + log(s);
}

/* ---- losses ---- */

/* The cross-entropy loop; row i's mask is masks + task_i * C (stride 1)
** when masks is given (tasks[i * ts] its task), else mask (stride ms). */
static void ce_rows(double *loss, float *g, const float *x, const float *y, int64_t ls, int64_t B, int64_t C,
                    const float *mask, int64_t ms, const float *masks, const float *tasks, int64_t ts) {
  double total = 0, invB = 1.0 / (double)B;
  for (int64_t i = 0; i < B; i++) {
    const float *row = x + i * C;
    const float *m = masks ? masks + (int64_t)tasks[i * ts] * C : mask;
    int64_t mstep = masks ? 1 : ms;
    int64_t yi = (int64_t)y[i * ls];
    double lse = row_lse(row, C, m, mstep, 1.0);
    total += lse - row[yi];
    if (!g) continue;
    float *gr = g + i * C;
    for (int64_t j = 0; j < C; j++)
      gr[j] = IS_ACTIVE(m, mstep, j) ? (float)((exp(row[j] - lse) - (j == yi)) * invB) : 0.0f;
  }
  *loss = total * invB;
}

int eg_cross_entropy(double *loss, eg_tensor *grad, const eg_tensor *logits, const eg_tensor *labels,
                     const eg_tensor *active) {
  static const char op[] = "cross_entropy";
  int64_t B, C, ls, ms;
  const float *mask;
  int st = check_logits(logits, op, "logits", &B, &C);
  if (st) return st;
  if ((st = eg_check_labels(labels, B, C, active, 0, op))) return st;
  if ((st = check_grad(grad, logits, op))) return st;
  vector_stride(labels, B, op, "labels", &ls);
  read_active(active, C, op, &mask, &ms);
  ce_rows(loss, grad ? eg_data(grad) : NULL, eg_data(logits), eg_data(labels), ls, B, C, mask, ms, NULL, NULL, 0);
  return EG_OK;
}

int eg_cross_entropy_tasks(double *loss, eg_tensor *grad, const eg_tensor *logits, const eg_tensor *labels,
                           const eg_tensor *masks, const eg_tensor *tasks) {
  static const char op[] = "cross_entropy";
  int64_t B, C, ls, ts;
  int st = check_logits(logits, op, "logits", &B, &C);
  if (st) return st;
  if ((st = check_present(masks, op, "task masks")) || (st = check_grad(grad, logits, op))) return st;
  if (masks->ndim != 2 || masks->shape[1] != C || !eg_is_contiguous(masks)) {
    char a[96];
    return eg_seterr(EG_ESHAPE, "%s: task masks %s must be a contiguous [tasks x %lld]", op,
                     eg_shape_str(masks, a, sizeof a), (long long)C);
  }
  int64_t T = masks->shape[0];
  if ((st = vector_stride(labels, B, op, "labels", &ls)) || (st = vector_stride(tasks, B, op, "sample tasks", &ts)))
    return st;
  const float *m = eg_data(masks), *y = eg_data(labels), *t = eg_data(tasks);
  for (int64_t i = 0; i < B; i++) {
    float ti = t[i * ts], v = y[i * ls];
    if (!(ti == floorf(ti)) || ti < 0 || ti >= (float)T)
      return eg_seterr(EG_ERANGE, "%s: sample %lld's task %g is not one of the %lld tasks", op, (long long)i, ti,
                       (long long)T);
    if (!(v == floorf(v))) return eg_seterr(EG_EINVAL, "%s: label %g is not an integer (sample %lld)", op, v, (long long)i);
    if (v < 0 || v >= (float)C)
      return eg_seterr(EG_ERANGE, "%s: label %g out of range for %lld classes (sample %lld)", op, v, (long long)C,
                       (long long)i);
    if (m[(int64_t)ti * C + (int64_t)v] == 0)
      return eg_seterr(EG_EINVAL, "%s: label %g is not an active class of its task %g (sample %lld)", op, v, ti,
                       (long long)i);
  }
  ce_rows(loss, grad ? eg_data(grad) : NULL, eg_data(logits), y, ls, B, C, NULL, 0, m, t, ts);
  return EG_OK;
}

static int check_pair(const eg_tensor *a, const eg_tensor *b, const char *op, const char *wa, const char *wb) {
  int st;
  if ((st = check_present(a, op, wa)) || (st = check_present(b, op, wb))) return st;
  if (!eg_same_shape(a, b)) {
    char sa[96], sb[96];
    return eg_seterr(EG_ESHAPE, "%s: %s %s does not match %s %s", op, wa, eg_shape_str(a, sa, sizeof sa), wb,
                     eg_shape_str(b, sb, sizeof sb));
  }
  if (!eg_is_contiguous(a) || !eg_is_contiguous(b))
    return eg_seterr(EG_ESHAPE, "%s: %s and %s must be contiguous", op, wa, wb);
  if (eg_numel(a) == 0) return eg_seterr(EG_ESHAPE, "%s: empty input", op);
  return EG_OK;
}

int eg_mse(double *loss, eg_tensor *grad, const eg_tensor *input, const eg_tensor *target) {
  static const char op[] = "mse";
  int st;
  if ((st = check_pair(input, target, op, "input", "target")) || (st = check_grad(grad, input, op))) return st;
  int64_t n = eg_numel(input);
  const float *x = eg_data(input), *t = eg_data(target);
  float *g = grad ? eg_data(grad) : NULL;
  double s = 0, c = 2.0 / (double)n;
  for (int64_t i = 0; i < n; i++) {
    double d = (double)x[i] - t[i];
    s += d * d;
    if (g) g[i] = (float)(c * d);
  }
  *loss = s / (double)n;
  return EG_OK;
}

int eg_bce_logits(double *loss, eg_tensor *grad, const eg_tensor *logits, const eg_tensor *target) {
  static const char op[] = "bce_with_logits";
  int st;
  if ((st = check_pair(logits, target, op, "logits", "target")) || (st = check_grad(grad, logits, op))) return st;
  int64_t n = eg_numel(logits);
  const float *x = eg_data(logits), *t = eg_data(target);
  for (int64_t i = 0; i < n; i++)
    if (!(t[i] >= 0 && t[i] <= 1))
      return eg_seterr(EG_EINVAL, "%s: target %g at element %lld is outside [0, 1]", op, t[i], (long long)i);
  float *g = grad ? eg_data(grad) : NULL;
  double s = 0, invn = 1.0 / (double)n;
  for (int64_t i = 0; i < n; i++) {
    double xi = x[i], e = exp(-fabs(xi)); /* one exp serves the loss and the sigmoid */
    /* max(x,0) - x t + log(1 + e^-|x|): no overflow for any x. */
    s += (xi > 0 ? xi : 0) - xi * t[i] + log1p(e);
    if (g) {
      double sig = xi >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
      g[i] = (float)((sig - t[i]) * invn);
    }
  }
  *loss = s * invn;
  return EG_OK;
}

int eg_kl_distill(double *loss, eg_tensor *grad, const eg_tensor *student, const eg_tensor *teacher, double T,
                  const eg_tensor *active) {
  static const char op[] = "kl_distill";
  int64_t B, C, ms;
  const float *mask;
  int st;
  if (!(T > 0) || isinf(T)) return eg_seterr(EG_EINVAL, "%s: temperature %g must be positive and finite", op, T);
  if ((st = check_logits(student, op, "student logits", &B, &C))) return st;
  if ((st = check_pair(student, teacher, op, "student logits", "teacher logits"))) return st;
  if ((st = check_grad(grad, student, op))) return st;
  if ((st = read_active(active, C, op, &mask, &ms))) return st;
  const float *s = eg_data(student), *t = eg_data(teacher);
  float *g = grad ? eg_data(grad) : NULL;
  double total = 0, invT = 1.0 / T, gscale = T / (double)B;
  for (int64_t i = 0; i < B; i++) {
    const float *sr = s + i * C, *tr = t + i * C;
    double ls = row_lse(sr, C, mask, ms, invT), lt = row_lse(tr, C, mask, ms, invT);
    for (int64_t j = 0; j < C; j++) {
      if (!IS_ACTIVE(mask, ms, j)) {
        if (g) g[i * C + j] = 0.0f;
        continue;
      }
      double logp = tr[j] * invT - lt, logq = sr[j] * invT - ls, p = exp(logp);
      total += p * (logp - logq);
      /* d/ds_j of T^2 KL = T (q_j - p_j); the mean over B divides by B. */
      if (g) g[i * C + j] = (float)(gscale * (exp(logq) - p));
    }
  }
  *loss = total * T * T / (double)B;
  return EG_OK;
}

int eg_argmax_accuracy(int64_t *correct, const eg_tensor *logits, const eg_tensor *labels,
                       const eg_tensor *active) {
  static const char op[] = "accuracy";
  int64_t B, C, ls, ms;
  const float *mask;
  int st = check_logits(logits, op, "logits", &B, &C);
  if (st) return st;
  if ((st = vector_stride(labels, B, op, "labels", &ls))) return st;
  if ((st = read_active(active, C, op, &mask, &ms))) return st;
  /* Labels outside the active set are allowed here: they just count as wrong. */
  if ((st = eg_check_labels(labels, B, C, NULL, 0, op))) return st;
  const float *x = eg_data(logits), *y = eg_data(labels);
  int64_t n = 0;
  for (int64_t i = 0; i < B; i++) {
    const float *row = x + i * C;
    int64_t best = -1;
    for (int64_t j = 0; j < C; j++)
      if (IS_ACTIVE(mask, ms, j) && (best < 0 || row[j] > row[best])) best = j;
    n += best == (int64_t)y[i * ls];
  }
  *correct = n;
  return EG_OK;
}
