/*
** tensor_linalg.c — matrix products (through cblas_sgemm) and dot products.
*/
#include "tensor_impl.h"

#include <cblas.h>
#include <string.h>

/* ------------------------------------------------------------ linear algebra */

/* BLAS takes a 2-D operand as row-major with unit column stride (or as its
** transpose with unit row stride). *trans is flipped for the latter. */
static int blas_layout(const eg_tensor *t, int *trans, int64_t *ld) {
  if (t->stride[1] == 1 && t->stride[0] >= (t->shape[1] > 1 ? t->shape[1] : 1)) {
    *ld = t->stride[0] > 0 ? t->stride[0] : 1;
    return 1;
  }
  if (t->stride[0] == 1 && t->stride[1] >= (t->shape[0] > 1 ? t->shape[0] : 1)) {
    *trans = !*trans;
    *ld = t->stride[1] > 0 ? t->stride[1] : 1;
    return 1;
  }
  return 0;
}

int eg_mm(eg_tensor *out, const eg_tensor *a, const eg_tensor *b, int ta, int tb, float alpha, float beta) {
  int st = need_out(out, "mm");
  if (!st) st = need(a, "mm");
  if (!st) st = need(b, "mm");
  if (st) return st;
  char b1[96], b2[96], b3[96];
  if (a->ndim != 2 || b->ndim != 2 || out->ndim != 2)
    return eg_seterr(EG_ESHAPE, "mm: expected 2-D tensors, got %s * %s -> %s", eg_shape_str(a, b1, sizeof b1),
                     eg_shape_str(b, b2, sizeof b2), eg_shape_str(out, b3, sizeof b3));
  int64_t m = ta ? a->shape[1] : a->shape[0], k = ta ? a->shape[0] : a->shape[1];
  int64_t k2 = tb ? b->shape[1] : b->shape[0], n = tb ? b->shape[0] : b->shape[1];
  if (k != k2)
    return eg_seterr(EG_ESHAPE, "mm: inner sizes differ (%s%s * %s%s)", eg_shape_str(a, b1, sizeof b1), ta ? "'" : "",
                     eg_shape_str(b, b2, sizeof b2), tb ? "'" : "");
  if (out->shape[0] != m || out->shape[1] != n)
    return eg_seterr(EG_ESHAPE, "mm: output %s does not match the product's [%lldx%lld]",
                     eg_shape_str(out, b1, sizeof b1), (long long)m, (long long)n);
  if (m > INT32_MAX || n > INT32_MAX || k > INT32_MAX)
    return eg_seterr(EG_EINVAL, "mm: sizes too large for BLAS");
  if (m == 0 || n == 0) return EG_OK;
  if (k == 0) return beta == 1.0f ? EG_OK : (beta == 0.0f ? eg_fill(out, 0.0f) : eg_binary_scalar(out, out, beta, EG_MUL, 0));

  eg_tensor ca = EG_TENSOR_INIT, cb = EG_TENSOR_INIT, co = EG_TENSOR_INIT;
  const eg_tensor *pa = a, *pb = b;
  eg_tensor *po = out;
  int tra = ta, trb = tb;
  int64_t lda, ldb, ldo;
  /* An output that aliases an input, or that BLAS cannot write directly, goes through scratch. */
  int out_ok = out->stride[1] == 1 && out->stride[0] >= n && !overlaps(out, a) && !overlaps(out, b);
  if (!out_ok) {
    if ((st = eg_tensor_new(&co, 2, out->shape))) return st;
    if (beta != 0.0f && (st = eg_copy(&co, out))) goto done;
    po = &co;
  }
  ldo = po->stride[0] > 0 ? po->stride[0] : 1;
  if (!blas_layout(pa, &tra, &lda)) {
    if ((st = eg_clone(&ca, a))) goto done;
    pa = &ca;
    tra = ta;
    blas_layout(pa, &tra, &lda);
  }
  if (!blas_layout(pb, &trb, &ldb)) {
    if ((st = eg_clone(&cb, b))) goto done;
    pb = &cb;
    trb = tb;
    blas_layout(pb, &trb, &ldb);
  }
  /* blas_layout reports the row-major leading dimension of the stored matrix; when
  ** it flipped the transpose flag, the stored matrix is the transpose. */
  cblas_sgemm(CblasRowMajor, tra ? CblasTrans : CblasNoTrans, trb ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)k,
              alpha, eg_data(pa), (int)lda, eg_data(pb), (int)ldb, beta, eg_data(po), (int)ldo);
  if (po != out) st = eg_copy(out, po);
done:
  eg_tensor_release(&ca);
  eg_tensor_release(&cb);
  eg_tensor_release(&co);
  return st;
}

int eg_dot(double *out, const eg_tensor *a, const eg_tensor *b) {
  int st = need(a, "dot");
  if (!st) st = need(b, "dot");
  if (st) return st;
  int64_t n = eg_numel(a);
  if (n != eg_numel(b)) {
    char b1[96], b2[96];
    return eg_seterr(EG_ESHAPE, "dot: %s and %s have different numbers of elements", eg_shape_str(a, b1, sizeof b1),
                     eg_shape_str(b, b2, sizeof b2));
  }
  double s = 0;
  if (eg_is_contiguous(a) && eg_is_contiguous(b)) {
    const float *x = eg_data(a), *y = eg_data(b);
    for (int64_t i = 0; i < n; i++) s += (double)x[i] * y[i];
  } else {
    eg_tensor ca = EG_TENSOR_INIT, cb = EG_TENSOR_INIT;
    if (!(st = eg_clone(&ca, a)) && !(st = eg_clone(&cb, b))) {
      const float *x = eg_data(&ca), *y = eg_data(&cb);
      for (int64_t i = 0; i < n; i++) s += (double)x[i] * y[i];
    }
    eg_tensor_release(&ca);
    eg_tensor_release(&cb);
    if (st) return st;
  }
  *out = s;
  return EG_OK;
}
