/*
** attn.h — causal multi-head self-attention over packed q, k, v: the
** kernel of a GPT block (lua/engram/nn/transformer.lua), forward and
** backward, in the conventions of nn.h (outputs first, caller-sized
** contiguous buffers, status codes, nothing allocated).
**
** Layout. N sequences of T positions, width D = H * hd (H heads of hd):
**   qkv [N*T, 3D]   row n*T + t holds q | k | v of position t of sequence n,
**                   each D wide; head h takes columns h*hd .. h*hd + hd - 1
**                   of each (PyTorch's and nanoGPT's split of one Linear(D, 3D));
**   y   [N*T, D]    the heads' outputs side by side (head h at h*hd);
**   att [N, H, T, T] the attention probabilities, saved for backward:
**                   att[n,h,i,j] = softmax_j(q_i . k_j / sqrt(hd)) over
**                   j <= i, and exactly 0 for j > i (the causal mask).
** The softmax subtracts each row's maximum (over j <= i) before exp, so
** large scores cannot overflow. Every product is one cblas_sgemm per
** (sequence, head) over strided views of qkv; no copies. With
** eg_set_threads(k), k > 1, the pairs (sequence, head) are split between k
** threads (the result is the same for any k).
*/
#ifndef EG_ATTN_H
#define EG_ATTN_H

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* y = attention(qkv) and att as above, for `heads` heads over sequences of
** length T: qkv [rows, 3D] or [N, T, 3D] (any leading dimensions, rows
** their product, a multiple of T), D a multiple of heads; y has qkv's
** leading dimensions and a last of D; att [rows/T, heads, T, T]. EG_ESHAPE (a
** message naming the sizes) when they do not fit, EG_EINVAL for T or heads < 1. */
EG_API int eg_attn_forward(eg_tensor *y, eg_tensor *att, const eg_tensor *qkv, int64_t T, int64_t heads);

/* gqkv (shape of qkv) OVERWRITTEN with dL/dqkv from gy = dL/dy and the saved
** att; scratch: at least T*T floats, contiguous, any shape; with k*T*T
** floats up to k threads work at once (eg_set_threads; attn.c says why the
** kernel splits the heads between threads rather than each product). */
EG_API int eg_attn_backward(eg_tensor *gqkv, eg_tensor *scratch, const eg_tensor *gy, const eg_tensor *qkv,
                            const eg_tensor *att, int64_t T, int64_t heads);

/* The entropy of the attention rows, for the seed article's measurement
** (docs/lm.md): ent [H, T] OVERWRITTEN with ent[h, i] = the sum over the N
** sequences of -sum_{j <= i} att[n, h, i, j] * log(att[n, h, i, j]) in nats,
** a term with p = 0 counting 0 (accumulated in double). att [N, H, T, T]
** contiguous, as eg_attn_forward leaves it; ent contiguous [H, T]. Row i (0-based)
** has i + 1 keys, so its entropy lies in [0, log(i + 1)]. EG_ESHAPE (both
** shapes in the message) when they do not fit. */
EG_API int eg_attn_entropy(eg_tensor *ent, const eg_tensor *att);

#ifdef __cplusplus
}
#endif

#endif
