/*
** commands.c — the `engram` command's subcommands: `engram <word> [args]`
** runs require("engram.cmd.<word>").main(args); `engram help` lists the
** commands found under engram/cmd/ on package.path with their summaries.
*/
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "cmd.h"

int cmd_is_word(const char *s) {
  if (!islower((unsigned char)*s)) return 0;
  for (; *s; s++)
    if (!(islower((unsigned char)*s) || isdigit((unsigned char)*s) || *s == '_' || *s == '-')) return 0;
  return 1;
}

/* Protected: returns a sorted array of the command names found under
** engram/cmd/ in the directories of package.path. */
static int list_commands(lua_State *L) {
  const char *path, *p;
  lua_newtable(L); /* names as keys, to drop duplicates */
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "path");
  path = lua_tostring(L, -1);
  for (p = path; p && *p;) {
    const char *end = strchr(p, ';');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    /* Only "<dir>/?.lua" templates name a directory of modules. */
    if (n > 5 && strncmp(p + n - 5, "?.lua", 5) == 0) {
      DIR *d;
      lua_pushlstring(L, p, n - 5);
      lua_pushliteral(L, "engram/cmd");
      lua_concat(L, 2);
      d = opendir(lua_tostring(L, -1));
      lua_pop(L, 1);
      if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
          size_t len = strlen(e->d_name);
          if (len > 4 && strcmp(e->d_name + len - 4, ".lua") == 0 && e->d_name[0] != '.') {
            lua_pushlstring(L, e->d_name, len - 4);
            if (!cmd_is_word(lua_tostring(L, -1))) {
              lua_pop(L, 1);
              continue;
            }
            lua_pushboolean(L, 1);
            lua_settable(L, 1);
          }
        }
        closedir(d);
      }
    }
    p = end ? end + 1 : NULL;
  }
  lua_settop(L, 1);
  lua_newtable(L);
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    lua_pop(L, 1);
    lua_pushvalue(L, -1);
    lua_rawseti(L, 2, (lua_Integer)lua_rawlen(L, 2) + 1);
  }
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getfield(L, -1, LUA_TABLIBNAME);
  lua_getfield(L, -1, "sort");
  lua_pushvalue(L, 2);
  lua_call(L, 1, 0);
  lua_settop(L, 2);
  return 1;
}

/* Protected: the `summary` string a command module exports, or nil. */
static int command_summary(lua_State *L) {
  lua_getglobal(L, "require");
  lua_pushfstring(L, "engram.cmd.%s", lua_tostring(L, 1));
  lua_call(L, 1, 1);
  if (lua_type(L, -1) == LUA_TTABLE) lua_getfield(L, -1, "summary");
  else lua_pushnil(L);
  return 1;
}

void cmd_print_help(lua_State *L) {
  int top = lua_gettop(L);
  cmd_print_usage(stdout);
  printf("Commands (lua/engram/cmd/<name>.lua; run as 'engram <name> [args]'):\n");
  lua_pushcfunction(L, list_commands);
  if (lua_pcall(L, 0, 1, 0) == LUA_OK && lua_rawlen(L, -1) > 0) {
    lua_Integer i, n = (lua_Integer)lua_rawlen(L, -1);
    for (i = 1; i <= n; i++) {
      const char *name;
      lua_rawgeti(L, -1, i);
      name = lua_tostring(L, -1);
      lua_pushcfunction(L, command_summary);
      lua_pushvalue(L, -2);
      if (lua_pcall(L, 1, 1, 0) == LUA_OK && lua_type(L, -1) == LUA_TSTRING)
        printf("  %-12s %s\n", name, lua_tostring(L, -1));
      else
        printf("  %s\n", name);
      lua_pop(L, 2);
    }
  } else {
    printf("  (none found on package.path)\n");
  }
  lua_settop(L, top);
  printf("  help         this text\n"
         "The global 'engram' is require \"engram\" in scripts, -e chunks and the REPL.\n"
         "Environment: ENGRAM_HISTORY (REPL history file, default ~/.engram_history; empty: none),\n"
         "  LUA_PATH, LUA_CPATH, OPENBLAS_CORETYPE, ENGRAM_NO_REEXEC=1 (keep OpenBLAS's own choice),\n"
         "  ENGRAM_EVAL_ON=val (score on validation splits, as engram search does; ENGRAM_VALIDATION share).\n");
  fflush(stdout);
}

/* Whether engram.cmd.<word> is preloaded or found on package.path. */
int cmd_command_exists(lua_State *L, const char *word) {
  int found = 0, top = lua_gettop(L);
  const char *mod = lua_pushfstring(L, "engram.cmd.%s", word);
  if (lua_getglobal(L, "package") == LUA_TTABLE) {
    if (lua_getfield(L, -1, "preload") == LUA_TTABLE && lua_getfield(L, -1, mod) != LUA_TNIL) found = 1;
    lua_settop(L, top + 2);
    if (!found && lua_getfield(L, -1, "searchpath") == LUA_TFUNCTION) {
      lua_pushstring(L, mod);
      lua_getfield(L, top + 2, "path");
      found = lua_pcall(L, 2, 1, 0) == LUA_OK && lua_type(L, -1) == LUA_TSTRING;
    }
  }
  lua_settop(L, top);
  return found;
}

/* require("engram.cmd.<word>").main(args); its result is the exit status:
** nothing or true -> 0, false -> 1, an integer -> that integer. */
int cmd_run_command(lua_State *L, char **argv, int argc, int at, int *exit_code) {
  int i, status;
  lua_getglobal(L, "require");
  lua_pushfstring(L, "engram.cmd.%s", argv[at]);
  if (cmd_report(L, cmd_docall(L, 1, 1)) != LUA_OK) return 0;
  if (lua_type(L, -1) != LUA_TTABLE || lua_getfield(L, -1, "main") != LUA_TFUNCTION) {
    cmd_message(lua_pushfstring(L, "command '%s': module engram.cmd.%s has no main function", argv[at], argv[at]));
    lua_settop(L, 0);
    return 0;
  }
  lua_remove(L, -2);
  lua_createtable(L, argc - at - 1, 0);
  for (i = at + 1; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - at);
  }
  status = cmd_docall(L, 1, 1);
  if (cmd_report(L, status) != LUA_OK) return 0;
  if (lua_isinteger(L, -1)) *exit_code = (int)lua_tointeger(L, -1);
  else if (lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1)) *exit_code = EXIT_FAILURE;
  lua_pop(L, 1);
  return 1;
}