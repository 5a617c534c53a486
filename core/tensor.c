/*
** tensor.c — float32 strided tensors over reference-counted storage: storage,
** lifecycle, inspection and views (what only moves metadata, never elements).
*/
#include "tensor_impl.h"

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
