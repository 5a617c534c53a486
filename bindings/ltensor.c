/*
** ltensor.c — the engram.Tensor userdata and the tensor functions of engram.core:
** constructors, inspection, views and copies here; the methods that compute
** (arithmetic, comparisons, linalg, reductions) in ltensor_math.c; printing in
** ltensor_print.c.
**
** The userdata holds an eg_tensor value with its own reference to the
** storage, so a view keeps its storage alive whatever order Lua collects
** things in. Results are new tensors unless the name ends in `_` (in place,
** returns self). Index conventions on this side are Lua's: dimensions and
** indices are 1-based and negative ones count from the end; the conversion to
** the core's 0-based values happens in lutil.c only.
**
** Integer data (labels, indices) are float tensors holding exact integers
** (exact up to 2^24): `t:index(idx)`, `max(d)`'s indices, `argmax`, and a
** generator's `permutation` all use 1-based values held in floats.
**
** Arithmetic operators are element-wise with numpy broadcasting (`*` is NOT a
** matrix product: use mm). `==` stays object identity: use eq / equal.
**
** The Lua surface (t a tensor; "sizes" are numbers or one table):
**   create   tensor{{1,2},{3,4}} | tensor(3.5) (0-dim) | tensor(t) (copy),
**            zeros(sizes), ones(sizes), full(sizes, v), arange(n) = 0..n-1,
**            arange(a, b[, step]) = [a, b) like PyTorch, rand(sizes[, gen])
**            in [0,1), randn(sizes[, gen]), istensor(x), clock() (wall seconds)
**   inspect  t:shape(), t:size([d]), t:stride(d), t:numel(), t:dim(), #t,
**            t[i] (number for 1-D, row view otherwise), t[i] = v (number or
**            tensor), t:get(i, j, ...), t:set(i, j, ..., v), t:item(),
**            t:totable(), t:is_contiguous(), t:type(), tostring(t)
**   views    view(sizes, one -1 allowed), reshape (copies if not contiguous),
**            narrow(d, start, len), select(d, i), t(), transpose(d1, d2),
**            expand(sizes), contiguous() (self when already contiguous),
**            unsqueeze(d), squeeze([d])
**   copies   clone(), index(idx) (rows gathered by a 1-D index tensor or a
**            table of 1-based rows), relabel_(map) (labels c -> map[c+1] in
**            place), copy(src) = copy_(src), fill(v) =
**            fill_(v), zero_(), engram.cat({a, b, ...}[, d = 1][, out]) (out
**            resized in place, its storage kept when large enough)
**   math     + - * / ^ and unary -, add(x[, alpha]) = t + alpha x, sub(x[,
**            alpha]), mul, div, pow, maximum, minimum, clamp([lo][, hi]),
**            neg exp log sqrt abs tanh sigmoid relu square sign floor ceil
**            round, each with an in-place form ending in _
**   compare  eq ne lt le gt ge (1/0 masks, scalar or tensor, also in place),
**            equal(b) (same shape and values), allclose(b[, tol=1e-5]):
**            |a - b| <= tol * (1 + |b|)
**   linalg   a:mm(b[, opts]), a:tmm(b) = a'b, a:mmt(b) = ab', out:mm_(a, b[,
**            opts]) (into out), engram.mm(a, b[, out | opts]); opts = {ta=,
**            tb=, alpha=1, beta=0, out=}; dot(b) -> number
**   reduce   sum mean max min prod norm argmax argmin: no dimension -> a Lua
**            number (argmax/argmin: 1-based flat position); with d -> a
**            tensor without d (kept with size 1 when the next argument is
**            true); max(d)/min(d) also return 1-based positions
*/
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ltensor.h"

/* ------------------------------------------------------------ constructors */

/* Reads a nested table into a new tensor: depth-first, rows checked against
** the shape found by following first elements. */
static void fill_from_table(lua_State *L, int tidx, int depth, int ndim, const int64_t *shape, int64_t *path,
                            float **p) {
  lua_Integer n = (lua_Integer)lua_rawlen(L, tidx);
  char where[MAXSTR * 2];
  int k = 0;
  where[0] = 0;
  for (int d = 0; d < depth && k < (int)sizeof where - 24; d++)
    k += snprintf(where + k, sizeof where - (size_t)k, depth == 1 ? "%lld" : "[%lld]", (long long)path[d] + 1);
  if (n != shape[depth])
    luaL_error(L, "tensor: row %s has %I elements, expected %I", where, n, (lua_Integer)shape[depth]);
  for (lua_Integer i = 1; i <= n; i++) {
    int ty = lua_rawgeti(L, tidx, i);
    path[depth] = i - 1;
    if (depth + 1 < ndim) {
      if (ty != LUA_TTABLE)
        luaL_error(L, "tensor: element %I of %s%s is a %s, expected a table (rows nest unevenly)", i,
                   depth ? "row " : "the outer table", where, luaL_typename(L, -1));
      fill_from_table(L, lua_gettop(L), depth + 1, ndim, shape, path, p);
    } else {
      if (ty != LUA_TNUMBER)
        luaL_error(L, "tensor: element %I of %s%s is a %s, expected a number", i, depth ? "row " : "the outer table",
                   where, luaL_typename(L, -1));
      *(*p)++ = (float)lua_tonumber(L, -1);
    }
    lua_pop(L, 1);
  }
}

/* tensor{{1,2},{3,4}} from nested tables; tensor(3.5) a 0-dim scalar; tensor(t) a copy. */
static int tl_tensor(lua_State *L) {
  int64_t shape[EG_MAXDIM], path[EG_MAXDIM];
  int ndim = 0;
  if (lua_type(L, 1) == LUA_TNUMBER) {
    eg_tensor *t = eg_lua_pushnew(L, 0, shape, "tensor");
    eg_data(t)[0] = (float)lua_tonumber(L, 1);
    return 1;
  }
  eg_tensor *src = eg_lua_totensor(L, 1);
  if (src) {
    eg_tensor *t = eg_lua_newtensor(L);
    eg_lua_try(L, eg_clone(t, src), "tensor");
    eg_lua_account(L, (size_t)eg_numel(t) * sizeof(float));
    return 1;
  }
  if (luaL_testudata(L, 1, EG_TENSOR_MT)) eg_lua_checktensor(L, 1); /* "released tensor", not "table expected" */
  luaL_argexpected(L, lua_type(L, 1) == LUA_TTABLE, 1, "table of numbers");
  lua_settop(L, 1);
  /* Follow first elements to find the shape. */
  lua_pushvalue(L, 1);
  for (;;) {
    if (ndim == EG_MAXDIM) luaL_error(L, "tensor: more than %d nested levels", EG_MAXDIM);
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    shape[ndim++] = n;
    if (n == 0) break;
    if (lua_rawgeti(L, -1, 1) != LUA_TTABLE) break;
    lua_remove(L, -2);
  }
  lua_settop(L, 1);
  eg_tensor *t = eg_lua_pushnew(L, ndim, shape, "tensor");
  float *p = eg_data(t);
  fill_from_table(L, 1, 0, ndim, shape, path, &p);
  return 1;
}

/* Sizes given as numbers or as one table, from arg 1 to last. */
static eg_tensor *new_from_args(lua_State *L, int last, const char *op) {
  int64_t shape[EG_MAXDIM];
  int ndim = eg_lua_readshape(L, 1, last, shape, 0, op);
  return eg_lua_pushnew(L, ndim, shape, op);
}

static int tl_zeros(lua_State *L) {
  new_from_args(L, lua_gettop(L), "zeros");
  return 1;
}

static int tl_ones(lua_State *L) {
  eg_tensor *t = new_from_args(L, lua_gettop(L), "ones");
  eg_lua_try(L, eg_fill(t, 1.0f), "ones");
  return 1;
}

/* full(2, 3, v) or full({2, 3}, v): the value is always the last argument. */
static int tl_full(lua_State *L) {
  int top = lua_gettop(L);
  if (top < 1 || lua_type(L, top) != LUA_TNUMBER)
    luaL_error(L, "full: expected sizes then a value, e.g. full({2, 3}, 7)");
  float v = (float)lua_tonumber(L, top);
  eg_tensor *t = new_from_args(L, top - 1, "full");
  eg_lua_try(L, eg_fill(t, v), "full");
  return 1;
}

/* arange(n) = 0..n-1; arange(a, b[, step]) = a, a+step, ... up to b excluded (PyTorch). */
static int tl_arange(lua_State *L) {
  double a = 0, b, step = 1;
  if (lua_isnoneornil(L, 2)) {
    b = luaL_checknumber(L, 1);
  } else {
    a = luaL_checknumber(L, 1);
    b = luaL_checknumber(L, 2);
    step = luaL_optnumber(L, 3, 1);
  }
  if (!isfinite(a) || !isfinite(b) || !isfinite(step)) luaL_error(L, "arange: bounds and step must be finite");
  if (step == 0) luaL_error(L, "arange: step is zero");
  double n = ceil((b - a) / step);
  if (n < 0) n = 0;
  if (n > (double)((int64_t)1 << 40)) luaL_error(L, "arange: out of memory: %f elements", (lua_Number)n);
  int64_t shape[1] = {(int64_t)n};
  eg_tensor *t = eg_lua_pushnew(L, 1, shape, "arange");
  eg_lua_try(L, eg_fill_range(t, a, step), "arange");
  return 1;
}

/* rand(sizes... [, gen]) uniform in [0, 1); randn(sizes... [, gen]) standard normal. */
static int random_tensor(lua_State *L, int normal) {
  const char *op = normal ? "randn" : "rand";
  int top = lua_gettop(L);
  int has_gen = top >= 1 && luaL_testudata(L, top, EG_RNG_MT) != NULL;
  eg_rng *r = eg_lua_optrng(L, has_gen ? top : top + 1);
  int64_t shape[EG_MAXDIM];
  int ndim = eg_lua_readshape(L, 1, has_gen ? top - 1 : top, shape, 0, op);
  eg_tensor *t = eg_lua_pushnew(L, ndim, shape, op);
  if (normal)
    eg_lua_try(L, eg_fill_normal(t, r, 0.0f, 1.0f), op);
  else
    eg_lua_try(L, eg_fill_uniform(t, r, 0.0f, 1.0f), op);
  return 1;
}
static int tl_rand(lua_State *L) { return random_tensor(L, 0); }
static int tl_randn(lua_State *L) { return random_tensor(L, 1); }

/* clock(): monotonic wall time in seconds, for timing (os.clock is CPU time,
** which counts every BLAS thread). */
static int tl_clock(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec + 1e-9 * (lua_Number)ts.tv_nsec);
  return 1;
}

static int tl_istensor(lua_State *L) {
  lua_pushboolean(L, luaL_testudata(L, 1, EG_TENSOR_MT) != NULL);
  return 1;
}

/* -------------------------------------------------------------- inspection */

static void push_shape(lua_State *L, const eg_tensor *t) {
  lua_createtable(L, t->ndim, 0);
  for (int d = 0; d < t->ndim; d++) {
    lua_pushinteger(L, (lua_Integer)t->shape[d]);
    lua_rawseti(L, -2, d + 1);
  }
}

static int tl_shape(lua_State *L) {
  push_shape(L, eg_lua_checktensor(L, 1));
  return 1;
}

static int tl_size(lua_State *L) {
  eg_tensor *t = eg_lua_checktensor(L, 1);
  if (lua_isnoneornil(L, 2)) {
    push_shape(L, t);
  } else {
    int d = eg_lua_checkdim(L, 2, t->ndim);
    lua_pushinteger(L, (lua_Integer)t->shape[d]);
  }
  return 1;
}

static int tl_stride(lua_State *L) {
  eg_tensor *t = eg_lua_checktensor(L, 1);
  int d = eg_lua_checkdim(L, 2, t->ndim);
  lua_pushinteger(L, (lua_Integer)t->stride[d]);
  return 1;
}

static int tl_numel(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)eg_numel(eg_lua_checktensor(L, 1)));
  return 1;
}

static int tl_dim(lua_State *L) {
  lua_pushinteger(L, eg_lua_checktensor(L, 1)->ndim);
  return 1;
}

static int tl_len(lua_State *L) {
  eg_tensor *t = eg_lua_checktensor(L, 1);
  if (t->ndim == 0) luaL_error(L, "#: a 0-dimensional tensor has no length (use item())");
  lua_pushinteger(L, (lua_Integer)t->shape[0]);
  return 1;
}

static int tl_is_contiguous(lua_State *L) {
  lua_pushboolean(L, eg_is_contiguous(eg_lua_checktensor(L, 1)));
  return 1;
}

static int tl_type(lua_State *L) {
  eg_lua_checktensor(L, 1);
  lua_pushliteral(L, EG_TENSOR_MT);
  return 1;
}

/* Reads ndim indices from args first.. into idx (0-based). */
static void read_indices(lua_State *L, const eg_tensor *t, int first, int count, int64_t *idx, const char *op) {
  if (count != t->ndim) {
    char b[MAXSTR];
    luaL_error(L, "%s: expected %d indices for a tensor of size %s, got %d", op, t->ndim, shape_str(t, b), count);
  }
  for (int d = 0; d < t->ndim; d++) idx[d] = eg_lua_index(L, first + d, t->shape[d], d, op);
}

static int tl_get(lua_State *L) {
  eg_tensor *t = eg_lua_checktensor(L, 1);
  int64_t idx[EG_MAXDIM];
  read_indices(L, t, 2, lua_gettop(L) - 1, idx, "get");
  lua_pushnumber(L, eg_data(t)[eg_offset_of(t, idx)]);
  return 1;
}

/* set(i, j, ..., v): returns self. */
static int tl_set(lua_State *L) {
  eg_tensor *t = eg_lua_checktensor(L, 1);
  int top = lua_gettop(L);
  if (top < 2 || lua_type(L, top) != LUA_TNUMBER) luaL_error(L, "set: expected indices then a number value");
  int64_t idx[EG_MAXDIM];
  read_indices(L, t, 2, top - 2, idx, "set");
  eg_data(t)[eg_offset_of(t, idx)] = (float)lua_tonumber(L, top);
  lua_settop(L, 1);
  return 1;
}

static int tl_item(lua_State *L) {
  eg_tensor *t = eg_lua_checktensor(L, 1);
  if (eg_numel(t) != 1) {
    char b[MAXSTR];
    luaL_error(L, "item: tensor %s has %I elements, expected 1", shape_str(t, b), (lua_Integer)eg_numel(t));
  }
  int64_t idx[EG_MAXDIM] = {0};
  lua_pushnumber(L, eg_data(t)[eg_offset_of(t, idx)]);
  return 1;
}

static void push_table(lua_State *L, const float *p, const eg_tensor *t, int d) {
  lua_createtable(L, (int)t->shape[d], 0);
  for (int64_t i = 0; i < t->shape[d]; i++) {
    if (d == t->ndim - 1)
      lua_pushnumber(L, p[i * t->stride[d]]);
    else
      push_table(L, p + i * t->stride[d], t, d + 1);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
}

/* Beyond this a Lua table of numbers takes gigabytes: refuse by name rather
** than let Lua fail with a bare "not enough memory" (an expanded view can be
** that large over a few floats). */
#define TOTABLE_MAX ((int64_t)1 << 26)

static int tl_totable(lua_State *L) {
  eg_tensor *t = eg_lua_checktensor(L, 1);
  if (eg_numel(t) > TOTABLE_MAX) {
    char b[MAXSTR];
    luaL_error(L, "totable: tensor %s has %I elements, too many for a Lua table (at most %I)", shape_str(t, b),
               (lua_Integer)eg_numel(t), (lua_Integer)TOTABLE_MAX);
  }
  if (t->ndim == 0)
    lua_pushnumber(L, eg_data(t)[0]);
  else
    push_table(L, eg_data(t), t, 0);
  return 1;
}

/* ------------------------------------------------------------------- views */

static int tl_view(lua_State *L) {
  eg_tensor *t = eg_lua_checktensor(L, 1);
  int64_t shape[EG_MAXDIM];
  int ndim = eg_lua_readshape(L, 2, lua_gettop(L), shape, 1, "view");
  eg_tensor *v = eg_lua_newtensor(L);
  eg_lua_try(L, eg_view(v, t, ndim, shape), "view");
  return 1;
}

/* reshape: a view when t is contiguous, otherwise a contiguous copy first. */
static int tl_reshape(lua_State *L) {
  eg_tensor *t = eg_lua_checktensor(L, 1);
  int64_t shape[EG_MAXDIM];
  int ndim = eg_lua_readshape(L, 2, lua_gettop(L), shape, 1, "reshape");
  eg_tensor *v = eg_lua_newtensor(L);
  eg_lua_try(L, eg_contiguous(v, t), "reshape");
  if (v->storage != t->storage) eg_lua_account(L, (size_t)eg_numel(v) * sizeof(float));
  int st = eg_view(v, v, ndim, shape);
  if (st) {
    /* Report the shape of the tensor the user gave, not the copy's. */
    const char *m = eg_errmsg();
    if (strncmp(m, "view:", 5) == 0) luaL_error(L, "reshape:%s", m + 5);
    eg_lua_fail(L, st, "reshape");
  }
  return 1;
}

static int tl_narrow(lua_State *L) {
  eg_tensor *t = eg_lua_checktensor(L, 1);
  int d = eg_lua_checkdim(L, 2, t->ndim);
  int64_t start = eg_lua_index(L, 3, t->shape[d], d, "narrow");
  lua_Integer len = luaL_checkinteger(L, 4);
  if (len < 0) luaL_error(L, "narrow: length %I is negative", len);
  eg_tensor *v = eg_lua_newtensor(L);
  eg_lua_try(L, eg_narrow(v, t, d, start, (int64_t)len), "narrow");
  return 1;
}

static int tl_select(lua_State *L) {
  eg_tensor *t = eg_lua_checktensor(L, 1);
  int d = eg_lua_checkdim(L, 2, t->ndim);
  int64_t i = eg_lua_index(L, 3, t->shape[d], d, "select");
  eg_tensor *v = eg_lua_newtensor(L);
  eg_lua_try(L, eg_select(v, t, d, i), "select");
  return 1;
}

static int tl_transpose(lua_State *L) {
  eg_tensor *t = eg_lua_checktensor(L, 1);
  int d0 = eg_lua_checkdim(L, 2, t->ndim);
  int d1 = eg_lua_checkdim(L, 3, t->ndim);
  eg_tensor *v = eg_lua_newtensor(L);
  eg_lua_try(L, eg_transpose(v, t, d0, d1), "transpose");
  return 1;
}

/* t(): the transpose of a matrix (a 1-D tensor is returned as a view of itself). */
static int tl_t(lua_State *L) {
  eg_tensor *t = eg_lua_checktensor(L, 1);
  char b[MAXSTR];
  if (t->ndim > 2) luaL_error(L, "t: expected a tensor with at most 2 dimensions, got %s (use transpose)", shape_str(t, b));
  eg_tensor *v = eg_lua_newtensor(L);
  if (t->ndim == 2)
    eg_lua_try(L, eg_transpose(v, t, 0, 1), "t");
  else
    eg_tensor_set(v, t);
  return 1;
}

static int tl_expand(lua_State *L) {
  eg_tensor *t = eg_lua_checktensor(L, 1);
  int64_t shape[EG_MAXDIM];
  int ndim = eg_lua_readshape(L, 2, lua_gettop(L), shape, 0, "expand");
  eg_tensor *v = eg_lua_newtensor(L);
  eg_lua_try(L, eg_expand(v, t, ndim, shape), "expand");
  return 1;
}

/* unsqueeze(d): a view with a new dimension of size 1 at position d (1..dim+1). */
static int tl_unsqueeze(lua_State *L) {
  eg_tensor *t = eg_lua_checktensor(L, 1);
  if (t->ndim == EG_MAXDIM) luaL_error(L, "unsqueeze: the tensor already has %d dimensions", EG_MAXDIM);
  int d = eg_lua_checkdim(L, 2, t->ndim + 1);
  int64_t shape[EG_MAXDIM], stride[EG_MAXDIM];
  for (int i = 0, k = 0; i <= t->ndim; i++) {
    if (i == d) {
      shape[i] = 1;
      stride[i] = i < t->ndim ? t->stride[k] * t->shape[k] : 1;
    } else {
      shape[i] = t->shape[k];
      stride[i] = t->stride[k];
      k++;
    }
  }
  eg_tensor *v = eg_lua_newtensor(L);
  eg_lua_try(L, eg_tensor_from_storage(v, t->storage, t->offset, t->ndim + 1, shape, stride), "unsqueeze");
  return 1;
}

/* squeeze([d]): a view without dimension d (which must have size 1), or without every size-1 dimension. */
static int tl_squeeze(lua_State *L) {
  eg_tensor *t = eg_lua_checktensor(L, 1);
  int only = -1;
  if (!lua_isnoneornil(L, 2)) {
    only = eg_lua_checkdim(L, 2, t->ndim);
    if (t->shape[only] != 1) {
      char b[MAXSTR];
      luaL_error(L, "squeeze: dimension %d of %s has size %I, not 1", only + 1, shape_str(t, b),
                 (lua_Integer)t->shape[only]);
    }
  }
  int64_t shape[EG_MAXDIM], stride[EG_MAXDIM];
  int nd = 0;
  for (int i = 0; i < t->ndim; i++) {
    if (t->shape[i] == 1 && (only < 0 || only == i)) continue;
    shape[nd] = t->shape[i];
    stride[nd] = t->stride[i];
    nd++;
  }
  eg_tensor *v = eg_lua_newtensor(L);
  eg_lua_try(L, eg_tensor_from_storage(v, t->storage, t->offset, nd, shape, stride), "squeeze");
  return 1;
}

/* engram.cat({a, b, ...}[, d = 1]): a new tensor joining the tensors along
** dimension d; every other size must agree (eg_cat_shape checks). An element
** that is not a tensor is reported after what the elements before it got
** wrong, in list order. */
static const eg_tensor *cat_element(lua_State *L, const eg_tensor **parts, lua_Integer i, int d) {
  eg_tensor *x = eg_lua_totensor(L, -1);
  if (!x) {
    int nd;
    int64_t shape[EG_MAXDIM];
    if (i > 1) eg_lua_try(L, eg_cat_shape(&nd, shape, parts, (int)i - 1, d, NULL), "cat");
    if (luaL_testudata(L, -1, EG_TENSOR_MT)) luaL_error(L, "cat: element %I of the list is a released tensor", i);
    luaL_error(L, "cat: element %I of the list is not an engram.Tensor (got %s)", i, luaL_typename(L, -1));
  }
  return x;
}

static int tl_cat(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_Integer n = (lua_Integer)lua_rawlen(L, 1);
  if (n > INT_MAX) luaL_error(L, "cat: %I tensors are too many", n);
  lua_settop(L, 3);
  /* The list as the array the core takes, in Lua's memory (collected on an error). */
  const eg_tensor **parts = lua_newuserdatauv(L, sizeof *parts * (size_t)(n ? n : 1), 0);
  int d = 0;
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, 1, i);
    parts[i - 1] = cat_element(L, parts, i, d);
    lua_pop(L, 1);
    if (i == 1 && !lua_isnil(L, 2) && parts[0]->ndim > 0) d = eg_lua_checkdim(L, 2, parts[0]->ndim);
  }
  int nd;
  int64_t shape[EG_MAXDIM];
  eg_lua_try(L, eg_cat_shape(&nd, shape, parts, (int)n, d, NULL), "cat");
  eg_tensor *out = eg_lua_totensor(L, 3);
  if (out) { /* into a given tensor, resized in place (eg_tensor_resize) */
    for (lua_Integer i = 1; i <= n; i++) /* checked before the resize, which would hide it */
      if (out->storage && parts[i - 1]->storage == out->storage)
        luaL_error(L, "cat: the output shares storage with tensor %I", i);
    eg_lua_resize(L, out, nd, shape, 0, "cat");
    lua_pushvalue(L, 3);
  } else {
    if (!lua_isnoneornil(L, 3)) luaL_typeerror(L, 3, "engram.Tensor (the output) or nil");
    out = eg_lua_pushnew(L, nd, shape, "cat");
  }
  eg_lua_try(L, eg_cat(out, parts, (int)n, d), "cat");
  return 1;
}

/* contiguous(): self when already contiguous, otherwise a contiguous copy. */
static int tl_contiguous(lua_State *L) {
  eg_tensor *t = eg_lua_checktensor(L, 1);
  if (eg_is_contiguous(t)) {
    lua_settop(L, 1);
    return 1;
  }
  eg_tensor *c = eg_lua_newtensor(L);
  eg_lua_try(L, eg_clone(c, t), "contiguous");
  eg_lua_account(L, (size_t)eg_numel(c) * sizeof(float));
  return 1;
}

static int tl_clone(lua_State *L) {
  eg_tensor *t = eg_lua_checktensor(L, 1);
  eg_tensor *c = eg_lua_newtensor(L);
  eg_lua_try(L, eg_clone(c, t), "clone");
  eg_lua_account(L, (size_t)eg_numel(c) * sizeof(float));
  return 1;
}

/* index(idx): rows of t gathered by idx, a 1-D tensor or a Lua table of
** 1-based row numbers; a new tensor of size (#idx, rest of t...). */
static int tl_index(lua_State *L) {
  eg_tensor *t = eg_lua_checktensor(L, 1);
  eg_tensor *cidx = eg_lua_newtensor(L); /* 0-based indices, kept on the stack until done */
  if (lua_type(L, 2) == LUA_TTABLE) {
    lua_Integer n = (lua_Integer)lua_rawlen(L, 2);
    int64_t sh[1] = {(int64_t)n};
    eg_tensor *one = eg_lua_pushnew(L, 1, sh, "index"); /* 1-based, as given */
    for (lua_Integer i = 1; i <= n; i++) {
      if (lua_rawgeti(L, 2, i) != LUA_TNUMBER)
        luaL_error(L, "index: element %I of the index table is a %s, expected a number", i, luaL_typename(L, -1));
      eg_data(one)[i - 1] = (float)lua_tonumber(L, -1);
      lua_pop(L, 1);
    }
    eg_lua_index_to_c(L, cidx, one, "index");
  } else {
    eg_tensor *idx = eg_lua_totensor(L, 2);
    if (!idx) {
      if (luaL_testudata(L, 2, EG_TENSOR_MT)) eg_lua_checktensor(L, 2);
      luaL_typeerror(L, 2, "engram.Tensor or table of indices");
    }
    eg_lua_index_to_c(L, cidx, idx, "index");
  }
  if (t->ndim < 1) luaL_error(L, "index: cannot index a 0-dimensional tensor");
  if (cidx->ndim != 1) {
    char b[MAXSTR];
    luaL_error(L, "index: the index must be 1-dimensional, got %s", shape_str(cidx, b));
  }
  int64_t shape[EG_MAXDIM];
  memcpy(shape, t->shape, sizeof shape);
  shape[0] = cidx->shape[0];
  eg_tensor *out = eg_lua_pushnew(L, t->ndim, shape, "index");
  eg_lua_try(L, eg_index_rows(out, t, cidx), "index");
  return 1;
}

/* relabel_(map): labels (0-based class ids) replaced in place by map[label + 1],
** no allocation: the learner's per-batch label maps (domain-IL, per-task heads).
** eg_index_rows checks every label before writing and reads label i before
** writing element i, so the labels can be the index and the output at once. */
static int tl_relabel_(lua_State *L) {
  eg_tensor *t = eg_lua_checktensor(L, 1), *map = eg_lua_checktensor(L, 2);
  if (t->ndim != 1 || map->ndim != 1) {
    char b1[MAXSTR], b2[MAXSTR];
    luaL_error(L, "relabel_: expected 1-D labels and a 1-D map, got %s and %s", shape_str(t, b1), shape_str(map, b2));
  }
  int st = eg_index_rows(t, map, t);
  if (st == EG_ERANGE) { /* say which label, in the labels' own (0-based) terms */
    for (int64_t i = 0; i < t->shape[0]; i++) {
      float v = eg_data(t)[i * t->stride[0]];
      if (!(v >= 0 && v < (float)map->shape[0]) || v != floorf(v))
        luaL_error(L, "relabel_: label %f at position %I is not a class id of the map (0..%I)", (double)v,
                   (lua_Integer)i + 1, (lua_Integer)map->shape[0] - 1);
    }
  }
  if (st) eg_lua_fail(L, st, "relabel_");
  lua_settop(L, 1);
  return 1;
}

/* --------------------------------------------------------- copy and fill */

static int tl_copy_(lua_State *L) {
  eg_tensor *t = eg_lua_checktensor(L, 1);
  eg_tensor *src = eg_lua_checktensor(L, 2);
  eg_lua_try(L, eg_copy(t, src), "copy");
  lua_settop(L, 1);
  return 1;
}

static int tl_fill_(lua_State *L) {
  eg_tensor *t = eg_lua_checktensor(L, 1);
  float v = (float)luaL_checknumber(L, 2);
  eg_lua_try(L, eg_fill(t, v), "fill");
  lua_settop(L, 1);
  return 1;
}

static int tl_zero_(lua_State *L) {
  eg_tensor *t = eg_lua_checktensor(L, 1);
  eg_lua_try(L, eg_fill(t, 0.0f), "zero");
  lua_settop(L, 1);
  return 1;
}

/* ------------------------------------------------------ metatable plumbing */

static int m_gc(lua_State *L) {
  eg_tensor *t = luaL_checkudata(L, 1, EG_TENSOR_MT);
  eg_tensor_release(t); /* idempotent: __close then __gc is fine */
  return 0;
}

/* t[i]: for a 1-D tensor the number, otherwise a view of row i; t.name: a method. */
static int m_index(lua_State *L) {
  if (lua_type(L, 2) == LUA_TSTRING) {
    lua_pushvalue(L, 2);
    lua_rawget(L, lua_upvalueindex(1));
    return 1;
  }
  if (lua_type(L, 2) != LUA_TNUMBER) return 0;
  eg_tensor *t = eg_lua_checktensor(L, 1);
  if (t->ndim == 0) luaL_error(L, "index: cannot index a 0-dimensional tensor (use item())");
  int64_t i = eg_lua_index(L, 2, t->shape[0], 0, "index");
  if (t->ndim == 1) {
    lua_pushnumber(L, eg_data(t)[i * t->stride[0]]);
    return 1;
  }
  eg_tensor *v = eg_lua_newtensor(L);
  eg_lua_try(L, eg_select(v, t, 0, i), "index");
  return 1;
}

/* t[i] = v: sets element i of a 1-D tensor; for N-D fills row i with a
** number or copies a tensor into it. */
static int m_newindex(lua_State *L) {
  eg_tensor *t = eg_lua_checktensor(L, 1);
  if (lua_type(L, 2) != LUA_TNUMBER)
    luaL_error(L, "cannot set field '%s' of an " EG_TENSOR_MT, luaL_tolstring(L, 2, NULL));
  if (t->ndim == 0) luaL_error(L, "index: cannot index a 0-dimensional tensor (use fill_())");
  int64_t i = eg_lua_index(L, 2, t->shape[0], 0, "index");
  if (t->ndim == 1) {
    eg_data(t)[i * t->stride[0]] = (float)luaL_checknumber(L, 3);
    return 0;
  }
  eg_tensor row = EG_TENSOR_INIT;
  eg_lua_try(L, eg_select(&row, t, 0, i), "index");
  int st;
  eg_tensor *src = eg_lua_totensor(L, 3);
  if (src)
    st = eg_copy(&row, src);
  else if (lua_type(L, 3) == LUA_TNUMBER)
    st = eg_fill(&row, (float)lua_tonumber(L, 3));
  else
    st = eg_seterr(EG_EINVAL, "index: can only assign a number or an engram.Tensor to a row, got %s",
                   luaL_typename(L, 3));
  eg_tensor_release(&row);
  if (st) eg_lua_fail(L, st, "index");
  return 0;
}

static const luaL_Reg methods[] = {
    /* inspection */
    {"shape", tl_shape}, {"size", tl_size}, {"stride", tl_stride}, {"numel", tl_numel}, {"dim", tl_dim},
    {"get", tl_get}, {"set", tl_set}, {"item", tl_item}, {"totable", tl_totable},
    {"is_contiguous", tl_is_contiguous}, {"type", tl_type},
    /* views */
    {"view", tl_view}, {"reshape", tl_reshape}, {"narrow", tl_narrow}, {"select", tl_select},
    {"transpose", tl_transpose}, {"t", tl_t}, {"expand", tl_expand}, {"contiguous", tl_contiguous},
    {"unsqueeze", tl_unsqueeze}, {"squeeze", tl_squeeze},
    {"index", tl_index}, {"relabel_", tl_relabel_},
    /* copies */
    {"clone", tl_clone}, {"copy", tl_copy_}, {"copy_", tl_copy_}, {"fill", tl_fill_}, {"fill_", tl_fill_},
    {"zero_", tl_zero_},
    {NULL, NULL}};

static const luaL_Reg metamethods[] = {
    {"__len", tl_len}, {"__tostring", eg_lua_tensor_tostring}, {"__newindex", m_newindex},
    {"__gc", m_gc},    {"__close", m_gc}, {NULL, NULL}};

/* Module-level functions (engram.zeros, engram.mm, ...); the function forms
** of methods take the tensor first: engram.exp(t) == t:exp(). */
static const luaL_Reg functions[] = {
    {"tensor", tl_tensor}, {"zeros", tl_zeros}, {"ones", tl_ones}, {"full", tl_full}, {"arange", tl_arange},
    {"rand", tl_rand}, {"randn", tl_randn}, {"istensor", tl_istensor}, {"clock", tl_clock},
    {"clone", tl_clone}, {"index", tl_index}, {"cat", tl_cat},
    {NULL, NULL}};

void eg_lua_open_tensor(lua_State *L) {
  int mod = lua_gettop(L);
  luaL_newmetatable(L, EG_TENSOR_MT); /* sets __name */
  luaL_setfuncs(L, metamethods, 0);
  luaL_setfuncs(L, eg_lua_tensor_math_meta, 0);
  luaL_newlib(L, methods);
  luaL_setfuncs(L, eg_lua_tensor_math_methods, 0);
  lua_pushvalue(L, -1);
  lua_setfield(L, mod, "Tensor"); /* the methods table, so Lua code can add methods */
  lua_pushcclosure(L, m_index, 1);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  lua_pushvalue(L, mod);
  luaL_setfuncs(L, functions, 0);
  luaL_setfuncs(L, eg_lua_tensor_math_functions, 0);
  lua_pop(L, 1);
}
