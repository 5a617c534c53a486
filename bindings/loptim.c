/*
** loptim.c — optimiser steps and gradient clipping for lua/engram/optim.lua,
** as plain functions of engram.core: one call per parameter group per step.
** The optimiser objects (state per group, schedules, options) are in Lua.
*/
#include <math.h>
#include <string.h>

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

/* The optional terms table at idx (see optim.h's eg_step_terms): {penalty =
** "anchor" | "folded" | nil, u =, w =, lambda =, C =, omega =, pg =, scale =,
** have_value =}; its tensors are kept alive by the table. NULL for nil. */
static double num_field(lua_State *L, int idx, const char *key, double dflt, const char *op) {
  lua_getfield(L, idx, key);
  int ok = 1;
  double v = lua_isnil(L, -1) ? dflt : lua_tonumberx(L, -1, &ok);
  if (!ok) luaL_error(L, "%s: terms.%s must be a number, got %s", op, key, luaL_typename(L, -1));
  lua_pop(L, 1);
  return v;
}

static eg_step_terms *read_terms(lua_State *L, int idx, eg_step_terms *t, const char *op) {
  if (lua_isnoneornil(L, idx)) return NULL;
  luaL_checktype(L, idx, LUA_TTABLE);
  memset(t, 0, sizeof *t);
  lua_getfield(L, idx, "penalty");
  const char *form = lua_tostring(L, -1);
  if (form && !strcmp(form, "anchor")) t->penalty = EG_PENALTY_ANCHOR;
  else if (form && !strcmp(form, "folded")) t->penalty = EG_PENALTY_FOLDED;
  else if (!lua_isnil(L, -1)) luaL_error(L, "%s: penalty form must be 'anchor' or 'folded', got %s", op, luaL_tolstring(L, -1, NULL));
  lua_pop(L, 1);
  static const char *const names[] = {"u", "w", "omega", "pg"};
  eg_tensor *ts[4];
  for (int k = 0; k < 4; k++) {
    lua_getfield(L, idx, names[k]);
    ts[k] = lua_isnil(L, -1) ? NULL : eg_lua_totensor(L, -1);
    if (!ts[k] && !lua_isnil(L, -1)) luaL_error(L, "%s: terms.%s must be a tensor", op, names[k]);
    lua_pop(L, 1);
  }
  t->u = ts[0], t->w = ts[1], t->omega = ts[2], t->pg = ts[3];
  if (t->penalty && (!t->u || !t->w)) luaL_error(L, "%s: a penalty needs the tensors terms.u and terms.w", op);
  t->lambda = num_field(L, idx, "lambda", 0, op);
  t->C = num_field(L, idx, "C", 0, op);
  t->scale = num_field(L, idx, "scale", 1, op);
  lua_getfield(L, idx, "have_value");
  t->have_value = lua_toboolean(L, -1);
  lua_pop(L, 1);
  if (t->have_value) t->value = num_field(L, idx, "value", 0, op);
  return t;
}

/* Writes the penalty's value back into the terms table (value, have_value). */
static void write_value(lua_State *L, int idx, const eg_step_terms *t) {
  if (!t || !t->penalty) return;
  lua_pushnumber(L, t->value);
  lua_setfield(L, idx, "value");
  lua_pushboolean(L, t->have_value);
  lua_setfield(L, idx, "have_value");
}

/* sgd_step(p, g, buf|nil, lr, momentum, dampening, nesterov, weight_decay, step [, mask [, terms]]) */
static int l_sgd_step(lua_State *L) {
  eg_tensor *p = eg_lua_checktensor(L, 1), *g = eg_lua_checktensor(L, 2), *buf = opt_tensor(L, 3);
  eg_sgd_config c;
  c.lr = luaL_checknumber(L, 4);
  c.momentum = luaL_checknumber(L, 5);
  c.dampening = luaL_checknumber(L, 6);
  c.nesterov = lua_toboolean(L, 7);
  c.weight_decay = luaL_checknumber(L, 8);
  int64_t step = check_step(L, 9);
  eg_step_terms tt, *t = read_terms(L, 11, &tt, "sgd");
  eg_lua_try(L, eg_sgd_step_terms(p, g, buf, &c, step, opt_tensor(L, 10), t), "sgd");
  write_value(L, 11, t);
  return 0;
}

/* adam_step(p, g, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, step [, mask [, terms]]) */
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
  const char *op = c.decoupled ? "adamw" : "adam";
  eg_step_terms tt, *t = read_terms(L, 13, &tt, op);
  eg_lua_try(L, eg_adam_step_terms(p, g, m, v, &c, step, opt_tensor(L, 12), t), op);
  write_value(L, 13, t);
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

/* grad_sumsq_terms(sumsq, p, g [, terms]) -> sumsq + sum (g + the terms' penalty gradient)^2
** (and the penalty's value into terms.value) */
static int l_grad_sumsq_terms(lua_State *L) {
  double s = luaL_checknumber(L, 1);
  eg_tensor *p = eg_lua_checktensor(L, 2), *g = eg_lua_checktensor(L, 3);
  eg_step_terms tt, *t = read_terms(L, 4, &tt, "grad_norm");
  eg_lua_try(L, eg_grad_sumsq_terms(&s, p, g, t), "grad_norm");
  write_value(L, 4, t);
  lua_pushnumber(L, s);
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
                                     {"grad_sumsq_terms", l_grad_sumsq_terms},
                                     {NULL, NULL}};

void eg_lua_open_optim(lua_State *L) { luaL_setfuncs(L, functions, 0); }
