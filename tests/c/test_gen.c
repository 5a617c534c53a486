/*
** test_gen.c — A-GEM's gradient projection (cl_replay.c) and the VAE's
** kernels (gen.c): the projection leaves g.g_ref = 0 when they conflict and
** g untouched otherwise, over several groups; the reparameterisation's and
** the KL term's gradients through gradcheck.h (central differences with
** their mutation tests), their values by hand, and the misfits' errors.
*/
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "gradcheck.h"
#include "cl.h"
#include "gen.h"

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
static void randn(eg_tensor *t, uint64_t seed, float std) {
  eg_rng r;
  eg_rng_seed(&r, seed);
  eg_fill_normal(t, &r, 0.0f, std);
}
#define P(t, i) (eg_data(&(t))[i])

static double dot2(eg_tensor *a0, eg_tensor *a1, eg_tensor *b0, eg_tensor *b1) {
  double s = 0;
  for (int64_t i = 0; i < eg_numel(a0); i++) s += (double)P(*a0, i) * P(*b0, i);
  for (int64_t i = 0; i < eg_numel(a1); i++) s += (double)P(*a1, i) * P(*b1, i);
  return s;
}

static void test_agem_projects_a_conflicting_gradient_over_every_group(void) {
  eg_tensor g0 = EG_TENSOR_INIT, g1 = EG_TENSOR_INIT, r0 = EG_TENSOR_INIT, r1 = EG_TENSOR_INIT;
  eg_tensor o0 = EG_TENSOR_INIT, o1 = EG_TENSOR_INIT;
  vec(&g0, 5000, NULL); /* past one 4096-element chunk */
  vec(&g1, 7, NULL);
  vec(&r0, 5000, NULL);
  vec(&r1, 7, NULL);
  randn(&g0, 1, 1);
  randn(&g1, 2, 1);
  randn(&r0, 3, 1);
  randn(&r1, 4, 1);
  /* make them conflict: g -= 2 (g.r / r.r) r, so that g.r = -(old g.r) ... or at least negative */
  double gr = dot2(&g0, &g1, &r0, &r1), rr = dot2(&r0, &r1, &r0, &r1);
  float c = (float)(gr / rr) + (gr >= 0 ? 0.5f : 0.0f);
  for (int i = 0; i < 5000; i++) P(g0, i) -= c * P(r0, i);
  for (int i = 0; i < 7; i++) P(g1, i) -= c * P(r1, i);
  gr = dot2(&g0, &g1, &r0, &r1);
  CHECK(gr < 0);
  eg_clone(&o0, &g0);
  eg_clone(&o1, &g1);
  eg_tensor *g[2] = {&g0, &g1};
  const eg_tensor *r[2] = {&r0, &r1};
  double d = 0;
  int proj = 0;
  CHECK_OK(eg_agem_project(g, r, 2, &d, &proj));
  CHECK(proj == 1);
  CHECK_NEAR(d, gr, 1e-3 * fabs(gr));
  /* after: g.r = 0 (relative to |g||r|), and g = old - (gr/rr) r in every group */
  double after = dot2(&g0, &g1, &r0, &r1);
  CHECK(fabs(after) < 1e-4 * sqrt(dot2(&g0, &g1, &g0, &g1) * rr));
  double k = gr / rr;
  CHECK_NEAR(P(g0, 4999), P(o0, 4999) - k * P(r0, 4999), 1e-5);
  CHECK_NEAR(P(g1, 3), P(o1, 3) - k * P(r1, 3), 1e-5);
  /* now aligned (g.r = 0 up to rounding, or pushed positive): a second call leaves g alone */
  for (int i = 0; i < 7; i++) P(g1, i) += 0.1f * P(r1, i);
  eg_copy(&o0, &g0);
  eg_copy(&o1, &g1);
  CHECK_OK(eg_agem_project(g, r, 2, &d, &proj));
  CHECK(proj == 0 && d > 0);
  for (int i = 0; i < 5000; i++) CHECK(P(g0, i) == P(o0, i));
  for (int i = 0; i < 7; i++) CHECK(P(g1, i) == P(o1, i));
  eg_tensor_release(&g0);
  eg_tensor_release(&g1);
  eg_tensor_release(&r0);
  eg_tensor_release(&r1);
  eg_tensor_release(&o0);
  eg_tensor_release(&o1);
}

static void test_agem_rejects_misfits(void) {
  eg_tensor g0 = EG_TENSOR_INIT, r0 = EG_TENSOR_INIT, r1 = EG_TENSOR_INIT;
  vec(&g0, 4, (float[]){1, 2, 3, 4});
  vec(&r0, 3, NULL);
  vec(&r1, 4, (float[]){1, 0, 0, NAN});
  eg_tensor *g[1] = {&g0};
  const eg_tensor *r[1] = {&r0};
  CHECK_ERR(eg_agem_project(g, r, 1, NULL, NULL), EG_ESHAPE);
  CHECK(strstr(eg_errmsg(), "agem_project") && strstr(eg_errmsg(), "group 1"));
  CHECK_ERR(eg_agem_project(g, r, 0, NULL, NULL), EG_EINVAL);
  r[0] = &r1;
  CHECK_ERR(eg_agem_project(g, r, 1, NULL, NULL), EG_EINVAL);
  CHECK(strstr(eg_errmsg(), "not finite"));
  eg_tensor_release(&g0);
  eg_tensor_release(&r0);
  eg_tensor_release(&r1);
}

/* L(h) = sum w * z(h, eps) + s * KL(h): the reparameterisation and the KL term together */
typedef struct {
  eg_tensor *h, *eps, *w, *z;
  float scale;
} vae_ctx;

static double vae_loss(void *p) {
  vae_ctx *c = p;
  double kl = 0, s = 0;
  if (eg_vae_reparam_forward(c->z, c->eps, c->h, NULL) || eg_vae_kl(&kl, NULL, c->h, c->scale)) return NAN;
  for (int64_t i = 0; i < eg_numel(c->z); i++) s += (double)P(*c->z, i) * P(*c->w, i);
  return s + kl;
}

static void test_vae_reparam_and_kl_gradients(void) {
  const int B = 3, Z = 4;
  eg_tensor h = EG_TENSOR_INIT, eps = EG_TENSOR_INIT, w = EG_TENSOR_INIT, z = EG_TENSOR_INIT, gh = EG_TENSOR_INIT;
  mat(&h, B, 2 * Z);
  mat(&eps, B, Z);
  mat(&w, B, Z);
  mat(&z, B, Z);
  mat(&gh, B, 2 * Z);
  randn(&h, 5, 0.7f);
  randn(&eps, 6, 1);
  randn(&w, 7, 1);
  vae_ctx c = {&h, &eps, &w, &z, 1.0f / B};
  /* reparameterisation alone */
  CHECK_OK(eg_vae_reparam_backward(&gh, &w, &eps, &h));
  double kl0;
  c.scale = 0;
  CHECK_OK(eg_vae_kl(&kl0, &gh, &h, c.scale));
  CHECK(gc_tensor("reparameterisation d/dh", &h, &gh, vae_loss, &c));
  /* with the KL term (mean over the batch) */
  c.scale = 1.0f / B;
  CHECK_OK(eg_vae_reparam_backward(&gh, &w, &eps, &h));
  CHECK_OK(eg_vae_kl(&kl0, &gh, &h, c.scale));
  CHECK(gc_tensor("reparameterisation + KL d/dh", &h, &gh, vae_loss, &c));
  eg_tensor_release(&h);
  eg_tensor_release(&eps);
  eg_tensor_release(&w);
  eg_tensor_release(&z);
  eg_tensor_release(&gh);
}

static void test_vae_values_by_hand(void) {
  eg_tensor h = EG_TENSOR_INIT, eps = EG_TENSOR_INIT, z = EG_TENSOR_INIT;
  mat(&h, 1, 4);
  mat(&eps, 1, 2);
  mat(&z, 1, 2);
  /* mu = (1, 0), logvar = (0, log 4): z = mu + sigma eps, sigma = (1, 2) */
  float hv[4] = {1, 0, 0, logf(4)};
  for (int i = 0; i < 4; i++) P(h, i) = hv[i];
  P(eps, 0) = 0.5f;
  P(eps, 1) = -1;
  CHECK_OK(eg_vae_reparam_forward(&z, &eps, &h, NULL));
  CHECK_NEAR(P(z, 0), 1.5, 1e-6);
  CHECK_NEAR(P(z, 1), -2, 1e-6);
  /* KL = 0.5 (mu^2 + e^lv - 1 - lv) per unit: 0.5 (1 + 1 - 1 - 0) + 0.5 (0 + 4 - 1 - log 4) */
  double kl;
  CHECK_OK(eg_vae_kl(&kl, NULL, &h, 2.0f));
  CHECK_NEAR(kl, 2 * (0.5 + 0.5 * (3 - log(4.0))), 1e-5);
  /* a drawn eps is standard normal: mean ~ 0, variance ~ 1 over 20000 draws */
  eg_tensor H = EG_TENSOR_INIT, E = EG_TENSOR_INIT, Zt = EG_TENSOR_INIT;
  mat(&H, 10000, 4);
  mat(&E, 10000, 2);
  mat(&Zt, 10000, 2);
  eg_fill(&H, 0);
  eg_rng r;
  eg_rng_seed(&r, 9);
  CHECK_OK(eg_vae_reparam_forward(&Zt, &E, &H, &r));
  double m = 0, v = 0;
  for (int i = 0; i < 20000; i++) m += P(Zt, i);
  m /= 20000;
  for (int i = 0; i < 20000; i++) v += (P(Zt, i) - m) * (P(Zt, i) - m);
  v /= 20000;
  CHECK(fabs(m) < 0.03 && fabs(v - 1) < 0.05);
  for (int i = 0; i < 20000; i++) CHECK(P(Zt, i) == P(E, i));
  eg_tensor_release(&H);
  eg_tensor_release(&E);
  eg_tensor_release(&Zt);
  eg_tensor_release(&h);
  eg_tensor_release(&eps);
  eg_tensor_release(&z);
}

static void test_vae_kernels_reject_misfits(void) {
  eg_tensor h = EG_TENSOR_INIT, z = EG_TENSOR_INIT, eps = EG_TENSOR_INIT;
  mat(&h, 2, 5);
  mat(&z, 2, 2);
  mat(&eps, 2, 2);
  eg_fill(&h, 0);
  CHECK_ERR(eg_vae_reparam_forward(&z, &eps, &h, NULL), EG_ESHAPE); /* odd width */
  CHECK(strstr(eg_errmsg(), "vae_reparam_forward") && strstr(eg_errmsg(), "2Z"));
  CHECK_ERR(eg_vae_kl(NULL, NULL, &h, 1), EG_ESHAPE);
  eg_tensor_release(&h);
  mat(&h, 2, 6);
  eg_fill(&h, 0);
  CHECK_ERR(eg_vae_reparam_forward(&z, &eps, &h, NULL), EG_ESHAPE); /* z [2,2] for Z = 3 */
  CHECK(strstr(eg_errmsg(), "z must be [2 x 3]") || strstr(eg_errmsg(), "z"));
  CHECK_ERR(eg_vae_kl(NULL, NULL, &h, NAN), EG_EINVAL);
  eg_tensor_release(&h);
  eg_tensor_release(&z);
  eg_tensor_release(&eps);
}

int main(void) {
  RUN(test_agem_projects_a_conflicting_gradient_over_every_group);
  RUN(test_agem_rejects_misfits);
  RUN(test_vae_reparam_and_kl_gradients);
  RUN(test_vae_values_by_hand);
  RUN(test_vae_kernels_reject_misfits);
  return CHECK_DONE("gen");
}
