/*
** optim.h — optimiser steps over flat parameter vectors (one group's arena),
** one loop per step, PyTorch's update rules.
**
** p (parameters), g (gradients) and the state buffers (momentum; Adam's m
** and v) are contiguous tensors of the same number of elements, all owned by
** the caller; state starts zeroed and keeps the group's layout. `mask` (may
** be NULL) has the same number of elements: where it is 0 the element is
** frozen — neither the parameter nor its optimiser state changes. Nothing
** here allocates.
**
** `step` counts the steps taken with this state, starting at 1: SGD's first
** step initialises the momentum buffer with the gradient (PyTorch), Adam's
** bias correction uses it.
*/
#ifndef EG_OPTIM_H
#define EG_OPTIM_H

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct eg_sgd_config {
  double lr, momentum, dampening, weight_decay;
  int nesterov;
} eg_sgd_config;

typedef struct eg_adam_config {
  double lr, beta1, beta2, eps, weight_decay;
  int decoupled; /* 1: AdamW (p *= 1 - lr*wd), 0: Adam (g += wd*p) */
} eg_adam_config;

/* Checks an SGD configuration (non-negative lr, momentum in [0,1), ...). */
EG_API int eg_sgd_check(const eg_sgd_config *c);
/* Checks an Adam configuration (betas in [0,1), eps > 0, ...). */
EG_API int eg_adam_check(const eg_adam_config *c);

/* d = g + wd p; with momentum: buf = d (step 1) or momentum buf + (1-dampening) d,
** d = d + momentum buf (Nesterov) or buf; p -= lr d. buf may be NULL without momentum. */
EG_API int eg_sgd_step(eg_tensor *p, const eg_tensor *g, eg_tensor *buf, const eg_sgd_config *c, int64_t step,
                       const eg_tensor *mask);
/* Adam / AdamW with bias correction: m, v updated, p -= lr m^/(sqrt(v^) + eps). */
EG_API int eg_adam_step(eg_tensor *p, const eg_tensor *g, eg_tensor *m, eg_tensor *v, const eg_adam_config *c,
                        int64_t step, const eg_tensor *mask);

/* *sumsq += sum of g^2 over each of the n (contiguous) tensors. */
EG_API int eg_grad_sumsq(double *sumsq, eg_tensor *const *grads, int n);
/* Scales the n contiguous gradient tensors so that their joint L2 norm is at most
** max_norm (by max_norm / (norm + 1e-6), as PyTorch); *norm (may be NULL)
** receives the norm before clipping. */
EG_API int eg_clip_grad_norm(eg_tensor *const *grads, int n, double max_norm, double *norm);

#ifdef __cplusplus
}
#endif

#endif
