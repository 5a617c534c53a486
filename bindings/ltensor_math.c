/*
** ltensor_math.c — the engram.Tensor methods that compute: arithmetic and
** comparisons with broadcasting, matrix products, reductions and equality
** tests (the Lua surface is listed in ltensor.c). Registered by ltensor.c.
*/
#include <math.h>
#include <string.h>

#include "ltensor.h"

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
  if (a || b) { /* one tensor, and the other operand must be the number */
    eg_tensor *t = a ? a : b;
    int is = a ? ib : ia;
    if (lua_type(L, is) != LUA_TNUMBER) bad_operand(L, is, name);
    float s = (float)lua_tonumber(L, is);
    eg_tensor *out = eg_lua_pushnew(L, t->ndim, t->shape, name);
    eg_lua_try(L, eg_binary_scalar(out, t, s, op, !a), name);
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

/* t:count_nonfinite() -> the number of NaN and infinite elements */
static int tl_count_nonfinite(lua_State *L) {
  int64_t k;
  eg_lua_try(L, eg_count_nonfinite(&k, eg_lua_checktensor(L, 1)), "count_nonfinite");
  lua_pushinteger(L, (lua_Integer)k);
  return 1;
}
static int tl_mean(lua_State *L) { return reduce(L, EG_MEAN); }
static int tl_max(lua_State *L) { return reduce(L, EG_MAX); }
static int tl_min(lua_State *L) { return reduce(L, EG_MIN); }
static int tl_argmax(lua_State *L) { return reduce(L, EG_ARGMAX); }
static int tl_argmin(lua_State *L) { return reduce(L, EG_ARGMIN); }
static int tl_prod(lua_State *L) { return reduce(L, EG_PROD); }
static int tl_norm(lua_State *L) { return reduce(L, EG_NORM2); }

/* What equal and allclose answer before looking at values: 0 (false) for
** different shapes, 1 (true) when there are no elements, -1 when the values decide. */
static int shape_decides(const eg_tensor *a, const eg_tensor *b) {
  if (!eg_same_shape(a, b)) return 0;
  return eg_numel(a) == 0 ? 1 : -1;
}

/* equal(b): same shape and same values (NaN is never equal). */
static int tl_equal(lua_State *L) {
  eg_tensor *a = eg_lua_checktensor(L, 1), *b = eg_lua_checktensor(L, 2);
  int known = shape_decides(a, b);
  if (known >= 0) {
    lua_pushboolean(L, known);
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
  int known = shape_decides(a, b);
  if (known >= 0) {
    lua_pushboolean(L, known);
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

/* ------------------------------------------------------------ registration */

const luaL_Reg eg_lua_tensor_math_methods[] = {
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
    {"argmin", tl_argmin}, {"prod", tl_prod}, {"norm", tl_norm}, {"count_nonfinite", tl_count_nonfinite},
    {NULL, NULL}};

const luaL_Reg eg_lua_tensor_math_meta[] = {{"__add", m_add}, {"__sub", m_sub}, {"__mul", m_mul},
                                            {"__div", m_div}, {"__pow", m_pow}, {"__unm", m_unm},
                                            {NULL, NULL}};

/* The function forms (engram.exp(t) == t:exp()). */
const luaL_Reg eg_lua_tensor_math_functions[] = {
    {"mm", tl_mm}, {"dot", tl_dot}, {"add", tl_add}, {"sub", tl_sub}, {"mul", tl_mul}, {"div", tl_div},
    {"pow", tl_pow}, {"maximum", tl_maximum}, {"minimum", tl_minimum}, {"clamp", tl_clamp},
    {"exp", tl_exp}, {"log", tl_log}, {"sqrt", tl_sqrt}, {"abs", tl_abs}, {"tanh", tl_tanh},
    {"sigmoid", tl_sigmoid}, {"relu", tl_relu}, {"sign", tl_sign}, {"floor", tl_floor},
    {"sum", tl_sum}, {"mean", tl_mean}, {"max", tl_max}, {"min", tl_min}, {"argmax", tl_argmax},
    {"argmin", tl_argmin}, {"norm", tl_norm}, {"equal", tl_equal}, {"allclose", tl_allclose},
    {NULL, NULL}};
