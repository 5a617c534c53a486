/*
** embed.c — a host C program that runs engram through the embedding API
** (bindings/engram.h): it checks the library version, runs a chunk that
** makes tensors, reads a number back through the raw Lua state, and shows
** that an error is reported on the handle instead of killing the host.
** Exits 0 when every check holds; `make test` runs it.
*/
#include <stdio.h>
#include <string.h>

#include <lua.h>

#include "engram.h"

static int checks = 0, failures = 0;

static void check(int ok, const char *what) {
  printf("embed: %s: %s\n", ok ? "ok" : "FAILED", what);
  checks++;
  if (!ok) failures++;
}

int main(void) {
  engram_state *E = NULL;
  lua_State *L;
  int st;

  check(engram_version() == ENGRAM_VERSION_NUM, "header and library versions agree");
  st = engram_open(&E);
  if (st != ENGRAM_OK) {
    fprintf(stderr, "embed: engram_open: %s: %s\n", engram_errstr(st), engram_errmsg(E));
    engram_close(E);
    return 1;
  }
  L = engram_lua(E);

  /* 2x3 ones times 3x4 ones is a 2x4 matrix of threes: it sums to 24. */
  st = engram_dostring(E, "local a, b = engram.ones(2, 3), engram.ones(3, 4)\n"
                          "result = a:mm(b):sum()");
  if (st != ENGRAM_OK) fprintf(stderr, "embed: %s\n", engram_errmsg(E));
  check(st == ENGRAM_OK, "a chunk that makes tensors runs");
  lua_getglobal(L, "result");
  check(lua_isnumber(L, -1) && lua_tonumber(L, -1) == 24.0, "the host reads the sum (24) back");
  lua_pop(L, 1);

  st = engram_dostring(E, "error('from the recipe')");
  check(st == ENGRAM_ERUN && strstr(engram_errmsg(E), "from the recipe") != NULL,
        "a Lua error comes back as ENGRAM_ERUN with its message");
  st = engram_dostring(E, "this is not lua");
  check(st == ENGRAM_ESYNTAX, "a syntax error comes back as ENGRAM_ESYNTAX");
  st = engram_dofile(E, "/nonexistent/recipe.lua", 0, NULL);
  check(st == ENGRAM_EFILE, "a missing file comes back as ENGRAM_EFILE");
  check(engram_dostring(NULL, "x = 1") == ENGRAM_EMISUSE, "a NULL handle is refused");
  check(lua_gettop(L) == 0, "the Lua stack is left balanced");

  engram_close(E);
  engram_close(NULL);
  printf("embed: %d passed, %d failed\n", checks - failures, failures);
  return failures == 0 ? 0 : 1;
}
