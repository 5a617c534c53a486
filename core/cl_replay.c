/*
** cl_replay.c — gradient projection for replay (A-GEM, Chaudhry et al.
** 2019): one pass of dot products over every group, one axpy per group when
** the gradient conflicts with the reference gradient of a memory batch.
*/
#include "cl.h"
#include "cl_impl.h"

#include <math.h>
#include <stdio.h>

int eg_agem_project(eg_tensor *const *g, const eg_tensor *const *ref, int ngroups, double *dot_out,
                    int *projected) {
  static const char op[] = "agem_project";
  if (projected) *projected = 0;
  if (dot_out) *dot_out = 0;
  if (ngroups < 1 || !g || !ref) return eg_seterr(EG_EINVAL, "%s: no parameter group given", op);
  double gr = 0, rr = 0;
  for (int k = 0; k < ngroups; k++) {
    int st = eg_cl_check_vec(g[k], -1, op, "gradient");
    if (st || (st = eg_cl_check_vec(ref[k], eg_numel(g[k]), op, "reference gradient")))
    {
      char msg[256];
      snprintf(msg, sizeof msg, "%s", eg_errmsg());
      return eg_seterr(st, "%s (group %d)", msg, k + 1);
    }
    const float *a = eg_data(g[k]), *r = eg_data(ref[k]);
    int64_t n = eg_numel(g[k]);
    /* sums in double, flushed from float lanes every 4096 elements so the
    ** inner loop vectorises */
    for (int64_t i0 = 0; i0 < n; i0 += 4096) {
      int64_t i1 = i0 + 4096 < n ? i0 + 4096 : n;
      float sgr = 0, srr = 0;
      for (int64_t i = i0; i < i1; i++) {
        sgr += a[i] * r[i];
        srr += r[i] * r[i];
      }
      gr += sgr;
      rr += srr;
    }
  }
  if (!isfinite(gr) || !isfinite(rr))
    return eg_seterr(EG_EINVAL, "%s: the gradients are not finite (g.g_ref = %g, g_ref.g_ref = %g)", op, gr, rr);
  if (dot_out) *dot_out = gr;
  if (gr >= 0 || rr <= 0) return EG_OK;
  float c = (float)(gr / rr);
  for (int k = 0; k < ngroups; k++) {
    float *restrict a = eg_data(g[k]);
    const float *restrict r = eg_data(ref[k]);
    int64_t n = eg_numel(g[k]);
    for (int64_t i = 0; i < n; i++) a[i] -= c * r[i];
  }
  if (projected) *projected = 1;
  return EG_OK;
}
