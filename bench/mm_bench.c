/*
** mm_bench.c — the baseline for engram's matrix product: cblas_sgemm called
** directly from C on square float32 matrices. bench/run.sh prints it beside
** the same product called from Lua (bench/lua_bench.lua).
**
**   build/bench/mm_bench [size ...]       (default 256 512 1024 2048)
**
** Prints "core <name> threads <n>" then one line per size:
** "mm <n> <best seconds> <GFLOP/s>". Best of several repetitions after a
** warm-up, timed with CLOCK_MONOTONIC (wall time: BLAS runs threads).
*/
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "rng.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Enough repetitions for about a second of work, at least 5. */
static int reps_for(int n) {
  double flops = 2.0 * n * n * (double)n;
  int r = (int)(1.0 * 50e9 / flops);
  return r < 5 ? 5 : (r > 400 ? 400 : r);
}

static int bench(int n) {
  size_t nn = (size_t)n * (size_t)n;
  float *a = malloc(nn * sizeof *a), *b = malloc(nn * sizeof *b), *c = malloc(nn * sizeof *c);
  if (!a || !b || !c) {
    fprintf(stderr, "mm_bench: out of memory for n=%d\n", n);
    free(a), free(b), free(c);
    return 1;
  }
  eg_rng r;
  eg_rng_seed(&r, 1);
  for (size_t i = 0; i < nn; i++) {
    a[i] = (float)eg_rng_normal(&r);
    b[i] = (float)eg_rng_normal(&r);
    c[i] = 0;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n); /* warm-up */
  double best = 1e30;
  for (int k = reps_for(n); k > 0; k--) {
    double t0 = now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    double dt = now() - t0;
    if (dt < best) best = dt;
  }
  printf("mm %d %.6f %.2f\n", n, best, 2.0 * n * n * (double)n / best / 1e9);
  fflush(stdout);
  free(a), free(b), free(c);
  return 0;
}

int main(int argc, char **argv) {
  static const int sizes[] = {256, 512, 1024, 2048};
  printf("core %s threads %d\n", openblas_get_corename(), openblas_get_num_threads());
  int rc = 0;
  if (argc > 1) {
    for (int i = 1; i < argc; i++) rc |= bench(atoi(argv[i]));
  } else {
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) rc |= bench(sizes[i]);
  }
  return rc;
}
