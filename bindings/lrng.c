/*
** lrng.c — engram.Generator, the seedable random number generator, and the
** module's default generator.
**
** The default generator lives in the Lua registry (one per lua_State, never a
** C global), starts from seed 0 so that a run that never calls engram.seed is
** still reproducible, and is what every stochastic function uses when it is
** not given a generator. engram.seed(n) reseeds it.
*/
#include <math.h>
#include <string.h>

#include "lutil.h"

#define DEFAULT_KEY "engram.defaultGenerator"
#define DEFAULT_SEED 0

typedef struct {
  eg_rng r; /* first, so an eg_rng * to it is a pointer to the userdata */
  lua_Integer seed;
} generator;

static lua_Integer check_seed(lua_State *L, int arg) {
  int isnum;
  lua_Integer s = lua_tointegerx(L, arg, &isnum);
  if (!isnum) {
    if (lua_type(L, arg) == LUA_TNUMBER) luaL_argerror(L, arg, "seed must be an integer");
    luaL_typeerror(L, arg, "integer seed");
  }
  return s;
}

static generator *push_generator(lua_State *L, lua_Integer seed) {
  generator *g = lua_newuserdatauv(L, sizeof *g, 0);
  memset(g, 0, sizeof *g);
  eg_rng_seed(&g->r, (uint64_t)seed);
  g->seed = seed;
  luaL_setmetatable(L, EG_RNG_MT);
  return g;
}

static generator *default_generator(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, DEFAULT_KEY);
  generator *g = luaL_testudata(L, -1, EG_RNG_MT);
  lua_pop(L, 1); /* the registry keeps it alive */
  if (!g) luaL_error(L, "engram: the default generator is missing (module not opened?)");
  return g;
}

eg_rng *eg_lua_optrng(lua_State *L, int idx) {
  if (lua_isnoneornil(L, idx)) return &default_generator(L)->r;
  return &((generator *)luaL_checkudata(L, idx, EG_RNG_MT))->r;
}

static generator *check_gen(lua_State *L) { return luaL_checkudata(L, 1, EG_RNG_MT); }

/* engram.generator([seed]): a new generator; without a seed, one is drawn
** from the default generator (so it too follows engram.seed). */
static int l_generator(lua_State *L) {
  lua_Integer seed;
  if (lua_isnoneornil(L, 1))
    seed = (lua_Integer)(eg_rng_u64(&default_generator(L)->r) >> 1);
  else
    seed = check_seed(L, 1);
  push_generator(L, seed);
  return 1;
}

/* engram.seed(n): reseeds the default generator. */
static int l_seed(lua_State *L) {
  lua_Integer s = check_seed(L, 1);
  generator *g = default_generator(L);
  eg_rng_seed(&g->r, (uint64_t)s);
  g->seed = s;
  return 0;
}

static int l_default_generator(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, DEFAULT_KEY);
  return 1;
}

/* g:seed(n) reseeds g and returns it; g:seed() returns its last seed. */
static int g_seed(lua_State *L) {
  generator *g = check_gen(L);
  if (lua_isnoneornil(L, 2)) {
    lua_pushinteger(L, g->seed);
    return 1;
  }
  g->seed = check_seed(L, 2);
  eg_rng_seed(&g->r, (uint64_t)g->seed);
  lua_settop(L, 1);
  return 1;
}

/* g:uniform([lo, hi]): a number in [lo, hi), default [0, 1). */
static int g_uniform(lua_State *L) {
  generator *g = check_gen(L);
  double lo = luaL_optnumber(L, 2, 0), hi = luaL_optnumber(L, 3, 1);
  if (!isfinite(lo) || !isfinite(hi) || !isfinite(hi - lo))
    luaL_error(L, "uniform: bounds %f and %f must be finite (and their difference too)", lo, hi);
  if (!(lo <= hi)) luaL_error(L, "uniform: lower bound %f is above upper bound %f", lo, hi);
  lua_pushnumber(L, lo + (hi - lo) * eg_rng_uniform(&g->r));
  return 1;
}

/* g:normal([mean, std]) */
static int g_normal(lua_State *L) {
  generator *g = check_gen(L);
  double mean = luaL_optnumber(L, 2, 0), std = luaL_optnumber(L, 3, 1);
  if (!isfinite(mean)) luaL_error(L, "normal: mean %f is not finite", mean);
  if (!isfinite(std) || std < 0) luaL_error(L, "normal: standard deviation %f must be finite and >= 0", std);
  lua_pushnumber(L, mean + std * eg_rng_normal(&g->r));
  return 1;
}

/* g:randint(n): an integer in 1..n; g:randint(a, b): in a..b. */
static int g_randint(lua_State *L) {
  generator *g = check_gen(L);
  lua_Integer a = 1, b;
  if (lua_isnoneornil(L, 3)) {
    b = luaL_checkinteger(L, 2);
  } else {
    a = luaL_checkinteger(L, 2);
    b = luaL_checkinteger(L, 3);
  }
  if (b < a) luaL_error(L, "randint: empty range %I..%I", a, b);
  uint64_t span = (uint64_t)b - (uint64_t)a + 1; /* 0 means the full 64-bit range */
  uint64_t x = span ? eg_rng_below(&g->r, span) : eg_rng_u64(&g->r);
  lua_pushinteger(L, (lua_Integer)((uint64_t)a + x));
  return 1;
}

/* A 1-D tensor holding a random permutation of 1..n (1-based indices in floats). */
static int permutation(lua_State *L, eg_rng *r, int arg, const char *op) {
  lua_Integer n = luaL_checkinteger(L, arg);
  if (n < 0) luaL_error(L, "%s: size %I is negative", op, n);
  if (n > ((lua_Integer)1 << 24))
    luaL_error(L, "%s: size %I is above 2^24, where float indices stop being exact", op, n);
  int64_t shape[1] = {(int64_t)n};
  eg_tensor *t = eg_lua_pushnew(L, 1, shape, "permutation");
  eg_lua_try(L, eg_randperm(t, r), op);
  eg_lua_index_to_lua(L, t, "permutation");
  return 1;
}

static int g_permutation(lua_State *L) { return permutation(L, &check_gen(L)->r, 2, "permutation"); }

/* engram.randperm(n [, gen]) */
static int l_randperm(lua_State *L) { return permutation(L, eg_lua_optrng(L, 2), 1, "randperm"); }

/* g:state(): the generator's whole state as a string (core/rng.h), to save
** in a checkpoint; g:set_state(s) puts it back (the sequence continues bit
** for bit) and returns g. g:seed() still reports the last seed given. */
static int g_state(lua_State *L) {
  char buf[EG_RNG_STATE_LEN];
  eg_rng_get_state(&check_gen(L)->r, buf);
  lua_pushstring(L, buf);
  return 1;
}

static int g_set_state(lua_State *L) {
  generator *g = check_gen(L);
  const char *s = luaL_checkstring(L, 2);
  eg_lua_try(L, eg_rng_set_state(&g->r, s), "set_state");
  lua_settop(L, 1);
  return 1;
}

static int g_tostring(lua_State *L) {
  generator *g = check_gen(L);
  lua_pushfstring(L, EG_RNG_MT " (seed %I)", g->seed);
  return 1;
}

static const luaL_Reg gen_methods[] = {{"seed", g_seed},       {"uniform", g_uniform},
                                       {"normal", g_normal},   {"randint", g_randint},
                                       {"permutation", g_permutation}, {"state", g_state},
                                       {"set_state", g_set_state},     {NULL, NULL}};

static const luaL_Reg functions[] = {{"generator", l_generator},
                                     {"seed", l_seed},
                                     {"default_generator", l_default_generator},
                                     {"randperm", l_randperm},
                                     {NULL, NULL}};

void eg_lua_open_rng(lua_State *L) {
  luaL_newmetatable(L, EG_RNG_MT);
  luaL_newlib(L, gen_methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, g_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
  /* Opening the module twice (two require paths) keeps the existing default. */
  lua_getfield(L, LUA_REGISTRYINDEX, DEFAULT_KEY);
  if (!luaL_testudata(L, -1, EG_RNG_MT)) {
    push_generator(L, DEFAULT_SEED);
    lua_setfield(L, LUA_REGISTRYINDEX, DEFAULT_KEY);
  }
  lua_pop(L, 1);
  luaL_setfuncs(L, functions, 0);
}
