/*
** optim.c — SGD (momentum, Nesterov, weight decay), Adam, AdamW and
** gradient-norm clipping over flat vectors. See optim.h.
*/
/* The update loops are the hot path of every step: let GCC vectorise them
** (O3; the Makefile's -fno-math-errno frees sqrtf). No result bit changes. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3")
#endif
#include "optim.h"

#include <math.h>
#include <string.h>

static int check_vec(const eg_tensor *t, int64_t n, const char *op, const char *what) {
  if (!t || !t->storage) return eg_seterr(EG_ESTATE, "%s: %s is empty", op, what);
  if (!eg_is_contiguous(t)) return eg_seterr(EG_ESHAPE, "%s: %s must be contiguous", op, what);
  if (n >= 0 && eg_numel(t) != n)
    return eg_seterr(EG_ESHAPE, "%s: %s has %lld elements, the parameters have %lld", op, what,
                     (long long)eg_numel(t), (long long)n);
  return EG_OK;
}

static int check_finite_nonneg(double x, const char *op, const char *what) {
  if (!(x >= 0) || isinf(x)) return eg_seterr(EG_EINVAL, "%s: %s %g must be finite and >= 0", op, what, x);
  return EG_OK;
}

int eg_sgd_check(const eg_sgd_config *c) {
  static const char op[] = "sgd";
  int st;
  if ((st = check_finite_nonneg(c->lr, op, "learning rate")) ||
      (st = check_finite_nonneg(c->weight_decay, op, "weight decay")))
    return st;
  if (!(c->momentum >= 0 && c->momentum < 1))
    return eg_seterr(EG_EINVAL, "%s: momentum %g must be in [0, 1)", op, c->momentum);
  if (!(c->dampening >= 0 && c->dampening <= 1))
    return eg_seterr(EG_EINVAL, "%s: dampening %g must be in [0, 1]", op, c->dampening);
  if (c->nesterov && (c->momentum <= 0 || c->dampening != 0))
    return eg_seterr(EG_EINVAL, "%s: Nesterov momentum needs momentum > 0 and no dampening", op);
  return EG_OK;
}

int eg_adam_check(const eg_adam_config *c) {
  const char *op = c->decoupled ? "adamw" : "adam";
  int st;
  if ((st = check_finite_nonneg(c->lr, op, "learning rate")) ||
      (st = check_finite_nonneg(c->weight_decay, op, "weight decay")))
    return st;
  if (!(c->beta1 >= 0 && c->beta1 < 1)) return eg_seterr(EG_EINVAL, "%s: beta1 %g must be in [0, 1)", op, c->beta1);
  if (!(c->beta2 >= 0 && c->beta2 < 1)) return eg_seterr(EG_EINVAL, "%s: beta2 %g must be in [0, 1)", op, c->beta2);
  if (!(c->eps > 0) || isinf(c->eps)) return eg_seterr(EG_EINVAL, "%s: eps %g must be positive", op, c->eps);
  return EG_OK;
}

/* p -= lr * (g + wd * p) */
static void sgd_plain(float *restrict p, const float *restrict g, int64_t n, float lr, float wd) {
  for (int64_t i = 0; i < n; i++) p[i] -= lr * (g[i] + wd * p[i]);
}

/* b = mu * b + damp * (g + wd * p); p -= lr * b (after the first step) */
static void sgd_momentum(float *restrict p, const float *restrict g, float *restrict b, int64_t n, float lr, float wd,
                         float mu, float damp) {
  for (int64_t i = 0; i < n; i++) {
    float bi = mu * b[i] + damp * (g[i] + wd * p[i]);
    b[i] = bi;
    p[i] -= lr * bi;
  }
}

typedef struct {
  float b1, b2, eps, step_size, rbc2, l2, shrink;
} adam_k;

/* One Adam update of element i (inlined into both loops below). */
static inline void adam_at(float *restrict p, const float *restrict g, float *restrict m, float *restrict v, int64_t i,
                           const adam_k *k) {
  float gi = g[i] + k->l2 * p[i];
  float mi = k->b1 * m[i] + (1.0f - k->b1) * gi;
  float vi = k->b2 * v[i] + (1.0f - k->b2) * gi * gi;
  m[i] = mi;
  v[i] = vi;
  p[i] = p[i] * k->shrink - k->step_size * mi / (sqrtf(vi) * k->rbc2 + k->eps);
}

static void adam_plain(float *restrict p, const float *restrict g, float *restrict m, float *restrict v, int64_t n,
                       adam_k k) {
  for (int64_t i = 0; i < n; i++) adam_at(p, g, m, v, i, &k);
}

typedef struct {
  float lr, wd, mu, damp;
  int first, nesterov;
} sgd_k;

/* SGD over n elements (b: NULL without momentum; mk: NULL without a mask). */
static void sgd_range(float *restrict pp, const float *restrict gg, float *restrict bb, const float *restrict mm,
                      int64_t n, const sgd_k *k) {
  const float lr = k->lr, wd = k->wd, mu = k->mu, damp = k->damp;
  /* The common cases get loops without branches, which the compiler
  ** vectorises: the general loop below runs about 8x slower. */
  if (!mm && !bb) {
    sgd_plain(pp, gg, n, lr, wd);
    return;
  }
  if (!mm && !k->nesterov && !k->first) {
    sgd_momentum(pp, gg, bb, n, lr, wd, mu, damp);
    return;
  }
  for (int64_t i = 0; i < n; i++) {
    if (mm && mm[i] == 0) continue;
    float d = gg[i] + wd * pp[i];
    if (bb) {
      float b = k->first ? d : mu * bb[i] + damp * d;
      bb[i] = b;
      d = k->nesterov ? d + mu * b : b;
    }
    pp[i] -= lr * d;
  }
}

static int sgd_checks(eg_tensor *p, const eg_tensor *g, eg_tensor *buf, const eg_sgd_config *c, int64_t step,
                      const eg_tensor *mask) {
  static const char op[] = "sgd";
  int st = check_vec(p, -1, op, "parameters");
  if (st) return st;
  int64_t n = eg_numel(p);
  if ((st = check_vec(g, n, op, "gradients"))) return st;
  if (c->momentum > 0 && (st = check_vec(buf, n, op, "momentum buffer"))) return st;
  if (mask && (st = check_vec(mask, n, op, "mask"))) return st;
  if ((st = eg_sgd_check(c))) return st;
  if (step < 1) return eg_seterr(EG_EINVAL, "%s: step %lld must be >= 1", op, (long long)step);
  return EG_OK;
}

static sgd_k sgd_consts(const eg_sgd_config *c, int64_t step) {
  sgd_k k = {(float)c->lr, (float)c->weight_decay, (float)c->momentum, 1.0f - (float)c->dampening, step == 1,
             c->nesterov};
  return k;
}

int eg_sgd_step(eg_tensor *p, const eg_tensor *g, eg_tensor *buf, const eg_sgd_config *c, int64_t step,
                const eg_tensor *mask) {
  return eg_sgd_step_terms(p, g, buf, c, step, mask, NULL);
}

static void adam_range(float *restrict p, const float *restrict g, float *restrict m, float *restrict v,
                       const float *restrict mk, int64_t n, const adam_k *k) {
  if (!mk) {
    adam_plain(p, g, m, v, n, *k); /* no branch in the loop: vectorised */
    return;
  }
  for (int64_t i = 0; i < n; i++)
    if (mk[i] != 0) adam_at(p, g, m, v, i, k);
}

static int adam_checks(eg_tensor *p, const eg_tensor *g, eg_tensor *m, eg_tensor *v, const eg_adam_config *c,
                       int64_t step, const eg_tensor *mask) {
  const char *op = c->decoupled ? "adamw" : "adam";
  int st = check_vec(p, -1, op, "parameters");
  if (st) return st;
  int64_t n = eg_numel(p);
  if ((st = check_vec(g, n, op, "gradients")) || (st = check_vec(m, n, op, "first moment")) ||
      (st = check_vec(v, n, op, "second moment")))
    return st;
  if (mask && (st = check_vec(mask, n, op, "mask"))) return st;
  if ((st = eg_adam_check(c))) return st;
  if (step < 1) return eg_seterr(EG_EINVAL, "%s: step %lld must be >= 1", op, (long long)step);
  return EG_OK;
}

static adam_k adam_consts(const eg_adam_config *c, int64_t step) {
  /* Bias corrections in double: 1 - beta^t loses digits in float for small t. */
  const double bc1 = 1.0 - pow(c->beta1, (double)step), bc2 = 1.0 - pow(c->beta2, (double)step);
  const adam_k k = {
      .b1 = (float)c->beta1,
      .b2 = (float)c->beta2,
      .eps = (float)c->eps,
      .step_size = (float)(c->lr / bc1),
      .rbc2 = (float)(1.0 / sqrt(bc2)),
      .l2 = c->decoupled ? 0.0f : (float)c->weight_decay,
      .shrink = c->decoupled ? (float)(1.0 - c->lr * c->weight_decay) : 1.0f,
  };
  return k;
}

int eg_adam_step(eg_tensor *p, const eg_tensor *g, eg_tensor *m, eg_tensor *v, const eg_adam_config *c,
                 int64_t step, const eg_tensor *mask) {
  return eg_adam_step_terms(p, g, m, v, c, step, mask, NULL);
}

/* ---- terms fused into a step ---- */

/* The penalty value's summation order is eg_quad_penalty's (cl.c): QLANES
** float partial sums flushed into a double every QBLOCK elements, the tail
** of the last block into lane 0. */
#define QLANES 16
#define QBLOCK 4096
/* The general way (masks, clipping, SGD): block by block, the block's
** gradient with the terms goes to a scratch in L1 (and the parameters
** before the step, for SI), then the optimiser's own loop runs on the
** block, then SI's update. TBLOCK divides QBLOCK. */
#define TBLOCK 1024

typedef struct {
  const float *u, *w, *pg;
  float *om;
  float lam;
  int pen, scaled, want_value;
  double scale, sum;
  float acc[QLANES];
} terms_k;

static int terms_prepare(terms_k *x, eg_step_terms *t, const eg_tensor *p, const char *op) {
  memset(x, 0, sizeof *x);
  x->scale = 1;
  if (!t) return EG_OK;
  int64_t n = eg_numel(p);
  int st;
  if (t->penalty < EG_PENALTY_NONE || t->penalty > EG_PENALTY_FOLDED)
    return eg_seterr(EG_EINVAL, "%s: unknown penalty form %d", op, t->penalty);
  if (t->penalty) {
    int anchor = t->penalty == EG_PENALTY_ANCHOR;
    if ((st = check_vec(t->u, n, op, anchor ? "penalty importance" : "penalty's summed importance")) ||
        (st = check_vec(t->w, n, op, anchor ? "penalty anchor" : "penalty's weighted anchors")))
      return st;
    if (!isfinite(t->lambda)) return eg_seterr(EG_EINVAL, "%s: penalty lambda %g is not finite", op, t->lambda);
    if (!isfinite(t->C)) return eg_seterr(EG_EINVAL, "%s: the penalty's constant term %g is not finite", op, t->C);
    x->u = eg_data(t->u);
    x->w = eg_data(t->w);
    x->lam = (float)t->lambda;
    x->want_value = !t->have_value;
  }
  if (t->omega && (st = check_vec(t->omega, n, op, "path integral"))) return st;
  if (t->omega && t->pg && (st = check_vec(t->pg, n, op, "penalty gradient"))) return st;
  if (!(t->scale > 0 && t->scale <= 1))
    return eg_seterr(EG_EINVAL, "%s: clipping scale %g must be in (0, 1]", op, t->scale);
  x->pen = t->penalty;
  x->om = t->omega ? eg_data(t->omega) : NULL;
  x->pg = t->omega && t->pg ? eg_data(t->pg) : NULL;
  x->scale = t->scale;
  x->scaled = t->scale != 1;
  return EG_OK;
}

/* Stores the penalty's value from the sum (clamped as eg_quad_penalty_folded's). */
static void terms_value(const terms_k *x, eg_step_terms *t) {
  if (!x->want_value) return;
  double s = x->sum;
  if (x->pen == EG_PENALTY_FOLDED) {
    s += t->C;
    if (!(s > 0)) s = 0;
  }
  t->value = 0.5 * t->lambda * s;
  t->have_value = 1;
}

/* The gradient the update uses for elements [i, i + n) of the group
** (n <= TBLOCK, i a multiple of TBLOCK): g, or into gt g + the penalty's
** gradient (times the clipping scale); the value's terms into x->acc. */
static const float *terms_grad(float *restrict gt, const float *restrict g, const float *restrict p, int64_t i,
                               int64_t n, int64_t total, terms_k *x) {
  g += i;
  if (!x->pen && !x->scaled) return g;
  const float *restrict u = x->pen ? x->u + i : NULL, *restrict w = x->pen ? x->w + i : NULL;
  const float lam = x->lam;
  p += i;
  int64_t j = 0;
  float acc[QLANES]; /* a local array: the vectoriser keeps the lanes in registers */
  memcpy(acc, x->acc, sizeof acc);
  if (x->pen == EG_PENALTY_ANCHOR) {
    if (x->want_value)
      for (; j + QLANES <= n; j += QLANES)
        for (int l = 0; l < QLANES; l++) {
          float d = p[j + l] - w[j + l], fd = u[j + l] * d;
          acc[l] += fd * d;
          gt[j + l] = g[j + l] + lam * fd;
        }
    for (; j < n; j++) {
      float d = p[j] - w[j], fd = u[j] * d;
      if (x->want_value) acc[0] += fd * d;
      gt[j] = g[j] + lam * fd;
    }
  } else if (x->pen == EG_PENALTY_FOLDED) {
    if (x->want_value)
      for (; j + QLANES <= n; j += QLANES)
        for (int l = 0; l < QLANES; l++) {
          float at = u[j + l] * p[j + l];
          acc[l] += (at - 2 * w[j + l]) * p[j + l];
          gt[j + l] = g[j + l] + lam * (at - w[j + l]);
        }
    for (; j < n; j++) {
      float at = u[j] * p[j];
      if (x->want_value) acc[0] += (at - 2 * w[j]) * p[j];
      gt[j] = g[j] + lam * (at - w[j]);
    }
  } else {
    memcpy(gt, g, (size_t)n * sizeof *gt);
  }
  if (x->want_value && ((i + n) % QBLOCK == 0 || i + n == total)) {
    for (int l = 0; l < QLANES; l++) x->sum += acc[l];
    memset(acc, 0, sizeof acc);
  }
  memcpy(x->acc, acc, sizeof acc);
  if (x->scaled) {
    const double s = x->scale;
    for (j = 0; j < n; j++) gt[j] = (float)(gt[j] * s);
  }
  return gt;
}

/* SI's path integral over the block, after the update. */
static void terms_path(const terms_k *x, const float *restrict g, const float *restrict p, const float *restrict p0,
                       int64_t i, int64_t n) {
  float *restrict om = x->om + i;
  g += i;
  p += i;
  if (x->pg) {
    const float *restrict q = x->pg + i;
    for (int64_t j = 0; j < n; j++) om[j] -= (g[j] - q[j]) * (p[j] - p0[j]);
  } else {
    for (int64_t j = 0; j < n; j++) om[j] -= g[j] * (p[j] - p0[j]);
  }
}

/* The general way over a group of n elements: RUN(gb, off, len) updates
** elements [off, off + len) from the gradient gb (already offset). */
#define TERMS_LOOP(n, pp, gg, x, RUN)                                                \
  do {                                                                               \
    float gt_[TBLOCK], p0_[TBLOCK];                                                  \
    for (int64_t off_ = 0; off_ < (n); off_ += TBLOCK) {                             \
      int64_t len_ = (n) - off_ < TBLOCK ? (n) - off_ : TBLOCK;                      \
      const float *gb_ = terms_grad(gt_, (gg), (pp), off_, len_, (n), (x));          \
      if ((x)->om) memcpy(p0_, (pp) + off_, (size_t)len_ * sizeof(float));          \
      RUN(gb_, off_, len_);                                                          \
      if ((x)->om) terms_path((x), (gg), (pp), p0_, off_, len_);                     \
    }                                                                                \
  } while (0)

/* The optimisers with terms in one loop, for the common cases (no mask, no
** clipping; SGD past its first step, without Nesterov): every array of the
** group read from memory once. pen and path are constants where the
** functions are inlined (*_fused_any), so each case gets a loop of its own
** that the compiler vectorises. path: 0 none, 1 omega, 2 omega with pg.
** They return the penalty's sum in quad_sum's order. */
#if defined(__GNUC__)
#define EG_INLINE static inline __attribute__((always_inline))
#else
#define EG_INLINE static inline
#endif
/* The loop around UPDATE(e, gi, pi), which stores the new parameter in pn:
** the penalty's term of element e into acc[lane] and its gradient into gi,
** then SI's path (a macro: as a function GCC would not vectorise the lanes). */
#define FUSED_AT(e, lane, UPDATE)                      \
  do {                                                 \
    float pi = p[e], gi = g[e], pn;                    \
    if (pen == EG_PENALTY_ANCHOR) {                    \
      float d = pi - w[e], fd = u[e] * d;              \
      acc[lane] += fd * d;                             \
      gi = gi + lam * fd;                              \
    } else if (pen == EG_PENALTY_FOLDED) {             \
      float at = u[e] * pi;                            \
      acc[lane] += (at - 2 * w[e]) * pi;               \
      gi = gi + lam * (at - w[e]);                     \
    }                                                  \
    UPDATE(e, gi, pi);                                 \
    p[e] = pn;                                         \
    if (path == 1) om[e] -= g[e] * (pn - pi);          \
    if (path == 2) om[e] -= (g[e] - q[e]) * (pn - pi); \
  } while (0)
#define FUSED_LOOP(UPDATE)                                     \
  double s = 0;                                                \
  for (int64_t i0 = 0; i0 < n; i0 += QBLOCK) {                 \
    int64_t i1 = n - i0 < QBLOCK ? n : i0 + QBLOCK, i = i0;    \
    float acc[QLANES] = {0};                                   \
    for (; i + QLANES <= i1; i += QLANES)                      \
      for (int l = 0; l < QLANES; l++) {                       \
        int64_t e = i + l;                                     \
        FUSED_AT(e, l, UPDATE);                                \
      }                                                        \
    for (; i < i1; i++) FUSED_AT(i, 0, UPDATE);                \
    for (int l = 0; l < QLANES; l++) s += acc[l];              \
  }                                                            \
  return s
#define FUSED_ARGS                                                                                          \
  float *restrict p, const float *restrict g, float *restrict om, const float *restrict u,                  \
      const float *restrict w, const float *restrict q, float lam, int64_t n, int pen, int path

/* adam_at's arithmetic */
#define ADAM_UPDATE(e, gi, pi)                                              \
  gi = gi + k.l2 * pi;                                                      \
  float mi = k.b1 * m[e] + (1.0f - k.b1) * gi;                              \
  float vi = k.b2 * v[e] + (1.0f - k.b2) * gi * gi;                         \
  m[e] = mi;                                                                \
  v[e] = vi;                                                                \
  pn = pi * k.shrink - k.step_size * mi / (sqrtf(vi) * k.rbc2 + k.eps)
EG_INLINE double adam_fused(FUSED_ARGS, float *restrict m, float *restrict v, adam_k k) { FUSED_LOOP(ADAM_UPDATE); }

/* sgd_plain's and sgd_momentum's arithmetic (b NULL: no momentum) */
#define SGD_UPDATE(e, gi, pi)                    \
  if (mom) {                                     \
    float bi = k.mu * b[e] + k.damp * (gi + k.wd * pi); \
    b[e] = bi;                                   \
    pn = pi - k.lr * bi;                         \
  } else {                                       \
    pn = pi - k.lr * (gi + k.wd * pi);           \
  }
EG_INLINE double sgd_fused(FUSED_ARGS, float *restrict b, sgd_k k, int mom) { FUSED_LOOP(SGD_UPDATE); }

/* The case of x as constants: CALL(pen, path) for the 8 cases with terms. */
#define FUSED_CASES(x, CALL)                                     \
  switch ((x)->pen * 3 + ((x)->om ? ((x)->pg ? 2 : 1) : 0)) {    \
    case 1: return CALL(EG_PENALTY_NONE, 1);                     \
    case 2: return CALL(EG_PENALTY_NONE, 2);                     \
    case 3: return CALL(EG_PENALTY_ANCHOR, 0);                   \
    case 4: return CALL(EG_PENALTY_ANCHOR, 1);                   \
    case 5: return CALL(EG_PENALTY_ANCHOR, 2);                   \
    case 6: return CALL(EG_PENALTY_FOLDED, 0);                   \
    case 7: return CALL(EG_PENALTY_FOLDED, 1);                   \
    default: return CALL(EG_PENALTY_FOLDED, 2);                  \
  }

static double adam_fused_any(float *p, const float *g, float *m, float *v, int64_t n, const adam_k *k,
                             const terms_k *x) {
#define ADAM_CALL(pen, path) adam_fused(p, g, x->om, x->u, x->w, x->pg, x->lam, n, pen, path, m, v, *k)
  FUSED_CASES(x, ADAM_CALL)
#undef ADAM_CALL
}

static double sgd_fused_any(float *p, const float *g, float *b, int64_t n, const sgd_k *k, const terms_k *x) {
#define SGD_CALL(pen, path) \
  b ? sgd_fused(p, g, x->om, x->u, x->w, x->pg, x->lam, n, pen, path, b, *k, 1) \
    : sgd_fused(p, g, x->om, x->u, x->w, x->pg, x->lam, n, pen, path, NULL, *k, 0)
  FUSED_CASES(x, SGD_CALL)
#undef SGD_CALL
}

int eg_sgd_step_terms(eg_tensor *p, const eg_tensor *g, eg_tensor *buf, const eg_sgd_config *c, int64_t step,
                      const eg_tensor *mask, eg_step_terms *t) {
  int st = sgd_checks(p, g, buf, c, step, mask);
  if (st) return st;
  terms_k x;
  if ((st = terms_prepare(&x, t, p, "sgd"))) return st;
  sgd_k k = sgd_consts(c, step);
  float *pp = eg_data(p), *bb = c->momentum > 0 ? eg_data(buf) : NULL;
  const float *gg = eg_data(g), *mm = mask ? eg_data(mask) : NULL;
  int64_t n = eg_numel(p);
  if (!t) {
    sgd_range(pp, gg, bb, mm, n, &k);
    return EG_OK;
  }
  if (!mm && !x.scaled && !k.nesterov && !(bb && k.first) && (x.pen || x.om)) {
    x.sum = sgd_fused_any(pp, gg, bb, n, &k, &x);
  } else {
#define SGD_RUN(gb, off, len) sgd_range(pp + (off), (gb), bb ? bb + (off) : NULL, mm ? mm + (off) : NULL, (len), &k)
    TERMS_LOOP(n, pp, gg, &x, SGD_RUN);
#undef SGD_RUN
  }
  terms_value(&x, t);
  return EG_OK;
}

int eg_adam_step_terms(eg_tensor *p, const eg_tensor *g, eg_tensor *m, eg_tensor *v, const eg_adam_config *c,
                       int64_t step, const eg_tensor *mask, eg_step_terms *t) {
  int st = adam_checks(p, g, m, v, c, step, mask);
  if (st) return st;
  terms_k x;
  if ((st = terms_prepare(&x, t, p, c->decoupled ? "adamw" : "adam"))) return st;
  adam_k k = adam_consts(c, step);
  float *pp = eg_data(p), *mp = eg_data(m), *vp = eg_data(v);
  const float *gg = eg_data(g), *mk = mask ? eg_data(mask) : NULL;
  int64_t n = eg_numel(p);
  if (!t) {
    adam_range(pp, gg, mp, vp, mk, n, &k);
    return EG_OK;
  }
  if (!mk && !x.scaled && (x.pen || x.om)) {
    x.sum = adam_fused_any(pp, gg, mp, vp, n, &k, &x);
  } else {
#define ADAM_RUN(gb, off, len) \
  adam_range(pp + (off), (gb), mp + (off), vp + (off), mk ? mk + (off) : NULL, (len), &k)
    TERMS_LOOP(n, pp, gg, &x, ADAM_RUN);
#undef ADAM_RUN
  }
  terms_value(&x, t);
  return EG_OK;
}

int eg_grad_sumsq_terms(double *sumsq, const eg_tensor *p, const eg_tensor *g, eg_step_terms *t) {
  static const char op[] = "grad_norm";
  int st = check_vec(p, -1, op, "parameters");
  if (st) return st;
  int64_t n = eg_numel(p);
  if ((st = check_vec(g, n, op, "gradient"))) return st;
  terms_k x;
  if ((st = terms_prepare(&x, t, p, op))) return st;
  x.scaled = 0;
  x.scale = 1;
  const float *gg = eg_data(g), *pp = eg_data(p);
  float gt[TBLOCK];
  double s = *sumsq; /* in order, as eg_grad_sumsq: group after group gives the same sum */
  for (int64_t off = 0; off < n; off += TBLOCK) {
    int64_t len = n - off < TBLOCK ? n - off : TBLOCK;
    const float *gb = terms_grad(gt, gg, pp, off, len, n, &x);
    for (int64_t j = 0; j < len; j++) s += (double)gb[j] * gb[j];
  }
  *sumsq = s;
  terms_value(&x, t);
  return EG_OK;
}

int eg_grad_sumsq(double *sumsq, eg_tensor *const *grads, int n) {
  static const char op[] = "grad_norm";
  for (int k = 0; k < n; k++) {
    int st = check_vec(grads[k], -1, op, "gradient");
    if (st) return st;
  }
  double s = 0;
  for (int k = 0; k < n; k++) {
    const float *g = eg_data(grads[k]);
    int64_t m = eg_numel(grads[k]);
    for (int64_t i = 0; i < m; i++) s += (double)g[i] * g[i];
  }
  *sumsq += s;
  return EG_OK;
}

int eg_clip_grad_norm(eg_tensor *const *grads, int n, double max_norm, double *norm) {
  if (!(max_norm > 0)) return eg_seterr(EG_EINVAL, "clip_grad_norm: max norm %g must be positive", max_norm);
  double s = 0;
  int st = eg_grad_sumsq(&s, grads, n);
  if (st) return st;
  double total = sqrt(s);
  if (norm) *norm = total;
  if (!isfinite(total)) return eg_seterr(EG_EINVAL, "clip_grad_norm: the gradient norm is not finite");
  double scale = max_norm / (total + 1e-6);
  if (scale >= 1.0) return EG_OK;
  for (int k = 0; k < n; k++) {
    float *g = eg_data(grads[k]);
    int64_t m = eg_numel(grads[k]);
    for (int64_t i = 0; i < m; i++) g[i] = (float)(g[i] * scale);
  }
  return EG_OK;
}
