/*
** eg_base.h — status codes, error messages, allocation and version of the
** engram core. Every other core header includes this one.
**
** Errors are values: a core function that can fail returns an int status
** (EG_OK == 0 on success) and records a message that eg_errmsg() returns
** until the next failure on the same thread. The core never aborts, exits or
** asserts on user input. The message buffer is thread-local, like errno, so a
** host with several threads (or Lua coroutines on one thread, which read it
** right after the failing call) always sees its own error.
*/
#ifndef EG_BASE_H
#define EG_BASE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define EG_API __declspec(dllexport)
#else
#define EG_API __attribute__((visibility("default")))
#endif

#define EG_VERSION_MAJOR 0
#define EG_VERSION_MINOR 1
#define EG_VERSION_PATCH 0
#define EG_VERSION "0.1.0"
/* A single number for compile-time checks: 100*100*major + 100*minor + patch. */
#define EG_VERSION_NUM (EG_VERSION_MAJOR * 10000 + EG_VERSION_MINOR * 100 + EG_VERSION_PATCH)

/* Status codes. Values are appended, never reordered. */
enum {
  EG_OK = 0,
  EG_EINVAL = 1,  /* a bad argument: NaN, negative size, unknown option */
  EG_ESHAPE = 2,  /* shapes that do not fit together */
  EG_ERANGE = 3,  /* an index out of range */
  EG_ENOMEM = 4,  /* out of memory, or a size too large to allocate */
  EG_EIO = 5,     /* a file could not be opened, read or written */
  EG_EFORMAT = 6, /* a file or buffer is corrupt or not of the expected format */
  EG_ESTATE = 7   /* an object used in the wrong state (released, not built) */
};

/* The run-time version number (EG_VERSION_NUM of the library that is linked). */
EG_API int eg_version(void);
/* A short name for a status code ("out of memory"); never NULL. */
EG_API const char *eg_errstr(int status);
/* The message of the last failure on this thread ("" if none). */
EG_API const char *eg_errmsg(void);
/* Records a printf-style message for this thread and returns status. */
EG_API int eg_seterr(int status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
EG_API void eg_clearerr(void);

/* All core allocations go through these, so tests can count them and check
** that a warm training step allocates nothing. eg_malloc(0) returns a valid
** unique pointer. eg_malloc and eg_calloc return NULL on failure without
** recording an error; callers turn that into EG_ENOMEM. */
EG_API void *eg_malloc(size_t n);
EG_API void *eg_calloc(size_t n, size_t size);
EG_API void *eg_realloc(void *p, size_t n);
EG_API void eg_free(void *p);
/* Number of successful eg_malloc/eg_calloc/eg_realloc calls so far (all threads). */
EG_API uint64_t eg_alloc_count(void);

/* ---- allocation budgets (the embedding API's memory cap) ----
** While a budget is in use on a thread, every eg_malloc/eg_calloc/eg_realloc
** on that thread is charged to it (the block's usable size), eg_free gives
** the bytes back, and an allocation that would take `used` past `limit`
** fails as if memory had run out (NULL, then EG_ENOMEM), setting `refused`.
** Memory freed under a budget that it was not charged to is forgotten
** (`used` never goes below 0). One budget may also be charged directly, by
** another allocator (the Lua state's) through eg_budget_take/_give. */
typedef struct eg_budget {
  size_t limit; /* bytes; 0: no limit, only counting */
  size_t used;  /* bytes currently charged */
  size_t peak;  /* the largest `used` seen */
  int refused;  /* set when an allocation was refused; the owner clears it */
} eg_budget;
/* Makes b (NULL: none) the calling thread's budget; returns the previous one. */
EG_API eg_budget *eg_budget_use(eg_budget *b);
/* Charges n bytes to b: 1, or 0 (and refused set, nothing charged) when that
** would pass the limit. */
EG_API int eg_budget_take(eg_budget *b, size_t n);
/* Gives n bytes back to b. */
EG_API void eg_budget_give(eg_budget *b, size_t n);

#ifdef __cplusplus
}
#endif

#endif
