/*
** loptim.c — optimiser steps and gradient clipping for lua/engram/optim.lua,
** as plain functions of engram.core: one call per parameter group per step.
** The optimiser objects (state per group, schedules, options) are in Lua.
*/
#include <math.h>

#include "lutil.h"
#include "optim.h"

static eg_tensor *opt_tensor(lua_State *L, int idx) {
  return lua_isnoneornil(L, idx) ? NULL : eg_lua_checktensor(L, idx);
}

static int64_t check_step(lua_State *L, int arg) {
  lua_Integer t = luaL_checkinteger(L, arg);
  luaL_argcheck(L, t >= 1, arg, "step must be >= 1");
  return (int64_t)t;
}

/* sgd_step(p, g, buf|nil, lr, momentum, dampening, nesterov, weight_decay, step [, mask]) */
static int l_sgd_step(lua_State *L) {
  eg_tensor *p = eg_lua_checktensor(L, 1), *g = eg_lua_checktensor(L, 2), *buf = opt_tensor(L, 3);
  eg_sgd_config c;
  c.lr = luaL_checknumber(L, 4);
  c.momentum = luaL_checknumber(L, 5);
  c.dampening = luaL_checknumber(L, 6);
  c.nesterov = lua_toboolean(L, 7);
  c.weight_decay = luaL_checknumber(L, 8);
  int64_t step = check_step(L, 9);
  eg_lua_try(L, eg_sgd_step(p, g, buf, &c, step, opt_tensor(L, 10)), "sgd");
  return 0;
}

/* adam_step(p, g, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, step [, mask]) */
static int l_adam_step(lua_State *L) {
  eg_tensor *p = eg_lua_checktensor(L, 1), *g = eg_lua_checktensor(L, 2);
  eg_tensor *m = eg_lua_checktensor(L, 3), *v = eg_lua_checktensor(L, 4);
  eg_adam_config c;
  c.lr = luaL_checknumber(L, 5);
  c.beta1 = luaL_checknumber(L, 6);
  c.beta2 = luaL_checknumber(L, 7);
  c.eps = luaL_checknumber(L, 8);
  c.weight_decay = luaL_checknumber(L, 9);
  c.decoupled = lua_toboolean(L, 10);
  int64_t step = check_step(L, 11);
  eg_lua_try(L, eg_adam_step(p, g, m, v, &c, step, opt_tensor(L, 12)), c.decoupled ? "adamw" : "adam");
  return 0;
}

/* sgd_check(lr, momentum, dampening, nesterov, weight_decay): raises on a bad configuration. */
static int l_sgd_check(lua_State *L) {
  eg_sgd_config c = {luaL_checknumber(L, 1), luaL_checknumber(L, 2), luaL_checknumber(L, 3),
                     luaL_checknumber(L, 5), lua_toboolean(L, 4)};
  eg_lua_try(L, eg_sgd_check(&c), "sgd");
  return 0;
}

/* adam_check(lr, beta1, beta2, eps, weight_decay, decoupled) */
static int l_adam_check(lua_State *L) {
  eg_adam_config c = {luaL_checknumber(L, 1), luaL_checknumber(L, 2), luaL_checknumber(L, 3),
                      luaL_checknumber(L, 4), luaL_checknumber(L, 5), lua_toboolean(L, 6)};
  eg_lua_try(L, eg_adam_check(&c), c.decoupled ? "adamw" : "adam");
  return 0;
}

/* The gradient tensors of the array at idx, into a small fixed buffer. */
#define MAX_GROUPS 256
static int read_grads(lua_State *L, int idx, eg_tensor **out) {
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
  if (n > MAX_GROUPS) luaL_error(L, "clip_grad_norm: %I gradient tensors (at most %d)", n, MAX_GROUPS);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, idx, i);
    eg_tensor *t = eg_lua_totensor(L, -1);
    if (!t) luaL_error(L, "clip_grad_norm: entry %I of the gradient list is not a tensor", i);
    out[i - 1] = t; /* the table keeps it alive */
    lua_pop(L, 1);
  }
  return (int)n;
}

/* grad_norm({g1, g2, ...}) -> joint L2 norm */
static int l_grad_norm(lua_State *L) {
  eg_tensor *gs[MAX_GROUPS];
  int n = read_grads(L, 1, gs);
  double s = 0;
  eg_lua_try(L, eg_grad_sumsq(&s, gs, n), "grad_norm");
  lua_pushnumber(L, sqrt(s));
  return 1;
}

/* clip_grad_norm({g1, g2, ...}, max_norm) -> norm before clipping */
static int l_clip_grad_norm(lua_State *L) {
  eg_tensor *gs[MAX_GROUPS];
  int n = read_grads(L, 1, gs);
  double norm = 0;
  eg_lua_try(L, eg_clip_grad_norm(gs, n, luaL_checknumber(L, 2), &norm), "clip_grad_norm");
  lua_pushnumber(L, norm);
  return 1;
}

static const luaL_Reg functions[] = {{"sgd_step", l_sgd_step},         {"adam_step", l_adam_step},
                                     {"sgd_check", l_sgd_check},       {"adam_check", l_adam_check},
                                     {"grad_norm", l_grad_norm},       {"clip_grad_norm", l_clip_grad_norm},
                                     {NULL, NULL}};

void eg_lua_open_optim(lua_State *L) { luaL_setfuncs(L, functions, 0); }
