/*
** lio.c — safe file writes for the Lua library (json.write_atomic, results,
** reports, the recipes' up-front --out check): thin wrappers over core/io.h.
*/
#include "io.h"
#include "lutil.h"

/* write_file_atomic(path, text) */
static int l_write_file_atomic(lua_State *L) {
  size_t n;
  const char *path = luaL_checkstring(L, 1), *text = luaL_checklstring(L, 2, &n);
  eg_lua_try(L, eg_write_file_atomic(path, text, n), "write_file_atomic");
  return 0;
}

/* check_writable(path [, probe bytes = 65536]) -> true, or nil, message */
static int l_check_writable(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  lua_Integer probe = luaL_optinteger(L, 2, 65536);
  luaL_argcheck(L, probe >= 0, 2, "probe size must be >= 0");
  if (eg_check_writable(path, (size_t)probe) != EG_OK) {
    lua_pushnil(L);
    lua_pushstring(L, eg_errmsg());
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

static const luaL_Reg functions[] = {
    {"write_file_atomic", l_write_file_atomic}, {"check_writable", l_check_writable}, {NULL, NULL}};

void eg_lua_open_io(lua_State *L) { luaL_setfuncs(L, functions, 0); }
