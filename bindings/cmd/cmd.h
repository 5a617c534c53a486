/*
** cmd.h — what the `engram` command's sources (main.c, repl.c, commands.c)
** share. Internal to the command: not the module, not API.
*/
#ifndef EG_CMD_H
#define EG_CMD_H

#include <stdio.h>

#include <lua.h>

#include "engram.h"

/* The program's name in messages (argv[0]'s last component). */
extern const char *cmd_progname;

/* main.c: "<progname>: <msg>" on standard error. */
void cmd_message(const char *msg);
/* Prints the error on top of the stack (if status is an error) and pops it. */
int cmd_report(lua_State *L, int status);
void cmd_print_usage(FILE *f);
/* Calls the function below narg arguments with the traceback handler;
** Ctrl-C interrupts it with an error instead of killing the program. */
int cmd_docall(lua_State *L, int narg, int nres);

/* commands.c */
/* Whether s can name a command: a lower-case letter, then letters, digits, '_' or '-'. */
int cmd_is_word(const char *s);
/* The usage, then the commands found on package.path with their summaries. */
void cmd_print_help(lua_State *L);
/* Whether engram.cmd.<word> is preloaded or found on package.path. */
int cmd_command_exists(lua_State *L, const char *word);
/* require("engram.cmd.<argv[at]>").main(args after it); 0 on an error (reported). */
int cmd_run_command(lua_State *L, char **argv, int argc, int at, int *exit_code);

/* repl.c: reads, runs and prints until end of input. */
void cmd_repl(lua_State *L);

/* process.c: luaopen_ of "engram.process" (child processes for `engram search`). */
int cmd_open_process(lua_State *L);

#endif
