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
#define ENGRAM_ELIMIT 6  /* a call reached its instruction or time limit */

/* A short name for a status ("syntax error"); never NULL, static storage. */
EG_API const char *engram_errstr(int status);

/* ---- handles ---- */
typedef struct engram_state engram_state;
typedef struct lua_State lua_State;

/* Opens a new state and stores it in *out. On failure *out may still hold a
** handle whose engram_errmsg() explains (or NULL when memory ran out before
** the handle existed); close it with engram_close() either way. */
EG_API int engram_open(engram_state **out);
/* ---- options: a sandbox, a memory cap, limits per call ----
** engram_options_init() fills the defaults (today's engram_open: full Lua, no
** cap, no limits); change fields, then engram_open_with(). The struct may
** grow (fields are appended): always start from engram_options_init. The
** strings and arrays are copied: they need not outlive engram_open_with.
**
**   engram_options o;
**   const char *dirs[] = {"/srv/job42", NULL};
**   engram_options_init(&o);
**   o.sandbox = 1; o.dirs = dirs;
**   o.memory_limit = 256u << 20; o.instruction_limit = 100000000;
**   if (engram_open_with(&E, &o) != ENGRAM_OK) ...
**
** The sandbox (sandbox != 0), for scripts the host does not trust:
**  - gone (calling them raises "<name>: not available in the sandbox"):
**    os.execute, os.exit, os.tmpname, os.setlocale, io.popen, io.tmpfile,
**    package.loadlib; os.getenv returns nil; the debug library is not
**    loaded; C modules are never searched (package.cpath is "", searchers
**    3 and 4 removed); chunks are text only (as in every engine).
**  - files: io.open, io.lines, io.input, io.output, loadfile, dofile,
**    os.remove, os.rename, require's file search and every engram function
**    that reads or writes a file (datasets, checkpoints, results, images)
**    reach only files inside `dirs` (read and write) and `read_dirs` (read
**    only); NULL lists mean no file at all. A path is resolved (realpath of
**    its directory, and of the file when it exists) before it is checked, so
**    neither ".." nor a symbolic link leads out; the resolved path is the one
**    opened. Refused: io.open returns nil, message; the others raise
**    "<op>: <path>: not allowed in the sandbox (...)". Standard input and
**    output stay (print, io.write, io.read).
**  - require "engram" works: the directory engram's Lua library was found in
**    at open is readable by require alone. package.path is that library,
**    then ?.lua and ?/init.lua in each of dirs and read_dirs.
**  - the environment (LUA_PATH, LUA_INIT) is not read; ENGRAM_DATA still
**    names where engram.data.fashion_mnist() looks, inside the directories.
**
** memory_limit counts the Lua state's memory and the C memory engram
** allocates while one of this header's functions runs (tensors, datasets,
** models): past it, the allocation fails. In Lua that is the error "not
** enough memory" (or "<op>: out of memory ..." from an engram function, after
** one full garbage collection and a retry), catchable by pcall; a call that
** fails that way returns ENGRAM_ENOMEM. OpenBLAS's own buffers and memory
** allocated while the host drives the Lua state through engram_lua()
** directly are not counted. A wrapped host buffer (engram_tensor_wrap) is the
** host's and not counted.
**
** instruction_limit (Lua VM instructions) and time_limit (wall-clock
** seconds) hold for each call of engram_dostring, engram_dofile,
** engram_tensor_read and engram_results_json: past either, the running code
** gets the error "instruction limit of N reached" / "time limit of S s
** reached", which pcall cannot absorb (every later instruction raises it
** again), and the call returns ENGRAM_ELIMIT. The counter and the clock are
** checked by a count hook every 1000 instructions: a single long C call (a
** large matrix product, loading a dataset, one training batch) is not
** interrupted; the limit takes effect at the next Lua instruction after it. */
typedef struct engram_options {
  size_t size;                  /* sizeof(engram_options), set by engram_options_init */
  int sandbox;                  /* nonzero: the sandbox above (default 0) */
  const char *const *dirs;      /* sandbox: readable and writable directories, NULL-terminated (default NULL: none) */
  const char *const *read_dirs; /* sandbox: read-only directories, NULL-terminated (default NULL: none) */
  size_t memory_limit;          /* bytes; 0 (default): no cap */
  uint64_t instruction_limit;   /* per call; 0 (default): none */
  double time_limit;            /* seconds per call; 0 (default): none */
} engram_options;

/* Fills *opts with the defaults. */
EG_API void engram_options_init(engram_options *opts);
/* engram_open with options (NULL: the defaults). A directory that does not
** exist, or options not made by engram_options_init, give ENGRAM_EMISUSE;
** *out follows engram_open's rules. */
EG_API int engram_open_with(engram_state **out, const engram_options *opts);

/* Bytes the engine holds now (its Lua state and the C memory counted as for
** memory_limit; see above), and the peak in *peak when peak is not NULL.
** 0 for a NULL handle. */
EG_API size_t engram_memory_used(engram_state *E, size_t *peak);

/* Closes the state and frees everything it owns; accepts NULL. */
EG_API void engram_close(engram_state *E);

/* ---- running code ---- */
/* Compiles and runs a Lua chunk (named "=chunk" in messages). */
EG_API int engram_dostring(engram_state *E, const char *chunk);
/* Runs the Lua file at path (NULL: standard input) with argc arguments
** argv[0..argc-1]: they are the chunk's `...` and arg[1..argc] of the global
** table `arg`, whose arg[0] is path. argv may be NULL when argc is 0. */
EG_API int engram_dofile(engram_state *E, const char *path, int argc, char **argv);

/* ---- tensors in and out ----
** A tensor is float32, row-major, of ndim (0..ENGRAM_MAXDIM) sizes; shape
** sizes are >= 0 (a 0-dimensional tensor has one element). `name` is a Lua
** global ("x") or a dotted path of fields ("data.x": missing tables are
** made, a non-table on the way is an error). `expr` is any Lua expression
** (a name, "model:forward(x)", "results[3]"), run under the engine's limits;
** it should have no side effects when the host reads twice (shape, then data). */
#define ENGRAM_MAXDIM 8

/* Sets name to a new tensor holding a copy of data[0 .. numel-1] (data may
** be NULL when numel is 0). The host keeps data. */
EG_API int engram_tensor_copy_in(engram_state *E, const char *name, const float *data, int ndim,
                                 const int64_t *shape);
/* Sets name to a tensor over data itself, without a copy: what the script
** writes into it, the host sees. The tensor (and every view of it) never
** frees data: the host keeps data alive and does not free it before
** engram_close(E). Not charged to memory_limit. */
EG_API int engram_tensor_wrap(engram_state *E, const char *name, float *data, int ndim, const int64_t *shape);
/* Evaluates expr, which must give a tensor: writes its number of dimensions
** to *ndim and its sizes to shape[0 .. ndim-1] (either may be NULL), and,
** when out is not NULL, copies its numel elements (row-major, whatever its
** strides) into out, which has room for cap floats: fewer is ENGRAM_EMISUSE
** (the shape is still written). Not a tensor: ENGRAM_EMISUSE. */
EG_API int engram_tensor_read(engram_state *E, const char *expr, int *ndim, int64_t shape[ENGRAM_MAXDIM],
                              float *out, size_t cap);
/* Evaluates expr, which must give a table (a results document, as
** learner:run() returns, or any table engram.json can encode: pretty JSON)
** or a string (returned as it is), and points *json at the text, NUL-
** terminated, its length in *len (len may be NULL). The text is owned by E
** and valid until the next engram_results_json or engram_close on E. */
EG_API int engram_results_json(engram_state *E, const char *expr, const char **json, size_t *len);

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
