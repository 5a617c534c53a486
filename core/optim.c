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

int eg_sgd_step(eg_tensor *p, const eg_tensor *g, eg_tensor *buf, const eg_sgd_config *c, int64_t step,
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
  float *pp = eg_data(p), *bb = c->momentum > 0 ? eg_data(buf) : NULL;
  const float *gg = eg_data(g), *mm = mask ? eg_data(mask) : NULL;
  const float lr = (float)c->lr, wd = (float)c->weight_decay, mu = (float)c->momentum;
  const float damp = 1.0f - (float)c->dampening;
  const int first = step == 1;
  /* The common cases get loops without branches, which the compiler
  ** vectorises: the general loop below runs about 8x slower. */
  if (!mm && !bb) {
    sgd_plain(pp, gg, n, lr, wd);
    return EG_OK;
  }
  if (!mm && !c->nesterov && !first) {
    sgd_momentum(pp, gg, bb, n, lr, wd, mu, damp);
    return EG_OK;
  }
  for (int64_t i = 0; i < n; i++) {
    if (mm && mm[i] == 0) continue;
    float d = gg[i] + wd * pp[i];
    if (bb) {
      float b = first ? d : mu * bb[i] + damp * d;
      bb[i] = b;
      d = c->nesterov ? d + mu * b : b;
    }
    pp[i] -= lr * d;
  }
  return EG_OK;
}

int eg_adam_step(eg_tensor *p, const eg_tensor *g, eg_tensor *m, eg_tensor *v, const eg_adam_config *c,
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
  float *pp = eg_data(p), *mp = eg_data(m), *vp = eg_data(v);
  const float *gg = eg_data(g), *mk = mask ? eg_data(mask) : NULL;
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
  if (!mk) {
    adam_plain(pp, gg, mp, vp, n, k); /* no branch in the loop: vectorised */
    return EG_OK;
  }
  for (int64_t i = 0; i < n; i++)
    if (mk[i] != 0) adam_at(pp, gg, mp, vp, i, &k);
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
