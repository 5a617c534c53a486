/*
** rng.h — explicit, seedable random number generators (xoshiro256**,
** seeded through splitmix64). The same seed gives the same sequence on every
** machine; normal variates use a polar method with one cached spare.
*/
#ifndef EG_RNG_H
#define EG_RNG_H

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct eg_rng {
  uint64_t s[4];
  double spare;
  int has_spare;
} eg_rng;

EG_API void eg_rng_seed(eg_rng *r, uint64_t seed);
EG_API uint64_t eg_rng_u64(eg_rng *r);
/* Uniform in [0, 1) with 53 random bits. */
EG_API double eg_rng_uniform(eg_rng *r);
/* Standard normal. */
EG_API double eg_rng_normal(eg_rng *r);
/* Uniform integer in [0, n); n > 0; unbiased. */
EG_API uint64_t eg_rng_below(eg_rng *r, uint64_t n);
/* Fisher–Yates shuffle of a[0..n-1]. */
EG_API void eg_rng_shuffle(eg_rng *r, int64_t *a, int64_t n);
/* t (1-D, allocated, n elements) becomes a random permutation of 0..n-1 as
** exact integers in floats: the permutation eg_rng_shuffle makes of 0..n-1
** with the same draws. n is at most 2^24, where float indices stop being
** exact (EG_EINVAL beyond). Allocates nothing. */
EG_API int eg_randperm(eg_tensor *t, eg_rng *r);
/* Fill t with uniform values in [lo, hi) / normal(mean, std), row-major. */
EG_API int eg_fill_uniform(eg_tensor *t, eg_rng *r, float lo, float hi);
EG_API int eg_fill_normal(eg_tensor *t, eg_rng *r, float mean, float std);
/* Fill t with 1/keep (kept) or 0 (dropped, with probability 1-keep): a dropout mask. */
EG_API int eg_fill_bernoulli_scaled(eg_tensor *t, eg_rng *r, float keep);

/* The generator's whole state as text, for checkpoints: "xoshiro256ss:"
** and six hex words (the four state words, the cached normal's bits, whether
** it is cached), EG_RNG_STATE_LEN - 1 characters and a NUL. A generator set
** from it continues the sequence bit for bit. eg_rng_set_state checks the
** whole text first (EG_EFORMAT, r unchanged, when it is not such a state). */
#define EG_RNG_STATE_LEN 115
EG_API void eg_rng_get_state(const eg_rng *r, char buf[EG_RNG_STATE_LEN]);
EG_API int eg_rng_set_state(eg_rng *r, const char *text);

/* BLAS thread count: the one process-wide setting of the core. */
EG_API void eg_set_threads(int n);
EG_API int eg_get_threads(void);

#ifdef __cplusplus
}
#endif

#endif
