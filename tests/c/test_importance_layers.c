/*
** test_importance_layers.c — the per-sample importance of Conv2d, LayerNorm,
** Embedding and Linear over sequences (core/cl_importance.c) against the sum
** over samples of h(that sample's gradient), each gradient taken by the
** layer's own backward kernel on the sample alone; both h (square and
** absolute value); and the errors for inputs that do not fit.
*/
#include "check.h"
#include "cl.h"
#include "nn.h"

static eg_rng rng;

static void rand_tensor(eg_tensor *t, int ndim, const int64_t *shape, float lo, float hi) {
  eg_tensor_new(t, ndim, shape);
  eg_fill_uniform(t, &rng, lo, hi);
}

/* want += scale * h(g), element-wise */
static void add_h(eg_tensor *want, const eg_tensor *g, float scale, int absolute) {
  for (int64_t i = 0; i < eg_numel(g); i++) {
    float v = eg_data(g)[i];
    eg_data(want)[i] += scale * (absolute ? fabsf(v) : v * v);
  }
}

/* max |a - b| / max |b| */
static double rel_err(const eg_tensor *a, const eg_tensor *b) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < eg_numel(b); i++) {
    num = fmax(num, fabs((double)eg_data(a)[i] - eg_data(b)[i]));
    den = fmax(den, fabs((double)eg_data(b)[i]));
  }
  return den > 0 ? num / den : num;
}

static void sample(eg_tensor *dst, const eg_tensor *src, int64_t n) { eg_narrow(dst, src, 0, n, 1); }

static void conv_case(int absolute, int stride, int pad, int use_ws) {
  enum { N = 4, C = 3, H = 7, W = 6, O = 5, K = 3 };
  int Ho = (H + 2 * pad - K) / stride + 1, Wo = (W + 2 * pad - K) / stride + 1;
  int64_t sx[4] = {N, C, H, W}, sd[4] = {N, O, Ho, Wo}, sw[4] = {O, C, K, K}, sb[1] = {O};
  int64_t scols[1] = {C * K * K * Ho * Wo}, sws[1] = {C * K * K * Ho * Wo + O * C * K * K};
  eg_tensor x = EG_TENSOR_INIT, d = EG_TENSOR_INIT, FW = EG_TENSOR_INIT, Fb = EG_TENSOR_INIT;
  eg_tensor wantW = EG_TENSOR_INIT, wantb = EG_TENSOR_INIT, gW = EG_TENSOR_INIT, gb = EG_TENSOR_INIT;
  eg_tensor cols = EG_TENSOR_INIT, ws = EG_TENSOR_INIT, xn = EG_TENSOR_INIT, dn = EG_TENSOR_INIT;
  rand_tensor(&x, 4, sx, -1, 1), rand_tensor(&d, 4, sd, -1, 1);
  eg_tensor_new(&FW, 4, sw), eg_tensor_new(&Fb, 1, sb), eg_tensor_new(&wantW, 4, sw), eg_tensor_new(&wantb, 1, sb);
  eg_tensor_new(&gW, 4, sw), eg_tensor_new(&gb, 1, sb), eg_tensor_new(&cols, 1, scols), eg_tensor_new(&ws, 1, sws);
  for (int64_t n = 0; n < N; n++) {
    sample(&xn, &x, n), sample(&dn, &d, n);
    eg_fill(&gW, 0), eg_fill(&gb, 0);
    CHECK_OK(eg_conv2d_backward(NULL, &gW, &gb, &cols, &dn, &xn, &FW, stride, pad));
    add_h(&wantW, &gW, 0.25f, absolute), add_h(&wantb, &gb, 0.25f, absolute);
  }
  CHECK_OK(eg_conv2d_h_grad_accumulate(&FW, &Fb, &d, &x, stride, pad, 0.25f, absolute, use_ws ? &ws : NULL));
  CHECK(rel_err(&FW, &wantW) < 1e-5);
  CHECK(rel_err(&Fb, &wantb) < 1e-5);
  /* it accumulates: a second call doubles */
  CHECK_OK(eg_conv2d_h_grad_accumulate(&FW, NULL, &d, &x, stride, pad, 0.25f, absolute, NULL));
  for (int64_t i = 0; i < eg_numel(&wantW); i++) eg_data(&wantW)[i] *= 2;
  CHECK(rel_err(&FW, &wantW) < 1e-5);
  eg_tensor *all[] = {&x, &d, &FW, &Fb, &wantW, &wantb, &gW, &gb, &cols, &ws, &xn, &dn};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) eg_tensor_release(all[i]);
}

static void test_conv2d_importance_is_the_sum_of_per_sample_h_gradients(void) {
  conv_case(0, 1, 1, 0);
  conv_case(1, 1, 1, 1);
  conv_case(0, 2, 0, 1);
  conv_case(1, 2, 1, 0);
}

static void test_conv2d_importance_rejects_misfits_and_a_short_workspace(void) {
  int64_t sx[4] = {2, 3, 5, 5}, sd[4] = {2, 4, 5, 5}, sw[4] = {4, 3, 3, 3}, sb[1] = {4}, s1[1] = {10};
  int64_t sd_bad[4] = {2, 4, 4, 5}, sw_bad[4] = {4, 2, 3, 3};
  eg_tensor x = EG_TENSOR_INIT, d = EG_TENSOR_INIT, FW = EG_TENSOR_INIT, Fb = EG_TENSOR_INIT, ws = EG_TENSOR_INIT;
  eg_tensor db = EG_TENSOR_INIT, Wb = EG_TENSOR_INIT;
  rand_tensor(&x, 4, sx, -1, 1), rand_tensor(&d, 4, sd, -1, 1), eg_tensor_new(&FW, 4, sw);
  eg_tensor_new(&Fb, 1, sb), eg_tensor_new(&ws, 1, s1), eg_tensor_new(&db, 4, sd_bad), eg_tensor_new(&Wb, 4, sw_bad);
  CHECK_ERR(eg_conv2d_h_grad_accumulate(&FW, &Fb, &db, &x, 1, 1, 1, 0, NULL), EG_ESHAPE);
  CHECK(strstr(eg_errmsg(), "conv2d_h_grad_accumulate: delta [2x4x4x5], expected [2x4x5x5]") != NULL);
  CHECK_ERR(eg_conv2d_h_grad_accumulate(&Wb, NULL, &d, &x, 1, 1, 1, 0, NULL), EG_ESHAPE);
  CHECK(strstr(eg_errmsg(), "input [2x3x5x5] and weight importance [4x2x3x3] do not fit") != NULL);
  CHECK_ERR(eg_conv2d_h_grad_accumulate(&FW, &Fb, &d, &x, 1, 1, 1, 0, &ws), EG_ESHAPE);
  CHECK(strstr(eg_errmsg(), "workspace has 10 floats, needs 783") != NULL);
  CHECK_ERR(eg_conv2d_h_grad_accumulate(&FW, &Fb, &d, &x, 0, 1, 1, 0, NULL), EG_EINVAL);
  CHECK_ERR(eg_conv2d_h_grad_accumulate(&FW, &ws, &d, &x, 1, 1, 1, 0, NULL), EG_ESHAPE);
  CHECK(strstr(eg_errmsg(), "bias importance has 10 elements, expected 4") != NULL);
  eg_tensor *all[] = {&x, &d, &FW, &Fb, &ws, &db, &Wb};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) eg_tensor_release(all[i]);
}

static void test_layernorm_importance_sums_a_sample_s_positions_before_h(void) {
  enum { N = 3, T = 4, D = 5 };
  for (int absolute = 0; absolute < 2; absolute++)
    for (int seq = 0; seq < 2; seq++) {
      int64_t sx3[3] = {N, T, D}, sx2[2] = {N, D}, sD[1] = {D}, srows[1] = {seq ? N * T : N};
      int64_t R = seq ? T : 1;
      eg_tensor x = EG_TENSOR_INIT, d = EG_TENSOR_INIT, y = EG_TENSOR_INIT, w = EG_TENSOR_INIT, b = EG_TENSOR_INIT;
      eg_tensor mean = EG_TENSOR_INIT, rstd = EG_TENSOR_INIT, Fw = EG_TENSOR_INIT, Fb = EG_TENSOR_INIT;
      eg_tensor ww = EG_TENSOR_INIT, wb = EG_TENSOR_INIT, gw = EG_TENSOR_INIT, gb = EG_TENSOR_INIT;
      eg_tensor xn = EG_TENSOR_INIT, dn = EG_TENSOR_INIT, mn = EG_TENSOR_INIT, rn = EG_TENSOR_INIT;
      rand_tensor(&x, seq ? 3 : 2, seq ? sx3 : sx2, -2, 2), rand_tensor(&d, seq ? 3 : 2, seq ? sx3 : sx2, -1, 1);
      eg_tensor_new(&y, seq ? 3 : 2, seq ? sx3 : sx2), rand_tensor(&w, 1, sD, 0.5f, 1.5f), rand_tensor(&b, 1, sD, -1, 1);
      eg_tensor_new(&mean, 1, srows), eg_tensor_new(&rstd, 1, srows);
      eg_tensor_new(&Fw, 1, sD), eg_tensor_new(&Fb, 1, sD), eg_tensor_new(&ww, 1, sD), eg_tensor_new(&wb, 1, sD);
      eg_tensor_new(&gw, 1, sD), eg_tensor_new(&gb, 1, sD);
      CHECK_OK(eg_layernorm_forward(&y, &mean, &rstd, &x, &w, &b, 1e-5f));
      for (int64_t n = 0; n < N; n++) {
        sample(&xn, &x, n), sample(&dn, &d, n);
        eg_narrow(&mn, &mean, 0, n * R, R), eg_narrow(&rn, &rstd, 0, n * R, R);
        eg_fill(&gw, 0), eg_fill(&gb, 0);
        CHECK_OK(eg_layernorm_backward(NULL, &gw, &gb, &dn, &xn, &mn, &rn, &w));
        add_h(&ww, &gw, 0.5f, absolute), add_h(&wb, &gb, 0.5f, absolute);
      }
      CHECK_OK(eg_layernorm_h_grad_accumulate(&Fw, &Fb, &d, &x, &mean, &rstd, 0.5f, absolute));
      CHECK(rel_err(&Fw, &ww) < 1e-5);
      CHECK(rel_err(&Fb, &wb) < 1e-5);
      CHECK_ERR(eg_layernorm_h_grad_accumulate(&Fw, &Fb, &d, &x, &rn, &rstd, 1, absolute), EG_ESHAPE);
      CHECK(strstr(eg_errmsg(), "layernorm_h_grad_accumulate: mean and rstd need") != NULL);
      CHECK_ERR(eg_layernorm_h_grad_accumulate(&Fw, &Fb, &dn, &x, &mean, &rstd, 1, absolute), EG_ESHAPE);
      eg_tensor *all[] = {&x, &d, &y, &w, &b, &mean, &rstd, &Fw, &Fb, &ww, &wb, &gw, &gb, &xn, &dn, &mn, &rn};
      for (size_t i = 0; i < sizeof all / sizeof *all; i++) eg_tensor_release(all[i]);
    }
}

static void test_embedding_importance_adds_repeated_ids_within_a_sample_first(void) {
  enum { N = 3, L = 5, V = 6, D = 4 };
  /* sample 0 repeats id 2 three times, sample 2 is one id five times */
  float id_values[N * L] = {2, 0, 2, 5, 2, 1, 3, 4, 0, 5, 4, 4, 4, 4, 4};
  int64_t sids[2] = {N, L}, sd[3] = {N, L, D}, sw[2] = {V, D};
  for (int absolute = 0; absolute < 2; absolute++) {
    eg_tensor ids = EG_TENSOR_INIT, d = EG_TENSOR_INIT, FW = EG_TENSOR_INIT, want = EG_TENSOR_INIT;
    eg_tensor gW = EG_TENSOR_INIT, in = EG_TENSOR_INIT, dn = EG_TENSOR_INIT;
    eg_tensor_new(&ids, 2, sids), rand_tensor(&d, 3, sd, -1, 1);
    eg_tensor_new(&FW, 2, sw), eg_tensor_new(&want, 2, sw), eg_tensor_new(&gW, 2, sw);
    memcpy(eg_data(&ids), id_values, sizeof id_values);
    for (int64_t n = 0; n < N; n++) {
      sample(&in, &ids, n), sample(&dn, &d, n);
      eg_fill(&gW, 0);
      CHECK_OK(eg_embedding_backward(&gW, &dn, &in));
      add_h(&want, &gW, 2.0f, absolute);
    }
    CHECK_OK(eg_embedding_h_grad_accumulate(&FW, &d, &ids, 2.0f, absolute));
    CHECK(rel_err(&FW, &want) < 1e-5);
    /* not the sum of per-position h: sample 2's five rows of id 4 add up first */
    if (!absolute) {
      double per_pos = 0;
      for (int64_t n = 0; n < N; n++)
        for (int64_t i = 0; i < L; i++)
          if (id_values[n * L + i] == 4) per_pos += 2.0 * eg_data(&d)[(n * L + i) * D] * eg_data(&d)[(n * L + i) * D];
      CHECK(fabs(eg_data(&FW)[4 * D] - per_pos) > 1e-3);
    }
    eg_data(&ids)[7] = 6;
    CHECK_ERR(eg_embedding_h_grad_accumulate(&FW, &d, &ids, 1, absolute), EG_ERANGE);
    CHECK(strstr(eg_errmsg(), "embedding_h_grad_accumulate: id 6 at position 7 is not an integer in [0, 6)") != NULL);
    eg_data(&ids)[7] = 4;
    CHECK_ERR(eg_embedding_h_grad_accumulate(&FW, &dn, &ids, 1, absolute), EG_ESHAPE);
    eg_tensor *all[] = {&ids, &d, &FW, &want, &gW, &in, &dn};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) eg_tensor_release(all[i]);
  }
}

static void test_linear_importance_over_positions_is_per_sample(void) {
  enum { N = 4, T = 3, I = 5, O = 2 };
  int64_t sx[3] = {N, T, I}, sd[3] = {N, T, O}, sw[2] = {O, I}, sb[1] = {O};
  for (int absolute = 0; absolute < 2; absolute++) {
    eg_tensor x = EG_TENSOR_INIT, d = EG_TENSOR_INIT, FW = EG_TENSOR_INIT, Fb = EG_TENSOR_INIT;
    eg_tensor ww = EG_TENSOR_INIT, wb = EG_TENSOR_INIT, gW = EG_TENSOR_INIT, gb = EG_TENSOR_INIT;
    eg_tensor xn = EG_TENSOR_INIT, dn = EG_TENSOR_INIT;
    rand_tensor(&x, 3, sx, -1, 1), rand_tensor(&d, 3, sd, -1, 1);
    eg_tensor_new(&FW, 2, sw), eg_tensor_new(&Fb, 1, sb), eg_tensor_new(&ww, 2, sw), eg_tensor_new(&wb, 1, sb);
    eg_tensor_new(&gW, 2, sw), eg_tensor_new(&gb, 1, sb);
    for (int64_t n = 0; n < N; n++) {
      sample(&xn, &x, n), sample(&dn, &d, n);
      eg_fill(&gW, 0), eg_fill(&gb, 0);
      CHECK_OK(eg_linear_backward(NULL, &gW, &gb, &dn, &xn, &FW));
      add_h(&ww, &gW, 1, absolute), add_h(&wb, &gb, 1, absolute);
    }
    CHECK_OK((absolute ? eg_linear_abs_grad_accumulate : eg_linear_sq_grad_accumulate)(&FW, &Fb, &d, &x, 1));
    CHECK(rel_err(&FW, &ww) < 1e-5);
    CHECK(rel_err(&Fb, &wb) < 1e-5);
    CHECK_ERR(eg_linear_sq_grad_accumulate(&FW, &Fb, &d, &xn, 1), EG_ESHAPE);
    CHECK(strstr(eg_errmsg(), "delta [4x3x2], input [1x3x5] and weight importance [2x5] do not fit") != NULL);
    eg_tensor *all[] = {&x, &d, &FW, &Fb, &ww, &wb, &gW, &gb, &xn, &dn};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) eg_tensor_release(all[i]);
  }
}

int main(void) {
  eg_rng_seed(&rng, 11);
  RUN(test_conv2d_importance_is_the_sum_of_per_sample_h_gradients);
  RUN(test_conv2d_importance_rejects_misfits_and_a_short_workspace);
  RUN(test_layernorm_importance_sums_a_sample_s_positions_before_h);
  RUN(test_embedding_importance_adds_repeated_ids_within_a_sample_first);
  RUN(test_linear_importance_over_positions_is_per_sample);
  return CHECK_DONE("c/importance_layers");
}
