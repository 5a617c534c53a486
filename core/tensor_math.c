/*
** tensor_math.c — element-wise arithmetic with numpy broadcasting.
*/
#include "tensor_impl.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------- element-wise */

/* The operand an element-wise loop writing `out` may read: a itself, or a
** private copy in *copy when a shares out's storage through a different
** layout (the loop would read elements it has already overwritten). An
** operand laid out exactly as out is safe: each element is read before it is
** written. *copy stays empty unless it was needed; the caller releases it. */
/* Whether a loop writing out may read a as it goes: separate storage, or
** exactly out's elements in out's layout. */
static int safe_operand(const eg_tensor *out, const eg_tensor *a) {
  return !overlaps(out, a) ||
         (out->offset == a->offset && eg_same_shape(out, a) && !memcmp(out->stride, a->stride, sizeof out->stride));
}

static int unaliased(const eg_tensor *out, const eg_tensor *a, eg_tensor *copy, const eg_tensor **pa) {
  *pa = a;
  if (safe_operand(out, a)) return EG_OK;
  int st = eg_clone(copy, a);
  if (!st) *pa = copy;
  return st;
}

/* Sets w up to walk out (operand 0) and a (operand 1), a unaliased as above. */
static int walk_unaliased(walk_t *w, eg_tensor *out, const eg_tensor *a, eg_tensor *copy) {
  const eg_tensor *pa;
  int st = unaliased(out, a, copy, &pa);
  if (st) return st;
  walk_init(w, out);
  walk_add(w, out);
  walk_add(w, pa);
  return EG_OK;
}

const char *eg_binop_name(eg_binop op) {
  static const char *n[] = {"add", "sub", "mul", "div", "pow", "maximum", "minimum",
                            "eq",  "ne",  "lt",  "le",  "gt",  "ge"};
  return (unsigned)op < sizeof n / sizeof n[0] ? n[op] : "binary";
}

const char *eg_unop_name(eg_unop op) {
  static const char *n[] = {"neg",  "exp",  "log",   "sqrt",  "abs",  "tanh", "sigmoid",
                            "relu", "square", "sign", "floor", "ceil", "round", "recip"};
  return (unsigned)op < sizeof n / sizeof n[0] ? n[op] : "unary";
}

static inline float binop_apply(eg_binop op, float x, float y) {
  switch (op) {
    case EG_ADD: return x + y;
    case EG_SUB: return x - y;
    case EG_MUL: return x * y;
    case EG_DIV: return x / y;
    case EG_POW: return powf(x, y);
    case EG_MAXIMUM: return (x > y || isnan(x)) ? x : y;
    case EG_MINIMUM: return (x < y || isnan(x)) ? x : y;
    case EG_EQ: return x == y;
    case EG_NE: return x != y;
    case EG_LT: return x < y;
    case EG_LE: return x <= y;
    case EG_GT: return x > y;
    case EG_GE: return x >= y;
  }
  return 0;
}

int eg_broadcast_shape(const eg_tensor *a, const eg_tensor *b, int *ndim, int64_t *shape) {
  int n = a->ndim > b->ndim ? a->ndim : b->ndim;
  for (int d = 0; d < n; d++) {
    int da = d - (n - a->ndim), db = d - (n - b->ndim);
    int64_t sa = da >= 0 ? a->shape[da] : 1, sb = db >= 0 ? b->shape[db] : 1;
    if (sa != sb && sa != 1 && sb != 1) {
      char b1[96], b2[96];
      return eg_seterr(EG_ESHAPE, "shapes %s and %s do not broadcast (dimension %d: %lld vs %lld)",
                       eg_shape_str(a, b1, sizeof b1), eg_shape_str(b, b2, sizeof b2), d + 1, (long long)sa,
                       (long long)sb);
    }
    shape[d] = sa == 1 ? sb : sa;
  }
  *ndim = n;
  return EG_OK;
}

int eg_binary(eg_tensor *out, const eg_tensor *a, const eg_tensor *b, eg_binop op) {
  const char *name = eg_binop_name(op);
  int st = need_out(out, name);
  if (!st) st = need(a, name);
  if (!st) st = need(b, name);
  if (st) return st;
  int nd;
  int64_t sh[EG_MAXDIM];
  st = eg_broadcast_shape(a, b, &nd, sh);
  if (st) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", eg_errmsg());
    return eg_seterr(st, "%s: %s", name, msg);
  }
  eg_tensor want = EG_TENSOR_INIT;
  want.ndim = nd;
  memcpy(want.shape, sh, sizeof sh);
  if (!eg_same_shape(out, &want)) {
    char b1[96], b2[96];
    return eg_seterr(EG_ESHAPE, "%s: output %s does not match the broadcast shape %s", name,
                     eg_shape_str(out, b1, sizeof b1), eg_shape_str(&want, b2, sizeof b2));
  }
  int64_t n = eg_numel(out);
  if (eg_is_contiguous(out) && eg_is_contiguous(a) && eg_is_contiguous(b) && eg_numel(a) == n && eg_numel(b) == n &&
      safe_operand(out, a) && safe_operand(out, b)) {
    float *o = eg_data(out);
    const float *x = eg_data(a), *y = eg_data(b);
    switch (op) {
      case EG_ADD: for (int64_t i = 0; i < n; i++) o[i] = x[i] + y[i]; break;
      case EG_SUB: for (int64_t i = 0; i < n; i++) o[i] = x[i] - y[i]; break;
      case EG_MUL: for (int64_t i = 0; i < n; i++) o[i] = x[i] * y[i]; break;
      case EG_DIV: for (int64_t i = 0; i < n; i++) o[i] = x[i] / y[i]; break;
      default: for (int64_t i = 0; i < n; i++) o[i] = binop_apply(op, x[i], y[i]); break;
    }
    return EG_OK;
  }
  /* Writing into an operand's storage through a different layout would read
  ** elements already overwritten: compute from copies in that case. */
  eg_tensor ca = EG_TENSOR_INIT, cb = EG_TENSOR_INIT;
  const eg_tensor *pa, *pb;
  if ((st = unaliased(out, a, &ca, &pa)) || (st = unaliased(out, b, &cb, &pb))) {
    eg_tensor_release(&ca);
    return st;
  }
  walk_t w;
  walk_init(&w, out);
  walk_add(&w, out);
  walk_add(&w, pa);
  walk_add(&w, pb);
  WALK_BEGIN(w)
  for (int64_t i = 0; i < inner_; i++) p0[i * s0_] = binop_apply(op, p1[i * s1_], p2[i * s2_]);
  WALK_END(w)
  eg_tensor_release(&ca);
  eg_tensor_release(&cb);
  return EG_OK;
}

static int unary_shape_check(const eg_tensor *out, const eg_tensor *a, const char *name) {
  int st = need_out(out, name);
  if (!st) st = need(a, name);
  if (st) return st;
  if (!eg_same_shape(out, a)) {
    char b1[96], b2[96];
    return eg_seterr(EG_ESHAPE, "%s: output %s does not match input %s", name, eg_shape_str(out, b1, sizeof b1),
                     eg_shape_str(a, b2, sizeof b2));
  }
  return EG_OK;
}

int eg_binary_scalar(eg_tensor *out, const eg_tensor *a, float s, eg_binop op, int scalar_first) {
  int st = unary_shape_check(out, a, eg_binop_name(op));
  if (st) return st;
  if (eg_is_contiguous(out) && eg_is_contiguous(a) && safe_operand(out, a)) {
    int64_t n = eg_numel(a);
    float *o = eg_data(out);
    const float *x = eg_data(a);
    if (!scalar_first && op == EG_ADD) {
      for (int64_t i = 0; i < n; i++) o[i] = x[i] + s;
    } else if (!scalar_first && op == EG_MUL) {
      for (int64_t i = 0; i < n; i++) o[i] = x[i] * s;
    } else if (scalar_first) {
      for (int64_t i = 0; i < n; i++) o[i] = binop_apply(op, s, x[i]);
    } else {
      for (int64_t i = 0; i < n; i++) o[i] = binop_apply(op, x[i], s);
    }
    return EG_OK;
  }
  eg_tensor ca = EG_TENSOR_INIT;
  walk_t w;
  if ((st = walk_unaliased(&w, out, a, &ca))) return st;
  WALK_BEGIN(w)
  if (scalar_first)
    for (int64_t i = 0; i < inner_; i++) p0[i * s0_] = binop_apply(op, s, p1[i * s1_]);
  else
    for (int64_t i = 0; i < inner_; i++) p0[i * s0_] = binop_apply(op, p1[i * s1_], s);
  WALK_END(w)
  eg_tensor_release(&ca);
  return EG_OK;
}

static inline float unop_apply(eg_unop op, float x) {
  switch (op) {
    case EG_NEG: return -x;
    case EG_EXP: return expf(x);
    case EG_LOG: return logf(x);
    case EG_SQRT: return sqrtf(x);
    case EG_ABS: return fabsf(x);
    case EG_TANH: return tanhf(x);
    case EG_SIGMOID: return x >= 0 ? 1.0f / (1.0f + expf(-x)) : expf(x) / (1.0f + expf(x));
    case EG_RELU: return x > 0 ? x : 0.0f;
    case EG_SQUARE: return x * x;
    case EG_SIGN: return (float)((x > 0) - (x < 0));
    case EG_FLOOR: return floorf(x);
    case EG_CEIL: return ceilf(x);
    case EG_ROUND: return roundf(x);
    case EG_RECIP: return 1.0f / x;
  }
  return 0;
}

int eg_unary(eg_tensor *out, const eg_tensor *a, eg_unop op) {
  int st = unary_shape_check(out, a, eg_unop_name(op));
  if (st) return st;
  eg_tensor ca = EG_TENSOR_INIT;
  walk_t w;
  if ((st = walk_unaliased(&w, out, a, &ca))) return st;
  WALK_BEGIN(w)
  for (int64_t i = 0; i < inner_; i++) p0[i * s0_] = unop_apply(op, p1[i * s1_]);
  WALK_END(w)
  eg_tensor_release(&ca);
  return EG_OK;
}

int eg_clamp(eg_tensor *out, const eg_tensor *a, float lo, float hi) {
  int st = unary_shape_check(out, a, "clamp");
  if (st) return st;
  if (isnan(lo) || isnan(hi)) return eg_seterr(EG_EINVAL, "clamp: bound is NaN");
  if (lo > hi) return eg_seterr(EG_EINVAL, "clamp: lower bound %g is above upper bound %g", (double)lo, (double)hi);
  eg_tensor ca = EG_TENSOR_INIT;
  walk_t w;
  if ((st = walk_unaliased(&w, out, a, &ca))) return st;
  WALK_BEGIN(w)
  for (int64_t i = 0; i < inner_; i++) {
    float x = p1[i * s1_];
    p0[i * s0_] = x < lo ? lo : (x > hi ? hi : x);
  }
  WALK_END(w)
  eg_tensor_release(&ca);
  return EG_OK;
}

int eg_axpy(eg_tensor *y, float alpha, const eg_tensor *x) {
  int st = unary_shape_check(y, x, "axpy");
  if (st) return st;
  int64_t n = eg_numel(y);
  if (eg_is_contiguous(y) && eg_is_contiguous(x) && n <= INT32_MAX && safe_operand(y, x)) {
    cblas_saxpy((int)n, alpha, eg_data(x), 1, eg_data(y), 1);
    return EG_OK;
  }
  walk_t w;
  eg_tensor cx = EG_TENSOR_INIT;
  if ((st = walk_unaliased(&w, y, x, &cx))) return st;
  WALK_BEGIN(w)
  for (int64_t i = 0; i < inner_; i++) p0[i * s0_] += alpha * p1[i * s1_];
  WALK_END(w)
  eg_tensor_release(&cx);
  return EG_OK;
}
