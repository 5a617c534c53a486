/*
** lutil.c — helpers every binding source shares (see lutil.h): the tensor
** userdata, core status -> Lua error, collector accounting, and the one place
** where Lua's 1-based indices become the core's 0-based ones and back.
*/
#include "lutil.h"

#include <math.h>
#include <string.h>

/* Same bound as the core's storage limit: a shape beyond it is a mistake, and
** checking it here keeps the byte count far from overflowing. */
#define EG_LUA_MAX_ELEMS ((int64_t)1 << 40)

int eg_lua_fail(lua_State *L, int status, const char *op) {
  const char *msg = eg_errmsg();
  size_t n = strlen(op);
  if (!msg[0]) msg = eg_errstr(status);
  /* Core messages usually already start with the operation's name. */
  if (strncmp(msg, op, n) == 0 && msg[n] == ':') return luaL_error(L, "%s", msg);
  return luaL_error(L, "%s: %s", op, msg);
}

eg_tensor *eg_lua_newtensor(lua_State *L) {
  eg_tensor *t = lua_newuserdatauv(L, sizeof(eg_tensor), 0);
  memset(t, 0, sizeof *t);
  luaL_setmetatable(L, EG_TENSOR_MT);
  return t;
}

eg_tensor *eg_lua_checktensor(lua_State *L, int idx) {
  eg_tensor *t = luaL_checkudata(L, idx, EG_TENSOR_MT);
  if (!t->storage) luaL_argerror(L, idx, "attempt to use a released tensor");
  return t;
}

eg_tensor *eg_lua_totensor(lua_State *L, int idx) {
  eg_tensor *t = luaL_testudata(L, idx, EG_TENSOR_MT);
  return t && t->storage ? t : NULL;
}

/* LUA_GCSTEP with n > 0 only adds n KiB of debt (a full step runs when the
** debt is due), so it is cheap; n == 0 would force a step, hence the guard.
** Allocations under 1 KiB are left out: the userdata holding them already
** counts for a comparable size. */
void eg_lua_account(lua_State *L, size_t nbytes) {
  size_t kb = nbytes / 1024;
  if (kb > 0) lua_gc(L, LUA_GCSTEP, kb > 1000000000 ? 1000000000 : (int)kb);
}

/* ---- 1-based <-> 0-based: every conversion of a Lua index goes through here ---- */

/* i in [1, n] or [-n, -1] -> 0-based; -1 when out of range (including 0). */
static int64_t to_c_index(lua_Integer i, int64_t n) {
  if (i >= 1 && i <= n) return (int64_t)i - 1;
  if (i < 0 && i >= -n) return n + (int64_t)i;
  return -1;
}

int64_t eg_lua_checkindex(lua_State *L, int arg, int64_t n, const char *what) {
  int isnum;
  lua_Integer i = lua_tointegerx(L, arg, &isnum);
  if (!isnum) {
    if (lua_type(L, arg) == LUA_TNUMBER)
      luaL_argerror(L, arg, lua_pushfstring(L, "index %s is not an integer", lua_tostring(L, arg)));
    luaL_typeerror(L, arg, "integer");
  }
  int64_t k = to_c_index(i, n);
  if (k < 0)
    luaL_argerror(L, arg, lua_pushfstring(L, "index %I out of range for %s of size %I", i, what, (lua_Integer)n));
  return k;
}

int64_t eg_lua_index(lua_State *L, int arg, int64_t n, int dim, const char *op) {
  int isnum;
  lua_Integer i = lua_tointegerx(L, arg, &isnum);
  if (!isnum) {
    if (lua_type(L, arg) == LUA_TNUMBER)
      luaL_error(L, "%s: index %s is not an integer", op, lua_tostring(L, arg));
    luaL_error(L, "%s: index must be an integer, got %s", op, luaL_typename(L, arg));
  }
  int64_t k = to_c_index(i, n);
  if (k < 0)
    luaL_error(L, "%s: index %I out of range for dimension %d of size %I", op, i, dim + 1, (lua_Integer)n);
  return k;
}

int eg_lua_checkdim(lua_State *L, int arg, int ndim) {
  int isnum;
  lua_Integer d = lua_tointegerx(L, arg, &isnum);
  if (!isnum) luaL_typeerror(L, arg, "integer (a dimension)");
  int64_t k = to_c_index(d, ndim);
  if (k < 0)
    luaL_argerror(L, arg,
                  lua_pushfstring(L, "dimension %I out of range for a %d-dimensional tensor", d, ndim));
  return (int)k;
}

int eg_lua_index_to_c(lua_State *L, eg_tensor *dst, const eg_tensor *src, const char *op) {
  int64_t shape[EG_MAXDIM];
  memcpy(shape, src->shape, sizeof shape);
  eg_lua_try(L, eg_tensor_new(dst, src->ndim, shape), op);
  eg_lua_try(L, eg_binary_scalar(dst, src, 1.0f, EG_SUB, 0), op);
  eg_lua_account(L, (size_t)eg_numel(dst) * sizeof(float));
  return 0;
}

/* Out of memory may only mean that dead tensors are not collected yet (under
** the embedding API's memory cap, soon): one full collection, then the same
** allocation once more. */
static int collect_if_enomem(lua_State *L, int status) {
  if (status != EG_ENOMEM) return 0;
  lua_gc(L, LUA_GCCOLLECT);
  return 1;
}

static int resize(eg_tensor *t, int ndim, const int64_t *shape, int borrowed) {
  return borrowed ? eg_tensor_resize_buffer(t, ndim, shape) : eg_tensor_resize(t, ndim, shape);
}

void eg_lua_resize(lua_State *L, eg_tensor *t, int ndim, const int64_t *shape, int borrowed, const char *op) {
  const eg_storage *before = t->storage;
  int st = resize(t, ndim, shape, borrowed);
  if (collect_if_enomem(L, st)) st = resize(t, ndim, shape, borrowed);
  eg_lua_try(L, st, op);
  if (t->storage != before) eg_lua_account(L, (size_t)eg_numel(t) * sizeof(float));
}

void eg_lua_index_to_lua(lua_State *L, eg_tensor *t, const char *op) {
  eg_lua_try(L, eg_binary_scalar(t, t, 1.0f, EG_ADD, 0), op);
}

/* ---- shapes ---- */

static int64_t size_at(lua_State *L, int arg, int tidx, lua_Integer k, int allow_infer, const char *op) {
  lua_Number x;
  if (tidx) {
    lua_geti(L, tidx, k);
    if (lua_type(L, -1) != LUA_TNUMBER)
      luaL_error(L, "%s: size %I of the shape is a %s, expected a number", op, k, luaL_typename(L, -1));
    x = lua_tonumber(L, -1);
    lua_pop(L, 1);
  } else {
    if (lua_type(L, arg) != LUA_TNUMBER)
      luaL_error(L, "%s: size #%d is a %s, expected a number", op, arg, luaL_typename(L, arg));
    x = lua_tonumber(L, arg);
  }
  if (isnan(x)) luaL_error(L, "%s: size is NaN", op);
  if (allow_infer && x == -1) return -1;
  if (x != floor(x)) luaL_error(L, "%s: size %f is not an integer", op, (LUAI_UACNUMBER)x);
  if (x < 0) {
    if (x > -1e15) luaL_error(L, "%s: size %I is negative", op, (lua_Integer)x);
    luaL_error(L, "%s: size %f is negative", op, (LUAI_UACNUMBER)x);
  }
  if (x > (lua_Number)EG_LUA_MAX_ELEMS)
    luaL_error(L, "%s: out of memory: size %f is too large", op, (LUAI_UACNUMBER)x);
  return (int64_t)x;
}

int eg_lua_readshape(lua_State *L, int first, int last, int64_t *shape, int allow_infer, const char *op) {
  int ndim;
  if (first <= last && lua_type(L, first) == LUA_TTABLE) {
    if (last > first) luaL_error(L, "%s: give the sizes either as numbers or as one table, not both", op);
    /* The raw length: a __len that returns a non-integer would raise an error
    ** that does not name op. */
    lua_Integer n = (lua_Integer)lua_rawlen(L, first);
    if (n > EG_MAXDIM) luaL_error(L, "%s: %I dimensions (at most %d)", op, n, EG_MAXDIM);
    ndim = (int)n;
    for (int d = 0; d < ndim; d++) shape[d] = size_at(L, 0, first, d + 1, allow_infer, op);
  } else {
    ndim = last >= first ? last - first + 1 : 0;
    if (ndim > EG_MAXDIM) luaL_error(L, "%s: %d dimensions (at most %d)", op, ndim, EG_MAXDIM);
    for (int d = 0; d < ndim; d++) shape[d] = size_at(L, first + d, 0, 0, allow_infer, op);
  }
  /* Check the element count before anything is allocated (zeros(1e12, 1e12)). */
  int64_t n = 1;
  for (int d = 0; d < ndim; d++) {
    if (shape[d] < 0) continue; /* -1: inferred later */
    if (shape[d] > 0 && n > EG_LUA_MAX_ELEMS / shape[d])
      n = EG_LUA_MAX_ELEMS + 1;
    else
      n *= shape[d];
  }
  if (n > EG_LUA_MAX_ELEMS) {
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int d = 0; d < ndim; d++) {
      if (d) luaL_addchar(&b, 'x');
      lua_pushinteger(L, (lua_Integer)shape[d]);
      luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    luaL_error(L, "%s: out of memory: a tensor of size %s has too many elements", op, lua_tostring(L, -1));
  }
  return ndim;
}

int eg_lua_checkshape(lua_State *L, int first, int64_t *shape, const char *op) {
  return eg_lua_readshape(L, first, lua_gettop(L), shape, 0, op);
}

eg_tensor *eg_lua_pushnew(lua_State *L, int ndim, const int64_t *shape, const char *op) {
  eg_tensor *t = eg_lua_newtensor(L);
  int st = eg_tensor_new(t, ndim, shape);
  if (collect_if_enomem(L, st)) st = eg_tensor_new(t, ndim, shape);
  eg_lua_try(L, st, op);
  eg_lua_account(L, (size_t)eg_numel(t) * sizeof(float));
  return t;
}
