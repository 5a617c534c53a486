/*
** data.c — datasets as views over shared sample stores, their transforms and
** the batch iterator. The file readers are in data_io.c; datasets made from
** memory and the synthetic sets in data_make.c.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data_impl.h"


struct eg_batcher {
  eg_dataset *ds;
  int64_t *order;
  int64_t batch, pos, epoch, last;
  int shuffle, drop_last, flags, in_epoch;
  eg_rng rng;
};

static uint64_t mix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/* ------------------------------------------------------------- base, handle */

static void base_release(eg_database *b) {
  if (!b || --b->refs > 0) return;
  eg_free(b->tok8);
  eg_free(b->tok16);
  eg_free(b->starts);
  eg_free(b->u8);
  eg_free(b->f32);
  eg_free(b->labels);
  eg_free(b);
}

static void set_lut(eg_dataset *d) {
  for (int v = 0; v < 256; v++) d->lut[v] = (float)((double)v / 255.0 * d->scale + d->shift);
}

static int is_identity(const eg_dataset *d) { return d->scale == 1.0 && d->shift == 0.0; }

/* A new handle on base (retained) with no transforms. */
eg_dataset *eg__dataset_handle(eg_database *base, int ndim, const int64_t *shape, int nclasses) {
  eg_dataset *d = eg_calloc(1, sizeof *d);
  if (!d) return NULL;
  d->refs = 1;
  d->base = base;
  base->refs++;
  d->n = base->n;
  d->ndim = ndim;
  for (int i = 0; i < ndim; i++) d->shape[i] = shape[i];
  d->numel = base->numel;
  d->nclasses = nclasses;
  d->scale = 1.0;
  d->shift = 0.0;
  set_lut(d);
  return d;
}

/* A copy of d's view and transforms (not its index array, which callers set). */
static eg_dataset *handle_like(const eg_dataset *d, const char *op) {
  eg_dataset *c = eg_malloc(sizeof *c);
  if (!c) {
    nomem(op);
    return NULL;
  }
  *c = *d;
  c->refs = 1;
  c->idx = NULL;
  c->perm = NULL;
  if (d->perm) {
    c->perm = eg_malloc(sizeof(int64_t) * (size_t)d->numel);
    if (!c->perm) {
      eg_free(c);
      nomem(op);
      return NULL;
    }
    memcpy(c->perm, d->perm, sizeof(int64_t) * (size_t)d->numel);
  }
  c->base->refs++;
  return c;
}

void eg_dataset_retain(eg_dataset *ds) {
  if (ds) ds->refs++;
}

void eg_dataset_release(eg_dataset *ds) {
  if (!ds || --ds->refs > 0) return;
  base_release(ds->base);
  eg_free(ds->idx);
  eg_free(ds->perm);
  eg_free(ds);
}

int eg__dataset_wrap(eg_dataset **out, int64_t n, int ndim, const int64_t *shape, uint8_t *u8, float *f32,
                     int32_t *labels, int nclasses, const char *op) {
  int st = EG_OK;
  int64_t numel = 1;
  int32_t maxl = -1;
  *out = NULL;
  if (ndim < 1 || ndim > EG_MAXDIM - 1) {
    st = eg_seterr(EG_ESHAPE, "%s: samples have %d dimensions (1 to %d supported)", op, ndim, EG_MAXDIM - 1);
    goto fail;
  }
  for (int i = 0; i < ndim; i++) {
    if (shape[i] <= 0) {
      st = eg_seterr(EG_ESHAPE, "%s: sample dimension %d has size %lld", op, i + 1, (long long)shape[i]);
      goto fail;
    }
    numel *= shape[i]; /* callers have already bounded the total size */
  }
  for (int64_t i = 0; i < n; i++) {
    if (labels[i] < 0 || labels[i] >= MAX_LABEL) {
      st = eg_seterr(EG_EFORMAT, "%s: label %ld of sample %lld is not a class id in [0, 2^24)", op,
                     (long)labels[i], (long long)i);
      goto fail;
    }
    if (labels[i] > maxl) maxl = labels[i];
  }
  if (nclasses <= 0)
    nclasses = maxl + 1 > 0 ? maxl + 1 : 1;
  else if (maxl >= nclasses) {
    st = eg_seterr(EG_ERANGE, "%s: label %ld is not below the number of classes %d", op, (long)maxl, nclasses);
    goto fail;
  }
  eg_database *b = eg_calloc(1, sizeof *b);
  if (!b) {
    st = nomem(op);
    goto fail;
  }
  b->refs = 1;
  b->n = n;
  b->numel = numel;
  b->u8 = u8;
  b->f32 = f32;
  b->labels = labels;
  eg_dataset *d = eg__dataset_handle(b, ndim, shape, nclasses);
  base_release(b); /* the handle holds it now (or nobody, on failure) */
  if (!d) return nomem(op);
  *out = d;
  return EG_OK;
fail:
  eg_free(u8);
  eg_free(f32);
  eg_free(labels);
  return st;
}

/* ---------------------------------------------------------------- inspection */

int64_t eg_dataset_size(const eg_dataset *ds) { return ds->n; }
int eg_dataset_shape(const eg_dataset *ds, int64_t *shape) {
  for (int i = 0; i < ds->ndim; i++) shape[i] = ds->shape[i];
  return ds->ndim;
}
int64_t eg_dataset_sample_numel(const eg_dataset *ds) { return ds->numel; }
int eg_dataset_nclasses(const eg_dataset *ds) { return ds->nclasses; }
int eg_dataset_is_u8(const eg_dataset *ds) { return ds->base->u8 != NULL; }

int eg_dataset_levels(const eg_dataset *ds, float *levels, double *scale, double *offset) {
  if (!ds->base->u8 || ds->noise_std > 0) return 0;
  if (levels) memcpy(levels, ds->lut, sizeof ds->lut);
  if (scale) *scale = ds->scale / 255.0;
  if (offset) *offset = ds->shift;
  return 1;
}

int eg_dataset_label(const eg_dataset *ds, int64_t i) {
  return ds->base->labels ? ds->base->labels[base_pos(ds, i)] : -1;
}

void eg_dataset_class_counts(const eg_dataset *ds, int64_t *counts) {
  for (int c = 0; c < ds->nclasses; c++) counts[c] = 0;
  if (ds->base->window) {
    eg__window_counts(ds, counts);
    return;
  }
  for (int64_t i = 0; i < ds->n; i++) counts[ds->base->labels[base_pos(ds, i)]]++;
}

const char *eg_dataset_describe(const eg_dataset *ds, char *buf, size_t n) {
  char shp[128] = "";
  size_t k = 0;
  if (ds->base->window) return eg__window_describe(ds, buf, n);
  for (int i = 0; i < ds->ndim && k < sizeof shp; i++)
    k += (size_t)snprintf(shp + k, sizeof shp - k, "%s%lld", i ? "x" : "", (long long)ds->shape[i]);
  snprintf(buf, n, "Dataset(%lld samples, %s %s, %d classes%s%s%s)", (long long)ds->n, shp,
           ds->base->u8 ? "uint8" : "float32", ds->nclasses, ds->perm ? ", permuted" : "",
           is_identity(ds) ? "" : ", normalized", ds->noise_std > 0 ? ", noisy" : "");
  return buf;
}

/* ------------------------------------------------------- sample conversion */

/* The fixed pipeline (see data.h): stored value, permutation, affine, noise. */
static void fill_sample(const eg_dataset *ds, int64_t i, float *restrict out) {
  const int64_t b = base_pos(ds, i), m = ds->numel;
  const int64_t *restrict perm = ds->perm;
  if (ds->base->u8) {
    const uint8_t *restrict p = ds->base->u8 + b * m;
    const float *restrict lut = ds->lut;
    if (perm)
      for (int64_t j = 0; j < m; j++) out[j] = lut[p[perm[j]]];
    else
      for (int64_t j = 0; j < m; j++) out[j] = lut[p[j]];
  } else {
    const float *restrict p = ds->base->f32 + b * m;
    const float sc = (float)ds->scale, sh = (float)ds->shift;
    if (perm)
      for (int64_t j = 0; j < m; j++) out[j] = p[perm[j]] * sc + sh;
    else if (sc == 1.0f && sh == 0.0f)
      memcpy(out, p, sizeof(float) * (size_t)m);
    else
      for (int64_t j = 0; j < m; j++) out[j] = p[j] * sc + sh;
  }
  if (ds->noise_std > 0) {
    eg_rng r;
    eg_rng_seed(&r, ds->noise_seed ^ mix64((uint64_t)b));
    for (int64_t j = 0; j < m; j++) out[j] += (float)(ds->noise_std * eg_rng_normal(&r));
  }
}

static int prepare(const eg_dataset *ds, int64_t count, eg_tensor *x, eg_tensor *y, int flags, const char *op) {
  if (x == y) return eg_seterr(EG_EINVAL, "%s: x and y must be different tensors", op);
  int64_t sh[EG_MAXDIM];
  int nd;
  sh[0] = count;
  if (flags & EG_BATCH_FLAT) {
    sh[1] = ds->numel;
    nd = 2;
  } else {
    for (int i = 0; i < ds->ndim; i++) sh[i + 1] = ds->shape[i];
    nd = ds->ndim + 1;
  }
  int st = eg_tensor_resize_buffer(x, nd, sh);
  if (st) return st;
  sh[1] = ds->base->window; /* window datasets: y [count, T] */
  return eg_tensor_resize_buffer(y, ds->base->window ? 2 : 1, sh);
}

static void fill_rows(const eg_dataset *ds, const int64_t *pos, int64_t start, int64_t count, eg_tensor *x,
                      eg_tensor *y) {
  float *xd = eg_data(x), *yd = eg_data(y);
  for (int64_t k = 0; k < count; k++) {
    int64_t i = pos ? pos[k] : start + k;
    if (ds->base->window) {
      eg__window_fill(ds->base, base_pos(ds, i), xd + k * ds->numel, yd + k * ds->numel);
      continue;
    }
    fill_sample(ds, i, xd + k * ds->numel);
    yd[k] = (float)ds->base->labels[base_pos(ds, i)];
  }
}

int eg_dataset_gather(const eg_dataset *ds, const int64_t *idx, int64_t n, eg_tensor *x, eg_tensor *y, int flags) {
  if (n < 1) return eg_seterr(EG_EINVAL, "gather: %lld samples requested (at least 1)", (long long)n);
  for (int64_t k = 0; k < n; k++)
    if (idx[k] < 0 || idx[k] >= ds->n)
      return eg_seterr(EG_ERANGE, "gather: index %lld out of range for a dataset of %lld samples",
                       (long long)idx[k], (long long)ds->n);
  int st = prepare(ds, n, x, y, flags, "gather");
  if (st) return st;
  fill_rows(ds, idx, 0, n, x, y);
  return EG_OK;
}

int eg_dataset_range(const eg_dataset *ds, int64_t start, int64_t count, eg_tensor *x, eg_tensor *y, int flags) {
  if (count < 1 || start < 0 || start > ds->n - count)
    return eg_seterr(EG_ERANGE, "range: samples %lld..%lld out of range for a dataset of %lld samples",
                     (long long)start, (long long)(start + count - 1), (long long)ds->n);
  int st = prepare(ds, count, x, y, flags, "range");
  if (st) return st;
  fill_rows(ds, NULL, start, count, x, y);
  return EG_OK;
}

/* ---------------------------------------------------------------- subsets */

/* A handle like ds whose samples are ds's positions pos[0..n-1] (checked). */
static int subset_of(eg_dataset **out, const eg_dataset *ds, const int64_t *pos, int64_t n, const char *op) {
  *out = NULL;
  if (n < 0) return eg_seterr(EG_EINVAL, "%s: negative count %lld", op, (long long)n);
  for (int64_t k = 0; k < n; k++)
    if (pos[k] < 0 || pos[k] >= ds->n)
      return eg_seterr(EG_ERANGE, "%s: index %lld out of range for a dataset of %lld samples", op,
                       (long long)pos[k], (long long)ds->n);
  eg_dataset *c = handle_like(ds, op);
  if (!c) return EG_ENOMEM;
  c->idx = eg_malloc(sizeof(int64_t) * (size_t)(n ? n : 1));
  if (!c->idx) {
    eg_dataset_release(c);
    return nomem(op);
  }
  for (int64_t k = 0; k < n; k++) c->idx[k] = base_pos(ds, pos[k]);
  c->n = n;
  *out = c;
  return EG_OK;
}

int eg_dataset_subset(eg_dataset **out, const eg_dataset *ds, const int64_t *idx, int64_t n) {
  return subset_of(out, ds, idx, n, "subset");
}

/* Keeps the positions i where keep[i]; keep has ds->n entries. */
static int subset_mask(eg_dataset **out, const eg_dataset *ds, const unsigned char *keep, const char *op) {
  int64_t m = 0;
  for (int64_t i = 0; i < ds->n; i++) m += keep[i] != 0;
  int64_t *pos = eg_malloc(sizeof(int64_t) * (size_t)(m ? m : 1));
  if (!pos) return nomem(op);
  for (int64_t i = 0, k = 0; i < ds->n; i++)
    if (keep[i]) pos[k++] = i;
  int st = subset_of(out, ds, pos, m, op);
  eg_free(pos);
  return st;
}

int eg_dataset_subset_labels(eg_dataset **out, const eg_dataset *ds, const int *labels, int nl) {
  *out = NULL;
  if (ds->base->window) return eg__not_windows(ds, "subset by labels");
  unsigned char *want = eg_calloc((size_t)ds->nclasses, 1);
  if (!want) return nomem("subset");
  for (int k = 0; k < nl; k++) {
    if (labels[k] < 0 || labels[k] >= ds->nclasses) {
      eg_free(want);
      return eg_seterr(EG_ERANGE, "subset: label %d is not a class of this dataset (0..%d)", labels[k],
                       ds->nclasses - 1);
    }
    want[labels[k]] = 1;
  }
  unsigned char *keep = eg_malloc((size_t)(ds->n ? ds->n : 1));
  if (!keep) {
    eg_free(want);
    return nomem("subset");
  }
  for (int64_t i = 0; i < ds->n; i++) keep[i] = want[eg_dataset_label(ds, i)];
  int st = subset_mask(out, ds, keep, "subset");
  eg_free(keep);
  eg_free(want);
  return st;
}

int eg_dataset_subset_fractions(eg_dataset **out, const eg_dataset *ds, const double *frac, int nfrac,
                                uint64_t seed) {
  *out = NULL;
  if (ds->base->window) return eg__not_windows(ds, "subset by class fractions");
  for (int c = 0; c < nfrac; c++)
    if (!(frac[c] >= 0 && frac[c] <= 1))
      return eg_seterr(EG_EINVAL, "subset: fraction %g for class %d is not in [0, 1]", frac[c], c);
  int64_t n = ds->n;
  unsigned char *keep = eg_malloc((size_t)(n ? n : 1));
  int64_t *pos = eg_malloc(sizeof(int64_t) * (size_t)(n ? n : 1));
  if (!keep || !pos) {
    eg_free(keep);
    eg_free(pos);
    return nomem("subset");
  }
  memset(keep, 1, (size_t)n);
  eg_rng r;
  eg_rng_seed(&r, seed);
  for (int c = 0; c < nfrac && c < ds->nclasses; c++) {
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++)
      if (eg_dataset_label(ds, i) == c) pos[m++] = i;
    eg_rng_shuffle(&r, pos, m);
    int64_t k = (int64_t)llround(frac[c] * (double)m);
    for (int64_t j = k; j < m; j++) keep[pos[j]] = 0;
  }
  int st = subset_mask(out, ds, keep, "subset");
  eg_free(keep);
  eg_free(pos);
  return st;
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

int eg_dataset_split(eg_dataset **a, eg_dataset **b, const eg_dataset *ds, double fraction, uint64_t seed) {
  *a = *b = NULL;
  if (!(fraction >= 0 && fraction <= 1)) return eg_seterr(EG_EINVAL, "split: fraction %g is not in [0, 1]", fraction);
  int64_t n = ds->n, k = (int64_t)llround(fraction * (double)n);
  int64_t *pos = eg_malloc(sizeof(int64_t) * (size_t)(n ? n : 1));
  if (!pos) return nomem("split");
  for (int64_t i = 0; i < n; i++) pos[i] = i;
  eg_rng r;
  eg_rng_seed(&r, seed);
  eg_rng_shuffle(&r, pos, n);
  /* Each part in dataset order, so a split keeps the data's original order. */
  qsort(pos, (size_t)k, sizeof(int64_t), cmp_i64);
  qsort(pos + k, (size_t)(n - k), sizeof(int64_t), cmp_i64);
  int st = subset_of(a, ds, pos, k, "split");
  if (!st) st = subset_of(b, ds, pos + k, n - k, "split");
  if (st) {
    eg_dataset_release(*a);
    *a = NULL;
  }
  eg_free(pos);
  return st;
}

/* ------------------------------------------------------------ concatenation */

static int same_transforms(const eg_dataset *a, const eg_dataset *b) {
  if (a->scale != b->scale || a->shift != b->shift || a->noise_std != b->noise_std) return 0;
  if (a->noise_std > 0 && a->noise_seed != b->noise_seed) return 0;
  if (!a->perm != !b->perm) return 0;
  return !a->perm || memcmp(a->perm, b->perm, sizeof(int64_t) * (size_t)a->numel) == 0;
}

/* Copies stored values of sample i of d (permutation folded in) to out. */
static void raw_u8(const eg_dataset *d, int64_t i, uint8_t *out) {
  const uint8_t *p = d->base->u8 + base_pos(d, i) * d->numel;
  if (d->perm)
    for (int64_t j = 0; j < d->numel; j++) out[j] = p[d->perm[j]];
  else
    memcpy(out, p, (size_t)d->numel);
}

int eg_dataset_concat(eg_dataset **out, const eg_dataset *a, const eg_dataset *b) {
  *out = NULL;
  if (a->ndim != b->ndim || memcmp(a->shape, b->shape, sizeof(int64_t) * (size_t)a->ndim) != 0) {
    char sa[160], sb[160];
    return eg_seterr(EG_ESHAPE, "concat: sample shapes differ: %s vs %s", eg_dataset_describe(a, sa, sizeof sa),
                     eg_dataset_describe(b, sb, sizeof sb));
  }
  int64_t n = a->n + b->n, m = a->numel;
  int ncl = a->nclasses > b->nclasses ? a->nclasses : b->nclasses;
  if (!a->base->window != !b->base->window)
    return eg_seterr(EG_EINVAL, "concat: a text window dataset and a dataset of other samples");
  if (a->base != b->base && a->base->window) return eg__window_concat(out, a, b);
  if (a->base == b->base && same_transforms(a, b)) {
    eg_dataset *c = handle_like(a, "concat");
    if (!c) return EG_ENOMEM;
    c->idx = eg_malloc(sizeof(int64_t) * (size_t)(n ? n : 1));
    if (!c->idx) {
      eg_dataset_release(c);
      return nomem("concat");
    }
    for (int64_t i = 0; i < a->n; i++) c->idx[i] = base_pos(a, i);
    for (int64_t i = 0; i < b->n; i++) c->idx[a->n + i] = base_pos(b, i);
    c->n = n;
    c->nclasses = ncl;
    *out = c;
    return EG_OK;
  }
  size_t total;
  int st = eg_size_mul((size_t)n, (size_t)m, &total, "concat");
  if (st) return st;
  int as_u8 = a->base->u8 && b->base->u8 && is_identity(a) && is_identity(b) && a->noise_std == 0 &&
              b->noise_std == 0;
  int32_t *labels = eg_malloc(sizeof(int32_t) * (size_t)(n ? n : 1));
  uint8_t *u8 = NULL;
  float *f32 = NULL;
  if (as_u8)
    u8 = eg_malloc(total ? total : 1);
  else if (!eg_size_mul(total, sizeof(float), &total, "concat"))
    f32 = eg_malloc(total ? total : 1);
  if (!labels || (!u8 && !f32)) {
    eg_free(labels);
    eg_free(u8);
    eg_free(f32);
    return nomem("concat");
  }
  const eg_dataset *part[2] = {a, b};
  int64_t k = 0;
  for (int p = 0; p < 2; p++)
    for (int64_t i = 0; i < part[p]->n; i++, k++) {
      if (u8)
        raw_u8(part[p], i, u8 + k * m);
      else
        fill_sample(part[p], i, f32 + k * m);
      labels[k] = eg_dataset_label(part[p], i);
    }
  return eg__dataset_wrap(out, n, a->ndim, a->shape, u8, f32, labels, ncl, "concat");
}

/* --------------------------------------------------------------- transforms */

int eg_dataset_permuted(eg_dataset **out, const eg_dataset *ds, const int64_t *perm, uint64_t seed) {
  *out = NULL;
  if (ds->base->window) return eg__not_windows(ds, "permuted");
  int64_t m = ds->numel;
  int64_t *p = eg_malloc(sizeof(int64_t) * (size_t)m);
  unsigned char *seen = eg_calloc((size_t)m, 1);
  if (!p || !seen) {
    eg_free(p);
    eg_free(seen);
    return nomem("permuted");
  }
  if (perm) {
    for (int64_t j = 0; j < m; j++) {
      if (perm[j] < 0 || perm[j] >= m || seen[perm[j]]) {
        int st = eg_seterr(EG_EINVAL, "permuted: entry %lld (%lld) makes this not a permutation of 0..%lld",
                           (long long)j, (long long)perm[j], (long long)(m - 1));
        eg_free(p);
        eg_free(seen);
        return st;
      }
      seen[perm[j]] = 1;
      p[j] = perm[j];
    }
  } else {
    eg_rng r;
    eg_rng_seed(&r, seed);
    for (int64_t j = 0; j < m; j++) p[j] = j;
    eg_rng_shuffle(&r, p, m);
  }
  eg_free(seen);
  eg_dataset *c = handle_like(ds, "permuted");
  if (!c) {
    eg_free(p);
    return EG_ENOMEM;
  }
  if (ds->idx) {
    c->idx = eg_malloc(sizeof(int64_t) * (size_t)(ds->n ? ds->n : 1));
    if (!c->idx) {
      eg_free(p);
      eg_dataset_release(c);
      return nomem("permuted");
    }
    memcpy(c->idx, ds->idx, sizeof(int64_t) * (size_t)ds->n);
  }
  if (c->perm) /* out[j] = prev[p[j]] = x[old[p[j]]] */
    for (int64_t j = 0; j < m; j++) p[j] = c->perm[p[j]];
  eg_free(c->perm);
  c->perm = p;
  *out = c;
  return EG_OK;
}

int eg_dataset_permutation(const eg_dataset *ds, int64_t *perm) {
  if (!ds->perm) return 0;
  memcpy(perm, ds->perm, sizeof(int64_t) * (size_t)ds->numel);
  return 1;
}

/* A handle like ds with its own copy of the index array, for a transform to edit. */
static int derive(eg_dataset **out, const eg_dataset *ds, const char *op) {
  eg_dataset *c = handle_like(ds, op);
  if (!c) return EG_ENOMEM;
  if (!ds->idx) {
    *out = c;
    return EG_OK;
  }
  c->idx = eg_malloc(sizeof(int64_t) * (size_t)(ds->n ? ds->n : 1));
  if (!c->idx) {
    eg_dataset_release(c);
    return nomem(op);
  }
  memcpy(c->idx, ds->idx, sizeof(int64_t) * (size_t)ds->n);
  *out = c;
  return EG_OK;
}

int eg_dataset_normalized(eg_dataset **out, const eg_dataset *ds, double mean, double std) {
  *out = NULL;
  if (ds->base->window) return eg__not_windows(ds, "normalized");
  if (!isfinite(mean) || !isfinite(std) || !(std > 0))
    return eg_seterr(EG_EINVAL, "normalized: mean %g and standard deviation %g (must be finite, std > 0)", mean, std);
  eg_dataset *c;
  int st = derive(&c, ds, "normalized");
  if (st) return st;
  c->scale = ds->scale / std;
  c->shift = (ds->shift - mean) / std;
  c->noise_std = ds->noise_std / std;
  set_lut(c);
  *out = c;
  return EG_OK;
}

int eg_dataset_noisy(eg_dataset **out, const eg_dataset *ds, double std, uint64_t seed) {
  *out = NULL;
  if (ds->base->window) return eg__not_windows(ds, "noisy");
  if (!isfinite(std) || std < 0)
    return eg_seterr(EG_EINVAL, "noisy: standard deviation %g (must be finite and >= 0)", std);
  eg_dataset *c;
  int st = derive(&c, ds, "noisy");
  if (st) return st;
  if (ds->noise_std > 0) {
    c->noise_std = sqrt(ds->noise_std * ds->noise_std + std * std);
    c->noise_seed = mix64(ds->noise_seed ^ mix64(seed));
  } else {
    c->noise_std = std;
    c->noise_seed = mix64(seed);
  }
  *out = c;
  return EG_OK;
}

/* Bilinear taps of one output pixel: up to four source offsets within a plane. */
typedef struct {
  int64_t src[4];
  float w[4];
} taps;

int eg_dataset_rotated(eg_dataset **out, const eg_dataset *ds, double degrees) {
  *out = NULL;
  if (!isfinite(degrees)) return eg_seterr(EG_EINVAL, "rotated: angle %g is not finite", degrees);
  if (ds->ndim != 2 && ds->ndim != 3) {
    char s[160];
    return eg_seterr(EG_ESHAPE, "rotated: needs images (HxW or CxHxW samples), got %s",
                     eg_dataset_describe(ds, s, sizeof s));
  }
  int64_t H = ds->shape[ds->ndim - 2], W = ds->shape[ds->ndim - 1], P = H * W, C = ds->numel / P;
  int64_t n = ds->n, m = ds->numel;
  double th = degrees * 3.14159265358979323846 / 180.0, cs = cos(th), sn = sin(th);
  /* Multiples of 90 degrees then move pixels exactly. */
  if (fabs(cs) < 1e-12) cs = 0;
  if (fabs(sn) < 1e-12) sn = 0;
  size_t total;
  int st = eg_size_mul((size_t)(n ? n : 1), (size_t)m, &total, "rotated");
  if (st) return st;
  int u8 = ds->base->u8 != NULL;
  taps *tp = eg_malloc(sizeof(taps) * (size_t)P);
  float *plane = eg_malloc(sizeof(float) * (size_t)m);
  int32_t *labels = eg_malloc(sizeof(int32_t) * (size_t)(n ? n : 1));
  uint8_t *o8 = NULL;
  float *of = NULL;
  if (u8)
    o8 = eg_malloc(total);
  else if (!eg_size_mul(total, sizeof(float), &total, "rotated"))
    of = eg_malloc(total);
  if (!tp || !plane || !labels || (!o8 && !of)) {
    eg_free(tp);
    eg_free(plane);
    eg_free(labels);
    eg_free(o8);
    eg_free(of);
    return nomem("rotated");
  }
  double cx = (double)(W - 1) / 2, cy = (double)(H - 1) / 2;
  for (int64_t r = 0; r < H; r++)
    for (int64_t c = 0; c < W; c++) {
      /* Inverse map: where in the source does output (r, c) come from (y axis up). */
      double xo = (double)c - cx, yo = cy - (double)r;
      double xs = xo * cs + yo * sn, ys = -xo * sn + yo * cs;
      double sc = cx + xs, sr = cy - ys;
      double r0 = floor(sr), c0 = floor(sc), fr = sr - r0, fc = sc - c0;
      taps *t = &tp[r * W + c];
      double w[4] = {(1 - fr) * (1 - fc), (1 - fr) * fc, fr * (1 - fc), fr * fc};
      int64_t rr[4] = {(int64_t)r0, (int64_t)r0, (int64_t)r0 + 1, (int64_t)r0 + 1};
      int64_t cc[4] = {(int64_t)c0, (int64_t)c0 + 1, (int64_t)c0, (int64_t)c0 + 1};
      for (int k = 0; k < 4; k++) {
        int inside = rr[k] >= 0 && rr[k] < H && cc[k] >= 0 && cc[k] < W && w[k] != 0;
        t->src[k] = inside ? rr[k] * W + cc[k] : 0;
        t->w[k] = inside ? (float)w[k] : 0.0f;
      }
    }
  uint8_t *raw = u8 ? eg_malloc((size_t)m) : NULL;
  if (u8 && !raw) {
    eg_free(tp);
    eg_free(plane);
    eg_free(labels);
    eg_free(o8);
    return nomem("rotated");
  }
  for (int64_t i = 0; i < n; i++) {
    /* The stored values with the permutation folded in. */
    if (u8) {
      raw_u8(ds, i, raw);
      for (int64_t j = 0; j < m; j++) plane[j] = raw[j];
    } else {
      const float *p = ds->base->f32 + base_pos(ds, i) * m;
      for (int64_t j = 0; j < m; j++) plane[j] = ds->perm ? p[ds->perm[j]] : p[j];
    }
    for (int64_t ch = 0; ch < C; ch++) {
      const float *src = plane + ch * P;
      for (int64_t q = 0; q < P; q++) {
        const taps *t = &tp[q];
        float v = t->w[0] * src[t->src[0]] + t->w[1] * src[t->src[1]] + t->w[2] * src[t->src[2]] +
                  t->w[3] * src[t->src[3]];
        if (u8) {
          float rv = roundf(v);
          o8[i * m + ch * P + q] = (uint8_t)(rv < 0 ? 0 : rv > 255 ? 255 : rv);
        } else {
          of[i * m + ch * P + q] = v;
        }
      }
    }
    labels[i] = eg_dataset_label(ds, i);
  }
  eg_free(raw);
  eg_free(tp);
  eg_free(plane);
  eg_dataset *c;
  st = eg__dataset_wrap(&c, n, ds->ndim, ds->shape, o8, of, labels, ds->nclasses, "rotated");
  if (st) return st;
  /* Normalisation and noise still apply at batch time. */
  c->scale = ds->scale;
  c->shift = ds->shift;
  c->noise_std = ds->noise_std;
  c->noise_seed = ds->noise_seed;
  set_lut(c);
  *out = c;
  return EG_OK;
}

/* ---------------------------------------------------------------- batcher */

int eg_batcher_new(eg_batcher **out, eg_dataset *ds, int64_t batch, int shuffle, int drop_last, uint64_t seed,
                   int flags) {
  *out = NULL;
  if (batch < 1) return eg_seterr(EG_EINVAL, "batches: batch size %lld (must be >= 1)", (long long)batch);
  eg_batcher *b = eg_calloc(1, sizeof *b);
  if (!b) return nomem("batches");
  b->order = eg_malloc(sizeof(int64_t) * (size_t)(ds->n ? ds->n : 1));
  if (!b->order) {
    eg_free(b);
    return nomem("batches");
  }
  for (int64_t i = 0; i < ds->n; i++) b->order[i] = i;
  b->ds = ds;
  eg_dataset_retain(ds);
  b->batch = batch;
  b->shuffle = shuffle;
  b->drop_last = drop_last;
  b->flags = flags;
  eg_rng_seed(&b->rng, seed);
  *out = b;
  return EG_OK;
}

int eg_batcher_next(eg_batcher *b, eg_tensor *x, eg_tensor *y, int64_t *count) {
  int64_t n = b->ds->n;
  *count = 0;
  if (!b->in_epoch) {
    if (b->shuffle) {
      for (int64_t i = 0; i < n; i++) b->order[i] = i;
      eg_rng_shuffle(&b->rng, b->order, n);
    }
    b->pos = 0;
    b->last = 0;
    b->epoch++;
    b->in_epoch = 1;
  }
  int64_t left = n - b->pos;
  if (left == 0 || (b->drop_last && left < b->batch)) {
    b->in_epoch = 0;
    b->last = 0;
    return EG_OK;
  }
  int64_t c = left < b->batch ? left : b->batch;
  /* Size for a full batch first, so the last, smaller batch is a narrower view. */
  int st = EG_OK;
  int64_t full = b->batch < n ? b->batch : n, yw = b->ds->base->window ? b->ds->base->window : 1;
  if (c < full &&
      (!x->storage || x->storage->size < full * b->ds->numel || !y->storage || y->storage->size < full * yw)) {
    st = prepare(b->ds, full, x, y, b->flags, "batches");
    if (st) return st;
  }
  st = prepare(b->ds, c, x, y, b->flags, "batches");
  if (st) return st;
  fill_rows(b->ds, b->order + b->pos, 0, c, x, y);
  b->last = c;
  b->pos += c;
  *count = c;
  return EG_OK;
}

void eg_batcher_rewind(eg_batcher *b) {
  b->pos = 0;
  b->last = 0;
}

int64_t eg_batcher_nbatches(const eg_batcher *b) {
  int64_t n = b->ds->n;
  return b->drop_last ? n / b->batch : (n + b->batch - 1) / b->batch;
}

int64_t eg_batcher_epoch(const eg_batcher *b) { return b->epoch; }

const int64_t *eg_batcher_indices(const eg_batcher *b, int64_t *count) {
  *count = b->last;
  return b->order + b->pos - b->last;
}

void eg_batcher_free(eg_batcher *b) {
  if (!b) return;
  eg_dataset_release(b->ds);
  eg_free(b->order);
  eg_free(b);
}
