/*
** gradcheck.h — the C suites' finite-difference gradient check, shared by
** every test of a layer, loss or penalty (test_nn.c, test_loss.c,
** test_cl.c). Include after check.h.
**
** The reference. gc_numeric fills num[i] = dL/dv_i by central differences,
** (L(v_i + h) - L(v_i - h)) / (v_i+ - v_i-), where L comes back in double
** and the divisor is the step actually taken in float32 (so the rounding of
** v_i +- h to float32 costs nothing). The step is h = GC_STEP * max(1, |v_i|):
**   - truncation error of a central difference is h^2 |L'''| / 6: about
**     2e-5 relative for h = 1e-2 on the smooth layers here (tanh, GELU,
**     softmax, LayerNorm over inputs of size ~1), exactly 0 on linear ones;
**   - rounding error is about u |L| / h, u = 6e-8 the float32 unit
**     roundoff of the forward pass (only outputs that v_i reaches change,
**     the rest cancel exactly in double): about 1e-5 for h = 1e-2;
**   - h = 1e-2 balances the two (the optimum of h^2/6 + u/h is near
**     (3u)^(1/3) = 6e-3); scaling it with |v_i| keeps the float32 spacing of
**     v_i, u|v_i|, small against h for large values too.
** Inputs are placed away from kinks by the tests (ReLU/LeakyReLU inputs
** with |x| >= 0.1 > h, MaxPool values distinct by more than the step).
**
** The measure. gc_compare compares num with the analytic gradient ana:
**   tensor:  ||num - ana||_2 / max(||num||_2, ||ana||_2) <= GC_RTOL
**   element: |num_i - ana_i| <= GC_RTOL_E |num_i| + GC_ATOL_E * s
** with s = max_i max(|num_i|, |ana_i|), the tensor's scale: the absolute
** floor is relative to the tensor, so entries of 1e-3 in a tensor of
** entries 1e-3 are held to about 0.2%, not passed by a fixed absolute slack.
** GC_RTOL = GC_RTOL_E = 2e-3 and GC_ATOL_E = 5e-4 sit well above the worst
** relative error seen on any unmutated check (below 1e-4 in the C suites,
** 2.5e-4 on the Lua suite's seven-layer model; GRADCHECK_VERBOSE=1 prints
** every check's) and well below the mutations:
**   - ana * 1.01 moves the tensor measure to 0.01/1.01 = 9.9e-3 > 2e-3, and
**     the largest element by 1e-2 s > (2e-3 + 5e-4) s;
**   - ana_i +- 0.01 s (one element moved by 1% of the tensor's scale, any
**     i) breaks the element test, since 2e-3 |num_i| + 5e-4 s <= 2.5e-3 s.
** gc_expect runs the check and both mutations (for every element in turn)
** and records a failure when the check fails or when a mutation passes: so
** each check is shown to be able to fail. Diagnostics are printed only for
** a result that was not expected.
*/
#ifndef EG_GRADCHECK_H
#define EG_GRADCHECK_H
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "tensor.h"

#ifndef GC_STEP /* overridable for experiments: -DGC_STEP=3e-3 */
#define GC_STEP 1e-2
#endif
#define GC_RTOL 2e-3
#define GC_RTOL_E 2e-3
#define GC_ATOL_E 5e-4
#define GC_MUTATE_SCALE 1.01
#define GC_MUTATE_ELEM 1e-2

/* The loss at the current values of every tensor, summed in double. */
typedef double (*gc_loss_fn)(void *ctx);

typedef struct {
  int ok;        /* both the tensor and every element within tolerance */
  double rel;    /* ||num - ana|| / max(||num||, ||ana||) (0 when both are 0) */
  double elem;   /* worst |num_i - ana_i| / (GC_RTOL_E |num_i| + GC_ATOL_E s); > 1 fails */
  int64_t worst; /* the element where elem was found */
} gc_verdict;

/* num[0..numel(v)) = dL/dv by central differences; v is restored after. */
static void gc_numeric(double *num, eg_tensor *v, gc_loss_fn loss, void *ctx) {
  float *p = eg_data(v);
  for (int64_t i = 0; i < eg_numel(v); i++) {
    float old = p[i];
    double h = GC_STEP * fmax(1.0, fabs((double)old));
    p[i] = (float)(old + h);
    double up = p[i], lp = loss(ctx);
    p[i] = (float)(old - h);
    double dn = p[i], lm = loss(ctx);
    p[i] = old;
    num[i] = (lp - lm) / (up - dn);
  }
}

/* The verdict on an analytic gradient ana[0..n) against num[0..n). */
static gc_verdict gc_compare(const double *num, const double *ana, int64_t n) {
  gc_verdict v = {1, 0, 0, 0};
  double dd = 0, nn = 0, aa = 0, s = 0;
  for (int64_t i = 0; i < n; i++) {
    double d = num[i] - ana[i];
    dd += d * d, nn += num[i] * num[i], aa += ana[i] * ana[i];
    s = fmax(s, fmax(fabs(num[i]), fabs(ana[i])));
  }
  double den = sqrt(fmax(nn, aa));
  v.rel = den > 0 ? sqrt(dd) / den : 0;
  if (!(v.rel <= GC_RTOL)) v.ok = 0;
  for (int64_t i = 0; i < n; i++) {
    double allow = GC_RTOL_E * fabs(num[i]) + GC_ATOL_E * s;
    double d = fabs(num[i] - ana[i]);
    double e = allow > 0 ? d / allow : (d > 0 ? INFINITY : 0);
    if (!(e <= v.elem)) v.elem = e, v.worst = i; /* NaN lands here too */
  }
  if (!(v.elem <= 1)) v.ok = 0;
  return v;
}

static int gc_verbose_(void) {
  static int v = -1;
  if (v < 0) {
    const char *e = getenv("GRADCHECK_VERBOSE");
    v = e && *e && *e != '0';
  }
  return v;
}

/* Runs the check of ana (float, n elements) against num, then the two
** mutations; returns 1 when the check passed and every mutation failed.
** Prints only what went unexpectedly (or everything under GRADCHECK_VERBOSE). */
static int gc_expect(const char *what, const double *num, const float *ana_f, int64_t n) {
  if (n <= 0) { /* a check of nothing is no check */
    fprintf(stderr, "  gradcheck %s: no elements\n", what);
    return 0;
  }
  double *ana = calloc((size_t)n, sizeof(double));
  if (!ana) return 0;
  double s = 0;
  for (int64_t i = 0; i < n; i++) ana[i] = ana_f[i], s = fmax(s, fabs(ana[i]));
  int good = 1;
  gc_verdict v = gc_compare(num, ana, n);
  if (!v.ok || gc_verbose_())
    fprintf(stderr, "  gradcheck %s: %s, rel %.2e, worst element [%lld] %.2f of its tolerance (analytic %.8g, "
                    "numeric %.8g)\n",
            what, v.ok ? "ok" : "FAILED", v.rel, (long long)v.worst, v.elem, ana[v.worst], num[v.worst]);
  if (!v.ok) good = 0;
  if (s == 0) { /* an all-zero gradient cannot be scaled; the elements below still move */
    if (gc_verbose_()) fprintf(stderr, "  gradcheck %s: all zero\n", what);
  } else {
    for (int64_t i = 0; i < n; i++) ana[i] *= GC_MUTATE_SCALE;
    gc_verdict m = gc_compare(num, ana, n);
    if (m.ok) fprintf(stderr, "  gradcheck %s: the gradient scaled by %g passed (rel %.2e)\n", what, GC_MUTATE_SCALE,
                      m.rel), good = 0;
    for (int64_t i = 0; i < n; i++) ana[i] = ana_f[i];
  }
  /* one element moved by 1% of the tensor's scale (at least of 1 when all zero) */
  double step = GC_MUTATE_ELEM * (s > 0 ? s : 1);
  int64_t passed = 0, first = -1;
  for (int64_t i = 0; i < n; i++) {
    for (int sign = -1; sign <= 1; sign += 2) {
      ana[i] = ana_f[i] + sign * step;
      if (gc_compare(num, ana, n).ok) {
        if (first < 0) first = i;
        passed++;
      }
    }
    ana[i] = ana_f[i];
  }
  if (passed) {
    fprintf(stderr, "  gradcheck %s: %lld one-element mutations passed (first at [%lld])\n", what, (long long)passed,
            (long long)first);
    good = 0;
  }
  free(ana);
  return good;
}

/* gc_numeric and gc_expect in one: checks the analytic gradient ana of the
** loss with respect to v. */
static int gc_tensor(const char *what, eg_tensor *v, const eg_tensor *ana, gc_loss_fn loss, void *ctx) {
  int64_t n = eg_numel(v);
  if (eg_numel(ana) != n) {
    fprintf(stderr, "  gradcheck %s: %lld analytic elements for %lld values\n", what, (long long)eg_numel(ana),
            (long long)n);
    return 0;
  }
  double *num = malloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
  if (!num) return 0;
  gc_numeric(num, v, loss, ctx);
  int ok = gc_expect(what, num, eg_data(ana), n);
  free(num);
  return ok;
}

#endif
