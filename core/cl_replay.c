/*
** cl_replay.c — the replay memory (reservoir, class-balanced and score
** insertion; total or per-class capacity; float or uint8 storage; weighted
** sampling) and gradient projection for replay (A-GEM, Chaudhry et al.
** 2019): one pass of dot products over every group, one axpy per group when
** the gradient conflicts with the reference gradient of a memory batch.
** See cl.h.
*/
#include "cl.h"
#include "base_impl.h"
#include "cl_impl.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Class ids above this are refused when the memory counts classes
** (balanced or score insertion, per-class capacity): it keeps per-class
** counters, indexed by class id. */
#define EG_MEMORY_MAX_CLASS ((int64_t)1 << 20)
#define EG_MAX_EXACT_INT ((int64_t)1 << 24)

/* ---- replay memory ---- */

struct eg_memory {
  int64_t cap, dim, kdim, size, seen, per_class;
  int policy, u8, counting;       /* counting: per-class counters kept (held, cseen) */
  float levels[256], lo, inv;     /* uint8 mode: x = levels[q]; lo = levels[0], inv 1 / their mean spacing */
  eg_storage *xs;                 /* float mode: [cap,D] */
  uint8_t *xq, *scratch;          /* uint8 mode: [cap,D] codes; one row being quantised */
  eg_storage *ys, *ls, *ts, *ws;  /* [cap], [cap,K] or NULL, [cap], [cap] weights */
  float *sc;                      /* score mode: [cap] scores */
  uint64_t *key;                  /* score mode: [cap] random tie-breaks */
  int64_t *perm;                  /* a permutation of 0..size-1, for sampling without replacement */
  double *cum;                    /* weighted sampling: cumulative weights [cap], valid when cum_ok */
  int cum_ok;
  int64_t nonunit;                /* stored samples whose weight is not 1 */
  int64_t min_slot;               /* score mode, total capacity: the lowest-ranked slot, or -1 (unknown) */
  int64_t nclass, classes;        /* counters allocated for ids < nclass; classes seen */
  int64_t *held, *cseen;          /* per class: samples held, samples seen */
};

static size_t x_bytes(const eg_memory *m) { return m->u8 ? 1 : sizeof(float); }

/* Grows (or first allocates) every per-slot buffer to cap slots, keeping the
** first size rows. Views from eg_memory_views keep the old storages. */
static int resize(eg_memory *m, int64_t cap, const char *op) {
  size_t nx, nl;
  int st;
  if ((st = eg_size_mul((size_t)cap, (size_t)m->dim * x_bytes(m), &nx, op)) ||
      (st = eg_size_mul((size_t)cap, (size_t)(m->kdim ? m->kdim : 1), &nl, op)))
    return st;
  eg_storage *xs = m->u8 ? NULL : eg_storage_new(cap * m->dim);
  uint8_t *xq = m->u8 ? eg_malloc(nx ? nx : 1) : NULL;
  eg_storage *ys = eg_storage_new(cap), *ts = eg_storage_new(cap), *ws = eg_storage_new(cap);
  eg_storage *ls = m->kdim ? eg_storage_new((int64_t)nl) : NULL;
  int64_t *perm = eg_realloc(m->perm, sizeof(int64_t) * (size_t)cap);
  if (perm) m->perm = perm;
  float *sc = NULL;
  uint64_t *key = NULL;
  int scored = m->policy == EG_MEMORY_SCORE;
  if (scored) {
    sc = eg_realloc(m->sc, sizeof(float) * (size_t)cap);
    if (sc) m->sc = sc;
    key = eg_realloc(m->key, sizeof(uint64_t) * (size_t)cap);
    if (key) m->key = key;
  }
  double *cum = NULL;
  if (m->cum) {
    cum = eg_realloc(m->cum, sizeof(double) * (size_t)cap);
    if (cum) m->cum = cum;
  }
  if ((m->u8 ? !xq : !xs) || !ys || !ts || !ws || (m->kdim && !ls) || !perm || (scored && (!sc || !key)) ||
      (m->cum && !cum)) {
    eg_storage_release(xs), eg_free(xq), eg_storage_release(ys), eg_storage_release(ts);
    eg_storage_release(ws), eg_storage_release(ls);
    return eg_seterr(EG_ENOMEM, "%s: out of memory for %lld samples of width %lld", op, (long long)cap,
                     (long long)m->dim);
  }
  int64_t n = m->size;
  if (n > 0) {
    if (m->u8) memcpy(xq, m->xq, (size_t)(n * m->dim));
    else memcpy(xs->data, m->xs->data, sizeof(float) * (size_t)(n * m->dim));
    memcpy(ys->data, m->ys->data, sizeof(float) * (size_t)n);
    memcpy(ts->data, m->ts->data, sizeof(float) * (size_t)n);
    memcpy(ws->data, m->ws->data, sizeof(float) * (size_t)n);
    if (ls) memcpy(ls->data, m->ls->data, sizeof(float) * (size_t)(n * m->kdim));
  }
  eg_storage_release(m->xs), eg_free(m->xq), eg_storage_release(m->ys), eg_storage_release(m->ts);
  eg_storage_release(m->ws), eg_storage_release(m->ls);
  m->xs = xs, m->xq = xq, m->ys = ys, m->ts = ts, m->ws = ws, m->ls = ls;
  m->cap = cap;
  return EG_OK;
}

int eg_memory_create(eg_memory **out, const eg_memory_config *c) {
  static const char op[] = "memory";
  *out = NULL;
  if (!c) return eg_seterr(EG_EINVAL, "%s: no configuration given", op);
  if (c->per_class < 0) return eg_seterr(EG_EINVAL, "%s: per-class capacity %lld is negative", op, (long long)c->per_class);
  if (c->per_class == 0 && c->capacity < 1)
    return eg_seterr(EG_EINVAL, "%s: capacity %lld must be >= 1 (or give a per-class capacity)", op,
                     (long long)c->capacity);
  if (c->per_class > 0 && c->capacity != 0)
    return eg_seterr(EG_EINVAL, "%s: give a total capacity or a per-class one, not both", op);
  if (c->dim < 1) return eg_seterr(EG_EINVAL, "%s: sample width %lld must be >= 1", op, (long long)c->dim);
  if (c->logits_dim < 0) return eg_seterr(EG_EINVAL, "%s: logits width %lld is negative", op, (long long)c->logits_dim);
  if (c->policy < EG_MEMORY_RESERVOIR || c->policy > EG_MEMORY_SCORE)
    return eg_seterr(EG_EINVAL, "%s: unknown insertion policy %d", op, c->policy);
  if (c->levels)
    for (int q = 0; q < 256; q++)
      if (!isfinite(c->levels[q]) || (q > 0 && !(c->levels[q] > c->levels[q - 1])))
        return eg_seterr(EG_EINVAL, "%s: uint8 levels must be finite and strictly increasing (level %d is %g)", op, q,
                         (double)c->levels[q]);
  eg_memory *m = eg_calloc(1, sizeof *m);
  if (!m) return eg_seterr(EG_ENOMEM, "%s: out of memory", op);
  m->dim = c->dim;
  m->kdim = c->logits_dim;
  m->per_class = c->per_class;
  m->policy = c->policy;
  m->counting = c->policy != EG_MEMORY_RESERVOIR || c->per_class > 0;
  m->min_slot = -1;
  if (c->levels) {
    m->u8 = 1;
    memcpy(m->levels, c->levels, sizeof m->levels);
    m->lo = c->levels[0];
    m->inv = 255.0f / (c->levels[255] - c->levels[0]);
  }
  int st = resize(m, c->per_class > 0 ? c->per_class : c->capacity, op);
  if (!st && m->u8 && !(m->scratch = eg_malloc((size_t)m->dim)))
    st = eg_seterr(EG_ENOMEM, "%s: out of memory", op);
  if (st) {
    eg_memory_free(m);
    return st;
  }
  *out = m;
  return EG_OK;
}

int eg_memory_new(eg_memory **out, int64_t capacity, int64_t dim, int64_t logits_dim, int balanced) {
  eg_memory_config c = {capacity, 0, dim, logits_dim, balanced ? EG_MEMORY_BALANCED : EG_MEMORY_RESERVOIR, NULL};
  return eg_memory_create(out, &c);
}

void eg_memory_free(eg_memory *m) {
  if (!m) return;
  eg_storage_release(m->xs);
  eg_free(m->xq);
  eg_free(m->scratch);
  eg_storage_release(m->ys);
  eg_storage_release(m->ls);
  eg_storage_release(m->ts);
  eg_storage_release(m->ws);
  eg_free(m->sc);
  eg_free(m->key);
  eg_free(m->perm);
  eg_free(m->cum);
  eg_free(m->held);
  eg_free(m->cseen);
  eg_free(m);
}

int64_t eg_memory_size(const eg_memory *m) { return m->size; }
int64_t eg_memory_capacity(const eg_memory *m) { return m->cap; }
int64_t eg_memory_seen(const eg_memory *m) { return m->seen; }
int64_t eg_memory_dim(const eg_memory *m) { return m->dim; }
int64_t eg_memory_logits_dim(const eg_memory *m) { return m->kdim; }
int eg_memory_balanced(const eg_memory *m) { return m->policy == EG_MEMORY_BALANCED; }
int eg_memory_policy(const eg_memory *m) { return m->policy; }
int64_t eg_memory_per_class(const eg_memory *m) { return m->per_class; }
int64_t eg_memory_classes(const eg_memory *m) { return m->classes; }
int eg_memory_uint8(const eg_memory *m, float *levels) {
  if (m->u8 && levels) memcpy(levels, m->levels, sizeof m->levels);
  return m->u8;
}
int eg_memory_weighted(const eg_memory *m) { return m->nonunit > 0; }

size_t eg_memory_bytes(const eg_memory *m) {
  size_t cap = (size_t)m->cap;
  size_t b = cap * ((size_t)m->dim * x_bytes(m) + sizeof(float) * (size_t)(m->kdim + 3) + sizeof(int64_t));
  if (m->policy == EG_MEMORY_SCORE) b += cap * (sizeof(float) + sizeof(uint64_t));
  if (m->cum) b += cap * sizeof(double);
  return b + 2 * sizeof(int64_t) * (size_t)m->nclass + sizeof *m;
}

void eg_memory_clear(eg_memory *m) {
  m->size = m->seen = m->nonunit = m->classes = 0;
  m->cum_ok = 0;
  m->min_slot = -1;
  if (m->held) memset(m->held, 0, sizeof(int64_t) * (size_t)m->nclass);
  if (m->cseen) memset(m->cseen, 0, sizeof(int64_t) * (size_t)m->nclass);
}

/* Grows the per-class counters to cover class ids < n (only when a new class appears). */
static int grow_classes(eg_memory *m, int64_t n) {
  if (n <= m->nclass) return EG_OK;
  int64_t nn = m->nclass ? m->nclass : 16;
  while (nn < n) nn *= 2;
  int64_t *h = eg_realloc(m->held, sizeof(int64_t) * (size_t)nn);
  if (!h) return eg_seterr(EG_ENOMEM, "memory: out of memory for class counters");
  m->held = h;
  int64_t *s = eg_realloc(m->cseen, sizeof(int64_t) * (size_t)nn);
  if (!s) return eg_seterr(EG_ENOMEM, "memory: out of memory for class counters");
  m->cseen = s;
  memset(h + m->nclass, 0, sizeof(int64_t) * (size_t)(nn - m->nclass));
  memset(s + m->nclass, 0, sizeof(int64_t) * (size_t)(nn - m->nclass));
  m->nclass = nn;
  return EG_OK;
}

/* The uint8 code of v (levels[q] == v exactly), or -1 when v is no level. */
static int code_of(const eg_memory *m, float v) {
  const float *L = m->levels;
  float g = (v - m->lo) * m->inv;
  if (g > -1.0f && g < 256.0f) { /* the guess, then its neighbours (rounding in the spacing) */
    int q = (int)(g + 0.5f);
    for (int d = 0; d <= 1; d++) {
      if (q - d >= 0 && q - d <= 255 && L[q - d] == v) return q - d;
      if (q + d >= 0 && q + d <= 255 && L[q + d] == v) return q + d;
    }
  }
  int a = 0, b = 255; /* levels not evenly spaced: binary search */
  while (a <= b) {
    int mid = (a + b) / 2;
    if (L[mid] == v) return mid;
    if (L[mid] < v) a = mid + 1;
    else b = mid - 1;
  }
  return -1;
}

/* EG_EINVAL naming a value that is no level, its sample and element. */
static int bad_code(float v, int64_t sample, int64_t element, const char *op, const char *tail) {
  return eg_seterr(EG_EINVAL,
                   "%s: value %.9g (sample %lld, element %lld) is not one of this uint8 memory's 256 levels "
                   "(store such data as float)%s",
                   op, (double)v, (long long)sample, (long long)element, tail);
}

/* EG_EINVAL naming the first value of rows [n, D] that is no level. A
** branch-free first pass over blocks (the guess hits for evenly spaced
** levels); code_of only for the blocks where some guess missed. */
static int check_codes(const eg_memory *m, const float *x, int64_t n, const char *op) {
  const float *L = m->levels, lo = m->lo, inv = m->inv;
  int64_t total = n * m->dim;
  for (int64_t i0 = 0; i0 < total; i0 += 256) {
    int64_t i1 = total - i0 < 256 ? total : i0 + 256;
    int miss = 0;
    for (int64_t i = i0; i < i1; i++) {
      float g = (x[i] - lo) * inv + 0.5f;
      g = g > 0.0f ? g : 0.0f; /* NaN goes to 0, then misses */
      g = g < 255.0f ? g : 255.0f;
      miss |= L[(int)g] != x[i];
    }
    if (!miss) continue;
    for (int64_t i = i0; i < i1; i++)
      if (code_of(m, x[i]) < 0) return bad_code(x[i], i / m->dim, i % m->dim, op, "");
  }
  return EG_OK;
}

typedef struct {
  const float *x, *lg;
  float y, task, w, score;
  uint64_t key;
  int64_t index; /* in its batch, for messages */
} offer;

/* Stores o in slot. In uint8 storage only the samples stored are
** quantised (EG_EINVAL, the slot untouched, when a value is no level).
** memmove: eg_memory_load may be handed views of this memory's own storage. */
static int put(eg_memory *m, int64_t slot, const offer *o) {
  if (m->u8) {
    uint8_t *q = m->scratch;
    for (int64_t j = 0; j < m->dim; j++) {
      int c = code_of(m, o->x[j]);
      if (c < 0) return bad_code(o->x[j], o->index, j, "memory_add", "; the samples before it were offered");
      q[j] = (uint8_t)c;
    }
    memcpy(m->xq + slot * m->dim, q, (size_t)m->dim);
  } else {
    memmove(m->xs->data + slot * m->dim, o->x, sizeof(float) * (size_t)m->dim);
  }
  float *w = m->ws->data;
  if (slot < m->size) {
    if (m->counting) m->held[(int64_t)m->ys->data[slot]]--;
    if (w[slot] != 1.0f) m->nonunit--;
  }
  if (m->counting) m->held[(int64_t)o->y]++;
  if (o->w != 1.0f) m->nonunit++;
  w[slot] = o->w;
  m->ys->data[slot] = o->y;
  m->ts->data[slot] = o->task;
  if (m->kdim) memmove(m->ls->data + slot * m->kdim, o->lg, sizeof(float) * (size_t)m->kdim);
  if (m->policy == EG_MEMORY_SCORE) m->sc[slot] = o->score, m->key[slot] = o->key;
  m->cum_ok = 0;
  m->min_slot = -1;
  return EG_OK;
}

static int append(eg_memory *m, const offer *o) {
  int st = put(m, m->size, o);
  if (st) return st;
  m->perm[m->size] = m->size;
  m->size++;
  return EG_OK;
}

/* A uniformly random slot holding class c (rejection: c is a largest class,
** so it holds at least size/C slots and this takes about C draws). */
static int64_t random_slot_of(eg_memory *m, int64_t c, eg_rng *rng) {
  for (;;) {
    int64_t s = (int64_t)eg_rng_below(rng, (uint64_t)m->size);
    if ((int64_t)m->ys->data[s] == c) return s;
  }
}

static int offer_balanced(eg_memory *m, const offer *o, eg_rng *rng) {
  int64_t c = (int64_t)o->y;
  if (m->size < m->cap) return append(m, o);
  int64_t mx = 0, nmax = 0;
  for (int64_t k = 0; k < m->nclass; k++) {
    if (m->held[k] > mx) mx = m->held[k], nmax = 1;
    else if (m->held[k] == mx && mx > 0) nmax++;
  }
  if (m->held[c] < mx) {
    /* Evict from one of the largest classes, chosen uniformly. */
    int64_t pick = (int64_t)eg_rng_below(rng, (uint64_t)nmax), victim = -1;
    for (int64_t k = 0; k < m->nclass; k++)
      if (m->held[k] == mx && pick-- == 0) {
        victim = k;
        break;
      }
    return put(m, random_slot_of(m, victim, rng), o);
  }
  if (eg_rng_uniform(rng) * (double)m->cseen[c] < (double)m->held[c]) return put(m, random_slot_of(m, c, rng), o);
  return EG_OK;
}

/* Slot a ranks below slot b (a lower score, or an equal one and a lower tie-break). */
static int below(const eg_memory *m, int64_t a, int64_t b) {
  return m->sc[a] < m->sc[b] || (m->sc[a] == m->sc[b] && m->key[a] < m->key[b]);
}

/* The lowest-ranked slot, among those of class c when c >= 0. */
static int64_t lowest(const eg_memory *m, int64_t c) {
  int64_t best = -1;
  for (int64_t s = 0; s < m->size; s++)
    if ((c < 0 || (int64_t)m->ys->data[s] == c) && (best < 0 || below(m, s, best))) best = s;
  return best;
}

/* Keeps the highest scores: in all (total capacity) or per class. */
static int offer_score(eg_memory *m, const offer *o) {
  int64_t c = (int64_t)o->y, victim;
  if (m->per_class ? m->held[c] < m->per_class : m->size < m->cap) return append(m, o);
  if (m->per_class) {
    victim = lowest(m, c);
  } else {
    if (m->min_slot < 0) m->min_slot = lowest(m, -1);
    victim = m->min_slot;
  }
  if (o->score > m->sc[victim] || (o->score == m->sc[victim] && o->key > m->key[victim])) return put(m, victim, o);
  return EG_OK;
}

static int rows_of(const eg_tensor *t, int64_t width, const char *op, const char *what, int64_t *rows) {
  int st = eg_cl_check_vec(t, -1, op, what);
  if (st) return st;
  if (t->ndim < 1 || eg_numel(t) != t->shape[0] * width) {
    char s[96];
    return eg_seterr(EG_ESHAPE, "%s: %s %s does not have rows of width %lld", op, what, eg_shape_str(t, s, sizeof s),
                     (long long)width);
  }
  *rows = t->shape[0];
  return EG_OK;
}

/* n weights, finite and >= 0 (the first that is not named). */
static int check_weights(const eg_tensor *weights, int64_t n, const char *op) {
  int st = eg_cl_check_vec(weights, n, op, "weights");
  if (st) return st;
  const float *w = eg_data(weights);
  for (int64_t i = 0; i < n; i++)
    if (!(w[i] >= 0) || !isfinite(w[i]))
      return eg_seterr(EG_EINVAL, "%s: weight %g (sample %lld) must be finite and >= 0", op, (double)w[i],
                       (long long)i);
  return EG_OK;
}

/* Checks what comes with n samples: labels, logits, weights, scores and
** task ids (tensor, or the constant task when NULL); *maxc the largest label. */
static int check_batch(const eg_memory *m, int64_t n, const eg_tensor *y, const eg_tensor *logits,
                       const eg_tensor *weights, const eg_tensor *scores, const eg_tensor *task, const char *op,
                       int64_t *maxc) {
  int64_t r;
  int st;
  if ((st = eg_cl_check_vec(y, n, op, "labels"))) return st;
  if (m->kdim) {
    if (!logits) return eg_seterr(EG_EINVAL, "%s: this memory stores %lld logits per sample; give them", op,
                                  (long long)m->kdim);
    if ((st = rows_of(logits, m->kdim, op, "logits", &r))) return st;
    if (r != n) return eg_seterr(EG_ESHAPE, "%s: %lld rows of logits for %lld samples", op, (long long)r, (long long)n);
  } else if (logits) {
    return eg_seterr(EG_EINVAL, "%s: this memory stores no logits (created with logits width 0)", op);
  }
  if (weights && (st = check_weights(weights, n, op))) return st;
  if (m->policy == EG_MEMORY_SCORE && !scores)
    return eg_seterr(EG_EINVAL, "%s: this memory keeps the highest scores; give each sample's score", op);
  if (scores) {
    if (m->policy != EG_MEMORY_SCORE)
      return eg_seterr(EG_EINVAL, "%s: scores given to a memory that does not insert by score", op);
    if ((st = eg_cl_check_vec(scores, n, op, "scores"))) return st;
    const float *s = eg_data(scores);
    for (int64_t i = 0; i < n; i++)
      if (s[i] != s[i]) return eg_seterr(EG_EINVAL, "%s: score of sample %lld is NaN", op, (long long)i);
  }
  if (task && (st = eg_cl_check_vec(task, n, op, "task ids"))) return st;
  const float *yy = eg_data(y), *tt = task ? eg_data(task) : NULL;
  int64_t top = m->counting ? EG_MEMORY_MAX_CLASS : EG_MAX_EXACT_INT;
  *maxc = -1;
  for (int64_t i = 0; i < n; i++) {
    float v = yy[i], t = tt ? tt[i] : 0.0f;
    if (!(v == floorf(v)) || v < 0 || v >= (float)top)
      return eg_seterr(EG_ERANGE, "%s: label %g (sample %lld) is not a class id in [0, %lld)", op, v, (long long)i,
                       (long long)top);
    if (!(t == floorf(t)) || t < 0 || t >= (float)EG_MAX_EXACT_INT)
      return eg_seterr(EG_ERANGE, "%s: task id %g (sample %lld) is not an integer >= 0", op, t, (long long)i);
    if ((int64_t)v > *maxc) *maxc = (int64_t)v;
  }
  return EG_OK;
}

/* Counts the classes of labels y [n] not seen before (without marking them)
** and grows a per-class memory's capacity to per_class x classes then seen. */
static int make_room(eg_memory *m, const float *y, int64_t n, int64_t maxc, const char *op) {
  if (!m->counting) return EG_OK;
  int st = grow_classes(m, maxc + 1);
  if (st || !m->per_class) return st;
  int64_t fresh = 0;
  for (int64_t i = 0; i < n; i++) {
    int64_t c = (int64_t)y[i];
    if (m->cseen[c] == 0) fresh++, m->cseen[c] = -1; /* marked; restored below */
  }
  for (int64_t i = 0; i < n; i++)
    if (m->cseen[(int64_t)y[i]] < 0) m->cseen[(int64_t)y[i]] = 0;
  int64_t need = m->per_class * (m->classes + fresh);
  if (need > m->cap && (st = resize(m, need, op))) return st;
  return EG_OK;
}

static void count_seen(eg_memory *m, int64_t c) {
  if (!m->counting) return;
  if (m->cseen[c]++ == 0) m->classes++;
}

int eg_memory_add(eg_memory *m, const eg_tensor *x, const eg_tensor *y, const eg_tensor *logits,
                  const eg_tensor *weights, const eg_tensor *scores, int64_t task, eg_rng *rng) {
  static const char op[] = "memory_add";
  int64_t B, maxc;
  int st = rows_of(x, m->dim, op, "samples", &B);
  if (st || (st = check_batch(m, B, y, logits, weights, scores, NULL, op, &maxc))) return st;
  if (task < 0 || task >= EG_MAX_EXACT_INT)
    return eg_seterr(EG_ERANGE, "%s: task id %lld out of range [0, 2^24)", op, (long long)task);
  const float *xx = eg_data(x), *yy = eg_data(y);
  if ((st = make_room(m, yy, B, maxc, op))) return st;
  const float *lg = logits ? eg_data(logits) : NULL, *ww = weights ? eg_data(weights) : NULL;
  const float *ss = scores ? eg_data(scores) : NULL;
  for (int64_t i = 0; i < B; i++) {
    offer o = {xx + i * m->dim, lg ? lg + i * m->kdim : NULL, yy[i], (float)task, ww ? ww[i] : 1.0f,
               ss ? ss[i] : 0.0f, 0, i};
    m->seen++;
    count_seen(m, (int64_t)yy[i]);
    if (m->policy == EG_MEMORY_SCORE) {
      o.key = eg_rng_u64(rng);
      st = offer_score(m, &o);
    } else if (m->policy == EG_MEMORY_BALANCED) {
      st = offer_balanced(m, &o, rng);
    } else if (m->size < m->cap) {
      st = append(m, &o);
    } else {
      /* Algorithm R: the n-th sample replaces a random slot with probability M/n. */
      int64_t j = (int64_t)eg_rng_below(rng, (uint64_t)m->seen);
      if (j < m->cap) st = put(m, j, &o);
    }
    if (st) { /* this sample was not offered after all */
      m->seen--;
      if (m->counting && --m->cseen[(int64_t)yy[i]] == 0) m->classes--;
      return st;
    }
  }
  return EG_OK;
}

int eg_memory_add_batch(eg_memory *m, const eg_tensor *x, const eg_tensor *y, const eg_tensor *logits,
                        int64_t task, eg_rng *rng) {
  return eg_memory_add(m, x, y, logits, NULL, NULL, task, rng);
}

/* Stored row s into out (dequantised in uint8 mode). */
static void read_row(const eg_memory *m, int64_t s, float *out) {
  if (m->u8) {
    const uint8_t *q = m->xq + s * m->dim;
    for (int64_t j = 0; j < m->dim; j++) out[j] = m->levels[q[j]];
  } else {
    memcpy(out, m->xs->data + s * m->dim, sizeof(float) * (size_t)m->dim);
  }
}

/* The cumulative weights, rebuilt after any change (O(size), no allocation once warm). */
static int cumulate(eg_memory *m, const char *op) {
  if (!m->cum) {
    m->cum = eg_malloc(sizeof(double) * (size_t)m->cap);
    if (!m->cum) return eg_seterr(EG_ENOMEM, "%s: out of memory for the weights' table", op);
  }
  if (m->cum_ok) return EG_OK;
  double s = 0;
  const float *w = m->ws->data;
  for (int64_t i = 0; i < m->size; i++) m->cum[i] = s += w[i];
  if (!(s > 0)) return eg_seterr(EG_ESTATE, "%s: every stored sample has weight 0", op);
  m->cum_ok = 1;
  return EG_OK;
}

/* The first slot whose cumulative weight exceeds u (binary search). */
static int64_t weighted_slot(const eg_memory *m, double u) {
  int64_t a = 0, b = m->size - 1;
  while (a < b) {
    int64_t mid = a + (b - a) / 2;
    if (m->cum[mid] > u) b = mid;
    else a = mid + 1;
  }
  return a;
}

int eg_memory_sample(eg_memory *m, eg_tensor *x_out, eg_tensor *y_out, eg_tensor *logits_out, eg_tensor *task_out,
                     eg_rng *rng) {
  static const char op[] = "memory_sample";
  int64_t k, r;
  int st = rows_of(x_out, m->dim, op, "sample buffer", &k);
  if (st) return st;
  if ((st = eg_cl_check_vec(y_out, k, op, "label buffer"))) return st;
  if (logits_out) {
    if (!m->kdim) return eg_seterr(EG_EINVAL, "%s: this memory stores no logits", op);
    if ((st = rows_of(logits_out, m->kdim, op, "logits buffer", &r))) return st;
    if (r != k) return eg_seterr(EG_ESHAPE, "%s: logits buffer has %lld rows, expected %lld", op, (long long)r, (long long)k);
  }
  if (task_out && (st = eg_cl_check_vec(task_out, k, op, "task buffer"))) return st;
  if (m->size == 0) return eg_seterr(EG_ESTATE, "%s: the memory is empty", op);
  int weighted = m->nonunit > 0;
  if (weighted && (st = cumulate(m, op))) return st;
  float *xo = eg_data(x_out), *yo = eg_data(y_out);
  float *lo = logits_out ? eg_data(logits_out) : NULL, *to = task_out ? eg_data(task_out) : NULL;
  int without = k <= m->size;
  double total = weighted ? m->cum[m->size - 1] : 0;
  for (int64_t i = 0; i < k; i++) {
    int64_t s;
    if (weighted) {
      /* in proportion to the weights, with replacement */
      s = weighted_slot(m, eg_rng_uniform(rng) * total);
    } else if (without) {
      /* Partial Fisher-Yates over a persistent permutation: any starting
      ** order gives a uniform draw, so it is never reset. */
      int64_t j = i + (int64_t)eg_rng_below(rng, (uint64_t)(m->size - i)), tmp = m->perm[i];
      m->perm[i] = m->perm[j];
      m->perm[j] = tmp;
      s = m->perm[i];
    } else {
      s = (int64_t)eg_rng_below(rng, (uint64_t)m->size);
    }
    read_row(m, s, xo + i * m->dim);
    yo[i] = m->ys->data[s];
    if (lo) memcpy(lo + i * m->kdim, m->ls->data + s * m->kdim, sizeof(float) * (size_t)m->kdim);
    if (to) to[i] = m->ts->data[s];
  }
  return EG_OK;
}

int eg_memory_views(const eg_memory *m, eg_tensor *x, eg_tensor *y, eg_tensor *logits, eg_tensor *task) {
  int64_t sx[2] = {m->size, m->dim}, sl[2] = {m->size, m->kdim}, s1[1] = {m->size};
  int st;
  if (x && m->u8)
    return eg_seterr(EG_ESTATE, "memory_views: this memory stores uint8 codes; read its samples with eg_memory_read");
  if (x && (st = eg_tensor_from_storage(x, m->xs, 0, 2, sx, NULL))) return st;
  if (y && (st = eg_tensor_from_storage(y, m->ys, 0, 1, s1, NULL))) return st;
  if (logits && m->kdim && (st = eg_tensor_from_storage(logits, m->ls, 0, 2, sl, NULL))) return st;
  if (task && (st = eg_tensor_from_storage(task, m->ts, 0, 1, s1, NULL))) return st;
  return EG_OK;
}

int eg_memory_weights(const eg_memory *m, eg_tensor *w) {
  int64_t s1[1] = {m->size};
  return eg_tensor_from_storage(w, m->ws, 0, 1, s1, NULL);
}

int eg_memory_read(const eg_memory *m, eg_tensor *x, eg_tensor *codes) {
  static const char op[] = "memory_read";
  int64_t n;
  int st;
  if (x) {
    if ((st = rows_of(x, m->dim, op, "sample buffer", &n))) return st;
    if (n != m->size)
      return eg_seterr(EG_ESHAPE, "%s: sample buffer has %lld rows for %lld samples", op, (long long)n,
                       (long long)m->size);
    for (int64_t s = 0; s < n; s++) read_row(m, s, eg_data(x) + s * m->dim);
  }
  if (codes) {
    if (!m->u8) return eg_seterr(EG_ESTATE, "%s: this memory stores floats, not uint8 codes", op);
    if ((st = rows_of(codes, m->dim, op, "code buffer", &n))) return st;
    if (n != m->size)
      return eg_seterr(EG_ESHAPE, "%s: code buffer has %lld rows for %lld samples", op, (long long)n,
                       (long long)m->size);
    float *c = eg_data(codes);
    for (int64_t i = 0; i < n * m->dim; i++) c[i] = (float)m->xq[i];
  }
  return EG_OK;
}

int eg_memory_read_state(const eg_memory *m, eg_tensor *scores, eg_tensor *order) {
  static const char op[] = "memory_state";
  int st;
  if (scores) {
    if (m->policy != EG_MEMORY_SCORE) return eg_seterr(EG_ESTATE, "%s: this memory keeps no scores", op);
    if ((st = eg_cl_check_vec(scores, m->size, op, "score buffer"))) return st;
    memcpy(eg_data(scores), m->sc, sizeof(float) * (size_t)m->size);
  }
  if (order) {
    if ((st = eg_cl_check_vec(order, m->size, op, "order buffer"))) return st;
    for (int64_t i = 0; i < m->size; i++) eg_data(order)[i] = (float)m->perm[i];
  }
  return EG_OK;
}

int eg_memory_set_order(eg_memory *m, const eg_tensor *order) {
  static const char op[] = "memory_set_order";
  int st = eg_cl_check_vec(order, m->size, op, "order");
  if (st) return st;
  const float *o = eg_data(order);
  /* a permutation of 0..size-1: each slot once (perm marks the slots seen while checking) */
  for (int64_t i = 0; i < m->size; i++) m->perm[i] = 0;
  for (int64_t i = 0; i < m->size; i++) {
    float v = o[i];
    if (!(v == floorf(v)) || v < 0 || v >= (float)m->size || m->perm[(int64_t)v]) {
      for (int64_t j = 0; j < m->size; j++) m->perm[j] = j;
      return eg_seterr(EG_EINVAL, "%s: %g (position %lld) makes the order no permutation of 0..%lld", op, (double)v,
                       (long long)i, (long long)m->size - 1);
    }
    m->perm[(int64_t)v] = 1;
  }
  for (int64_t i = 0; i < m->size; i++) m->perm[i] = (int64_t)o[i];
  return EG_OK;
}

int eg_memory_set_weights(eg_memory *m, const eg_tensor *w) {
  int st = check_weights(w, m->size, "memory_set_weights");
  if (st) return st;
  const float *v = eg_data(w);
  m->nonunit = 0;
  for (int64_t i = 0; i < m->size; i++) {
    m->ws->data[i] = v[i];
    if (v[i] != 1.0f) m->nonunit++;
  }
  m->cum_ok = 0;
  return EG_OK;
}

int eg_memory_restore(eg_memory *m, const eg_tensor *x, const eg_tensor *y, const eg_tensor *logits,
                      const eg_tensor *task, const eg_tensor *weights, const eg_tensor *scores, int64_t seen) {
  static const char op[] = "memory_load";
  int64_t n, maxc;
  int st = rows_of(x, m->dim, op, "samples", &n);
  if (st) return st;
  if (n > m->cap && !m->per_class)
    return eg_seterr(EG_ESHAPE, "%s: %lld samples for a capacity of %lld", op, (long long)n, (long long)m->cap);
  if ((st = check_batch(m, n, y, logits, weights, m->policy == EG_MEMORY_SCORE ? scores : NULL, task, op, &maxc)))
    return st;
  if (scores && m->policy != EG_MEMORY_SCORE)
    return eg_seterr(EG_EINVAL, "%s: scores given to a memory that does not insert by score", op);
  if (seen < n) return eg_seterr(EG_EINVAL, "%s: seen %lld is below the %lld samples", op, (long long)seen, (long long)n);
  const float *xx = eg_data(x), *yy = eg_data(y), *tt = task ? eg_data(task) : NULL;
  if (m->u8 && (st = check_codes(m, xx, n, op))) return st;
  if (m->counting && (st = grow_classes(m, maxc + 1))) return st;
  if (m->per_class) {
    /* the classes loaded, and room for per_class of each (at least n) */
    int64_t classes = 0, need;
    for (int64_t c = 0; c < m->nclass; c++) m->cseen[c] = 0;
    for (int64_t i = 0; i < n; i++)
      if (m->cseen[(int64_t)yy[i]]++ == 0) classes++;
    need = m->per_class * classes > n ? m->per_class * classes : n;
    if (need > m->cap && (st = resize(m, need, op))) return st;
  }
  /* a view of this memory's own storage stays valid: put() uses memmove,
  ** and the rows move only towards lower or equal slots */
  eg_memory_clear(m);
  const float *lg = logits ? eg_data(logits) : NULL, *ww = weights ? eg_data(weights) : NULL;
  const float *ss = scores ? eg_data(scores) : NULL;
  for (int64_t i = 0; i < n; i++) {
    offer o = {xx + i * m->dim, lg ? lg + i * m->kdim : NULL, yy[i], tt ? tt[i] : 0.0f, ww ? ww[i] : 1.0f,
               ss ? ss[i] : 0.0f, (uint64_t)i, i};
    append(m, &o); /* cannot fail: the values were checked above */
  }
  m->seen = seen;
  if (m->counting)
    for (int64_t c = 0; c < m->nclass; c++) {
      if (m->held[c]) m->classes++;
      /* per-class seen counts are not stored: estimated as held*seen/n */
      m->cseen[c] = m->held[c] && n > 0 ? (int64_t)((double)m->held[c] * (double)seen / (double)n) : 0;
    }
  return EG_OK;
}

int eg_memory_load(eg_memory *m, const eg_tensor *x, const eg_tensor *y, const eg_tensor *logits,
                   const eg_tensor *task, int64_t seen) {
  return eg_memory_restore(m, x, y, logits, task, NULL, NULL, seen);
}

int eg_on_levels(const eg_tensor *x, const float *levels, int *all) {
  static const char op[] = "on_levels";
  *all = 0;
  int st = eg_cl_check_vec(x, -1, op, "samples");
  if (st) return st;
  eg_memory m;
  memset(&m, 0, sizeof m);
  for (int q = 0; q < 256; q++)
    if (!isfinite(levels[q]) || (q > 0 && !(levels[q] > levels[q - 1])))
      return eg_seterr(EG_EINVAL, "%s: levels must be finite and strictly increasing (level %d is %g)", op, q,
                       (double)levels[q]);
  memcpy(m.levels, levels, sizeof m.levels);
  m.lo = levels[0];
  m.inv = 255.0f / (levels[255] - levels[0]);
  const float *v = eg_data(x);
  for (int64_t i = 0; i < eg_numel(x); i++)
    if (code_of(&m, v[i]) < 0) return EG_OK;
  *all = 1;
  return EG_OK;
}

int eg_sample_losses(eg_tensor *out, const eg_tensor *logits, const eg_tensor *labels) {
  static const char op[] = "sample_losses";
  int st = eg_cl_check_vec(logits, -1, op, "logits");
  if (st) return st;
  if (logits->ndim != 2) return eg_seterr(EG_ESHAPE, "%s: logits must be [B, C]", op);
  int64_t B = logits->shape[0], C = logits->shape[1];
  if ((st = eg_cl_check_vec(labels, B, op, "labels")) || (st = eg_cl_check_vec(out, B, op, "output"))) return st;
  const float *z = eg_data(logits), *y = eg_data(labels);
  float *o = eg_data(out);
  for (int64_t i = 0; i < B; i++) {
    float c = y[i];
    if (!(c == floorf(c)) || c < 0 || c >= (float)C)
      return eg_seterr(EG_ERANGE, "%s: label %g (sample %lld) is not a class id in [0, %lld)", op, (double)c,
                       (long long)i, (long long)C);
  }
  for (int64_t i = 0; i < B; i++) {
    const float *r = z + i * C;
    float mx = r[0];
    for (int64_t j = 1; j < C; j++) mx = r[j] > mx ? r[j] : mx;
    double s = 0;
    for (int64_t j = 0; j < C; j++) s += exp((double)r[j] - mx);
    o[i] = (float)(log(s) + mx - r[(int64_t)y[i]]);
  }
  return EG_OK;
}

/* ---- gradient projection (A-GEM) ---- */

int eg_agem_project(eg_tensor *const *g, const eg_tensor *const *ref, int ngroups, double *dot_out,
                    int *projected) {
  static const char op[] = "agem_project";
  if (projected) *projected = 0;
  if (dot_out) *dot_out = 0;
  if (ngroups < 1 || !g || !ref) return eg_seterr(EG_EINVAL, "%s: no parameter group given", op);
  double gr = 0, rr = 0;
  for (int k = 0; k < ngroups; k++) {
    int st = eg_cl_check_vec(g[k], -1, op, "gradient");
    if (st || (st = eg_cl_check_vec(ref[k], eg_numel(g[k]), op, "reference gradient")))
    {
      char msg[256];
      snprintf(msg, sizeof msg, "%s", eg_errmsg());
      return eg_seterr(st, "%s (group %d)", msg, k + 1);
    }
    const float *a = eg_data(g[k]), *r = eg_data(ref[k]);
    int64_t n = eg_numel(g[k]);
    /* sums in double, flushed from float lanes every 4096 elements so the
    ** inner loop vectorises */
    for (int64_t i0 = 0; i0 < n; i0 += 4096) {
      int64_t i1 = i0 + 4096 < n ? i0 + 4096 : n;
      float sgr = 0, srr = 0;
      for (int64_t i = i0; i < i1; i++) {
        sgr += a[i] * r[i];
        srr += r[i] * r[i];
      }
      gr += sgr;
      rr += srr;
    }
  }
  if (!isfinite(gr) || !isfinite(rr))
    return eg_seterr(EG_EINVAL, "%s: the gradients are not finite (g.g_ref = %g, g_ref.g_ref = %g)", op, gr, rr);
  if (dot_out) *dot_out = gr;
  if (gr >= 0 || rr <= 0) return EG_OK;
  float c = (float)(gr / rr);
  for (int k = 0; k < ngroups; k++) {
    float *restrict a = eg_data(g[k]);
    const float *restrict r = eg_data(ref[k]);
    int64_t n = eg_numel(g[k]);
    for (int64_t i = 0; i < n; i++) a[i] -= c * r[i];
  }
  if (projected) *projected = 1;
  return EG_OK;
}
