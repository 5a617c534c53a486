/*
** eg_base.c — status strings, the thread-local error message, counted allocation.
*/
#include "base_impl.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static _Thread_local char errbuf[512];
/* Relaxed atomics: the counter is only read by tests and benches. */
static uint64_t alloc_count;

int eg_version(void) { return EG_VERSION_NUM; }

const char *eg_errstr(int status) {
  switch (status) {
    case EG_OK: return "ok";
    case EG_EINVAL: return "invalid argument";
    case EG_ESHAPE: return "shape mismatch";
    case EG_ERANGE: return "index out of range";
    case EG_ENOMEM: return "out of memory";
    case EG_EIO: return "input/output error";
    case EG_EFORMAT: return "bad format";
    case EG_ESTATE: return "wrong state";
    default: return "unknown error";
  }
}

const char *eg_errmsg(void) { return errbuf; }

int eg_seterr(int status, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(errbuf, sizeof errbuf, fmt, ap);
  va_end(ap);
  return status;
}

void eg_clearerr(void) { errbuf[0] = '\0'; }

static void counted(void) { __atomic_fetch_add(&alloc_count, 1, __ATOMIC_RELAXED); }

void *eg_malloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (p) counted();
  return p;
}

void *eg_calloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size ? size : 1);
  if (p) counted();
  return p;
}

void *eg_realloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  if (q) counted();
  return q;
}

void eg_free(void *p) { free(p); }

uint64_t eg_alloc_count(void) { return __atomic_load_n(&alloc_count, __ATOMIC_RELAXED); }

int eg_size_mul(size_t a, size_t b, size_t *out, const char *op) {
  if (a != 0 && b > SIZE_MAX / a) return eg_seterr(EG_ENOMEM, "%s: size overflows (%zu * %zu)", op, a, b);
  *out = a * b;
  return EG_OK;
}
