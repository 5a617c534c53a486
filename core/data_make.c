/*
** data_make.c — datasets made from memory (tensors, uint8 pixels) and the
** synthetic sets (Gaussian blobs, spirals). Each copies what it is given into
** a new sample store (eg__dataset_wrap); the file readers are in data_io.c.
*/
#include <math.h>
#include <string.h>

#include "data_impl.h"

/* ------------------------------------------------------------ from memory */

int eg_dataset_from_tensors(eg_dataset **out, const eg_tensor *x, const eg_tensor *y, int nclasses) {
  *out = NULL;
  if (!x->storage || !y->storage) return eg_seterr(EG_ESTATE, "dataset: empty tensor");
  if (x->ndim < 2 || y->ndim != 1 || y->shape[0] != x->shape[0]) {
    char a[64], b[64];
    return eg_seterr(EG_ESHAPE, "dataset: x %s must be [n, ...] and y %s must be [n]", eg_shape_str(x, a, sizeof a),
                     eg_shape_str(y, b, sizeof b));
  }
  int64_t n = x->shape[0], total = eg_numel(x);
  float *f = eg_malloc(sizeof(float) * (size_t)(total ? total : 1));
  int32_t *lab = eg_malloc(sizeof(int32_t) * (size_t)(n ? n : 1));
  if (!f || !lab) {
    eg_free(f);
    eg_free(lab);
    return nomem("dataset");
  }
  eg_tensor c = EG_TENSOR_INIT;
  int st = eg_contiguous(&c, x);
  if (st) {
    eg_free(f);
    eg_free(lab);
    return st;
  }
  memcpy(f, eg_data(&c), sizeof(float) * (size_t)total);
  eg_tensor_release(&c);
  for (int64_t i = 0; i < n; i++) {
    float v = eg_data(y)[i * y->stride[0]];
    if (!(v >= 0 && v < MAX_LABEL) || v != floorf(v)) {
      eg_free(f);
      eg_free(lab);
      return eg_seterr(EG_EINVAL, "dataset: label %g of sample %lld is not a class id", (double)v, (long long)i);
    }
    lab[i] = (int32_t)v;
  }
  return eg__dataset_wrap(out, n, x->ndim - 1, x->shape + 1, NULL, f, lab, nclasses, "dataset");
}

int eg_dataset_from_u8(eg_dataset **out, const uint8_t *pixels, const int32_t *labels, int64_t n, int ndim,
                       const int64_t *shape, int nclasses) {
  *out = NULL;
  if (n < 0) return eg_seterr(EG_EINVAL, "dataset: negative size %lld", (long long)n);
  size_t m = 1;
  for (int i = 0; i < ndim; i++)
    if (shape[i] <= 0 || eg_size_mul(m, (size_t)shape[i], &m, "dataset"))
      return eg_seterr(EG_ESHAPE, "dataset: bad sample size %lld in dimension %d", (long long)shape[i], i + 1);
  size_t total;
  int st = eg_size_mul(m, (size_t)n, &total, "dataset");
  if (st) return st;
  uint8_t *u = eg_malloc(total ? total : 1);
  int32_t *l = eg_malloc(sizeof(int32_t) * (size_t)(n ? n : 1));
  if (!u || !l) {
    eg_free(u);
    eg_free(l);
    return nomem("dataset");
  }
  memcpy(u, pixels, total);
  memcpy(l, labels, sizeof(int32_t) * (size_t)n);
  return eg__dataset_wrap(out, n, ndim, shape, u, NULL, l, nclasses, "dataset");
}

/* ----------------------------------------------------------- synthetic sets */

static int synth_alloc(int64_t n, int64_t dim, float **f, int32_t **lab, const char *op) {
  size_t total;
  int st = eg_size_mul((size_t)n, (size_t)dim, &total, op);
  if (st) return st;
  if (total > ((size_t)1 << 34)) return eg_seterr(EG_ENOMEM, "%s: %zu values is too many", op, total);
  *f = eg_malloc(sizeof(float) * (total ? total : 1));
  *lab = eg_malloc(sizeof(int32_t) * (size_t)(n ? n : 1));
  if (!*f || !*lab) {
    eg_free(*f);
    eg_free(*lab);
    return nomem(op);
  }
  return EG_OK;
}

int eg_dataset_blobs(eg_dataset **out, int64_t n, int classes, int64_t dim, double std, uint64_t seed) {
  *out = NULL;
  if (n < 1 || classes < 1 || classes >= MAX_LABEL || dim < 1 || !isfinite(std) || std < 0)
    return eg_seterr(EG_EINVAL, "blobs: bad n=%lld, classes=%d, dim=%lld or std=%g", (long long)n, classes,
                     (long long)dim, std);
  float *f, *centre;
  int32_t *lab;
  int st = synth_alloc(n, dim, &f, &lab, "blobs");
  if (st) return st;
  centre = eg_malloc(sizeof(float) * (size_t)classes * (size_t)dim);
  if (!centre) {
    eg_free(f);
    eg_free(lab);
    return nomem("blobs");
  }
  eg_rng r;
  eg_rng_seed(&r, seed);
  for (int64_t k = 0; k < (int64_t)classes * dim; k++) centre[k] = (float)(8.0 * eg_rng_uniform(&r) - 4.0);
  for (int64_t i = 0; i < n; i++) {
    int c = (int)(i % classes);
    lab[i] = c;
    for (int64_t j = 0; j < dim; j++) f[i * dim + j] = centre[c * dim + j] + (float)(std * eg_rng_normal(&r));
  }
  eg_free(centre);
  int64_t shape[1] = {dim};
  return eg__dataset_wrap(out, n, 1, shape, NULL, f, lab, classes, "blobs");
}

int eg_dataset_spirals(eg_dataset **out, int64_t n, int classes, double turns, double noise, uint64_t seed) {
  *out = NULL;
  if (n < 1 || classes < 1 || classes >= MAX_LABEL || !isfinite(turns) || !(turns > 0) || !isfinite(noise) ||
      noise < 0)
    return eg_seterr(EG_EINVAL, "spirals: bad n=%lld, classes=%d, turns=%g or noise=%g", (long long)n, classes,
                     turns, noise);
  float *f;
  int32_t *lab;
  int st = synth_alloc(n, 2, &f, &lab, "spirals");
  if (st) return st;
  eg_rng r;
  eg_rng_seed(&r, seed);
  const double two_pi = 6.28318530717958647692;
  int64_t per = (n + classes - 1) / classes;
  for (int64_t i = 0; i < n; i++) {
    int c = (int)(i % classes);
    int64_t k = i / classes; /* position along the arm */
    double t = per > 1 ? (double)k / (double)(per - 1) : 0.0;
    double rad = t, ang = two_pi * turns * t + two_pi * c / classes;
    lab[i] = c;
    f[2 * i] = (float)(rad * cos(ang) + noise * eg_rng_normal(&r));
    f[2 * i + 1] = (float)(rad * sin(ang) + noise * eg_rng_normal(&r));
  }
  int64_t shape[1] = {2};
  return eg__dataset_wrap(out, n, 1, shape, NULL, f, lab, classes, "spirals");
}
