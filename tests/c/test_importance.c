/*
** test_importance.c — MAS's absolute per-sample gradients (element-wise and
** the one-product trick for a linear layer, against the sum of per-sample
** outer products) and SI's path integral (every step and at a task's end,
** against the formulas worked out by hand), the folded penalty of several
** tasks (equal to the sum of their penalties; its gradient through
** gradcheck.h with the mutation tests), with their errors.
*/
#include <stdlib.h>

#include "check.h"
#include "gradcheck.h"
#include "cl.h"

static void vec(eg_tensor *t, int64_t n, const float *v) {
  eg_tensor_new(t, 1, &n);
  for (int64_t i = 0; i < n; i++) eg_data(t)[i] = v[i];
}

static void test_abs_accumulate_adds_scaled_magnitudes(void) {
  eg_tensor F = EG_TENSOR_INIT, g = EG_TENSOR_INIT;
  vec(&F, 3, (float[]){1, 0, 2});
  vec(&g, 3, (float[]){-2, 0.5f, 0});
  CHECK_OK(eg_abs_accumulate(&F, &g, 0.5f));
  CHECK_NEAR(eg_data(&F)[0], 2.0, 1e-7);
  CHECK_NEAR(eg_data(&F)[1], 0.25, 1e-7);
  CHECK_NEAR(eg_data(&F)[2], 2.0, 1e-7);
  eg_tensor short_g = EG_TENSOR_INIT;
  vec(&short_g, 2, (float[]){1, 1});
  CHECK_ERR(eg_abs_accumulate(&F, &short_g, 1), EG_ESHAPE);
  eg_tensor_release(&F), eg_tensor_release(&g), eg_tensor_release(&short_g);
}

static void test_linear_abs_grad_trick_equals_sum_of_per_sample_magnitudes(void) {
  enum { B = 5, O = 3, I = 4 };
  int64_t sd[2] = {B, O}, sx[2] = {B, I}, sw[2] = {O, I}, sb[1] = {O};
  eg_tensor d = EG_TENSOR_INIT, x = EG_TENSOR_INIT, FW = EG_TENSOR_INIT, Fb = EG_TENSOR_INIT;
  eg_tensor_new(&d, 2, sd), eg_tensor_new(&x, 2, sx), eg_tensor_new(&FW, 2, sw), eg_tensor_new(&Fb, 1, sb);
  eg_rng r;
  eg_rng_seed(&r, 7);
  eg_fill_uniform(&d, &r, -1, 1), eg_fill_uniform(&x, &r, -2, 2);
  eg_fill(&FW, 0.25f), eg_fill(&Fb, 0.5f);
  CHECK_OK(eg_linear_abs_grad_accumulate(&FW, &Fb, &d, &x, 0.1f));
  const float *dd = eg_data(&d), *xx = eg_data(&x);
  for (int o = 0; o < O; o++) {
    double sb_ = 0;
    for (int n = 0; n < B; n++) sb_ += fabs(dd[n * O + o]);
    CHECK_NEAR(eg_data(&Fb)[o], 0.5 + 0.1 * sb_, 1e-6);
    for (int i = 0; i < I; i++) {
      double s = 0; /* the per-sample gradient of W[o][i] is delta[n][o] x[n][i] */
      for (int n = 0; n < B; n++) s += fabs((double)dd[n * O + o] * xx[n * I + i]);
      CHECK_NEAR(eg_data(&FW)[o * I + i], 0.25 + 0.1 * s, 1e-5);
    }
  }
  int64_t bad[2] = {O, I + 1};
  eg_tensor W2 = EG_TENSOR_INIT;
  eg_tensor_new(&W2, 2, bad);
  CHECK_ERR(eg_linear_abs_grad_accumulate(&W2, NULL, &d, &x, 1), EG_ESHAPE);
  CHECK(strstr(eg_errmsg(), "linear_abs_grad_accumulate") != NULL);
  eg_tensor_release(&d), eg_tensor_release(&x), eg_tensor_release(&FW), eg_tensor_release(&Fb);
  eg_tensor_release(&W2);
}

static void test_si_path_integral_and_consolidation_follow_the_formulas(void) {
  eg_tensor w = EG_TENSOR_INIT, prev = EG_TENSOR_INIT, g = EG_TENSOR_INIT, th = EG_TENSOR_INIT;
  eg_tensor W = EG_TENSOR_INIT, start = EG_TENSOR_INIT;
  vec(&w, 2, (float[]){0, 0});
  vec(&start, 2, (float[]){1, -1});
  vec(&prev, 2, (float[]){1, -1});
  vec(&W, 2, (float[]){0.5f, 0});
  /* step 1: theta 1 -> 0.8 under g 2; -1 -> -1.5 under g -1 */
  vec(&g, 2, (float[]){2, -1});
  vec(&th, 2, (float[]){0.8f, -1.5f});
  CHECK_OK(eg_si_accumulate(&w, &prev, &g, NULL, &th));
  CHECK_NEAR(eg_data(&w)[0], -2 * (0.8 - 1), 1e-6);   /* 0.4 */
  CHECK_NEAR(eg_data(&w)[1], 1 * (-1.5 + 1), 1e-6);   /* -0.5 */
  CHECK_NEAR(eg_data(&prev)[0], 0.8, 1e-7);
  /* step 2: 0.8 -> 0.5 under g 1 */
  eg_data(&g)[0] = 1, eg_data(&g)[1] = 0;
  eg_data(&th)[0] = 0.5f;
  CHECK_OK(eg_si_accumulate(&w, &prev, &g, NULL, &th));
  CHECK_NEAR(eg_data(&w)[0], 0.4 + 0.3, 1e-6);
  CHECK_NEAR(eg_data(&w)[1], -0.5, 1e-6);
  /* end of the task: Omega += omega / ((theta - start)^2 + xi) */
  CHECK_OK(eg_si_consolidate(&W, &w, &start, &th, 0.1f));
  CHECK_NEAR(eg_data(&W)[0], 0.5 + 0.7 / (0.25 + 0.1), 1e-5);
  CHECK_NEAR(eg_data(&W)[1], -0.5 / (0.25 + 0.1), 1e-5);
  CHECK_NEAR(eg_data(&w)[0], 0, 0);
  CHECK_NEAR(eg_data(&start)[0], 0.5, 0);
  CHECK_NEAR(eg_data(&start)[1], -1.5, 0);
  CHECK_ERR(eg_si_consolidate(&W, &w, &start, &th, 0), EG_EINVAL);
  CHECK(strstr(eg_errmsg(), "xi") != NULL);
  CHECK_ERR(eg_si_consolidate(&W, &w, &start, &th, NAN), EG_EINVAL);
  eg_tensor three = EG_TENSOR_INIT;
  vec(&three, 3, (float[]){0, 0, 0});
  CHECK_ERR(eg_si_accumulate(&three, &prev, &g, NULL, &th), EG_ESHAPE);
  CHECK(strstr(eg_errmsg(), "si_accumulate: path integral") != NULL);
  eg_tensor empty = EG_TENSOR_INIT;
  CHECK_ERR(eg_si_accumulate(&w, &prev, &empty, NULL, &th), EG_ESTATE);
  /* with the penalties' share: omega -= (g - pg) dtheta */
  eg_tensor pg = EG_TENSOR_INIT;
  vec(&pg, 2, (float[]){0.5f, 2});
  eg_data(&w)[0] = 0, eg_data(&w)[1] = 0;
  eg_data(&prev)[0] = 1, eg_data(&prev)[1] = 1;
  eg_data(&th)[0] = 2, eg_data(&th)[1] = 0;
  eg_data(&g)[0] = 1.5f, eg_data(&g)[1] = 1;
  CHECK_OK(eg_si_accumulate(&w, &prev, &g, &pg, &th));
  CHECK_NEAR(eg_data(&w)[0], -(1.5 - 0.5) * 1, 1e-7);
  CHECK_NEAR(eg_data(&w)[1], -(1 - 2) * -1, 1e-7);
  eg_tensor_release(&pg);
  eg_tensor *all[] = {&w, &prev, &g, &th, &W, &start, &three};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) eg_tensor_release(all[i]);
}

/* Three tasks' penalties, folded, as a function of theta. */
typedef struct {
  eg_tensor *theta, *A, *B;
  double C, lambda;
} folded;

static double folded_at(void *ctx) {
  folded *f = ctx;
  double v = NAN;
  if (eg_quad_penalty_folded(&v, NULL, f->theta, f->A, f->B, f->C, f->lambda) != EG_OK)
    fprintf(stderr, "  quad_penalty_folded failed: %s\n", eg_errmsg());
  return v;
}

static void test_folded_penalty_is_the_sum_of_the_tasks_penalties(void) {
  enum { N = 37, K = 3 };
  eg_tensor th = EG_TENSOR_INIT, A = EG_TENSOR_INIT, B = EG_TENSOR_INIT, F[K], a[K], g1 = EG_TENSOR_INIT,
            g2 = EG_TENSOR_INIT;
  float zeros[N] = {0};
  vec(&th, N, zeros), vec(&A, N, zeros), vec(&B, N, zeros), vec(&g1, N, zeros), vec(&g2, N, zeros);
  eg_rng r;
  eg_rng_seed(&r, 5);
  eg_fill_uniform(&th, &r, -1, 1);
  double C = 0, sum = 0;
  for (int k = 0; k < K; k++) {
    F[k] = (eg_tensor)EG_TENSOR_INIT, a[k] = (eg_tensor)EG_TENSOR_INIT;
    vec(&F[k], N, zeros), vec(&a[k], N, zeros);
    eg_fill_uniform(&F[k], &r, 0, 2);
    eg_fill_uniform(&a[k], &r, -1, 1);
    CHECK_OK(eg_quad_fold(&A, &B, &C, &F[k], &a[k]));
    double v;
    CHECK_OK(eg_quad_penalty(&v, &g1, &th, &a[k], &F[k], 3.0));
    sum += v;
  }
  double v;
  CHECK_OK(eg_quad_penalty_folded(&v, &g2, &th, &A, &B, C, 3.0));
  CHECK_NEAR(v, sum, 1e-5 * sum);
  for (int i = 0; i < N; i++) CHECK_NEAR(eg_data(&g2)[i], eg_data(&g1)[i], 1e-5 * (1 + fabs(eg_data(&g1)[i])));
  /* the gradient against central differences, and its mutations must fail */
  folded f = {&th, &A, &B, C, 3.0};
  eg_fill(&g2, 0);
  CHECK_OK(eg_quad_penalty_folded(&v, &g2, &th, &A, &B, C, 3.0));
  CHECK(gc_tensor("quad_penalty_folded", &th, &g2, folded_at, &f));
  /* errors */
  eg_tensor short_B = EG_TENSOR_INIT;
  vec(&short_B, N - 1, zeros);
  CHECK_ERR(eg_quad_penalty_folded(&v, &g2, &th, &A, &short_B, C, 3.0), EG_ESHAPE);
  CHECK(strstr(eg_errmsg(), "quad_penalty_folded: weighted anchors") != NULL);
  CHECK_ERR(eg_quad_penalty_folded(&v, &g2, &th, &A, &B, NAN, 3.0), EG_EINVAL);
  CHECK_ERR(eg_quad_fold(&A, &short_B, &C, &F[0], &a[0]), EG_ESHAPE);
  eg_tensor_release(&th), eg_tensor_release(&A), eg_tensor_release(&B), eg_tensor_release(&g1);
  eg_tensor_release(&g2), eg_tensor_release(&short_B);
  for (int k = 0; k < K; k++) eg_tensor_release(&F[k]), eg_tensor_release(&a[k]);
}

int main(void) {
  RUN(test_abs_accumulate_adds_scaled_magnitudes);
  RUN(test_linear_abs_grad_trick_equals_sum_of_per_sample_magnitudes);
  RUN(test_si_path_integral_and_consolidation_follow_the_formulas);
  RUN(test_folded_penalty_is_the_sum_of_the_tasks_penalties);
  return CHECK_DONE("importance");
}
