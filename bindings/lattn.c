/*
** lattn.c — engram.core's transformer kernels for lua/engram/nn/transformer.lua:
** causal self-attention (attn.h) and the element-wise sum of residual
** connections. Like lnn.c, each call sizes its output buffers in place (no
** allocation once they are large enough) and runs one core kernel; buffers
** are borrowed (see lnn.c).
*/
#include <string.h>

#include "attn.h"
#include "lutil.h"
#include "rng.h"

/* Raises the core's message as is: it already names the operation ("attention: ..."). */
static void try_(lua_State *L, int st) {
  if (st != EG_OK) {
    lua_pushstring(L, eg_errmsg());
    lua_error(L);
  }
}

static eg_tensor *check_buf(lua_State *L, int idx) { return luaL_checkudata(L, idx, EG_TENSOR_MT); }

static void buf_resize(lua_State *L, eg_tensor *t, int ndim, const int64_t *shape) {
  eg_lua_resize(L, t, ndim, shape, 1, "buffer");
}

/* nn_attn_forward(y, att, qkv, T, heads) -> y; att: [N, heads, T, T] probabilities */
static int l_attn_forward(lua_State *L) {
  eg_tensor *y = check_buf(L, 1), *att = check_buf(L, 2), *qkv = eg_lua_checktensor(L, 3);
  lua_Integer T = luaL_checkinteger(L, 4), H = luaL_checkinteger(L, 5);
  int64_t cols = qkv->ndim >= 2 ? qkv->shape[qkv->ndim - 1] : 0, rows = cols ? eg_numel(qkv) / cols : 0;
  if (cols > 0 && T >= 1 && H >= 1 && rows % T == 0 && cols % (3 * H) == 0) {
    int64_t ys[EG_MAXDIM], as[4] = {rows / T, H, T, T};
    memcpy(ys, qkv->shape, sizeof ys);
    ys[qkv->ndim - 1] = cols / 3;
    buf_resize(L, y, qkv->ndim, ys);
    buf_resize(L, att, 4, as);
  }
  try_(L, eg_attn_forward(y, att, qkv, T, H));
  lua_settop(L, 1);
  return 1;
}

/* nn_attn_backward(gqkv, scratch, gy, qkv, att, T, heads) -> gqkv */
static int l_attn_backward(lua_State *L) {
  eg_tensor *gqkv = check_buf(L, 1), *scratch = check_buf(L, 2), *gy = eg_lua_checktensor(L, 3);
  eg_tensor *qkv = eg_lua_checktensor(L, 4), *att = eg_lua_checktensor(L, 5);
  lua_Integer T = luaL_checkinteger(L, 6), H = luaL_checkinteger(L, 7);
  buf_resize(L, gqkv, qkv->ndim, qkv->shape);
  if (T >= 1 && T <= (1 << 20)) { /* one T x T per thread the kernel may use */
    int k = eg_get_threads();
    int64_t ss[3] = {k < 1 ? 1 : (k > 8 ? 8 : k), T, T};
    buf_resize(L, scratch, 3, ss);
  }
  try_(L, eg_attn_backward(gqkv, scratch, gy, qkv, att, T, H));
  lua_settop(L, 1);
  return 1;
}

/* nn_attn_entropy(ent, att) -> ent [heads, T]: each row's entropy summed over the sequences (attn.h). */
static int l_attn_entropy(lua_State *L) {
  eg_tensor *ent = check_buf(L, 1), *att = eg_lua_checktensor(L, 2);
  if (att->ndim == 4) {
    int64_t es[2] = {att->shape[1], att->shape[2]};
    buf_resize(L, ent, 2, es);
  }
  try_(L, eg_attn_entropy(ent, att));
  lua_settop(L, 1);
  return 1;
}

/* nn_add(y, a, b) -> y: y = a + b, y sized as a (b of a's shape or broadcast to it). */
static int l_add(lua_State *L) {
  eg_tensor *y = check_buf(L, 1), *a = eg_lua_checktensor(L, 2), *b = eg_lua_checktensor(L, 3);
  if (y != a && y != b) buf_resize(L, y, a->ndim, a->shape);
  try_(L, eg_binary(y, a, b, EG_ADD));
  lua_settop(L, 1);
  return 1;
}

/* nn_view_rows(dst, src, cols) -> dst: dst views src (contiguous) as [numel/cols, cols]. */
static int l_view_rows(lua_State *L) {
  eg_tensor *dst = check_buf(L, 1), *src = eg_lua_checktensor(L, 2);
  lua_Integer cols = luaL_checkinteger(L, 3);
  luaL_argcheck(L, cols >= 1 && eg_numel(src) % cols == 0, 3, "view_rows: width does not divide the elements");
  int64_t sh[2] = {-1, cols};
  try_(L, eg_view(dst, src, 2, sh));
  lua_settop(L, 1);
  return 1;
}

static const luaL_Reg functions[] = {{"nn_view_rows", l_view_rows},
    {"nn_attn_forward", l_attn_forward}, {"nn_attn_backward", l_attn_backward}, {"nn_add", l_add},
    {"nn_attn_entropy", l_attn_entropy}, {NULL, NULL}};

void eg_lua_open_attn(lua_State *L) { luaL_setfuncs(L, functions, 0); }
