/*
** process.c — child processes for `engram search`: require "engram.process"
** (preloaded by the engram command only, not part of the module).
**
**   local process = require("engram.process")
**   local p = process.spawn({exe, "recipe.lua", "--lambda", "10"},
**                           {output = "point-1.log", env = {ENGRAM_EVAL_ON = "val"}})
**   while not p:poll() do process.sleep(0.05) end
**   print(p:poll())          --> "exit", 0   (or "signal", 15)
**
** A handle follows liolib's template: one metatable by name, methods behind
** __index, __gc and __close sharing one release. A child still running when
** its handle is closed or collected is killed (SIGKILL) and reaped, so no
** child outlives the program that started it. Also: sleep, the CPUs we may
** use, this program's path, and making and listing directories.
*/
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>

#include "cmd.h"

#define PROCESS_MT "engram.Process"

extern char **environ;

typedef struct {
  pid_t pid;  /* -1 until the child exists */
  int done;   /* reaped: status holds how it ended */
  int status; /* waitpid's status */
} process;

static process *check_process(lua_State *L) { return luaL_checkudata(L, 1, PROCESS_MT); }

/* Pushes how a finished child ended: "exit", code | "signal", number | "lost". */
static int push_end(lua_State *L, const process *p) {
  if (p->status == -1) {
    lua_pushliteral(L, "lost");
    return 1;
  }
  if (WIFSIGNALED(p->status)) {
    lua_pushliteral(L, "signal");
    lua_pushinteger(L, WTERMSIG(p->status));
  } else {
    lua_pushliteral(L, "exit");
    lua_pushinteger(L, WEXITSTATUS(p->status));
  }
  return 2;
}

/* Reaps a child that has ended (waitpid with flags: 0 blocks, WNOHANG does
** not); returns whether it has. */
static int reap(process *p, int flags) {
  pid_t r;
  int st = 0;
  if (p->pid <= 0 || p->done) return 1;
  do r = waitpid(p->pid, &st, flags);
  while (r < 0 && errno == EINTR);
  if (r == 0) return 0; /* still running */
  if (r == p->pid) {
    p->done = 1;
    p->status = st;
  } else if (r < 0 && errno == ECHILD) { /* reaped elsewhere: nothing left to wait for */
    p->done = 1;
    p->status = -1;
  }
  return p->done;
}

/* Kills a running child and reaps it (the shared release of __gc and __close). */
static int p_release(lua_State *L) {
  process *p = check_process(L);
  if (p->pid > 0 && !p->done) {
    kill(p->pid, SIGKILL);
    reap(p, 0);
  }
  return 0;
}

/* p:poll(): nil while the child runs; then how it ended ("exit", code or "signal", n). */
static int p_poll(lua_State *L) {
  process *p = check_process(L);
  if (!reap(p, WNOHANG)) {
    lua_pushnil(L);
    return 1;
  }
  return push_end(L, p);
}

/* p:wait(): blocks until the child ends; returns how it ended, as poll. */
static int p_wait(lua_State *L) {
  process *p = check_process(L);
  reap(p, 0);
  return push_end(L, p);
}

static const char *const signal_names[] = {"TERM", "KILL", "INT", NULL};
static const int signal_numbers[] = {SIGTERM, SIGKILL, SIGINT};

/* p:kill([sig]): sends "TERM" (default), "KILL" or "INT"; false when the child
** has already been reaped. */
static int p_kill(lua_State *L) {
  process *p = check_process(L);
  int sig = signal_numbers[luaL_checkoption(L, 2, "TERM", signal_names)];
  if (p->done || p->pid <= 0) {
    lua_pushboolean(L, 0);
    return 1;
  }
  if (kill(p->pid, sig) != 0) return luaL_error(L, "kill: cannot signal process %d: %s", (int)p->pid, strerror(errno));
  lua_pushboolean(L, 1);
  return 1;
}

static int p_pid(lua_State *L) {
  lua_pushinteger(L, check_process(L)->pid);
  return 1;
}

static int p_tostring(lua_State *L) {
  process *p = check_process(L);
  if (!p->done) lua_pushfstring(L, PROCESS_MT " (pid %d, running)", (int)p->pid);
  else if (p->status == -1) lua_pushfstring(L, PROCESS_MT " (pid %d, lost)", (int)p->pid);
  else if (WIFSIGNALED(p->status)) lua_pushfstring(L, PROCESS_MT " (pid %d, signal %d)", (int)p->pid, WTERMSIG(p->status));
  else lua_pushfstring(L, PROCESS_MT " (pid %d, exit %d)", (int)p->pid, WEXITSTATUS(p->status));
  return 1;
}

/* A NULL-terminated array of the strings t[1..n] (t at idx), kept alive by t;
** the array is a userdata left on the stack. */
static char **string_array(lua_State *L, int idx, lua_Integer n, const char *what) {
  lua_Integer i;
  char **a = lua_newuserdatauv(L, (size_t)(n + 1) * sizeof *a, 0);
  for (i = 1; i <= n; i++) {
    if (lua_rawgeti(L, idx, i) != LUA_TSTRING) {
      luaL_error(L, "spawn: %s[%d] must be a string, got %s", what, (int)i, luaL_typename(L, -1));
    }
    a[i - 1] = (char *)lua_tostring(L, -1); /* anchored by the table */
    lua_pop(L, 1);
  }
  a[n] = NULL;
  return a;
}

/* The environment for the child: ours, with opts.env's NAME = value pairs
** replacing or adding variables. Leaves its anchors on the stack. */
static char **child_env(lua_State *L, int env) {
  lua_Integer n = 0, k = 0, i;
  int list;
  char **out;
  if (env == 0) return environ;
  lua_newtable(L); /* "NAME=value" strings */
  list = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, env)) {
    if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
      luaL_error(L, "spawn: env must map names to strings, got %s = %s", luaL_typename(L, -2), luaL_typename(L, -1));
    if (strchr(lua_tostring(L, -2), '=') || lua_tostring(L, -2)[0] == '\0')
      luaL_error(L, "spawn: env name '%s' is empty or holds '='", lua_tostring(L, -2));
    lua_pushfstring(L, "%s=%s", lua_tostring(L, -2), lua_tostring(L, -1));
    lua_rawseti(L, list, ++k);
    lua_pop(L, 1);
  }
  while (environ[n]) n++;
  out = lua_newuserdatauv(L, (size_t)(n + k + 1) * sizeof *out, 0);
  n = 0;
  for (i = 0; environ[i]; i++) { /* ours, minus what is replaced */
    const char *eq = strchr(environ[i], '=');
    size_t len = eq ? (size_t)(eq - environ[i]) : strlen(environ[i]);
    int replaced = 0;
    lua_pushnil(L);
    while (!replaced && lua_next(L, env)) {
      const char *name = lua_tostring(L, -2);
      replaced = strlen(name) == len && strncmp(name, environ[i], len) == 0;
      lua_pop(L, replaced ? 2 : 1);
    }
    if (!replaced) out[n++] = environ[i];
  }
  for (i = 1; i <= k; i++) {
    lua_rawgeti(L, list, i);
    out[n++] = (char *)lua_tostring(L, -1); /* anchored by the list */
    lua_pop(L, 1);
  }
  out[n] = NULL;
  return out;
}

/* process.spawn(argv [, {output = path, env = {NAME = value}}]): runs the
** program argv[1] (a path: no PATH search) with argv as its arguments, its
** standard input /dev/null, its standard output and error to the file output
** (created or truncated; default: ours). Signals a Ctrl-C handler changed
** are reset for the child. Returns a handle. */
static int l_spawn(lua_State *L) {
  lua_Integer n;
  char **argv, **envp;
  const char *output = NULL;
  int env = 0, rc;
  process *p;
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  sigset_t def, none;
  luaL_checktype(L, 1, LUA_TTABLE);
  n = (lua_Integer)lua_rawlen(L, 1);
  luaL_argcheck(L, n >= 1, 1, "argv needs at least the program");
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    for (lua_pushnil(L); lua_next(L, 2); lua_pop(L, 1)) {
      const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?";
      if (strcmp(k, "output") != 0 && strcmp(k, "env") != 0)
        luaL_error(L, "spawn: unknown option '%s' (known: env, output)", k);
    }
    if (lua_getfield(L, 2, "output") != LUA_TNIL) {
      if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "spawn: output must be a path, got %s", luaL_typename(L, -1));
      output = lua_tostring(L, -1); /* anchored by the options table */
    }
    lua_pop(L, 1);
    if (lua_getfield(L, 2, "env") != LUA_TNIL) {
      if (lua_type(L, -1) != LUA_TTABLE) luaL_error(L, "spawn: env must be a table, got %s", luaL_typename(L, -1));
      env = lua_gettop(L);
    } else {
      lua_pop(L, 1);
    }
  }
  argv = string_array(L, 1, n, "argv");
  envp = child_env(L, env);
  /* The handle first, so that it exists (and is collectable) whatever happens. */
  p = lua_newuserdatauv(L, sizeof *p, 0);
  p->pid = -1;
  p->done = 1;
  p->status = -1;
  luaL_setmetatable(L, PROCESS_MT);
  /* No Lua error between the inits and the destroys below. */
  sigemptyset(&none);
  sigemptyset(&def);
  sigaddset(&def, SIGINT);
  sigaddset(&def, SIGTERM);
  sigaddset(&def, SIGQUIT);
  sigaddset(&def, SIGPIPE);
  posix_spawn_file_actions_init(&fa);
  posix_spawnattr_init(&attr);
  posix_spawnattr_setsigdefault(&attr, &def);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  if (output) {
    posix_spawn_file_actions_addopen(&fa, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
  }
  rc = posix_spawn(&p->pid, argv[0], &fa, &attr, argv, envp);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    p->pid = -1;
    return luaL_error(L, "spawn: cannot run %s%s%s: %s", argv[0], output ? " with its output to " : "",
                      output ? output : "", strerror(rc));
  }
  p->done = 0;
  return 1;
}

/* process.sleep(seconds): false when a signal (Ctrl-C) cut it short. */
static int l_sleep(lua_State *L) {
  lua_Number s = luaL_checknumber(L, 1);
  struct timespec ts;
  luaL_argcheck(L, s >= 0 && s <= 1e6, 1, "seconds must be between 0 and 1e6");
  ts.tv_sec = (time_t)s;
  ts.tv_nsec = (long)((s - (lua_Number)ts.tv_sec) * 1e9);
  lua_pushboolean(L, nanosleep(&ts, NULL) == 0);
  return 1;
}

/* process.cpus(): the CPUs this process may run on. */
static int l_cpus(lua_State *L) {
  cpu_set_t set;
  long n = 0;
  if (sched_getaffinity(0, sizeof set, &set) == 0) n = CPU_COUNT(&set);
  if (n < 1) n = sysconf(_SC_NPROCESSORS_ONLN);
  lua_pushinteger(L, n < 1 ? 1 : n);
  return 1;
}

/* process.self(): the path of the running program (/proc/self/exe), or nil and a message. */
static int l_self(lua_State *L) {
  char buf[4096];
  ssize_t len = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (len <= 0 || (size_t)len >= sizeof buf - 1) {
    lua_pushnil(L);
    lua_pushfstring(L, "self: cannot read /proc/self/exe: %s", len < 0 ? strerror(errno) : "path too long");
    return 2;
  }
  lua_pushlstring(L, buf, (size_t)len);
  return 1;
}

static int is_dir(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* process.mkdir(path): makes the directory and any missing parents; true,
** or nil and a message. An existing directory is fine. */
static int l_mkdir(lua_State *L) {
  size_t len, i;
  const char *path = luaL_checklstring(L, 1, &len);
  char *buf;
  luaL_argcheck(L, len > 0, 1, "empty path");
  buf = lua_newuserdatauv(L, len + 1, 0);
  memcpy(buf, path, len + 1);
  for (i = 1; i <= len; i++) { /* each prefix ending before a '/', then the whole path */
    if ((i == len || path[i] == '/') && path[i - 1] != '/') {
      buf[i] = '\0';
      if (mkdir(buf, 0777) != 0 && !(errno == EEXIST && is_dir(buf))) {
        int e = errno;
        lua_pushnil(L);
        lua_pushfstring(L, "cannot make directory %s: %s", buf, e == EEXIST ? "a file of that name exists" : strerror(e));
        return 2;
      }
      buf[i] = path[i];
    }
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* process.list(dir): the names in the directory (without . and ..), in
** readdir's order; or nil and a message. */
static int l_list(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  DIR *d = opendir(path);
  struct dirent *e;
  lua_Integer n = 0;
  if (d == NULL) {
    lua_pushnil(L);
    lua_pushfstring(L, "cannot list %s: %s", path, strerror(errno));
    return 2;
  }
  lua_newtable(L);
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    lua_pushstring(L, e->d_name); /* a memory error here would leak d: names are short */
    lua_rawseti(L, -2, ++n);
  }
  closedir(d);
  return 1;
}

static const luaL_Reg methods[] = {{"poll", p_poll}, {"wait", p_wait}, {"kill", p_kill},
                                   {"pid", p_pid},   {"close", p_release}, {NULL, NULL}};
static const luaL_Reg meta[] = {{"__gc", p_release}, {"__close", p_release}, {"__tostring", p_tostring},
                                {"__index", NULL},   {NULL, NULL}};
static const luaL_Reg functions[] = {{"spawn", l_spawn}, {"sleep", l_sleep}, {"cpus", l_cpus}, {"self", l_self},
                                     {"mkdir", l_mkdir}, {"list", l_list},   {NULL, NULL}};

int cmd_open_process(lua_State *L) {
  luaL_newmetatable(L, PROCESS_MT);
  luaL_setfuncs(L, meta, 0);
  luaL_newlib(L, methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  luaL_newlib(L, functions);
  return 1;
}
