/*
** loss.h — training losses with fused forward and backward, and accuracy.
**
** Each loss is one call per batch: it returns the MEAN loss through *loss
** (accumulated in double) and, when grad is not NULL, OVERWRITES grad with
** d(mean loss)/d(input). grad has the input's shape, is allocated by the
** caller and must be contiguous; nothing here allocates.
**
** Classification inputs are logits [B, C] (contiguous); labels are B float
** values holding class ids 0..C-1 (1-D, any stride, or contiguous of B
** elements), as in PyTorch. A label that is not an integer or is out of
** range is an error naming the sample (0-based here; the Lua bindings check
** first and report 1-based samples).
**
** `active` (may be NULL) is a mask of C floats, non-zero for the classes that
** take part (class-incremental "active classes" training): the others behave
** as logits of -inf, so their gradient is exactly 0.
*/
#ifndef EG_LOSS_H
#define EG_LOSS_H

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Checks labels for a [B, nclasses] problem: integral, in range and, when
** active is given, active. Messages name op and the sample as index+base
** ("cross_entropy: label 12 out of range for 10 classes (sample 3)"). */
EG_API int eg_check_labels(const eg_tensor *labels, int64_t batch, int64_t nclasses, const eg_tensor *active,
                           int base, const char *op);

/* Softmax cross-entropy from logits [B,C] and integer labels [B], mean over B. */
EG_API int eg_cross_entropy(double *loss, eg_tensor *grad, const eg_tensor *logits, const eg_tensor *labels,
                            const eg_tensor *active);
/* The same, each sample under the active classes of its own task: masks
** [T, C] (row t: 1 for the classes of task t, 0 elsewhere; a row with no class
** active must not be used), tasks [B] (0-based task of each sample). What
** replay needs in task-IL, where a batch mixes the current task's samples
** with stored ones of earlier tasks. */
EG_API int eg_cross_entropy_tasks(double *loss, eg_tensor *grad, const eg_tensor *logits, const eg_tensor *labels,
                                  const eg_tensor *masks, const eg_tensor *tasks);
/* Mean squared error over all elements of input and target (same numel). */
EG_API int eg_mse(double *loss, eg_tensor *grad, const eg_tensor *input, const eg_tensor *target);
/* Binary cross-entropy with logits (numerically stable), targets in [0,1],
** mean over all elements. */
EG_API int eg_bce_logits(double *loss, eg_tensor *grad, const eg_tensor *logits, const eg_tensor *target);
/* Distillation: T^2 * mean_b KL(softmax(teacher_b/T) || softmax(student_b/T)),
** the LwF convention; grad is w.r.t. the student logits. student and teacher
** are [B,C]; active restricts both softmaxes to the active classes. */
EG_API int eg_kl_distill(double *loss, eg_tensor *grad, const eg_tensor *student, const eg_tensor *teacher, double T,
                         const eg_tensor *active);
/* *correct = number of rows whose argmax (over the active classes; first on
** ties) equals the label. */
EG_API int eg_argmax_accuracy(int64_t *correct, const eg_tensor *logits, const eg_tensor *labels,
                              const eg_tensor *active);

#ifdef __cplusplus
}
#endif

#endif
