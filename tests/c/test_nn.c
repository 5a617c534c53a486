/*
** test_nn.c — layer kernels: finite-difference gradient checks for every
** kernel (inputs and parameters), shape errors, and no allocation when warm.
**
** Gradient check: for a smooth random r (uniform in [-1, 1]), L = sum(y * r)
** summed in double, so dL/dy = r. The analytic gradients come from backward
** with gy = r; gradcheck.h holds the reference (central differences, step
** 1e-2 max(1, |v|) in float32) and the measure: per tensor
** ||num - ana|| / max(||num||, ||ana||) <= 2e-3, per element
** |num_i - ana_i| <= 2e-3 |num_i| + 5e-4 max|g| (why: see gradcheck.h; the
** worst unmutated check here is below 1e-4 relative). Every check is also
** run on the analytic gradient scaled by 1.01 and with each element moved
** by 1% of the tensor's largest magnitude, and those must fail.
** Inputs sit away from kinks: ReLU/LeakyReLU inputs have |x| >= 0.1, ten
** times the step; MaxPool inputs are distinct and 0.05 apart, more than the
** largest step (0.03), so no perturbation changes an argmax.
*/
#include <stdlib.h>

#include "check.h"
#include "gradcheck.h"
#include "nn.h"

typedef struct kc {
  eg_tensor x, W, b, y, s1, s2, r;          /* inputs, output, saved buffers, dL/dy */
  eg_tensor gx, gW, gb;                      /* analytic gradients */
  int kind, stride, pad, k, use_b;
  float alpha;
  uint64_t seed;
  int (*fwd)(struct kc *);
} kc;

static void mk(eg_tensor *t, int nd, int64_t a, int64_t b, int64_t c, int64_t d) {
  int64_t sh[4] = {a, b, c, d};
  eg_tensor_new(t, nd, sh);
}

static void randu(eg_tensor *t, uint64_t seed, float lo, float hi) {
  eg_rng r;
  eg_rng_seed(&r, seed);
  eg_fill_uniform(t, &r, lo, hi);
}

/* Values of magnitude >= 0.1 (away from ReLU's kink) with random signs. */
static void rand_away(eg_tensor *t, uint64_t seed) {
  randu(t, seed, 0.1f, 1.0f);
  eg_rng r;
  eg_rng_seed(&r, seed + 99);
  float *p = eg_data(t);
  for (int64_t i = 0; i < eg_numel(t); i++)
    if (eg_rng_uniform(&r) < 0.5) p[i] = -p[i];
}

static double loss(void *ctx) {
  kc *c = ctx;
  if (c->fwd(c) != EG_OK) {
    fprintf(stderr, "  forward failed: %s\n", eg_errmsg());
    return NAN;
  }
  double s = 0;
  for (int64_t i = 0; i < eg_numel(&c->y); i++) s += (double)eg_data(&c->y)[i] * eg_data(&c->r)[i];
  return s;
}

/* The shared check (gradcheck.h) of the analytic gradient g of tensor v,
** with its mutation tests; 1 when all went as expected. */
static int grad_ok(kc *c, eg_tensor *v, const eg_tensor *g, const char *what) {
  int ok = gc_tensor(what, v, g, loss, c);
  c->fwd(c); /* leave the saved buffers at the unperturbed point */
  return ok;
}

static void gc_free(kc *c) {
  eg_tensor *all[] = {&c->x, &c->W, &c->b, &c->y, &c->s1, &c->s2, &c->r, &c->gx, &c->gW, &c->gb};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) eg_tensor_release(all[i]);
}

/* ---- Linear ---- */
static int fwd_linear(kc *c) { return eg_linear_forward(&c->y, &c->x, &c->W, c->use_b ? &c->b : NULL); }

static void test_linear_gradients_match_finite_differences(void) {
  for (int t = 0; t < 2; t++) { /* x [3,4] with a bias; x [2,3,4] (leading dimensions) without */
    kc c = {0};
    c.fwd = fwd_linear, c.use_b = t == 0;
    if (t == 0) mk(&c.x, 2, 3, 4, 0, 0), mk(&c.y, 2, 3, 5, 0, 0), mk(&c.r, 2, 3, 5, 0, 0), mk(&c.gx, 2, 3, 4, 0, 0);
    else mk(&c.x, 3, 2, 3, 4, 0), mk(&c.y, 3, 2, 3, 5, 0), mk(&c.r, 3, 2, 3, 5, 0), mk(&c.gx, 3, 2, 3, 4, 0);
    mk(&c.W, 2, 5, 4, 0, 0), mk(&c.b, 1, 5, 0, 0, 0), mk(&c.gW, 2, 5, 4, 0, 0), mk(&c.gb, 1, 5, 0, 0, 0);
    randu(&c.x, 1 + t, -1, 1), randu(&c.W, 2, -1, 1), randu(&c.b, 3, -1, 1), randu(&c.r, 4 + t, -1, 1);
    CHECK_OK(fwd_linear(&c));
    eg_fill(&c.gx, 123.0f); /* overwritten, not accumulated */
    CHECK_OK(eg_linear_backward(&c.gx, &c.gW, c.use_b ? &c.gb : NULL, &c.r, &c.x, &c.W));
    CHECK(grad_ok(&c, &c.x, &c.gx, "linear gx"));
    CHECK(grad_ok(&c, &c.W, &c.gW, "linear gW"));
    if (c.use_b) CHECK(grad_ok(&c, &c.b, &c.gb, "linear gb"));
    gc_free(&c);
  }
}

/* Small entries: with x of size 1e-3 the weight gradient's entries are
** about 1e-3, which an absolute slack of 1e-2 (the old tol * (1 + |num|))
** passed whatever their values. The relative measure holds them to 0.2%:
** 1.5% too large in every entry, or in one entry, fails. */
static void test_gradient_check_holds_small_entries_to_a_relative_tolerance(void) {
  kc c = {0};
  c.fwd = fwd_linear;
  mk(&c.x, 2, 3, 4, 0, 0), mk(&c.W, 2, 5, 4, 0, 0), mk(&c.y, 2, 3, 5, 0, 0), mk(&c.r, 2, 3, 5, 0, 0);
  mk(&c.gx, 2, 3, 4, 0, 0), mk(&c.gW, 2, 5, 4, 0, 0);
  randu(&c.x, 7, -1e-3f, 1e-3f), randu(&c.W, 8, -1, 1), randu(&c.r, 9, -1, 1);
  CHECK_OK(fwd_linear(&c));
  CHECK_OK(eg_linear_backward(&c.gx, &c.gW, NULL, &c.r, &c.x, &c.W));
  double num[20], ana[20];
  gc_numeric(num, &c.W, loss, &c);
  CHECK_OK(fwd_linear(&c));
  double s = 0;
  for (int i = 0; i < 20; i++) ana[i] = eg_data(&c.gW)[i], s = fmax(s, fabs(ana[i]));
  CHECK(s > 1e-4 && s < 3e-3);
  CHECK(gc_compare(num, ana, 20).ok);
  for (int i = 0; i < 20; i++) ana[i] *= 1.015;
  gc_verdict v = gc_compare(num, ana, 20);
  CHECK(!v.ok && v.rel > 1e-2);
  for (int i = 0; i < 20; i++) ana[i] = eg_data(&c.gW)[i];
  int big = 0; /* the largest entry 1.5% off */
  for (int i = 1; i < 20; i++)
    if (fabs(ana[i]) > fabs(ana[big])) big = i;
  ana[big] *= 1.015;
  CHECK(!gc_compare(num, ana, 20).ok);
  ana[big] = eg_data(&c.gW)[big];
  ana[(big + 1) % 20] += 0.015 * s; /* another entry off by 1.5% of the largest */
  CHECK(!gc_compare(num, ana, 20).ok);
  gc_free(&c);
}

static void test_linear_workspace_path_matches_the_plain_one(void) {
  int64_t rows_list[] = {1, 16, 32, 40}; /* 40: above EG_LINEAR_FEW_ROWS, the plain path */
  int threads0 = eg_get_threads();
  for (int k = 0; k < 8; k++) { /* the workspace is used on one BLAS thread only */
    int t = k % 4;
    eg_set_threads(k < 4 ? 1 : 2);
    int64_t rows = rows_list[t];
    for (int use_b = 0; use_b < 2; use_b++) {
      eg_tensor x = EG_TENSOR_INIT, W = EG_TENSOR_INIT, b = EG_TENSOR_INIT, y1 = EG_TENSOR_INIT, y2 = EG_TENSOR_INIT,
                ws = EG_TENSOR_INIT;
      mk(&x, 2, rows, 37, 0, 0), mk(&W, 2, 23, 37, 0, 0), mk(&b, 1, 23, 0, 0, 0), mk(&y1, 2, rows, 23, 0, 0);
      mk(&y2, 2, rows, 23, 0, 0), mk(&ws, 1, EG_LINEAR_FEW_ROWS * 23, 0, 0, 0);
      randu(&x, 50 + t, -1, 1), randu(&W, 60 + t, -1, 1), randu(&b, 70 + t, -1, 1);
      eg_fill(&y2, 99.0f);
      CHECK_OK(eg_linear_forward(&y1, &x, &W, use_b ? &b : NULL));
      CHECK_OK(eg_linear_forward_ws(&y2, &ws, &x, &W, use_b ? &b : NULL));
      for (int64_t i = 0; i < rows * 23; i++) CHECK_NEAR(eg_data(&y2)[i], eg_data(&y1)[i], 1e-5);
      eg_tensor small = EG_TENSOR_INIT;
      mk(&small, 1, 3, 0, 0, 0);
      if (rows <= EG_LINEAR_FEW_ROWS) CHECK_ERR(eg_linear_forward_ws(&y2, &small, &x, &W, NULL), EG_ESHAPE);
      eg_tensor *all[] = {&x, &W, &b, &y1, &y2, &ws, &small};
      for (size_t i = 0; i < sizeof all / sizeof *all; i++) eg_tensor_release(all[i]);
    }
  }
  eg_set_threads(threads0);
}

static void test_linear_parameter_gradients_accumulate(void) {
  kc c = {0};
  c.fwd = fwd_linear, c.use_b = 1;
  mk(&c.x, 2, 2, 3, 0, 0), mk(&c.W, 2, 4, 3, 0, 0), mk(&c.b, 1, 4, 0, 0, 0), mk(&c.y, 2, 2, 4, 0, 0);
  mk(&c.r, 2, 2, 4, 0, 0), mk(&c.gW, 2, 4, 3, 0, 0), mk(&c.gb, 1, 4, 0, 0, 0), mk(&c.s1, 2, 4, 3, 0, 0);
  randu(&c.x, 1, -1, 1), randu(&c.W, 2, -1, 1), randu(&c.r, 4, -1, 1);
  CHECK_OK(eg_linear_backward(NULL, &c.gW, &c.gb, &c.r, &c.x, &c.W));
  CHECK_OK(eg_copy(&c.s1, &c.gW));
  CHECK_OK(eg_linear_backward(NULL, &c.gW, NULL, &c.r, &c.x, &c.W));
  for (int i = 0; i < 12; i++) CHECK_NEAR(eg_data(&c.gW)[i], 2 * eg_data(&c.s1)[i], 1e-5);
  gc_free(&c);
}

static void test_linear_rejects_wrong_input_width_with_a_clear_message(void) {
  eg_tensor x = EG_TENSOR_INIT, W = EG_TENSOR_INIT, y = EG_TENSOR_INIT;
  mk(&x, 2, 2, 785, 0, 0), mk(&W, 2, 400, 784, 0, 0), mk(&y, 2, 2, 400, 0, 0);
  CHECK_ERR(eg_linear_forward(&y, &x, &W, NULL), EG_ESHAPE);
  CHECK(strstr(eg_errmsg(), "input width 785 does not match 784") != NULL);
  eg_tensor_release(&x);
  mk(&x, 2, 2, 784, 0, 0);
  eg_tensor_release(&y);
  mk(&y, 2, 2, 401, 0, 0);
  CHECK_ERR(eg_linear_forward(&y, &x, &W, NULL), EG_ESHAPE);
  eg_tensor empty = EG_TENSOR_INIT;
  CHECK_ERR(eg_linear_forward(&y, &empty, &W, NULL), EG_ESTATE);
  eg_tensor_release(&x), eg_tensor_release(&W), eg_tensor_release(&y);
}

/* ---- activations ---- */
static int fwd_act(kc *c) { return eg_act_forward(&c->y, &c->x, (eg_act)c->kind, c->alpha); }

static void test_activation_gradients_match_finite_differences(void) {
  eg_act kinds[] = {EG_ACT_RELU, EG_ACT_LEAKY_RELU, EG_ACT_TANH, EG_ACT_SIGMOID, EG_ACT_GELU};
  for (size_t k = 0; k < sizeof kinds / sizeof *kinds; k++) {
    kc c = {0};
    c.fwd = fwd_act, c.kind = kinds[k], c.alpha = 0.1f;
    mk(&c.x, 2, 4, 6, 0, 0), mk(&c.y, 2, 4, 6, 0, 0), mk(&c.r, 2, 4, 6, 0, 0), mk(&c.gx, 2, 4, 6, 0, 0);
    rand_away(&c.x, 10 + k), randu(&c.r, 20 + k, -1, 1);
    CHECK_OK(fwd_act(&c));
    CHECK_OK(eg_act_backward(&c.gx, &c.r, &c.x, &c.y, (eg_act)c.kind, c.alpha));
    int bad = !grad_ok(&c, &c.x, &c.gx, eg_act_name(kinds[k]));
    if (bad) fprintf(stderr, "  activation %s\n", eg_act_name(kinds[k]));
    CHECK(bad == 0);
    /* from the saved output only (x not given) for all but GELU */
    if (kinds[k] != EG_ACT_GELU) {
      eg_tensor g2 = EG_TENSOR_INIT;
      mk(&g2, 2, 4, 6, 0, 0);
      CHECK_OK(eg_act_backward(&g2, &c.r, NULL, &c.y, (eg_act)c.kind, c.alpha));
      for (int i = 0; i < 24; i++) CHECK_NEAR(eg_data(&g2)[i], eg_data(&c.gx)[i], 1e-5);
      eg_tensor_release(&g2);
    }
    gc_free(&c);
  }
}

static void test_gelu_is_the_tanh_approximation(void) {
  eg_tensor x = EG_TENSOR_INIT, y = EG_TENSOR_INIT;
  mk(&x, 1, 3, 0, 0, 0), mk(&y, 1, 3, 0, 0, 0);
  eg_data(&x)[0] = 1.0f, eg_data(&x)[1] = -0.5f, eg_data(&x)[2] = 2.0f;
  CHECK_OK(eg_act_forward(&y, &x, EG_ACT_GELU, 0));
  /* torch.nn.functional.gelu(x, approximate="tanh") */
  CHECK_NEAR(eg_data(&y)[0], 0.8411920, 1e-6);
  CHECK_NEAR(eg_data(&y)[1], -0.1542859, 1e-6);
  CHECK_NEAR(eg_data(&y)[2], 1.9545977, 1e-6);
  eg_tensor_release(&x), eg_tensor_release(&y);
}

/* ---- Softmax / LogSoftmax ---- */
static int fwd_softmax(kc *c) { return c->kind ? eg_logsoftmax_forward(&c->y, &c->x) : eg_softmax_forward(&c->y, &c->x); }

static void test_softmax_and_logsoftmax_gradients_match_finite_differences(void) {
  for (int lg = 0; lg < 2; lg++) {
    kc c = {0};
    c.fwd = fwd_softmax, c.kind = lg;
    mk(&c.x, 2, 3, 5, 0, 0), mk(&c.y, 2, 3, 5, 0, 0), mk(&c.r, 2, 3, 5, 0, 0), mk(&c.gx, 2, 3, 5, 0, 0);
    randu(&c.x, 5, -2, 2), randu(&c.r, 6, -1, 1);
    CHECK_OK(fwd_softmax(&c));
    if (!lg) {
      double s = 0;
      for (int j = 0; j < 5; j++) s += eg_data(&c.y)[j];
      CHECK_NEAR(s, 1.0, 1e-6);
    }
    CHECK_OK(lg ? eg_logsoftmax_backward(&c.gx, &c.r, &c.y) : eg_softmax_backward(&c.gx, &c.r, &c.y));
    CHECK(grad_ok(&c, &c.x, &c.gx, lg ? "logsoftmax" : "softmax"));
    gc_free(&c);
  }
}

static void test_logsoftmax_is_stable_for_large_inputs(void) {
  eg_tensor x = EG_TENSOR_INIT, y = EG_TENSOR_INIT;
  mk(&x, 2, 1, 2, 0, 0), mk(&y, 2, 1, 2, 0, 0);
  eg_data(&x)[0] = 1000.0f, eg_data(&x)[1] = 0.0f;
  CHECK_OK(eg_logsoftmax_forward(&y, &x));
  CHECK_NEAR(eg_data(&y)[0], 0.0, 1e-6);
  CHECK_NEAR(eg_data(&y)[1], -1000.0, 1e-3);
  eg_tensor_release(&x), eg_tensor_release(&y);
}

/* ---- Dropout ---- */
static int fwd_dropout(kc *c) {
  eg_rng r;
  eg_rng_seed(&r, c->seed); /* the same mask at every perturbation */
  return eg_dropout_forward(&c->y, &c->s1, &c->x, &r, c->alpha);
}

static void test_dropout_masks_are_seeded_scaled_and_differentiable(void) {
  kc c = {0};
  c.fwd = fwd_dropout, c.seed = 7, c.alpha = 0.25f;
  mk(&c.x, 2, 4, 5, 0, 0), mk(&c.y, 2, 4, 5, 0, 0), mk(&c.s1, 2, 4, 5, 0, 0), mk(&c.r, 2, 4, 5, 0, 0);
  mk(&c.gx, 2, 4, 5, 0, 0);
  randu(&c.x, 8, -1, 1), randu(&c.r, 9, -1, 1);
  CHECK_OK(fwd_dropout(&c));
  CHECK_OK(eg_dropout_backward(&c.gx, &c.r, &c.s1));
  CHECK(grad_ok(&c, &c.x, &c.gx, "dropout"));
  /* mask values and rate on a large tensor */
  eg_tensor big = EG_TENSOR_INIT, m = EG_TENSOR_INIT, o = EG_TENSOR_INIT;
  mk(&big, 1, 100000, 0, 0, 0), mk(&m, 1, 100000, 0, 0, 0), mk(&o, 1, 100000, 0, 0, 0);
  eg_fill(&big, 1.0f);
  eg_rng r;
  eg_rng_seed(&r, 3);
  CHECK_OK(eg_dropout_forward(&o, &m, &big, &r, 0.25f));
  int64_t zeros = 0, odd = 0;
  for (int64_t i = 0; i < 100000; i++) {
    float v = eg_data(&m)[i];
    if (v == 0) zeros++;
    else if (fabsf(v - 1.0f / 0.75f) > 1e-6f) odd++;
  }
  CHECK(odd == 0);
  CHECK(zeros > 24000 && zeros < 26000);
  CHECK_ERR(eg_dropout_forward(&o, &m, &big, &r, 1.0f), EG_EINVAL);
  eg_tensor_release(&big), eg_tensor_release(&m), eg_tensor_release(&o);
  gc_free(&c);
}

/* ---- LayerNorm ---- */
static int fwd_ln(kc *c) { return eg_layernorm_forward(&c->y, &c->s1, &c->s2, &c->x, &c->W, &c->b, 1e-5f); }

static void test_layernorm_gradients_match_finite_differences(void) {
  kc c = {0};
  c.fwd = fwd_ln;
  mk(&c.x, 2, 3, 6, 0, 0), mk(&c.W, 1, 6, 0, 0, 0), mk(&c.b, 1, 6, 0, 0, 0), mk(&c.y, 2, 3, 6, 0, 0);
  mk(&c.s1, 1, 3, 0, 0, 0), mk(&c.s2, 1, 3, 0, 0, 0), mk(&c.r, 2, 3, 6, 0, 0);
  mk(&c.gx, 2, 3, 6, 0, 0), mk(&c.gW, 1, 6, 0, 0, 0), mk(&c.gb, 1, 6, 0, 0, 0);
  randu(&c.x, 11, -2, 2), randu(&c.W, 12, 0.5f, 1.5f), randu(&c.b, 13, -1, 1), randu(&c.r, 14, -1, 1);
  CHECK_OK(fwd_ln(&c));
  double m = 0;
  for (int j = 0; j < 6; j++) m += (eg_data(&c.y)[j] - eg_data(&c.b)[j]) / eg_data(&c.W)[j];
  CHECK_NEAR(m, 0.0, 1e-4); /* normalised rows have mean 0 */
  CHECK_OK(eg_layernorm_backward(&c.gx, &c.gW, &c.gb, &c.r, &c.x, &c.s1, &c.s2, &c.W));
  CHECK(grad_ok(&c, &c.x, &c.gx, "ln gx"));
  CHECK(grad_ok(&c, &c.W, &c.gW, "ln gw"));
  CHECK(grad_ok(&c, &c.b, &c.gb, "ln gb"));
  gc_free(&c);
}

/* ---- Conv2d ---- */
static int fwd_conv(kc *c) {
  return eg_conv2d_forward(&c->y, &c->s1, &c->x, &c->W, c->use_b ? &c->b : NULL, c->stride, c->pad);
}

static void test_conv2d_gradients_match_finite_differences(void) {
  int cfg[2][2] = {{1, 0}, {2, 1}}; /* stride, pad */
  for (int t = 0; t < 2; t++) {
    kc c = {0};
    c.fwd = fwd_conv, c.use_b = 1, c.stride = cfg[t][0], c.pad = cfg[t][1];
    int64_t N = 2, C = 2, H = 5, W = 4, O = 3, k = 3;
    int64_t Ho = eg_conv_out_size(H, k, c.stride, c.pad), Wo = eg_conv_out_size(W, k, c.stride, c.pad);
    mk(&c.x, 4, N, C, H, W), mk(&c.W, 4, O, C, k, k), mk(&c.b, 1, O, 0, 0, 0), mk(&c.y, 4, N, O, Ho, Wo);
    mk(&c.r, 4, N, O, Ho, Wo), mk(&c.s1, 1, C * k * k * Ho * Wo, 0, 0, 0);
    mk(&c.gx, 4, N, C, H, W), mk(&c.gW, 4, O, C, k, k), mk(&c.gb, 1, O, 0, 0, 0);
    randu(&c.x, 21, -1, 1), randu(&c.W, 22, -1, 1), randu(&c.b, 23, -1, 1), randu(&c.r, 24, -1, 1);
    CHECK_OK(fwd_conv(&c));
    CHECK_OK(eg_conv2d_backward(&c.gx, &c.gW, &c.gb, &c.s1, &c.r, &c.x, &c.W, c.stride, c.pad));
    CHECK(grad_ok(&c, &c.x, &c.gx, "conv gx"));
    CHECK(grad_ok(&c, &c.W, &c.gW, "conv gW"));
    CHECK(grad_ok(&c, &c.b, &c.gb, "conv gb"));
    gc_free(&c);
  }
}

static void test_conv2d_matches_a_direct_convolution(void) {
  eg_tensor x = EG_TENSOR_INIT, W = EG_TENSOR_INIT, y = EG_TENSOR_INIT, cols = EG_TENSOR_INIT;
  mk(&x, 4, 1, 1, 3, 3), mk(&W, 4, 1, 1, 2, 2), mk(&y, 4, 1, 1, 2, 2), mk(&cols, 1, 16, 0, 0, 0);
  for (int i = 0; i < 9; i++) eg_data(&x)[i] = (float)(i + 1);
  eg_data(&W)[0] = 1, eg_data(&W)[1] = 0, eg_data(&W)[2] = 0, eg_data(&W)[3] = -1;
  CHECK_OK(eg_conv2d_forward(&y, &cols, &x, &W, NULL, 1, 0));
  for (int i = 0; i < 4; i++) CHECK_NEAR(eg_data(&y)[i], -4.0, 1e-6); /* x[i,j] - x[i+1,j+1] */
  eg_tensor_release(&x), eg_tensor_release(&W), eg_tensor_release(&y), eg_tensor_release(&cols);
}

static void test_conv2d_rejects_mismatched_channels(void) {
  eg_tensor x = EG_TENSOR_INIT, W = EG_TENSOR_INIT, y = EG_TENSOR_INIT, cols = EG_TENSOR_INIT;
  mk(&x, 4, 1, 2, 5, 5), mk(&W, 4, 1, 3, 3, 3), mk(&y, 4, 1, 1, 3, 3), mk(&cols, 1, 100, 0, 0, 0);
  CHECK_ERR(eg_conv2d_forward(&y, &cols, &x, &W, NULL, 1, 0), EG_ESHAPE);
  CHECK(strstr(eg_errmsg(), "channels") != NULL);
  eg_tensor_release(&x), eg_tensor_release(&W), eg_tensor_release(&y), eg_tensor_release(&cols);
}

/* ---- MaxPool2d ---- */
static int fwd_pool(kc *c) { return eg_maxpool2d_forward(&c->y, &c->s1, &c->x, c->k, c->stride, c->pad); }

static void test_maxpool2d_gradients_match_finite_differences(void) {
  int cfg[2][3] = {{2, 2, 0}, {3, 2, 1}}; /* k, stride, pad */
  for (int t = 0; t < 2; t++) {
    kc c = {0};
    c.fwd = fwd_pool, c.k = cfg[t][0], c.stride = cfg[t][1], c.pad = cfg[t][2];
    int64_t N = 2, C = 2, H = 6, W = 5;
    int64_t Ho = eg_conv_out_size(H, c.k, c.stride, c.pad), Wo = eg_conv_out_size(W, c.k, c.stride, c.pad);
    mk(&c.x, 4, N, C, H, W), mk(&c.y, 4, N, C, Ho, Wo), mk(&c.s1, 4, N, C, Ho, Wo), mk(&c.r, 4, N, C, Ho, Wo);
    mk(&c.gx, 4, N, C, H, W);
    /* distinct values 0.05 apart in [-3, 3): a step (at most 0.03) never changes the argmax */
    int64_t n = eg_numel(&c.x);
    int64_t *perm = malloc(sizeof(int64_t) * (size_t)n);
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    eg_rng r;
    eg_rng_seed(&r, 31);
    eg_rng_shuffle(&r, perm, n);
    for (int64_t i = 0; i < n; i++) eg_data(&c.x)[i] = 0.05f * (float)perm[i] - 3.0f;
    free(perm);
    randu(&c.r, 32, -1, 1);
    CHECK_OK(fwd_pool(&c));
    CHECK_OK(eg_maxpool2d_backward(&c.gx, &c.r, &c.s1));
    CHECK(grad_ok(&c, &c.x, &c.gx, "maxpool"));
    gc_free(&c);
  }
}

/* ---- Embedding ---- */
static int fwd_emb(kc *c) { return eg_embedding_forward(&c->y, &c->x, &c->W); }

static void test_embedding_gradients_match_finite_differences(void) {
  kc c = {0};
  c.fwd = fwd_emb;
  mk(&c.x, 2, 2, 3, 0, 0), mk(&c.W, 2, 5, 4, 0, 0), mk(&c.y, 3, 2, 3, 4, 0), mk(&c.r, 3, 2, 3, 4, 0);
  mk(&c.gW, 2, 5, 4, 0, 0);
  float ids[6] = {0, 4, 2, 2, 1, 4}; /* repeated ids accumulate */
  memcpy(eg_data(&c.x), ids, sizeof ids);
  randu(&c.W, 41, -1, 1), randu(&c.r, 42, -1, 1);
  CHECK_OK(fwd_emb(&c));
  CHECK_NEAR(eg_data(&c.y)[4], eg_data(&c.W)[16], 0); /* row 1 is id 4 */
  CHECK_OK(eg_embedding_backward(&c.gW, &c.r, &c.x));
  CHECK(grad_ok(&c, &c.W, &c.gW, "embedding"));
  eg_data(&c.x)[3] = 5; /* out of range */
  CHECK_ERR(fwd_emb(&c), EG_ERANGE);
  eg_data(&c.x)[3] = 1.5f; /* not an integer */
  CHECK_ERR(fwd_emb(&c), EG_ERANGE);
  gc_free(&c);
}

/* ---- no allocation once warm ---- */
static void test_warm_mlp_step_allocates_nothing(void) {
  eg_tensor x = EG_TENSOR_INIT, W1 = EG_TENSOR_INIT, b1 = EG_TENSOR_INIT, W2 = EG_TENSOR_INIT, h = EG_TENSOR_INIT,
            a = EG_TENSOR_INIT, y = EG_TENSOR_INIT, gy = EG_TENSOR_INIT, ga = EG_TENSOR_INIT, gW1 = EG_TENSOR_INIT,
            gb1 = EG_TENSOR_INIT, gW2 = EG_TENSOR_INIT;
  mk(&x, 2, 8, 20, 0, 0), mk(&W1, 2, 16, 20, 0, 0), mk(&b1, 1, 16, 0, 0, 0), mk(&W2, 2, 3, 16, 0, 0);
  mk(&h, 2, 8, 16, 0, 0), mk(&a, 2, 8, 16, 0, 0), mk(&y, 2, 8, 3, 0, 0), mk(&gy, 2, 8, 3, 0, 0);
  mk(&ga, 2, 8, 16, 0, 0), mk(&gW1, 2, 16, 20, 0, 0), mk(&gb1, 1, 16, 0, 0, 0), mk(&gW2, 2, 3, 16, 0, 0);
  randu(&x, 1, -1, 1), randu(&W1, 2, -1, 1), randu(&W2, 3, -1, 1), randu(&gy, 4, -1, 1);
  uint64_t before = 0;
  for (int step = 0; step < 4; step++) {
    if (step == 1) before = eg_alloc_count();
    CHECK_OK(eg_linear_forward(&h, &x, &W1, &b1));
    CHECK_OK(eg_act_forward(&a, &h, EG_ACT_RELU, 0));
    CHECK_OK(eg_linear_forward(&y, &a, &W2, NULL));
    CHECK_OK(eg_linear_backward(&ga, &gW2, NULL, &gy, &a, &W2));
    CHECK_OK(eg_act_backward(&ga, &ga, NULL, &a, EG_ACT_RELU, 0));
    CHECK_OK(eg_linear_backward(NULL, &gW1, &gb1, &ga, &x, &W1));
    CHECK_OK(eg_axpy(&W1, -0.01f, &gW1));
  }
  CHECK(eg_alloc_count() == before);
  eg_tensor *all[] = {&x, &W1, &b1, &W2, &h, &a, &y, &gy, &ga, &gW1, &gb1, &gW2};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) eg_tensor_release(all[i]);
}

int main(void) {
  RUN(test_linear_gradients_match_finite_differences);
  RUN(test_gradient_check_holds_small_entries_to_a_relative_tolerance);
  RUN(test_linear_workspace_path_matches_the_plain_one);
  RUN(test_linear_parameter_gradients_accumulate);
  RUN(test_linear_rejects_wrong_input_width_with_a_clear_message);
  RUN(test_activation_gradients_match_finite_differences);
  RUN(test_gelu_is_the_tanh_approximation);
  RUN(test_softmax_and_logsoftmax_gradients_match_finite_differences);
  RUN(test_logsoftmax_is_stable_for_large_inputs);
  RUN(test_dropout_masks_are_seeded_scaled_and_differentiable);
  RUN(test_layernorm_gradients_match_finite_differences);
  RUN(test_conv2d_gradients_match_finite_differences);
  RUN(test_conv2d_matches_a_direct_convolution);
  RUN(test_conv2d_rejects_mismatched_channels);
  RUN(test_maxpool2d_gradients_match_finite_differences);
  RUN(test_embedding_gradients_match_finite_differences);
  RUN(test_warm_mlp_step_allocates_nothing);
  return CHECK_DONE("nn");
}
