/*
** attn.c — causal multi-head self-attention (attn.h): per (sequence, head)
** two products forward (scores, then probabilities times values) and five
** backward, each one cblas_sgemm over strided views of the packed qkv.
*/
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3")
#endif
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "attn.h"
#include "nn_impl.h"

typedef struct {
  int64_t N, T, H, D, hd;
} attn_dims;

static int attn_check(attn_dims *d, const eg_tensor *qkv, const eg_tensor *att, int64_t T, int64_t heads) {
  int st;
  if (T < 1) return eg_seterr(EG_EINVAL, "attention: sequence length %lld must be at least 1", (long long)T);
  if (heads < 1) return eg_seterr(EG_EINVAL, "attention: heads %lld must be at least 1", (long long)heads);
  if ((st = eg_nn_need(qkv, "attention", "qkv"))) return st;
  if (qkv->ndim < 2)
    return eg_seterr(EG_ESHAPE, "attention: qkv must be [rows x 3*dim] or [N x T x 3*dim], got %d-D", qkv->ndim);
  int64_t cols = qkv->shape[qkv->ndim - 1], rows = cols ? eg_numel(qkv) / cols : 0;
  if (cols % 3 != 0 || cols == 0)
    return eg_seterr(EG_ESHAPE, "attention: qkv width %lld is not 3 * dim", (long long)cols);
  int64_t D = cols / 3;
  if (D % heads != 0)
    return eg_seterr(EG_ESHAPE, "attention: dim %lld is not divisible by %lld heads", (long long)D,
                     (long long)heads);
  if (rows % T != 0)
    return eg_seterr(EG_ESHAPE, "attention: %lld rows are not whole sequences of length %lld", (long long)rows,
                     (long long)T);
  d->N = rows / T, d->T = T, d->H = heads, d->D = D, d->hd = D / heads;
  if ((st = eg_nn_need(att, "attention", "probabilities"))) return st;
  int64_t want[4] = {d->N, heads, T, T};
  int ok = att->ndim == 4;
  for (int i = 0; ok && i < 4; i++) ok = att->shape[i] == want[i];
  if (!ok) {
    char s[96];
    return eg_seterr(EG_ESHAPE, "attention: probabilities %s, expected [%lldx%lldx%lldx%lld]",
                     eg_shape_str(att, s, sizeof s), (long long)d->N, (long long)heads, (long long)T, (long long)T);
  }
  return EG_OK;
}

/* t must have qkv's leading dimensions and a last dimension of cols. */
static int rows_by(const eg_tensor *t, const eg_tensor *qkv, int64_t cols, const char *what) {
  int ok = t->ndim == qkv->ndim && t->shape[t->ndim - 1] == cols;
  for (int i = 0; ok && i < t->ndim - 1; i++) ok = t->shape[i] == qkv->shape[i];
  if (ok) return EG_OK;
  char s[96], sq[96];
  return eg_seterr(EG_ESHAPE, "attention: %s %s does not fit qkv %s (width %lld expected)", what,
                   eg_shape_str(t, s, sizeof s), eg_shape_str(qkv, sq, sizeof sq), (long long)cols);
}

/* Row i of the scores s (T wide): softmax over j <= i in place, zero above. */
static void causal_softmax_row(float *s, int64_t i, int64_t T) {
  float m = s[0];
  for (int64_t j = 1; j <= i; j++) m = s[j] > m ? s[j] : m;
  float sum = 0;
  for (int64_t j = 0; j <= i; j++) {
    float e = expf(s[j] - m);
    s[j] = e;
    sum += e;
  }
  float inv = 1.0f / sum;
  for (int64_t j = 0; j <= i; j++) s[j] *= inv;
  if (i + 1 < T) memset(s + i + 1, 0, sizeof(float) * (size_t)(T - i - 1));
}

int eg_attn_forward(eg_tensor *y, eg_tensor *att, const eg_tensor *qkv, int64_t T, int64_t heads) {
  attn_dims d;
  int st;
  if ((st = attn_check(&d, qkv, att, T, heads)) || (st = eg_nn_need(y, "attention", "output")) ||
      (st = rows_by(y, qkv, d.D, "output")))
    return st;
  const int64_t D3 = 3 * d.D, hd = d.hd;
  const float scale = 1.0f / sqrtf((float)hd);
  const float *base = eg_data(qkv);
  float *py = eg_data(y), *pa = eg_data(att);
  for (int64_t n = 0; n < d.N; n++) {
    const float *seq = base + n * T * D3;
    for (int64_t h = 0; h < d.H; h++) {
      const float *q = seq + h * hd, *k = q + d.D, *v = q + 2 * d.D;
      float *p = pa + (n * d.H + h) * T * T;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)T, (int)hd, scale, q, (int)D3, k, (int)D3,
                  0.0f, p, (int)T);
      for (int64_t i = 0; i < T; i++) causal_softmax_row(p + i * T, i, T);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)T, (int)hd, (int)T, 1.0f, p, (int)T, v, (int)D3,
                  0.0f, py + n * T * d.D + h * hd, (int)d.D);
    }
  }
  return EG_OK;
}

int eg_attn_backward(eg_tensor *gqkv, eg_tensor *scratch, const eg_tensor *gy, const eg_tensor *qkv,
                     const eg_tensor *att, int64_t T, int64_t heads) {
  attn_dims d;
  int st;
  if ((st = attn_check(&d, qkv, att, T, heads)) || (st = eg_nn_need(gy, "attention", "output gradient")) ||
      (st = rows_by(gy, qkv, d.D, "output gradient")) || (st = eg_nn_need(gqkv, "attention", "qkv gradient")) ||
      (st = eg_nn_same(gqkv, qkv, "attention", "qkv gradient", "qkv")) ||
      (st = eg_nn_need(scratch, "attention", "scratch")))
    return st;
  if (eg_numel(scratch) < T * T)
    return eg_seterr(EG_ESHAPE, "attention: scratch has %lld floats, needs %lld", (long long)eg_numel(scratch),
                     (long long)(T * T));
  const int64_t D3 = 3 * d.D, hd = d.hd;
  const float scale = 1.0f / sqrtf((float)hd);
  const float *base = eg_data(qkv), *pg = eg_data(gy), *pa = eg_data(att);
  float *gbase = eg_data(gqkv), *dp = eg_data(scratch);
  for (int64_t n = 0; n < d.N; n++) {
    const float *seq = base + n * T * D3;
    float *gseq = gbase + n * T * D3;
    for (int64_t h = 0; h < d.H; h++) {
      const float *q = seq + h * hd, *k = q + d.D, *v = q + 2 * d.D;
      float *gq = gseq + h * hd, *gk = gq + d.D, *gv = gq + 2 * d.D;
      const float *p = pa + (n * d.H + h) * T * T, *g = pg + n * T * d.D + h * hd;
      /* dV = P^T dY, dP = dY V^T */
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)T, (int)hd, (int)T, 1.0f, p, (int)T, g, (int)d.D,
                  0.0f, gv, (int)D3);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)T, (int)hd, 1.0f, g, (int)d.D, v, (int)D3,
                  0.0f, dp, (int)T);
      /* dS = P (dP - sum_j P dP) row by row, times the scale (zero above the diagonal, where P is) */
      for (int64_t i = 0; i < T; i++) {
        const float *pr = p + i * T;
        float *r = dp + i * T;
        float s = 0;
        for (int64_t j = 0; j <= i; j++) s += pr[j] * r[j];
        for (int64_t j = 0; j <= i; j++) r[j] = scale * pr[j] * (r[j] - s);
        if (i + 1 < T) memset(r + i + 1, 0, sizeof(float) * (size_t)(T - i - 1));
      }
      /* dQ = dS K, dK = dS^T Q */
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)T, (int)hd, (int)T, 1.0f, dp, (int)T, k, (int)D3,
                  0.0f, gq, (int)D3);
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)T, (int)hd, (int)T, 1.0f, dp, (int)T, q, (int)D3,
                  0.0f, gk, (int)D3);
    }
  }
  return EG_OK;
}
