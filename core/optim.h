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

/* ---- terms fused into a step ----
** What a regulariser does at every step, done inside the optimiser's own pass
** over the group (in blocks that stay in cache) instead of in passes of its
** own over the arena:
**   a quadratic penalty, whose gradient joins g before the update and whose
**   value is taken at the parameters before the step:
**     EG_PENALTY_ANCHOR: u = F, w = anchor: (lambda/2) sum F (p - anchor)^2,
**                        gradient lambda F (p - anchor)   (eg_quad_penalty)
**     EG_PENALTY_FOLDED: u = A, w = B: (lambda/2) max(0, sum (A p - 2 B) p + C),
**                        gradient lambda (A p - B)        (eg_quad_penalty_folded)
**   SI's path integral: omega -= (g - pg) (p after - p before), g as backward
**   left it (without the penalty above and without clipping), pg (may be
**   NULL) the share of g that is not the task loss's (eg_si_accumulate);
**   a clipping scale: the update uses scale (g + penalty gradient).
** g itself is not written. The arithmetic is that of the separate passes, so
** the results are the same bits as eg_quad_penalty* + the step + eg_si_accumulate
** (with the penalty gradient added to g before backward accumulated into it). */
enum { EG_PENALTY_NONE = 0, EG_PENALTY_ANCHOR = 1, EG_PENALTY_FOLDED = 2 };

typedef struct eg_step_terms {
  int penalty;            /* EG_PENALTY_* */
  const eg_tensor *u, *w; /* ANCHOR: F and anchor; FOLDED: A and B */
  double lambda, C;       /* C: FOLDED's constant term */
  eg_tensor *omega;       /* SI's path integral, or NULL */
  const eg_tensor *pg;    /* subtracted from g for omega (may be NULL) */
  double scale;           /* in (0, 1]; 1: no clipping */
  int have_value;         /* 1 once value holds the penalty's value (eg_grad_sumsq_terms sets it) */
  double value;           /* out: the penalty's value at the parameters before the step */
} eg_step_terms;

/* eg_sgd_step and eg_adam_step with terms (NULL: none). */
EG_API int eg_sgd_step_terms(eg_tensor *p, const eg_tensor *g, eg_tensor *buf, const eg_sgd_config *c, int64_t step,
                             const eg_tensor *mask, eg_step_terms *t);
EG_API int eg_adam_step_terms(eg_tensor *p, const eg_tensor *g, eg_tensor *m, eg_tensor *v, const eg_adam_config *c,
                              int64_t step, const eg_tensor *mask, eg_step_terms *t);
/* Clipping with terms: *sumsq += sum of (g + the penalty's gradient)^2 over one group
** (in order, so that calling it group after group sums as eg_grad_sumsq does),
** and t's penalty value (t->have_value = 1). t may be NULL. */
EG_API int eg_grad_sumsq_terms(double *sumsq, const eg_tensor *p, const eg_tensor *g, eg_step_terms *t);

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
