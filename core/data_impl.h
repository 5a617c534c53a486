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

/* The shared sample store: exactly one of u8 / f32 is set, or for a window
** dataset (window > 0, data_text.c) none of u8, f32, labels but one of
** tok8 / tok16 (the token stream) and starts (each window's first token). */
typedef struct eg_database {
  int refs;
  int64_t n;     /* samples */
  int64_t numel; /* values per sample */
  uint8_t *u8;
  float *f32;
  int32_t *labels;
  int64_t window; /* T of a window dataset, else 0 */
  int64_t ntok;
  uint8_t *tok8;
  uint16_t *tok16;
  int64_t *starts;
} eg_database;

struct eg_dataset {
  int refs;
  eg_database *base;
  int64_t n;
  int64_t *idx; /* base positions; NULL means 0..n-1 */
  int ndim;
  int64_t shape[EG_MAXDIM];
  int64_t numel;
  int nclasses;
  int64_t *perm;        /* NULL: identity */
  double scale, shift;  /* after uint8 / 255 */
  double noise_std;
  uint64_t noise_seed;
  float lut[256];       /* uint8 value -> float after /255 and the affine map */
};

static inline int64_t base_pos(const eg_dataset *ds, int64_t i) { return ds->idx ? ds->idx[i] : i; }

/* A new handle on base (retained) with no transforms. */
eg_dataset *eg__dataset_handle(eg_database *base, int ndim, const int64_t *shape, int nclasses);

/* Window datasets (data_text.c). */
void eg__window_fill(const eg_database *b, int64_t bpos, float *x, float *y);
void eg__window_counts(const eg_dataset *ds, int64_t *counts);
const char *eg__window_describe(const eg_dataset *ds, char *buf, size_t n);
int eg__window_concat(eg_dataset **out, const eg_dataset *a, const eg_dataset *b);
int eg__not_windows(const eg_dataset *ds, const char *op);

/* Takes ownership of u8 or f32 and labels (even on failure); *out gets one
** reference. nclasses 0: max label + 1. Checks labels are in range. */
int eg__dataset_wrap(eg_dataset **out, int64_t n, int ndim, const int64_t *shape, uint8_t *u8, float *f32,
                     int32_t *labels, int nclasses, const char *op);

#endif
