/*
** embed_sandbox.c — the sandbox of engram_open_with (its rules are in
** engram.h): the standard functions that reach the process or the system
** replaced by ones that refuse, and one path check that every file access
** goes through, Lua's (io, loadfile, dofile, os.remove, os.rename, require)
** and engram's C functions' (eg_lua_path, lutil.h).
**
** A path is resolved before it is checked and the resolved path is what gets
** opened: realpath of the file when it exists, else realpath of its directory
** plus its last name (which must not be a dangling symbolic link). Neither
** ".." nor a symbolic link can then lead out of the directories.
*/
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <lauxlib.h>
#include <lualib.h>

#include "embed_int.h"
#include "lutil.h"

#define SANDBOX_KEY "engram.sandbox" /* registry: the eg_sandbox, a light userdata */

struct eg_sandbox {
  char **dirs;  /* resolved, read and write; NULL-terminated */
  char **rdirs; /* resolved, read only */
  char *libdir; /* engram's Lua library: read by require alone; may be NULL */
};

/* ---- the sandbox's directories ---- */

static void free_list(char **l) {
  if (l == NULL) return;
  for (char **p = l; *p; p++) free(*p);
  eg_free(l);
}

void eg_sandbox_free(eg_sandbox *sb) {
  if (sb == NULL) return;
  free_list(sb->dirs);
  free_list(sb->rdirs);
  free(sb->libdir);
  eg_free(sb);
}

/* *out becomes the resolved copy of the NULL-terminated list in (NULL: empty). */
static int resolve_list(char ***out, const char *const *in, char *err, size_t n) {
  size_t k = 0, i;
  while (in && in[k]) k++;
  *out = eg_calloc(k + 1, sizeof **out);
  if (*out == NULL) return snprintf(err, n, "engram_open_with: out of memory"), ENGRAM_ENOMEM;
  for (i = 0; i < k; i++) {
    struct stat st;
    char *r = realpath(in[i], NULL);
    if (r == NULL) return snprintf(err, n, "engram_open_with: directory %s: %s", in[i], strerror(errno)), ENGRAM_EMISUSE;
    (*out)[i] = r;
    if (stat(r, &st) != 0 || !S_ISDIR(st.st_mode))
      return snprintf(err, n, "engram_open_with: %s is not a directory", in[i]), ENGRAM_EMISUSE;
  }
  return ENGRAM_OK;
}

int eg_sandbox_new(eg_sandbox **out, const char *const *dirs, const char *const *read_dirs, char *err, size_t n) {
  eg_sandbox *sb = eg_calloc(1, sizeof *sb);
  int st;
  *out = NULL;
  if (sb == NULL) return snprintf(err, n, "engram_open_with: out of memory"), ENGRAM_ENOMEM;
  st = resolve_list(&sb->dirs, dirs, err, n);
  if (st == ENGRAM_OK) st = resolve_list(&sb->rdirs, read_dirs, err, n);
  if (st != ENGRAM_OK) {
    eg_sandbox_free(sb);
    return st;
  }
  *out = sb;
  return ENGRAM_OK;
}

/* ---- the path check ---- */

/* Is the resolved path p dir itself or below it? */
static int inside(const char *p, const char *dir) {
  size_t n = strlen(dir);
  if (n == 1 && dir[0] == '/') return 1;
  return strncmp(p, dir, n) == 0 && (p[n] == '\0' || p[n] == '/');
}

static int inside_any(const char *p, char *const *dirs) {
  for (; *dirs; dirs++)
    if (inside(p, *dirs)) return 1;
  return 0;
}

/* out (PATH_MAX bytes) becomes path resolved; NULL, or why it cannot be. */
static const char *resolve(const char *path, char *out) {
  char buf[PATH_MAX], dir[PATH_MAX];
  struct stat st;
  char *slash, *base;
  size_t n = strlen(path);
  if (n == 0) return "an empty file name";
  if (n >= sizeof buf) return "the path is too long";
  if (realpath(path, out)) return NULL;
  if (errno != ENOENT) return strerror(errno);
  /* A file to be made: its directory must exist. */
  memcpy(buf, path, n + 1);
  slash = strrchr(buf, '/');
  base = slash ? slash + 1 : buf;
  if (*base == '\0' || strcmp(base, ".") == 0 || strcmp(base, "..") == 0) return "not a file name";
  if (slash == buf) {
    strcpy(dir, "/");
  } else if (slash) {
    *slash = '\0';
    if (realpath(buf, dir) == NULL) return strerror(errno);
  } else if (realpath(".", dir) == NULL) {
    return strerror(errno);
  }
  if ((size_t)snprintf(out, PATH_MAX, "%s/%s", strcmp(dir, "/") == 0 ? "" : dir, base) >= PATH_MAX)
    return "the path is too long";
  if (lstat(out, &st) == 0) return "a symbolic link to nothing";
  return NULL;
}

enum { P_READ = 1, P_WRITE = 2, P_MODULE = 4 };

/* NULL and the resolved path in out, or why path may not be used so. */
static const char *check(const eg_sandbox *sb, const char *path, int how, char *out) {
  const char *why = resolve(path, out);
  if (why) return why;
  if (inside_any(out, sb->dirs)) return NULL;
  if (!(how & P_WRITE) && inside_any(out, sb->rdirs)) return NULL;
  if ((how & P_MODULE) && sb->libdir && inside(out, sb->libdir)) return NULL;
  if ((how & P_WRITE) && inside_any(out, sb->rdirs)) return "not allowed in the sandbox (a read-only directory)";
  return "not allowed in the sandbox (outside its directories)";
}

static const eg_sandbox *sandbox_of(lua_State *L) {
  const eg_sandbox *sb;
  lua_getfield(L, LUA_REGISTRYINDEX, SANDBOX_KEY);
  sb = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return sb;
}

const char *eg_lua_trypath(lua_State *L, int arg, int write, const char *op) {
  char out[PATH_MAX];
  size_t n;
  const char *path = luaL_checklstring(L, arg, &n), *why;
  const eg_sandbox *sb = sandbox_of(L);
  if (sb == NULL) return path;
  why = strlen(path) != n ? "the path contains a NUL character" : check(sb, path, write ? P_WRITE : P_READ, out);
  if (why) {
    lua_pushfstring(L, "%s: %s: %s", op, path, why);
    return NULL;
  }
  lua_pushstring(L, out);
  lua_replace(L, arg);
  return lua_tostring(L, arg);
}

const char *eg_lua_path(lua_State *L, int arg, int write, const char *op) {
  const char *path = eg_lua_trypath(L, arg, write, op);
  if (path == NULL) lua_error(L);
  return path;
}

/* ---- the standard functions, sandboxed ---- */

/* upvalue 1: the name of a function the sandbox does not have */
static int refused(lua_State *L) {
  return luaL_error(L, "%s: not available in the sandbox", lua_tostring(L, lua_upvalueindex(1)));
}

static int no_getenv(lua_State *L) {
  luaL_checkstring(L, 1);
  lua_pushnil(L);
  return 1;
}

static int pass_results(lua_State *L, int status, lua_KContext base) {
  (void)status;
  return lua_gettop(L) - (int)base;
}

/* Flags of a checked function (upvalue 3): which string arguments are paths
** and how they are used. */
enum {
  C_ARG1 = 8,     /* argument 1 is a path (when a string) */
  C_ARG2 = 16,    /* argument 2 too (os.rename) */
  C_OPENMODE = 32,/* argument 2 is io.open's mode: it decides read or write */
  C_SOFT = 64     /* a refusal returns nil, message, EACCES (io.open, loadfile) */
};

/* A standard function whose path arguments go through the check first.
** upvalues: the original function, its name, the flags. */
static int checked(lua_State *L) {
  const eg_sandbox *sb = lua_touserdata(L, lua_upvalueindex(4));
  const char *name = lua_tostring(L, lua_upvalueindex(2));
  int flags = (int)lua_tointeger(L, lua_upvalueindex(3));
  int how = flags & (P_READ | P_WRITE), n;
  if (flags & C_OPENMODE) {
    const char *mode = luaL_optstring(L, 2, "r");
    how = strpbrk(mode, "wa+") ? P_WRITE : P_READ;
  }
  for (int arg = 1; arg <= 2; arg++) {
    char out[PATH_MAX];
    const char *path, *why;
    size_t len;
    /* Numbers too: io.open(42) opens the file "42". */
    if (!(flags & (arg == 1 ? C_ARG1 : C_ARG2)) || !lua_isstring(L, arg)) continue;
    path = lua_tolstring(L, arg, &len);
    why = strlen(path) != len ? "the path contains a NUL character" : check(sb, path, how, out);
    if (why == NULL) {
      lua_pushstring(L, out);
      lua_replace(L, arg);
    } else if (flags & C_SOFT) {
      lua_pushnil(L);
      lua_pushfstring(L, "%s: %s", path, why);
      lua_pushinteger(L, EACCES);
      return 3;
    } else {
      return luaL_error(L, "%s: %s: %s", name, path, why);
    }
  }
  n = lua_gettop(L);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_callk(L, n, LUA_MULTRET, 0, pass_results);
  return pass_results(L, LUA_OK, 0);
}

/* Replaces field `name` of the table on the top with checked(original). */
static void wrap_field(lua_State *L, const eg_sandbox *sb, const char *lib, const char *name, int flags) {
  lua_getfield(L, -1, name);
  lua_pushfstring(L, "%s%s%s", lib, *lib ? "." : "", name);
  lua_pushinteger(L, flags);
  lua_pushlightuserdata(L, (void *)sb);
  lua_pushcclosure(L, checked, 4);
  lua_setfield(L, -2, name);
}

static void refuse_field(lua_State *L, const char *lib, const char *name) {
  lua_pushfstring(L, "%s.%s", lib, name);
  lua_pushcclosure(L, refused, 1);
  lua_setfield(L, -2, name);
}

/* ---- require: Lua files from the sandbox's directories and engram's library ---- */

/* package.searchpath(name, path [, sep [, rep]]) over the files the sandbox
** lets require read: the resolved file name, or nil and the names tried. */
static int sandbox_searchpath(lua_State *L) {
  const eg_sandbox *sb = lua_touserdata(L, lua_upvalueindex(1));
  const char *name = luaL_checkstring(L, 1), *path = luaL_checkstring(L, 2);
  const char *sep = luaL_optstring(L, 3, "."), *rep = luaL_optstring(L, 4, LUA_DIRSEP);
  luaL_Buffer tried;
  if (*sep != '\0' && strchr(name, *sep)) name = luaL_gsub(L, name, sep, rep);
  luaL_buffinit(L, &tried);
  while (*path) {
    const char *end = strchr(path, ';');
    size_t len = end ? (size_t)(end - path) : strlen(path);
    if (len > 0) {
      char out[PATH_MAX];
      const char *file, *why;
      lua_pushlstring(L, path, len);
      file = luaL_gsub(L, lua_tostring(L, -1), LUA_PATH_MARK, name);
      why = check(sb, file, P_READ | P_MODULE, out);
      if (why == NULL) {
        FILE *f = fopen(out, "r");
        if (f) {
          fclose(f);
          lua_pushstring(L, out);
          return 1;
        }
      }
      lua_pushfstring(L, "\n\tno file '%s'%s%s", file, why ? ": " : "", why ? why : "");
      lua_remove(L, -2);
      lua_remove(L, -2);
      luaL_addvalue(&tried);
    }
    path += len + (end != NULL);
  }
  luaL_pushresult(&tried);
  lua_pushnil(L);
  lua_insert(L, -2);
  return 2;
}

/* package.searchers[2] in the sandbox: the file found as above, text only. */
static int sandbox_searcher(lua_State *L) {
  const char *name = luaL_checkstring(L, 1), *filename;
  lua_pushvalue(L, lua_upvalueindex(1)); /* sandbox_searchpath */
  lua_pushstring(L, name);
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "path");
  lua_remove(L, -2);
  if (lua_type(L, -1) != LUA_TSTRING) return luaL_error(L, "'package.path' must be a string");
  lua_call(L, 2, 2);
  if (lua_isnil(L, -2)) return 1;
  filename = lua_tostring(L, -2);
  if (luaL_loadfilex(L, filename, "t") != LUA_OK)
    return luaL_error(L, "error loading module '%s' from file '%s':\n\t%s", name, filename, lua_tostring(L, -1));
  lua_pushstring(L, filename);
  return 2;
}

/* The directory engram's Lua library was found in, from package.path as
** embed.c set it: <libdir>/engram/init.lua. */
static char *find_libdir(lua_State *L) {
  char *dir, *slash;
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "searchpath");
  lua_pushliteral(L, "engram");
  lua_getfield(L, -3, "path");
  lua_call(L, 2, 1);
  dir = lua_isstring(L, -1) ? realpath(lua_tostring(L, -1), NULL) : NULL;
  lua_pop(L, 2);
  if (dir == NULL) return NULL;
  for (int up = 0; up < 2 && (slash = strrchr(dir, '/')) != NULL; up++) {
    int init = strcmp(slash, "/init.lua") == 0;
    *slash = '\0';
    if (!init) break;
  }
  if (*dir == '\0') strcpy(dir, "/");
  return dir;
}

/* package.path in the sandbox: the library, then each directory. */
static void set_sandbox_path(lua_State *L, const eg_sandbox *sb) {
  luaL_Buffer b;
  char **lists[2] = {sb->dirs, sb->rdirs};
  luaL_buffinit(L, &b);
  if (sb->libdir) {
    lua_pushfstring(L, "%s/?.lua;%s/?/init.lua", sb->libdir, sb->libdir);
    luaL_addvalue(&b);
  }
  for (int k = 0; k < 2; k++)
    for (char **d = lists[k]; *d; d++) {
      lua_pushfstring(L, "%s%s/?.lua;%s/?/init.lua", luaL_bufflen(&b) ? ";" : "", *d, *d);
      luaL_addvalue(&b);
    }
  luaL_pushresult(&b);
  lua_setfield(L, -2, "path");
}

static void sandbox_package(lua_State *L, eg_sandbox *sb) {
  lua_getglobal(L, "package");
  sb->libdir = find_libdir(L);
  set_sandbox_path(L, sb);
  lua_pushliteral(L, "");
  lua_setfield(L, -2, "cpath");
  refuse_field(L, "package", "loadlib");
  lua_pushlightuserdata(L, sb);
  lua_pushcclosure(L, sandbox_searchpath, 1);
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "searchpath");
  lua_getfield(L, -2, "searchers");
  lua_insert(L, -2);
  lua_pushcclosure(L, sandbox_searcher, 1);
  lua_rawseti(L, -2, 2);
  lua_pushnil(L);
  lua_rawseti(L, -2, 4); /* the C searchers */
  lua_pushnil(L);
  lua_rawseti(L, -2, 3);
  lua_pop(L, 1);
  lua_getfield(L, -1, "loaded");
  lua_pushnil(L);
  lua_setfield(L, -2, LUA_DBLIBNAME);
  lua_pop(L, 2);
}

int eg_sandbox_apply(lua_State *L) {
  eg_sandbox *sb = lua_touserdata(L, 1);
  static const char *const os_gone[] = {"execute", "exit", "tmpname", "setlocale", NULL};
  lua_pushlightuserdata(L, sb);
  lua_setfield(L, LUA_REGISTRYINDEX, SANDBOX_KEY);
  sandbox_package(L, sb);
  lua_pushnil(L);
  lua_setglobal(L, LUA_DBLIBNAME);

  lua_getglobal(L, LUA_OSLIBNAME);
  for (const char *const *f = os_gone; *f; f++) refuse_field(L, "os", *f);
  lua_pushcfunction(L, no_getenv);
  lua_setfield(L, -2, "getenv");
  wrap_field(L, sb, "os", "remove", C_ARG1 | P_WRITE);
  wrap_field(L, sb, "os", "rename", C_ARG1 | C_ARG2 | P_WRITE);
  lua_pop(L, 1);

  lua_getglobal(L, LUA_IOLIBNAME);
  refuse_field(L, "io", "popen");
  refuse_field(L, "io", "tmpfile");
  wrap_field(L, sb, "io", "open", C_ARG1 | C_OPENMODE | C_SOFT);
  wrap_field(L, sb, "io", "lines", C_ARG1 | P_READ);
  wrap_field(L, sb, "io", "input", C_ARG1 | P_READ);
  wrap_field(L, sb, "io", "output", C_ARG1 | P_WRITE);
  lua_pop(L, 1);

  /* load, loadfile and dofile are already text-only (embed.c). */
  lua_pushglobaltable(L);
  wrap_field(L, sb, "", "loadfile", C_ARG1 | P_READ | C_SOFT);
  wrap_field(L, sb, "", "dofile", C_ARG1 | P_READ);
  lua_pop(L, 1);
  return 0;
}
