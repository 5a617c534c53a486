/*
** lmodule.c — luaopen_engram_core, the entry of the C module `engram.core`.
** It makes the module table and lets each binding source add its part.
** The same entry is loaded by stock lua5.4 from build/lua/engram/core.so and
** preloaded (package.preload) by the `engram` command and engram_open().
*/
#include <cblas.h>
#include <unistd.h>

#include "lutil.h"

EG_API int luaopen_engram_core(lua_State *L);

/* isatty(fd) -> boolean: progress lines rewrite themselves only on a terminal. */
static int l_isatty(lua_State *L) {
  lua_Integer fd = luaL_optinteger(L, 1, 2);
  luaL_argcheck(L, fd >= 0 && fd <= 1024, 1, "file descriptor out of range");
  lua_pushboolean(L, isatty((int)fd));
  return 1;
}

int luaopen_engram_core(lua_State *L) {
  /* The module is compiled against one Lua; refuse a mismatched interpreter
  ** instead of corrupting its stack later. */
  luaL_checkversion(L);
  lua_newtable(L);
  lua_pushstring(L, EG_VERSION);
  lua_setfield(L, -2, "version");
  lua_pushinteger(L, eg_version());
  lua_setfield(L, -2, "version_num");
  /* Which OpenBLAS kernels run the matrix products (see bindings/cmd/main.c on why it varies). */
  lua_pushstring(L, openblas_get_corename());
  lua_setfield(L, -2, "blas_core");
  lua_pushcfunction(L, l_isatty);
  lua_setfield(L, -2, "isatty");
  eg_lua_open_tensor(L);
  eg_lua_open_rng(L);
  eg_lua_open_nn(L);
  eg_lua_open_data(L);
  eg_lua_open_text(L);
  eg_lua_open_loss(L);
  eg_lua_open_optim(L);
  eg_lua_open_cl(L);
  eg_lua_open_gen(L);
  eg_lua_open_attn(L);
  eg_lua_open_io(L);
  return 1;
}
