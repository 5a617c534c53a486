/*
** test_herding.c — herding selection (eg_herding) against the definition
** computed directly (each step, the row that brings the running mean closest
** to the mean of all, in double), distinct choices, and its errors.
*/
#include <math.h>
#include <stdlib.h>

#include "check.h"
#include "cl.h"

static void test_herding_follows_its_definition(void) {
  enum { N = 40, D = 6, M = 12 };
  int64_t sh[2] = {N, D};
  eg_tensor F = EG_TENSOR_INIT;
  eg_tensor_new(&F, 2, sh);
  eg_rng r;
  eg_rng_seed(&r, 7);
  eg_fill_uniform(&F, &r, -1, 1);
  int64_t idx[M];
  CHECK_OK(eg_herding(idx, &F, M));
  const float *f = eg_data(&F);
  double mu[D] = {0}, S[D] = {0};
  int taken[N] = {0};
  for (int i = 0; i < N; i++)
    for (int j = 0; j < D; j++) mu[j] += f[i * D + j] / N;
  for (int k = 1; k <= M; k++) {
    int best = -1;
    double bd = INFINITY;
    for (int i = 0; i < N; i++) {
      if (taken[i]) continue;
      double dist = 0;
      for (int j = 0; j < D; j++) {
        double e = mu[j] - (S[j] + f[i * D + j]) / k;
        dist += e * e;
      }
      if (dist < bd) bd = dist, best = i;
    }
    CHECK(idx[k - 1] == best);
    taken[best] = 1;
    for (int j = 0; j < D; j++) S[j] += f[best * D + j];
  }
  /* all n: a permutation */
  int64_t all[N];
  int seen[N] = {0};
  CHECK_OK(eg_herding(all, &F, N));
  for (int i = 0; i < N; i++) seen[all[i]]++;
  for (int i = 0; i < N; i++) CHECK(seen[i] == 1);
  CHECK_ERR(eg_herding(all, &F, N + 1), EG_EINVAL);
  CHECK(strstr(eg_errmsg(), "cannot choose 41 exemplars from 40 samples") != NULL);
  eg_tensor empty = EG_TENSOR_INIT;
  CHECK_ERR(eg_herding(all, &empty, 1), EG_ESTATE);
  eg_tensor_release(&F);
}

int main(void) {
  RUN(test_herding_follows_its_definition);
  return CHECK_DONE("herding");
}
