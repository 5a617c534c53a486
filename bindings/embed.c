/*
** embed.c — the embedding API (engram.h): a Lua state with engram preloaded,
** running chunks and files under a traceback handler, the last error kept on
** the handle; the options: a memory cap (a counting Lua allocator and the
** core's allocation budget), instruction and time limits (a count hook), and
** the sandbox (embed_sandbox.c). Tensors in and out: embed_io.c. The
** `engram` command is built on it.
*/
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "embed_int.h"
#include "embed_lua.h"
#include "engram.h"

#ifndef EG_PREFIX
#define EG_PREFIX "/usr/local"
#endif

EG_API int luaopen_engram_core(lua_State *L);

int engram_version(void) { return EG_VERSION_NUM; }

const char *engram_errstr(int status) {
  switch (status) {
    case ENGRAM_OK: return "ok";
    case ENGRAM_ERUN: return "runtime error";
    case ENGRAM_ESYNTAX: return "syntax error";
    case ENGRAM_ENOMEM: return "out of memory";
    case ENGRAM_EFILE: return "cannot open or read file";
    case ENGRAM_EMISUSE: return "bad handle or argument";
    case ENGRAM_ELIMIT: return "instruction or time limit reached";
    default: return "unknown status";
  }
}

char *eg_embed_dup(const char *prefix, const char *s, size_t n) {
  eg_budget *b = eg_budget_use(NULL);
  size_t k = strlen(prefix);
  char *copy = n < SIZE_MAX - k ? eg_malloc(k + n + 1) : NULL;
  eg_budget_use(b);
  if (copy) {
    memcpy(copy, prefix, k);
    memcpy(copy + k, s, n);
    copy[k + n] = '\0';
  }
  return copy;
}

void eg_embed_free(void *p) {
  eg_budget *b = eg_budget_use(NULL);
  eg_free(p);
  eg_budget_use(b);
}

/* Keeps a copy of msg on E; when even the copy cannot be allocated the
** message falls back to a static one rather than failing again. */
int eg_embed_error(engram_state *E, int status, const char *msg) {
  char *copy = eg_embed_dup("", msg, strlen(msg));
  eg_embed_free(E->err);
  E->err = copy;
  E->err_lost = copy == NULL;
  return status;
}

static int from_lua_status(int st);

int eg_embed_take_error(engram_state *E, int st) {
  const char *msg = lua_type(E->L, -1) == LUA_TSTRING ? lua_tostring(E->L, -1) : NULL;
  int status = from_lua_status(st);
  eg_embed_error(E, status, msg ? msg : "(error object is not a string)");
  lua_pop(E->L, 1);
  return status;
}

static int from_lua_status(int st) {
  switch (st) {
    case LUA_OK: return ENGRAM_OK;
    case LUA_ERRSYNTAX: return ENGRAM_ESYNTAX;
    case LUA_ERRMEM: return ENGRAM_ENOMEM;
    case LUA_ERRFILE: return ENGRAM_EFILE;
    default: return ENGRAM_ERUN;
  }
}

int eg_embed_msghandler(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
    msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

/* The directories engram's Lua library may live in, as package.path
** templates. The tree the program runs from wins over the installed copy. */
static void push_engram_path(lua_State *L) {
  luaL_Buffer b;
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  luaL_buffinit(L, &b);
  if (n > 0) {
    char *slash;
    exe[n] = '\0';
    slash = strrchr(exe, '/');
    if (slash) {
      *slash = '\0';
      /* The build tree (build/engram -> lua/), then an installed tree moved
      ** as a whole (bin/engram -> share/lua/5.4/): relocatable, and right
      ** for a DESTDIR staging install too. */
      lua_pushfstring(L, "%s/../lua/?.lua;%s/../lua/?/init.lua;%s/../share/lua/5.4/?.lua;%s/../share/lua/5.4/?/init.lua;",
                      exe, exe, exe, exe);
      luaL_addvalue(&b);
    }
  }
  luaL_addstring(&b, "./lua/?.lua;./lua/?/init.lua;");
  luaL_addstring(&b, EG_PREFIX "/share/lua/5.4/?.lua;" EG_PREFIX "/share/lua/5.4/?/init.lua");
  luaL_pushresult(&b);
}

/* package.path: ours in front of the standard path. When the user set
** LUA_PATH_5_4 or LUA_PATH, their own entries keep priority: ours go where
** ";;" puts the default (Lua's own rule), or after their path. */
static void set_path(lua_State *L) {
  const char *user = getenv("LUA_PATH_5_4");
  const char *ours, *mark;
  if (user == NULL) user = getenv("LUA_PATH");
  lua_getglobal(L, "package");
  push_engram_path(L);
  ours = lua_tostring(L, -1);
  if (user == NULL) {
    lua_getfield(L, -2, "path");
    lua_pushfstring(L, "%s;%s", ours, lua_tostring(L, -1));
    lua_remove(L, -2);
  } else if ((mark = strstr(user, ";;")) == NULL) {
    lua_pushfstring(L, "%s;%s", user, ours);
  } else {
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    if (mark > user) {
      luaL_addlstring(&b, user, (size_t)(mark - user));
      luaL_addchar(&b, ';');
    }
    luaL_addstring(&b, ours);
    luaL_addchar(&b, ';');
    luaL_addstring(&b, LUA_PATH_DEFAULT);
    if (mark[2] != '\0') {
      luaL_addchar(&b, ';');
      luaL_addstring(&b, mark + 2);
    }
    luaL_pushresult(&b);
  }
  lua_setfield(L, -3, "path");
  lua_pop(L, 2);
}

/* ---- text chunks only ----
** Lua's loader trusts precompiled (binary) chunks: a tampered one crashes
** the process. load, loadfile, dofile and require accept text chunks only:
** a mode that asks for binary is an error, and every other mode becomes "t". */

/* The mode argument at idx made text-only (or an error naming `who`). */
static void text_mode(lua_State *L, int idx, const char *who) {
  const char *mode = luaL_optstring(L, idx, "bt");
  if (strchr(mode, 't') == NULL)
    luaL_error(L, "%s: binary chunks are not accepted (engram runs text chunks only)", who);
  lua_pushliteral(L, "t");
  lua_replace(L, idx);
}

/* load(chunk [, chunkname [, mode [, env]]]) with mode "t" */
static int text_load(lua_State *L) {
  int n = lua_gettop(L);
  if (n < 3) lua_settop(L, n = 3);
  text_mode(L, 3, "load");
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, n, LUA_MULTRET);
  return lua_gettop(L);
}

/* loadfile([filename [, mode [, env]]]) with mode "t" */
static int text_loadfile(lua_State *L) {
  int n = lua_gettop(L);
  if (n < 2) lua_settop(L, n = 2);
  text_mode(L, 2, "loadfile");
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, n, LUA_MULTRET);
  return lua_gettop(L);
}

static int dofile_cont(lua_State *L, int status, lua_KContext k) {
  (void)status, (void)k;
  return lua_gettop(L) - 1;
}

/* dofile([filename]) of a text chunk */
static int text_dofile(lua_State *L) {
  const char *fname = luaL_optstring(L, 1, NULL);
  lua_settop(L, 1);
  if (luaL_loadfilex(L, fname, "t") != LUA_OK) return lua_error(L);
  lua_callk(L, 0, LUA_MULTRET, 0, dofile_cont);
  return dofile_cont(L, 0, 0);
}

/* package.searchers[2]: a Lua module file from package.path, text only. */
static int text_searcher(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "searchpath");
  lua_pushstring(L, name);
  lua_getfield(L, -3, "path");
  lua_call(L, 2, 2);
  if (lua_isnil(L, -2)) return 1; /* the message of the paths tried */
  const char *filename = lua_tostring(L, -2);
  if (luaL_loadfilex(L, filename, "t") != LUA_OK)
    return luaL_error(L, "error loading module '%s' from file '%s':\n\t%s", name, filename, lua_tostring(L, -1));
  lua_pushstring(L, filename);
  return 2;
}

static void text_only(lua_State *L) {
  lua_getglobal(L, "load");
  lua_pushcclosure(L, text_load, 1);
  lua_setglobal(L, "load");
  lua_getglobal(L, "loadfile");
  lua_pushcclosure(L, text_loadfile, 1);
  lua_setglobal(L, "loadfile");
  lua_pushcfunction(L, text_dofile);
  lua_setglobal(L, "dofile");
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "searchers");
  lua_pushcfunction(L, text_searcher);
  lua_rawseti(L, -2, 2);
  lua_pop(L, 2);
}

/* ---- the Lua library compiled in ----
** A searcher after the file searchers (the build tree or the installed
** library win, as before): when neither is there — an installed tree moved
** elsewhere, a host run far from any install — engram's Lua library comes
** from the copy compiled into this library (tools/embed_lua.sh), text only.
** Engram's own modules alone: the sandbox keeps its rules for the rest. */
static int embedded_searcher(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  for (const eg_lua_module *m = eg_lua_modules; m->name; m++) {
    if (strcmp(m->name, name) == 0) {
      lua_pushfstring(L, "@[engram]/%s", m->file);
      if (luaL_loadbufferx(L, (const char *)m->text, m->size, lua_tostring(L, -1), "t") != LUA_OK)
        return luaL_error(L, "error loading module '%s' from engram's compiled-in library:\n\t%s", name,
                          lua_tostring(L, -1));
      lua_pushfstring(L, "[engram]/%s", m->file);
      return 2;
    }
  }
  lua_pushfstring(L, "no module '%s' in engram's compiled-in library", name);
  return 1;
}

/* Puts the searcher at package.searchers[at], moving those from there up
** (the sandbox has removed the C searchers: it goes where they were). */
static void add_embedded_searcher(lua_State *L, int at) {
  int n;
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "searchers");
  n = (int)lua_rawlen(L, -1);
  for (int i = n; i >= at; i--) {
    lua_rawgeti(L, -1, i);
    lua_rawseti(L, -2, i + 1);
  }
  lua_pushcfunction(L, embedded_searcher);
  lua_rawseti(L, -2, at);
  lua_pop(L, 2);
}

/* Runs in protected mode (the sandbox or NULL as a light userdata):
** standard libraries, the preloaded C module, the path, the sandbox. */
static int open_libs(lua_State *L) {
  eg_sandbox *sb = lua_touserdata(L, 1);
  luaL_openlibs(L);
  text_only(L);
  /* Preloading, as linit.c does for the standard libraries, makes
  ** require "engram.core" resolve the same in this program and in lua5.4. */
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_engram_core);
  lua_setfield(L, -2, "engram.core");
  lua_pop(L, 1);
  if (sb == NULL) {
    set_path(L);
    add_embedded_searcher(L, 3);
    return 0;
  }
  /* The sandbox reads no environment: engram's own directories only. */
  lua_getglobal(L, "package");
  push_engram_path(L);
  lua_setfield(L, -2, "path");
  lua_pop(L, 1);
  lua_pushcfunction(L, eg_sandbox_apply);
  lua_pushlightuserdata(L, sb);
  lua_call(L, 1, 0);
  add_embedded_searcher(L, 3);
  return 0;
}

static int bind_engram_global(lua_State *L) {
  lua_getglobal(L, "require");
  lua_pushliteral(L, "engram");
  lua_call(L, 1, 1);
  lua_setglobal(L, "engram");
  return 0;
}

/* ---- the memory cap and the limits ---- */

/* The Lua state's allocator: charges E's budget, so memory_limit covers Lua's
** own memory; a refusal is Lua's "not enough memory" (after its emergency
** collection). */
static void *budget_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  engram_state *E = ud;
  void *p;
  if (ptr == NULL) osize = 0; /* then osize is a type tag */
  if (nsize == 0) {
    free(ptr);
    eg_budget_give(&E->budget, osize);
    return NULL;
  }
  if (nsize > osize && !eg_budget_take(&E->budget, nsize - osize)) return NULL;
  p = realloc(ptr, nsize);
  if (p == NULL) {
    if (nsize > osize) eg_budget_give(&E->budget, nsize - osize);
    return NULL;
  }
  if (nsize < osize) eg_budget_give(&E->budget, osize - nsize);
  return p;
}

#define HOOK_EVERY 1000 /* instructions between two looks at the limits */

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The count hook. Once a limit is passed, every instruction raises the error
** again (count 1), so a pcall in the script cannot swallow it and go on. */
static void limit_hook(lua_State *L, lua_Debug *ar) {
  void *ud;
  engram_state *E;
  (void)ar;
  lua_getallocf(L, &ud);
  E = ud;
  E->instr += (uint64_t)lua_gethookcount(L);
  if (!E->limit_hit) {
    if (E->instr_limit && E->instr >= E->instr_limit) E->limit_hit = 1;
    if (E->time_limit > 0 && now() >= E->deadline) E->limit_hit = 2;
    if (!E->limit_hit) return;
  }
  lua_sethook(L, limit_hook, LUA_MASKCOUNT, 1);
  if (E->limit_hit == 1) luaL_error(L, "instruction limit of %I reached", (lua_Integer)E->instr_limit);
  luaL_error(L, "time limit of %f s reached", (LUAI_UACNUMBER)E->time_limit);
}

static void set_hook(engram_state *E) {
  int every = HOOK_EVERY;
  if (E->instr_limit == 0 && E->time_limit <= 0) return;
  if (E->instr_limit && E->instr_limit < (uint64_t)every) every = (int)E->instr_limit;
  lua_sethook(E->L, limit_hook, LUA_MASKCOUNT, every);
}

void eg_embed_enter(engram_state *E) {
  if (E->depth++ > 0) return;
  E->outer = eg_budget_use(&E->budget);
  E->budget.refused = 0;
  E->instr = 0;
  E->limit_hit = 0;
  if (E->time_limit > 0) E->deadline = now() + E->time_limit;
  set_hook(E);
}

int eg_embed_leave(engram_state *E, int st) {
  if (st == ENGRAM_ERUN && E->limit_hit) st = ENGRAM_ELIMIT;
  /* An engram function that ran out of budget raised an ordinary error. */
  if (st == ENGRAM_ERUN && E->budget.refused && E->err && strstr(E->err, "out of memory")) st = ENGRAM_ENOMEM;
  if (st == ENGRAM_ENOMEM && E->budget.refused && E->budget.limit && E->err) {
    char note[80], *msg;
    snprintf(note, sizeof note, "\n(the engine's memory_limit is %.1f MiB)", (double)E->budget.limit / 1048576.0);
    msg = eg_embed_dup(E->err, note, strlen(note));
    if (msg) {
      eg_embed_free(E->err);
      E->err = msg;
    }
  }
  if (--E->depth == 0) eg_budget_use(E->outer);
  return st;
}

void engram_options_init(engram_options *opts) {
  if (opts == NULL) return;
  memset(opts, 0, sizeof *opts);
  opts->size = sizeof *opts;
}

int engram_open(engram_state **out) { return engram_open_with(out, NULL); }

int engram_open_with(engram_state **out, const engram_options *opts) {
  engram_options o;
  engram_state *E;
  char why[512];
  int st;
  if (out == NULL) return ENGRAM_EMISUSE;
  *out = NULL;
  E = eg_calloc(1, sizeof *E);
  if (E == NULL) return ENGRAM_ENOMEM;
  *out = E;
  engram_options_init(&o);
  if (opts) {
    /* A host built against an older, shorter struct leaves the new fields at their defaults. */
    if (opts->size < offsetof(engram_options, sandbox) + sizeof opts->sandbox || opts->size > sizeof o)
      return eg_embed_error(E, ENGRAM_EMISUSE, "engram_open_with: options not made by engram_options_init");
    memcpy(&o, opts, opts->size);
  }
  if (!(o.time_limit >= 0) || o.time_limit > 1e9)
    return eg_embed_error(E, ENGRAM_EMISUSE, "engram_open_with: time_limit must be between 0 and 1e9 seconds");
  if (o.sandbox) {
    st = eg_sandbox_new(&E->sb, o.dirs, o.read_dirs, why, sizeof why);
    if (st != ENGRAM_OK) return eg_embed_error(E, st, why);
  }
  E->budget.limit = o.memory_limit;
  /* luaL_newstate for its panic and warning functions, then the counting
  ** allocator (both realloc/free underneath), charged for what exists. */
  E->L = luaL_newstate();
  if (E->L == NULL) return eg_embed_error(E, ENGRAM_ENOMEM, "cannot create the Lua state: not enough memory");
  lua_setallocf(E->L, budget_alloc, E);
  if (!eg_budget_take(&E->budget, (size_t)lua_gc(E->L, LUA_GCCOUNT, 0) * 1024 + (size_t)lua_gc(E->L, LUA_GCCOUNTB, 0)))
    return eg_embed_error(E, ENGRAM_ENOMEM, "engram_open_with: memory_limit is too small for a Lua state");
  eg_embed_enter(E);
  lua_pushcfunction(E->L, open_libs);
  lua_pushlightuserdata(E->L, E->sb);
  st = lua_pcall(E->L, 1, 0, 0);
  if (st != LUA_OK) return eg_embed_leave(E, eg_embed_take_error(E, st));
  /* Not fatal: a host may use the state without the Lua library installed.
  ** The reason stays readable through engram_errmsg(). */
  lua_pushcfunction(E->L, eg_embed_msghandler);
  lua_pushcfunction(E->L, bind_engram_global);
  st = lua_pcall(E->L, 0, 0, -2);
  if (st != LUA_OK) eg_embed_take_error(E, st);
  lua_pop(E->L, 1);
  eg_embed_leave(E, ENGRAM_OK);
  /* From here on: loading engram's library is not the script's budget. */
  E->instr_limit = o.instruction_limit;
  E->time_limit = o.time_limit;
  return ENGRAM_OK;
}

void engram_close(engram_state *E) {
  if (E == NULL) return;
  if (E->L) {
    eg_embed_enter(E); /* the collector gives tensors back to the budget */
    lua_close(E->L);
    E->L = NULL;
    eg_budget_use(E->outer);
  }
  eg_sandbox_free(E->sb);
  eg_embed_free(E->text);
  eg_embed_free(E->err);
  eg_free(E);
}

size_t engram_memory_used(engram_state *E, size_t *peak) {
  if (peak) *peak = E ? E->budget.peak : 0;
  return E ? E->budget.used : 0;
}

int eg_embed_call(engram_state *E, int narg, int nres) {
  lua_State *L = E->L;
  int base = lua_gettop(L) - narg;
  int st;
  lua_pushcfunction(L, eg_embed_msghandler);
  lua_insert(L, base);
  st = lua_pcall(L, narg, nres, base);
  lua_remove(L, base);
  if (st != LUA_OK) return eg_embed_take_error(E, st);
  return ENGRAM_OK;
}

int engram_dostring(engram_state *E, const char *chunk) {
  int st;
  if (E == NULL || E->L == NULL) return ENGRAM_EMISUSE;
  if (chunk == NULL) return eg_embed_error(E, ENGRAM_EMISUSE, "engram_dostring: chunk is NULL");
  eg_embed_enter(E);
  st = luaL_loadbufferx(E->L, chunk, strlen(chunk), "=(engram_dostring)", "t");
  if (st != LUA_OK) return eg_embed_leave(E, eg_embed_take_error(E, st));
  return eg_embed_leave(E, eg_embed_call(E, 0, 0));
}

struct file_args {
  const char *path;
  int argc;
  char **argv;
};

/* Protected (it allocates): sets the global `arg` and returns the arguments. */
static int push_file_args(lua_State *L) {
  const struct file_args *a = lua_touserdata(L, 1);
  int i;
  luaL_checkstack(L, a->argc + 2, "too many arguments to the script");
  lua_createtable(L, a->argc, 1);
  lua_pushstring(L, a->path ? a->path : "-");
  lua_rawseti(L, -2, 0);
  for (i = 0; i < a->argc; i++) {
    lua_pushstring(L, a->argv[i]);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setglobal(L, "arg");
  for (i = 0; i < a->argc; i++) lua_pushstring(L, a->argv[i]);
  return a->argc;
}

static int dofile(engram_state *E, const char *path, int argc, char **argv) {
  struct file_args a;
  lua_State *L = E->L;
  int st;
  if (!lua_checkstack(L, argc + 4)) return eg_embed_error(E, ENGRAM_ENOMEM, "engram_dofile: too many arguments");
  st = luaL_loadfilex(L, path, "t");
  if (st != LUA_OK) return eg_embed_take_error(E, st);
  a.path = path;
  a.argc = argc;
  a.argv = argv;
  lua_pushcfunction(L, push_file_args);
  lua_pushlightuserdata(L, &a);
  /* LUA_MULTRET, not argc: Lua keeps a call's result count in a short, so
  ** lua_pcall(L, 1, argc, 0) with 32768 or more arguments corrupts the stack. */
  st = lua_pcall(L, 1, LUA_MULTRET, 0);
  if (st != LUA_OK) {
    lua_remove(L, -2); /* the chunk */
    return eg_embed_take_error(E, st);
  }
  return eg_embed_call(E, argc, 0);
}

/* The host names the file: in the sandbox too it need not lie in the
** directories (the script's own file accesses are what the sandbox limits). */
int engram_dofile(engram_state *E, const char *path, int argc, char **argv) {
  if (E == NULL || E->L == NULL) return ENGRAM_EMISUSE;
  if (argc < 0 || (argc > 0 && argv == NULL))
    return eg_embed_error(E, ENGRAM_EMISUSE, "engram_dofile: argc/argv do not agree");
  eg_embed_enter(E);
  return eg_embed_leave(E, dofile(E, path, argc, argv));
}

const char *engram_errmsg(engram_state *E) {
  if (E == NULL) return "engram: NULL handle (engram_open failed for lack of memory?)";
  if (E->err == NULL) return E->err_lost ? "not enough memory to keep the error message" : "";
  return E->err;
}

lua_State *engram_lua(engram_state *E) { return E ? E->L : NULL; }
