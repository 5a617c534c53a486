/*
** cl_impl.h — what cl.c shares with cl_importance.c. Internal; not installed,
** not exported.
*/
#ifndef EG_CL_IMPL_H
#define EG_CL_IMPL_H
#include "tensor.h"

/* EG_ESTATE when t is empty, EG_ESHAPE when it is not contiguous or (n >= 0)
** does not have n elements; messages name op and what. */
int eg_cl_check_vec(const eg_tensor *t, int64_t n, const char *op, const char *what);
#endif
