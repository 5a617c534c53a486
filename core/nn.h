/*
** nn.h — layer kernels: pairs of plain forward/backward functions over
** eg_tensor, in the manner of llm.c, with shape checks.
**
** Conventions shared by every kernel here:
**   - outputs first, then inputs; every tensor is allocated by the caller
**     with the right shape (the kernel checks and returns EG_ESHAPE with a
**     message naming the layer and the sizes) and must be contiguous;
**   - forward saves what backward needs in caller-provided buffers (masks,
**     argmax indices, LayerNorm statistics, im2col scratch);
**   - backward OVERWRITES the input gradient gx (which may be NULL when the
**     caller does not need it) and ACCUMULATES (+=) into parameter gradients;
**   - matrix products go through cblas_sgemm;
**   - weights use PyTorch's layouts (Linear W [out,in], Conv2d W [O,C,kh,kw]).
** Nothing here allocates: a warm training step allocates nothing.
*/
#ifndef EG_NN_H
#define EG_NN_H

#include "rng.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Linear: y[r,out] = x[r,in] W[out,in]^T + b[out] ----
** x may have any number of leading dimensions (r = numel(x)/in); y then has
** the same leading dimensions. b may be NULL. */
EG_API int eg_linear_forward(eg_tensor *y, const eg_tensor *x, const eg_tensor *W, const eg_tensor *b);
/* The same with a workspace ws (may be NULL: then exactly eg_linear_forward).
** For few rows (r <= EG_LINEAR_FEW_ROWS) on one BLAS thread, OpenBLAS runs
** W x^T (x the packed operand) about 20% faster than x W^T, so y^T is
** computed into ws (at least r*out floats, contiguous, any shape) and
** transposed into y. With more threads OpenBLAS splits x W^T well and W x^T
** badly (16 rows, 784->400, 2 threads: 97 us against 143 us), so there the
** workspace is not used. */
#define EG_LINEAR_FEW_ROWS 32
EG_API int eg_linear_forward_ws(eg_tensor *y, eg_tensor *ws, const eg_tensor *x, const eg_tensor *W,
                                const eg_tensor *b);
/* gx = gy W (overwritten; may be NULL), gW += gy^T x, gb += sum_r gy (gW, gb may be NULL). */
EG_API int eg_linear_backward(eg_tensor *gx, eg_tensor *gW, eg_tensor *gb, const eg_tensor *gy, const eg_tensor *x,
                              const eg_tensor *W);

/* ---- element-wise activations ---- */
typedef enum { EG_ACT_RELU, EG_ACT_LEAKY_RELU, EG_ACT_TANH, EG_ACT_SIGMOID, EG_ACT_GELU, EG_ACT_IDENTITY } eg_act;
/* "relu", "leaky_relu", "tanh", "sigmoid", "gelu", "identity". */
EG_API const char *eg_act_name(eg_act a);
/* y = act(x); alpha is LeakyReLU's negative slope (ignored otherwise). GELU
** is the tanh approximation 0.5x(1+tanh(sqrt(2/pi)(x+0.044715x^3))),
** PyTorch's gelu(approximate="tanh"). y may alias x except for GELU's
** backward, which needs x. */
EG_API int eg_act_forward(eg_tensor *y, const eg_tensor *x, eg_act a, float alpha);
/* gx = gy * act'(.), from the saved output y for ReLU, LeakyReLU (alpha > 0),
** Tanh and Sigmoid, from x for GELU (x may be NULL for the others). gx may alias gy. */
EG_API int eg_act_backward(eg_tensor *gx, const eg_tensor *gy, const eg_tensor *x, const eg_tensor *y, eg_act a,
                           float alpha);

/* ---- Softmax / LogSoftmax over the last dimension ---- */
EG_API int eg_softmax_forward(eg_tensor *y, const eg_tensor *x);
/* gx = y * (gy - sum(gy*y)) from the saved output. */
EG_API int eg_softmax_backward(eg_tensor *gx, const eg_tensor *gy, const eg_tensor *y);
EG_API int eg_logsoftmax_forward(eg_tensor *y, const eg_tensor *x);
/* gx = gy - exp(y) * sum(gy) from the saved output. */
EG_API int eg_logsoftmax_backward(eg_tensor *gx, const eg_tensor *gy, const eg_tensor *y);

/* ---- Dropout (training mode; in evaluation mode the caller copies) ----
** mask receives 0 or 1/(1-p) from r; y = x * mask. 0 <= p < 1. */
EG_API int eg_dropout_forward(eg_tensor *y, eg_tensor *mask, const eg_tensor *x, eg_rng *r, float p);
EG_API int eg_dropout_backward(eg_tensor *gx, const eg_tensor *gy, const eg_tensor *mask);

/* ---- LayerNorm over the last dimension D, with affine w[D], b[D] ----
** mean and rstd ([r] each, r = numel/D) are saved for backward. */
EG_API int eg_layernorm_forward(eg_tensor *y, eg_tensor *mean, eg_tensor *rstd, const eg_tensor *x, const eg_tensor *w,
                                const eg_tensor *b, float eps);
/* gx overwritten (may be NULL); gw, gb accumulate (may be NULL). */
EG_API int eg_layernorm_backward(eg_tensor *gx, eg_tensor *gw, eg_tensor *gb, const eg_tensor *gy, const eg_tensor *x,
                                 const eg_tensor *mean, const eg_tensor *rstd, const eg_tensor *w);

/* ---- Conv2d by im2col + GEMM ----
** x [N,C,H,W], W [O,C,kh,kw], b [O] or NULL, y [N,O,Ho,Wo] with
** Ho = (H + 2 pad - kh) / stride + 1 (likewise Wo). cols is scratch of at
** least C*kh*kw*Ho*Wo floats (one image at a time), any shape. */
static inline int64_t eg_conv_out_size(int64_t in, int64_t k, int64_t stride, int64_t pad) {
  return (in + 2 * pad - k) / stride + 1;
}
EG_API int eg_conv2d_forward(eg_tensor *y, eg_tensor *cols, const eg_tensor *x, const eg_tensor *W, const eg_tensor *b,
                             int stride, int pad);
/* gx overwritten (may be NULL), gW and gb accumulate (may be NULL); cols as in forward. */
EG_API int eg_conv2d_backward(eg_tensor *gx, eg_tensor *gW, eg_tensor *gb, eg_tensor *cols, const eg_tensor *gy,
                              const eg_tensor *x, const eg_tensor *W, int stride, int pad);

/* ---- MaxPool2d ----
** x [N,C,H,W] -> y [N,C,Ho,Wo], window k, stride and padding (padding counts
** as -infinity, as in PyTorch; pad <= k/2). idx (shape of y) receives the 0-based position of
** each maximum within its H*W plane, for backward. */
EG_API int eg_maxpool2d_forward(eg_tensor *y, eg_tensor *idx, const eg_tensor *x, int k, int stride, int pad);
/* gx (shape of x) overwritten: gy routed to the saved positions. */
EG_API int eg_maxpool2d_backward(eg_tensor *gx, const eg_tensor *gy, const eg_tensor *idx);

/* ---- Embedding ----
** ids: any shape, float values holding 0-based integral ids in [0, V);
** W [V,D]; y has ids' shape followed by D. */
EG_API int eg_embedding_forward(eg_tensor *y, const eg_tensor *ids, const eg_tensor *W);
/* gW[ids[i]] += gy[i] (repeated ids accumulate). */
EG_API int eg_embedding_backward(eg_tensor *gW, const eg_tensor *gy, const eg_tensor *ids);

#ifdef __cplusplus
}
#endif

#endif
