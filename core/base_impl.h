/*
** base_impl.h — what the core's sources share beyond the public API: the
** overflow-checked size helper and the debug-only invariant check. Internal;
** not installed, not exported.
*/
#ifndef EG_BASE_IMPL_H
#define EG_BASE_IMPL_H

#include "eg_base.h"

/* Overflow-checked size helpers: return 0 and set *out on success,
** EG_ENOMEM (with a message naming op) when the product overflows. */
int eg_size_mul(size_t a, size_t b, size_t *out, const char *op);

/* Internal invariants (never user input): checked in debug builds only. */
#ifdef EG_DEBUG
#include <stdio.h>
#include <stdlib.h>
#define eg_assert(c) ((c) ? (void)0 : (fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #c), abort()))
#else
#define eg_assert(c) ((void)0)
#endif

#endif
