/*
** rng.c — xoshiro256** (Blackman & Vigna) seeded by splitmix64, and the BLAS
** thread setting.
*/
#include "rng.h"

#include <cblas.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

void eg_rng_seed(eg_rng *r, uint64_t seed) {
  uint64_t x = seed;
  for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
  r->has_spare = 0;
  r->spare = 0;
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t eg_rng_u64(eg_rng *r) {
  uint64_t *s = r->s;
  uint64_t result = rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

double eg_rng_uniform(eg_rng *r) { return (double)(eg_rng_u64(r) >> 11) * 0x1.0p-53; }

/* Marsaglia's polar method: only +, *, log and sqrt, so results do not depend
** on how a libm computes sin/cos. */
double eg_rng_normal(eg_rng *r) {
  if (r->has_spare) {
    r->has_spare = 0;
    return r->spare;
  }
  double u, v, s;
  do {
    u = 2.0 * eg_rng_uniform(r) - 1.0;
    v = 2.0 * eg_rng_uniform(r) - 1.0;
    s = u * u + v * v;
  } while (s >= 1.0 || s == 0.0);
  double f = sqrt(-2.0 * log(s) / s);
  r->spare = v * f;
  r->has_spare = 1;
  return u * f;
}

uint64_t eg_rng_below(eg_rng *r, uint64_t n) {
  if (n <= 1) return 0;
  /* Rejection sampling on the top of the range: unbiased. */
  uint64_t lim = UINT64_MAX - UINT64_MAX % n;
  uint64_t x;
  do x = eg_rng_u64(r);
  while (x >= lim);
  return x % n;
}

void eg_rng_shuffle(eg_rng *r, int64_t *a, int64_t n) {
  for (int64_t i = n - 1; i > 0; i--) {
    int64_t j = (int64_t)eg_rng_below(r, (uint64_t)i + 1);
    int64_t t = a[i];
    a[i] = a[j];
    a[j] = t;
  }
}

int eg_randperm(eg_tensor *t, eg_rng *r) {
  if (!t || !t->storage) return eg_seterr(EG_ESTATE, "randperm: empty or released tensor");
  char b[96];
  if (t->ndim != 1)
    return eg_seterr(EG_ESHAPE, "randperm: expected a 1-D tensor, got %s", eg_shape_str(t, b, sizeof b));
  int64_t n = t->shape[0], s = t->stride[0];
  if (n > ((int64_t)1 << 24))
    return eg_seterr(EG_EINVAL, "randperm: size %lld is above 2^24, where float indices stop being exact", (long long)n);
  if (s == 0 && n > 1)
    return eg_seterr(EG_EINVAL, "randperm: cannot write into expanded tensor %s (its elements share memory)",
                     eg_shape_str(t, b, sizeof b));
  float *p = eg_data(t);
  for (int64_t i = 0; i < n; i++) p[i * s] = (float)i;
  for (int64_t i = n - 1; i > 0; i--) { /* eg_rng_shuffle's draws, on floats */
    int64_t j = (int64_t)eg_rng_below(r, (uint64_t)i + 1);
    float v = p[i * s];
    p[i * s] = p[j * s];
    p[j * s] = v;
  }
  return EG_OK;
}

/* Calls f for every element of t in row-major order. */
#define FILL_EACH(t, expr)                                               \
  do {                                                                   \
    int64_t ix[EG_MAXDIM] = {0}, n_ = eg_numel(t);                       \
    float *base = eg_data(t);                                            \
    for (int64_t k_ = 0; k_ < n_; k_++) {                                \
      base[eg_offset_of(t, ix)] = (expr);                                \
      for (int d = (t)->ndim - 1; d >= 0; d--) {                         \
        if (++ix[d] < (t)->shape[d]) break;                              \
        ix[d] = 0;                                                       \
      }                                                                  \
    }                                                                    \
  } while (0)

int eg_fill_uniform(eg_tensor *t, eg_rng *r, float lo, float hi) {
  if (!t->storage) return eg_seterr(EG_ESTATE, "rand: empty tensor");
  if (!(lo <= hi) || !isfinite(lo) || !isfinite(hi))
    return eg_seterr(EG_EINVAL, "rand: bad range [%g, %g)", (double)lo, (double)hi);
  double w = (double)hi - lo;
  FILL_EACH(t, (float)(lo + w * eg_rng_uniform(r)));
  return EG_OK;
}

int eg_fill_normal(eg_tensor *t, eg_rng *r, float mean, float std) {
  if (!t->storage) return eg_seterr(EG_ESTATE, "randn: empty tensor");
  if (!isfinite(mean) || !isfinite(std) || std < 0)
    return eg_seterr(EG_EINVAL, "randn: bad mean %g or standard deviation %g", (double)mean, (double)std);
  FILL_EACH(t, (float)(mean + std * eg_rng_normal(r)));
  return EG_OK;
}

int eg_fill_bernoulli_scaled(eg_tensor *t, eg_rng *r, float keep) {
  if (!t->storage) return eg_seterr(EG_ESTATE, "dropout: empty tensor");
  if (!(keep > 0 && keep <= 1)) return eg_seterr(EG_EINVAL, "dropout: keep probability %g not in (0, 1]", (double)keep);
  float scale = 1.0f / keep;
  FILL_EACH(t, eg_rng_uniform(r) < keep ? scale : 0.0f);
  return EG_OK;
}

#define STATE_TAG "xoshiro256ss"

void eg_rng_get_state(const eg_rng *r, char buf[EG_RNG_STATE_LEN]) {
  uint64_t spare;
  memcpy(&spare, &r->spare, sizeof spare); /* the double's bits: exact */
  snprintf(buf, EG_RNG_STATE_LEN, STATE_TAG ":%016" PRIx64 ":%016" PRIx64 ":%016" PRIx64 ":%016" PRIx64 ":%016" PRIx64
           ":%016" PRIx64, r->s[0], r->s[1], r->s[2], r->s[3], spare, (uint64_t)(r->has_spare != 0));
}

/* 16 lower-case hex digits at p into *w; 0 when they are not. */
static int hex_word(const char *p, uint64_t *w) {
  uint64_t v = 0;
  for (int i = 0; i < 16; i++) {
    char c = p[i];
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0) return 0;
    v = v << 4 | (uint64_t)d;
  }
  *w = v;
  return 1;
}

int eg_rng_set_state(eg_rng *r, const char *text) {
  const size_t tag = sizeof STATE_TAG - 1;
  uint64_t w[6];
  if (!text || strlen(text) != EG_RNG_STATE_LEN - 1 || strncmp(text, STATE_TAG, tag) != 0)
    return eg_seterr(EG_EFORMAT, "rng state: not a generator state (expected \"" STATE_TAG ":\" and six 16-digit hex words)");
  for (int i = 0; i < 6; i++) {
    const char *p = text + tag + (size_t)i * 17;
    if (*p != ':' || !hex_word(p + 1, &w[i]))
      return eg_seterr(EG_EFORMAT, "rng state: word %d is not 16 lower-case hex digits", i + 1);
  }
  if ((w[0] | w[1] | w[2] | w[3]) == 0) return eg_seterr(EG_EFORMAT, "rng state: all-zero state words");
  if (w[5] > 1) return eg_seterr(EG_EFORMAT, "rng state: the cached flag is %" PRIu64 ", not 0 or 1", w[5]);
  double spare;
  memcpy(&spare, &w[4], sizeof spare);
  if (w[5] && !isfinite(spare)) return eg_seterr(EG_EFORMAT, "rng state: the cached normal is not finite");
  memcpy(r->s, w, sizeof r->s);
  r->spare = spare;
  r->has_spare = (int)w[5];
  return EG_OK;
}

static int blas_threads = 0;

void eg_set_threads(int n) {
  if (n < 1) n = 1;
  blas_threads = n;
  openblas_set_num_threads(n);
}

int eg_get_threads(void) { return blas_threads ? blas_threads : openblas_get_num_threads(); }
