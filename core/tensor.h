/*
** tensor.h — float32 tensors: strided views over reference-counted storage.
**
** An eg_tensor is a small value (shape, strides, offset) holding one
** reference to an eg_storage. Start from EG_TENSOR_INIT (all zero, "empty");
** every function that fills a tensor (eg_tensor_new, the view functions,
** eg_tensor_set) first releases what the destination held, so a tensor can be
** refilled in place without leaking. eg_tensor_release is idempotent.
**
** Indices are 0-based everywhere in C. Functions that compute into `out`
** require `out` to be allocated with the right shape already (the caller
** decides where results live, so loops can reuse buffers); `out` may alias an
** input for element-wise operations (in-place forms). Integer data (labels,
** indices) are stored as float32 values that are exact integers (exact up to
** 2^24); the functions that read them check that they are.
**
** Shapes: ndim 0 (a scalar with one element) to EG_MAXDIM.
**
** Sources: tensor.c (storage, lifecycle, views), tensor_copy.c (copying,
** filling, gathering), tensor_math.c (element-wise), tensor_linalg.c
** (products), tensor_reduce.c (reductions).
*/
#ifndef EG_TENSOR_H
#define EG_TENSOR_H

#include "eg_base.h"

#ifdef __cplusplus
extern "C" {
#endif

#define EG_MAXDIM 8

typedef struct eg_storage {
  float *data;
  int64_t size; /* number of floats */
  int refs;
  /* When set, called instead of eg_free(data) at the last release
  ** (storage over memory someone else owns, e.g. a model arena). */
  void (*free_fn)(void *ud, float *data);
  void *ud;
} eg_storage;

typedef struct eg_tensor {
  eg_storage *storage; /* NULL: empty */
  int64_t offset;      /* in floats */
  int ndim;
  int64_t shape[EG_MAXDIM];
  int64_t stride[EG_MAXDIM]; /* in floats; may be 0 for expanded dims */
} eg_tensor;

#ifdef __cplusplus
#define EG_TENSOR_INIT {} /* all zero, without C++'s missing-initializer warning */
#else
#define EG_TENSOR_INIT {0}
#endif

/* ---- storage ---- */
/* New zeroed storage of n floats with one reference; NULL (and an error) on failure. */
EG_API eg_storage *eg_storage_new(int64_t n);
/* Storage over data owned elsewhere; free_fn(ud, data) runs at the last release. */
EG_API eg_storage *eg_storage_wrap(float *data, int64_t n, void (*free_fn)(void *, float *), void *ud);
EG_API void eg_storage_retain(eg_storage *s);
EG_API void eg_storage_release(eg_storage *s); /* accepts NULL */
/* Bytes currently held by storages from eg_storage_new (all threads): lets
** tests check that loops making tensors do not grow memory without bound. */
EG_API int64_t eg_storage_live_bytes(void);

/* ---- lifecycle ---- */
/* t becomes a new contiguous zero-filled tensor. Sizes must be >= 0. */
EG_API int eg_tensor_new(eg_tensor *t, int ndim, const int64_t *shape);
/* Gives t the shape; keeps its storage when t is contiguous, the only user
** of its storage and that storage is large enough (no allocation), otherwise
** allocates new zeroed storage. Contents are unspecified after a resize. */
EG_API int eg_tensor_resize(eg_tensor *t, int ndim, const int64_t *shape);
/* Like eg_tensor_resize for a borrowed buffer (a batch, a layer's output),
** whose contents are overwritten by design: keeps the storage whenever it is
** large enough, even when other tensors view it, so a warm loop never
** allocates. */
EG_API int eg_tensor_resize_buffer(eg_tensor *t, int ndim, const int64_t *shape);
/* Like eg_tensor_resize, with the shape of `like`. */
EG_API int eg_tensor_resize_as(eg_tensor *t, const eg_tensor *like);
EG_API void eg_tensor_release(eg_tensor *t);
/* dst becomes another view of exactly what src views (retains the storage). */
EG_API void eg_tensor_set(eg_tensor *dst, const eg_tensor *src);
/* t views s (retained) at offset with shape and strides (NULL: contiguous).
** Checks that every reachable element lies inside s. */
EG_API int eg_tensor_from_storage(eg_tensor *t, eg_storage *s, int64_t offset, int ndim, const int64_t *shape,
                                  const int64_t *stride);

/* ---- inspection ---- */
EG_API int64_t eg_numel(const eg_tensor *t);
EG_API int eg_is_contiguous(const eg_tensor *t);
EG_API int eg_same_shape(const eg_tensor *a, const eg_tensor *b);
/* Writes "[3x4]" (or "[]" for a scalar, "[empty]" for no storage) into buf; returns buf. */
EG_API const char *eg_shape_str(const eg_tensor *t, char *buf, size_t n);
/* Pointer to element 0; t must not be empty. */
static inline float *eg_data(const eg_tensor *t) { return t->storage->data + t->offset; }
/* Offset (in floats, from eg_data) of the element at idx[0..ndim-1]; no checks. */
static inline int64_t eg_offset_of(const eg_tensor *t, const int64_t *idx) {
  int64_t o = 0;
  for (int d = 0; d < t->ndim; d++) o += idx[d] * t->stride[d];
  return o;
}
/* Checked element access: EG_ERANGE when idx is out of range. */
EG_API int eg_get(const eg_tensor *t, const int64_t *idx, float *v);
EG_API int eg_put(eg_tensor *t, const int64_t *idx, float v);

/* ---- views (dst gets its own reference; dst may be src) ---- */
/* Same elements, new shape. One entry of shape may be -1 (inferred).
** src must be contiguous (EG_ESHAPE otherwise: use eg_contiguous first). */
EG_API int eg_view(eg_tensor *dst, const eg_tensor *src, int ndim, const int64_t *shape);
EG_API int eg_narrow(eg_tensor *dst, const eg_tensor *src, int dim, int64_t start, int64_t len);
/* Removes dimension dim by fixing it at index. */
EG_API int eg_select(eg_tensor *dst, const eg_tensor *src, int dim, int64_t index);
EG_API int eg_transpose(eg_tensor *dst, const eg_tensor *src, int d0, int d1);
/* A view with size-1 dimensions expanded to shape (stride 0), numpy rules. */
EG_API int eg_expand(eg_tensor *dst, const eg_tensor *src, int ndim, const int64_t *shape);

/* ---- copying and filling ---- */
/* Copies src into dst element by element in row-major order; the numbers of
** elements must match (shapes may differ). Handles overlapping storage. */
EG_API int eg_copy(eg_tensor *dst, const eg_tensor *src);
/* dst becomes a new contiguous copy of src. */
EG_API int eg_clone(eg_tensor *dst, const eg_tensor *src);
/* dst becomes src itself when contiguous, otherwise a contiguous copy. */
EG_API int eg_contiguous(eg_tensor *dst, const eg_tensor *src);
EG_API int eg_fill(eg_tensor *t, float v);
/* t[i] = start + i*step over t in row-major order. */
EG_API int eg_fill_range(eg_tensor *t, double start, double step);
/* out = src indexed along dim 0 by idx (a 1-D tensor of 0-based integral
** values): out[i] = src[idx[i]]. out must have shape (len(idx), src rest...). */
EG_API int eg_index_rows(eg_tensor *out, const eg_tensor *src, const eg_tensor *idx);

/* ---- joining ---- */
/* The shape of parts[0..n-1] joined along dim, into (*ndim, shape): n >= 1,
** every part non-empty (a storage) with the same number of dimensions (at
** least 1) and the same sizes except along dim. When a part does not fit,
** *bad (may be NULL) gets its 0-based position (-1 for other errors), so a
** caller can name it in its own words. */
EG_API int eg_cat_shape(int *ndim, int64_t *shape, const eg_tensor *const *parts, int n, int dim, int *bad);
/* out = parts[0..n-1] joined along dim. out must already have the joined
** shape (eg_cat_shape gives it; the caller chooses how out's storage is
** reused) and must not share storage with any part. */
EG_API int eg_cat(eg_tensor *out, const eg_tensor *const *parts, int n, int dim);

/* ---- element-wise ---- */
typedef enum {
  EG_ADD, EG_SUB, EG_MUL, EG_DIV, EG_POW, EG_MAXIMUM, EG_MINIMUM,
  EG_EQ, EG_NE, EG_LT, EG_LE, EG_GT, EG_GE /* comparisons give 1.0 / 0.0 masks */
} eg_binop;
typedef enum {
  EG_NEG, EG_EXP, EG_LOG, EG_SQRT, EG_ABS, EG_TANH, EG_SIGMOID, EG_RELU,
  EG_SQUARE, EG_SIGN, EG_FLOOR, EG_CEIL, EG_ROUND, EG_RECIP
} eg_unop;
EG_API const char *eg_binop_name(eg_binop op); /* "add", ... */
EG_API const char *eg_unop_name(eg_unop op);
/* The numpy broadcast of a's and b's shapes into (*ndim, shape). */
EG_API int eg_broadcast_shape(const eg_tensor *a, const eg_tensor *b, int *ndim, int64_t *shape);
/* out = a op b with numpy broadcasting; out must have the broadcast shape. */
EG_API int eg_binary(eg_tensor *out, const eg_tensor *a, const eg_tensor *b, eg_binop op);
/* out = a op s (or s op a when scalar_first); out has a's shape. */
EG_API int eg_binary_scalar(eg_tensor *out, const eg_tensor *a, float s, eg_binop op, int scalar_first);
EG_API int eg_unary(eg_tensor *out, const eg_tensor *a, eg_unop op);
EG_API int eg_clamp(eg_tensor *out, const eg_tensor *a, float lo, float hi);
/* y += alpha * x (same shape). */
EG_API int eg_axpy(eg_tensor *y, float alpha, const eg_tensor *x);

/* ---- linear algebra (cblas_sgemm) ---- */
/* out = alpha * op(a) * op(b) + beta * out, op(x) = x or its transpose
** (ta, tb). a, b and out are 2-D; operands whose layout BLAS cannot take
** directly are copied to contiguous scratch. */
EG_API int eg_mm(eg_tensor *out, const eg_tensor *a, const eg_tensor *b, int ta, int tb, float alpha, float beta);
/* Sum of a*b over all elements (same number of elements). */
EG_API int eg_dot(double *out, const eg_tensor *a, const eg_tensor *b);

/* ---- reductions ---- */
typedef enum { EG_SUM, EG_MEAN, EG_MAX, EG_MIN, EG_ARGMAX, EG_ARGMIN, EG_PROD, EG_NORM2 } eg_redop;
EG_API const char *eg_redop_name(eg_redop op);
/* Reduces a along dim into out, which must be contiguous with
** numel(a)/size(dim) elements (dim removed, or kept with size 1). For EG_MAX
** and EG_MIN, idx (may be NULL) receives the 0-based position of the first
** extreme; EG_ARGMAX/ARGMIN write positions into out. NaN wins max/min. */
EG_API int eg_reduce(eg_tensor *out, eg_tensor *idx, const eg_tensor *a, int dim, eg_redop op);
/* Reduces all elements; for ARGMAX/ARGMIN the flat row-major position. */
EG_API int eg_reduce_all(double *out, const eg_tensor *a, eg_redop op);
/* *out = the number of elements of a that are NaN or infinite (one pass over
** the bits; the learner checks every batch with it). */
EG_API int eg_count_nonfinite(int64_t *out, const eg_tensor *a);

#ifdef __cplusplus
}
#endif

#endif
