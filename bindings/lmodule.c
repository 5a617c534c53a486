/*
** lmodule.c — luaopen_engram_core, the entry of the C module `engram.core`.
** It makes the module table and lets each binding source add its part.
** The same entry is loaded by stock lua5.4 from build/lua/engram/core.so and
** preloaded (package.preload) by the `engram` command and engram_open().
*/
#include <cblas.h>

#include "lutil.h"

EG_API int luaopen_engram_core(lua_State *L);

int luaopen_engram_core(lua_State *L) {
  /* The module is compiled against one Lua; refuse a mismatched interpreter
  ** instead of corrupting its stack later. */
  luaL_checkversion(L);
  lua_newtable(L);
  lua_pushstring(L, EG_VERSION);
  lua_setfield(L, -2, "version");
  lua_pushinteger(L, eg_version());
  lua_setfield(L, -2, "version_num");
  /* Which OpenBLAS kernels run the matrix products (see main.c on why it varies). */
  lua_pushstring(L, openblas_get_corename());
  lua_setfield(L, -2, "blas_core");
  eg_lua_open_tensor(L);
  eg_lua_open_rng(L);
  eg_lua_open_nn(L);
  eg_lua_open_data(L);
  eg_lua_open_loss(L);
  eg_lua_open_optim(L);
  eg_lua_open_cl(L);
  return 1;
}
