/*
** embed_io.c — tensors between the host's memory and an engine (copied in,
** or wrapping the host's buffer), tensors and results documents read out
** (engram.h: "tensors in and out").
*/
#include <ctype.h>
#include <string.h>

#include <lauxlib.h>

#include "embed_int.h"
#include "lutil.h"

/* The Lua library's limit on a tensor's elements (lutil.c), for the host's shapes too. */
#define MAX_ELEMS ((int64_t)1 << 40)

/* Is name a global or a dotted path of fields ("data.x")? */
static int valid_name(const char *name) {
  const char *p = name;
  do {
    if (!(isalpha((unsigned char)*p) || *p == '_')) return 0;
    while (isalnum((unsigned char)*p) || *p == '_') p++;
  } while (*p == '.' && *++p);
  return *p == '\0';
}

struct tensor_in {
  const char *name;
  float *data;
  int ndim, wrap;
  const int64_t *shape;
};

static void keep_host_buffer(void *ud, float *data) { (void)ud, (void)data; }

/* Protected: assigns the path `name` (tables made on the way) the value on the top. */
static void set_name(lua_State *L, const char *name) {
  const char *dot;
  lua_pushglobaltable(L);
  while ((dot = strchr(name, '.')) != NULL) {
    lua_pushlstring(L, name, (size_t)(dot - name));
    lua_pushvalue(L, -1);
    if (lua_gettable(L, -3) == LUA_TNIL) {
      lua_pop(L, 1);
      lua_newtable(L);
      lua_pushvalue(L, -2);
      lua_pushvalue(L, -2);
      lua_settable(L, -5);
    } else if (!lua_istable(L, -1)) {
      luaL_error(L, "'%s' is a %s, not a table", lua_tostring(L, -2), luaL_typename(L, -1));
    }
    lua_remove(L, -2); /* the key */
    lua_remove(L, -2); /* the parent */
    name = dot + 1;
  }
  lua_insert(L, -2);
  lua_setfield(L, -2, name);
  lua_pop(L, 1);
}

/* Protected: a new tensor over (or copied from) the host's data, set at name. */
static int push_tensor_in(lua_State *L) {
  const struct tensor_in *a = lua_touserdata(L, 1);
  int64_t n = 1;
  for (int d = 0; d < a->ndim; d++) n *= a->shape[d];
  if (a->wrap) {
    eg_tensor *t = eg_lua_newtensor(L);
    eg_storage *s = eg_storage_wrap(a->data, n, keep_host_buffer, NULL);
    if (s == NULL) return eg_lua_fail(L, EG_ENOMEM, "engram_tensor_wrap");
    int st = eg_tensor_from_storage(t, s, 0, a->ndim, a->shape, NULL);
    eg_storage_release(s); /* the tensor holds its own reference */
    eg_lua_try(L, st, "engram_tensor_wrap");
  } else {
    eg_tensor *t = eg_lua_pushnew(L, a->ndim, a->shape, "engram_tensor_copy_in");
    if (n > 0) memcpy(eg_data(t), a->data, (size_t)n * sizeof(float));
  }
  set_name(L, a->name);
  return 0;
}

static int tensor_in(engram_state *E, const char *name, float *data, int ndim, const int64_t *shape, int wrap) {
  const char *who = wrap ? "engram_tensor_wrap" : "engram_tensor_copy_in";
  struct tensor_in a;
  int64_t n = 1;
  char msg[200];
  if (E == NULL || E->L == NULL) return ENGRAM_EMISUSE;
  if (name == NULL || !valid_name(name)) {
    snprintf(msg, sizeof msg, "%s: the name must be a Lua name or a dotted path of names, got %s%.60s%s", who,
             name ? "'" : "", name ? name : "NULL", name ? "'" : "");
    return eg_embed_error(E, ENGRAM_EMISUSE, msg);
  }
  if (ndim < 0 || ndim > EG_MAXDIM || (ndim > 0 && shape == NULL)) {
    snprintf(msg, sizeof msg, "%s: ndim must be 0..%d with a shape, got %d%s", who, EG_MAXDIM, ndim,
             shape ? "" : " and no shape");
    return eg_embed_error(E, ENGRAM_EMISUSE, msg);
  }
  for (int d = 0; d < ndim; d++) {
    if (shape[d] < 0 || (shape[d] > 0 && n > MAX_ELEMS / shape[d])) {
      snprintf(msg, sizeof msg, "%s: size %lld of dimension %d is negative or too large", who, (long long)shape[d],
               d + 1);
      return eg_embed_error(E, ENGRAM_EMISUSE, msg);
    }
    n *= shape[d];
  }
  if (data == NULL && n > 0) {
    snprintf(msg, sizeof msg, "%s: data is NULL for %lld elements", who, (long long)n);
    return eg_embed_error(E, ENGRAM_EMISUSE, msg);
  }
  static const int64_t scalar[1] = {1};
  a.name = name;
  a.data = data;
  a.ndim = ndim;
  a.shape = ndim > 0 ? shape : scalar; /* never NULL for the core */
  a.wrap = wrap;
  eg_embed_enter(E);
  lua_pushcfunction(E->L, push_tensor_in);
  lua_pushlightuserdata(E->L, &a);
  return eg_embed_leave(E, eg_embed_call(E, 1, 0));
}

int engram_tensor_copy_in(engram_state *E, const char *name, const float *data, int ndim, const int64_t *shape) {
  return tensor_in(E, name, (float *)data, ndim, shape, 0);
}

int engram_tensor_wrap(engram_state *E, const char *name, float *data, int ndim, const int64_t *shape) {
  return tensor_in(E, name, data, ndim, shape, 1);
}

/* Runs "return <expr>" leaving its value on the top (ENGRAM_OK), or nothing. */
static int eval(engram_state *E, const char *expr, const char *who) {
  char *chunk;
  int st;
  if (expr == NULL) {
    char msg[80];
    snprintf(msg, sizeof msg, "%s: the expression is NULL", who);
    return eg_embed_error(E, ENGRAM_EMISUSE, msg);
  }
  chunk = eg_embed_dup("return ", expr, strlen(expr));
  if (chunk == NULL) return eg_embed_error(E, ENGRAM_ENOMEM, "out of memory");
  st = luaL_loadbufferx(E->L, chunk, strlen(chunk), "=(expression)", "t");
  eg_embed_free(chunk);
  if (st != LUA_OK) return eg_embed_take_error(E, st);
  return eg_embed_call(E, 0, 1);
}

static int not_a(engram_state *E, const char *who, const char *expr, const char *what) {
  char msg[240];
  snprintf(msg, sizeof msg, "%s: '%.100s' is a %s, not %s", who, expr, luaL_typename(E->L, -1), what);
  lua_pop(E->L, 1);
  return eg_embed_error(E, ENGRAM_EMISUSE, msg);
}

static int tensor_read(engram_state *E, const char *expr, int *ndim, int64_t *shape, float *out, size_t cap) {
  const char *who = "engram_tensor_read";
  eg_tensor *t, dst = EG_TENSOR_INIT;
  eg_storage *s;
  int64_t n;
  int st = eval(E, expr, who);
  if (st != ENGRAM_OK) return st;
  t = eg_lua_totensor(E->L, -1);
  if (t == NULL) return not_a(E, who, expr, "a tensor");
  if (ndim) *ndim = t->ndim;
  if (shape) memcpy(shape, t->shape, (size_t)t->ndim * sizeof *shape);
  n = eg_numel(t);
  st = ENGRAM_OK;
  if (out && (uint64_t)n > (uint64_t)cap) {
    char msg[200];
    snprintf(msg, sizeof msg, "%s: '%.100s' has %lld elements, room for %zu given", who, expr, (long long)n, cap);
    st = eg_embed_error(E, ENGRAM_EMISUSE, msg);
  } else if (out && n > 0) {
    /* A view over the host's buffer: eg_copy walks any strides. */
    s = eg_storage_wrap(out, n, keep_host_buffer, NULL);
    if (s == NULL || eg_tensor_from_storage(&dst, s, 0, t->ndim, t->shape, NULL) != EG_OK || eg_copy(&dst, t) != EG_OK)
      st = eg_embed_error(E, ENGRAM_ENOMEM, "engram_tensor_read: out of memory");
    eg_tensor_release(&dst);
    eg_storage_release(s);
  }
  lua_pop(E->L, 1);
  return st;
}

int engram_tensor_read(engram_state *E, const char *expr, int *ndim, int64_t shape[ENGRAM_MAXDIM], float *out, size_t cap) {
  if (E == NULL || E->L == NULL) return ENGRAM_EMISUSE;
  eg_embed_enter(E);
  return eg_embed_leave(E, tensor_read(E, expr, ndim, shape, out, cap));
}

/* Protected: the table on the top encoded by engram.json (pretty). */
static int encode_json(lua_State *L) {
  lua_getglobal(L, "require");
  lua_pushliteral(L, "engram.json");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "encode");
  lua_pushvalue(L, 1);
  lua_createtable(L, 0, 1);
  lua_pushboolean(L, 1);
  lua_setfield(L, -2, "pretty");
  lua_call(L, 2, 1);
  return 1;
}

static int results_json(engram_state *E, const char *expr, const char **json, size_t *len) {
  const char *who = "engram_results_json", *text;
  size_t n;
  char *copy;
  int st = eval(E, expr, who);
  if (st != ENGRAM_OK) return st;
  if (lua_type(E->L, -1) == LUA_TTABLE) {
    lua_pushcfunction(E->L, encode_json);
    lua_insert(E->L, -2);
    st = eg_embed_call(E, 1, 1);
    if (st != ENGRAM_OK) return st;
  } else if (lua_type(E->L, -1) != LUA_TSTRING) {
    return not_a(E, who, expr, "a table or a JSON string");
  }
  text = lua_tolstring(E->L, -1, &n);
  copy = eg_embed_dup("", text, n);
  lua_pop(E->L, 1);
  if (copy == NULL) return eg_embed_error(E, ENGRAM_ENOMEM, "engram_results_json: out of memory");
  eg_embed_free(E->text);
  E->text = copy;
  *json = copy;
  if (len) *len = n;
  return ENGRAM_OK;
}

int engram_results_json(engram_state *E, const char *expr, const char **json, size_t *len) {
  if (json) *json = NULL;
  if (len) *len = 0;
  if (E == NULL || E->L == NULL) return ENGRAM_EMISUSE;
  if (json == NULL) return eg_embed_error(E, ENGRAM_EMISUSE, "engram_results_json: json is NULL");
  eg_embed_enter(E);
  return eg_embed_leave(E, results_json(E, expr, json, len));
}
