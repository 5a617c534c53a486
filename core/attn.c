/*
** attn.c — causal multi-head self-attention (attn.h): per (sequence, head)
** two products forward (scores, then probabilities times values) and four
** backward, each one cblas_sgemm over strided views of the packed qkv.
**
** Threads. The products are small (T x T x hd: 128 x 128 x 32 in the
** default GPT), where OpenBLAS's own threads cost more than they bring
** (measured, 2 cores: 10.3 ms per forward + backward with 2 BLAS threads,
** 5.9 ms with 1). So with eg_get_threads() = k > 1 the (sequence, head)
** pairs are split in k contiguous ranges, run on k threads (this one and
** k - 1 started for the call) with OpenBLAS held at one thread meanwhile.
** Each pair writes its own outputs, so the result does not depend on k.
*/
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3", "no-trapping-math")
#endif
#include <cblas.h>
#include <pthread.h>
#include <math.h>
#include <string.h>

#include "attn.h"
#include "fastmath_impl.h"
#include "rng.h"
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

/* Reductions over a row with 8 independent partial results (a vector
** register's worth), so that they vectorise instead of waiting on one
** long chain of additions; the order of the sum is fixed. */
static inline float row_max(const float *a, int64_t n) {
  float acc[8], m;
  int64_t j = 0;
  for (int k = 0; k < 8; k++) acc[k] = a[0];
  for (; j + 8 <= n; j += 8)
    for (int k = 0; k < 8; k++) acc[k] = a[j + k] > acc[k] ? a[j + k] : acc[k];
  m = acc[0];
  for (int k = 1; k < 8; k++) m = acc[k] > m ? acc[k] : m;
  for (; j < n; j++) m = a[j] > m ? a[j] : m;
  return m;
}

static inline float row_dot(const float *a, const float *b, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0}, s = 0;
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int k = 0; k < 8; k++) acc[k] += a[j + k] * b[j + k];
  for (int k = 0; k < 8; k++) s += acc[k];
  for (; j < n; j++) s += a[j] * b[j];
  return s;
}

/* exp(s[j] - m) in place; returns their sum. */
static inline float row_exp_sum(float *a, float m, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0}, s = 0;
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int k = 0; k < 8; k++) acc[k] += (a[j + k] = eg_expf_(a[j + k] - m));
  for (int k = 0; k < 8; k++) s += acc[k];
  for (; j < n; j++) s += (a[j] = eg_expf_(a[j] - m));
  return s;
}

/* The scores p [T x T] of one head: row i becomes the softmax over j <= i
** in place, zero above the diagonal. */
static EG_CLONES void causal_softmax(float *p, int64_t T) {
  for (int64_t i = 0; i < T; i++) {
    float *s = p + i * T;
    float m = row_max(s, i + 1);
    float inv = 1.0f / row_exp_sum(s, m, i + 1);
    for (int64_t j = 0; j <= i; j++) s[j] *= inv;
    if (i + 1 < T) memset(s + i + 1, 0, sizeof(float) * (size_t)(T - i - 1));
  }
}

/* dP [T x T] of one head becomes dS = scale * P (dP - rowsum(P dP)), zero above the diagonal (where P is). */
static EG_CLONES void causal_softmax_backward(float *dp, const float *p, int64_t T, float scale) {
  for (int64_t i = 0; i < T; i++) {
    const float *pr = p + i * T;
    float *r = dp + i * T;
    float s = row_dot(pr, r, i + 1);
    for (int64_t c = 0; c <= i; c++) r[c] = scale * pr[c] * (r[c] - s);
    if (i + 1 < T) memset(r + i + 1, 0, sizeof(float) * (size_t)(T - i - 1));
  }
}

typedef struct {
  attn_dims d;
  const float *qkv, *gy, *att;
  float *y, *probs, *gqkv, *scratch; /* scratch: T*T floats per worker */
  int64_t lo, hi;                    /* the (sequence, head) pairs n*H + h in [lo, hi) */
} attn_job;

static void forward_pairs(const attn_job *j) {
  const attn_dims d = j->d;
  const int64_t T = d.T, D3 = 3 * d.D, hd = d.hd;
  const float scale = 1.0f / sqrtf((float)hd);
  for (int64_t nh = j->lo; nh < j->hi; nh++) {
    int64_t n = nh / d.H, h = nh % d.H;
    const float *q = j->qkv + n * T * D3 + h * hd, *k = q + d.D, *v = q + 2 * d.D;
    float *p = j->probs + nh * T * T;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)T, (int)hd, scale, q, (int)D3, k, (int)D3,
                0.0f, p, (int)T);
    causal_softmax(p, T);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)T, (int)hd, (int)T, 1.0f, p, (int)T, v, (int)D3,
                0.0f, j->y + n * T * d.D + h * hd, (int)d.D);
  }
}

static void backward_pairs(const attn_job *j) {
  const attn_dims d = j->d;
  const int64_t T = d.T, D3 = 3 * d.D, hd = d.hd;
  const float scale = 1.0f / sqrtf((float)hd);
  float *dp = j->scratch;
  for (int64_t nh = j->lo; nh < j->hi; nh++) {
    int64_t n = nh / d.H, h = nh % d.H;
    const float *q = j->qkv + n * T * D3 + h * hd, *k = q + d.D, *v = q + 2 * d.D;
    float *gq = j->gqkv + n * T * D3 + h * hd, *gk = gq + d.D, *gv = gq + 2 * d.D;
    const float *p = j->att + nh * T * T, *g = j->gy + n * T * d.D + h * hd;
    /* dV = P^T dY, dP = dY V^T */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)T, (int)hd, (int)T, 1.0f, p, (int)T, g, (int)d.D, 0.0f,
                gv, (int)D3);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)T, (int)hd, 1.0f, g, (int)d.D, v, (int)D3, 0.0f,
                dp, (int)T);
    causal_softmax_backward(dp, p, T, scale);
    /* dQ = dS K, dK = dS^T Q */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)T, (int)hd, (int)T, 1.0f, dp, (int)T, k, (int)D3, 0.0f,
                gq, (int)D3);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)T, (int)hd, (int)T, 1.0f, dp, (int)T, q, (int)D3, 0.0f,
                gk, (int)D3);
  }
}

#define ATTN_MAX_WORKERS 8

static void *forward_main(void *arg) {
  forward_pairs(arg);
  return NULL;
}
static void *backward_main(void *arg) {
  backward_pairs(arg);
  return NULL;
}

/* Runs fn over the pairs of job split in `workers` ranges (see Threads). */
static void run_split(attn_job *job, int workers, void *(*fn)(void *)) {
  int64_t pairs = job->d.N * job->d.H;
  if (workers > pairs) workers = (int)pairs;
  if (workers <= 1) {
    fn(job);
    return;
  }
  attn_job jobs[ATTN_MAX_WORKERS];
  pthread_t th[ATTN_MAX_WORKERS];
  int started[ATTN_MAX_WORKERS] = {0};
  int blas = eg_get_threads();
  openblas_set_num_threads(1);
  for (int w = 0; w < workers; w++) {
    jobs[w] = *job;
    jobs[w].lo = pairs * w / workers, jobs[w].hi = pairs * (w + 1) / workers;
    if (job->scratch) jobs[w].scratch = job->scratch + w * job->d.T * job->d.T;
  }
  for (int w = 1; w < workers; w++) started[w] = pthread_create(&th[w], NULL, fn, &jobs[w]) == 0;
  fn(&jobs[0]);
  for (int w = 1; w < workers; w++) {
    if (started[w]) pthread_join(th[w], NULL);
    else fn(&jobs[w]); /* no thread: this one does that range too */
  }
  openblas_set_num_threads(blas);
}

static int workers_for(void) {
  int k = eg_get_threads();
  return k < 1 ? 1 : (k > ATTN_MAX_WORKERS ? ATTN_MAX_WORKERS : k);
}

int eg_attn_forward(eg_tensor *y, eg_tensor *att, const eg_tensor *qkv, int64_t T, int64_t heads) {
  attn_job job = {0};
  int st;
  if ((st = attn_check(&job.d, qkv, att, T, heads)) || (st = eg_nn_need(y, "attention", "output")) ||
      (st = rows_by(y, qkv, job.d.D, "output")))
    return st;
  job.qkv = eg_data(qkv), job.y = eg_data(y), job.probs = eg_data(att);
  job.lo = 0, job.hi = job.d.N * job.d.H;
  run_split(&job, workers_for(), forward_main);
  return EG_OK;
}

int eg_attn_backward(eg_tensor *gqkv, eg_tensor *scratch, const eg_tensor *gy, const eg_tensor *qkv,
                     const eg_tensor *att, int64_t T, int64_t heads) {
  attn_job job = {0};
  int st;
  if ((st = attn_check(&job.d, qkv, att, T, heads)) || (st = eg_nn_need(gy, "attention", "output gradient")) ||
      (st = rows_by(gy, qkv, job.d.D, "output gradient")) ||
      (st = eg_nn_need(gqkv, "attention", "qkv gradient")) ||
      (st = eg_nn_same(gqkv, qkv, "attention", "qkv gradient", "qkv")) ||
      (st = eg_nn_need(scratch, "attention", "scratch")))
    return st;
  if (eg_numel(scratch) < T * T)
    return eg_seterr(EG_ESHAPE, "attention: scratch has %lld floats, needs %lld", (long long)eg_numel(scratch),
                     (long long)(T * T));
  job.qkv = eg_data(qkv), job.gy = eg_data(gy), job.att = eg_data(att), job.gqkv = eg_data(gqkv);
  job.scratch = eg_data(scratch);
  job.lo = 0, job.hi = job.d.N * job.d.H;
  int workers = workers_for();
  int64_t fit = eg_numel(scratch) / (T * T); /* one T x T scratch per worker */
  run_split(&job, fit < workers ? (int)fit : workers, backward_main);
  return EG_OK;
}

int eg_attn_entropy(eg_tensor *ent, const eg_tensor *att) {
  int st;
  if ((st = eg_nn_need(att, "attention entropy", "probabilities")) ||
      (st = eg_nn_need(ent, "attention entropy", "output")))
    return st;
  char s[96], se[96];
  if (att->ndim != 4 || att->shape[2] != att->shape[3])
    return eg_seterr(EG_ESHAPE, "attention entropy: probabilities must be [N x heads x T x T], got %s",
                     eg_shape_str(att, s, sizeof s));
  int64_t N = att->shape[0], H = att->shape[1], T = att->shape[2];
  if (ent->ndim != 2 || ent->shape[0] != H || ent->shape[1] != T)
    return eg_seterr(EG_ESHAPE, "attention entropy: output %s does not fit probabilities %s (expected [%lldx%lld])",
                     eg_shape_str(ent, se, sizeof se), eg_shape_str(att, s, sizeof s), (long long)H, (long long)T);
  const float *p = eg_data(att);
  float *out = eg_data(ent);
  for (int64_t h = 0; h < H; h++) {
    for (int64_t i = 0; i < T; i++) {
      double sum = 0;
      for (int64_t n = 0; n < N; n++) {
        const float *row = p + ((n * H + h) * T + i) * T;
        for (int64_t j = 0; j <= i; j++) {
          double q = row[j];
          if (q > 0) sum -= q * log(q);
        }
      }
      out[h * T + i] = (float)sum;
    }
  }
  return EG_OK;
}
