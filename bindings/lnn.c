/*
** lnn.c — the layer kernels and parameter groups for lua/engram/nn.lua.
**
** The kernels are exposed as plain functions `nn_*` of engram.core taking the
** module's buffers: each call resizes its output buffers in place (no
** allocation once they are large enough: the batch only re-allocates when it
** grows) and runs one core kernel. These are the internals of engram.nn;
** recipes use the modules.
**
** Buffers are BORROWED: a module's output is overwritten by its next call,
** whoever else holds a view of it (unlike eg_tensor_resize, which refuses to
** clobber shared storage). That is what keeps a warm step allocation-free
** when a Flatten downstream still views the buffer.
**
** Also here: engram.core.param_group (the engram.ParamGroup userdata over
** eg_param_group), alloc_count, set_threads / get_threads.
*/
#include <string.h>

#include "lutil.h"
#include "nn.h"
#include "params.h"

#define EG_PG_MT "engram.ParamGroup"

/* Raises the core's message as is: it already names the layer ("linear: ..."). */
static int fail(lua_State *L) {
  lua_pushstring(L, eg_errmsg());
  return lua_error(L);
}
#define TRY(L, call)                 \
  do {                               \
    if ((call) != EG_OK) fail((L));  \
  } while (0)

/* Gives buffer t the shape, reusing its storage whenever it is large enough. */
static void buf_resize(lua_State *L, eg_tensor *t, int ndim, const int64_t *shape) {
  eg_lua_resize(L, t, ndim, shape, 1, "buffer");
}

static void buf_resize_as(lua_State *L, eg_tensor *t, const eg_tensor *like) {
  buf_resize(L, t, like->ndim, like->shape);
}

/* A tensor argument that may be empty (a buffer not sized yet). */
static eg_tensor *check_buf(lua_State *L, int idx) { return luaL_checkudata(L, idx, EG_TENSOR_MT); }

static eg_tensor *opt_tensor(lua_State *L, int idx) {
  return lua_toboolean(L, idx) ? check_buf(L, idx) : NULL;
}

static eg_tensor *check_nonempty(lua_State *L, int idx) { return eg_lua_checktensor(L, idx); }

/* nn_buffer(): a new empty tensor, to be sized by the kernels. */
static int l_buffer(lua_State *L) {
  eg_lua_newtensor(L);
  return 1;
}

/* nn_linear_forward(y, x, W, b|nil[, ws]) -> y; ws: a workspace buffer for small batches */
static int l_linear_forward(lua_State *L) {
  eg_tensor *y = check_buf(L, 1), *x = check_nonempty(L, 2), *W = check_nonempty(L, 3);
  eg_tensor *b = opt_tensor(L, 4), *ws = opt_tensor(L, 5);
  if (W->ndim == 2 && x->ndim >= 1 && x->shape[x->ndim - 1] == W->shape[1]) {
    int64_t sh[EG_MAXDIM];
    memcpy(sh, x->shape, sizeof sh);
    sh[x->ndim - 1] = W->shape[0];
    buf_resize(L, y, x->ndim, sh);
    int64_t rows = W->shape[1] ? eg_numel(x) / W->shape[1] : 0;
    int small = ws && rows > 0 && rows <= EG_LINEAR_FEW_ROWS;
    if (small && (!ws->storage || ws->storage->size - ws->offset < rows * W->shape[0])) {
      int64_t wsh[1] = {EG_LINEAR_FEW_ROWS * W->shape[0]}; /* once, for every small batch */
      buf_resize(L, ws, 1, wsh);
    }
  }
  TRY(L, eg_linear_forward_ws(y, ws && ws->storage ? ws : NULL, x, W, b));
  lua_settop(L, 1);
  return 1;
}

/* nn_linear_backward(gx|nil, gW|nil, gb|nil, gy, x, W) -> gx */
static int l_linear_backward(lua_State *L) {
  eg_tensor *gx = opt_tensor(L, 1), *gW = opt_tensor(L, 2), *gb = opt_tensor(L, 3);
  eg_tensor *gy = check_nonempty(L, 4), *x = check_nonempty(L, 5), *W = check_nonempty(L, 6);
  if (gx) buf_resize_as(L, gx, x);
  TRY(L, eg_linear_backward(gx, gW, gb, gy, x, W));
  lua_settop(L, 1);
  return 1;
}

/* nn_act_forward(y, x, kind, alpha) -> y; kind: 0 relu, 1 leaky_relu, 2 tanh, 3 sigmoid, 4 gelu */
static int l_act_forward(lua_State *L) {
  eg_tensor *y = check_buf(L, 1), *x = check_nonempty(L, 2);
  int kind = (int)luaL_checkinteger(L, 3);
  float alpha = (float)luaL_optnumber(L, 4, 0);
  luaL_argcheck(L, kind >= EG_ACT_RELU && kind <= EG_ACT_IDENTITY, 3, "unknown activation");
  if (y != x) buf_resize_as(L, y, x);
  TRY(L, eg_act_forward(y, x, (eg_act)kind, alpha));
  lua_settop(L, 1);
  return 1;
}

/* nn_act_backward(gx, gy, x|nil, y|nil, kind, alpha) -> gx */
static int l_act_backward(lua_State *L) {
  eg_tensor *gx = check_buf(L, 1), *gy = check_nonempty(L, 2);
  eg_tensor *x = opt_tensor(L, 3), *y = opt_tensor(L, 4);
  int kind = (int)luaL_checkinteger(L, 5);
  float alpha = (float)luaL_optnumber(L, 6, 0);
  luaL_argcheck(L, kind >= EG_ACT_RELU && kind <= EG_ACT_IDENTITY, 5, "unknown activation");
  if (gx != gy) buf_resize_as(L, gx, gy);
  TRY(L, eg_act_backward(gx, gy, x, y, (eg_act)kind, alpha));
  lua_settop(L, 1);
  return 1;
}

/* nn_softmax_forward(y, x, log) / nn_softmax_backward(gx, gy, y, log) */
static int l_softmax_forward(lua_State *L) {
  eg_tensor *y = check_buf(L, 1), *x = check_nonempty(L, 2);
  int lg = lua_toboolean(L, 3);
  buf_resize_as(L, y, x);
  TRY(L, lg ? eg_logsoftmax_forward(y, x) : eg_softmax_forward(y, x));
  lua_settop(L, 1);
  return 1;
}

static int l_softmax_backward(lua_State *L) {
  eg_tensor *gx = check_buf(L, 1), *gy = check_nonempty(L, 2), *y = check_nonempty(L, 3);
  int lg = lua_toboolean(L, 4);
  buf_resize_as(L, gx, y);
  TRY(L, lg ? eg_logsoftmax_backward(gx, gy, y) : eg_softmax_backward(gx, gy, y));
  lua_settop(L, 1);
  return 1;
}

/* nn_dropout_forward(y, mask, x, p, gen|nil) -> y */
static int l_dropout_forward(lua_State *L) {
  eg_tensor *y = check_buf(L, 1), *mask = check_buf(L, 2), *x = check_nonempty(L, 3);
  float p = (float)luaL_checknumber(L, 4);
  eg_rng *r = eg_lua_optrng(L, 5);
  buf_resize_as(L, y, x);
  buf_resize_as(L, mask, x);
  TRY(L, eg_dropout_forward(y, mask, x, r, p));
  lua_settop(L, 1);
  return 1;
}

/* nn_dropout_backward(gx, gy, mask) -> gx */
static int l_dropout_backward(lua_State *L) {
  eg_tensor *gx = check_buf(L, 1), *gy = check_nonempty(L, 2), *mask = check_nonempty(L, 3);
  buf_resize_as(L, gx, gy);
  TRY(L, eg_dropout_backward(gx, gy, mask));
  lua_settop(L, 1);
  return 1;
}

/* nn_layernorm_forward(y, mean, rstd, x, w, b|nil, eps) -> y */
static int l_layernorm_forward(lua_State *L) {
  eg_tensor *y = check_buf(L, 1), *mean = check_buf(L, 2), *rstd = check_buf(L, 3);
  eg_tensor *x = check_nonempty(L, 4), *w = check_nonempty(L, 5), *b = opt_tensor(L, 6);
  float eps = (float)luaL_checknumber(L, 7);
  if (x->ndim < 1) luaL_argerror(L, 4, "input must have at least 1 dimension");
  int64_t D = x->shape[x->ndim - 1], rows[1] = {D ? eg_numel(x) / D : 0};
  buf_resize_as(L, y, x);
  buf_resize(L, mean, 1, rows);
  buf_resize(L, rstd, 1, rows);
  TRY(L, eg_layernorm_forward(y, mean, rstd, x, w, b, eps));
  lua_settop(L, 1);
  return 1;
}

/* nn_layernorm_backward(gx|nil, gw|nil, gb|nil, gy, x, mean, rstd, w) -> gx */
static int l_layernorm_backward(lua_State *L) {
  eg_tensor *gx = opt_tensor(L, 1), *gw = opt_tensor(L, 2), *gb = opt_tensor(L, 3);
  eg_tensor *gy = check_nonempty(L, 4), *x = check_nonempty(L, 5), *mean = check_nonempty(L, 6),
            *rstd = check_nonempty(L, 7), *w = check_nonempty(L, 8);
  if (gx) buf_resize_as(L, gx, x);
  TRY(L, eg_layernorm_backward(gx, gw, gb, gy, x, mean, rstd, w));
  lua_settop(L, 1);
  return 1;
}

/* nn_conv2d_forward(y, cols, x, W, b|nil, stride, pad) -> y */
static int l_conv2d_forward(lua_State *L) {
  eg_tensor *y = check_buf(L, 1), *cols = check_buf(L, 2), *x = check_nonempty(L, 3),
            *W = check_nonempty(L, 4), *b = opt_tensor(L, 5);
  int stride = (int)luaL_checkinteger(L, 6), pad = (int)luaL_checkinteger(L, 7);
  if (x->ndim == 4 && W->ndim == 4 && stride >= 1 && pad >= 0 && x->shape[2] + 2 * pad >= W->shape[2] &&
      x->shape[3] + 2 * pad >= W->shape[3]) {
    int64_t Ho = eg_conv_out_size(x->shape[2], W->shape[2], stride, pad);
    int64_t Wo = eg_conv_out_size(x->shape[3], W->shape[3], stride, pad);
    int64_t sh[4] = {x->shape[0], W->shape[0], Ho, Wo};
    int64_t cs[2] = {W->shape[1] * W->shape[2] * W->shape[3], Ho * Wo};
    buf_resize(L, y, 4, sh);
    buf_resize(L, cols, 2, cs);
  }
  TRY(L, eg_conv2d_forward(y, cols, x, W, b, stride, pad));
  lua_settop(L, 1);
  return 1;
}

/* nn_conv2d_backward(gx|nil, gW|nil, gb|nil, cols, gy, x, W, stride, pad) -> gx */
static int l_conv2d_backward(lua_State *L) {
  eg_tensor *gx = opt_tensor(L, 1), *gW = opt_tensor(L, 2), *gb = opt_tensor(L, 3);
  eg_tensor *cols = check_nonempty(L, 4), *gy = check_nonempty(L, 5), *x = check_nonempty(L, 6),
            *W = check_nonempty(L, 7);
  int stride = (int)luaL_checkinteger(L, 8), pad = (int)luaL_checkinteger(L, 9);
  if (gx) buf_resize_as(L, gx, x);
  TRY(L, eg_conv2d_backward(gx, gW, gb, cols, gy, x, W, stride, pad));
  lua_settop(L, 1);
  return 1;
}

/* nn_maxpool2d_forward(y, idx, x, k, stride, pad) -> y */
static int l_maxpool2d_forward(lua_State *L) {
  eg_tensor *y = check_buf(L, 1), *idx = check_buf(L, 2), *x = check_nonempty(L, 3);
  int k = (int)luaL_checkinteger(L, 4), stride = (int)luaL_checkinteger(L, 5), pad = (int)luaL_checkinteger(L, 6);
  if (x->ndim == 4 && k >= 1 && stride >= 1 && pad >= 0 && x->shape[2] + 2 * pad >= k && x->shape[3] + 2 * pad >= k) {
    int64_t sh[4] = {x->shape[0], x->shape[1], eg_conv_out_size(x->shape[2], k, stride, pad),
                     eg_conv_out_size(x->shape[3], k, stride, pad)};
    buf_resize(L, y, 4, sh);
    buf_resize(L, idx, 4, sh);
  }
  TRY(L, eg_maxpool2d_forward(y, idx, x, k, stride, pad));
  lua_settop(L, 1);
  return 1;
}

/* nn_maxpool2d_backward(gx, gy, idx, x) -> gx */
static int l_maxpool2d_backward(lua_State *L) {
  eg_tensor *gx = check_buf(L, 1), *gy = check_nonempty(L, 2), *idx = check_nonempty(L, 3),
            *x = check_nonempty(L, 4);
  buf_resize_as(L, gx, x);
  TRY(L, eg_maxpool2d_backward(gx, gy, idx));
  lua_settop(L, 1);
  return 1;
}

/* nn_embedding_forward(y, ids, W) -> y */
static int l_embedding_forward(lua_State *L) {
  eg_tensor *y = check_buf(L, 1), *ids = check_nonempty(L, 2), *W = check_nonempty(L, 3);
  if (ids->ndim < EG_MAXDIM && W->ndim == 2) {
    int64_t sh[EG_MAXDIM];
    memcpy(sh, ids->shape, sizeof(int64_t) * (size_t)ids->ndim);
    sh[ids->ndim] = W->shape[1];
    buf_resize(L, y, ids->ndim + 1, sh);
  }
  TRY(L, eg_embedding_forward(y, ids, W));
  lua_settop(L, 1);
  return 1;
}

/* nn_embedding_backward(gW, gy, ids) */
static int l_embedding_backward(lua_State *L) {
  eg_tensor *gW = check_nonempty(L, 1), *gy = check_nonempty(L, 2), *ids = check_nonempty(L, 3);
  TRY(L, eg_embedding_backward(gW, gy, ids));
  return 0;
}

/* nn_flatten(dst, src) -> dst: dst views src as [size(1), rest]; 1-D src stays 1-D. */
static int l_flatten(lua_State *L) {
  eg_tensor *dst = check_buf(L, 1), *src = check_nonempty(L, 2);
  if (!eg_is_contiguous(src)) luaL_argerror(L, 2, "flatten: input must be contiguous");
  if (src->ndim <= 1) {
    eg_tensor_set(dst, src);
  } else {
    int64_t sh[2] = {src->shape[0], -1};
    if (src->shape[0] == 0) sh[1] = 0;
    TRY(L, eg_view(dst, src, 2, sh));
  }
  lua_settop(L, 1);
  return 1;
}

/* nn_view_as(dst, src, like) -> dst: dst views src with like's shape. */
static int l_view_as(lua_State *L) {
  eg_tensor *dst = check_buf(L, 1), *src = check_nonempty(L, 2), *like = check_buf(L, 3);
  TRY(L, eg_view(dst, src, like->ndim, like->shape));
  lua_settop(L, 1);
  return 1;
}

/* nn_copy(dst, src) -> dst: dst (a buffer) resized to src's shape and filled with it. */
static int l_copy(lua_State *L) {
  eg_tensor *dst = check_buf(L, 1), *src = check_nonempty(L, 2);
  if (dst != src) {
    buf_resize_as(L, dst, src);
    TRY(L, eg_copy(dst, src));
  }
  lua_settop(L, 1);
  return 1;
}

/* The joined shape of parts[0..n-1] along dim, or the error naming the branch that does not fit. */
static void concat_shape(lua_State *L, const eg_tensor **parts, int n, int dim, int *nd, int64_t *sh) {
  int bad;
  if (!eg_cat_shape(nd, sh, parts, n, dim, &bad)) return;
  if (bad < 0) fail(L);
  char a[96], b[96];
  luaL_error(L, "concat: branch %d output %s does not fit branch 1 output %s along dimension %d", bad + 1,
             eg_shape_str(parts[bad], a, sizeof a), eg_shape_str(parts[0], b, sizeof b), dim + 1);
}

/* nn_concat_forward(y, dim, t1, t2, ...) -> y: y = cat(t_i) along 1-based dim. */
static int l_concat_forward(lua_State *L) {
  eg_tensor *y = check_buf(L, 1);
  int top = lua_gettop(L), n = top - 2, nd;
  luaL_argcheck(L, top >= 3, 3, "concat: needs at least one tensor");
  const eg_tensor **parts = lua_newuserdatauv(L, sizeof *parts * (size_t)n, 0);
  parts[0] = check_nonempty(L, 3);
  int dim = eg_lua_checkdim(L, 2, parts[0]->ndim);
  int64_t sh[EG_MAXDIM];
  for (int i = 1; i < n; i++) {
    parts[i] = eg_lua_totensor(L, i + 3);
    if (!parts[i]) { /* in branch order: a misfit before it is reported first */
      concat_shape(L, parts, i, dim, &nd, sh);
      check_nonempty(L, i + 3);
    }
  }
  concat_shape(L, parts, n, dim, &nd, sh);
  buf_resize(L, y, nd, sh);
  TRY(L, eg_cat(y, parts, n, dim));
  lua_settop(L, 1);
  return 1;
}

/* nn_narrow_copy(dst, src, dim, start, len) -> dst: dst = copy of src narrowed
** along 1-based dim from 1-based start (the gradient slice of one branch). */
static int l_narrow_copy(lua_State *L) {
  eg_tensor *dst = check_buf(L, 1), *src = check_nonempty(L, 2);
  int dim = eg_lua_checkdim(L, 3, src->ndim);
  int64_t start = (int64_t)luaL_checkinteger(L, 4) - 1, len = (int64_t)luaL_checkinteger(L, 5);
  eg_tensor part = EG_TENSOR_INIT;
  TRY(L, eg_narrow(&part, src, dim, start, len));
  buf_resize_as(L, dst, &part);
  int st = eg_copy(dst, &part);
  eg_tensor_release(&part);
  if (st) fail(L);
  lua_settop(L, 1);
  return 1;
}

/* nn_init_uniform(t, lo, hi, gen|nil): fills t in place (weights at build). */
static int l_init_uniform(lua_State *L) {
  eg_tensor *t = check_nonempty(L, 1);
  float lo = (float)luaL_checknumber(L, 2), hi = (float)luaL_checknumber(L, 3);
  eg_rng *r = eg_lua_optrng(L, 4);
  TRY(L, eg_fill_uniform(t, r, lo, hi));
  return 0;
}

/* nn_init_normal(t, mean, std, gen|nil): fills t in place (Embedding weights). */
static int l_init_normal(lua_State *L) {
  eg_tensor *t = check_nonempty(L, 1);
  float mean = (float)luaL_checknumber(L, 2), std = (float)luaL_checknumber(L, 3);
  eg_rng *r = eg_lua_optrng(L, 4);
  TRY(L, eg_fill_normal(t, r, mean, std));
  return 0;
}

/* nn_reshape(dst, src, shape) -> dst: dst views src as {size(1) of src, shape...}
** (the batch dimension is kept; shape is the per-sample shape). */
static int l_reshape(lua_State *L) {
  eg_tensor *dst = check_buf(L, 1), *src = check_nonempty(L, 2);
  luaL_checktype(L, 3, LUA_TTABLE);
  int n = (int)lua_rawlen(L, 3);
  luaL_argcheck(L, n >= 1 && n < EG_MAXDIM, 3, "reshape: 1 to 7 sizes");
  int64_t sh[EG_MAXDIM];
  sh[0] = src->ndim ? src->shape[0] : 1;
  for (int i = 1; i <= n; i++) {
    lua_rawgeti(L, 3, i);
    sh[i] = (int64_t)luaL_checkinteger(L, -1);
    lua_pop(L, 1);
  }
  TRY(L, eg_view(dst, src, n + 1, sh));
  lua_settop(L, 1);
  return 1;
}

/* nn_axpy(y, alpha, x): y += alpha x in place (plain SGD in tests and benches). */
static int l_axpy(lua_State *L) {
  eg_tensor *y = check_nonempty(L, 1);
  float a = (float)luaL_checknumber(L, 2);
  eg_tensor *x = check_nonempty(L, 3);
  TRY(L, eg_axpy(y, a, x));
  return 0;
}

static int l_alloc_count(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)eg_alloc_count());
  return 1;
}

static int l_set_threads(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  luaL_argcheck(L, n >= 1 && n <= 1024, 1, "thread count out of range");
  eg_set_threads((int)n);
  return 0;
}

static int l_get_threads(lua_State *L) {
  lua_pushinteger(L, eg_get_threads());
  return 1;
}

/* ------------------------------------------------------- engram.ParamGroup */

typedef struct {
  eg_param_group *g;
} pgroup;

static pgroup *check_pg(lua_State *L, int idx) {
  pgroup *p = luaL_checkudata(L, idx, EG_PG_MT);
  if (!p->g) luaL_error(L, "attempt to use a released parameter group");
  return p;
}

/* param_group(name) */
static int l_param_group(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  pgroup *p = lua_newuserdatauv(L, sizeof *p, 0);
  p->g = NULL;
  luaL_setmetatable(L, EG_PG_MT);
  TRY(L, eg_params_new(&p->g, name));
  return 1;
}

/* pg:declare(name, shape) -> 1-based index */
static int pg_declare(lua_State *L) {
  pgroup *p = check_pg(L, 1);
  const char *name = luaL_checkstring(L, 2);
  int64_t sh[EG_MAXDIM];
  int nd = eg_lua_checkshape(L, 3, sh, "declare");
  int idx = 0;
  TRY(L, eg_params_declare(p->g, name, nd, sh, &idx));
  lua_pushinteger(L, idx + 1);
  return 1;
}

static int pg_build(lua_State *L) {
  pgroup *p = check_pg(L, 1);
  TRY(L, eg_params_build(p->g));
  eg_lua_account(L, (size_t)eg_params_numel(p->g) * 2 * sizeof(float));
  lua_settop(L, 1);
  return 1;
}

static int pg_built(lua_State *L) {
  lua_pushboolean(L, eg_params_built(check_pg(L, 1)->g));
  return 1;
}

static int pg_name(lua_State *L) {
  lua_pushstring(L, eg_params_name(check_pg(L, 1)->g));
  return 1;
}

static int pg_count(lua_State *L) {
  lua_pushinteger(L, eg_params_count(check_pg(L, 1)->g));
  return 1;
}

static int pg_numel(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)eg_params_numel(check_pg(L, 1)->g));
  return 1;
}

/* pg:info(i) -> name, shape table, offset (0-based, in floats, into the arena) */
static int pg_info(lua_State *L) {
  pgroup *p = check_pg(L, 1);
  int64_t i = eg_lua_checkindex(L, 2, eg_params_count(p->g), "entry");
  int nd;
  int64_t sh[EG_MAXDIM], off = 0;
  lua_pushstring(L, eg_params_entry_info(p->g, (int)i, &nd, sh, &off));
  lua_createtable(L, nd, 0);
  for (int d = 0; d < nd; d++) {
    lua_pushinteger(L, (lua_Integer)sh[d]);
    lua_rawseti(L, -2, d + 1);
  }
  lua_pushinteger(L, (lua_Integer)off);
  return 3;
}

/* pg:entry(i) -> value view, grad view */
static int pg_entry(lua_State *L) {
  pgroup *p = check_pg(L, 1);
  int64_t i = eg_lua_checkindex(L, 2, eg_params_count(p->g), "entry");
  eg_tensor *v = eg_lua_newtensor(L), *g = eg_lua_newtensor(L);
  TRY(L, eg_params_entry(p->g, (int)i, v, g));
  return 2;
}

/* pg:flat() -> params view, grads view */
static int pg_flat(lua_State *L) {
  pgroup *p = check_pg(L, 1);
  eg_tensor *v = eg_lua_newtensor(L), *g = eg_lua_newtensor(L);
  TRY(L, eg_params_flat(p->g, v, g));
  return 2;
}

static int pg_zero_grad(lua_State *L) {
  TRY(L, eg_params_zero_grad(check_pg(L, 1)->g));
  return 0;
}

/* pg:frozen([flag]) -> flag */
static int pg_frozen(lua_State *L) {
  pgroup *p = check_pg(L, 1);
  if (!lua_isnoneornil(L, 2)) eg_params_set_frozen(p->g, lua_toboolean(L, 2));
  lua_pushboolean(L, eg_params_frozen(p->g));
  return 1;
}

/* pg:copy_from(src): values of src into pg (same layout). */
static int pg_copy_from(lua_State *L) {
  pgroup *p = check_pg(L, 1), *s = check_pg(L, 2);
  TRY(L, eg_params_copy(p->g, s->g));
  return 0;
}

static int pg_gc(lua_State *L) {
  pgroup *p = luaL_checkudata(L, 1, EG_PG_MT);
  eg_params_free(p->g); /* views handed out keep the arena itself alive */
  p->g = NULL;
  return 0;
}

static int pg_tostring(lua_State *L) {
  pgroup *p = luaL_checkudata(L, 1, EG_PG_MT);
  if (!p->g)
    lua_pushliteral(L, "ParamGroup (released)");
  else
    lua_pushfstring(L, "ParamGroup '%s' (%d entries, %d parameters%s)", eg_params_name(p->g), eg_params_count(p->g),
                    (int)eg_params_numel(p->g), eg_params_built(p->g) ? "" : ", not built");
  return 1;
}

static const luaL_Reg pg_methods[] = {
    {"declare", pg_declare}, {"build", pg_build}, {"built", pg_built}, {"name", pg_name},
    {"count", pg_count},     {"numel", pg_numel}, {"info", pg_info},   {"entry", pg_entry},
    {"flat", pg_flat},       {"zero_grad", pg_zero_grad}, {"frozen", pg_frozen}, {"copy_from", pg_copy_from},
    {NULL, NULL}};

static const luaL_Reg pg_meta[] = {{"__gc", pg_gc}, {"__close", pg_gc}, {"__tostring", pg_tostring}, {NULL, NULL}};

static const luaL_Reg functions[] = {
    {"nn_buffer", l_buffer},
    {"nn_linear_forward", l_linear_forward},
    {"nn_linear_backward", l_linear_backward},
    {"nn_act_forward", l_act_forward},
    {"nn_act_backward", l_act_backward},
    {"nn_softmax_forward", l_softmax_forward},
    {"nn_softmax_backward", l_softmax_backward},
    {"nn_dropout_forward", l_dropout_forward},
    {"nn_dropout_backward", l_dropout_backward},
    {"nn_layernorm_forward", l_layernorm_forward},
    {"nn_layernorm_backward", l_layernorm_backward},
    {"nn_conv2d_forward", l_conv2d_forward},
    {"nn_conv2d_backward", l_conv2d_backward},
    {"nn_maxpool2d_forward", l_maxpool2d_forward},
    {"nn_maxpool2d_backward", l_maxpool2d_backward},
    {"nn_embedding_forward", l_embedding_forward},
    {"nn_embedding_backward", l_embedding_backward},
    {"nn_flatten", l_flatten},
    {"nn_view_as", l_view_as},
    {"nn_copy", l_copy},
    {"nn_concat_forward", l_concat_forward},
    {"nn_narrow_copy", l_narrow_copy},
    {"nn_init_uniform", l_init_uniform},
    {"nn_axpy", l_axpy},
    {"nn_init_normal", l_init_normal},
    {"nn_reshape", l_reshape},
    {"param_group", l_param_group},
    {"alloc_count", l_alloc_count},
    {"set_threads", l_set_threads},
    {"get_threads", l_get_threads},
    {NULL, NULL}};

void eg_lua_open_nn(lua_State *L) {
  if (luaL_newmetatable(L, EG_PG_MT)) {
    luaL_setfuncs(L, pg_meta, 0);
    luaL_newlib(L, pg_methods);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  luaL_setfuncs(L, functions, 0);
}
