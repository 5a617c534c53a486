/*
** eg_base.c — status strings, the thread-local error message, counted
** allocation and the thread's allocation budget.
*/
#include "base_impl.h"

#include <malloc.h>
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

/* The calling thread's budget (see eg_base.h); NULL almost always. Blocks are
** charged by malloc_usable_size, so eg_free needs no size and no header. */
static _Thread_local eg_budget *budget;

eg_budget *eg_budget_use(eg_budget *b) {
  eg_budget *old = budget;
  budget = b;
  return old;
}

/* Would n more bytes fit in b? (sets refused when not) */
static int admits(eg_budget *b, size_t n) {
  if (b->limit && (b->used >= b->limit || n > b->limit - b->used)) {
    b->refused = 1;
    return 0;
  }
  return 1;
}

static void charge(eg_budget *b, size_t n) {
  b->used += n;
  if (b->used > b->peak) b->peak = b->used;
}

int eg_budget_take(eg_budget *b, size_t n) {
  if (!admits(b, n)) return 0;
  charge(b, n);
  return 1;
}

void eg_budget_give(eg_budget *b, size_t n) { b->used -= n < b->used ? n : b->used; }

/* The request is checked against the limit first; the usable size charged
** after it may pass the limit by a few bytes. */
static void *charged(void *p) {
  if (p) {
    counted();
    if (budget) charge(budget, malloc_usable_size(p));
  }
  return p;
}

void *eg_malloc(size_t n) {
  if (budget && !admits(budget, n)) return NULL;
  return charged(malloc(n ? n : 1));
}

void *eg_calloc(size_t n, size_t size) {
  if (budget && !admits(budget, size && n > SIZE_MAX / size ? SIZE_MAX : n * size)) return NULL;
  return charged(calloc(n ? n : 1, size ? size : 1));
}

void *eg_realloc(void *p, size_t n) {
  size_t old = p && budget ? malloc_usable_size(p) : 0;
  if (budget && n > old && !admits(budget, n - old)) return NULL;
  void *q = realloc(p, n ? n : 1);
  if (q && budget) eg_budget_give(budget, old);
  return charged(q);
}

void eg_free(void *p) {
  if (p && budget) eg_budget_give(budget, malloc_usable_size(p));
  free(p);
}

uint64_t eg_alloc_count(void) { return __atomic_load_n(&alloc_count, __ATOMIC_RELAXED); }

int eg_size_mul(size_t a, size_t b, size_t *out, const char *op) {
  if (a != 0 && b > SIZE_MAX / a) return eg_seterr(EG_ENOMEM, "%s: size overflows (%zu * %zu)", op, a, b);
  *out = a * b;
  return EG_OK;
}
