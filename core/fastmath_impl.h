/*
** fastmath_impl.h — exp and tanh for the hot element-wise loops (GELU, the
** attention softmax); internal. glibc's expf and tanhf are calls the
** compiler cannot vectorise without -ffast-math; these are plain
** arithmetic that it does vectorise, branch-free.
**
** eg_expf_: Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2, then Cephes'
** degree-6 polynomial for e^r and 2^n built in the exponent bits. Inputs
** are clamped to [-87, 88] (e^-87 is near FLT_MIN; no denormals, no inf).
** Measured against exp() in double over [-87, 88] (steps of 1e-4):
** relative error below 8.3e-8 (about 1 ulp). The rounding uses the 1.5 * 2^23 trick, which
** needs round-to-nearest (the default) and no -ffast-math reassociation.
** eg_tanhf_: sign(x) (1 - e) / (1 + e), e = exp(-2|x|): absolute error
** below 9e-8 (measured over [-20, 20]), which is what GELU's
** 0.5x(1 + tanh(...)) sees.
*/
#ifndef EG_FASTMATH_IMPL_H
#define EG_FASTMATH_IMPL_H
#include <stdint.h>
#include <string.h>

/* EG_CLONES before a function with such a loop: GCC compiles it for
** AVX-512, AVX2 and the baseline (SSE2) and picks one at load time (an
** ifunc), so the loop runs 16, 8 or 4 wide. The results are the same bits
** on each: -std=c11 turns off the contraction of a*b+c into an FMA. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define EG_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define EG_CLONES
#endif

static inline float eg_expf_(float x) {
  x = x < -87.0f ? -87.0f : x;
  x = x > 88.0f ? 88.0f : x;
  const float big = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
  float n = (x * 1.44269504088896341f + big) - big;
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t i = ((int32_t)n + 127) << 23;
  float s;
  memcpy(&s, &i, sizeof s);
  return p * s;
}

static inline float eg_tanhf_(float x) {
  float a = x < 0 ? -x : x;
  float e = eg_expf_(-2.0f * a);
  float t = (1.0f - e) / (1.0f + e);
  return x < 0 ? -t : t;
}
#endif
