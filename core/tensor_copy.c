/*
** tensor_copy.c — copying, filling and gathering elements between tensors.
*/
#include "tensor_impl.h"

#include <math.h>
#include <string.h>

/* ---------------------------------------------------------- copying/filling */

int eg_copy(eg_tensor *dst, const eg_tensor *src) {
  int st = need_out(dst, "copy");
  if (!st) st = need(src, "copy");
  if (st) return st;
  int64_t n = eg_numel(dst);
  if (n != eg_numel(src)) {
    char b1[96], b2[96];
    return eg_seterr(EG_ESHAPE, "copy: %s has %lld elements, source %s has %lld", eg_shape_str(dst, b1, sizeof b1),
                     (long long)n, eg_shape_str(src, b2, sizeof b2), (long long)eg_numel(src));
  }
  if (n == 0) return EG_OK;
  if (eg_is_contiguous(dst) && eg_is_contiguous(src)) {
    memmove(eg_data(dst), eg_data(src), sizeof(float) * (size_t)n);
    return EG_OK;
  }
  eg_tensor tmp = EG_TENSOR_INIT;
  const eg_tensor *from = src;
  if (overlaps(dst, src)) {
    st = eg_clone(&tmp, src);
    if (st) return st;
    from = &tmp;
  }
  /* Walk both in row-major order of their own shapes: view src with dst's shape when contiguous. */
  eg_tensor sv = EG_TENSOR_INIT;
  if (eg_same_shape(dst, from)) {
    eg_tensor_set(&sv, from);
  } else if (eg_is_contiguous(from)) {
    st = eg_view(&sv, from, dst->ndim, dst->shape);
  } else {
    eg_tensor c = EG_TENSOR_INIT;
    st = eg_clone(&c, from);
    if (!st) st = eg_view(&sv, &c, dst->ndim, dst->shape);
    eg_tensor_release(&c);
  }
  if (!st) {
    walk_t w;
    walk_init(&w, dst);
    walk_add(&w, dst);
    walk_add(&w, &sv);
    WALK_BEGIN(w)
    for (int64_t i = 0; i < inner_; i++) p0[i * s0_] = p1[i * s1_];
    WALK_END(w)
  }
  eg_tensor_release(&sv);
  eg_tensor_release(&tmp);
  return st;
}

int eg_clone(eg_tensor *dst, const eg_tensor *src) {
  int st = need(src, "clone");
  if (st) return st;
  eg_tensor c = EG_TENSOR_INIT;
  st = eg_tensor_new(&c, src->ndim, src->shape);
  if (!st) st = eg_copy(&c, src);
  if (st) {
    eg_tensor_release(&c);
    return st;
  }
  eg_tensor_release(dst);
  *dst = c;
  return EG_OK;
}

int eg_contiguous(eg_tensor *dst, const eg_tensor *src) {
  int st = need(src, "contiguous");
  if (st) return st;
  if (eg_is_contiguous(src)) {
    eg_tensor_set(dst, src);
    return EG_OK;
  }
  return eg_clone(dst, src);
}

int eg_fill(eg_tensor *t, float v) {
  int st = need_out(t, "fill");
  if (st) return st;
  walk_t w;
  walk_init(&w, t);
  walk_add(&w, t);
  WALK_BEGIN(w)
  for (int64_t i = 0; i < inner_; i++) p0[i * s0_] = v;
  WALK_END(w)
  return EG_OK;
}

int eg_fill_range(eg_tensor *t, double start, double step) {
  int st = need_out(t, "arange");
  if (st) return st;
  int64_t k = 0;
  walk_t w;
  walk_init(&w, t);
  walk_add(&w, t);
  WALK_BEGIN(w)
  for (int64_t i = 0; i < inner_; i++, k++) p0[i * s0_] = (float)(start + (double)k * step);
  WALK_END(w)
  return EG_OK;
}

int eg_index_rows(eg_tensor *out, const eg_tensor *src, const eg_tensor *idx) {
  int st = need_out(out, "index");
  if (!st) st = need(src, "index");
  if (!st) st = need(idx, "index");
  if (st) return st;
  char b1[96], b2[96];
  if (src->ndim < 1) return eg_seterr(EG_ESHAPE, "index: cannot index a 0-dimensional tensor");
  if (idx->ndim != 1)
    return eg_seterr(EG_ESHAPE, "index: the index must be 1-dimensional, got %s", eg_shape_str(idx, b1, sizeof b1));
  int64_t k = idx->shape[0], rows = src->shape[0];
  int ok = out->ndim == src->ndim && out->shape[0] == k;
  for (int d = 1; ok && d < src->ndim; d++) ok = out->shape[d] == src->shape[d];
  if (!ok)
    return eg_seterr(EG_ESHAPE, "index: output %s does not fit %lld rows of %s", eg_shape_str(out, b1, sizeof b1),
                     (long long)k, eg_shape_str(src, b2, sizeof b2));
  /* Check every index before writing anything. */
  const float *ip = eg_data(idx);
  for (int64_t i = 0; i < k; i++) {
    float f = ip[i * idx->stride[0]];
    if (!(f >= 0 && f < (float)rows) || f != floorf(f))
      return eg_seterr(EG_ERANGE, "index: index %g at position %lld out of range for %lld rows", (double)f + 1.0,
                       (long long)i + 1, (long long)rows);
  }
  eg_tensor srow = EG_TENSOR_INIT, orow = EG_TENSOR_INIT;
  int64_t rowlen = rows ? eg_numel(src) / rows : 0;
  int fast = eg_is_contiguous(src) && eg_is_contiguous(out);
  for (int64_t i = 0; i < k && !st; i++) {
    int64_t r = (int64_t)ip[i * idx->stride[0]];
    if (fast) {
      memcpy(eg_data(out) + i * rowlen, eg_data(src) + r * rowlen, sizeof(float) * (size_t)rowlen);
    } else {
      st = eg_select(&srow, src, 0, r);
      if (!st) st = eg_select(&orow, out, 0, i);
      if (!st) st = eg_copy(&orow, &srow);
    }
  }
  eg_tensor_release(&srow);
  eg_tensor_release(&orow);
  return st;
}

/* ------------------------------------------------------------------ joining */

int eg_cat_shape(int *ndim, int64_t *shape, const eg_tensor *const *parts, int n, int dim, int *bad) {
  if (bad) *bad = -1;
  if (n < 1) return eg_seterr(EG_EINVAL, "cat: expected a non-empty list of tensors");
  for (int i = 0; i < n; i++)
    if (need(parts[i], "cat")) return EG_ESTATE;
  const eg_tensor *first = parts[0];
  if (first->ndim == 0) return eg_seterr(EG_ESHAPE, "cat: cannot join 0-dimensional tensors");
  int st = check_dim(first, dim, "cat");
  if (st) return st;
  int64_t len = 0;
  for (int i = 0; i < n; i++) {
    const eg_tensor *x = parts[i];
    int ok = x->ndim == first->ndim;
    for (int k = 0; ok && k < x->ndim; k++) ok = k == dim || x->shape[k] == first->shape[k];
    if (!ok) {
      char b1[96], b2[96];
      if (bad) *bad = i;
      return eg_seterr(EG_ESHAPE, "cat: tensor %d has size %s, which does not fit %s along dimension %d", i + 1,
                       eg_shape_str(x, b1, sizeof b1), eg_shape_str(first, b2, sizeof b2), dim + 1);
    }
    if (len > INT64_MAX - x->shape[dim])
      return eg_seterr(EG_ENOMEM, "cat: out of memory: the joined shape has too many elements");
    len += x->shape[dim];
  }
  *ndim = first->ndim;
  memcpy(shape, first->shape, sizeof(int64_t) * (size_t)first->ndim);
  shape[dim] = len;
  return EG_OK;
}

int eg_cat(eg_tensor *out, const eg_tensor *const *parts, int n, int dim) {
  int nd;
  int64_t sh[EG_MAXDIM];
  int st = eg_cat_shape(&nd, sh, parts, n, dim, NULL);
  if (!st) st = need_out(out, "cat");
  if (st) return st;
  for (int i = 0; i < n; i++)
    if (parts[i]->storage == out->storage)
      return eg_seterr(EG_EINVAL, "cat: the output shares storage with tensor %d", i + 1);
  eg_tensor want = EG_TENSOR_INIT;
  want.ndim = nd;
  memcpy(want.shape, sh, sizeof sh);
  if (!eg_same_shape(out, &want)) {
    char b1[96], b2[96];
    return eg_seterr(EG_ESHAPE, "cat: output %s does not match the joined shape %s", eg_shape_str(out, b1, sizeof b1),
                     eg_shape_str(&want, b2, sizeof b2));
  }
  eg_tensor part = EG_TENSOR_INIT;
  int64_t at = 0;
  for (int i = 0; i < n && !st; i++) {
    st = eg_narrow(&part, out, dim, at, parts[i]->shape[dim]);
    if (!st) st = eg_copy(&part, parts[i]);
    at += parts[i]->shape[dim];
  }
  eg_tensor_release(&part);
  return st;
}
