/*
** engram/core.h — the engram core's public C API, in one include:
**
**   #include <engram/core.h>          cc -I$(PREFIX)/include host.c \
**                                        -lengram -lopenblas -lz -lm -lpthread
**
** If it is not in these headers, it is not API. The core is plain C11 with
** no Lua in it; every function that can fail returns a status (EG_OK == 0)
** and records a message for eg_errmsg(). The per-concept headers it includes
** are installed beside it (PREFIX/include/engram/) and may be included alone:
**
**   eg_base.h  status codes, eg_errmsg, eg_malloc/eg_free, version numbers
**   tensor.h   float32 tensors: storage, views, copying, joining (eg_cat),
**              element-wise math, products (cblas_sgemm), reductions
**   rng.h      seedable generators, random fills, eg_randperm, the BLAS
**              thread count
**   params.h   parameter groups: one flat arena of values and one of gradients
**   nn.h       layer kernels: plain forward/backward pairs
**   loss.h     losses with fused gradients, accuracy
**   optim.h    SGD and Adam steps over flat vectors
**   data.h     IDX and CSV readers, datasets, transforms, batches
**   cl.h       Fisher accumulation, quadratic penalties, replay memory
**   io.h       files written safely (atomic replace, special files kept)
**   safetensors.h  named tensors in the safetensors layout (checkpoints)
**   image.h    sample grids as 8-bit grayscale PNG
**   gen.h      the VAE's reparameterisation and KL kernels (generative replay)
**   attn.h     causal multi-head self-attention (the GPT block's kernel)
**   text.h     byte- and char-level tokenizers, token-window datasets, sampling
**
** A worked example (error checks shortened):
**
**   eg_tensor a = EG_TENSOR_INIT, b = EG_TENSOR_INIT, c = EG_TENSOR_INIT;
**   int64_t sa[] = {2, 3}, sb[] = {3, 4}, sc[] = {2, 4};
**   if (eg_tensor_new(&a, 2, sa) || eg_tensor_new(&b, 2, sb) || eg_tensor_new(&c, 2, sc) ||
**       eg_fill(&a, 1.0f) || eg_fill(&b, 2.0f) || eg_mm(&c, &a, &b, 0, 0, 1.0f, 0.0f))
**     fprintf(stderr, "engram: %s\n", eg_errmsg());
**   eg_tensor_release(&a); eg_tensor_release(&b); eg_tensor_release(&c);
**
** Version: EG_VERSION_NUM is this header's; eg_version() is the linked
** library's. A host compares them to catch a header/library mismatch.
**
** Threads. The core keeps no global state but the BLAS thread count
** (eg_set_threads, process-wide: set it before starting threads) and a few
** counters, and its error message is per thread. Reference counts are NOT
** atomic: an eg_storage counts the tensors that view it, and a dataset the
** handles that share its samples, with plain int increments and decrements
** (eg_storage_retain/release, eg_tensor_set, eg_tensor_release, every view
** function, eg_dataset_retain/release and every function deriving a dataset).
** So a host:
**   - may run the core on several threads at once when each thread works on
**     its own objects: tensors whose storages no other thread's tensors view,
**     its own parameter groups, datasets, memories and generators;
**   - may read the elements of one storage from several threads at once (for
**     instance, evaluate a frozen model on two threads) only while no thread
**     writes those elements and no thread creates, sets or releases a tensor
**     viewing that storage: make the views first, on one thread;
**   - may hand an object graph (a tensor and its views, a dataset and the
**     ones derived from it) from one thread to another, with the usual
**     happens-before (a mutex, a queue), and then use it only there;
**   - may NOT, without one lock held around every such call, retain, release
**     or make views of tensors sharing a storage (or datasets sharing a base)
**     on two threads at the same time: a lost update frees memory still in
**     use or leaks it;
**   - may NOT use one eg_rng, parameter group, replay memory or batcher from
**     two threads at the same time: they are plain structs and handles.
** Safe from any thread at any time: eg_errmsg / eg_errstr / eg_seterr /
** eg_clearerr (the message is thread-local), eg_version, eg_alloc_count and
** eg_storage_live_bytes (atomic counters), eg_malloc / eg_calloc /
** eg_realloc / eg_free.
*/
#ifndef ENGRAM_CORE_H
#define ENGRAM_CORE_H

#include "eg_base.h"
#include "tensor.h"
#include "rng.h"
#include "params.h"
#include "nn.h"
#include "loss.h"
#include "optim.h"
#include "data.h"
#include "cl.h"
#include "io.h"
#include "safetensors.h"
#include "image.h"
#include "gen.h"
#include "attn.h"
#include "text.h"

#endif
