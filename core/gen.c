/*
** gen.c — the VAE's reparameterisation and KL kernels (gen.h).
*/
#include "gen.h"

#include <math.h>

#include "cl_impl.h"

#define LV_MIN -30.0f
#define LV_MAX 20.0f

static float clamp_lv(float v) { return v < LV_MIN ? LV_MIN : (v > LV_MAX ? LV_MAX : v); }

/* h [B,2Z] (contiguous, 2-D, even width): its B and Z. */
static int check_h(const eg_tensor *h, const char *op, int64_t *B, int64_t *Z) {
  int st = eg_cl_check_vec(h, -1, op, "encoder output h");
  if (st) return st;
  if (h->ndim != 2 || h->shape[1] % 2 != 0)
    return eg_seterr(EG_ESHAPE, "%s: h must be 2-D [B x 2Z] (means, then log-variances)", op);
  *B = h->shape[0];
  *Z = h->shape[1] / 2;
  return EG_OK;
}

/* t is a contiguous [B,Z] tensor */
static int check_bz(const eg_tensor *t, int64_t B, int64_t Z, const char *op, const char *what) {
  int st = eg_cl_check_vec(t, B * Z, op, what);
  if (st) return st;
  if (t->ndim != 2 || t->shape[0] != B || t->shape[1] != Z)
    return eg_seterr(EG_ESHAPE, "%s: %s must be [%lld x %lld]", op, what, (long long)B, (long long)Z);
  return EG_OK;
}

int eg_vae_reparam_forward(eg_tensor *z, eg_tensor *eps, const eg_tensor *h, eg_rng *rng) {
  static const char op[] = "vae_reparam_forward";
  int64_t B, Z;
  int st = check_h(h, op, &B, &Z);
  if (st || (st = check_bz(z, B, Z, op, "z")) || (st = check_bz(eps, B, Z, op, "eps"))) return st;
  if (rng && (st = eg_fill_normal(eps, rng, 0.0f, 1.0f))) return st;
  const float *hp = eg_data(h), *e = eg_data(eps);
  float *zp = eg_data(z);
  for (int64_t n = 0; n < B; n++) {
    const float *mu = hp + n * 2 * Z, *lv = mu + Z;
    for (int64_t j = 0; j < Z; j++) zp[n * Z + j] = mu[j] + expf(0.5f * clamp_lv(lv[j])) * e[n * Z + j];
  }
  return EG_OK;
}

int eg_vae_reparam_backward(eg_tensor *gh, const eg_tensor *gz, const eg_tensor *eps, const eg_tensor *h) {
  static const char op[] = "vae_reparam_backward";
  int64_t B, Z;
  int st = check_h(h, op, &B, &Z);
  if (st || (st = check_bz(gz, B, Z, op, "gz")) || (st = check_bz(eps, B, Z, op, "eps")) ||
      (st = eg_cl_check_vec(gh, 2 * B * Z, op, "gh")))
    return st;
  const float *hp = eg_data(h), *e = eg_data(eps), *g = eg_data(gz);
  float *out = eg_data(gh);
  for (int64_t n = 0; n < B; n++) {
    const float *lv = hp + n * 2 * Z + Z;
    float *gmu = out + n * 2 * Z, *glv = gmu + Z;
    for (int64_t j = 0; j < Z; j++) {
      float gj = g[n * Z + j];
      gmu[j] = gj;
      glv[j] = (lv[j] < LV_MIN || lv[j] > LV_MAX) ? 0.0f : 0.5f * gj * e[n * Z + j] * expf(0.5f * lv[j]);
    }
  }
  return EG_OK;
}

int eg_vae_kl(double *value, eg_tensor *gh, const eg_tensor *h, float scale) {
  static const char op[] = "vae_kl";
  int64_t B, Z;
  int st = check_h(h, op, &B, &Z);
  if (st || (gh && (st = eg_cl_check_vec(gh, 2 * B * Z, op, "gh")))) return st;
  if (!isfinite(scale)) return eg_seterr(EG_EINVAL, "%s: scale %g is not finite", op, (double)scale);
  const float *hp = eg_data(h);
  float *g = gh ? eg_data(gh) : NULL;
  double sum = 0;
  for (int64_t n = 0; n < B; n++) {
    const float *mu = hp + n * 2 * Z, *lv = mu + Z;
    for (int64_t j = 0; j < Z; j++) {
      float l = clamp_lv(lv[j]), el = expf(l);
      sum += -0.5 * (1.0 + (double)l - (double)mu[j] * mu[j] - (double)el);
      if (g) {
        g[n * 2 * Z + j] += scale * mu[j];
        if (lv[j] >= LV_MIN && lv[j] <= LV_MAX) g[n * 2 * Z + Z + j] += scale * 0.5f * (el - 1.0f);
      }
    }
  }
  if (value) *value = scale * sum;
  return EG_OK;
}
