/*
** data_text.c — window datasets over a token stream (text.h): building them
** with a held-out split by position, and what data.c asks of them (filling
** a batch row, class counts, description, concatenation).
*/
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "data_impl.h"
#include "text.h"

static inline int64_t tok_at(const eg_database *b, int64_t i) { return b->tok8 ? b->tok8[i] : b->tok16[i]; }

void eg__window_fill(const eg_database *b, int64_t bpos, float *x, float *y) {
  const int64_t s = b->starts[bpos], T = b->window;
  if (b->tok8) {
    const uint8_t *restrict p = b->tok8 + s;
    for (int64_t j = 0; j < T; j++) x[j] = (float)p[j];
    for (int64_t j = 0; j < T; j++) y[j] = (float)p[j + 1];
  } else {
    const uint16_t *restrict p = b->tok16 + s;
    for (int64_t j = 0; j < T; j++) x[j] = (float)p[j];
    for (int64_t j = 0; j < T; j++) y[j] = (float)p[j + 1];
  }
}

void eg__window_counts(const eg_dataset *ds, int64_t *counts) {
  const eg_database *b = ds->base;
  for (int64_t i = 0; i < ds->n; i++) {
    int64_t s = b->starts[base_pos(ds, i)];
    for (int64_t j = 1; j <= b->window; j++) counts[tok_at(b, s + j)]++;
  }
}

const char *eg__window_describe(const eg_dataset *ds, char *buf, size_t n) {
  snprintf(buf, n, "Dataset(%lld windows of %lld tokens, vocabulary %d, %s stream of %lld tokens)", (long long)ds->n,
           (long long)ds->base->window, ds->nclasses, ds->base->tok8 ? "uint8" : "uint16", (long long)ds->base->ntok);
  return buf;
}

int eg__not_windows(const eg_dataset *ds, const char *op) {
  char s[200];
  return eg_seterr(EG_EINVAL, "%s: not defined for a text window dataset (%s)", op,
                   eg__window_describe(ds, s, sizeof s));
}

int64_t eg_dataset_window(const eg_dataset *ds) { return ds->base->window; }
int64_t eg_dataset_stream_tokens(const eg_dataset *ds) { return ds->base->ntok; }

/* A base holding a copy of tokens (as uint8 when vocab <= 256) and the
** starts (taken over, even on failure). */
static int make_base(eg_database **out, const int32_t *tokens, int64_t ntok, int64_t vocab, int64_t T,
                     int64_t *starts, int64_t n, const char *op) {
  *out = NULL;
  eg_database *b = eg_calloc(1, sizeof *b);
  if (!b) {
    eg_free(starts);
    return nomem(op);
  }
  b->refs = 1;
  b->n = n;
  b->numel = T;
  b->window = T;
  b->ntok = ntok;
  b->starts = starts;
  size_t m = (size_t)(ntok ? ntok : 1);
  if (vocab <= 256) {
    b->tok8 = eg_malloc(m);
    if (b->tok8)
      for (int64_t i = 0; i < ntok; i++) b->tok8[i] = (uint8_t)tokens[i];
  } else {
    b->tok16 = eg_malloc(m * sizeof(uint16_t));
    if (b->tok16)
      for (int64_t i = 0; i < ntok; i++) b->tok16[i] = (uint16_t)tokens[i];
  }
  if (!b->tok8 && !b->tok16) {
    eg_free(starts);
    eg_free(b);
    return nomem(op);
  }
  *out = b;
  return EG_OK;
}

static void base_free(eg_database *b) {
  if (!b || --b->refs > 0) return;
  eg_free(b->tok8);
  eg_free(b->tok16);
  eg_free(b->starts);
  eg_free(b);
}

/* Appends the starts of windows inside the part [lo, hi) of the stream. */
static int64_t cut(int64_t *starts, int64_t k, int64_t lo, int64_t hi, int64_t T, int64_t stride) {
  for (int64_t s = lo; s + T + 1 <= hi; s += stride) starts[k++] = s;
  return k;
}

int eg_dataset_windows(eg_dataset **train, eg_dataset **held, const int32_t *tokens, int64_t ntok, int64_t vocab,
                       int64_t T, int64_t stride, double holdout, int64_t block) {
  const char *op = "windows";
  *train = *held = NULL;
  if (vocab < 1 || vocab > EG_TEXT_MAX_VOCAB)
    return eg_seterr(EG_EINVAL, "%s: vocabulary size %lld (1 to %d supported)", op, (long long)vocab,
                     EG_TEXT_MAX_VOCAB);
  if (T < 1 || T > (1 << 24)) return eg_seterr(EG_EINVAL, "%s: window length %lld (1 to 2^24)", op, (long long)T);
  if (stride < 1) return eg_seterr(EG_EINVAL, "%s: stride %lld (must be >= 1)", op, (long long)stride);
  if (ntok < 0) return eg_seterr(EG_EINVAL, "%s: negative token count", op);
  if (!(holdout >= 0 && holdout < 1)) return eg_seterr(EG_EINVAL, "%s: holdout %g is not in [0, 1)", op, holdout);
  for (int64_t i = 0; i < ntok; i++)
    if (tokens[i] < 0 || tokens[i] >= vocab)
      return eg_seterr(EG_ERANGE, "%s: token %ld at position %lld is not an id below the vocabulary size %lld", op,
                       (long)tokens[i], (long long)i, (long long)vocab);
  if (block <= 0 || block > ntok) block = ntok;
  /* At most one window per stride in each part: ntok / stride + one per part. */
  int64_t nblocks = block > 0 ? (ntok + block - 1) / block : 0;
  size_t cap = (size_t)(ntok / stride + 2 * nblocks + 1);
  int64_t *starts = eg_malloc(sizeof(int64_t) * cap);
  if (!starts) return nomem(op);
  int64_t ntrain = 0;
  for (int64_t lo = 0; lo < ntok; lo += block) {
    int64_t hi = lo + block < ntok ? lo + block : ntok;
    int64_t h = (int64_t)llround(holdout * (double)(hi - lo));
    ntrain = cut(starts, ntrain, lo, hi - h, T, stride);
  }
  int64_t n = ntrain;
  for (int64_t lo = 0; lo < ntok; lo += block) {
    int64_t hi = lo + block < ntok ? lo + block : ntok;
    int64_t h = (int64_t)llround(holdout * (double)(hi - lo));
    n = cut(starts, n, hi - h, hi, T, stride);
  }
  eg_database *b;
  int st = make_base(&b, tokens, ntok, vocab, T, starts, n, op);
  if (st) return st;
  int64_t shape[1] = {T};
  eg_dataset *all = eg__dataset_handle(b, 1, shape, (int)vocab);
  base_free(b); /* the handle holds it now */
  if (!all) return nomem(op);
  int64_t *idx = eg_malloc(sizeof(int64_t) * (size_t)(n ? n : 1));
  if (!idx) {
    eg_dataset_release(all);
    return nomem(op);
  }
  for (int64_t i = 0; i < n; i++) idx[i] = i;
  st = eg_dataset_subset(train, all, idx, ntrain);
  if (!st) st = eg_dataset_subset(held, all, idx + ntrain, n - ntrain);
  if (st) {
    eg_dataset_release(*train);
    *train = NULL;
  }
  eg_free(idx);
  eg_dataset_release(all);
  return st;
}

/* The windows of a then b copied into a new stream of back-to-back windows
** of T + 1 tokens each (a and b have different streams). */
int eg__window_concat(eg_dataset **out, const eg_dataset *a, const eg_dataset *b) {
  const char *op = "concat";
  *out = NULL;
  int64_t T = a->base->window;
  if (b->base->window != T)
    return eg_seterr(EG_ESHAPE, "%s: windows of %lld and %lld tokens", op, (long long)T, (long long)b->base->window);
  int64_t n = a->n + b->n, vocab = a->nclasses > b->nclasses ? a->nclasses : b->nclasses;
  size_t total;
  int st = eg_size_mul((size_t)n, (size_t)(T + 1), &total, op);
  if (st) return st;
  int32_t *tok = eg_malloc(sizeof(int32_t) * (total ? total : 1));
  int64_t *starts = eg_malloc(sizeof(int64_t) * (size_t)(n ? n : 1));
  if (!tok || !starts) {
    eg_free(tok);
    eg_free(starts);
    return nomem(op);
  }
  const eg_dataset *part[2] = {a, b};
  int64_t k = 0;
  for (int p = 0; p < 2; p++)
    for (int64_t i = 0; i < part[p]->n; i++, k++) {
      const eg_database *pb = part[p]->base;
      int64_t s = pb->starts[base_pos(part[p], i)];
      for (int64_t j = 0; j <= T; j++) tok[k * (T + 1) + j] = (int32_t)tok_at(pb, s + j);
      starts[k] = k * (T + 1);
    }
  eg_database *nb;
  st = make_base(&nb, tok, (int64_t)total, vocab, T, starts, n, op);
  eg_free(tok);
  if (st) return st;
  int64_t shape[1] = {T};
  *out = eg__dataset_handle(nb, 1, shape, (int)vocab);
  base_free(nb);
  return *out ? EG_OK : nomem(op);
}
