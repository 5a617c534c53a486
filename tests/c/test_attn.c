/*
** test_attn.c — causal multi-head self-attention (attn.h): the forward pass
** against a direct triple loop in double, the probabilities (rows sum to 1,
** zero above the diagonal, stable for large scores), finite-difference
** gradient checks through the shared gradcheck.h (L = sum(y * r), every
** check also run mutated and required to fail), shape errors as status
** codes, and no allocation when warm.
*/
#include <stdlib.h>

#include "attn.h"
#include "check.h"
#include "gradcheck.h"
#include "rng.h"

typedef struct {
  eg_tensor qkv, y, att, r, gqkv, scratch;
  int64_t N, T, H, D;
} ac;

static void mk(eg_tensor *t, int nd, int64_t a, int64_t b, int64_t c, int64_t d) {
  int64_t sh[4] = {a, b, c, d};
  eg_tensor_new(t, nd, sh);
}

static void randu(eg_tensor *t, uint64_t seed, float lo, float hi) {
  eg_rng r;
  eg_rng_seed(&r, seed);
  eg_fill_uniform(t, &r, lo, hi);
}

static void ac_init(ac *c, int64_t N, int64_t T, int64_t H, int64_t D, uint64_t seed, float spread) {
  memset(c, 0, sizeof *c);
  c->N = N, c->T = T, c->H = H, c->D = D;
  mk(&c->qkv, 2, N * T, 3 * D, 0, 0), mk(&c->y, 2, N * T, D, 0, 0), mk(&c->att, 4, N, H, T, T);
  mk(&c->r, 2, N * T, D, 0, 0), mk(&c->gqkv, 2, N * T, 3 * D, 0, 0), mk(&c->scratch, 2, T, T, 0, 0);
  randu(&c->qkv, seed, -spread, spread);
  randu(&c->r, seed + 1, -1, 1);
}

static void ac_free(ac *c) {
  eg_tensor *all[] = {&c->qkv, &c->y, &c->att, &c->r, &c->gqkv, &c->scratch};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) eg_tensor_release(all[i]);
}

static double loss(void *ctx) {
  ac *c = ctx;
  if (eg_attn_forward(&c->y, &c->att, &c->qkv, c->T, c->H) != EG_OK) {
    fprintf(stderr, "  forward failed: %s\n", eg_errmsg());
    return NAN;
  }
  double s = 0;
  for (int64_t i = 0; i < eg_numel(&c->y); i++) s += (double)eg_data(&c->y)[i] * eg_data(&c->r)[i];
  return s;
}

/* y by the definition, in double: for each sequence n, head h, position i,
** softmax over j <= i of q_i.k_j / sqrt(hd), times v_j. */
static double max_error_against_loops(ac *c) {
  int64_t T = c->T, D = c->D, hd = D / c->H, D3 = 3 * D;
  const float *x = eg_data(&c->qkv), *y = eg_data(&c->y);
  double worst = 0, *w = malloc(sizeof(double) * (size_t)T);
  for (int64_t n = 0; n < c->N; n++)
    for (int64_t h = 0; h < c->H; h++)
      for (int64_t i = 0; i < T; i++) {
        const float *q = x + (n * T + i) * D3 + h * hd;
        double m = -INFINITY, s = 0;
        for (int64_t j = 0; j <= i; j++) {
          const float *k = x + (n * T + j) * D3 + D + h * hd;
          double dot = 0;
          for (int64_t e = 0; e < hd; e++) dot += (double)q[e] * k[e];
          w[j] = dot / sqrt((double)hd);
          m = fmax(m, w[j]);
        }
        for (int64_t j = 0; j <= i; j++) s += (w[j] = exp(w[j] - m));
        for (int64_t e = 0; e < hd; e++) {
          double o = 0;
          for (int64_t j = 0; j <= i; j++) o += w[j] / s * x[(n * T + j) * D3 + 2 * D + h * hd + e];
          worst = fmax(worst, fabs(o - y[(n * T + i) * D + h * hd + e]));
        }
      }
  free(w);
  return worst;
}

static void test_attention_matches_the_definition_and_masks_the_future(void) {
  ac c;
  ac_init(&c, 2, 5, 3, 12, 1, 1.0f);
  CHECK_OK(eg_attn_forward(&c.y, &c.att, &c.qkv, c.T, c.H));
  CHECK(max_error_against_loops(&c) < 1e-5);
  const float *p = eg_data(&c.att);
  for (int64_t row = 0; row < c.N * c.H * c.T; row++) {
    int64_t i = row % c.T;
    double s = 0;
    for (int64_t j = 0; j < c.T; j++) {
      float v = p[row * c.T + j];
      if (j > i) CHECK(v == 0.0f);
      else CHECK(v > 0.0f);
      s += v;
    }
    CHECK_NEAR(s, 1.0, 1e-6);
  }
  /* the first position sees itself only: its output is its own value */
  for (int64_t e = 0; e < c.D; e++) CHECK_NEAR(eg_data(&c.y)[e], eg_data(&c.qkv)[2 * c.D + e], 1e-6);
  ac_free(&c);
}

static void test_attention_is_stable_for_large_scores(void) {
  ac c;
  ac_init(&c, 1, 6, 2, 8, 2, 40.0f); /* scores up to 40*40*4/2: exp would overflow without the row maximum */
  CHECK_OK(eg_attn_forward(&c.y, &c.att, &c.qkv, c.T, c.H));
  int finite = 1;
  for (int64_t i = 0; i < eg_numel(&c.y); i++) finite &= isfinite(eg_data(&c.y)[i]) != 0;
  CHECK(finite);
  CHECK(max_error_against_loops(&c) < 1e-3 * 40);
  ac_free(&c);
}

static void check_gradients(int64_t N, int64_t T, int64_t H, int64_t D, uint64_t seed) {
  ac c;
  ac_init(&c, N, T, H, D, seed, 1.5f);
  CHECK_OK(eg_attn_forward(&c.y, &c.att, &c.qkv, T, H));
  CHECK_OK(eg_attn_backward(&c.gqkv, &c.scratch, &c.r, &c.qkv, &c.att, T, H));
  char what[64];
  snprintf(what, sizeof what, "attention N%lld T%lld H%lld D%lld qkv", (long long)N, (long long)T, (long long)H,
           (long long)D);
  CHECK(gc_tensor(what, &c.qkv, &c.gqkv, loss, &c));
  ac_free(&c);
}

static void test_attention_gradients_match_finite_differences(void) {
  check_gradients(2, 4, 2, 6, 11);
  check_gradients(1, 7, 1, 4, 12);  /* one head */
  check_gradients(3, 3, 4, 8, 13);  /* head width 2 */
  check_gradients(2, 1, 2, 4, 14);  /* one position: the output is v, q and k get 0 */
}

static void test_attention_backward_overwrites_its_gradient(void) {
  ac c;
  ac_init(&c, 2, 4, 2, 6, 5, 1.0f);
  CHECK_OK(eg_attn_forward(&c.y, &c.att, &c.qkv, c.T, c.H));
  CHECK_OK(eg_attn_backward(&c.gqkv, &c.scratch, &c.r, &c.qkv, &c.att, c.T, c.H));
  eg_tensor first = EG_TENSOR_INIT;
  CHECK_OK(eg_tensor_new(&first, c.gqkv.ndim, c.gqkv.shape));
  CHECK_OK(eg_copy(&first, &c.gqkv));
  CHECK_OK(eg_fill(&c.scratch, 7.0f));
  CHECK_OK(eg_attn_backward(&c.gqkv, &c.scratch, &c.r, &c.qkv, &c.att, c.T, c.H));
  CHECK(memcmp(eg_data(&first), eg_data(&c.gqkv), sizeof(float) * (size_t)eg_numel(&first)) == 0);
  eg_tensor_release(&first);
  ac_free(&c);
}

static void test_attention_rejects_shapes_that_do_not_fit(void) {
  ac c;
  ac_init(&c, 2, 4, 2, 6, 6, 1.0f);
  CHECK_ERR(eg_attn_forward(&c.y, &c.att, &c.qkv, c.T, 4), EG_ESHAPE); /* dim 6 by 4 heads */
  CHECK(strstr(eg_errmsg(), "not divisible by 4 heads") != NULL);
  CHECK_ERR(eg_attn_forward(&c.y, &c.att, &c.qkv, 3, c.H), EG_ESHAPE); /* 8 rows, sequences of 3 */
  CHECK(strstr(eg_errmsg(), "not whole sequences") != NULL);
  CHECK_ERR(eg_attn_forward(&c.y, &c.att, &c.qkv, 0, c.H), EG_EINVAL);
  CHECK_ERR(eg_attn_forward(&c.y, &c.att, &c.qkv, c.T, 0), EG_EINVAL);
  CHECK_ERR(eg_attn_forward(&c.y, &c.att, &c.y, c.T, c.H), EG_ESHAPE); /* width 6 is 3 * 2, but att is for D 6 */
  CHECK_ERR(eg_attn_forward(&c.att, &c.y, &c.qkv, c.T, c.H), EG_ESHAPE);
  eg_tensor small = EG_TENSOR_INIT;
  int64_t ss[1] = {15};
  CHECK_OK(eg_tensor_new(&small, 1, ss));
  CHECK_OK(eg_attn_forward(&c.y, &c.att, &c.qkv, c.T, c.H));
  CHECK_ERR(eg_attn_backward(&c.gqkv, &small, &c.r, &c.qkv, &c.att, c.T, c.H), EG_ESHAPE); /* T*T = 16 */
  CHECK_ERR(eg_attn_backward(&c.gqkv, &c.scratch, &c.qkv, &c.qkv, &c.att, c.T, c.H), EG_ESHAPE);
  CHECK_ERR(eg_attn_backward(&c.y, &c.scratch, &c.r, &c.qkv, &c.att, c.T, c.H), EG_ESHAPE);
  eg_tensor empty = EG_TENSOR_INIT;
  CHECK_ERR(eg_attn_forward(&c.y, &c.att, &empty, c.T, c.H), EG_ESTATE);
  eg_tensor_release(&small);
  ac_free(&c);
}

/* The (sequence, head) pairs split between threads: the same bits as one thread. */
static void test_attention_gives_the_same_bits_on_any_number_of_threads(void) {
  ac c;
  ac_init(&c, 3, 6, 2, 8, 9, 1.0f);
  eg_tensor y1 = EG_TENSOR_INIT, g1 = EG_TENSOR_INIT, big = EG_TENSOR_INIT;
  int64_t sb[1] = {4 * 6 * 6};
  CHECK_OK(eg_tensor_new(&y1, c.y.ndim, c.y.shape));
  CHECK_OK(eg_tensor_new(&g1, c.gqkv.ndim, c.gqkv.shape));
  CHECK_OK(eg_tensor_new(&big, 1, sb));
  int threads = eg_get_threads();
  eg_set_threads(1);
  CHECK_OK(eg_attn_forward(&c.y, &c.att, &c.qkv, c.T, c.H));
  CHECK_OK(eg_attn_backward(&c.gqkv, &big, &c.r, &c.qkv, &c.att, c.T, c.H));
  CHECK_OK(eg_copy(&y1, &c.y));
  CHECK_OK(eg_copy(&g1, &c.gqkv));
  for (int k = 2; k <= 5; k++) { /* 5 threads for 6 pairs, but scratch for 4 */
    eg_set_threads(k);
    CHECK_OK(eg_fill(&c.y, 0));
    CHECK_OK(eg_fill(&c.gqkv, 0));
    CHECK_OK(eg_attn_forward(&c.y, &c.att, &c.qkv, c.T, c.H));
    CHECK_OK(eg_attn_backward(&c.gqkv, &big, &c.r, &c.qkv, &c.att, c.T, c.H));
    CHECK(memcmp(eg_data(&y1), eg_data(&c.y), sizeof(float) * (size_t)eg_numel(&y1)) == 0);
    CHECK(memcmp(eg_data(&g1), eg_data(&c.gqkv), sizeof(float) * (size_t)eg_numel(&g1)) == 0);
  }
  eg_set_threads(threads);
  eg_tensor_release(&y1), eg_tensor_release(&g1), eg_tensor_release(&big);
  ac_free(&c);
}

static void test_warm_attention_step_allocates_nothing(void) {
  ac c;
  ac_init(&c, 4, 16, 4, 32, 7, 1.0f);
  uint64_t before = 0;
  for (int step = 0; step < 3; step++) {
    if (step == 1) before = eg_alloc_count();
    CHECK_OK(eg_attn_forward(&c.y, &c.att, &c.qkv, c.T, c.H));
    CHECK_OK(eg_attn_backward(&c.gqkv, &c.scratch, &c.r, &c.qkv, &c.att, c.T, c.H));
  }
  CHECK(eg_alloc_count() == before);
  ac_free(&c);
}

/* Entropy of the rows: zero queries make every row uniform over its i + 1
** keys, so ent[h, i] = N log(i + 1); a hand-written pattern; shape errors. */
static void test_attention_entropy_matches_hand_computations(void) {
  ac c;
  ac_init(&c, 3, 5, 2, 8, 4, 1.0f);
  for (int64_t r = 0; r < c.N * c.T; r++) /* q = 0: every score 0 */
    for (int64_t k = 0; k < c.D; k++) eg_data(&c.qkv)[r * 3 * c.D + k] = 0;
  CHECK_OK(eg_attn_forward(&c.y, &c.att, &c.qkv, c.T, c.H));
  eg_tensor ent = EG_TENSOR_INIT;
  mk(&ent, 2, c.H, c.T, 0, 0);
  CHECK_OK(eg_attn_entropy(&ent, &c.att));
  for (int64_t h = 0; h < c.H; h++)
    for (int64_t i = 0; i < c.T; i++) CHECK_NEAR(eg_data(&ent)[h * c.T + i], 3 * log((double)(i + 1)), 1e-5);
  /* one sequence, one head, T = 3: rows (1), (1/2, 1/2), (1/4, 1/4, 1/2) */
  eg_tensor att = EG_TENSOR_INIT, e1 = EG_TENSOR_INIT;
  mk(&att, 4, 1, 1, 3, 3), mk(&e1, 2, 1, 3, 0, 0);
  float pat[9] = {1, 0, 0, 0.5f, 0.5f, 0, 0.25f, 0.25f, 0.5f};
  memcpy(eg_data(&att), pat, sizeof pat);
  CHECK_OK(eg_attn_entropy(&e1, &att));
  CHECK_NEAR(eg_data(&e1)[0], 0.0, 1e-7);
  CHECK_NEAR(eg_data(&e1)[1], log(2.0), 1e-6);
  CHECK_NEAR(eg_data(&e1)[2], 1.5 * log(2.0), 1e-6);
  /* the future (j > i) is not read: garbage above the diagonal changes nothing */
  eg_data(&att)[1] = 0.7f, eg_data(&att)[5] = 0.3f;
  CHECK_OK(eg_attn_entropy(&e1, &att));
  CHECK_NEAR(eg_data(&e1)[0], 0.0, 1e-7);
  CHECK_NEAR(eg_data(&e1)[1], log(2.0), 1e-6);
  CHECK_ERR(eg_attn_entropy(&ent, &att), EG_ESHAPE);  /* [2x5] for one head of T 3 */
  CHECK_ERR(eg_attn_entropy(&e1, &c.y), EG_ESHAPE);   /* not 4-D */
  eg_tensor empty = EG_TENSOR_INIT;
  CHECK_ERR(eg_attn_entropy(&e1, &empty), EG_ESTATE);
  eg_tensor_release(&ent), eg_tensor_release(&att), eg_tensor_release(&e1);
  ac_free(&c);
}

int main(void) {
  RUN(test_attention_matches_the_definition_and_masks_the_future);
  RUN(test_attention_is_stable_for_large_scores);
  RUN(test_attention_gradients_match_finite_differences);
  RUN(test_attention_backward_overwrites_its_gradient);
  RUN(test_attention_rejects_shapes_that_do_not_fit);
  RUN(test_attention_gives_the_same_bits_on_any_number_of_threads);
  RUN(test_warm_attention_step_allocates_nothing);
  RUN(test_attention_entropy_matches_hand_computations);
  return CHECK_DONE("attn");
}
