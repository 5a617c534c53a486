/*
** conv_impl.h — what conv.c shares with the other kernels over convolutions
** (cl_importance.c's per-sample Conv2d gradients): the dimensions and im2col.
** Internal; not installed, not exported.
*/
#ifndef EG_CONV_IMPL_H
#define EG_CONV_IMPL_H
#include <stdint.h>

/* N images of C x H x W, O output channels, a kh x kw kernel, Ho x Wo outputs. */
typedef struct {
  int64_t N, C, H, W, O, kh, kw, Ho, Wo;
} eg_conv_dims;

/* One image x [C,H,W] to its patches cols [C*kh*kw, Ho*Wo]:
** cols[(c,i,j), (oy,ox)] = x[c, oy*s - p + i, ox*s - p + j] (0 outside). */
void eg_im2col(float *cols, const float *x, const eg_conv_dims *d, int s, int p);
#endif
