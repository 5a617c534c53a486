/*
** data_impl.h — what data.c, data_io.c and data_make.c share (internal; not
** installed API).
*/
#ifndef EG_DATA_IMPL_H
#define EG_DATA_IMPL_H

#include "base_impl.h"
#include "data.h"

/* Labels travel as float32 in batches: keep them exactly representable. */
#define MAX_LABEL (1 << 24)

static inline int nomem(const char *op) { return eg_seterr(EG_ENOMEM, "%s: out of memory", op); }

/* The shared sample store: exactly one of u8 / f32 is set. */
typedef struct eg_database {
  int refs;
  int64_t n;     /* samples */
  int64_t numel; /* values per sample */
  uint8_t *u8;
  float *f32;
  int32_t *labels;
} eg_database;

/* Takes ownership of u8 or f32 and labels (even on failure); *out gets one
** reference. nclasses 0: max label + 1. Checks labels are in range. */
int eg__dataset_wrap(eg_dataset **out, int64_t n, int ndim, const int64_t *shape, uint8_t *u8, float *f32,
                     int32_t *labels, int nclasses, const char *op);

#endif
