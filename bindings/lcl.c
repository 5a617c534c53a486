/*
** lcl.c — continual-learning primitives for lua/engram/cl.lua: importance
** accumulation, the quadratic penalty, and engram.Memory, the replay memory
** userdata over eg_memory (samples live in C memory, never in Lua tables).
**
** Memory:sample returns BORROWED buffers: the same tensors are refilled by
** the next sample of the same size (clone to keep a batch). They are held as
** the userdata's user values, so a warm sample call allocates nothing.
*/
#include <string.h>

#include "cl.h"
#include "lutil.h"

#define EG_MEMORY_MT "engram.Memory"

static eg_tensor *opt_tensor(lua_State *L, int idx) {
  return lua_isnoneornil(L, idx) ? NULL : eg_lua_checktensor(L, idx);
}

/* sq_accumulate(F, g, scale): F += scale * g^2 */
static int l_sq_accumulate(lua_State *L) {
  eg_tensor *F = eg_lua_checktensor(L, 1), *g = eg_lua_checktensor(L, 2);
  eg_lua_try(L, eg_sq_accumulate(F, g, (float)luaL_optnumber(L, 3, 1)), "sq_accumulate");
  return 0;
}

/* linear_sq_grad_accumulate(FW, Fb|nil, delta, x, scale) */
static int l_linear_sq(lua_State *L) {
  eg_tensor *FW = eg_lua_checktensor(L, 1), *Fb = opt_tensor(L, 2);
  eg_tensor *d = eg_lua_checktensor(L, 3), *x = eg_lua_checktensor(L, 4);
  eg_lua_try(L, eg_linear_sq_grad_accumulate(FW, Fb, d, x, (float)luaL_optnumber(L, 5, 1)),
             "linear_sq_grad_accumulate");
  return 0;
}

/* linear_abs_grad_accumulate(FW, Fb|nil, delta, x, scale) */
static int l_linear_abs(lua_State *L) {
  eg_tensor *FW = eg_lua_checktensor(L, 1), *Fb = opt_tensor(L, 2);
  eg_tensor *d = eg_lua_checktensor(L, 3), *x = eg_lua_checktensor(L, 4);
  eg_lua_try(L, eg_linear_abs_grad_accumulate(FW, Fb, d, x, (float)luaL_optnumber(L, 5, 1)),
             "linear_abs_grad_accumulate");
  return 0;
}

/* conv2d_h_grad_accumulate(FW, Fb|nil, delta, x, stride, padding, scale, absolute) */
static int l_conv2d_h(lua_State *L) {
  eg_tensor *FW = eg_lua_checktensor(L, 1), *Fb = opt_tensor(L, 2);
  eg_tensor *d = eg_lua_checktensor(L, 3), *x = eg_lua_checktensor(L, 4);
  lua_Integer stride = luaL_checkinteger(L, 5), pad = luaL_checkinteger(L, 6);
  luaL_argcheck(L, stride >= 1 && stride <= 1 << 20, 5, "stride out of range");
  luaL_argcheck(L, pad >= 0 && pad <= 1 << 20, 6, "padding out of range");
  eg_lua_try(L, eg_conv2d_h_grad_accumulate(FW, Fb, d, x, (int)stride, (int)pad, (float)luaL_checknumber(L, 7),
                                            lua_toboolean(L, 8), NULL),
             "conv2d_h_grad_accumulate");
  return 0;
}

/* layernorm_h_grad_accumulate(Fw, Fb|nil, delta, x, mean, rstd, scale, absolute) */
static int l_layernorm_h(lua_State *L) {
  eg_tensor *Fw = eg_lua_checktensor(L, 1), *Fb = opt_tensor(L, 2);
  eg_tensor *d = eg_lua_checktensor(L, 3), *x = eg_lua_checktensor(L, 4);
  eg_tensor *mean = eg_lua_checktensor(L, 5), *rstd = eg_lua_checktensor(L, 6);
  eg_lua_try(L, eg_layernorm_h_grad_accumulate(Fw, Fb, d, x, mean, rstd, (float)luaL_checknumber(L, 7),
                                               lua_toboolean(L, 8)),
             "layernorm_h_grad_accumulate");
  return 0;
}

/* embedding_h_grad_accumulate(FW, delta, ids, scale, absolute) */
static int l_embedding_h(lua_State *L) {
  eg_tensor *FW = eg_lua_checktensor(L, 1), *d = eg_lua_checktensor(L, 2), *ids = eg_lua_checktensor(L, 3);
  eg_lua_try(L, eg_embedding_h_grad_accumulate(FW, d, ids, (float)luaL_checknumber(L, 4), lua_toboolean(L, 5)),
             "embedding_h_grad_accumulate");
  return 0;
}

/* abs_accumulate(F, g, scale): F += scale * |g| */
static int l_abs_accumulate(lua_State *L) {
  eg_tensor *F = eg_lua_checktensor(L, 1), *g = eg_lua_checktensor(L, 2);
  eg_lua_try(L, eg_abs_accumulate(F, g, (float)luaL_optnumber(L, 3, 1)), "abs_accumulate");
  return 0;
}

/* sample_labels(labels, logits, mask|nil [, gen]) */
static int l_sample_labels(lua_State *L) {
  eg_tensor *y = eg_lua_checktensor(L, 1), *z = eg_lua_checktensor(L, 2), *m = opt_tensor(L, 3);
  eg_lua_try(L, eg_sample_labels(y, z, m, eg_lua_optrng(L, 4)), "sample_labels");
  return 0;
}

/* si_accumulate(omega, prev, g, pg|nil, theta): omega -= (g - pg) (theta - prev); prev = theta */
static int l_si_accumulate(lua_State *L) {
  eg_tensor *w = eg_lua_checktensor(L, 1), *p = eg_lua_checktensor(L, 2);
  eg_tensor *g = eg_lua_checktensor(L, 3), *pg = opt_tensor(L, 4), *t = eg_lua_checktensor(L, 5);
  eg_lua_try(L, eg_si_accumulate(w, p, g, pg, t), "si_accumulate");
  return 0;
}

/* si_consolidate(Omega, omega, start, theta, xi) */
static int l_si_consolidate(lua_State *L) {
  eg_tensor *W = eg_lua_checktensor(L, 1), *w = eg_lua_checktensor(L, 2);
  eg_tensor *s0 = eg_lua_checktensor(L, 3), *t = eg_lua_checktensor(L, 4);
  eg_lua_try(L, eg_si_consolidate(W, w, s0, t, (float)luaL_checknumber(L, 5)), "si_consolidate");
  return 0;
}

/* decay_accumulate(F, Fnew, gamma): F = gamma F + Fnew */
static int l_decay_accumulate(lua_State *L) {
  eg_tensor *F = eg_lua_checktensor(L, 1), *Fn = eg_lua_checktensor(L, 2);
  eg_lua_try(L, eg_decay_accumulate(F, Fn, (float)luaL_checknumber(L, 3)), "decay_accumulate");
  return 0;
}

/* quad_penalty(theta, anchor, F, lambda [, grad]) -> (lambda/2) sum F (theta-anchor)^2; grad += */
static int l_quad_penalty(lua_State *L) {
  eg_tensor *th = eg_lua_checktensor(L, 1), *an = eg_lua_checktensor(L, 2), *F = eg_lua_checktensor(L, 3);
  double lambda = luaL_checknumber(L, 4), v;
  eg_lua_try(L, eg_quad_penalty(&v, opt_tensor(L, 5), th, an, F, lambda), "quad_penalty");
  lua_pushnumber(L, v);
  return 1;
}

/* quad_penalty_folded(theta, A, B, C, lambda [, grad]) -> value */
static int l_quad_penalty_folded(lua_State *L) {
  eg_tensor *th = eg_lua_checktensor(L, 1), *A = eg_lua_checktensor(L, 2), *B = eg_lua_checktensor(L, 3);
  double C = luaL_checknumber(L, 4), lambda = luaL_checknumber(L, 5), v;
  eg_lua_try(L, eg_quad_penalty_folded(&v, opt_tensor(L, 6), th, A, B, C, lambda), "quad_penalty_folded");
  lua_pushnumber(L, v);
  return 1;
}

/* quad_fold(A, B, C, F, anchor) -> C: A += F, B += F anchor, returns C + sum F anchor^2 */
static int l_quad_fold(lua_State *L) {
  eg_tensor *A = eg_lua_checktensor(L, 1), *B = eg_lua_checktensor(L, 2);
  double C = luaL_checknumber(L, 3);
  eg_tensor *F = eg_lua_checktensor(L, 4), *an = eg_lua_checktensor(L, 5);
  eg_lua_try(L, eg_quad_fold(A, B, &C, F, an), "quad_fold");
  lua_pushnumber(L, C);
  return 1;
}

/* herding(features [n, d], m) -> a tensor of m 1-based row indices, in order of choice */
static int l_herding(lua_State *L) {
  eg_tensor *F = eg_lua_checktensor(L, 1);
  lua_Integer m = luaL_checkinteger(L, 2);
  luaL_argcheck(L, m >= 0 && (F->ndim < 1 || m <= F->shape[0]), 2, "herding: more exemplars than samples");
  int64_t sh[1] = {(int64_t)m};
  int64_t *idx = lua_newuserdatauv(L, sizeof(int64_t) * (size_t)(m > 0 ? m : 1), 0);
  eg_lua_try(L, eg_herding(idx, F, (int64_t)m), "herding");
  eg_tensor *out = eg_lua_pushnew(L, 1, sh, "herding");
  for (lua_Integer i = 0; i < m; i++) eg_data(out)[i] = (float)(idx[i] + 1);
  return 1;
}

static const char *const POLICIES[] = {"reservoir", "balanced", "score", NULL};

/* The 256 levels of a uint8 memory from a tensor [256] at idx. */
static void check_levels(lua_State *L, int idx, float *levels) {
  eg_tensor *lv = eg_lua_checktensor(L, idx);
  luaL_argcheck(L, eg_numel(lv) == 256 && eg_is_contiguous(lv), idx, "levels must be a contiguous tensor of 256 values");
  memcpy(levels, eg_data(lv), sizeof(float) * 256);
}

/* on_levels(x, levels [256]) -> true when every value of x is one of the levels */
static int l_on_levels(lua_State *L) {
  eg_tensor *x = eg_lua_checktensor(L, 1);
  float levels[256];
  check_levels(L, 2, levels);
  int all;
  eg_lua_try(L, eg_on_levels(x, levels, &all), "on_levels");
  lua_pushboolean(L, all);
  return 1;
}

/* sample_losses(logits [B, C], labels [B]) -> a new tensor [B] of each sample's cross-entropy */
static int l_sample_losses(lua_State *L) {
  eg_tensor *z = eg_lua_checktensor(L, 1), *y = eg_lua_checktensor(L, 2);
  int64_t sh[1] = {z->ndim >= 1 ? z->shape[0] : 0};
  eg_tensor *out = eg_lua_pushnew(L, 1, sh, "sample_losses");
  eg_lua_try(L, eg_sample_losses(out, z, y), "sample_losses");
  return 1;
}

/* ---- engram.Memory ---- */

typedef struct {
  eg_memory *m;
  int ndim; /* the shape of one sample, from the last add (default {dim}) */
  int64_t shape[EG_MAXDIM];
} lmemory;

enum { UV_X = 1, UV_Y, UV_TASK, UV_LOGITS, UV_COUNT = UV_LOGITS };

static lmemory *check_mem(lua_State *L) {
  lmemory *lm = luaL_checkudata(L, 1, EG_MEMORY_MT);
  if (!lm->m) luaL_error(L, "attempt to use a closed memory");
  return lm;
}

/* memory(capacity, dim [, logits_dim [, policy [, per_class [, levels]]]]):
** policy a name of POLICIES or a boolean (true: balanced); capacity 0 with
** per_class > 0; levels a tensor [256] for uint8 storage. */
static int l_memory(lua_State *L) {
  lua_Integer cap = luaL_checkinteger(L, 1), dim = luaL_checkinteger(L, 2);
  lua_Integer k = luaL_optinteger(L, 3, 0), per_class = luaL_optinteger(L, 5, 0);
  int policy = lua_type(L, 4) == LUA_TSTRING ? luaL_checkoption(L, 4, NULL, POLICIES)
                                              : (lua_toboolean(L, 4) ? EG_MEMORY_BALANCED : EG_MEMORY_RESERVOIR);
  float levels[256];
  int u8 = !lua_isnoneornil(L, 6);
  if (u8) check_levels(L, 6, levels);
  lmemory *lm = lua_newuserdatauv(L, sizeof *lm, UV_COUNT);
  memset(lm, 0, sizeof *lm);
  luaL_setmetatable(L, EG_MEMORY_MT);
  eg_memory_config c = {(int64_t)cap, (int64_t)per_class, (int64_t)dim, (int64_t)k, policy, u8 ? levels : NULL};
  eg_lua_try(L, eg_memory_create(&lm->m, &c), "memory");
  lm->ndim = 1;
  lm->shape[0] = (int64_t)dim;
  eg_lua_account(L, eg_memory_bytes(lm->m));
  return 1;
}

/* Remembers the sample shape of x [n, ...], so samples come back as they went in. */
static void keep_shape(lmemory *lm, const eg_tensor *x) {
  if (x->ndim < 2) return;
  lm->ndim = x->ndim - 1;
  memcpy(lm->shape, x->shape + 1, sizeof(int64_t) * (size_t)lm->ndim);
}

/* mem:add(x, y [, task [, logits [, gen [, weights [, scores]]]]]) -> mem */
static int m_add(lua_State *L) {
  lmemory *lm = check_mem(L);
  eg_tensor *x = eg_lua_checktensor(L, 2), *y = eg_lua_checktensor(L, 3);
  lua_Integer task = luaL_optinteger(L, 4, 0);
  eg_tensor *lg = opt_tensor(L, 5), *w = opt_tensor(L, 7), *sc = opt_tensor(L, 8);
  size_t before = eg_memory_bytes(lm->m);
  eg_lua_try(L, eg_memory_add(lm->m, x, y, lg, w, sc, (int64_t)task, eg_lua_optrng(L, 6)), "memory_add");
  if (eg_memory_bytes(lm->m) > before) eg_lua_account(L, eg_memory_bytes(lm->m) - before);
  keep_shape(lm, x);
  lua_settop(L, 1);
  return 1;
}

/* mem:load(x, y [, task [, logits [, seen [, weights [, scores]]]]]) -> mem:
** replaces the contents (restoring a checkpoint); seen defaults to the
** number of samples. */
static int m_load(lua_State *L) {
  lmemory *lm = check_mem(L);
  eg_tensor *x = eg_lua_checktensor(L, 2), *y = eg_lua_checktensor(L, 3);
  eg_tensor *task = opt_tensor(L, 4), *lg = opt_tensor(L, 5), *w = opt_tensor(L, 7), *sc = opt_tensor(L, 8);
  lua_Integer seen = luaL_optinteger(L, 6, x->ndim >= 1 ? (lua_Integer)x->shape[0] : 0);
  eg_lua_try(L, eg_memory_restore(lm->m, x, y, lg, task, w, sc, (int64_t)seen), "memory_load");
  keep_shape(lm, x);
  lua_settop(L, 1);
  return 1;
}

/* mem:<setter>(t [size]) -> mem, through set(m, t) */
static int set_from(lua_State *L, int (*set)(eg_memory *, const eg_tensor *), const char *op) {
  lmemory *lm = check_mem(L);
  eg_lua_try(L, set(lm->m, eg_lua_checktensor(L, 2)), op);
  lua_settop(L, 1);
  return 1;
}

/* mem:set_weights(w [size]) -> mem */
static int m_set_weights(lua_State *L) { return set_from(L, eg_memory_set_weights, "memory_set_weights"); }

/* mem:state_extra() -> order [size] (0-based slots), scores [size] or nil */
static int m_state_extra(lua_State *L) {
  lmemory *lm = check_mem(L);
  int64_t sh[1] = {eg_memory_size(lm->m)};
  eg_tensor *order = eg_lua_pushnew(L, 1, sh, "memory_state");
  eg_tensor *sc = NULL;
  if (eg_memory_policy(lm->m) == EG_MEMORY_SCORE) sc = eg_lua_pushnew(L, 1, sh, "memory_state");
  else lua_pushnil(L);
  eg_lua_try(L, eg_memory_read_state(lm->m, sc, order), "memory_state");
  return 2;
}

/* mem:set_order(order [size]) -> mem */
static int m_set_order(lua_State *L) { return set_from(L, eg_memory_set_order, "memory_set_order"); }

/* mem:weights() -> a view of the stored samples' weights [size] */
static int m_weights(lua_State *L) {
  lmemory *lm = check_mem(L);
  eg_lua_try(L, eg_memory_weights(lm->m, eg_lua_newtensor(L)), "memory_weights");
  return 1;
}

/* mem:codes() -> codes [size, D] (0..255 as floats, a copy), levels [256];
** nil for a float memory */
static int m_codes(lua_State *L) {
  lmemory *lm = check_mem(L);
  float levels[256];
  if (!eg_memory_uint8(lm->m, levels)) {
    lua_pushnil(L);
    return 1;
  }
  int64_t sh[2] = {eg_memory_size(lm->m), eg_memory_dim(lm->m)}, s1[1] = {256};
  eg_tensor *codes = eg_lua_pushnew(L, 2, sh, "memory_codes");
  eg_lua_try(L, eg_memory_read(lm->m, NULL, codes), "memory_codes");
  memcpy(eg_data(eg_lua_pushnew(L, 1, s1, "memory_codes")), levels, sizeof levels);
  return 2;
}

/* The buffer in user value uv, given rows k and the row shape; its storage is
** reused whenever it is large enough (a borrowed buffer: k may change from
** call to call without allocating once the largest k has been seen). */
static eg_tensor *buffer(lua_State *L, int uv, int64_t k, int ndim, const int64_t *row) {
  int64_t shape[EG_MAXDIM];
  shape[0] = k;
  if (ndim) memcpy(shape + 1, row, sizeof(int64_t) * (size_t)ndim);
  lua_getiuservalue(L, 1, uv);
  eg_tensor *t = eg_lua_totensor(L, -1);
  if (!t) {
    lua_pop(L, 1);
    t = eg_lua_newtensor(L);
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, 1, uv);
  }
  eg_lua_resize(L, t, ndim + 1, shape, 1, "memory_sample");
  return t;
}

/* mem:sample(k [, gen]) -> x, y, task, logits (borrowed buffers) */
static int m_sample(lua_State *L) {
  lmemory *lm = check_mem(L);
  lua_Integer k = luaL_checkinteger(L, 2);
  luaL_argcheck(L, k >= 1, 2, "batch size must be >= 1");
  luaL_argcheck(L, k <= ((lua_Integer)1 << 30), 2, "batch size too large");
  eg_rng *r = eg_lua_optrng(L, 3);
  lua_settop(L, 3);
  if (eg_memory_size(lm->m) == 0) luaL_error(L, "memory_sample: the memory is empty");
  int64_t kd = eg_memory_logits_dim(lm->m);
  eg_tensor *x = buffer(L, UV_X, k, lm->ndim, lm->shape);
  eg_tensor *y = buffer(L, UV_Y, k, 0, NULL);
  eg_tensor *t = buffer(L, UV_TASK, k, 0, NULL);
  eg_tensor *lg = kd ? buffer(L, UV_LOGITS, k, 1, &kd) : NULL;
  eg_lua_try(L, eg_memory_sample(lm->m, x, y, lg, t, r), "memory_sample");
  return kd ? 4 : 3;
}

/* mem:tensors() -> x, y, task, logits: views of the stored samples (live,
** not copies), but x is a dequantised copy in uint8 storage */
static int m_tensors(lua_State *L) {
  lmemory *lm = check_mem(L);
  int kd = eg_memory_logits_dim(lm->m) > 0, u8 = eg_memory_uint8(lm->m, NULL);
  int64_t shape[EG_MAXDIM];
  shape[0] = eg_memory_size(lm->m);
  memcpy(shape + 1, lm->shape, sizeof(int64_t) * (size_t)lm->ndim);
  eg_tensor *x = eg_lua_newtensor(L), *y = eg_lua_newtensor(L), *t = eg_lua_newtensor(L);
  eg_tensor *lg = kd ? eg_lua_newtensor(L) : NULL;
  eg_lua_try(L, eg_memory_views(lm->m, u8 ? NULL : x, y, lg, t), "memory_tensors");
  if (u8) {
    int64_t flat[2] = {shape[0], eg_memory_dim(lm->m)};
    eg_lua_try(L, eg_tensor_new(x, 2, flat), "memory_tensors");
    eg_lua_try(L, eg_memory_read(lm->m, x, NULL), "memory_tensors");
  } else {
    eg_lua_try(L, eg_memory_views(lm->m, x, NULL, NULL, NULL), "memory_tensors");
  }
  eg_lua_try(L, eg_view(x, x, lm->ndim + 1, shape), "memory_tensors");
  return kd ? 4 : 3;
}

/* An integer property of the memory, through get. */
static int push_count(lua_State *L, int64_t (*get)(const eg_memory *)) {
  lua_pushinteger(L, (lua_Integer)get(check_mem(L)->m));
  return 1;
}
static int m_len(lua_State *L) { return push_count(L, eg_memory_size); }
static int m_capacity(lua_State *L) { return push_count(L, eg_memory_capacity); }
static int m_seen(lua_State *L) { return push_count(L, eg_memory_seen); }
static int m_dim(lua_State *L) { return push_count(L, eg_memory_dim); }
static int m_logits_dim(lua_State *L) { return push_count(L, eg_memory_logits_dim); }
static int m_balanced(lua_State *L) {
  lua_pushboolean(L, eg_memory_balanced(check_mem(L)->m));
  return 1;
}
static int m_policy(lua_State *L) {
  lua_pushstring(L, POLICIES[eg_memory_policy(check_mem(L)->m)]);
  return 1;
}
static int m_per_class(lua_State *L) { return push_count(L, eg_memory_per_class); }
static int m_classes(lua_State *L) { return push_count(L, eg_memory_classes); }
static int m_uint8(lua_State *L) {
  lua_pushboolean(L, eg_memory_uint8(check_mem(L)->m, NULL));
  return 1;
}
static int m_weighted(lua_State *L) {
  lua_pushboolean(L, eg_memory_weighted(check_mem(L)->m));
  return 1;
}
static int m_bytes(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)eg_memory_bytes(check_mem(L)->m));
  return 1;
}
static int m_clear(lua_State *L) {
  eg_memory_clear(check_mem(L)->m);
  lua_settop(L, 1);
  return 1;
}

/* __gc, __close and close(): idempotent. Views from tensors() keep the storage. */
static int m_gc(lua_State *L) {
  lmemory *lm = luaL_checkudata(L, 1, EG_MEMORY_MT);
  eg_memory_free(lm->m);
  lm->m = NULL;
  return 0;
}

static int m_tostring(lua_State *L) {
  lmemory *lm = luaL_checkudata(L, 1, EG_MEMORY_MT);
  if (!lm->m) {
    lua_pushliteral(L, EG_MEMORY_MT " (closed)");
    return 1;
  }
  lua_pushfstring(L, EG_MEMORY_MT " (%I/%I samples of width %I, %I seen, %s%s%s%s)",
                  (lua_Integer)eg_memory_size(lm->m), (lua_Integer)eg_memory_capacity(lm->m),
                  (lua_Integer)eg_memory_dim(lm->m), (lua_Integer)eg_memory_seen(lm->m),
                  POLICIES[eg_memory_policy(lm->m)], eg_memory_per_class(lm->m) ? ", per class" : "",
                  eg_memory_uint8(lm->m, NULL) ? ", uint8" : "", eg_memory_logits_dim(lm->m) ? ", with logits" : "");
  return 1;
}

static const luaL_Reg mem_methods[] = {
    {"add", m_add},         {"sample", m_sample},     {"load", m_load},           {"tensors", m_tensors},
    {"size", m_len},        {"capacity", m_capacity}, {"seen", m_seen},           {"dim", m_dim},
    {"logits_dim", m_logits_dim}, {"balanced", m_balanced}, {"policy", m_policy}, {"per_class", m_per_class},
    {"classes", m_classes}, {"uint8", m_uint8},       {"weighted", m_weighted},   {"bytes", m_bytes},
    {"weights", m_weights}, {"set_weights", m_set_weights}, {"codes", m_codes},   {"clear", m_clear},
    {"state_extra", m_state_extra}, {"set_order", m_set_order},
    {"close", m_gc},        {NULL, NULL}};

static const luaL_Reg functions[] = {{"sq_accumulate", l_sq_accumulate},
                                     {"linear_sq_grad_accumulate", l_linear_sq},
                                     {"linear_abs_grad_accumulate", l_linear_abs},
                                     {"conv2d_h_grad_accumulate", l_conv2d_h},
                                     {"layernorm_h_grad_accumulate", l_layernorm_h},
                                     {"embedding_h_grad_accumulate", l_embedding_h},
                                     {"abs_accumulate", l_abs_accumulate},
                                     {"si_accumulate", l_si_accumulate},
                                     {"sample_labels", l_sample_labels},
                                     {"si_consolidate", l_si_consolidate},
                                     {"decay_accumulate", l_decay_accumulate},
                                     {"quad_penalty", l_quad_penalty},
                                     {"quad_penalty_folded", l_quad_penalty_folded},
                                     {"quad_fold", l_quad_fold},
                                     {"herding", l_herding},
                                     {"memory", l_memory},
                                     {"on_levels", l_on_levels},
                                     {"sample_losses", l_sample_losses},
                                     {NULL, NULL}};

void eg_lua_open_cl(lua_State *L) {
  luaL_newmetatable(L, EG_MEMORY_MT);
  luaL_newlib(L, mem_methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, m_len);
  lua_setfield(L, -2, "__len");
  lua_pushcfunction(L, m_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, m_gc);
  lua_setfield(L, -2, "__close");
  lua_pushcfunction(L, m_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
  luaL_setfuncs(L, functions, 0);
}
