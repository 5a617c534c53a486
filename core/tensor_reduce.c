/*
** tensor_reduce.c — reductions along one dimension or over all elements.
*/
#include "tensor_impl.h"

#include <math.h>

/* --------------------------------------------------------------- reductions */

const char *eg_redop_name(eg_redop op) {
  static const char *n[] = {"sum", "mean", "max", "min", "argmax", "argmin", "prod", "norm"};
  return (unsigned)op < sizeof n / sizeof n[0] ? n[op] : "reduce";
}

/* Reduces n values at p with stride s; *pos gets the position for max/min. */
static double reduce_run(const float *p, int64_t n, int64_t s, eg_redop op, int64_t *pos) {
  double acc;
  int64_t best = 0;
  switch (op) {
    case EG_SUM:
    case EG_MEAN:
      acc = 0;
      for (int64_t i = 0; i < n; i++) acc += p[i * s];
      if (op == EG_MEAN) acc = n ? acc / (double)n : NAN;
      break;
    case EG_PROD:
      acc = 1;
      for (int64_t i = 0; i < n; i++) acc *= p[i * s];
      break;
    case EG_NORM2:
      acc = 0;
      for (int64_t i = 0; i < n; i++) acc += (double)p[i * s] * p[i * s];
      acc = sqrt(acc);
      break;
    case EG_MAX:
    case EG_ARGMAX:
      acc = n ? p[0] : NAN;
      for (int64_t i = 1; i < n && !isnan(acc); i++) {
        float v = p[i * s];
        if (v > acc || isnan(v)) {
          acc = v;
          best = i;
        }
      }
      break;
    default: /* EG_MIN, EG_ARGMIN */
      acc = n ? p[0] : NAN;
      for (int64_t i = 1; i < n && !isnan(acc); i++) {
        float v = p[i * s];
        if (v < acc || isnan(v)) {
          acc = v;
          best = i;
        }
      }
      break;
  }
  if (pos) *pos = best;
  return acc;
}

int eg_reduce(eg_tensor *out, eg_tensor *idx, const eg_tensor *a, int dim, eg_redop op) {
  const char *name = eg_redop_name(op);
  int st = need(a, name);
  if (!st) st = need_out(out, name);
  if (!st && idx) st = need_out(idx, name);
  if (!st) st = check_dim(a, dim, name);
  if (st) return st;
  int64_t len = a->shape[dim];
  int64_t n = eg_numel(a), m = len ? n / len : 0;
  if (len == 0) {
    m = 1;
    for (int d = 0; d < a->ndim; d++)
      if (d != dim) m *= a->shape[d];
  }
  if ((op == EG_MAX || op == EG_MIN || op == EG_ARGMAX || op == EG_ARGMIN) && len == 0)
    return eg_seterr(EG_ESHAPE, "%s: dimension %d is empty", name, dim + 1);
  char b1[96];
  if (!eg_is_contiguous(out) || eg_numel(out) != m)
    return eg_seterr(EG_ESHAPE, "%s: output %s must be contiguous with %lld elements", name,
                     eg_shape_str(out, b1, sizeof b1), (long long)m);
  if (idx && (!eg_is_contiguous(idx) || eg_numel(idx) != m))
    return eg_seterr(EG_ESHAPE, "%s: index output %s must be contiguous with %lld elements", name,
                     eg_shape_str(idx, b1, sizeof b1), (long long)m);
  /* Iterate over every position of the other dimensions in row-major order. */
  eg_tensor rest = EG_TENSOR_INIT;
  rest.storage = a->storage;
  rest.offset = a->offset;
  int k = 0;
  for (int d = 0; d < a->ndim; d++)
    if (d != dim) {
      rest.shape[k] = a->shape[d];
      rest.stride[k] = a->stride[d];
      k++;
    }
  rest.ndim = k;
  float *o = eg_data(out), *ix = idx ? eg_data(idx) : NULL;
  int64_t pos[EG_MAXDIM] = {0};
  for (int64_t j = 0; j < m; j++) {
    int64_t off = 0;
    for (int d = 0; d < k; d++) off += pos[d] * rest.stride[d];
    int64_t where = 0;
    double v = reduce_run(eg_data(a) + off, len, a->stride[dim], op, &where);
    if (op == EG_ARGMAX || op == EG_ARGMIN)
      o[j] = (float)where;
    else
      o[j] = (float)v;
    if (ix) ix[j] = (float)where;
    for (int d = k - 1; d >= 0; d--) {
      if (++pos[d] < rest.shape[d]) break;
      pos[d] = 0;
    }
  }
  return EG_OK;
}

int eg_reduce_all(double *out, const eg_tensor *a, eg_redop op) {
  const char *name = eg_redop_name(op);
  int st = need(a, name);
  if (st) return st;
  int64_t n = eg_numel(a);
  if ((op == EG_MAX || op == EG_MIN || op == EG_ARGMAX || op == EG_ARGMIN) && n == 0)
    return eg_seterr(EG_ESHAPE, "%s: tensor is empty", name);
  eg_tensor c = EG_TENSOR_INIT;
  if ((st = eg_contiguous(&c, a))) return st;
  int64_t where = 0;
  double v = reduce_run(eg_data(&c), n, 1, op, &where);
  eg_tensor_release(&c);
  *out = (op == EG_ARGMAX || op == EG_ARGMIN) ? (double)where : v;
  return EG_OK;
}

/* NaN and the infinities are the floats whose exponent bits are all set:
** (u & 0x7f800000) + 0x00800000 carries into bit 31 exactly for them. Counted
** in 32-bit blocks so the loop vectorises. */
/* x - x is 0 for a finite x and NaN for NaN and the infinities. Sixteen
** integer lanes with a fixed inner count, so that -O2's cheap vectoriser
** takes the loop. */
static int64_t nonfinite_run(const float *p, int64_t n) {
  int64_t k = 0, i = 0;
  while (i + 16 <= n) {
    int64_t end = n - i < 65536 ? i + ((n - i) & ~(int64_t)15) : i + 65536;
    int lane[16] = {0};
    for (; i < end; i += 16)
      for (int j = 0; j < 16; j++) {
        float d = p[i + j] - p[i + j];
        lane[j] += d != d;
      }
    for (int j = 0; j < 16; j++) k += lane[j];
  }
  for (; i < n; i++) {
    float d = p[i] - p[i];
    k += d != d;
  }
  return k;
}

int eg_count_nonfinite(int64_t *out, const eg_tensor *a) {
  int st = need(a, "count_nonfinite");
  if (st) return st;
  if (eg_is_contiguous(a)) {
    *out = nonfinite_run(eg_data(a), eg_numel(a));
    return EG_OK;
  }
  eg_tensor c = EG_TENSOR_INIT;
  if ((st = eg_contiguous(&c, a))) return st;
  *out = nonfinite_run(eg_data(&c), eg_numel(&c));
  eg_tensor_release(&c);
  return EG_OK;
}
