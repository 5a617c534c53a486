/*
** safetensors.h — named float32 tensors in the safetensors layout, the file
** format of engram's checkpoints (and PyTorch's, Hugging Face's):
**
**   8 bytes   N, the header's length, unsigned little-endian
**   N bytes   a JSON object: for each tensor "name": {"dtype": "F32",
**             "shape": [d0, d1, ...], "data_offsets": [begin, end]}, and
**             optionally "__metadata__": {"key": "value", ...} (strings only)
**   the rest  the tensors' bytes, little-endian, each at [begin, end) from the
**             end of the header; together they cover it without gap or overlap
**
** The writer pads the header with spaces to a multiple of 8 bytes, writes the
** tensors in the order given, and replaces the file atomically (io.h). The
** reader checks everything before it trusts anything: the header length
** against the file, the JSON (strict: no trailing commas, no duplicate
** names, escapes and UTF-8 checked), every dtype (F32 only), every shape
** (at most EG_MAXDIM dimensions, sizes that fit), every offset pair against
** the shape and the data, and that the tensors tile the data exactly. A file
** that fails any check is rejected whole, with EG_EFORMAT and a message
** naming the file and the problem; nothing is half-loaded.
*/
#ifndef EG_SAFETENSORS_H
#define EG_SAFETENSORS_H

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Writes n tensors (any layout; written contiguous, as float32) under their
** names, and nmeta metadata pairs (keys[i] -> values[i]; strings), to path.
** Names must be distinct, non-empty and not "__metadata__". */
EG_API int eg_st_save(const char *path, int64_t n, const char *const *names, const eg_tensor *const *tensors,
                      int64_t nmeta, const char *const *keys, const char *const *values);

/* A file read and checked whole: tensors and metadata in memory. */
typedef struct eg_st_file eg_st_file;

/* Reads and checks path (above); *out is NULL on failure. Free with eg_st_close. */
EG_API int eg_st_open(eg_st_file **out, const char *path);
/* The same from a buffer of n bytes (for tests and fuzzing; what is a file
** name in messages is `what`). */
EG_API int eg_st_parse(eg_st_file **out, const void *data, size_t n, const char *what);
EG_API void eg_st_close(eg_st_file *f); /* accepts NULL */

/* Tensors in file order (by data offset). */
EG_API int64_t eg_st_count(const eg_st_file *f);
EG_API const char *eg_st_name(const eg_st_file *f, int64_t i);
/* A new contiguous tensor in *t with tensor i's shape and values. */
EG_API int eg_st_tensor(const eg_st_file *f, int64_t i, eg_tensor *t);
/* The index of the tensor named name, or -1. */
EG_API int64_t eg_st_find(const eg_st_file *f, const char *name);
/* Metadata: count, and the i-th key and value (NUL-terminated, owned by f). */
EG_API int64_t eg_st_meta_count(const eg_st_file *f);
EG_API const char *eg_st_meta_key(const eg_st_file *f, int64_t i);
EG_API const char *eg_st_meta_value(const eg_st_file *f, int64_t i);

#ifdef __cplusplus
}
#endif

#endif
