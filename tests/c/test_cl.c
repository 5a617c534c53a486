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
#include <string.h>

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

/* Per-class capacity: grows by per_class with each new class; class-balanced
** insertion then holds per_class of each. */
static void test_per_class_capacity_grows_with_the_classes(void) {
  eg_memory *m;
  eg_rng r;
  eg_rng_seed(&r, 3);
  eg_memory_config c = {0, 7, 1, 0, EG_MEMORY_BALANCED, NULL};
  CHECK_OK(eg_memory_create(&m, &c));
  CHECK(eg_memory_capacity(m) == 7);
  CHECK_OK(stream(m, 0, 500, 2, &r));
  CHECK(eg_memory_capacity(m) == 14 && eg_memory_classes(m) == 2);
  size_t b2 = eg_memory_bytes(m);
  CHECK_OK(stream(m, 500, 500, 5, &r));
  CHECK(eg_memory_capacity(m) == 35 && eg_memory_classes(m) == 5 && eg_memory_size(m) == 35);
  CHECK(eg_memory_bytes(m) > b2);
  eg_tensor y = EG_TENSOR_INIT;
  CHECK_OK(eg_memory_views(m, NULL, &y, NULL, NULL));
  int held[5] = {0};
  for (int64_t i = 0; i < eg_numel(&y); i++) held[(int)P(y, i)]++;
  for (int k = 0; k < 5; k++) CHECK(held[k] == 7);
  eg_tensor_release(&y);
  eg_memory_free(m);
  eg_memory_config both = {10, 7, 1, 0, EG_MEMORY_BALANCED, NULL}, none = {0, 0, 1, 0, 0, NULL};
  CHECK_ERR(eg_memory_create(&m, &both), EG_EINVAL);
  CHECK_ERR(eg_memory_create(&m, &none), EG_EINVAL);
  CHECK(strstr(eg_errmsg(), "capacity 0 must be >= 1") != NULL);
}

/* Score insertion keeps the M highest scores whatever the order. */
static void test_score_memory_keeps_the_highest_scores(void) {
  const int n = 300, M = 20;
  eg_memory *m;
  eg_rng r;
  eg_rng_seed(&r, 5);
  eg_memory_config c = {M, 0, 1, 0, EG_MEMORY_SCORE, NULL};
  CHECK_OK(eg_memory_create(&m, &c));
  eg_tensor x = EG_TENSOR_INIT, y = EG_TENSOR_INIT, s = EG_TENSOR_INIT;
  mat(&x, n, 1);
  vec(&y, n, NULL);
  vec(&s, n, NULL);
  for (int i = 0; i < n; i++) P(x, i) = (float)i, P(s, i) = (float)((i * 37) % n); /* a permutation of 0..n-1 */
  CHECK_OK(eg_memory_add(m, &x, &y, NULL, NULL, &s, 0, &r));
  eg_tensor sc = EG_TENSOR_INIT;
  vec(&sc, M, NULL);
  CHECK_OK(eg_memory_read_state(m, &sc, NULL));
  for (int i = 0; i < M; i++) CHECK(P(sc, i) >= (float)(n - M));
  CHECK_ERR(eg_memory_add(m, &x, &y, NULL, NULL, NULL, 0, &r), EG_EINVAL); /* scores required */
  eg_tensor_release(&x), eg_tensor_release(&y), eg_tensor_release(&s), eg_tensor_release(&sc);
  eg_memory_free(m);
}

/* Weighted draws: frequencies within a chi-square bound (3 dof, 0.1%: 16.27). */
static void test_weighted_sampling_follows_the_weights(void) {
  eg_memory *m;
  eg_rng r;
  eg_rng_seed(&r, 11);
  CHECK_OK(eg_memory_new(&m, 4, 1, 0, 0));
  eg_tensor x = EG_TENSOR_INIT, y = EG_TENSOR_INIT, w = EG_TENSOR_INIT, ox = EG_TENSOR_INIT, oy = EG_TENSOR_INIT;
  mat(&x, 4, 1);
  vec(&y, 4, NULL);
  vec(&w, 4, (float[]){4, 0, 1, 3});
  for (int i = 0; i < 4; i++) P(x, i) = (float)i;
  CHECK_OK(eg_memory_add(m, &x, &y, NULL, &w, NULL, 0, &r));
  CHECK(eg_memory_weighted(m));
  mat(&ox, 1000, 1);
  vec(&oy, 1000, NULL);
  double cnt[4] = {0};
  for (int rep = 0; rep < 20; rep++) {
    CHECK_OK(eg_memory_sample(m, &ox, &oy, NULL, NULL, &r));
    for (int i = 0; i < 1000; i++) cnt[(int)P(ox, i)]++;
  }
  CHECK(cnt[1] == 0);
  double chi = 0, e[4] = {20000 * 0.5, 0, 20000 * 0.125, 20000 * 0.375};
  for (int k = 0; k < 4; k++)
    if (e[k] > 0) chi += (cnt[k] - e[k]) * (cnt[k] - e[k]) / e[k];
  CHECK(chi < 16.27);
  vec(&w, 4, (float[]){1, -2, 1, 1});
  CHECK_ERR(eg_memory_set_weights(m, &w), EG_EINVAL);
  CHECK(strstr(eg_errmsg(), "weight -2 (sample 1)") != NULL);
  vec(&w, 4, (float[]){0, 0, 0, 0});
  CHECK_OK(eg_memory_set_weights(m, &w));
  CHECK_ERR(eg_memory_sample(m, &ox, &oy, NULL, NULL, &r), EG_ESTATE);
  eg_tensor_release(&x), eg_tensor_release(&y), eg_tensor_release(&w), eg_tensor_release(&ox), eg_tensor_release(&oy);
  eg_memory_free(m);
}

/* uint8 storage: samples come back bit for bit, in about a quarter of the
** bytes; a value off the levels is refused and nothing is stored. */
static void test_uint8_memory_round_trips_exactly(void) {
  float lv[256];
  for (int q = 0; q < 256; q++) lv[q] = (float)((double)q / 255.0 * 2.8328611898 - 0.8101983003);
  eg_memory *u, *f;
  eg_memory_config cu = {50, 0, 16, 0, EG_MEMORY_RESERVOIR, lv}, cf = {50, 0, 16, 0, EG_MEMORY_RESERVOIR, NULL};
  CHECK_OK(eg_memory_create(&u, &cu));
  CHECK_OK(eg_memory_create(&f, &cf));
  eg_tensor x = EG_TENSOR_INIT, y = EG_TENSOR_INIT, a = EG_TENSOR_INIT, b = EG_TENSOR_INIT, ya = EG_TENSOR_INIT;
  mat(&x, 40, 16);
  vec(&y, 40, NULL);
  eg_rng r;
  eg_rng_seed(&r, 2);
  for (int i = 0; i < 40 * 16; i++) P(x, i) = lv[eg_rng_below(&r, 256)];
  eg_rng r1, r2;
  eg_rng_seed(&r1, 9), eg_rng_seed(&r2, 9);
  CHECK_OK(eg_memory_add(u, &x, &y, NULL, NULL, NULL, 0, &r1));
  CHECK_OK(eg_memory_add(f, &x, &y, NULL, NULL, NULL, 0, &r2));
  mat(&a, 30, 16), mat(&b, 30, 16), vec(&ya, 30, NULL);
  CHECK_OK(eg_memory_sample(u, &a, &ya, NULL, NULL, &r1));
  CHECK_OK(eg_memory_sample(f, &b, &ya, NULL, NULL, &r2));
  CHECK(memcmp(eg_data(&a), eg_data(&b), sizeof(float) * 30 * 16) == 0);
  CHECK(eg_memory_bytes(f) - eg_memory_bytes(u) == 50 * 16 * 3); /* 1 byte a value instead of 4 */
  P(x, 5) += 1e-4f;
  CHECK_ERR(eg_memory_add(u, &x, &y, NULL, NULL, NULL, 0, &r1), EG_EINVAL);
  CHECK(strstr(eg_errmsg(), "(sample 0, element 5) is not one of this uint8 memory's 256 levels") != NULL);
  CHECK(eg_memory_seen(u) == 40);
  eg_tensor view = EG_TENSOR_INIT;
  CHECK_ERR(eg_memory_views(u, &view, NULL, NULL, NULL), EG_ESTATE);
  int all = 0;
  CHECK_OK(eg_on_levels(&x, lv, &all));
  CHECK(all == 0);
  P(x, 5) -= 1e-4f;
  P(x, 5) = lv[(int)((P(x, 5) + 0.8101983003f) / 2.8328611898f * 255.0f + 0.5f)];
  CHECK_OK(eg_on_levels(&x, lv, &all));
  CHECK(all == 1);
  lv[7] = lv[6];
  eg_memory *bad;
  CHECK_ERR(eg_memory_create(&bad, &cu), EG_EINVAL);
  eg_tensor_release(&x), eg_tensor_release(&y), eg_tensor_release(&a), eg_tensor_release(&b), eg_tensor_release(&ya);
  eg_memory_free(u);
  eg_memory_free(f);
}

/* The contents, weights and sampling order make a restored memory draw the same samples. */
static void test_restored_memory_draws_the_same_samples(void) {
  eg_memory *a, *b;
  eg_rng r;
  eg_rng_seed(&r, 4);
  CHECK_OK(eg_memory_new(&a, 30, 1, 0, 0));
  CHECK_OK(stream(a, 0, 200, 3, &r));
  eg_tensor x = EG_TENSOR_INIT, y = EG_TENSOR_INIT, t = EG_TENSOR_INIT, w = EG_TENSOR_INIT, o = EG_TENSOR_INIT;
  eg_tensor s1 = EG_TENSOR_INIT, s2 = EG_TENSOR_INIT, l = EG_TENSOR_INIT;
  mat(&s1, 20, 1), mat(&s2, 20, 1), vec(&l, 20, NULL), vec(&o, 30, NULL);
  CHECK_OK(eg_memory_sample(a, &s1, &l, NULL, NULL, &r)); /* moves the order */
  CHECK_OK(eg_memory_views(a, &x, &y, NULL, &t));
  CHECK_OK(eg_memory_weights(a, &w));
  CHECK_OK(eg_memory_read_state(a, NULL, &o));
  CHECK_OK(eg_memory_new(&b, 30, 1, 0, 0));
  CHECK_OK(eg_memory_restore(b, &x, &y, NULL, &t, &w, NULL, eg_memory_seen(a)));
  CHECK_OK(eg_memory_set_order(b, &o));
  eg_rng r1, r2;
  eg_rng_seed(&r1, 8), eg_rng_seed(&r2, 8);
  CHECK_OK(eg_memory_sample(a, &s1, &l, NULL, NULL, &r1));
  CHECK_OK(eg_memory_sample(b, &s2, &l, NULL, NULL, &r2));
  CHECK(memcmp(eg_data(&s1), eg_data(&s2), sizeof(float) * 20) == 0);
  P(o, 0) = P(o, 1);
  CHECK_ERR(eg_memory_set_order(b, &o), EG_EINVAL);
  eg_tensor_release(&x), eg_tensor_release(&y), eg_tensor_release(&t), eg_tensor_release(&w), eg_tensor_release(&o);
  eg_tensor_release(&s1), eg_tensor_release(&s2), eg_tensor_release(&l);
  eg_memory_free(a);
  eg_memory_free(b);
}

/* Per-sample cross-entropy against log-sum-exp by hand. */
static void test_sample_losses(void) {
  eg_tensor z = EG_TENSOR_INIT, y = EG_TENSOR_INIT, out = EG_TENSOR_INIT;
  mat(&z, 2, 3);
  float v[6] = {1, 2, 3, 100, 0, -100};
  for (int i = 0; i < 6; i++) P(z, i) = v[i];
  vec(&y, 2, (float[]){0, 1});
  vec(&out, 2, NULL);
  CHECK_OK(eg_sample_losses(&out, &z, &y));
  CHECK_NEAR(P(out, 0), log(exp(1.0) + exp(2.0) + exp(3.0)) - 1, 1e-5);
  CHECK_NEAR(P(out, 1), 100, 1e-4);
  P(y, 1) = 3;
  CHECK_ERR(eg_sample_losses(&out, &z, &y), EG_ERANGE);
  eg_tensor_release(&z), eg_tensor_release(&y), eg_tensor_release(&out);
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
  RUN(test_per_class_capacity_grows_with_the_classes);
  RUN(test_score_memory_keeps_the_highest_scores);
  RUN(test_weighted_sampling_follows_the_weights);
  RUN(test_uint8_memory_round_trips_exactly);
  RUN(test_restored_memory_draws_the_same_samples);
  RUN(test_sample_losses);
  return CHECK_DONE("cl");
}
