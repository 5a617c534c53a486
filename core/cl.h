/*
** cl.h — continual-learning primitives: importance accumulation (EWC's
** Fisher, MAS's output sensitivity, SI's path integral), the quadratic
** penalty of EWC / online EWC / SI / MAS, and a reservoir replay memory kept
** in C memory.
**
** Vectors are flat contiguous tensors with a parameter group's layout (the
** importance F, the anchor theta*, ...); one call per batch or per task.
*/
#ifndef EG_CL_H
#define EG_CL_H

#include "rng.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- importance ---- */
/* F += scale * g^2, element-wise (F and g contiguous, same numel). With
** per-sample gradients this accumulates the EWC Fisher. */
EG_API int eg_sq_accumulate(eg_tensor *F, const eg_tensor *g, float scale);
/* F += scale * |g|, element-wise (MAS, from one sample's gradient). */
EG_API int eg_abs_accumulate(eg_tensor *F, const eg_tensor *g, float scale);
/* F = gamma * F + Fnew (online EWC's running importance). */
EG_API int eg_decay_accumulate(eg_tensor *F, const eg_tensor *Fnew, float gamma);

/* ---- per-sample importance of one layer, from one batch (cl_importance.c) ----
** Each adds scale * sum_n h(g_n) to a layer's importance, g_n the gradient of
** sample n's own loss with respect to the layer's parameters and h a square
** (EWC's Fisher) or an absolute value (MAS), never h of a batch's gradient.
** delta is the gradient of each sample's loss with respect to the layer's
** output (NOT divided by the batch size); the input is what the layer's
** forward saw. The first dimension of the input is the sample. */

/* Linear y = x W^T + b: FW [out,in] += scale * sum_n (g_n)^2, Fb [out] +=
** scale * sum_n (sum_r delta_nr)^2, g_n = sum_r delta_nr x_nr^T, for delta
** [B,...,out] and x [B,...,in] with the same leading sizes (r runs over the
** positions of one sample; Fb may be NULL). One position per sample ([B,out],
** [B,in]) is one product for the batch, (delta^2)^T (x^2) (Goodfellow 2015);
** more positions take one product per sample. Allocates scratch of the
** batch's or the weight's size once per call. */
EG_API int eg_linear_sq_grad_accumulate(eg_tensor *FW, eg_tensor *Fb, const eg_tensor *delta, const eg_tensor *x,
                                        float scale);
/* As eg_linear_sq_grad_accumulate with absolute values instead of squares
** (MAS's importance; with one position per sample |delta|^T |x|, since
** |a b| = |a| |b|). */
EG_API int eg_linear_abs_grad_accumulate(eg_tensor *FW, eg_tensor *Fb, const eg_tensor *delta, const eg_tensor *x,
                                         float scale);
/* Conv2d (x [N,C,H,W], delta [N,O,Ho,Wo], FW [O,C,kh,kw], Fb [O] or NULL,
** stride and padding as in eg_conv2d_forward): sample n's weight gradient
** is one product, delta_n [O, Ho*Wo] cols_n^T with cols_n [C*kh*kw, Ho*Wo] its
** im2col patches; FW += scale * h(it), Fb += scale * h(sum over positions of
** delta_n). h = |.| when absolute, else the square. ws: a contiguous workspace
** of at least C*kh*kw*Ho*Wo + O*C*kh*kw floats, or NULL (then allocated once
** per call). */
EG_API int eg_conv2d_h_grad_accumulate(eg_tensor *FW, eg_tensor *Fb, const eg_tensor *delta, const eg_tensor *x,
                                       int stride, int pad, float scale, int absolute, eg_tensor *ws);
/* LayerNorm's affine parameters (x [N,...,D], delta of x's shape, mean and
** rstd [numel(x)/D] as eg_layernorm_forward saved them, Fw [D], Fb [D] or
** NULL): with x-hat = (x - mean) rstd, sample n's gradients are the sums over
** its rows r of delta_r * x-hat_r (weight) and of delta_r (bias); Fw += scale
** * h(that), Fb likewise. Allocates 2 D doubles once per call. */
EG_API int eg_layernorm_h_grad_accumulate(eg_tensor *Fw, eg_tensor *Fb, const eg_tensor *delta, const eg_tensor *x,
                                          const eg_tensor *mean, const eg_tensor *rstd, float scale, int absolute);
/* Embedding (ids [N,...] of integral ids in [0,V), delta [ids' shape, D], FW
** [V,D]): sample n's gradient of row v is the sum of delta over the
** positions where its ids are v (repeated ids add up before h); FW[v] +=
** scale * h(that). Allocates V + L ids and L*D doubles (L ids per sample)
** once per call. */
EG_API int eg_embedding_h_grad_accumulate(eg_tensor *FW, const eg_tensor *delta, const eg_tensor *ids, float scale,
                                          int absolute);
/* Labels drawn from the model (the sampled Fisher's labels): labels[n] =
** a class id drawn from softmax(logits[n]), restricted to the classes c with
** mask[c] != 0 when mask [K] is given (at least one). labels [B] receives
** the ids as floats. */
EG_API int eg_sample_labels(eg_tensor *labels, const eg_tensor *logits, const eg_tensor *mask, eg_rng *rng);

/* ---- SI's path integral (Zenke et al. 2017) ---- */
/* One optimiser step: omega -= (g - pg) * (theta - prev), then prev =
** theta; g - pg the task loss's gradient the step used (pg, the penalties'
** share of g, may be NULL), prev the parameters before the step. */
EG_API int eg_si_accumulate(eg_tensor *omega, eg_tensor *prev, const eg_tensor *g, const eg_tensor *pg,
                            const eg_tensor *theta);
/* The end of a task: Omega += omega / ((theta - start)^2 + xi), omega = 0,
** start = theta (the task's anchor, where the next task's path starts). */
EG_API int eg_si_consolidate(eg_tensor *Omega, eg_tensor *omega, eg_tensor *start, const eg_tensor *theta,
                             float xi);

/* ---- penalty ---- */
/* *value = (lambda/2) sum F (theta - anchor)^2 (in double), and, when grad is
** not NULL, grad += lambda F (theta - anchor). One loop over the vectors. */
EG_API int eg_quad_penalty(double *value, eg_tensor *grad, const eg_tensor *theta, const eg_tensor *anchor,
                           const eg_tensor *F, double lambda);

/* The same penalty summed over past tasks s, from three folded terms:
** sum_s (lambda/2) sum_i F_s,i (theta_i - a_s,i)^2 = (lambda/2) sum_i (A_i
** theta_i^2 - 2 B_i theta_i) + (lambda/2) C with A = sum_s F_s, B = sum_s
** F_s a_s, C = sum_s sum_i F_s,i a_s,i^2: one pass whatever the number of
** tasks. grad (if not NULL) += lambda (A theta - B). */
EG_API int eg_quad_penalty_folded(double *value, eg_tensor *grad, const eg_tensor *theta, const eg_tensor *A,
                                  const eg_tensor *B, double C, double lambda);
/* Folds one task's importance F and anchor a into A, B and *C (above). */
EG_API int eg_quad_fold(eg_tensor *A, eg_tensor *B, double *C, const eg_tensor *F, const eg_tensor *anchor);

/* ---- exemplar selection ---- */
/* Herding (Welling 2009; iCaRL's exemplars): idx[0..m) receives m distinct
** 0-based rows of features [n, d], chosen one at a time so that the mean of
** the rows chosen so far stays as close as possible to the mean of all n
** (row k minimises |mu - (f_1 + ... + f_k)/k|). One matrix-vector product
** per choice. Normalise the rows first for iCaRL's cosine geometry. */
EG_API int eg_herding(int64_t *idx, const eg_tensor *features, int64_t m);

/* ---- gradient projection (A-GEM, Chaudhry et al. 2019; cl_replay.c) ---- */
/* g and ref: ngroups flat contiguous vectors each (a model's gradient per
** parameter group and the reference gradient of a memory batch, the same
** layout). With d = g.ref and r = ref.ref summed over every group (in
** double): when d < 0 (the step would raise the memory's loss) every g[k] -=
** (d / r) ref[k], so that g.ref becomes 0; otherwise g is left alone.
** *dot_out (may be NULL) receives d, *projected (may be NULL) 1 when g was
** projected. EG_EINVAL when the sums are not finite. Allocates nothing. */
EG_API int eg_agem_project(eg_tensor *const *g, const eg_tensor *const *ref, int ngroups, double *dot_out,
                           int *projected);

/* ---- replay memory (cl_replay.c) ----
** Samples of D floats, each with a label (an integer class id), a task id,
** a weight (default 1) and optionally K floats of logits (for DER), in C
** memory. Capacity: M samples in all, or per_class samples for each class
** seen (the capacity grows as classes arrive: per_class x classes seen).
** Insertion policies:
**   EG_MEMORY_RESERVOIR  reservoir sampling (Vitter's algorithm R): after n
**       samples were offered, each of them is in the memory with
**       probability M/n.
**   EG_MEMORY_BALANCED   class-balanced reservoir sampling (Chrysakis &
**       Moens 2020): while the memory is full, a sample of a class that is
**       not among the largest replaces a random sample of a largest class;
**       a sample of a largest class c replaces a random sample of c with
**       probability m_c/n_c (held/seen). With C classes seen, each ends up
**       with about M/C slots.
**   EG_MEMORY_SCORE      keeps the samples with the highest scores (given
**       with each sample): in all, or per class with a per-class capacity.
**       Equal scores are ordered by a random key drawn at the offer (the
**       generator decides ties).
** Storage: floats, or uint8 codes q through 256 increasing levels (x ==
** levels[q] exactly, e.g. an image dataset's (q/255 - mean)/std): a quarter
** of the bytes, and samples come back bit-identical to what was added.
** Sampling: uniform (without replacement when k <= size) while every weight
** is 1; otherwise in proportion to the weights, with replacement (a
** cumulative table rebuilt after a change, binary search per draw). */
typedef struct eg_memory eg_memory;

enum { EG_MEMORY_RESERVOIR = 0, EG_MEMORY_BALANCED = 1, EG_MEMORY_SCORE = 2 };

typedef struct eg_memory_config {
  int64_t capacity;      /* samples in all (>= 1), or 0 with per_class */
  int64_t per_class;     /* 0, or samples per class seen */
  int64_t dim;           /* floats per sample, >= 1 */
  int64_t logits_dim;    /* floats of logits per sample, >= 0 */
  int policy;            /* EG_MEMORY_RESERVOIR, _BALANCED or _SCORE */
  const float *levels;   /* NULL (float storage) or 256 finite increasing levels (uint8 storage; copied) */
} eg_memory_config;

/* A new empty memory in *out; free with eg_memory_free. */
EG_API int eg_memory_create(eg_memory **out, const eg_memory_config *config);
/* The same with a total capacity, float storage, reservoir or (balanced) class-balanced insertion. */
EG_API int eg_memory_new(eg_memory **out, int64_t capacity, int64_t dim, int64_t logits_dim, int balanced);
EG_API void eg_memory_free(eg_memory *m); /* accepts NULL */
/* Offers a batch: x [B,D] (or B*D contiguous floats with B rows), y [B],
** logits [B,K] (NULL, or required when K > 0), weights [B] (NULL: 1 each;
** finite, >= 0), scores [B] (required by, and only for, score insertion),
** all with task id `task`. In uint8 storage every value of a sample that
** gets stored must be a level (EG_EINVAL naming the first that is not; the
** samples before it in the batch were offered, the rest were not). */
EG_API int eg_memory_add(eg_memory *m, const eg_tensor *x, const eg_tensor *y, const eg_tensor *logits,
                         const eg_tensor *weights, const eg_tensor *scores, int64_t task, eg_rng *rng);
/* eg_memory_add without weights or scores. */
EG_API int eg_memory_add_batch(eg_memory *m, const eg_tensor *x, const eg_tensor *y, const eg_tensor *logits,
                               int64_t task, eg_rng *rng);
/* Draws k = x_out->shape[0] samples into caller buffers x_out [k,D], y_out
** [k] and optionally logits_out [k,K] and task_out [k] (NULL to skip); see
** the sampling rule above. EG_ESTATE when the memory is empty or every
** weight is 0. Does not allocate (but for the weights' table, once). */
EG_API int eg_memory_sample(eg_memory *m, eg_tensor *x_out, eg_tensor *y_out, eg_tensor *logits_out,
                            eg_tensor *task_out, eg_rng *rng);
EG_API int64_t eg_memory_size(const eg_memory *m);
EG_API int64_t eg_memory_capacity(const eg_memory *m); /* now: grows with a per-class capacity */
EG_API int64_t eg_memory_seen(const eg_memory *m);
EG_API int64_t eg_memory_dim(const eg_memory *m);
EG_API int64_t eg_memory_logits_dim(const eg_memory *m);
EG_API int eg_memory_balanced(const eg_memory *m);
EG_API int eg_memory_policy(const eg_memory *m);
EG_API int64_t eg_memory_per_class(const eg_memory *m);
EG_API int64_t eg_memory_classes(const eg_memory *m); /* classes seen (0 unless the memory counts them) */
/* 1 when x is stored as uint8 codes (then levels, if not NULL, receives the 256 levels), else 0. */
EG_API int eg_memory_uint8(const eg_memory *m, float *levels);
EG_API int eg_memory_weighted(const eg_memory *m); /* 1 when some stored weight is not 1 */
/* Bytes the memory holds: every buffer at its current capacity. */
EG_API size_t eg_memory_bytes(const eg_memory *m);
/* Views (retained; caller releases) of the first size rows: x [size,D],
** y [size], logits [size,K] (left alone when K == 0), task [size]. Any may be
** NULL; x must be NULL in uint8 storage (EG_ESTATE: use eg_memory_read).
** They see later changes of the memory (0 rows when it is empty), until a
** per-class capacity grows (then they keep the old buffers). */
EG_API int eg_memory_views(const eg_memory *m, eg_tensor *x, eg_tensor *y, eg_tensor *logits, eg_tensor *task);
/* A view of the weights [size] (as eg_memory_views). */
EG_API int eg_memory_weights(const eg_memory *m, eg_tensor *w);
/* Copies the stored samples into x [size,D] (dequantised) and, in uint8
** storage, their codes 0..255 as floats into codes [size,D]. Either may be NULL. */
EG_API int eg_memory_read(const eg_memory *m, eg_tensor *x, eg_tensor *codes);
/* Copies the scores [size] (score insertion only) and the sampling order
** [size] (the permutation of slots that sampling without replacement walks,
** 0-based) into caller buffers; either may be NULL. With the contents, they
** make a restored memory draw the same samples from the same generator. */
EG_API int eg_memory_read_state(const eg_memory *m, eg_tensor *scores, eg_tensor *order);
/* Sets the sampling order: a permutation of 0..size-1 (EG_EINVAL otherwise; then the identity). */
EG_API int eg_memory_set_order(eg_memory *m, const eg_tensor *order);
/* Replaces the weights of the stored samples: w [size], finite, >= 0. */
EG_API int eg_memory_set_weights(eg_memory *m, const eg_tensor *w);
/* Replaces the contents with n samples (x [n,D], y [n], logits [n,K] when
** K > 0, task [n] or NULL for 0, weights [n] or NULL for 1, scores [n] for
** score insertion), as after `seen` offers (seen >= n): restores a memory
** from a checkpoint, or holds exemplars chosen elsewhere (herding). n <=
** capacity, or a per-class capacity grows to hold per_class of each class
** loaded. Per-class seen counts are not stored; they are estimated as
** held*seen/n. */
EG_API int eg_memory_restore(eg_memory *m, const eg_tensor *x, const eg_tensor *y, const eg_tensor *logits,
                             const eg_tensor *task, const eg_tensor *weights, const eg_tensor *scores, int64_t seen);
/* eg_memory_restore without weights or scores. */
EG_API int eg_memory_load(eg_memory *m, const eg_tensor *x, const eg_tensor *y, const eg_tensor *logits,
                          const eg_tensor *task, int64_t seen);
/* Empties the memory (keeps its buffers); the seen counters restart at 0. */
EG_API void eg_memory_clear(eg_memory *m);
/* *all = 1 when every value of x (contiguous) is exactly one of the 256
** increasing levels (x could be stored as uint8 codes), else 0. */
EG_API int eg_on_levels(const eg_tensor *x, const float *levels, int *all);
/* out [B] = each sample's cross-entropy -log softmax(logits [B,C])[y], for
** labels y [B] (a score for score insertion: the samples a model finds hard). */
EG_API int eg_sample_losses(eg_tensor *out, const eg_tensor *logits, const eg_tensor *labels);

#ifdef __cplusplus
}
#endif

#endif
