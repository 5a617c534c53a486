/*
** ltensor.c — the engram.Tensor userdata and the tensor functions of engram.core.
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

#include "lutil.h"

#define MAXSTR 96

static const char *shape_str(const eg_tensor *t, char *buf) { return eg_shape_str(t, buf, MAXSTR); }

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

/* -------------------------------------------------------------- arithmetic */

static const char *const binop_names[] = {"add", "sub", "mul", "div", "pow", "maximum", "minimum",
                                          "eq",  "ne",  "lt",  "le",  "gt",  "ge"};

static void bad_operand(lua_State *L, int arg, const char *op) {
  const char *got = luaL_getmetafield(L, arg, "__name") == LUA_TSTRING ? lua_tostring(L, -1) : luaL_typename(L, arg);
  luaL_error(L, "%s: bad argument #%d (engram.Tensor or number expected, got %s)", op, arg, got);
}

/* Pushes a op b where either may be a number (at least one a tensor). Errors
** name `name` (the method the user called: sub(x, alpha) computes an add). */
static void binary_named(lua_State *L, int ia, int ib, eg_binop op, const char *name) {
  eg_tensor *a = eg_lua_totensor(L, ia), *b = eg_lua_totensor(L, ib);
  if (a && b) {
    int ndim;
    int64_t shape[EG_MAXDIM];
    int st = eg_broadcast_shape(a, b, &ndim, shape);
    if (st) luaL_error(L, "%s: %s", name, eg_errmsg());
    eg_tensor *out = eg_lua_pushnew(L, ndim, shape, name);
    eg_lua_try(L, eg_binary(out, a, b, op), name);
    return;
  }
  if (a) {
    if (lua_type(L, ib) != LUA_TNUMBER) bad_operand(L, ib, name);
    float s = (float)lua_tonumber(L, ib);
    eg_tensor *out = eg_lua_pushnew(L, a->ndim, a->shape, name);
    eg_lua_try(L, eg_binary_scalar(out, a, s, op, 0), name);
    return;
  }
  if (b) {
    if (lua_type(L, ia) != LUA_TNUMBER) bad_operand(L, ia, name);
    float s = (float)lua_tonumber(L, ia);
    eg_tensor *out = eg_lua_pushnew(L, b->ndim, b->shape, name);
    eg_lua_try(L, eg_binary_scalar(out, b, s, op, 1), name);
    return;
  }
  /* Neither is a usable tensor: a released tensor or a wrong type. */
  if (luaL_testudata(L, ia, EG_TENSOR_MT)) eg_lua_checktensor(L, ia);
  if (luaL_testudata(L, ib, EG_TENSOR_MT)) eg_lua_checktensor(L, ib);
  luaL_checkudata(L, ia, EG_TENSOR_MT);
}

static void binary_new(lua_State *L, int ia, int ib, eg_binop op) { binary_named(L, ia, ib, op, binop_names[op]); }

/* self op= other, other a tensor broadcast to self's shape or a number. */
static void binary_inplace(lua_State *L, eg_binop op) {
  const char *name = binop_names[op];
  eg_tensor *t = eg_lua_checktensor(L, 1);
  if (lua_type(L, 2) == LUA_TNUMBER) {
    eg_lua_try(L, eg_binary_scalar(t, t, (float)lua_tonumber(L, 2), op, 0), name);
  } else {
    eg_tensor *o = eg_lua_totensor(L, 2);
    if (!o) {
      if (luaL_testudata(L, 2, EG_TENSOR_MT)) eg_lua_checktensor(L, 2);
      luaL_typeerror(L, 2, "engram.Tensor or number");
    }
    eg_lua_try(L, eg_binary(t, t, o, op), name);
  }
  lua_settop(L, 1);
}

/* add(x[, alpha]) = self + alpha * x; sub(x[, alpha]) = self - alpha * x. */
static int add_sub(lua_State *L, int sub, int inplace) {
  const char *name = sub ? "sub" : "add";
  if (lua_isnoneornil(L, 3)) {
    if (inplace) {
      binary_inplace(L, sub ? EG_SUB : EG_ADD);
    } else {
      eg_lua_checktensor(L, 1);
      binary_new(L, 1, 2, sub ? EG_SUB : EG_ADD);
    }
    return 1;
  }
  eg_tensor *t = eg_lua_checktensor(L, 1);
  float alpha = (float)luaL_checknumber(L, 3);
  if (sub) alpha = -alpha;
  eg_tensor *x = eg_lua_totensor(L, 2);
  if (!x) {
    if (luaL_testudata(L, 2, EG_TENSOR_MT)) eg_lua_checktensor(L, 2); /* "released tensor" */
    if (lua_type(L, 2) != LUA_TNUMBER) bad_operand(L, 2, name);
    float s = (float)lua_tonumber(L, 2) * alpha;
    eg_tensor *out = t;
    if (!inplace) out = eg_lua_pushnew(L, t->ndim, t->shape, name);
    eg_lua_try(L, eg_binary_scalar(out, t, s, EG_ADD, 0), name);
    if (inplace) lua_settop(L, 1);
    return 1;
  }
  if (inplace && eg_same_shape(t, x)) { /* the optimiser's y += alpha x */
    eg_lua_try(L, eg_axpy(t, alpha, x), name);
    lua_settop(L, 1);
    return 1;
  }
  eg_tensor *scaled = eg_lua_pushnew(L, x->ndim, x->shape, name);
  eg_lua_try(L, eg_binary_scalar(scaled, x, alpha, EG_MUL, 0), name);
  if (inplace) {
    eg_lua_try(L, eg_binary(t, t, scaled, EG_ADD), name);
    lua_settop(L, 1);
  } else {
    binary_named(L, 1, lua_gettop(L), EG_ADD, name);
  }
  return 1;
}

static int tl_add(lua_State *L) { return add_sub(L, 0, 0); }
static int tl_sub(lua_State *L) { return add_sub(L, 1, 0); }
static int tl_add_(lua_State *L) { return add_sub(L, 0, 1); }
static int tl_sub_(lua_State *L) { return add_sub(L, 1, 1); }

#define BINARY_METHODS(name, OP)                                                 \
  static int tl_##name(lua_State *L) {                                            \
    eg_lua_checktensor(L, 1);                                                    \
    binary_new(L, 1, 2, OP);                                                     \
    return 1;                                                                    \
  }                                                                              \
  static int tl_##name##_(lua_State *L) {                                         \
    binary_inplace(L, OP);                                                       \
    return 1;                                                                    \
  }
BINARY_METHODS(mul, EG_MUL)
BINARY_METHODS(div, EG_DIV)
BINARY_METHODS(pow, EG_POW)
BINARY_METHODS(maximum, EG_MAXIMUM)
BINARY_METHODS(minimum, EG_MINIMUM)
BINARY_METHODS(eq, EG_EQ)
BINARY_METHODS(ne, EG_NE)
BINARY_METHODS(lt, EG_LT)
BINARY_METHODS(le, EG_LE)
BINARY_METHODS(gt, EG_GT)
BINARY_METHODS(ge, EG_GE)

/* Metamethods: either operand may be the number. */
#define ARITH_META(name, OP)                    \
  static int m_##name(lua_State *L) {           \
    binary_new(L, 1, 2, OP);                    \
    return 1;                                   \
  }
ARITH_META(add, EG_ADD)
ARITH_META(sub, EG_SUB)
ARITH_META(mul, EG_MUL)
ARITH_META(div, EG_DIV)
ARITH_META(pow, EG_POW)

static void unary(lua_State *L, eg_unop op, int inplace) {
  const char *name = eg_unop_name(op);
  eg_tensor *t = eg_lua_checktensor(L, 1);
  eg_tensor *out = t;
  if (!inplace) out = eg_lua_pushnew(L, t->ndim, t->shape, name);
  eg_lua_try(L, eg_unary(out, t, op), name);
  if (inplace) lua_settop(L, 1);
}

#define UNARY_METHODS(name, OP)                                                  \
  static int tl_##name(lua_State *L) {                                            \
    unary(L, OP, 0);                                                             \
    return 1;                                                                    \
  }                                                                              \
  static int tl_##name##_(lua_State *L) {                                         \
    unary(L, OP, 1);                                                             \
    return 1;                                                                    \
  }
UNARY_METHODS(neg, EG_NEG)
UNARY_METHODS(exp, EG_EXP)
UNARY_METHODS(log, EG_LOG)
UNARY_METHODS(sqrt, EG_SQRT)
UNARY_METHODS(abs, EG_ABS)
UNARY_METHODS(tanh, EG_TANH)
UNARY_METHODS(sigmoid, EG_SIGMOID)
UNARY_METHODS(relu, EG_RELU)
UNARY_METHODS(square, EG_SQUARE)
UNARY_METHODS(sign, EG_SIGN)
UNARY_METHODS(floor, EG_FLOOR)
UNARY_METHODS(ceil, EG_CEIL)
UNARY_METHODS(round, EG_ROUND)

static int m_unm(lua_State *L) {
  unary(L, EG_NEG, 0);
  return 1;
}

/* clamp(lo, hi): either bound may be nil (no bound on that side). */
static int clamp(lua_State *L, int inplace) {
  eg_tensor *t = eg_lua_checktensor(L, 1);
  float lo = (float)luaL_optnumber(L, 2, -HUGE_VAL), hi = (float)luaL_optnumber(L, 3, HUGE_VAL);
  eg_tensor *out = t;
  if (!inplace) out = eg_lua_pushnew(L, t->ndim, t->shape, "clamp");
  eg_lua_try(L, eg_clamp(out, t, lo, hi), "clamp");
  if (inplace) lua_settop(L, 1);
  return 1;
}
static int tl_clamp(lua_State *L) { return clamp(L, 0); }
static int tl_clamp_(lua_State *L) { return clamp(L, 1); }

/* ---------------------------------------------------------- linear algebra */

static const char *const mm_keys[] = {"ta", "tb", "alpha", "beta", "out", NULL};

typedef struct {
  int ta, tb;
  float alpha, beta;
  int out; /* stack index of an output tensor, 0 if none */
} mm_opts;

static float mm_number_opt(lua_State *L, const char *op, const char *key) {
  if (lua_type(L, -1) != LUA_TNUMBER)
    luaL_error(L, "%s: option %s must be a number, got %s", op, key, luaL_typename(L, -1));
  return (float)lua_tonumber(L, -1);
}

/* Reads an options table at idx; an unknown key is an error naming the known ones. */
static void read_mm_opts(lua_State *L, int idx, mm_opts *o, const char *op) {
  o->ta = o->tb = 0;
  o->alpha = 1.0f;
  o->beta = 0.0f;
  o->out = 0;
  if (lua_isnoneornil(L, idx)) return;
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    int known = 0;
    if (lua_type(L, -1) == LUA_TSTRING)
      for (int i = 0; mm_keys[i]; i++) known |= strcmp(lua_tostring(L, -1), mm_keys[i]) == 0;
    if (!known)
      luaL_error(L, "%s: unknown option '%s' (known: ta, tb, alpha, beta%s)", op, luaL_tolstring(L, -1, NULL),
                 strcmp(op, "mm") == 0 ? ", out" : "");
  }
  if (lua_getfield(L, idx, "ta") != LUA_TNIL) o->ta = lua_toboolean(L, -1);
  if (lua_getfield(L, idx, "tb") != LUA_TNIL) o->tb = lua_toboolean(L, -1);
  if (lua_getfield(L, idx, "alpha") != LUA_TNIL) o->alpha = mm_number_opt(L, op, "alpha");
  if (lua_getfield(L, idx, "beta") != LUA_TNIL) o->beta = mm_number_opt(L, op, "beta");
  lua_pop(L, 4);
}

/* Pushes (or fills out_idx with) op(a) * op(b). */
static void do_mm(lua_State *L, int ia, int ib, int out_idx, const mm_opts *o, const char *op) {
  eg_tensor *a = eg_lua_checktensor(L, ia), *b = eg_lua_checktensor(L, ib);
  char b1[MAXSTR], b2[MAXSTR];
  if (a->ndim != 2 || b->ndim != 2)
    luaL_error(L, "%s: expected 2-D tensors, got %s * %s", op, shape_str(a, b1), shape_str(b, b2));
  if (out_idx) {
    eg_tensor *out = eg_lua_checktensor(L, out_idx);
    eg_lua_try(L, eg_mm(out, a, b, o->ta, o->tb, o->alpha, o->beta), "mm");
    lua_pushvalue(L, out_idx);
    return;
  }
  int64_t k = o->ta ? a->shape[0] : a->shape[1], k2 = o->tb ? b->shape[1] : b->shape[0];
  if (k != k2) /* before allocating the result */
    luaL_error(L, "%s: inner sizes differ (%s%s * %s%s)", op, shape_str(a, b1), o->ta ? "'" : "", shape_str(b, b2),
               o->tb ? "'" : "");
  int64_t shape[2] = {o->ta ? a->shape[1] : a->shape[0], o->tb ? b->shape[0] : b->shape[1]};
  eg_tensor *out = eg_lua_pushnew(L, 2, shape, op);
  eg_lua_try(L, eg_mm(out, a, b, o->ta, o->tb, o->alpha, 0.0f), "mm");
}

/* engram.mm(a, b [, out | {ta=, tb=, alpha=, beta=, out=}]) and a:mm(b [, opts]). */
static int tl_mm(lua_State *L) {
  mm_opts o;
  eg_tensor *out = eg_lua_totensor(L, 3);
  if (out) {
    read_mm_opts(L, 4, &o, "mm");
    do_mm(L, 1, 2, 3, &o, "mm");
    return 1;
  }
  read_mm_opts(L, 3, &o, "mm");
  if (!lua_isnoneornil(L, 3) && lua_getfield(L, 3, "out") != LUA_TNIL) {
    lua_replace(L, 3);
    eg_lua_checktensor(L, 3);
    do_mm(L, 1, 2, 3, &o, "mm");
    return 1;
  }
  if (o.beta != 0.0f) luaL_error(L, "mm: beta needs an out tensor to accumulate into");
  do_mm(L, 1, 2, 0, &o, "mm");
  return 1;
}

/* a:tmm(b) = a' * b; a:mmt(b) = a * b'. */
static int tl_tmm(lua_State *L) {
  mm_opts o = {1, 0, 1.0f, 0.0f, 0};
  do_mm(L, 1, 2, 0, &o, "tmm");
  return 1;
}
static int tl_mmt(lua_State *L) {
  mm_opts o = {0, 1, 1.0f, 0.0f, 0};
  do_mm(L, 1, 2, 0, &o, "mmt");
  return 1;
}

/* out:mm_(a, b [, {ta=, tb=, alpha=, beta=}]): out = alpha op(a) op(b) + beta out; returns out. */
static int tl_mm_(lua_State *L) {
  mm_opts o;
  eg_lua_checktensor(L, 1);
  read_mm_opts(L, 4, &o, "mm_");
  do_mm(L, 2, 3, 1, &o, "mm_");
  return 1;
}

static int tl_dot(lua_State *L) {
  eg_tensor *a = eg_lua_checktensor(L, 1), *b = eg_lua_checktensor(L, 2);
  double s;
  eg_lua_try(L, eg_dot(&s, a, b), "dot");
  lua_pushnumber(L, s);
  return 1;
}

/* -------------------------------------------------------------- reductions */

/* With no dimension: a Lua number (argmax/argmin: the 1-based flat position).
** With a dimension: a tensor without that dimension (kept with size 1 when
** the next argument is true); max/min also return the 1-based positions. */
static int reduce(lua_State *L, eg_redop op) {
  const char *name = eg_redop_name(op);
  eg_tensor *t = eg_lua_checktensor(L, 1);
  int is_arg = op == EG_ARGMAX || op == EG_ARGMIN;
  if (lua_isnoneornil(L, 2)) {
    double v;
    eg_lua_try(L, eg_reduce_all(&v, t, op), name);
    if (is_arg)
      lua_pushinteger(L, (lua_Integer)v + 1);
    else
      lua_pushnumber(L, v);
    return 1;
  }
  int d = eg_lua_checkdim(L, 2, t->ndim);
  int keep = lua_toboolean(L, 3);
  int64_t shape[EG_MAXDIM];
  int nd = 0;
  for (int i = 0; i < t->ndim; i++) {
    if (i != d)
      shape[nd++] = t->shape[i];
    else if (keep)
      shape[nd++] = 1;
  }
  eg_tensor *out = eg_lua_pushnew(L, nd, shape, name);
  eg_tensor *idx = NULL;
  if (op == EG_MAX || op == EG_MIN) idx = eg_lua_pushnew(L, nd, shape, name);
  eg_lua_try(L, eg_reduce(out, idx, t, d, op), name);
  if (is_arg) eg_lua_index_to_lua(L, out, name);
  if (idx) {
    eg_lua_index_to_lua(L, idx, name);
    return 2;
  }
  return 1;
}

static int tl_sum(lua_State *L) { return reduce(L, EG_SUM); }
static int tl_mean(lua_State *L) { return reduce(L, EG_MEAN); }
static int tl_max(lua_State *L) { return reduce(L, EG_MAX); }
static int tl_min(lua_State *L) { return reduce(L, EG_MIN); }
static int tl_argmax(lua_State *L) { return reduce(L, EG_ARGMAX); }
static int tl_argmin(lua_State *L) { return reduce(L, EG_ARGMIN); }
static int tl_prod(lua_State *L) { return reduce(L, EG_PROD); }
static int tl_norm(lua_State *L) { return reduce(L, EG_NORM2); }

/* equal(b): same shape and same values (NaN is never equal). */
static int tl_equal(lua_State *L) {
  eg_tensor *a = eg_lua_checktensor(L, 1), *b = eg_lua_checktensor(L, 2);
  if (!eg_same_shape(a, b)) {
    lua_pushboolean(L, 0);
    return 1;
  }
  if (eg_numel(a) == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  eg_tensor m = EG_TENSOR_INIT;
  double lo = 0;
  int st = eg_tensor_new(&m, a->ndim, a->shape);
  if (!st) st = eg_binary(&m, a, b, EG_EQ);
  if (!st) st = eg_reduce_all(&lo, &m, EG_MIN);
  eg_tensor_release(&m);
  if (st) eg_lua_fail(L, st, "equal");
  lua_pushboolean(L, lo == 1.0);
  return 1;
}

/* allclose(b[, tol]): same shape and |a - b| <= tol * (1 + |b|) everywhere
** (tol defaults to 1e-5; NaN is never close). */
static int tl_allclose(lua_State *L) {
  eg_tensor *a = eg_lua_checktensor(L, 1), *b = eg_lua_checktensor(L, 2);
  float tol = (float)luaL_optnumber(L, 3, 1e-5);
  if (!(tol >= 0)) luaL_error(L, "allclose: tolerance must be >= 0");
  if (!eg_same_shape(a, b)) {
    lua_pushboolean(L, 0);
    return 1;
  }
  if (eg_numel(a) == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  eg_tensor d = EG_TENSOR_INIT, bound = EG_TENSOR_INIT;
  double ok = 0;
  int st = eg_tensor_new(&d, a->ndim, a->shape);
  if (!st) st = eg_tensor_new(&bound, a->ndim, a->shape);
  if (!st) st = eg_binary(&d, a, b, EG_SUB);
  if (!st) st = eg_unary(&d, &d, EG_ABS);
  if (!st) st = eg_unary(&bound, b, EG_ABS);
  if (!st) st = eg_binary_scalar(&bound, &bound, 1.0f, EG_ADD, 0);
  if (!st) st = eg_binary_scalar(&bound, &bound, tol, EG_MUL, 0);
  if (!st) st = eg_binary(&d, &d, &bound, EG_LE);
  if (!st) st = eg_reduce_all(&ok, &d, EG_MIN);
  eg_tensor_release(&d);
  eg_tensor_release(&bound);
  if (st) eg_lua_fail(L, st, "allclose");
  lua_pushboolean(L, ok == 1.0);
  return 1;
}

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

static int m_tostring(lua_State *L) {
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
    /* arithmetic */
    {"add", tl_add}, {"add_", tl_add_}, {"sub", tl_sub}, {"sub_", tl_sub_}, {"mul", tl_mul}, {"mul_", tl_mul_},
    {"div", tl_div}, {"div_", tl_div_}, {"pow", tl_pow}, {"pow_", tl_pow_}, {"maximum", tl_maximum},
    {"maximum_", tl_maximum_}, {"minimum", tl_minimum}, {"minimum_", tl_minimum_}, {"clamp", tl_clamp},
    {"clamp_", tl_clamp_},
    {"neg", tl_neg}, {"neg_", tl_neg_}, {"exp", tl_exp}, {"exp_", tl_exp_}, {"log", tl_log}, {"log_", tl_log_},
    {"sqrt", tl_sqrt}, {"sqrt_", tl_sqrt_}, {"abs", tl_abs}, {"abs_", tl_abs_}, {"tanh", tl_tanh},
    {"tanh_", tl_tanh_}, {"sigmoid", tl_sigmoid}, {"sigmoid_", tl_sigmoid_}, {"relu", tl_relu},
    {"relu_", tl_relu_}, {"square", tl_square}, {"square_", tl_square_}, {"sign", tl_sign}, {"sign_", tl_sign_},
    {"floor", tl_floor}, {"floor_", tl_floor_}, {"ceil", tl_ceil}, {"ceil_", tl_ceil_}, {"round", tl_round},
    {"round_", tl_round_},
    /* comparisons (1/0 float masks) */
    {"eq", tl_eq}, {"ne", tl_ne}, {"lt", tl_lt}, {"le", tl_le}, {"gt", tl_gt}, {"ge", tl_ge},
    {"eq_", tl_eq_}, {"ne_", tl_ne_}, {"lt_", tl_lt_}, {"le_", tl_le_}, {"gt_", tl_gt_}, {"ge_", tl_ge_},
    {"equal", tl_equal}, {"allclose", tl_allclose},
    /* linear algebra */
    {"mm", tl_mm}, {"tmm", tl_tmm}, {"mmt", tl_mmt}, {"mm_", tl_mm_}, {"dot", tl_dot},
    /* reductions */
    {"sum", tl_sum}, {"mean", tl_mean}, {"max", tl_max}, {"min", tl_min}, {"argmax", tl_argmax},
    {"argmin", tl_argmin}, {"prod", tl_prod}, {"norm", tl_norm},
    {NULL, NULL}};

static const luaL_Reg metamethods[] = {
    {"__add", m_add},  {"__sub", m_sub}, {"__mul", m_mul}, {"__div", m_div}, {"__pow", m_pow},
    {"__unm", m_unm},  {"__len", tl_len}, {"__tostring", m_tostring}, {"__newindex", m_newindex},
    {"__gc", m_gc},    {"__close", m_gc}, {NULL, NULL}};

/* Module-level functions (engram.zeros, engram.mm, ...); the function forms
** of methods take the tensor first: engram.exp(t) == t:exp(). */
static const luaL_Reg functions[] = {
    {"tensor", tl_tensor}, {"zeros", tl_zeros}, {"ones", tl_ones}, {"full", tl_full}, {"arange", tl_arange},
    {"rand", tl_rand}, {"randn", tl_randn}, {"istensor", tl_istensor}, {"clock", tl_clock},
    {"mm", tl_mm}, {"dot", tl_dot}, {"add", tl_add}, {"sub", tl_sub}, {"mul", tl_mul}, {"div", tl_div},
    {"pow", tl_pow}, {"maximum", tl_maximum}, {"minimum", tl_minimum}, {"clamp", tl_clamp},
    {"exp", tl_exp}, {"log", tl_log}, {"sqrt", tl_sqrt}, {"abs", tl_abs}, {"tanh", tl_tanh},
    {"sigmoid", tl_sigmoid}, {"relu", tl_relu}, {"sign", tl_sign}, {"floor", tl_floor},
    {"sum", tl_sum}, {"mean", tl_mean}, {"max", tl_max}, {"min", tl_min}, {"argmax", tl_argmax},
    {"argmin", tl_argmin}, {"norm", tl_norm}, {"equal", tl_equal}, {"allclose", tl_allclose},
    {"clone", tl_clone}, {"index", tl_index}, {"cat", tl_cat},
    {NULL, NULL}};

void eg_lua_open_tensor(lua_State *L) {
  int mod = lua_gettop(L);
  luaL_newmetatable(L, EG_TENSOR_MT); /* sets __name */
  luaL_setfuncs(L, metamethods, 0);
  luaL_newlib(L, methods);
  lua_pushvalue(L, -1);
  lua_setfield(L, mod, "Tensor"); /* the methods table, so Lua code can add methods */
  lua_pushcclosure(L, m_index, 1);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  lua_pushvalue(L, mod);
  luaL_setfuncs(L, functions, 0);
  lua_pop(L, 1);
}
