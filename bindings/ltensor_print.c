/*
** ltensor_print.c — tostring(t): tensors print like Torch's, summarised when
** large (the first and last rows and columns), with a footer giving the type
** and size.
*/
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ltensor.h"

/* ---------------------------------------------------------------- printing */

#define EDGE 3             /* rows/columns kept at each end when summarising */
#define SUMMARY_NUMEL 1000 /* tensors with more elements are summarised */
#define LINE_WIDTH 80

typedef struct {
  const eg_tensor *t;
  int summarise;
  char fmt[8];
  int width;
} printer;

/* Number of positions shown along dimension d (one of them "..." when summarised). */
static int64_t shown(const printer *p, int d) {
  int64_t n = p->t->shape[d];
  return p->summarise && n > 2 * EDGE ? 2 * EDGE + 1 : n;
}
/* The index at shown position k, or -1 for the "..." position. */
static int64_t index_at(const printer *p, int d, int64_t k) {
  int64_t n = p->t->shape[d];
  if (!(p->summarise && n > 2 * EDGE)) return k;
  return k < EDGE ? k : k == EDGE ? -1 : n - (2 * EDGE + 1 - k);
}

static int fmt_value(char *buf, size_t n, const char *fmt, float v) {
  if (isnan(v)) return snprintf(buf, n, "nan");
  if (isinf(v)) return snprintf(buf, n, v > 0 ? "inf" : "-inf");
  return snprintf(buf, n, fmt, (double)v);
}

typedef struct {
  int integral, any_finite;
  double maxabs, minabs;
  int width;
  const char *fmt;
} scan_state;

static void scan(const printer *p, int d, const float *base, scan_state *s) {
  const eg_tensor *t = p->t;
  if (d == t->ndim) {
    float v = *base;
    if (s->fmt) {
      char b[64];
      int w = fmt_value(b, sizeof b, s->fmt, v);
      if (w > s->width) s->width = w;
      return;
    }
    if (!isfinite(v)) return;
    double a = fabs(v);
    s->any_finite = 1;
    if (v != floorf(v)) s->integral = 0;
    if (a > s->maxabs) s->maxabs = a;
    if (a > 0 && a < s->minabs) s->minabs = a;
    return;
  }
  int64_t n = shown(p, d);
  for (int64_t k = 0; k < n; k++) {
    int64_t i = index_at(p, d, k);
    if (i >= 0) scan(p, d + 1, base + i * t->stride[d], s);
  }
}

/* Picks one format for the whole tensor (like Torch): integers when every
** shown value is one, fixed point for moderate ranges, scientific otherwise. */
static void choose_format(printer *p) {
  scan_state s = {1, 0, 0, HUGE_VAL, 0, NULL};
  scan(p, 0, eg_data(p->t), &s);
  const char *fmt;
  if (!s.any_finite || (s.integral && s.maxabs < 1e9))
    fmt = "%.0f";
  else if (s.maxabs >= 1e8 || s.minabs < 1e-4 || s.maxabs / s.minabs > 1e5)
    fmt = "%.4e";
  else
    fmt = "%.4f";
  snprintf(p->fmt, sizeof p->fmt, "%s", fmt);
  s.fmt = p->fmt;
  s.width = 1;
  scan(p, 0, eg_data(p->t), &s);
  p->width = p->summarise && s.width < 3 ? 3 : s.width; /* room for "..." */
}

static void add_value(luaL_Buffer *b, const printer *p, const float *ptr) {
  char v[64], cell[96];
  if (ptr)
    fmt_value(v, sizeof v, p->fmt, *ptr);
  else
    snprintf(v, sizeof v, "...");
  snprintf(cell, sizeof cell, " %*s", p->width, v);
  luaL_addstring(b, cell);
}

/* A matrix (the last two dimensions) at base, in column blocks that fit the line width. */
static void add_matrix(luaL_Buffer *b, const printer *p, const float *base, const char *indent) {
  const eg_tensor *t = p->t;
  int d0 = t->ndim - 2, d1 = t->ndim - 1;
  int64_t rows = shown(p, d0), cols = shown(p, d1);
  int64_t per_block = (LINE_WIDTH - (int64_t)strlen(indent)) / (p->width + 1);
  if (per_block < 1) per_block = 1;
  for (int64_t c0 = 0; c0 < cols; c0 += per_block) {
    int64_t c1 = c0 + per_block < cols ? c0 + per_block : cols;
    if (cols > per_block) {
      int64_t first = index_at(p, d1, c0), last = index_at(p, d1, c1 - 1);
      if (first < 0) first = index_at(p, d1, c0 + 1);
      if (last < 0) last = index_at(p, d1, c1 - 2);
      char h[96];
      snprintf(h, sizeof h, "%s%sColumns %lld to %lld\n", c0 ? "\n" : "", indent, (long long)first + 1,
               (long long)last + 1);
      luaL_addstring(b, h);
    }
    for (int64_t r = 0; r < rows; r++) {
      int64_t i = index_at(p, d0, r);
      luaL_addstring(b, indent);
      for (int64_t c = c0; c < c1; c++) {
        int64_t j = index_at(p, d1, c);
        add_value(b, p, (i < 0 || j < 0) ? NULL : base + i * t->stride[d0] + j * t->stride[d1]);
      }
      luaL_addchar(b, '\n');
    }
  }
}

/* Leading dimensions of an N-D tensor: one "(i,j,.,.) =" block per matrix. */
static void add_slices(luaL_Buffer *b, const printer *p, int d, const float *base, int64_t *pos, int *first) {
  const eg_tensor *t = p->t;
  if (d == t->ndim - 2) {
    char h[160];
    int k = snprintf(h, sizeof h, "%s(", *first ? "" : "\n");
    for (int i = 0; i < d && k < (int)sizeof h - 32; i++) k += snprintf(h + k, sizeof h - (size_t)k, "%lld,", (long long)pos[i] + 1);
    snprintf(h + k, sizeof h - (size_t)k, ".,.) = \n");
    luaL_addstring(b, h);
    add_matrix(b, p, base, "");
    *first = 0;
    return;
  }
  int64_t n = shown(p, d);
  for (int64_t k = 0; k < n; k++) {
    int64_t i = index_at(p, d, k);
    if (i < 0) {
      luaL_addstring(b, "\n...\n");
      continue;
    }
    pos[d] = i;
    add_slices(b, p, d + 1, base + i * t->stride[d], pos, first);
  }
}

int eg_lua_tensor_tostring(lua_State *L) {
  eg_tensor *t = luaL_checkudata(L, 1, EG_TENSOR_MT);
  if (!t->storage) {
    lua_pushliteral(L, "[" EG_TENSOR_MT " (released)]");
    return 1;
  }
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  printer p = {t, eg_numel(t) > SUMMARY_NUMEL, "", 0};
  if (eg_numel(t) > 0) {
    choose_format(&p);
    if (t->ndim == 0) {
      add_value(&b, &p, eg_data(t));
      luaL_addchar(&b, '\n');
    } else if (t->ndim == 1) {
      int64_t n = shown(&p, 0);
      for (int64_t k = 0; k < n; k++) {
        int64_t i = index_at(&p, 0, k);
        add_value(&b, &p, i < 0 ? NULL : eg_data(t) + i * t->stride[0]);
        luaL_addchar(&b, '\n');
      }
    } else if (t->ndim == 2) {
      add_matrix(&b, &p, eg_data(t), "");
    } else {
      int64_t pos[EG_MAXDIM] = {0};
      int first = 1;
      add_slices(&b, &p, 0, eg_data(t), pos, &first);
    }
  }
  char sz[MAXSTR];
  shape_str(t, sz);
  if (t->ndim > 0) { /* "[2x3]" -> "2x3" */
    sz[strlen(sz) - 1] = 0;
    memmove(sz, sz + 1, strlen(sz));
  }
  luaL_addstring(&b, "[" EG_TENSOR_MT " of size ");
  luaL_addstring(&b, sz);
  luaL_addstring(&b, "]");
  luaL_pushresult(&b);
  return 1;
}
