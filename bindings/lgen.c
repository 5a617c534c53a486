/*
** lgen.c — engram.core's replay kernels: A-GEM's projection over a list of
** groups (cl_replay.c) and the VAE's reparameterisation and KL (gen.h).
*/
#include "cl.h"
#include "gen.h"
#include "lutil.h"

#define AGEM_MAX_GROUPS 64

/* The tensors of the list at idx into out (at most AGEM_MAX_GROUPS); their number. */
static int tensor_list(lua_State *L, int idx, eg_tensor **out, const char *what) {
  luaL_checktype(L, idx, LUA_TTABLE);
  int n = (int)luaL_len(L, idx);
  luaL_argcheck(L, n >= 1 && n <= AGEM_MAX_GROUPS, idx, "expected a list of 1 to 64 flat tensors");
  for (int i = 1; i <= n; i++) {
    lua_geti(L, idx, i);
    out[i - 1] = eg_lua_totensor(L, -1);
    if (!out[i - 1]) luaL_error(L, "agem_project: %s %d is not a tensor", what, i);
    lua_pop(L, 1);
  }
  return n;
}

/* agem_project({g...}, {ref...}) -> projected (boolean), g.ref */
static int l_agem_project(lua_State *L) {
  eg_tensor *g[AGEM_MAX_GROUPS], *r[AGEM_MAX_GROUPS];
  int n = tensor_list(L, 1, g, "gradient");
  int m = tensor_list(L, 2, r, "reference gradient");
  if (n != m) return luaL_error(L, "agem_project: %d gradients but %d reference gradients", n, m);
  double d;
  int proj;
  eg_lua_try(L, eg_agem_project(g, (const eg_tensor *const *)r, n, &d, &proj), "agem_project");
  lua_pushboolean(L, proj);
  lua_pushnumber(L, d);
  return 2;
}

/* vae_reparam_forward(z, eps, h [, gen | false]): false uses eps as given */
static int l_reparam_forward(lua_State *L) {
  eg_tensor *z = eg_lua_checktensor(L, 1), *e = eg_lua_checktensor(L, 2), *h = eg_lua_checktensor(L, 3);
  eg_rng *r = (lua_isboolean(L, 4) && !lua_toboolean(L, 4)) ? NULL : eg_lua_optrng(L, 4);
  eg_lua_try(L, eg_vae_reparam_forward(z, e, h, r), "vae_reparam_forward");
  return 0;
}

/* vae_reparam_backward(gh, gz, eps, h) */
static int l_reparam_backward(lua_State *L) {
  eg_tensor *gh = eg_lua_checktensor(L, 1), *gz = eg_lua_checktensor(L, 2);
  eg_tensor *e = eg_lua_checktensor(L, 3), *h = eg_lua_checktensor(L, 4);
  eg_lua_try(L, eg_vae_reparam_backward(gh, gz, e, h), "vae_reparam_backward");
  return 0;
}

/* vae_kl(h, scale [, gh]) -> scale * sum KL; gh += its gradient */
static int l_vae_kl(lua_State *L) {
  eg_tensor *h = eg_lua_checktensor(L, 1);
  float scale = (float)luaL_checknumber(L, 2);
  eg_tensor *gh = lua_isnoneornil(L, 3) ? NULL : eg_lua_checktensor(L, 3);
  double v;
  eg_lua_try(L, eg_vae_kl(&v, gh, h, scale), "vae_kl");
  lua_pushnumber(L, v);
  return 1;
}

static const luaL_Reg functions[] = {{"agem_project", l_agem_project},
                                     {"vae_reparam_forward", l_reparam_forward},
                                     {"vae_reparam_backward", l_reparam_backward},
                                     {"vae_kl", l_vae_kl},
                                     {NULL, NULL}};

void eg_lua_open_gen(lua_State *L) { luaL_setfuncs(L, functions, 0); }
