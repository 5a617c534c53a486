/*
** gen.h — kernels of the generative models used for generative replay: the
** variational autoencoder's reparameterisation and its KL term (Kingma &
** Welling 2014). The encoder's last layer gives h [B, 2Z]: the first Z
** columns are the means mu, the last Z the log-variances logvar of the
** approximate posterior q(z|x) = N(mu, diag(exp(logvar))). The networks
** around them are ordinary engram layers.
*/
#ifndef EG_GEN_H
#define EG_GEN_H

#include "rng.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* z [B,Z] = mu + exp(logvar / 2) * eps, with h [B,2Z] = [mu | logvar] and
** eps [B,Z] ~ N(0, 1) drawn from rng into eps (kept for the backward); when
** rng is NULL, eps is used as given. All contiguous. logvar is clamped to
** [-30, 20] (exp stays finite; the backward uses the same clamp). */
EG_API int eg_vae_reparam_forward(eg_tensor *z, eg_tensor *eps, const eg_tensor *h, eg_rng *rng);
/* gh [B,2Z] = d L / d h from gz = d L / d z (overwrites gh): d/dmu = gz,
** d/dlogvar = gz * eps * exp(logvar / 2) / 2 (0 where logvar is clamped). */
EG_API int eg_vae_reparam_backward(eg_tensor *gh, const eg_tensor *gz, const eg_tensor *eps, const eg_tensor *h);
/* *value = scale * sum over rows and latent units of KL(q(z|x) || N(0, I))
** = scale * sum -(1 + logvar - mu^2 - exp(logvar)) / 2 (in double); when gh
** is not NULL, gh += scale * [mu | (exp(logvar) - 1) / 2]. scale = 1/B gives
** the batch's mean of each sample's KL. */
EG_API int eg_vae_kl(double *value, eg_tensor *gh, const eg_tensor *h, float scale);

#ifdef __cplusplus
}
#endif

#endif
