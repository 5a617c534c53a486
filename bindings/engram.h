/*
** engram.h — the embedding API: run engram recipes and Lua chunks from a
** host C program. If it is not in this header, it is not API.
**
**   engram_state *E;
**   if (engram_open(&E) != ENGRAM_OK) { fprintf(stderr, "%s\n", engram_errmsg(E)); ... }
**   if (engram_dostring(E, "x = engram.ones(2, 3):sum()") != ENGRAM_OK)
**     fprintf(stderr, "%s\n", engram_errmsg(E));
**   lua_State *L = engram_lua(E);   // read results with the Lua C API
**   engram_close(E);
**
** A handle is one Lua state with the standard libraries, the C module
** `engram.core` preloaded (so `require "engram"` needs no shared object) and
** the global `engram` bound to require("engram") when the Lua library is
** found. package.path gets, in front of the standard path: the Lua library
** next to the running program (<exe dir>/../lua), ./lua, and the installed
** one (PREFIX/share/lua/5.4); when LUA_PATH_5_4 or LUA_PATH is set, the
** user's path comes first and these follow it.
**
** Errors: every function that can fail returns a status; the message of the
** last failure (with a Lua traceback when the error came from running code)
** stays on the handle until the next call that fails, like sqlite3_errmsg.
** A handle is used by one thread at a time. Link with the engram binding
** objects, libengram.a, liblua5.4 and OpenBLAS (see the Makefile's
** build/examples/embed rule).
*/
#ifndef ENGRAM_H
#define ENGRAM_H

#include "eg_base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- version ---- */
/* Compile-time version of this header; compare with engram_version() at run
** time to catch a header/library mismatch. */
#define ENGRAM_VERSION EG_VERSION
#define ENGRAM_VERSION_MAJOR EG_VERSION_MAJOR
#define ENGRAM_VERSION_MINOR EG_VERSION_MINOR
#define ENGRAM_VERSION_PATCH EG_VERSION_PATCH
#define ENGRAM_VERSION_NUM EG_VERSION_NUM

/* The run-time version (ENGRAM_VERSION_NUM of the library linked in). */
EG_API int engram_version(void);

/* ---- status codes (values are appended, never reordered) ---- */
#define ENGRAM_OK 0
#define ENGRAM_ERUN 1    /* a Lua error while running a chunk or file */
#define ENGRAM_ESYNTAX 2 /* a chunk or file does not compile */
#define ENGRAM_ENOMEM 3  /* out of memory */
#define ENGRAM_EFILE 4   /* a file could not be opened or read */
#define ENGRAM_EMISUSE 5 /* a NULL handle or argument */

/* A short name for a status ("syntax error"); never NULL, static storage. */
EG_API const char *engram_errstr(int status);

/* ---- handles ---- */
typedef struct engram_state engram_state;
typedef struct lua_State lua_State;

/* Opens a new state and stores it in *out. On failure *out may still hold a
** handle whose engram_errmsg() explains (or NULL when memory ran out before
** the handle existed); close it with engram_close() either way. */
EG_API int engram_open(engram_state **out);
/* Closes the state and frees everything it owns; accepts NULL. */
EG_API void engram_close(engram_state *E);

/* ---- running code ---- */
/* Compiles and runs a Lua chunk (named "=chunk" in messages). */
EG_API int engram_dostring(engram_state *E, const char *chunk);
/* Runs the Lua file at path (NULL: standard input) with argc arguments
** argv[0..argc-1]: they are the chunk's `...` and arg[1..argc] of the global
** table `arg`, whose arg[0] is path. argv may be NULL when argc is 0. */
EG_API int engram_dofile(engram_state *E, const char *path, int argc, char **argv);

/* The message of the last failure on E ("" if none); owned by E, valid until
** the next call on E. Never NULL (a NULL E gives a fixed message). */
EG_API const char *engram_errmsg(engram_state *E);

/* The underlying Lua state, for hosts that push and read values directly.
** Owned by E: do not lua_close it. */
EG_API lua_State *engram_lua(engram_state *E);

#ifdef __cplusplus
}
#endif

#endif
