/*
** data_impl.h — what data.c and data_io.c share (internal; not installed API).
*/
#ifndef EG_DATA_IMPL_H
#define EG_DATA_IMPL_H

#include "base_impl.h"
#include "data.h"

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
