/*
** test_optim.c — optimiser steps against numbers worked out by hand (each
** expected value is written as the arithmetic of the update rule), masks,
** gradient-norm clipping, configuration errors, no allocation per step.
*/
#include "check.h"
#include "optim.h"

static void vec(eg_tensor *t, int64_t n, const float *v) {
  int64_t sh[1] = {n};
  *t = (eg_tensor)EG_TENSOR_INIT; /* callers declare without initialising */
  eg_tensor_new(t, 1, sh);
  if (v)
    for (int64_t i = 0; i < n; i++) eg_data(t)[i] = v[i];
}
static void rel(int n, eg_tensor *ts) {
  for (int i = 0; i < n; i++) eg_tensor_release(&ts[i]);
}
#define P(t, i) (eg_data(&(t))[i])

static void test_sgd_plain_step(void) {
  eg_tensor p, g;
  vec(&p, 2, (float[]){1, -2});
  vec(&g, 2, (float[]){0.5f, 1});
  eg_sgd_config c = {.lr = 0.1};
  CHECK_OK(eg_sgd_step(&p, &g, NULL, &c, 1, NULL));
  CHECK_NEAR(P(p, 0), 1 - 0.1 * 0.5, 1e-7);
  CHECK_NEAR(P(p, 1), -2 - 0.1 * 1, 1e-7);
  eg_tensor ts[] = {p, g};
  rel(2, ts);
}

static void test_sgd_momentum_three_steps(void) {
  eg_tensor p, g, b;
  vec(&p, 1, (float[]){1});
  vec(&g, 1, (float[]){1});
  vec(&b, 1, NULL);
  eg_sgd_config c = {.lr = 0.1, .momentum = 0.9};
  /* buf: 1, 0.9*1+1 = 1.9, 0.9*1.9+1 = 2.71; p: 1-0.1, -0.19, -0.271 */
  CHECK_OK(eg_sgd_step(&p, &g, &b, &c, 1, NULL));
  CHECK_NEAR(P(b, 0), 1, 1e-7);
  CHECK_NEAR(P(p, 0), 0.9, 1e-6);
  CHECK_OK(eg_sgd_step(&p, &g, &b, &c, 2, NULL));
  CHECK_NEAR(P(b, 0), 1.9, 1e-6);
  CHECK_NEAR(P(p, 0), 0.71, 1e-6);
  CHECK_OK(eg_sgd_step(&p, &g, &b, &c, 3, NULL));
  CHECK_NEAR(P(b, 0), 2.71, 1e-6);
  CHECK_NEAR(P(p, 0), 0.439, 1e-6);
  eg_tensor ts[] = {p, g, b};
  rel(3, ts);
}

static void test_sgd_dampening_skips_the_first_step(void) {
  eg_tensor p, g, b;
  vec(&p, 1, (float[]){1});
  vec(&g, 1, (float[]){1});
  vec(&b, 1, NULL);
  eg_sgd_config c = {.lr = 0.1, .momentum = 0.9, .dampening = 0.5};
  CHECK_OK(eg_sgd_step(&p, &g, &b, &c, 1, NULL)); /* buf = g = 1 (PyTorch) */
  CHECK_NEAR(P(p, 0), 0.9, 1e-6);
  CHECK_OK(eg_sgd_step(&p, &g, &b, &c, 2, NULL)); /* buf = 0.9 + 0.5*1 = 1.4 */
  CHECK_NEAR(P(b, 0), 1.4, 1e-6);
  CHECK_NEAR(P(p, 0), 0.9 - 0.14, 1e-6);
  eg_tensor ts[] = {p, g, b};
  rel(3, ts);
}

static void test_sgd_nesterov_two_steps(void) {
  eg_tensor p, g, b;
  vec(&p, 1, (float[]){1});
  vec(&g, 1, (float[]){1});
  vec(&b, 1, NULL);
  eg_sgd_config c = {.lr = 0.1, .momentum = 0.9, .nesterov = 1};
  /* step 1: buf = 1, d = 1 + 0.9*1 = 1.9, p = 1 - 0.19 = 0.81
  ** step 2: buf = 0.9 + 1 = 1.9, d = 1 + 0.9*1.9 = 2.71, p = 0.81 - 0.271 = 0.539 */
  CHECK_OK(eg_sgd_step(&p, &g, &b, &c, 1, NULL));
  CHECK_NEAR(P(p, 0), 0.81, 1e-6);
  CHECK_OK(eg_sgd_step(&p, &g, &b, &c, 2, NULL));
  CHECK_NEAR(P(p, 0), 0.539, 1e-6);
  eg_tensor ts[] = {p, g, b};
  rel(3, ts);
}

static void test_sgd_weight_decay_two_steps(void) {
  eg_tensor p, g;
  vec(&p, 1, (float[]){2});
  vec(&g, 1, (float[]){0.5f});
  eg_sgd_config c = {.lr = 0.1, .weight_decay = 0.1};
  /* d = 0.5 + 0.1*2 = 0.7 -> 1.93; d = 0.5 + 0.193 = 0.693 -> 1.8607 */
  CHECK_OK(eg_sgd_step(&p, &g, NULL, &c, 1, NULL));
  CHECK_NEAR(P(p, 0), 1.93, 1e-6);
  CHECK_OK(eg_sgd_step(&p, &g, NULL, &c, 2, NULL));
  CHECK_NEAR(P(p, 0), 1.8607, 1e-6);
  eg_tensor ts[] = {p, g};
  rel(2, ts);
}

/* Two Adam steps with g = 0.5 then -1 from p = 1, lr 0.1, betas 0.9/0.999. */
static void adam_two_steps(int decoupled, double wd, double *p1, double *p2) {
  eg_tensor p, g, m, v;
  vec(&p, 1, (float[]){1});
  vec(&g, 1, (float[]){0.5f});
  vec(&m, 1, NULL);
  vec(&v, 1, NULL);
  eg_adam_config c = {.lr = 0.1, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = wd,
                      .decoupled = decoupled};
  CHECK_OK(eg_adam_step(&p, &g, &m, &v, &c, 1, NULL));
  *p1 = P(p, 0);
  P(g, 0) = -1;
  CHECK_OK(eg_adam_step(&p, &g, &m, &v, &c, 2, NULL));
  *p2 = P(p, 0);
  eg_tensor ts[] = {p, g, m, v};
  rel(4, ts);
}

static void test_adam_two_steps_by_hand(void) {
  double p1, p2;
  adam_two_steps(0, 0, &p1, &p2);
  /* step 1: m = 0.05, v = 0.00025, m^ = 0.5, v^ = 0.25: p = 1 - 0.1*0.5/0.5 */
  CHECK_NEAR(p1, 0.9, 1e-6);
  /* step 2: m = 0.045 - 0.1 = -0.055, v = 0.00024975 + 0.001 = 0.00124975,
  ** m^ = -0.055/0.19, v^ = 0.00124975/0.001999 */
  double mh = -0.055 / 0.19, vh = 0.00124975 / 0.001999;
  CHECK_NEAR(p2, 0.9 - 0.1 * mh / (sqrt(vh) + 1e-8), 2e-6);
  CHECK_NEAR(p2, 0.936610, 2e-6);
}

static void test_adam_l2_weight_decay_adds_to_the_gradient(void) {
  double p1, p2;
  adam_two_steps(0, 0.1, &p1, &p2);
  /* g1 = 0.5 + 0.1*1 = 0.6: m^ = 0.6, v^ = 0.36, p = 0.9 */
  CHECK_NEAR(p1, 0.9, 1e-6);
  /* g2 = -1 + 0.1*0.9 = -0.91: m = 0.054 - 0.091 = -0.037,
  ** v = 0.999*0.00036 + 0.001*0.8281 = 0.00118774 */
  double mh = -0.037 / 0.19, vh = 0.00118774 / 0.001999;
  CHECK_NEAR(p2, 0.9 - 0.1 * mh / (sqrt(vh) + 1e-8), 2e-6);
}

static void test_adamw_decays_the_weights_directly(void) {
  double p1, p2;
  adam_two_steps(1, 0.1, &p1, &p2);
  /* p = 1*(1 - 0.1*0.1) - 0.1 = 0.89 */
  CHECK_NEAR(p1, 0.89, 1e-6);
  /* p = 0.89*0.99 - 0.1*m^/(sqrt(v^)+eps), the moments as in plain Adam */
  double mh = -0.055 / 0.19, vh = 0.00124975 / 0.001999;
  CHECK_NEAR(p2, 0.89 * 0.99 - 0.1 * mh / (sqrt(vh) + 1e-8), 2e-6);
}

static void test_mask_keeps_frozen_elements_and_their_state(void) {
  eg_tensor p, g, b, mk, m, v;
  vec(&p, 2, (float[]){1, 1});
  vec(&g, 2, (float[]){1, 1});
  vec(&b, 2, NULL);
  vec(&mk, 2, (float[]){1, 0});
  vec(&m, 2, NULL);
  vec(&v, 2, NULL);
  eg_sgd_config c = {.lr = 0.1, .momentum = 0.9, .weight_decay = 0.01};
  CHECK_OK(eg_sgd_step(&p, &g, &b, &c, 1, &mk));
  CHECK_OK(eg_sgd_step(&p, &g, &b, &c, 2, &mk));
  CHECK(P(p, 1) == 1.0f && P(b, 1) == 0.0f);
  CHECK(P(p, 0) < 0.8f);
  eg_adam_config a = {.lr = 0.1, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.1, .decoupled = 1};
  CHECK_OK(eg_adam_step(&p, &g, &m, &v, &a, 1, &mk));
  CHECK(P(p, 1) == 1.0f && P(m, 1) == 0.0f && P(v, 1) == 0.0f);
  CHECK(P(m, 0) != 0.0f);
  eg_tensor ts[] = {p, g, b, mk, m, v};
  rel(6, ts);
}

static void test_clip_grad_norm_scales_all_groups_jointly(void) {
  eg_tensor g1, g2;
  vec(&g1, 2, (float[]){3, 0});
  vec(&g2, 1, (float[]){4});
  eg_tensor *gs[] = {&g1, &g2};
  double norm, s = 0;
  CHECK_OK(eg_grad_sumsq(&s, gs, 2));
  CHECK_NEAR(s, 25, 1e-9);
  CHECK_OK(eg_clip_grad_norm(gs, 2, 10, &norm)); /* under the limit: unchanged */
  CHECK_NEAR(norm, 5, 1e-9);
  CHECK(P(g1, 0) == 3.0f && P(g2, 0) == 4.0f);
  CHECK_OK(eg_clip_grad_norm(gs, 2, 1, &norm));
  CHECK_NEAR(norm, 5, 1e-9);
  CHECK_NEAR(P(g1, 0), 0.6, 1e-6);
  CHECK_NEAR(P(g2, 0), 0.8, 1e-6);
  CHECK_ERR(eg_clip_grad_norm(gs, 2, 0, &norm), EG_EINVAL);
  P(g1, 1) = INFINITY;
  CHECK_ERR(eg_clip_grad_norm(gs, 2, 1, &norm), EG_EINVAL);
  eg_tensor ts[] = {g1, g2};
  rel(2, ts);
}

static void test_optimisers_reject_bad_configuration_and_sizes(void) {
  eg_tensor p, g, g3, b;
  vec(&p, 2, NULL);
  vec(&g, 2, NULL);
  vec(&g3, 3, NULL);
  vec(&b, 2, NULL);
  eg_sgd_config c = {.lr = -0.1};
  CHECK_ERR(eg_sgd_step(&p, &g, NULL, &c, 1, NULL), EG_EINVAL);
  CHECK(strstr(eg_errmsg(), "sgd: learning rate -0.1 must be finite and >= 0") != NULL);
  c = (eg_sgd_config){.lr = 0.1, .nesterov = 1};
  CHECK_ERR(eg_sgd_step(&p, &g, NULL, &c, 1, NULL), EG_EINVAL);
  c = (eg_sgd_config){.lr = 0.1, .momentum = 1.5};
  CHECK_ERR(eg_sgd_check(&c), EG_EINVAL);
  c = (eg_sgd_config){.lr = 0.1};
  CHECK_ERR(eg_sgd_step(&p, &g3, NULL, &c, 1, NULL), EG_ESHAPE);
  CHECK(strstr(eg_errmsg(), "sgd: gradients has 3 elements, the parameters have 2") != NULL);
  CHECK_ERR(eg_sgd_step(&p, &g, NULL, &c, 0, NULL), EG_EINVAL);
  c.momentum = 0.9;
  CHECK_ERR(eg_sgd_step(&p, &g, NULL, &c, 1, NULL), EG_ESTATE); /* momentum needs a buffer */
  eg_adam_config a = {.lr = 0.1, .beta1 = 1.0, .beta2 = 0.999, .eps = 1e-8};
  CHECK_ERR(eg_adam_step(&p, &g, &b, &b, &a, 1, NULL), EG_EINVAL);
  a.beta1 = 0.9;
  a.eps = 0;
  CHECK_ERR(eg_adam_check(&a), EG_EINVAL);
  a.eps = 1e-8;
  CHECK_ERR(eg_adam_step(&p, &g, &g3, &b, &a, 1, NULL), EG_ESHAPE);
  eg_tensor ts[] = {p, g, g3, b};
  rel(4, ts);
}

static void test_steps_do_not_allocate(void) {
  eg_tensor p, g, b, m, v;
  vec(&p, 1000, NULL);
  vec(&g, 1000, NULL);
  vec(&b, 1000, NULL);
  vec(&m, 1000, NULL);
  vec(&v, 1000, NULL);
  eg_fill(&g, 0.5f);
  eg_sgd_config c = {.lr = 0.1, .momentum = 0.9, .nesterov = 1};
  eg_adam_config a = {.lr = 0.1, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
  eg_tensor *gs[] = {&g};
  double norm;
  uint64_t before = eg_alloc_count();
  CHECK_OK(eg_sgd_step(&p, &g, &b, &c, 1, NULL));
  CHECK_OK(eg_adam_step(&p, &g, &m, &v, &a, 1, NULL));
  CHECK_OK(eg_clip_grad_norm(gs, 1, 1, &norm));
  CHECK(eg_alloc_count() == before);
  eg_tensor ts[] = {p, g, b, m, v};
  rel(5, ts);
}

int main(void) {
  RUN(test_sgd_plain_step);
  RUN(test_sgd_momentum_three_steps);
  RUN(test_sgd_dampening_skips_the_first_step);
  RUN(test_sgd_nesterov_two_steps);
  RUN(test_sgd_weight_decay_two_steps);
  RUN(test_adam_two_steps_by_hand);
  RUN(test_adam_l2_weight_decay_adds_to_the_gradient);
  RUN(test_adamw_decays_the_weights_directly);
  RUN(test_mask_keeps_frozen_elements_and_their_state);
  RUN(test_clip_grad_norm_scales_all_groups_jointly);
  RUN(test_optimisers_reject_bad_configuration_and_sizes);
  RUN(test_steps_do_not_allocate);
  return CHECK_DONE("optim");
}
