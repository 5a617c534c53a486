/* libFuzzer harness for the results reader: each input is decoded by
** engram's JSON decoder and, when it decodes, validated as a results
** document and encoded again, inside an engine opened through the embedding
** API (engram.h). A Lua error is a rejection; a crash or a sanitizer report
** is a bug. `make fuzz` runs it. */
#include <stdlib.h>

#include <lauxlib.h>
#include <lua.h>

#include "engram.h"

int LLVMFuzzerTestOneInput(const uint8_t *buf, size_t n);

static const char *CHUNK =
    "local text = ...\n"
    "local json, results = require('engram.json'), require('engram.results')\n"
    "local ok, v = pcall(json.decode, text)\n"
    "if ok then\n"
    "  pcall(results.validate, v)\n"
    "  pcall(json.encode, v)\n"
    "end\n";

int LLVMFuzzerTestOneInput(const uint8_t *buf, size_t n) {
  static engram_state *E;
  static int loaded;
  if (!E && engram_open(&E) != ENGRAM_OK) abort();
  lua_State *L = engram_lua(E);
  if (!loaded) {
    if (luaL_loadstring(L, CHUNK) != LUA_OK) abort();
    lua_setfield(L, LUA_REGISTRYINDEX, "fuzz_json");
    loaded = 1;
  }
  lua_getfield(L, LUA_REGISTRYINDEX, "fuzz_json");
  lua_pushlstring(L, (const char *)buf, n);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) lua_pop(L, 1);
  if (lua_gettop(L) != 0) abort();
  return 0;
}
