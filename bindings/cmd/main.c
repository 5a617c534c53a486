/*
** main.c — the `engram` command: runs recipes, -e chunks, standard input and
** subcommands (lua/engram/cmd/<word>.lua, commands.c), and opens the REPL
** (repl.c). Built on the embedding API (engram.h); what only a terminal
** program needs (signals, readline, printing values) lives in this folder.
** Modelled on lua.c. This file: the options, the messages, calling Lua with a
** traceback and Ctrl-C, and main.
*/
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cblas.h>

#include <lauxlib.h>
#include <lualib.h>

#include "cmd.h"
#include "embed_int.h"

const char *cmd_progname = "engram"; /* argv[0]'s last component, once main has run */

/* ---------------------------------------------------------------------------
** OpenBLAS kernels
*/

static int is_avx512_core(const char *name) {
  static const char *const cores[] = {"SkylakeX", "Cooperlake", "SapphireRapids"};
  size_t i;
  for (i = 0; i < sizeof cores / sizeof cores[0]; i++)
    if (strcasecmp(name, cores[i]) == 0) return 1;
  return 0;
}

/* Debian's OpenBLAS 0.3.21 does not recognise some AVX-512 CPUs (AMD Zen 4/5)
** and falls back to Haswell (AVX2) kernels; its SkylakeX kernels run sgemm
** about twice as fast there. OpenBLAS picks its kernels from OPENBLAS_CORETYPE
** while the library loads, before main(), so the only way to change the choice
** is to set the variable and exec ourselves again. ENGRAM_NO_REEXEC marks the
** second run (no loop) and lets a user opt out; an explicit OPENBLAS_CORETYPE
** always wins. If the exec fails we carry on with the kernels we have. */
static void prefer_avx512_blas(char **argv) {
  const char *core;
  if (getenv("OPENBLAS_CORETYPE") || getenv("ENGRAM_NO_REEXEC")) return;
  __builtin_cpu_init();
  if (!(__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512cd")))
    return;
  core = openblas_get_corename();
  if (core == NULL || is_avx512_core(core)) return;
  if (setenv("OPENBLAS_CORETYPE", "SkylakeX", 1) != 0 || setenv("ENGRAM_NO_REEXEC", "1", 1) != 0) return;
  execv("/proc/self/exe", argv);
  unsetenv("OPENBLAS_CORETYPE");
  unsetenv("ENGRAM_NO_REEXEC");
}

/* ---------------------------------------------------------------------------
** Messages, help and version
*/

void cmd_message(const char *msg) {
  fprintf(stderr, "%s: %s\n", cmd_progname, msg);
  fflush(stderr);
}

/* Prints the error on top of the stack (if status is an error) and pops it. */
int cmd_report(lua_State *L, int status) {
  if (status != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    cmd_message(msg ? msg : "(error object is not a string)");
    lua_pop(L, 1);
  }
  return status;
}

static void print_version(void) {
  const char *forced = getenv("OPENBLAS_CORETYPE");
  printf("engram %s (%s)\n", EG_VERSION, LUA_RELEASE);
  printf("%s\nOpenBLAS kernels: %s", openblas_get_config(), openblas_get_corename());
  if (forced) printf(" (OPENBLAS_CORETYPE=%s)", forced);
  printf("\n");
  fflush(stdout);
}

void cmd_print_usage(FILE *f) {
  fprintf(f,
          "usage: %s [options] [script [args]]\n"
          "       %s <command> [args]\n"
          "Options:\n"
          "  -e chunk       run the Lua chunk\n"
          "  -l name        require library 'name' into global 'name' (-l g=name: into g)\n"
          "  -i             open the REPL after running the script\n"
          "  -v, --version  show the engram, Lua and OpenBLAS versions\n"
          "  -h, --help     show this help and the commands\n"
          "  --             stop handling options\n"
          "  -              run standard input as a script (and stop handling options)\n",
          cmd_progname, cmd_progname);
}


/* ---------------------------------------------------------------------------
** Calling Lua: traceback handler, Ctrl-C as a hook
*/

static lua_State *globalL = NULL;
static volatile sig_atomic_t interrupted = 0;

/* The hook runs in the Lua thread, where raising an error is safe. */
static void lstop(lua_State *L, lua_Debug *ar) {
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
  luaL_error(L, "interrupted!");
}

/* A signal handler may not touch the state; lua_sethook is the one call that
** is safe here. A second Ctrl-C (SIG_DFL) kills a program stuck in C code. */
static void laction(int sig) {
  int flag = LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT;
  signal(sig, SIG_DFL);
  interrupted = 1;
  lua_sethook(globalL, lstop, flag, 1);
}

/* After Ctrl-C stopped a run: the error on top becomes "interrupted" and
** what engram.checkpoint says about the last checkpoint (which tasks it
** holds, how to resume), when a checkpoint was written or read. */
static int push_checkpoint_note(lua_State *L) {
  int top = lua_gettop(L);
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getfield(L, -1, "engram.checkpoint");
  if (lua_istable(L, -1) && lua_getfield(L, -1, "note") == LUA_TFUNCTION && lua_pcall(L, 0, 1, 0) == LUA_OK &&
      lua_type(L, -1) == LUA_TSTRING) {
    lua_pushfstring(L, "interrupted: %s", lua_tostring(L, -1));
    lua_replace(L, top + 1);
    lua_settop(L, top + 1);
    return 1;
  }
  lua_settop(L, top);
  return 0;
}

static void checkpoint_note(lua_State *L) {
  if (push_checkpoint_note(L)) lua_replace(L, -2); /* over the error message */
}

/* Calls the function below narg arguments with the traceback handler;
** Ctrl-C interrupts it with an error instead of killing the program. */
int cmd_docall(lua_State *L, int narg, int nres) {
  int status;
  int base = lua_gettop(L) - narg;
  lua_pushcfunction(L, eg_embed_msghandler);
  lua_insert(L, base);
  globalL = L;
  interrupted = 0;
  signal(SIGINT, laction);
  status = lua_pcall(L, narg, nres, base);
  signal(SIGINT, SIG_DFL);
  if (status != LUA_OK && interrupted) checkpoint_note(L);
  /* A Ctrl-C that came after the last Lua instruction must not fire later. */
  if (lua_gethook(L) == lstop) lua_sethook(L, NULL, 0, 0);
  lua_remove(L, base);
  return status;
}

static int dochunk(lua_State *L, int status) {
  if (status == LUA_OK) status = cmd_docall(L, 0, 0);
  return cmd_report(L, status);
}

static int dostring(lua_State *L, const char *s, const char *name) {
  return dochunk(L, luaL_loadbufferx(L, s, strlen(s), name, "t"));
}

/* -l name or -l g=name: global g (or name) = require(name). */
static int dolibrary(lua_State *L, char *spec) {
  int status;
  char *eq = strchr(spec, '=');
  const char *mod = eq ? eq + 1 : spec;
  lua_getglobal(L, "require");
  lua_pushstring(L, mod);
  status = cmd_docall(L, 1, 1);
  if (status == LUA_OK) {
    if (eq) *eq = '\0';
    lua_setglobal(L, spec);
    if (eq) *eq = '=';
  }
  return cmd_report(L, status);
}

/* ---------------------------------------------------------------------------
** Arguments, commands and main
*/

enum { HAS_ERROR = 1, HAS_I = 2, HAS_V = 4, HAS_E = 8, HAS_H = 16 };

/* Like lua.c's collectargs: checks the options, returns which were given and
** sets *first to the index of the script (argc when there is none). */
static int collectargs(char **argv, int *first) {
  int args = 0, i;
  for (i = 1; argv[i] != NULL; i++) {
    *first = i;
    if (argv[i][0] != '-') return args;
    switch (argv[i][1]) {
      case '-':
        if (argv[i][2] == '\0') {
          *first = i + 1;
          return args;
        }
        if (strcmp(argv[i], "--help") == 0) args |= HAS_H;
        else if (strcmp(argv[i], "--version") == 0) args |= HAS_V;
        else return args | HAS_ERROR;
        break;
      case '\0': return args; /* "-": standard input is the script */
      case 'i':
      case 'v':
      case 'h':
        if (argv[i][2] != '\0') return args | HAS_ERROR;
        args |= argv[i][1] == 'i' ? HAS_I : argv[i][1] == 'v' ? HAS_V : HAS_H;
        break;
      case 'e':
        args |= HAS_E;
        /* fallthrough */
      case 'l':
        if (argv[i][2] == '\0' && argv[++i] == NULL) {
          *first = i - 1;
          return args | HAS_ERROR;
        }
        break;
      default: return args | HAS_ERROR;
    }
  }
  *first = i;
  return args;
}

/* Runs the -e and -l options in order. */
static int runargs(lua_State *L, char **argv, int n) {
  int i;
  for (i = 1; i < n; i++) {
    char opt = argv[i][1];
    if (argv[i][0] != '-' || (opt != 'e' && opt != 'l')) continue;
    {
      char *extra = argv[i][2] != '\0' ? argv[i] + 2 : argv[++i];
      int status = opt == 'e' ? dostring(L, extra, "=(command line)") : dolibrary(L, extra);
      if (status != LUA_OK) return 0;
    }
  }
  return 1;
}

/* arg = {[0] = script (or the program), args after it...}, as scripts see it. */
static void set_arg_table(lua_State *L, char **argv, int argc, int script) {
  int i, first = script < argc ? script : 0;
  lua_createtable(L, argc - first, 1);
  for (i = first; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - first);
  }
  lua_setglobal(L, "arg");
}


struct cli {
  engram_state *E;
  int argc;
  char **argv;
  int exit_code;
};

/* A word names a script when such a file (not a directory) exists. */
static int is_script_file(const char *name) {
  struct stat st;
  return stat(name, &st) == 0 && !S_ISDIR(st.st_mode);
}

/* Runs the script, stdin, or a command at argv[at]. */
static int handle_script(lua_State *L, struct cli *c, int at) {
  const char *name = c->argv[at];
  int nargs = c->argc - at - 1;
  if (strcmp(name, "-") == 0 && strcmp(c->argv[at - 1], "--") != 0) name = NULL;
  else if (!is_script_file(name) && cmd_is_word(name)) {
    if (cmd_command_exists(L, name)) return cmd_run_command(L, c->argv, c->argc, at, &c->exit_code);
    if (strcmp(name, "help") == 0) {
      cmd_print_help(L);
      return 1;
    }
    cmd_message(lua_pushfstring(L, "cannot open %s: no such file, and no command '%s' (engram help lists commands)",
                            name, name));
    lua_pop(L, 1);
    return 0;
  }
  /* Ctrl-C in a script: an error at the next Lua instruction, as in cmd_docall */
  globalL = L;
  interrupted = 0;
  signal(SIGINT, laction);
  int st = engram_dofile(c->E, name, nargs, c->argv + at + 1);
  signal(SIGINT, SIG_DFL);
  if (lua_gethook(L) == lstop) lua_sethook(L, NULL, 0, 0);
  if (st != ENGRAM_OK) {
    if (interrupted && push_checkpoint_note(L)) {
      cmd_message(lua_tostring(L, -1));
      lua_pop(L, 1);
    } else {
      cmd_message(engram_errmsg(c->E));
    }
    return 0;
  }
  return 1;
}

/* Everything runs in protected mode, as in lua.c. */
static int pmain(lua_State *L) {
  struct cli *c = lua_touserdata(L, 1);
  char **argv = c->argv;
  int script = c->argc, args;
  lua_settop(L, 0);
  /* Only the command can start processes (engram search); not the module. */
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, cmd_open_process);
  lua_setfield(L, -2, "engram.process");
  lua_pop(L, 1);
  args = collectargs(argv, &script);
  if (args & HAS_ERROR) {
    const char *bad = argv[script];
    if (bad[1] == 'e' || bad[1] == 'l') fprintf(stderr, "%s: '%s' needs an argument\n", cmd_progname, bad);
    else fprintf(stderr, "%s: unrecognized option '%s'\n", cmd_progname, bad);
    cmd_print_usage(stderr);
    return 0;
  }
  if (args & HAS_H) {
    cmd_print_help(L);
    c->exit_code = EXIT_SUCCESS;
    return 0;
  }
  if (args & HAS_V) print_version();
  set_arg_table(L, argv, c->argc, script);
  if (!runargs(L, argv, script)) return 0;
  if (script < c->argc && !handle_script(L, c, script)) return 0;
  if (c->exit_code == -1) c->exit_code = EXIT_SUCCESS;
  if (args & HAS_I) {
    cmd_repl(L);
  } else if (script == c->argc && !(args & (HAS_E | HAS_V))) {
    if (lua_getglobal(L, "engram") == LUA_TNIL)
      cmd_message(lua_pushfstring(L, "warning: require \"engram\" failed: %s", engram_errmsg(c->E)));
    lua_settop(L, 0);
    cmd_repl(L);
  }
  return 0;
}

int main(int argc, char **argv) {
  struct cli c;
  lua_State *L;
  int status;
  prefer_avx512_blas(argv);
  if (argv[0] && argv[0][0]) {
    const char *slash = strrchr(argv[0], '/');
    cmd_progname = slash ? slash + 1 : argv[0];
  }
  c.argc = argc;
  c.argv = argv;
  c.exit_code = -1; /* set by pmain when everything succeeded */
  status = engram_open(&c.E);
  if (status != ENGRAM_OK) {
    cmd_message(c.E ? engram_errmsg(c.E) : "cannot create state: not enough memory");
    engram_close(c.E);
    return EXIT_FAILURE;
  }
  L = engram_lua(c.E);
  lua_pushcfunction(L, pmain);
  lua_pushlightuserdata(L, &c);
  status = lua_pcall(L, 1, 0, 0);
  cmd_report(L, status);
  engram_close(c.E);
  if (status != LUA_OK || c.exit_code == -1) return EXIT_FAILURE;
  return c.exit_code;
}
