/*
** tensor.c — float32 strided tensors over reference-counted storage.
*/
#include "tensor.h"

#include <cblas.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* The largest storage we agree to allocate: beyond this a size is a mistake
** (and the byte count would overflow on some platforms). */
#define EG_MAX_ELEMS ((int64_t)1 << 40)

/* ------------------------------------------------------------------ storage */

/* Bytes held by storages the core allocated (not wrapped ones), all threads. */
static int64_t live_bytes;
static void live_add(int64_t d) { __atomic_fetch_add(&live_bytes, d, __ATOMIC_RELAXED); }
int64_t eg_storage_live_bytes(void) { return __atomic_load_n(&live_bytes, __ATOMIC_RELAXED); }

eg_storage *eg_storage_new(int64_t n) {
  if (n < 0) {
    eg_seterr(EG_EINVAL, "storage: negative size %lld", (long long)n);
    return NULL;
  }
  if (n > EG_MAX_ELEMS) {
    eg_seterr(EG_ENOMEM, "out of memory: %lld elements requested", (long long)n);
    return NULL;
  }
  eg_storage *s = eg_malloc(sizeof *s);
  if (!s) {
    eg_seterr(EG_ENOMEM, "out of memory");
    return NULL;
  }
  s->data = eg_calloc((size_t)(n ? n : 1), sizeof(float));
  if (!s->data) {
    eg_free(s);
    eg_seterr(EG_ENOMEM, "out of memory: cannot allocate %lld floats (%.1f MiB)", (long long)n,
              (double)n * 4.0 / 1048576.0);
    return NULL;
  }
  s->size = n;
  s->refs = 1;
  live_add((int64_t)(n ? n : 1) * (int64_t)sizeof(float));
  s->free_fn = NULL;
  s->ud = NULL;
  return s;
}

eg_storage *eg_storage_wrap(float *data, int64_t n, void (*free_fn)(void *, float *), void *ud) {
  eg_storage *s = eg_malloc(sizeof *s);
  if (!s) {
    eg_seterr(EG_ENOMEM, "out of memory");
    return NULL;
  }
  s->data = data;
  s->size = n;
  s->refs = 1;
  s->free_fn = free_fn;
  s->ud = ud;
  return s;
}

void eg_storage_retain(eg_storage *s) {
  if (s) s->refs++;
}

void eg_storage_release(eg_storage *s) {
  if (!s || --s->refs > 0) return;
  if (s->free_fn) {
    s->free_fn(s->ud, s->data);
  } else {
    live_add(-(int64_t)(s->size ? s->size : 1) * (int64_t)sizeof(float));
    eg_free(s->data);
  }
  eg_free(s);
}

/* ---------------------------------------------------------------- lifecycle */

static int check_shape(int ndim, const int64_t *shape, int64_t *numel, const char *op) {
  if (ndim < 0 || ndim > EG_MAXDIM)
    return eg_seterr(EG_EINVAL, "%s: %d dimensions (at most %d)", op, ndim, EG_MAXDIM);
  /* The product of the non-zero sizes is bounded too, so that an empty
  ** tensor's strides and any partial product of its sizes (taken in any
  ** order) cannot overflow. */
  int64_t n = 1;
  int empty = 0;
  for (int d = 0; d < ndim; d++) {
    if (shape[d] < 0) return eg_seterr(EG_EINVAL, "%s: size %lld of dimension %d is negative", op, (long long)shape[d], d + 1);
    if (shape[d] == 0) {
      empty = 1;
      continue;
    }
    if (n > EG_MAX_ELEMS / shape[d]) return eg_seterr(EG_ENOMEM, "%s: out of memory: the shape has too many elements", op);
    n *= shape[d];
  }
  *numel = empty ? 0 : n;
  return EG_OK;
}

static void set_contiguous(eg_tensor *t, int ndim, const int64_t *shape) {
  t->ndim = ndim;
  int64_t st = 1;
  for (int d = ndim - 1; d >= 0; d--) {
    t->shape[d] = shape[d];
    t->stride[d] = st;
    st *= shape[d];
  }
}

int eg_tensor_new(eg_tensor *t, int ndim, const int64_t *shape) {
  int64_t n;
  int64_t sh[EG_MAXDIM];
  int st = check_shape(ndim, shape, &n, "tensor");
  if (st) return st;
  memcpy(sh, shape, sizeof(int64_t) * (size_t)ndim); /* shape may point into t */
  eg_storage *s = eg_storage_new(n);
  if (!s) return EG_ENOMEM;
  eg_tensor_release(t);
  t->storage = s;
  t->offset = 0;
  set_contiguous(t, ndim, sh);
  return EG_OK;
}

/* borrowed: keep the storage whenever it is large enough, whoever else views it. */
static int resize(eg_tensor *t, int ndim, const int64_t *shape, int borrowed) {
  int64_t n;
  int st = check_shape(ndim, shape, &n, "resize");
  if (st) return st;
  if (t->storage && (borrowed || (t->storage->refs == 1 && eg_is_contiguous(t))) &&
      t->storage->size - t->offset >= n) {
    int64_t sh[EG_MAXDIM];
    memcpy(sh, shape, sizeof(int64_t) * (size_t)ndim);
    set_contiguous(t, ndim, sh);
    return EG_OK;
  }
  return eg_tensor_new(t, ndim, shape);
}

int eg_tensor_resize(eg_tensor *t, int ndim, const int64_t *shape) { return resize(t, ndim, shape, 0); }

int eg_tensor_resize_buffer(eg_tensor *t, int ndim, const int64_t *shape) { return resize(t, ndim, shape, 1); }

int eg_tensor_resize_as(eg_tensor *t, const eg_tensor *like) {
  int64_t sh[EG_MAXDIM];
  memcpy(sh, like->shape, sizeof sh);
  return eg_tensor_resize(t, like->ndim, sh);
}

void eg_tensor_release(eg_tensor *t) {
  if (!t) return;
  eg_storage_release(t->storage);
  memset(t, 0, sizeof *t);
}

void eg_tensor_set(eg_tensor *dst, const eg_tensor *src) {
  if (dst == src) return;
  eg_storage_retain(src->storage);
  eg_storage *old = dst->storage;
  *dst = *src;
  eg_storage_release(old);
}

/* Smallest and largest storage offsets reachable by t (given shape, strides, offset). */
static void reach(const eg_tensor *t, int64_t *lo, int64_t *hi) {
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

int eg_tensor_from_storage(eg_tensor *t, eg_storage *s, int64_t offset, int ndim, const int64_t *shape,
                           const int64_t *stride) {
  int64_t n;
  int st = check_shape(ndim, shape, &n, "tensor");
  if (st) return st;
  if (!s) return eg_seterr(EG_ESTATE, "tensor: no storage");
  eg_tensor v = EG_TENSOR_INIT;
  v.storage = s;
  v.offset = offset;
  if (stride) {
    v.ndim = ndim;
    for (int d = 0; d < ndim; d++) {
      v.shape[d] = shape[d];
      v.stride[d] = stride[d];
    }
  } else {
    set_contiguous(&v, ndim, shape);
  }
  int64_t lo, hi;
  reach(&v, &lo, &hi);
  if (n > 0 && (lo < 0 || hi >= s->size))
    return eg_seterr(EG_ERANGE, "tensor: view reaches elements %lld..%lld outside storage of %lld", (long long)lo,
                     (long long)hi, (long long)s->size);
  eg_tensor_set(t, &v);
  return EG_OK;
}

/* --------------------------------------------------------------- inspection */

int64_t eg_numel(const eg_tensor *t) {
  int64_t n = 1;
  for (int d = 0; d < t->ndim; d++) n *= t->shape[d];
  return n;
}

int eg_is_contiguous(const eg_tensor *t) {
  int64_t st = 1;
  for (int d = t->ndim - 1; d >= 0; d--) {
    if (t->shape[d] != 1 && t->stride[d] != st) return 0;
    st *= t->shape[d];
  }
  return 1;
}

int eg_same_shape(const eg_tensor *a, const eg_tensor *b) {
  if (a->ndim != b->ndim) return 0;
  for (int d = 0; d < a->ndim; d++)
    if (a->shape[d] != b->shape[d]) return 0;
  return 1;
}

const char *eg_shape_str(const eg_tensor *t, char *buf, size_t n) {
  if (!t->storage && t->ndim == 0) {
    snprintf(buf, n, "[empty]");
    return buf;
  }
  size_t k = 0;
  k += (size_t)snprintf(buf + k, n > k ? n - k : 0, "[");
  for (int d = 0; d < t->ndim && k < n; d++)
    k += (size_t)snprintf(buf + k, n > k ? n - k : 0, d ? "x%lld" : "%lld", (long long)t->shape[d]);
  if (k < n) snprintf(buf + k, n - k, "]");
  return buf;
}

static int need(const eg_tensor *t, const char *op) {
  if (!t || !t->storage) return eg_seterr(EG_ESTATE, "%s: empty or released tensor", op);
  return EG_OK;
}

/* A tensor written to: not empty, and no two of its elements share memory
** (an expanded view has stride 0 along a dimension of size > 1), because an
** element-wise write there silently keeps only one of the results. */
static int need_out(const eg_tensor *t, const char *op) {
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

static int check_idx(const eg_tensor *t, const int64_t *idx, const char *op) {
  for (int d = 0; d < t->ndim; d++)
    if (idx[d] < 0 || idx[d] >= t->shape[d])
      return eg_seterr(EG_ERANGE, "%s: index %lld out of range for dimension %d of size %lld", op,
                       (long long)idx[d] + 1, d + 1, (long long)t->shape[d]);
  return EG_OK;
}

int eg_get(const eg_tensor *t, const int64_t *idx, float *v) {
  int st = need(t, "get");
  if (!st) st = check_idx(t, idx, "get");
  if (st) return st;
  *v = eg_data(t)[eg_offset_of(t, idx)];
  return EG_OK;
}

int eg_put(eg_tensor *t, const int64_t *idx, float v) {
  int st = need(t, "set");
  if (!st) st = check_idx(t, idx, "set");
  if (st) return st;
  eg_data(t)[eg_offset_of(t, idx)] = v;
  return EG_OK;
}

/* -------------------------------------------------------------------- views */

int eg_view(eg_tensor *dst, const eg_tensor *src, int ndim, const int64_t *shape) {
  int st = need(src, "view");
  if (st) return st;
  char b1[96];
  if (ndim < 0 || ndim > EG_MAXDIM) return eg_seterr(EG_EINVAL, "view: %d dimensions (at most %d)", ndim, EG_MAXDIM);
  int64_t sh[EG_MAXDIM], n = 1, total = eg_numel(src);
  int infer = -1, zero = 0;
  for (int d = 0; d < ndim; d++) {
    sh[d] = shape[d];
    if (sh[d] == -1) {
      if (infer >= 0) return eg_seterr(EG_EINVAL, "view: only one size may be -1");
      infer = d;
    } else if (sh[d] < 0) {
      return eg_seterr(EG_EINVAL, "view: size %lld is negative", (long long)sh[d]);
    } else if (sh[d] > 0) { /* zeros are counted after: the other sizes stay bounded (see check_shape) */
      if (n > EG_MAX_ELEMS / sh[d]) return eg_seterr(EG_EINVAL, "view: shape too large");
      n *= sh[d];
    } else {
      zero = 1;
    }
  }
  if (zero) n = 0;
  if (infer >= 0) {
    if (n == 0 || total % n)
      return eg_seterr(EG_ESHAPE, "view: cannot infer size -1 to view %s (%lld elements)",
                       eg_shape_str(src, b1, sizeof b1), (long long)total);
    sh[infer] = total / n;
    n = total;
  }
  if (n != total) {
    char b2[96];
    eg_tensor tmp = EG_TENSOR_INIT;
    tmp.storage = src->storage;
    tmp.ndim = ndim;
    memcpy(tmp.shape, sh, sizeof(int64_t) * (size_t)ndim);
    return eg_seterr(EG_ESHAPE, "view: cannot view %s (%lld elements) as %s (%lld elements)",
                     eg_shape_str(src, b1, sizeof b1), (long long)total, eg_shape_str(&tmp, b2, sizeof b2),
                     (long long)n);
  }
  if (!eg_is_contiguous(src))
    return eg_seterr(EG_ESHAPE, "view: tensor %s is not contiguous (use contiguous() or reshape)",
                     eg_shape_str(src, b1, sizeof b1));
  eg_tensor v = *src;
  set_contiguous(&v, ndim, sh);
  eg_tensor_set(dst, &v); /* v is a local: dst may be src */
  return EG_OK;
}

static int check_dim(const eg_tensor *t, int dim, const char *op) {
  if (dim < 0 || dim >= t->ndim)
    return eg_seterr(EG_ERANGE, "%s: dimension %d out of range for a %d-dimensional tensor", op, dim + 1, t->ndim);
  return EG_OK;
}

int eg_narrow(eg_tensor *dst, const eg_tensor *src, int dim, int64_t start, int64_t len) {
  int st = need(src, "narrow");
  if (!st) st = check_dim(src, dim, "narrow");
  if (st) return st;
  if (start < 0 || len < 0 || start > src->shape[dim] || len > src->shape[dim] - start)
    /* In double: start + len may overflow int64 for absurd requests. */
    return eg_seterr(EG_ERANGE, "narrow: elements %.0f..%.0f out of range for dimension %d of size %lld",
                     (double)start + 1, (double)start + (double)len, dim + 1, (long long)src->shape[dim]);
  eg_tensor v = *src;
  v.offset += start * src->stride[dim];
  v.shape[dim] = len;
  eg_tensor_set(dst, &v); /* v is a local: dst may be src */
  return EG_OK;
}

int eg_select(eg_tensor *dst, const eg_tensor *src, int dim, int64_t index) {
  int st = need(src, "select");
  if (!st) st = check_dim(src, dim, "select");
  if (st) return st;
  if (index < 0 || index >= src->shape[dim])
    return eg_seterr(EG_ERANGE, "select: index %lld out of range for dimension %d of size %lld", (long long)index + 1,
                     dim + 1, (long long)src->shape[dim]);
  eg_tensor v = *src;
  v.offset += index * src->stride[dim];
  for (int d = dim; d < src->ndim - 1; d++) {
    v.shape[d] = src->shape[d + 1];
    v.stride[d] = src->stride[d + 1];
  }
  v.ndim = src->ndim - 1;
  eg_tensor_set(dst, &v); /* v is a local: dst may be src */
  return EG_OK;
}

int eg_transpose(eg_tensor *dst, const eg_tensor *src, int d0, int d1) {
  int st = need(src, "transpose");
  if (!st) st = check_dim(src, d0, "transpose");
  if (!st) st = check_dim(src, d1, "transpose");
  if (st) return st;
  eg_tensor v = *src;
  v.shape[d0] = src->shape[d1];
  v.shape[d1] = src->shape[d0];
  v.stride[d0] = src->stride[d1];
  v.stride[d1] = src->stride[d0];
  eg_tensor_set(dst, &v); /* v is a local: dst may be src */
  return EG_OK;
}

int eg_expand(eg_tensor *dst, const eg_tensor *src, int ndim, const int64_t *shape) {
  int st = need(src, "expand");
  if (st) return st;
  char b1[96];
  if (ndim < src->ndim || ndim > EG_MAXDIM)
    return eg_seterr(EG_ESHAPE, "expand: cannot expand %s to %d dimensions", eg_shape_str(src, b1, sizeof b1), ndim);
  int64_t n;
  if ((st = check_shape(ndim, shape, &n, "expand"))) return st; /* as many elements as a tensor may have */
  eg_tensor v = *src;
  int lead = ndim - src->ndim;
  for (int d = ndim - 1; d >= 0; d--) {
    int sd = d - lead;
    int64_t have = sd >= 0 ? src->shape[sd] : 1, want = shape[d];
    if (want < 0) return eg_seterr(EG_EINVAL, "expand: size %lld is negative", (long long)want);
    if (have == want) {
      v.shape[d] = want;
      v.stride[d] = sd >= 0 ? src->stride[sd] : 0;
    } else if (have == 1) {
      v.shape[d] = want;
      v.stride[d] = 0;
    } else {
      return eg_seterr(EG_ESHAPE, "expand: size %lld of dimension %d of %s cannot expand to %lld", (long long)have,
                       sd + 1, eg_shape_str(src, b1, sizeof b1), (long long)want);
    }
  }
  v.ndim = ndim;
  eg_tensor_set(dst, &v); /* v is a local: dst may be src */
  return EG_OK;
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

static void walk_init(walk_t *w, const eg_tensor *shape_of) {
  memset(w, 0, sizeof *w);
  w->ndim = shape_of->ndim;
  memcpy(w->shape, shape_of->shape, sizeof w->shape);
}

static void walk_add(walk_t *w, const eg_tensor *t) {
  int k = w->nops++;
  w->base[k] = eg_data(t);
  int lead = w->ndim - t->ndim;
  for (int d = 0; d < w->ndim; d++) {
    int sd = d - lead;
    w->st[k][d] = (sd >= 0 && t->shape[sd] != 1) ? t->stride[sd] : 0;
  }
}

/* ---------------------------------------------------------- copying/filling */

static int overlaps(const eg_tensor *a, const eg_tensor *b) {
  if (a->storage != b->storage) return 0;
  int64_t alo, ahi, blo, bhi;
  reach(a, &alo, &ahi);
  reach(b, &blo, &bhi);
  return alo <= bhi && blo <= ahi;
}

/* The operand an element-wise loop writing `out` may read: a itself, or a
** private copy in *copy when a shares out's storage through a different
** layout (the loop would read elements it has already overwritten). An
** operand laid out exactly as out is safe: each element is read before it is
** written. *copy stays empty unless it was needed; the caller releases it. */
static int unaliased(const eg_tensor *out, const eg_tensor *a, eg_tensor *copy, const eg_tensor **pa) {
  *pa = a;
  if (!overlaps(out, a) ||
      (out->offset == a->offset && eg_same_shape(out, a) && !memcmp(out->stride, a->stride, sizeof out->stride)))
    return EG_OK;
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

int eg_all_finite(const eg_tensor *t) {
  if (!t->storage) return 1;
  int fin = 1;
  walk_t w;
  walk_init(&w, t);
  walk_add(&w, (eg_tensor *)t);
  WALK_BEGIN(w)
  for (int64_t i = 0; i < inner_; i++) fin &= isfinite(p0[i * s0_]) ? 1 : 0;
  WALK_END(w)
  return fin;
}

/* ------------------------------------------------------------- element-wise */

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
  if (eg_is_contiguous(out) && eg_is_contiguous(a) && eg_is_contiguous(b) && eg_numel(a) == n && eg_numel(b) == n) {
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
  if (eg_is_contiguous(out) && eg_is_contiguous(a)) {
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
  if (eg_is_contiguous(y) && eg_is_contiguous(x) && n <= INT32_MAX) {
    cblas_saxpy((int)n, alpha, eg_data(x), 1, eg_data(y), 1);
    return EG_OK;
  }
  walk_t w;
  walk_init(&w, y);
  walk_add(&w, y);
  walk_add(&w, x);
  WALK_BEGIN(w)
  for (int64_t i = 0; i < inner_; i++) p0[i * s0_] += alpha * p1[i * s1_];
  WALK_END(w)
  return EG_OK;
}

/* ------------------------------------------------------------ linear algebra */

/* BLAS takes a 2-D operand as row-major with unit column stride (or as its
** transpose with unit row stride). *trans is flipped for the latter. */
static int blas_layout(const eg_tensor *t, int *trans, int64_t *ld) {
  if (t->stride[1] == 1 && t->stride[0] >= (t->shape[1] > 1 ? t->shape[1] : 1)) {
    *ld = t->stride[0] > 0 ? t->stride[0] : 1;
    return 1;
  }
  if (t->stride[0] == 1 && t->stride[1] >= (t->shape[0] > 1 ? t->shape[0] : 1)) {
    *trans = !*trans;
    *ld = t->stride[1] > 0 ? t->stride[1] : 1;
    return 1;
  }
  return 0;
}

int eg_mm(eg_tensor *out, const eg_tensor *a, const eg_tensor *b, int ta, int tb, float alpha, float beta) {
  int st = need_out(out, "mm");
  if (!st) st = need(a, "mm");
  if (!st) st = need(b, "mm");
  if (st) return st;
  char b1[96], b2[96], b3[96];
  if (a->ndim != 2 || b->ndim != 2 || out->ndim != 2)
    return eg_seterr(EG_ESHAPE, "mm: expected 2-D tensors, got %s * %s -> %s", eg_shape_str(a, b1, sizeof b1),
                     eg_shape_str(b, b2, sizeof b2), eg_shape_str(out, b3, sizeof b3));
  int64_t m = ta ? a->shape[1] : a->shape[0], k = ta ? a->shape[0] : a->shape[1];
  int64_t k2 = tb ? b->shape[1] : b->shape[0], n = tb ? b->shape[0] : b->shape[1];
  if (k != k2)
    return eg_seterr(EG_ESHAPE, "mm: inner sizes differ (%s%s * %s%s)", eg_shape_str(a, b1, sizeof b1), ta ? "'" : "",
                     eg_shape_str(b, b2, sizeof b2), tb ? "'" : "");
  if (out->shape[0] != m || out->shape[1] != n)
    return eg_seterr(EG_ESHAPE, "mm: output %s does not match the product's [%lldx%lld]",
                     eg_shape_str(out, b1, sizeof b1), (long long)m, (long long)n);
  if (m > INT32_MAX || n > INT32_MAX || k > INT32_MAX)
    return eg_seterr(EG_EINVAL, "mm: sizes too large for BLAS");
  if (m == 0 || n == 0) return EG_OK;
  if (k == 0) return beta == 1.0f ? EG_OK : (beta == 0.0f ? eg_fill(out, 0.0f) : eg_binary_scalar(out, out, beta, EG_MUL, 0));

  eg_tensor ca = EG_TENSOR_INIT, cb = EG_TENSOR_INIT, co = EG_TENSOR_INIT;
  const eg_tensor *pa = a, *pb = b;
  eg_tensor *po = out;
  int tra = ta, trb = tb;
  int64_t lda, ldb, ldo;
  /* An output that aliases an input, or that BLAS cannot write directly, goes through scratch. */
  int out_ok = out->stride[1] == 1 && out->stride[0] >= n && !overlaps(out, a) && !overlaps(out, b);
  if (!out_ok) {
    if ((st = eg_tensor_new(&co, 2, out->shape))) return st;
    if (beta != 0.0f && (st = eg_copy(&co, out))) goto done;
    po = &co;
  }
  ldo = po->stride[0] > 0 ? po->stride[0] : 1;
  if (!blas_layout(pa, &tra, &lda)) {
    if ((st = eg_clone(&ca, a))) goto done;
    pa = &ca;
    tra = ta;
    blas_layout(pa, &tra, &lda);
  }
  if (!blas_layout(pb, &trb, &ldb)) {
    if ((st = eg_clone(&cb, b))) goto done;
    pb = &cb;
    trb = tb;
    blas_layout(pb, &trb, &ldb);
  }
  /* blas_layout reports the row-major leading dimension of the stored matrix; when
  ** it flipped the transpose flag, the stored matrix is the transpose. */
  cblas_sgemm(CblasRowMajor, tra ? CblasTrans : CblasNoTrans, trb ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)k,
              alpha, eg_data(pa), (int)lda, eg_data(pb), (int)ldb, beta, eg_data(po), (int)ldo);
  if (po != out) st = eg_copy(out, po);
done:
  eg_tensor_release(&ca);
  eg_tensor_release(&cb);
  eg_tensor_release(&co);
  return st;
}

int eg_dot(double *out, const eg_tensor *a, const eg_tensor *b) {
  int st = need(a, "dot");
  if (!st) st = need(b, "dot");
  if (st) return st;
  int64_t n = eg_numel(a);
  if (n != eg_numel(b)) {
    char b1[96], b2[96];
    return eg_seterr(EG_ESHAPE, "dot: %s and %s have different numbers of elements", eg_shape_str(a, b1, sizeof b1),
                     eg_shape_str(b, b2, sizeof b2));
  }
  double s = 0;
  if (eg_is_contiguous(a) && eg_is_contiguous(b)) {
    const float *x = eg_data(a), *y = eg_data(b);
    for (int64_t i = 0; i < n; i++) s += (double)x[i] * y[i];
  } else {
    eg_tensor ca = EG_TENSOR_INIT, cb = EG_TENSOR_INIT;
    if (!(st = eg_clone(&ca, a)) && !(st = eg_clone(&cb, b))) {
      const float *x = eg_data(&ca), *y = eg_data(&cb);
      for (int64_t i = 0; i < n; i++) s += (double)x[i] * y[i];
    }
    eg_tensor_release(&ca);
    eg_tensor_release(&cb);
    if (st) return st;
  }
  *out = s;
  return EG_OK;
}

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
