/*
** nn_impl.h — checks shared by the layer kernels (nn.c, conv.c); internal.
*/
#ifndef EG_NN_IMPL_H
#define EG_NN_IMPL_H
#include "tensor.h"

/* EG_ESTATE if t is empty, EG_ESHAPE if not contiguous; messages name layer and what. */
int eg_nn_need(const eg_tensor *t, const char *layer, const char *what);
/* EG_ESHAPE with both shapes in the message unless a and b have the same shape. */
int eg_nn_same(const eg_tensor *a, const eg_tensor *b, const char *layer, const char *wa, const char *wb);
#endif
