/*
** tensor_impl.h — what the tensor sources (tensor.c, tensor_copy.c,
** tensor_math.c, tensor_linalg.c, tensor_reduce.c) share: argument checks,
** overlap tests and the strided walk. Internal; not installed API.
*/
#ifndef EG_TENSOR_IMPL_H
#define EG_TENSOR_IMPL_H

#include <string.h>

#include "tensor.h"

static inline int need(const eg_tensor *t, const char *op) {
  if (!t || !t->storage) return eg_seterr(EG_ESTATE, "%s: empty or released tensor", op);
  return EG_OK;
}

/* A tensor written to: not empty, and no two of its elements share memory
** (an expanded view has stride 0 along a dimension of size > 1), because an
** element-wise write there silently keeps only one of the results. */
static inline int need_out(const eg_tensor *t, const char *op) {
  int st = need(t, op);
  if (st) return st;
  for (int d = 0; d < t->ndim; d++)
    if (t->stride[d] == 0 && t->shape[d] > 1) {
      char b[96];
      return eg_seterr(EG_EINVAL,
                       "%s: cannot write into expanded tensor %s (its elements share memory); clone() it first", op,
                       eg_shape_str(t, b, sizeof b));
    }
  return EG_OK;
}

static inline int check_dim(const eg_tensor *t, int dim, const char *op) {
  if (dim < 0 || dim >= t->ndim)
    return eg_seterr(EG_ERANGE, "%s: dimension %d out of range for a %d-dimensional tensor", op, dim + 1, t->ndim);
  return EG_OK;
}

/* Smallest and largest storage offsets reachable by t (given shape, strides, offset). */
static inline void reach(const eg_tensor *t, int64_t *lo, int64_t *hi) {
  int64_t a = t->offset, b = t->offset;
  for (int d = 0; d < t->ndim; d++) {
    if (t->shape[d] == 0) {
      *lo = t->offset;
      *hi = t->offset - 1; /* empty */
      return;
    }
    int64_t span = (t->shape[d] - 1) * t->stride[d];
    if (span > 0)
      b += span;
    else
      a += span;
  }
  *lo = a;
  *hi = b;
}

static inline int overlaps(const eg_tensor *a, const eg_tensor *b) {
  if (a->storage != b->storage) return 0;
  int64_t alo, ahi, blo, bhi;
  reach(a, &alo, &ahi);
  reach(b, &blo, &bhi);
  return alo <= bhi && blo <= ahi;
}

/* ---------------------------------------------------------------- iteration */

/* Walks the row-major index space of `shape`, calling the inner loop over the
** last dimension with per-operand base pointers and strides. Up to three
** operands (out, a, b) each with their own strides over the same shape. */
typedef struct {
  int ndim;
  int64_t shape[EG_MAXDIM];
  int64_t st[3][EG_MAXDIM];
  float *base[3];
  int nops;
} walk_t;

#define WALK_BEGIN(w)                                                              \
  {                                                                                \
    int64_t ix_[EG_MAXDIM] = {0};                                                  \
    int nd_ = (w).ndim;                                                            \
    int64_t inner_ = nd_ ? (w).shape[nd_ - 1] : 1;                                 \
    int64_t outer_ = 1;                                                            \
    for (int d_ = 0; d_ < nd_ - 1; d_++) outer_ *= (w).shape[d_];                  \
    if (inner_ == 0) outer_ = 0;                                                   \
    int64_t s0_ = nd_ ? (w).st[0][nd_ - 1] : 0, s1_ = nd_ ? (w).st[1][nd_ - 1] : 0, \
            s2_ = nd_ ? (w).st[2][nd_ - 1] : 0;                                    \
    (void)s1_;                                                                     \
    (void)s2_;                                                                     \
    for (int64_t o_ = 0; o_ < outer_; o_++) {                                      \
      int64_t off0_ = 0, off1_ = 0, off2_ = 0;                                     \
      for (int d_ = 0; d_ < nd_ - 1; d_++) {                                       \
        off0_ += ix_[d_] * (w).st[0][d_];                                          \
        off1_ += ix_[d_] * (w).st[1][d_];                                          \
        off2_ += ix_[d_] * (w).st[2][d_];                                          \
      }                                                                            \
      float *p0 = (w).base[0] + off0_;                                             \
      float *p1 = (w).nops > 1 ? (w).base[1] + off1_ : NULL;                       \
      float *p2 = (w).nops > 2 ? (w).base[2] + off2_ : NULL;                       \
      (void)p1;                                                                    \
      (void)p2;

#define WALK_END(w)                                         \
  for (int d_ = nd_ - 2; d_ >= 0; d_--) {                   \
    if (++ix_[d_] < (w).shape[d_]) break;                   \
    ix_[d_] = 0;                                            \
  }                                                         \
  }                                                         \
  }

static inline void walk_init(walk_t *w, const eg_tensor *shape_of) {
  memset(w, 0, sizeof *w);
  w->ndim = shape_of->ndim;
  memcpy(w->shape, shape_of->shape, sizeof w->shape);
}

static inline void walk_add(walk_t *w, const eg_tensor *t) {
  int k = w->nops++;
  w->base[k] = eg_data(t);
  int lead = w->ndim - t->ndim;
  for (int d = 0; d < w->ndim; d++) {
    int sd = d - lead;
    w->st[k][d] = (sd >= 0 && t->shape[sd] != 1) ? t->stride[sd] : 0;
  }
}

#endif
