/*
** lloss.c — the loss kernels for lua/engram/loss.lua, as plain functions of
** engram.core. Each returns the mean loss and, when given a gradient buffer
** of the input's shape, overwrites it with d(mean loss)/d(input): one C call
** per batch for forward and backward together.
**
** Labels are class ids 0..C-1 (the dataset's own ids, as in PyTorch), so no
** index conversion happens here; the sample named in label errors is 1-based.
*/
#include "loss.h"
#include "lutil.h"

static eg_tensor *opt_tensor(lua_State *L, int idx) {
  return lua_isnoneornil(L, idx) ? NULL : eg_lua_checktensor(L, idx);
}

/* Checks labels with Lua's 1-based sample numbers before the core sees them. */
static void check_labels(lua_State *L, const eg_tensor *logits, const eg_tensor *labels, const eg_tensor *active,
                         const char *op) {
  if (logits->ndim == 2 && logits->shape[0] > 0)
    eg_lua_try(L, eg_check_labels(labels, logits->shape[0], logits->shape[1], active, 1, op), op);
}

/* cross_entropy(logits, labels [, grad [, active]]) -> mean loss */
static int l_cross_entropy(lua_State *L) {
  eg_tensor *x = eg_lua_checktensor(L, 1), *y = eg_lua_checktensor(L, 2);
  eg_tensor *g = opt_tensor(L, 3), *a = opt_tensor(L, 4);
  double v;
  check_labels(L, x, y, a, "cross_entropy");
  eg_lua_try(L, eg_cross_entropy(&v, g, x, y, a), "cross_entropy");
  lua_pushnumber(L, v);
  return 1;
}

/* cross_entropy_tasks(logits, labels, masks [T,C], tasks [B] (0-based) [, grad]) -> mean loss */
static int l_cross_entropy_tasks(lua_State *L) {
  eg_tensor *x = eg_lua_checktensor(L, 1), *y = eg_lua_checktensor(L, 2);
  eg_tensor *m = eg_lua_checktensor(L, 3), *t = eg_lua_checktensor(L, 4), *g = opt_tensor(L, 5);
  double v;
  eg_lua_try(L, eg_cross_entropy_tasks(&v, g, x, y, m, t), "cross_entropy");
  lua_pushnumber(L, v);
  return 1;
}

/* mse(input, target [, grad]) -> mean loss */
static int l_mse(lua_State *L) {
  eg_tensor *x = eg_lua_checktensor(L, 1), *t = eg_lua_checktensor(L, 2), *g = opt_tensor(L, 3);
  double v;
  eg_lua_try(L, eg_mse(&v, g, x, t), "mse");
  lua_pushnumber(L, v);
  return 1;
}

/* bce_with_logits(logits, target [, grad]) -> mean loss */
static int l_bce(lua_State *L) {
  eg_tensor *x = eg_lua_checktensor(L, 1), *t = eg_lua_checktensor(L, 2), *g = opt_tensor(L, 3);
  double v;
  eg_lua_try(L, eg_bce_logits(&v, g, x, t), "bce_with_logits");
  lua_pushnumber(L, v);
  return 1;
}

/* kl_distill(student, teacher, T [, grad [, active]]) -> T^2 * mean KL */
static int l_kl_distill(lua_State *L) {
  eg_tensor *s = eg_lua_checktensor(L, 1), *t = eg_lua_checktensor(L, 2);
  double T = luaL_checknumber(L, 3);
  eg_tensor *g = opt_tensor(L, 4), *a = opt_tensor(L, 5);
  double v;
  eg_lua_try(L, eg_kl_distill(&v, g, s, t, T, a), "kl_distill");
  lua_pushnumber(L, v);
  return 1;
}

/* accuracy_count(logits, labels [, active]) -> number of correct rows */
static int l_accuracy_count(lua_State *L) {
  eg_tensor *x = eg_lua_checktensor(L, 1), *y = eg_lua_checktensor(L, 2), *a = opt_tensor(L, 3);
  int64_t n;
  check_labels(L, x, y, NULL, "accuracy");
  eg_lua_try(L, eg_argmax_accuracy(&n, x, y, a), "accuracy");
  lua_pushinteger(L, (lua_Integer)n);
  return 1;
}

static const luaL_Reg functions[] = {{"cross_entropy", l_cross_entropy},
                                     {"cross_entropy_tasks", l_cross_entropy_tasks},
                                     {"mse", l_mse},
                                     {"bce_with_logits", l_bce},
                                     {"kl_distill", l_kl_distill},
                                     {"accuracy_count", l_accuracy_count},
                                     {NULL, NULL}};

void eg_lua_open_loss(lua_State *L) { luaL_setfuncs(L, functions, 0); }
