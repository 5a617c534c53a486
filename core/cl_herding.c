/*
** cl_herding.c — herding selection of exemplars (Welling 2009; iCaRL,
** Rebuffi et al. 2017). See cl.h.
*/
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "cl.h"

int eg_herding(int64_t *idx, const eg_tensor *features, int64_t m) {
  static const char op[] = "herding";
  if (!features || !features->storage) return eg_seterr(EG_ESTATE, "%s: the features are empty", op);
  if (features->ndim != 2 || !eg_is_contiguous(features))
    return eg_seterr(EG_ESHAPE, "%s: features must be a contiguous [n x d]", op);
  int64_t n = features->shape[0], d = features->shape[1];
  if (m < 0 || m > n)
    return eg_seterr(EG_EINVAL, "%s: cannot choose %lld exemplars from %lld samples", op, (long long)m, (long long)n);
  if (m == 0) return EG_OK;
  if (n > INT32_MAX || d > INT32_MAX) return eg_seterr(EG_ESHAPE, "%s: too many features", op);
  const float *F = eg_data(features);
  /* t = k mu - S: the direction the next exemplar must cover; sq[i] = |f_i|^2 */
  float *mu = eg_calloc((size_t)d ? (size_t)d : 1, sizeof(float)), *S = eg_calloc((size_t)d ? (size_t)d : 1, sizeof(float));
  float *t = eg_malloc(sizeof(float) * (size_t)(d ? d : 1)), *score = eg_malloc(sizeof(float) * (size_t)n);
  float *sq = eg_malloc(sizeof(float) * (size_t)n);
  unsigned char *taken = eg_calloc((size_t)n, 1);
  int st = EG_OK;
  if (!mu || !S || !t || !score || !sq || !taken) {
    st = eg_seterr(EG_ENOMEM, "%s: out of memory for %lld samples", op, (long long)n);
    goto done;
  }
  for (int64_t i = 0; i < n; i++) {
    double s2 = 0;
    for (int64_t j = 0; j < d; j++) {
      mu[j] += F[i * d + j] / (float)n;
      s2 += (double)F[i * d + j] * F[i * d + j];
    }
    sq[i] = (float)s2;
  }
  for (int64_t k = 1; k <= m; k++) {
    for (int64_t j = 0; j < d; j++) t[j] = (float)k * mu[j] - S[j];
    /* |t - f_i|^2 = |t|^2 - 2 t.f_i + |f_i|^2: the best i maximises 2 t.f_i - |f_i|^2 */
    cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)n, (int)d, 1.0f, F, (int)d, t, 1, 0.0f, score, 1);
    int64_t best = -1;
    float bv = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
      if (taken[i]) continue;
      float v = 2 * score[i] - sq[i];
      if (best < 0 || v > bv) best = i, bv = v; /* NaN features lose; ties go to the first */
    }
    taken[best] = 1;
    idx[k - 1] = best;
    for (int64_t j = 0; j < d; j++) S[j] += F[best * d + j];
  }
done:
  eg_free(mu), eg_free(S), eg_free(t), eg_free(score), eg_free(sq), eg_free(taken);
  return st;
}
