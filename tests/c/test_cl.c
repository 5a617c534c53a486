/*
** test_cl.c — continual-learning primitives: squared-gradient accumulation
** (the batched linear-layer trick against per-sample gradients computed
** explicitly), the quadratic penalty (value by hand, gradient by central
** differences), and the replay memory's sampling statistics and errors.
**
** The penalty's gradient goes through gradcheck.h: central differences with
** step 1e-2 max(1, |theta|) in float32 (the penalty is quadratic, so the
** difference is exact but for rounding), per tensor ||num - ana|| /
** max(||num||, ||ana||) <= 2e-3, per element |num_i - ana_i| <= 2e-3
** |num_i| + 5e-4 max|g|; and the same check on the gradient scaled by 1.01,
** or with each element moved by 1% of the largest magnitude, must fail.
*/
#include <stdlib.h>

#include "check.h"
#include "gradcheck.h"
#include "cl.h"

static void vec(eg_tensor *t, int64_t n, const float *v) {
  int64_t sh[1] = {n};
  eg_tensor_new(t, 1, sh);
  if (v)
    for (int64_t i = 0; i < n; i++) eg_data(t)[i] = v[i];
}
static void mat(eg_tensor *t, int64_t a, int64_t b) {
  int64_t sh[2] = {a, b};
  eg_tensor_new(t, 2, sh);
}
static void randu(eg_tensor *t, uint64_t seed, float lo, float hi) {
  eg_rng r;
  eg_rng_seed(&r, seed);
  eg_fill_uniform(t, &r, lo, hi);
}
#define P(t, i) (eg_data(&(t))[i])

static void test_sq_accumulate_and_decay(void) {
  eg_tensor F = EG_TENSOR_INIT, g = EG_TENSOR_INIT, g3 = EG_TENSOR_INIT;
  vec(&F, 3, (float[]){1, 0, 2});
  vec(&g, 3, (float[]){2, -3, 0.5f});
  CHECK_OK(eg_sq_accumulate(&F, &g, 0.5f));
  CHECK_NEAR(P(F, 0), 1 + 0.5 * 4, 1e-7);
  CHECK_NEAR(P(F, 1), 0.5 * 9, 1e-7);
  CHECK_NEAR(P(F, 2), 2 + 0.5 * 0.25, 1e-7);
  /* online EWC: F = 0.9 F + Fnew */
  CHECK_OK(eg_decay_accumulate(&F, &g, 0.9f));
  CHECK_NEAR(P(F, 0), 0.9 * 3 + 2, 1e-6);
  CHECK_NEAR(P(F, 1), 0.9 * 4.5 - 3, 1e-6);
  vec(&g3, 4, NULL);
  CHECK_ERR(eg_sq_accumulate(&F, &g3, 1), EG_ESHAPE);
  CHECK_ERR(eg_decay_accumulate(&F, &g3, 1), EG_ESHAPE);
  eg_tensor_release(&F);
  eg_tensor_release(&g);
  eg_tensor_release(&g3);
}

static void test_linear_sq_grad_trick_equals_sum_of_per_sample_squares(void) {
  const int B = 6, O = 3, In = 5;
  eg_tensor d = EG_TENSOR_INIT, x = EG_TENSOR_INIT, FW = EG_TENSOR_INIT, Fb = EG_TENSOR_INIT;
  mat(&d, B, O);
  mat(&x, B, In);
  mat(&FW, O, In);
  vec(&Fb, O, NULL);
  randu(&d, 11, -1, 1);
  randu(&x, 12, -2, 2);
  eg_fill(&FW, 0.25f); /* accumulates onto what is there */
  eg_fill(&Fb, 0.5f);
  const float scale = 1.0f / B;
  CHECK_OK(eg_linear_sq_grad_accumulate(&FW, &Fb, &d, &x, scale));
  for (int o = 0; o < O; o++) {
    double fb = 0.5;
    for (int i = 0; i < In; i++) {
      double f = 0.25;
      for (int n = 0; n < B; n++) {
        double gw = (double)P(d, n * O + o) * P(x, n * In + i); /* sample n's dL/dW[o,i] */
        f += scale * gw * gw;
      }
      CHECK_NEAR(P(FW, o * In + i), f, 1e-5);
    }
    for (int n = 0; n < B; n++) fb += scale * (double)P(d, n * O + o) * P(d, n * O + o);
    CHECK_NEAR(P(Fb, o), fb, 1e-5);
  }
  eg_tensor bad = EG_TENSOR_INIT;
  mat(&bad, O, In + 1);
  CHECK_ERR(eg_linear_sq_grad_accumulate(&bad, &Fb, &d, &x, 1), EG_ESHAPE);
  CHECK_ERR(eg_linear_sq_grad_accumulate(&FW, &Fb, &d, &bad, 1), EG_ESHAPE);
  eg_tensor_release(&bad);
  eg_tensor_release(&d);
  eg_tensor_release(&x);
  eg_tensor_release(&FW);
  eg_tensor_release(&Fb);
}

/* The quadratic penalty as a function of theta, for gradcheck.h. */
typedef struct {
  eg_tensor *theta, *anchor, *F;
  double lambda;
} penalty;

static double penalty_at(void *ctx) {
  penalty *p = ctx;
  double v = NAN;
  if (eg_quad_penalty(&v, NULL, p->theta, p->anchor, p->F, p->lambda) != EG_OK)
    fprintf(stderr, "  quad_penalty failed: %s\n", eg_errmsg());
  return v;
}

static void test_quad_penalty_value_and_gradient(void) {
  eg_tensor th = EG_TENSOR_INIT, an = EG_TENSOR_INIT, F = EG_TENSOR_INIT, g = EG_TENSOR_INIT;
  vec(&th, 3, (float[]){1, 2, 3});
  vec(&an, 3, (float[]){0, 2, 5});
  vec(&F, 3, (float[]){2, 7, 0.5f});
  vec(&g, 3, (float[]){1, 1, 1});
  double v;
  CHECK_OK(eg_quad_penalty(&v, &g, &th, &an, &F, 4));
  /* (4/2) * (2*1 + 7*0 + 0.5*4) = 8; grad += 4 F (theta - anchor) */
  CHECK_NEAR(v, 8, 1e-9);
  CHECK_NEAR(P(g, 0), 1 + 4 * 2 * 1, 1e-6);
  CHECK_NEAR(P(g, 1), 1, 1e-6);
  CHECK_NEAR(P(g, 2), 1 + 4 * 0.5 * -2, 1e-6);
  /* central differences on random vectors */
  vec(&th, 50, NULL);
  vec(&an, 50, NULL);
  vec(&F, 50, NULL);
  vec(&g, 50, NULL);
  randu(&th, 1, -1, 1);
  randu(&an, 2, -1, 1);
  randu(&F, 3, 0, 3);
  eg_fill(&g, 0); /* the gradient accumulates: from 0 it is the penalty's own */
  CHECK_OK(eg_quad_penalty(&v, &g, &th, &an, &F, 3.5));
  penalty p = {&th, &an, &F, 3.5};
  CHECK(gc_tensor("quad_penalty", &th, &g, penalty_at, &p));
  /* a zero importance on half the entries: their gradient is exactly 0 */
  for (int i = 0; i < 50; i += 2) P(F, i) = 0;
  eg_fill(&g, 0);
  CHECK_OK(eg_quad_penalty(&v, &g, &th, &an, &F, 3.5));
  for (int i = 0; i < 50; i += 2) CHECK(P(g, i) == 0.0f);
  CHECK(gc_tensor("quad_penalty sparse", &th, &g, penalty_at, &p));
  vec(&F, 49, NULL);
  CHECK_ERR(eg_quad_penalty(&v, &g, &th, &an, &F, 1), EG_ESHAPE);
  CHECK(strstr(eg_errmsg(), "quad_penalty: importance has 49 elements, expected 50") != NULL);
  eg_tensor_release(&th);
  eg_tensor_release(&an);
  eg_tensor_release(&F);
  eg_tensor_release(&g);
}

/* Streams items 0..n-1 (x = id, y = id % classes) into a memory in batches of 10. */
static int stream(eg_memory *m, int64_t first, int64_t n, int classes, eg_rng *r) {
  eg_tensor x = EG_TENSOR_INIT, y = EG_TENSOR_INIT;
  mat(&x, 10, 1);
  vec(&y, 10, NULL);
  int st = EG_OK;
  for (int64_t s = first; s < first + n && !st; s += 10) {
    for (int i = 0; i < 10; i++) {
      P(x, i) = (float)(s + i);
      P(y, i) = (float)((s + i) % classes);
    }
    st = eg_memory_add_batch(m, &x, &y, NULL, 0, r);
  }
  eg_tensor_release(&x);
  eg_tensor_release(&y);
  return st;
}

static void test_reservoir_keeps_each_item_with_probability_m_over_n(void) {
  /* 10,000 items into M = 100, 200 seeds: count how often items of each
  ** block of 1,000 survive. Each block expects 200*100/10 = 2000 (sd ~43). */
  const int runs = 200, n = 10000, M = 100;
  int64_t blocks[10] = {0};
  for (int run = 0; run < runs; run++) {
    eg_memory *m;
    eg_rng r;
    eg_rng_seed(&r, 1000 + run);
    CHECK_OK(eg_memory_new(&m, M, 1, 0, 0));
    CHECK_OK(stream(m, 0, n, 10, &r));
    CHECK(eg_memory_size(m) == M && eg_memory_seen(m) == n);
    eg_tensor x = EG_TENSOR_INIT;
    CHECK_OK(eg_memory_views(m, &x, NULL, NULL, NULL));
    for (int i = 0; i < M; i++) blocks[(int)P(x, i) / 1000]++;
    eg_tensor_release(&x);
    eg_memory_free(m);
  }
  for (int b = 0; b < 10; b++) CHECK(labs((long)(blocks[b] - 2000)) < 220);
  /* Per item, on a short stream: 20 items into M = 5, 20,000 seeds: each
  ** kept with probability 1/4 (count 5000, sd ~61). */
  int64_t count[20] = {0};
  for (int run = 0; run < 20000; run++) {
    eg_memory *m;
    eg_rng r;
    eg_rng_seed(&r, 77 + run);
    eg_memory_new(&m, 5, 1, 0, 0);
    stream(m, 0, 20, 2, &r);
    eg_tensor x = EG_TENSOR_INIT;
    eg_memory_views(m, &x, NULL, NULL, NULL);
    for (int i = 0; i < 5; i++) count[(int)P(x, i)]++;
    eg_tensor_release(&x);
    eg_memory_free(m);
  }
  for (int i = 0; i < 20; i++) CHECK(labs((long)(count[i] - 5000)) < 320);
}

static void test_memory_never_exceeds_capacity_and_counts_seen(void) {
  eg_memory *m;
  eg_rng r;
  eg_rng_seed(&r, 5);
  CHECK_OK(eg_memory_new(&m, 37, 1, 0, 0));
  CHECK(eg_memory_size(m) == 0 && eg_memory_capacity(m) == 37);
  CHECK_OK(stream(m, 0, 20, 3, &r));
  CHECK(eg_memory_size(m) == 20 && eg_memory_seen(m) == 20);
  for (int k = 0; k < 10; k++) {
    CHECK_OK(stream(m, 20 + 100 * k, 100, 3, &r));
    CHECK(eg_memory_size(m) == 37);
  }
  CHECK(eg_memory_seen(m) == 1020);
  eg_memory_clear(m);
  CHECK(eg_memory_size(m) == 0 && eg_memory_seen(m) == 0);
  eg_memory_free(m);
}

static void test_balanced_memory_keeps_at_most_m_over_c_per_class(void) {
  /* Class-incremental stream: 5 tasks of 2 classes, 500 samples per class. */
  const int M = 100;
  eg_memory *m;
  eg_rng r;
  eg_rng_seed(&r, 9);
  CHECK_OK(eg_memory_new(&m, M, 1, 0, 1));
  eg_tensor x = EG_TENSOR_INIT, y = EG_TENSOR_INIT;
  mat(&x, 10, 1);
  vec(&y, 10, NULL);
  for (int task = 0; task < 5; task++) {
    for (int s = 0; s < 1000; s += 10) {
      for (int i = 0; i < 10; i++) {
        P(x, i) = (float)(s + i);
        P(y, i) = (float)(2 * task + (s + i) % 2);
      }
      CHECK_OK(eg_memory_add_batch(m, &x, &y, NULL, task, &r));
    }
    int64_t per[10] = {0};
    eg_tensor ys = EG_TENSOR_INIT;
    CHECK_OK(eg_memory_views(m, NULL, &ys, NULL, NULL));
    for (int i = 0; i < eg_numel(&ys); i++) per[(int)P(ys, i)]++;
    int C = 2 * (task + 1), cap = (M + C - 1) / C;
    int64_t total = 0;
    for (int c = 0; c < C; c++) {
      CHECK(per[c] <= cap);
      CHECK(per[c] >= M / C - 1);
      total += per[c];
    }
    CHECK(total == M);
    eg_tensor_release(&ys);
  }
  eg_tensor_release(&x);
  eg_tensor_release(&y);
  eg_memory_free(m);
}

static void test_sample_draws_without_replacement_and_carries_logits_and_task(void) {
  eg_memory *m;
  eg_rng r;
  eg_rng_seed(&r, 3);
  CHECK_OK(eg_memory_new(&m, 8, 2, 3, 0));
  eg_tensor x = EG_TENSOR_INIT, y = EG_TENSOR_INIT, l = EG_TENSOR_INIT, t = EG_TENSOR_INIT;
  mat(&x, 6, 2);
  vec(&y, 6, NULL);
  mat(&l, 6, 3);
  for (int i = 0; i < 6; i++) {
    P(x, 2 * i) = (float)i;
    P(x, 2 * i + 1) = (float)(10 * i);
    P(y, i) = (float)(i % 4);
    for (int k = 0; k < 3; k++) P(l, 3 * i + k) = (float)(100 * i + k);
  }
  CHECK_OK(eg_memory_add_batch(m, &x, &y, &l, 7, &r));
  /* k == size: a permutation of the contents, every field consistent. */
  vec(&t, 6, NULL);
  uint64_t before = eg_alloc_count();
  for (int rep = 0; rep < 20; rep++) {
    CHECK_OK(eg_memory_sample(m, &x, &y, &l, &t, &r));
    int seen[6] = {0};
    for (int i = 0; i < 6; i++) {
      int id = (int)P(x, 2 * i);
      seen[id]++;
      CHECK(P(x, 2 * i + 1) == 10.0f * id && P(y, i) == (float)(id % 4) && P(t, i) == 7.0f);
      CHECK(P(l, 3 * i + 2) == 100.0f * id + 2);
    }
    for (int id = 0; id < 6; id++) CHECK(seen[id] == 1);
  }
  CHECK(eg_alloc_count() == before);
  /* k > size: with replacement; still only stored samples. */
  eg_tensor xb = EG_TENSOR_INIT, yb = EG_TENSOR_INIT;
  mat(&xb, 20, 2);
  vec(&yb, 20, NULL);
  CHECK_OK(eg_memory_sample(m, &xb, &yb, NULL, NULL, &r));
  for (int i = 0; i < 20; i++) CHECK(P(xb, 2 * i) >= 0 && P(xb, 2 * i) < 6 && P(yb, i) == (float)((int)P(xb, 2 * i) % 4));
  /* views */
  eg_tensor vx = EG_TENSOR_INIT, vl = EG_TENSOR_INIT, vt = EG_TENSOR_INIT;
  CHECK_OK(eg_memory_views(m, &vx, NULL, &vl, &vt));
  CHECK(vx.shape[0] == 6 && vx.shape[1] == 2 && vl.shape[1] == 3 && P(vt, 5) == 7.0f);
  eg_tensor_release(&vx);
  eg_tensor_release(&vl);
  eg_tensor_release(&vt);
  eg_memory_free(m); /* the views' storage outlived it: released above */
  eg_tensor_release(&x);
  eg_tensor_release(&y);
  eg_tensor_release(&l);
  eg_tensor_release(&t);
  eg_tensor_release(&xb);
  eg_tensor_release(&yb);
}

static void test_memory_rejects_bad_input(void) {
  eg_memory *m;
  eg_rng r;
  eg_rng_seed(&r, 1);
  CHECK_ERR(eg_memory_new(&m, 0, 4, 0, 0), EG_EINVAL);
  CHECK(m == NULL);
  CHECK_ERR(eg_memory_new(&m, 10, 0, 0, 0), EG_EINVAL);
  CHECK_OK(eg_memory_new(&m, 10, 4, 0, 0));
  eg_tensor x = EG_TENSOR_INIT, y = EG_TENSOR_INIT, l = EG_TENSOR_INIT;
  mat(&x, 3, 5);
  vec(&y, 3, NULL);
  CHECK_ERR(eg_memory_add_batch(m, &x, &y, NULL, 0, &r), EG_ESHAPE);
  CHECK(strstr(eg_errmsg(), "memory_add: samples [3x5] does not have rows of width 4") != NULL);
  mat(&x, 3, 4);
  P(y, 1) = 2.5f;
  CHECK_ERR(eg_memory_add_batch(m, &x, &y, NULL, 0, &r), EG_ERANGE);
  P(y, 1) = 1;
  mat(&l, 3, 2);
  CHECK_ERR(eg_memory_add_batch(m, &x, &y, &l, 0, &r), EG_EINVAL);
  CHECK_ERR(eg_memory_add_batch(m, &x, &y, NULL, -1, &r), EG_ERANGE);
  vec(&y, 2, NULL);
  CHECK_ERR(eg_memory_add_batch(m, &x, &y, NULL, 0, &r), EG_ESHAPE);
  CHECK(eg_memory_size(m) == 0 && eg_memory_seen(m) == 0);
  vec(&y, 3, NULL);
  CHECK_ERR(eg_memory_sample(m, &x, &y, NULL, NULL, &r), EG_ESTATE);
  CHECK(strstr(eg_errmsg(), "empty") != NULL);
  CHECK_OK(eg_memory_add_batch(m, &x, &y, NULL, 0, &r));
  vec(&y, 2, NULL);
  CHECK_ERR(eg_memory_sample(m, &x, &y, NULL, NULL, &r), EG_ESHAPE);
  eg_memory_free(m);
  eg_memory_free(NULL);
  eg_tensor_release(&x);
  eg_tensor_release(&y);
  eg_tensor_release(&l);
}

static void test_memory_load_restores_contents_and_counters(void) {
  eg_memory *m, *r;
  eg_rng g;
  eg_rng_seed(&g, 21);
  CHECK_OK(eg_memory_new(&m, 30, 1, 0, 1));
  CHECK_OK(eg_memory_new(&r, 30, 1, 0, 1));
  eg_tensor x = EG_TENSOR_INIT, y = EG_TENSOR_INIT, t = EG_TENSOR_INIT;
  CHECK_OK(eg_memory_views(r, &x, &y, NULL, &t)); /* empty: 0 rows */
  CHECK(x.shape[0] == 0 && x.shape[1] == 1 && eg_numel(&y) == 0);
  CHECK_OK(stream(m, 0, 400, 3, &g));
  CHECK_OK(eg_memory_views(m, &x, &y, NULL, &t));
  CHECK_OK(eg_memory_load(r, &x, &y, NULL, &t, eg_memory_seen(m)));
  CHECK(eg_memory_size(r) == 30 && eg_memory_seen(r) == 400);
  eg_tensor x2 = EG_TENSOR_INIT, y2 = EG_TENSOR_INIT;
  CHECK_OK(eg_memory_views(r, &x2, &y2, NULL, NULL));
  for (int i = 0; i < 30; i++) CHECK(P(x2, i) == P(x, i) && P(y2, i) == P(y, i));
  /* the restored memory goes on as a balanced one: 10 per class */
  CHECK_OK(stream(r, 400, 400, 3, &g));
  int per[3] = {0};
  for (int i = 0; i < 30; i++) per[(int)P(y2, i)]++;
  CHECK(per[0] == 10 && per[1] == 10 && per[2] == 10);
  CHECK_ERR(eg_memory_load(r, &x, &y, NULL, &t, 5), EG_EINVAL); /* seen below size */
  eg_memory_free(m);
  eg_memory_free(r);
  eg_tensor_release(&x);
  eg_tensor_release(&y);
  eg_tensor_release(&t);
  eg_tensor_release(&x2);
  eg_tensor_release(&y2);
}

int main(void) {
  RUN(test_sq_accumulate_and_decay);
  RUN(test_linear_sq_grad_trick_equals_sum_of_per_sample_squares);
  RUN(test_quad_penalty_value_and_gradient);
  RUN(test_reservoir_keeps_each_item_with_probability_m_over_n);
  RUN(test_memory_never_exceeds_capacity_and_counts_seen);
  RUN(test_balanced_memory_keeps_at_most_m_over_c_per_class);
  RUN(test_sample_draws_without_replacement_and_carries_logits_and_task);
  RUN(test_memory_rejects_bad_input);
  RUN(test_memory_load_restores_contents_and_counters);
  return CHECK_DONE("cl");
}
