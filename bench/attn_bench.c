/*
** attn_bench.c — causal self-attention (core/attn.h) forward + backward
** beside its matrix products alone: the same seven cblas_sgemm calls per
** (sequence, head), on the same strided operands, into the same buffers,
** with nothing between them (no softmax, no mask). Target (issue 17): the
** whole kernel within 2x of the products.
**
**   build/bench/attn_bench [N T heads dim]...   (default: 16 128 4 128 and 16 128 4 512)
**
** Prints, per size, the best of 50 runs of each, interleaved (after 2 to warm up):
**   attn N=16 T=128 H=4 D=128 threads=2 kernel_ms=... products_ms=... ratio=...
*/
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "attn.h"
#include "rng.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* The products of eg_attn_forward and eg_attn_backward, and nothing else. */
static void products(float *q0, float *gq0, float *p0, float *dp, float *y0, const float *gy0, int64_t N, int64_t T,
                     int64_t H, int64_t D) {
  int64_t hd = D / H, D3 = 3 * D;
  for (int64_t n = 0; n < N; n++)
    for (int64_t h = 0; h < H; h++) {
      const float *q = q0 + n * T * D3 + h * hd, *k = q + D, *v = q + 2 * D;
      float *gq = gq0 + n * T * D3 + h * hd, *gk = gq + D, *gv = gq + 2 * D;
      float *p = p0 + (n * H + h) * T * T;
      const float *g = gy0 + n * T * D + h * hd;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hd, 0.1f, q, D3, k, D3, 0.0f, p, T);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, T, 1.0f, p, T, v, D3, 0.0f, y0 + n * T * D + h * hd,
                  D);
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hd, T, 1.0f, p, T, g, D, 0.0f, gv, D3);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hd, 1.0f, g, D, v, D3, 0.0f, dp, T);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, T, 1.0f, dp, T, k, D3, 0.0f, gq, D3);
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hd, T, 1.0f, dp, T, q, D3, 0.0f, gk, D3);
    }
}

static int bench(int64_t N, int64_t T, int64_t H, int64_t D) {
  eg_tensor qkv = EG_TENSOR_INIT, y = EG_TENSOR_INIT, att = EG_TENSOR_INIT, gy = EG_TENSOR_INIT,
            gqkv = EG_TENSOR_INIT, scratch = EG_TENSOR_INIT;
  int64_t sq[2] = {N * T, 3 * D}, sy[2] = {N * T, D}, sa[4] = {N, H, T, T}, ss[1] = {T * T * 8};
  if (eg_tensor_new(&qkv, 2, sq) || eg_tensor_new(&y, 2, sy) || eg_tensor_new(&att, 4, sa) ||
      eg_tensor_new(&gy, 2, sy) || eg_tensor_new(&gqkv, 2, sq) || eg_tensor_new(&scratch, 1, ss)) {
    fprintf(stderr, "attn_bench: %s\n", eg_errmsg());
    return 1;
  }
  eg_rng r;
  eg_rng_seed(&r, 1);
  eg_fill_uniform(&qkv, &r, -1, 1);
  eg_fill_uniform(&gy, &r, -1, 1);
  double bk = 1e9, bp = 1e9;
  for (int i = 0; i < 52; i++) {
    double t0 = now();
    if (eg_attn_forward(&y, &att, &qkv, T, H) || eg_attn_backward(&gqkv, &scratch, &gy, &qkv, &att, T, H)) {
      fprintf(stderr, "attn_bench: %s\n", eg_errmsg());
      return 1;
    }
    double t1 = now();
    products(eg_data(&qkv), eg_data(&gqkv), eg_data(&att), eg_data(&scratch), eg_data(&y), eg_data(&gy), N, T, H, D);
    double t2 = now();
    if (i >= 2) { /* warm-up */
      bk = t1 - t0 < bk ? t1 - t0 : bk;
      bp = t2 - t1 < bp ? t2 - t1 : bp;
    }
  }
  printf("attn N=%lld T=%lld H=%lld D=%lld threads=%d kernel_ms=%.2f products_ms=%.2f ratio=%.2f\n", (long long)N,
         (long long)T, (long long)H, (long long)D, eg_get_threads(), bk * 1e3, bp * 1e3, bk / bp);
  eg_tensor *all[] = {&qkv, &y, &att, &gy, &gqkv, &scratch};
  for (int i = 0; i < 6; i++) eg_tensor_release(all[i]);
  return 0;
}

int main(int argc, char **argv) {
  if (argc > 1 && (argc - 1) % 4 == 0) {
    for (int i = 1; i < argc; i += 4)
      if (bench(atoll(argv[i]), atoll(argv[i + 1]), atoll(argv[i + 2]), atoll(argv[i + 3]))) return 1;
    return 0;
  }
  printf("core %s\n", openblas_get_corename());
  return bench(16, 128, 4, 128) || bench(16, 128, 4, 512);
}
