/*
** test_optim.c — optimiser steps against numbers worked out by hand (each
** expected value is written as the arithmetic of the update rule), masks,
** gradient-norm clipping, configuration errors, no allocation per step;
** terms fused into a step give the bits of the separate passes.
*/
#include "check.h"
#include "cl.h"
#include "optim.h"
#include "rng.h"

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
  eg_step_terms t = {.penalty = EG_PENALTY_ANCHOR, .u = &b, .w = &m, .lambda = 1, .omega = &v, .scale = 0.5};
  CHECK_OK(eg_adam_step_terms(&p, &g, &m, &v, &a, 2, NULL, &t));
  t.scale = 1;
  CHECK_OK(eg_sgd_step_terms(&p, &g, &b, &c, 2, NULL, &t));
  CHECK(eg_alloc_count() == before);
  eg_tensor ts[] = {p, g, b, m, v};
  rel(5, ts);
}


/* Fused terms against the separate passes (cl.h's eg_quad_penalty*, the
** step, eg_si_accumulate) over 5,133 elements (several blocks and a
** ragged tail): the same bits, steps 1 to 4 (SGD's first step and later
** ones take different loops), for each penalty form and SI with and
** without pg, with a mask and with clipping. */
#define NT 5133
typedef struct {
  eg_tensor p, g, s1, s2, om, prev;
} side;

static void side_new(side *s, const eg_tensor *p0) {
  vec(&s->p, NT, eg_data(p0));
  vec(&s->g, NT, NULL);
  vec(&s->s1, NT, NULL);
  vec(&s->s2, NT, NULL);
  vec(&s->om, NT, NULL);
  vec(&s->prev, NT, NULL);
}
static void side_free(side *s) {
  eg_tensor ts[] = {s->p, s->g, s->s1, s->s2, s->om, s->prev};
  rel(6, ts);
}
static int same(const eg_tensor *a, const eg_tensor *b) {
  return !memcmp(eg_data(a), eg_data(b), sizeof(float) * (size_t)eg_numel(a));
}

/* kind 0: SGD with momentum and weight decay; 1: Adam; 2: AdamW. */
static void fused_case(int kind, int form, int with_pg, int masked, double clip) {
  eg_rng rr, *r = &rr;
  eg_tensor p0, u, w, task, pg, mask, pen;
  vec(&p0, NT, NULL);
  vec(&u, NT, NULL);
  vec(&w, NT, NULL);
  vec(&task, NT, NULL);
  vec(&pg, NT, NULL);
  vec(&mask, NT, NULL);
  vec(&pen, NT, NULL);
  eg_rng_seed(r, 7);
  eg_fill_normal(&p0, r, 0, 1);
  eg_fill_uniform(&u, r, 0, 1);
  eg_fill_normal(&w, r, 0, 1);
  for (int64_t i = 0; i < NT; i++) P(mask, i) = i % 7 != 3;
  side a, b; /* a: separate passes; b: fused */
  side_new(&a, &p0);
  side_new(&b, &p0);
  eg_sgd_config sc = {.lr = 0.05, .momentum = 0.9, .weight_decay = 0.01};
  eg_adam_config ac = {.lr = 0.01, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.05,
                       .decoupled = kind == 2};
  const double lambda = 0.7, C = 3.5;
  const eg_tensor *mk = masked ? &mask : NULL;
  for (int step = 1; step <= 4; step++) {
    eg_fill_normal(&task, r, 0, 1);
    eg_fill_normal(&pg, r, 0, 1);
    for (int64_t i = 0; i < NT; i++) P(a.g, i) = P(b.g, i) = P(task, i) + 0.1f * P(pg, i);
    memcpy(eg_data(&pen), eg_data(&a.g), sizeof(float) * NT); /* the task gradient, as backward left it */
    memcpy(eg_data(&a.prev), eg_data(&a.p), sizeof(float) * NT);
    double va = 0;
    if (form == EG_PENALTY_ANCHOR) CHECK_OK(eg_quad_penalty(&va, &a.g, &a.p, &w, &u, lambda));
    if (form == EG_PENALTY_FOLDED) CHECK_OK(eg_quad_penalty_folded(&va, &a.g, &a.p, &u, &w, C, lambda));
    eg_step_terms t = {.penalty = form, .u = &u, .w = &w, .lambda = lambda, .C = form == EG_PENALTY_FOLDED ? C : 0,
                       .omega = &b.om, .pg = with_pg ? &pg : NULL, .scale = 1};
    if (clip > 0) {
      eg_tensor *gs[] = {&a.g};
      double na = 0, sb = 0;
      CHECK_OK(eg_clip_grad_norm(gs, 1, clip, &na));
      CHECK_OK(eg_grad_sumsq_terms(&sb, &b.p, &b.g, &t));
      CHECK(sqrt(sb) == na);
      double scale = clip / (sqrt(sb) + 1e-6);
      t.scale = scale < 1 ? scale : 1;
      CHECK(t.scale < 1);
    }
    if (kind == 0) {
      CHECK_OK(eg_sgd_step(&a.p, &a.g, &a.s1, &sc, step, mk));
      CHECK_OK(eg_sgd_step_terms(&b.p, &b.g, &b.s1, &sc, step, mk, &t));
    } else {
      CHECK_OK(eg_adam_step(&a.p, &a.g, &a.s1, &a.s2, &ac, step, mk));
      CHECK_OK(eg_adam_step_terms(&b.p, &b.g, &b.s1, &b.s2, &ac, step, mk, &t));
    }
    CHECK_OK(eg_si_accumulate(&a.om, &a.prev, &pen, with_pg ? &pg : NULL, &a.p));
    CHECK(same(&a.p, &b.p));
    CHECK(same(&a.s1, &b.s1));
    CHECK(same(&a.om, &b.om));
    if (form) CHECK(t.have_value && t.value == va && va > 0);
  }
  side_free(&a);
  side_free(&b);
  eg_tensor ts[] = {p0, u, w, task, pg, mask, pen};
  rel(7, ts);
}

static void test_fused_terms_give_the_bits_of_separate_passes(void) {
  for (int kind = 0; kind < 3; kind++)
    for (int form = 0; form <= EG_PENALTY_FOLDED; form++) {
      fused_case(kind, form, form != 1, 0, 0);
      fused_case(kind, form, form == 1, 1, 0);
    }
  fused_case(0, EG_PENALTY_FOLDED, 1, 0, 1.0);
  fused_case(1, EG_PENALTY_ANCHOR, 0, 1, 1.0);
}

static void test_fused_terms_reject_bad_input(void) {
  eg_tensor p, g, m, v, small;
  vec(&p, 4, NULL);
  vec(&g, 4, NULL);
  vec(&m, 4, NULL);
  vec(&v, 4, NULL);
  vec(&small, 3, NULL);
  eg_adam_config a = {.lr = 0.1, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
  eg_sgd_config c = {.lr = 0.1};
  eg_step_terms t = {.penalty = 3, .scale = 1};
  CHECK_ERR(eg_adam_step_terms(&p, &g, &m, &v, &a, 1, NULL, &t), EG_EINVAL);
  t = (eg_step_terms){.penalty = EG_PENALTY_FOLDED, .u = &p, .w = &small, .lambda = 1, .scale = 1};
  CHECK_ERR(eg_sgd_step_terms(&p, &g, NULL, &c, 1, NULL, &t), EG_ESHAPE);
  CHECK(strstr(eg_errmsg(), "weighted anchors") != NULL);
  t = (eg_step_terms){.penalty = EG_PENALTY_ANCHOR, .u = &p, .w = &g, .lambda = NAN, .scale = 1};
  CHECK_ERR(eg_sgd_step_terms(&p, &g, NULL, &c, 1, NULL, &t), EG_EINVAL);
  t = (eg_step_terms){.omega = &small, .scale = 1};
  CHECK_ERR(eg_adam_step_terms(&p, &g, &m, &v, &a, 1, NULL, &t), EG_ESHAPE);
  t = (eg_step_terms){.scale = 0};
  CHECK_ERR(eg_sgd_step_terms(&p, &g, NULL, &c, 1, NULL, &t), EG_EINVAL);
  double s = 0;
  t = (eg_step_terms){.penalty = EG_PENALTY_ANCHOR, .u = &small, .w = &g, .lambda = 1, .scale = 1};
  CHECK_ERR(eg_grad_sumsq_terms(&s, &p, &g, &t), EG_ESHAPE);
  /* nothing moved */
  for (int i = 0; i < 4; i++) CHECK(P(p, i) == 0);
  eg_tensor ts[] = {p, g, m, v, small};
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
  RUN(test_fused_terms_give_the_bits_of_separate_passes);
  RUN(test_fused_terms_reject_bad_input);
  return CHECK_DONE("optim");
}
