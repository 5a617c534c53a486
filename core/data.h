/*
** data.h — data files and datasets: the IDX and CSV readers, synthetic sets,
** subsets, concatenation, transforms and the batch iterator.
**
** A dataset lives in C memory. Its samples sit in a reference-counted *base*
** (storage of uint8 pixels or float32 values, plus int32 class labels); a
** dataset is an immutable view of a base: an optional index array (which base
** samples, in what order), a per-sample shape (images are 1xHxW, channel
** first, so a CNN sees batches as [B,1,H,W]; tables and synthetic sets are
** {D}), the number of classes, and the transforms applied when a batch is
** converted to float. Every operation that derives a dataset (subset, split,
** permuted, normalized, noisy) returns a new handle sharing the base, so ten
** permuted Fashion-MNIST tasks cost ten 784-entry permutations, not ten copies.
** Only rotation (materialised once into a new uint8 base) and concatenation of
** datasets that differ in base or transforms copy samples.
**
** Handles are reference-counted: every function that returns a dataset through
** `eg_dataset **out` gives the caller one reference, which eg_dataset_release
** drops; derived datasets and batchers keep their own references, so any
** release order is safe.
**
** Conversion of one sample to float, in this fixed order:
**   1. the stored value (uint8 pixels are divided by 255, so they lie in [0, 1]);
**   2. the pixel permutation, if any:     out[j] = in[perm[j]];
**   3. the affine map from normalisation: out = out * scale + shift;
**   4. Gaussian noise, if any:            out += noise_std * N(0, 1).
** Whatever the call order, the result equals (in distribution, for the noise)
** applying the transforms in that order, because the fixed pipeline folds
** them: normalized(m, s) after noisy(sd) divides the noise by s too;
** permuted twice composes the permutations; noisy twice adds the variances
** (the noise seed becomes a mix of both seeds); i.i.d. noise permuted is
** still i.i.d. noise.
** Noise is fixed per sample: it is drawn from an eg_rng seeded by the noise
** seed and the sample's position in its base, so the same sample gets the same
** noise in every batch, order and epoch (a noisy dataset is a fixed domain,
** e.g. one task of a domain-incremental scenario, not random augmentation).
** Rotation acts on the stored values (after applying any permutation, which it
** folds in) and keeps normalisation and noise, which still apply at batch time.
**
** Class labels are the base's class ids 0..C-1. Subsets keep the parent's
** number of classes (so a model head sized for all classes still fits).
** Indices are 0-based.
*/
#ifndef EG_DATA_H
#define EG_DATA_H

#include "rng.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct eg_dataset eg_dataset;
typedef struct eg_batcher eg_batcher;

/* ---- IDX files (LeCun's format, optionally gzipped) ---- */

/* IDX element types (the third byte of the magic number). */
enum { EG_IDX_U8 = 0x08, EG_IDX_I8 = 0x09, EG_IDX_I16 = 0x0B, EG_IDX_I32 = 0x0C, EG_IDX_F32 = 0x0D, EG_IDX_F64 = 0x0E };

/* The decoded contents of an IDX file. data holds numel() elements of `type`
** converted to host byte order; it is owned by the struct (eg_idx_free). */
typedef struct eg_idx {
  int type;
  int ndim;
  int64_t dims[EG_MAXDIM];
  int64_t numel;
  void *data;
} eg_idx;

/* Reads an IDX file, gzipped or plain. Checks the magic number, the number
** of dimensions (1..EG_MAXDIM), that no dimension is 0, that the product of
** the dimensions does not overflow, and that the file holds exactly that many
** elements (a truncated or overlong file, or a gzip stream with a bad
** checksum, is EG_EFORMAT). On failure *out is left empty. */
EG_API int eg_idx_read(const char *path, eg_idx *out);
/* Frees what eg_idx_read allocated; accepts an empty or released struct. */
EG_API void eg_idx_free(eg_idx *idx);

/* A dataset from an IDX image file (uint8, [n, ...]) and an IDX label file
** (uint8 or int32, [n]). 3-D image files [n, H, W] give samples 1xHxW. The
** number of classes is the largest label + 1. */
EG_API int eg_dataset_from_idx(eg_dataset **out, const char *images_path, const char *labels_path);
/* Fashion-MNIST from dir (NULL: $ENGRAM_DATA/fashion-mnist, or $ENGRAM_DATA
** itself when it has no fashion-mnist subdirectory, when ENGRAM_DATA is set;
** else /usr/share/datasets/fashion-mnist, where the Debian package
** dataset-fashion-mnist puts it). Looks for {train,t10k}-{images-idx3,labels-idx1}-ubyte
** with or without .gz. A missing file is EG_EIO with a message that says to
** install the package. Both handles are the caller's. */
EG_API int eg_dataset_fashion_mnist(const char *dir, eg_dataset **train, eg_dataset **test);
/* The same in two steps, for a caller that checks the file names before they
** are opened (the embedding API's sandbox): the four files found from dir (as
** above; train images, train labels, test images, test labels), then the
** datasets read from them. */
#define EG_FMNIST_PATH 4200
EG_API int eg_fashion_mnist_files(const char *dir, char files[4][EG_FMNIST_PATH]);
EG_API int eg_dataset_fashion_mnist_from(const char *const files[4], eg_dataset **train, eg_dataset **test);

/* ---- CSV files of numbers ---- */
typedef struct eg_csv_opts {
  char sep;            /* field separator; 0 means ',' */
  int header;          /* 1: the first line holds column names */
  int label_column;    /* 0-based; negative counts from the end (-1: last); ignored when no_labels */
  const char *label_name; /* when non-NULL (and header), the label column by name */
  int no_labels;       /* 1: every column is a feature and every label is 0 */
} eg_csv_opts;
/* A float32 dataset from a CSV file (gzipped or plain) of numbers: one sample
** per non-empty line, samples of shape {columns - 1}. Labels must be
** non-negative integers below 2^24. A bad field names its line and column. */
EG_API int eg_dataset_from_csv(eg_dataset **out, const char *path, const eg_csv_opts *opts);

/* ---- datasets from memory and synthetic sets ---- */

/* A dataset that copies x ([n, ...sample shape], any layout) and y ([n],
** integral values >= 0). nclasses 0 means max(y) + 1. Float32 storage. */
EG_API int eg_dataset_from_tensors(eg_dataset **out, const eg_tensor *x, const eg_tensor *y, int nclasses);
/* A uint8 dataset copying n samples of `shape` from pixels and labels. */
EG_API int eg_dataset_from_u8(eg_dataset **out, const uint8_t *pixels, const int32_t *labels, int64_t n, int ndim,
                              const int64_t *shape, int nclasses);
/* Gaussian blobs: `classes` centres drawn uniformly from [-4, 4]^dim, sample
** i of class i % classes at its centre plus std * N(0, 1). */
EG_API int eg_dataset_blobs(eg_dataset **out, int64_t n, int classes, int64_t dim, double std, uint64_t seed);
/* Interleaved spirals in 2-D: `classes` arms (2: the two-spirals problem),
** each making `turns` turns from the centre to radius 1, plus noise * N(0, 1). */
EG_API int eg_dataset_spirals(eg_dataset **out, int64_t n, int classes, double turns, double noise, uint64_t seed);

/* ---- lifetime and inspection ---- */
EG_API void eg_dataset_retain(eg_dataset *ds);
EG_API void eg_dataset_release(eg_dataset *ds); /* accepts NULL */
EG_API int64_t eg_dataset_size(const eg_dataset *ds);
/* Sample shape (without the batch dimension); returns ndim and fills shape. */
EG_API int eg_dataset_shape(const eg_dataset *ds, int64_t *shape);
/* Number of floats per sample (product of the sample shape). */
EG_API int64_t eg_dataset_sample_numel(const eg_dataset *ds);
EG_API int eg_dataset_nclasses(const eg_dataset *ds);
/* 1 when samples are stored as uint8 (images), 0 for float32. */
EG_API int eg_dataset_is_u8(const eg_dataset *ds);
/* 1 when every sample value is one of 256 levels, a uint8 code q through
** the dataset's affine map: levels[q] (filled when levels is not NULL) is
** the float a batch holds for q, bit for bit, and *scale, *offset (when
** not NULL) the map, value = q * scale + offset up to rounding. 0 for
** float32 data or noisy datasets. */
EG_API int eg_dataset_levels(const eg_dataset *ds, float *levels, double *scale, double *offset);
/* The label of sample i (0 <= i < size; no check). */
EG_API int eg_dataset_label(const eg_dataset *ds, int64_t i);
/* counts[c] = number of samples of class c, for c < nclasses (caller's array). */
EG_API void eg_dataset_class_counts(const eg_dataset *ds, int64_t *counts);
/* Writes a one-line description ("Dataset(60000 samples, 1x28x28 uint8, 10 classes)"). */
EG_API const char *eg_dataset_describe(const eg_dataset *ds, char *buf, size_t n);

/* ---- derived datasets (each returns a new handle sharing the base) ---- */
/* Samples idx[0..n-1] (duplicates allowed, order kept). */
EG_API int eg_dataset_subset(eg_dataset **out, const eg_dataset *ds, const int64_t *idx, int64_t n);
/* The samples whose label is one of labels[0..nl-1], in order. */
EG_API int eg_dataset_subset_labels(eg_dataset **out, const eg_dataset *ds, const int *labels, int nl);
/* Keeps about frac[c] (in [0, 1]) of each class c < nfrac (others kept
** whole), choosing which at random with seed; order kept. For class imbalance. */
EG_API int eg_dataset_subset_fractions(eg_dataset **out, const eg_dataset *ds, const double *frac, int nfrac,
                                       uint64_t seed);
/* A random split: round(fraction * n) samples into *a, the rest into *b. */
EG_API int eg_dataset_split(eg_dataset **a, eg_dataset **b, const eg_dataset *ds, double fraction, uint64_t seed);
/* The samples of a followed by those of b (same sample shape). Shares the base
** when a and b share base and transforms; otherwise copies into a new base:
** uint8 when neither has normalisation or noise, float32 (transforms baked in)
** otherwise. nclasses is the larger of the two. */
EG_API int eg_dataset_concat(eg_dataset **out, const eg_dataset *a, const eg_dataset *b);
/* Pixels permuted at batch time: perm (numel entries, a permutation of
** 0..numel-1) or, when perm is NULL, a random permutation drawn from seed. */
EG_API int eg_dataset_permuted(eg_dataset **out, const eg_dataset *ds, const int64_t *perm, uint64_t seed);
/* The permutation in effect (numel entries) into perm; 0 when there is none (identity). */
EG_API int eg_dataset_permutation(const eg_dataset *ds, int64_t *perm);
/* Images (sample shape HxW or CxHxW) rotated counter-clockwise by degrees
** about their centre, bilinear, zero outside; materialised into a new base. */
EG_API int eg_dataset_rotated(eg_dataset **out, const eg_dataset *ds, double degrees);
/* (x - mean) / std at batch time; std > 0. */
EG_API int eg_dataset_normalized(eg_dataset **out, const eg_dataset *ds, double mean, double std);
/* Adds std * N(0, 1), fixed per sample by seed (see above); std >= 0. */
EG_API int eg_dataset_noisy(eg_dataset **out, const eg_dataset *ds, double std, uint64_t seed);

/* ---- batches ---- */

/* Batch flags. EG_BATCH_FLAT: x is [B, numel] instead of [B, ...shape]. */
enum { EG_BATCH_FLAT = 1 };

/* Reused output buffers: x (float, [B, ...]) and y (float labels, [B]) are
** reshaped in place when their storage is large enough (whoever else holds a
** view of them sees the new contents: they are overwritten, by design) and
** reallocated only when it is too small. */

/* x, y := the samples idx[0..n-1] (n >= 1). For replay and evaluation. */
EG_API int eg_dataset_gather(const eg_dataset *ds, const int64_t *idx, int64_t n, eg_tensor *x, eg_tensor *y,
                             int flags);
/* x, y := samples start..start+count-1 (count >= 1). For whole-set evaluation in chunks. */
EG_API int eg_dataset_range(const eg_dataset *ds, int64_t start, int64_t count, eg_tensor *x, eg_tensor *y,
                            int flags);

/* A batch iterator over ds (retained). With shuffle, each epoch visits the
** samples in a new order drawn from an eg_rng seeded once with seed (same seed,
** same sequence of epochs); without, in dataset order. drop_last skips a final
** batch smaller than batch. */
EG_API int eg_batcher_new(eg_batcher **out, eg_dataset *ds, int64_t batch, int shuffle, int drop_last,
                          uint64_t seed, int flags);
/* Fills the next batch into x, y and sets *count to its size; *count == 0
** marks the end of an epoch (x, y untouched), and the next call starts the
** next epoch. Allocates nothing once x and y have held a full batch. */
EG_API int eg_batcher_next(eg_batcher *b, eg_tensor *x, eg_tensor *y, int64_t *count);
/* Restarts the current epoch's order from its beginning. */
EG_API void eg_batcher_rewind(eg_batcher *b);
/* Batches per epoch. */
EG_API int64_t eg_batcher_nbatches(const eg_batcher *b);
/* Number of epochs started so far (0 before the first batch). */
EG_API int64_t eg_batcher_epoch(const eg_batcher *b);
/* The dataset positions of the batch just returned (count entries; borrowed). */
EG_API const int64_t *eg_batcher_indices(const eg_batcher *b, int64_t *count);
EG_API void eg_batcher_free(eg_batcher *b); /* accepts NULL */

#ifdef __cplusplus
}
#endif

#endif
