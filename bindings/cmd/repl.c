/*
** repl.c — the `engram` command's REPL, modelled on lua.c's: a line is tried
** as `return <line>` first so expressions print; while the syntax error ends
** in <eof>, another line is read; values are shown as tables, tensors and
** models print themselves; readline (history, completion of globals and
** fields) on a terminal, plain lines otherwise.
*/
#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <unistd.h>

#include <cblas.h>
#include <readline/history.h>
#include <readline/readline.h>

#include <lauxlib.h>
#include <lualib.h>

#include "cmd.h"

/* ---------------------------------------------------------------------------
** Showing values in the REPL
*/

enum { SHOW_DEPTH = 3, SHOW_ITEMS = 30, SHOW_WIDTH = 76 };

static int is_identifier(const char *s) {
  static const char *const reserved[] = {"and", "break", "do", "else", "elseif", "end", "false",
                                         "for", "function", "goto", "if", "in", "local", "nil",
                                         "not", "or", "repeat", "return", "then", "true", "until",
                                         "while"};
  size_t i;
  if (!(isalpha((unsigned char)*s) || *s == '_')) return 0;
  for (i = 1; s[i]; i++)
    if (!(isalnum((unsigned char)s[i]) || s[i] == '_')) return 0;
  for (i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
    if (strcmp(s, reserved[i]) == 0) return 0;
  return 1;
}

/* Pushes s as a Lua string literal. */
static void push_quoted(lua_State *L, int idx) {
  size_t n, i;
  const char *s = lua_tolstring(L, idx, &n);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luaL_addchar(&b, '"');
  for (i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') {
      luaL_addchar(&b, '\\');
      luaL_addchar(&b, (char)c);
    } else if (c == '\n') {
      luaL_addstring(&b, "\\n");
    } else if (c == '\t') {
      luaL_addstring(&b, "\\t");
    } else if (c < 32 || c == 127) {
      char esc[8];
      snprintf(esc, sizeof esc, "\\%u", (unsigned)c);
      luaL_addstring(&b, esc);
    } else {
      luaL_addchar(&b, (char)c);
    }
  }
  luaL_addchar(&b, '"');
  luaL_pushresult(&b);
}

static int key_rank(lua_State *L, int idx) {
  switch (lua_type(L, idx)) {
    case LUA_TNUMBER: return 0;
    case LUA_TSTRING: return 1;
    case LUA_TBOOLEAN: return 2;
    default: return 3;
  }
}

/* The order of keys in a shown table: numbers, strings, booleans, the rest. */
static int key_less(lua_State *L) {
  int ra = key_rank(L, 1), rb = key_rank(L, 2), less;
  if (ra != rb) less = ra < rb;
  else if (ra <= 1) less = lua_compare(L, 1, 2, LUA_OPLT);
  else if (ra == 2) less = !lua_toboolean(L, 1) && lua_toboolean(L, 2);
  else {
    int c = strcmp(luaL_typename(L, 1), luaL_typename(L, 2));
    less = c < 0 || (c == 0 && (uintptr_t)lua_topointer(L, 1) < (uintptr_t)lua_topointer(L, 2));
  }
  lua_pushboolean(L, less);
  return 1;
}

static void show(lua_State *L, int idx, int depth, int seen);

static void push_indent(lua_State *L, int depth) {
  char sp[2 * SHOW_DEPTH + 4];
  int n = 2 * depth < (int)sizeof sp ? 2 * depth : (int)sizeof sp - 1;
  memset(sp, ' ', (size_t)n);
  lua_pushlstring(L, sp, (size_t)n);
}

/* Pushes a readable rendering of the table at t: the sequence part first,
** then the other keys sorted; nested tables to SHOW_DEPTH, SHOW_ITEMS entries
** per table, on one line when it fits. */
static void show_table(lua_State *L, int t, int depth, int seen) {
  lua_Integer n = 0, nkeys, i, total, shown = 0;
  size_t width = 0;
  int multiline = 0, keys, pieces;
  luaL_checkstack(L, 12, "showing a nested table");
  lua_pushvalue(L, t);
  if (lua_rawget(L, seen) != LUA_TNIL) {
    lua_pop(L, 1);
    lua_pushfstring(L, "<cycle: %s>", luaL_tolstring(L, t, NULL));
    lua_remove(L, -2);
    return;
  }
  lua_pop(L, 1);
  while (lua_rawgeti(L, t, n + 1) != LUA_TNIL) {
    lua_pop(L, 1);
    n++;
  }
  lua_pop(L, 1);
  lua_newtable(L);
  keys = lua_gettop(L);
  nkeys = 0;
  lua_pushnil(L);
  while (lua_next(L, t)) {
    lua_pop(L, 1);
    if (lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1 && lua_tointeger(L, -1) <= n) continue;
    lua_pushvalue(L, -1);
    lua_rawseti(L, keys, ++nkeys);
  }
  total = n + nkeys;
  if (total == 0) {
    lua_pop(L, 1);
    lua_pushliteral(L, "{}");
    return;
  }
  if (depth >= SHOW_DEPTH) {
    lua_pop(L, 1);
    lua_pushfstring(L, "{...%I item%s}", (LUA_INTEGER)total, total == 1 ? "" : "s");
    return;
  }
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getfield(L, -1, LUA_TABLIBNAME);
  lua_getfield(L, -1, "sort");
  lua_pushvalue(L, keys);
  lua_pushcfunction(L, key_less);
  lua_call(L, 2, 0);
  lua_pop(L, 2);

  lua_pushvalue(L, t);
  lua_pushboolean(L, 1);
  lua_rawset(L, seen);
  lua_newtable(L);
  pieces = lua_gettop(L);
  for (i = 1; i <= n && shown < SHOW_ITEMS; i++, shown++) {
    lua_rawgeti(L, t, i);
    show(L, lua_gettop(L), depth + 1, seen);
    lua_remove(L, -2);
    lua_rawseti(L, pieces, shown + 1);
  }
  for (i = 1; i <= nkeys && shown < SHOW_ITEMS; i++, shown++) {
    int k;
    lua_rawgeti(L, keys, i);
    k = lua_gettop(L);
    if (lua_type(L, k) == LUA_TSTRING && is_identifier(lua_tostring(L, k))) {
      lua_pushvalue(L, k);
    } else {
      lua_pushliteral(L, "[");
      show(L, k, depth + 1, seen);
      lua_pushliteral(L, "]");
      lua_concat(L, 3);
    }
    lua_pushliteral(L, " = ");
    lua_pushvalue(L, k);
    lua_rawget(L, t);
    show(L, lua_gettop(L), depth + 1, seen);
    lua_remove(L, -2);
    lua_concat(L, 3);
    lua_remove(L, k);
    lua_rawseti(L, pieces, shown + 1);
  }
  if (total > shown) {
    lua_pushfstring(L, "... (%I more)", (LUA_INTEGER)(total - shown));
    lua_rawseti(L, pieces, ++shown);
  }
  lua_pushvalue(L, t);
  lua_pushnil(L);
  lua_rawset(L, seen);

  for (i = 1; i <= shown; i++) {
    size_t len;
    const char *s;
    lua_rawgeti(L, pieces, i);
    s = lua_tolstring(L, -1, &len);
    if (strchr(s, '\n')) multiline = 1;
    width += len + 2;
    lua_pop(L, 1);
  }
  if (!multiline && width + 2 * (size_t)depth <= SHOW_WIDTH) {
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addchar(&b, '{');
    for (i = 1; i <= shown; i++) {
      if (i > 1) luaL_addstring(&b, ", ");
      lua_rawgeti(L, pieces, i);
      luaL_addvalue(&b);
    }
    luaL_addchar(&b, '}');
    luaL_pushresult(&b);
  } else {
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, "{\n");
    for (i = 1; i <= shown; i++) {
      push_indent(L, depth + 1);
      luaL_addvalue(&b);
      lua_rawgeti(L, pieces, i);
      luaL_addvalue(&b);
      luaL_addstring(&b, ",\n");
    }
    push_indent(L, depth);
    luaL_addvalue(&b);
    luaL_addchar(&b, '}');
    luaL_pushresult(&b);
  }
  lua_remove(L, pieces);
  lua_remove(L, keys);
}

/* Pushes the rendering of the value at idx (an absolute index): __tostring
** when it has one, tables readably, nested strings quoted. */
static void show(lua_State *L, int idx, int depth, int seen) {
  if (lua_type(L, idx) == LUA_TTABLE) {
    if (luaL_getmetafield(L, idx, "__tostring") == LUA_TNIL) {
      show_table(L, idx, depth, seen);
      return;
    }
    lua_pop(L, 1);
  } else if (lua_type(L, idx) == LUA_TSTRING && depth > 0) {
    push_quoted(L, idx);
    return;
  }
  luaL_tolstring(L, idx, NULL);
  if (depth > 0 && strchr(lua_tostring(L, -1), '\n')) {
    /* A multi-line value (a tensor) inside a table: keep it indented. */
    lua_pushliteral(L, "\n");
    push_indent(L, depth);
    lua_concat(L, 2);
    luaL_gsub(L, lua_tostring(L, -2), "\n", lua_tostring(L, -1));
    lua_replace(L, -3);
    lua_pop(L, 1);
  }
}

/* Protected: prints its arguments on one line, separated by tabs. */
static int print_values(lua_State *L) {
  int n = lua_gettop(L), i, seen;
  luaL_Buffer b;
  lua_newtable(L);
  seen = lua_gettop(L);
  for (i = 1; i <= n; i++) {
    show(L, i, 0, seen);
    lua_replace(L, i);
  }
  lua_settop(L, n);
  luaL_buffinit(L, &b);
  for (i = 1; i <= n; i++) {
    if (i > 1) luaL_addchar(&b, '\t');
    lua_pushvalue(L, i);
    luaL_addvalue(&b);
  }
  luaL_addchar(&b, '\n');
  luaL_pushresult(&b);
  {
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    fwrite(s, 1, len, stdout);
    fflush(stdout);
  }
  return 0;
}

/* ---------------------------------------------------------------------------
** Reading lines: readline on a terminal, plain lines otherwise
*/

enum { READ_EOF = 0, READ_LINE = 1, READ_INTR = -1 };

static int use_readline = 0;
static char *history_path = NULL; /* NULL: no history file */
static char *rl_line = NULL;
static int rl_line_done = 0;
static volatile sig_atomic_t prompt_interrupted = 0;

static void on_rl_line(char *line) {
  rl_line = line;
  rl_line_done = 1;
  /* Removing the handler here keeps readline from drawing the prompt again. */
  rl_callback_handler_remove();
}

static void on_prompt_sigint(int sig) {
  (void)sig;
  prompt_interrupted = 1;
}

/* readline's callback interface, so that Ctrl-C (which interrupts select)
** can drop the line being typed without a longjmp out of readline. */
static int read_line_rl(const char *prompt, char **out) {
  struct sigaction sa, old;
  int result = READ_EOF, fd = fileno(rl_instream ? rl_instream : stdin);
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_prompt_sigint;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &old); /* no SA_RESTART: select must see EINTR */
  prompt_interrupted = 0;
  rl_line = NULL;
  rl_line_done = 0;
  rl_callback_handler_install(prompt, on_rl_line);
  for (;;) {
    fd_set fds;
    int n;
    FD_ZERO(&fds);
    FD_SET(fd, &fds);
    n = select(fd + 1, &fds, NULL, NULL, NULL);
    if (n < 0 && errno == EINTR) {
      if (!prompt_interrupted) continue;
      rl_free_line_state();
      rl_callback_sigcleanup();
      rl_cleanup_after_signal();
      rl_callback_handler_remove();
      fputs("\n", stdout);
      fflush(stdout);
      result = READ_INTR;
      break;
    }
    if (n < 0) {
      rl_callback_handler_remove();
      break;
    }
    rl_callback_read_char();
    if (rl_line_done) {
      if (rl_line) {
        *out = rl_line;
        result = READ_LINE;
      } else {
        fputs("\n", stdout);
        fflush(stdout);
      }
      break;
    }
  }
  sigaction(SIGINT, &old, NULL);
  return result;
}

static int read_line_plain(char **out) {
  char *buf = NULL;
  size_t cap = 0;
  ssize_t n = getline(&buf, &cap, stdin);
  if (n < 0) {
    free(buf);
    return READ_EOF;
  }
  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) buf[--n] = '\0';
  *out = buf;
  return READ_LINE;
}

static const char *get_prompt(lua_State *L, int first) {
  const char *p;
  if (lua_getglobal(L, first ? "_PROMPT" : "_PROMPT2") == LUA_TNIL) p = first ? "> " : ">> ";
  else p = lua_tostring(L, -1) ? lua_tostring(L, -1) : (first ? "> " : ">> ");
  return p; /* the value stays on the stack so p stays valid; caller pops */
}

/* Reads one line and pushes it. Returns READ_LINE, READ_EOF or READ_INTR. */
static int pushline(lua_State *L, int first) {
  char *line = NULL;
  int r;
  if (use_readline) {
    const char *prompt = get_prompt(L, first);
    r = read_line_rl(prompt, &line);
    lua_pop(L, 1);
  } else {
    r = read_line_plain(&line);
  }
  if (r == READ_LINE) {
    lua_pushstring(L, line);
    free(line);
  }
  return r;
}

/* Multi-line chunks go into the history as one line when that is still the
** same code (no line comment would swallow what follows). */
static void save_history(const char *chunk) {
  if (!use_readline || chunk[0] == '\0') return;
  if (strchr(chunk, '\n') && !strstr(chunk, "--")) {
    char *p, *joined = strdup(chunk);
    if (joined == NULL) return;
    for (p = joined; *p; p++)
      if (*p == '\n') *p = ' ';
    add_history(joined);
    free(joined);
  } else {
    add_history(chunk);
  }
  /* Appending keeps history even if the session is killed; write failures are ignored. */
  if (history_path && append_history(1, history_path) != 0) write_history(history_path);
}

static int incomplete(lua_State *L, int status) {
  if (status == LUA_ERRSYNTAX) {
    size_t len;
    const char *msg = lua_tolstring(L, -1, &len);
    if (len >= 5 && strcmp(msg + len - 5, "<eof>") == 0) {
      lua_pop(L, 1);
      return 1;
    }
  }
  return 0;
}

enum { CHUNK_EOF = -1, CHUNK_INTR = -2 };

/* Compiles the text on top as "return <text>" (so expressions print) and,
** failing that, as a statement; pushes the function or the error. Sets
** *more when either form stopped at <eof> (the user is not done typing). */
static int compile(lua_State *L, int *more) {
  size_t len;
  const char *code;
  int status, ret_more;
  lua_pushfstring(L, "return %s", lua_tostring(L, -1));
  code = lua_tolstring(L, -1, &len);
  status = luaL_loadbufferx(L, code, len, "=stdin", "t");
  if (status == LUA_OK) {
    lua_remove(L, -2);
    *more = 0;
    return status;
  }
  ret_more = incomplete(L, status);
  lua_settop(L, lua_gettop(L) - (ret_more ? 1 : 2));
  code = lua_tolstring(L, -1, &len);
  status = luaL_loadbufferx(L, code, len, "=stdin", "t");
  if (status == LUA_OK) {
    *more = 0;
  } else if (incomplete(L, status)) {
    *more = 1;
  } else {
    *more = ret_more;
    if (ret_more) lua_pop(L, 1); /* e.g. "{": an unfinished expression */
  }
  return status;
}

/* Reads a chunk (one line, or more while it is incomplete) and pushes its
** compiled function or the error message. Returns the load status,
** CHUNK_EOF or CHUNK_INTR (nothing pushed). *quiet is set when the chunk
** ends with ';' (do not print its values). */
static int loadline(lua_State *L, int *quiet) {
  int status, r, more;
  size_t len;
  const char *code;
  r = pushline(L, 1);
  if (r != READ_LINE) return r == READ_EOF ? CHUNK_EOF : CHUNK_INTR;
  for (;;) {
    status = compile(L, &more);
    if (!more) break;
    r = pushline(L, 0);
    if (r == READ_INTR) {
      lua_pop(L, 1);
      return CHUNK_INTR;
    }
    if (r == READ_EOF) { /* report the statement form's <eof> error */
      code = lua_tolstring(L, -1, &len);
      status = luaL_loadbufferx(L, code, len, "=stdin", "t");
      break;
    }
    lua_pushliteral(L, "\n");
    lua_insert(L, -2);
    lua_concat(L, 3);
  }
  /* Stack: line(s), function or error. */
  code = lua_tolstring(L, -2, &len);
  while (len > 0 && isspace((unsigned char)code[len - 1])) len--;
  *quiet = len > 0 && code[len - 1] == ';';
  save_history(code);
  lua_remove(L, -2);
  return status;
}

/* ---------------------------------------------------------------------------
** Completion of globals and of fields after '.' and ':'
*/

static lua_State *completeL = NULL;
static char **completions = NULL;
static size_t ncompletions = 0, next_completion = 0;

/* Adds to set (at index set) the identifier keys of v starting with partial,
** then those of its metatable's __index table, a few levels deep. */
static void add_keys(lua_State *L, int v, int set, const char *partial, int level) {
  size_t plen = strlen(partial);
  if (level > 4) return;
  if (lua_type(L, v) == LUA_TTABLE) {
    lua_pushnil(L);
    while (lua_next(L, v)) {
      lua_pop(L, 1);
      if (lua_type(L, -1) == LUA_TSTRING) {
        const char *k = lua_tostring(L, -1);
        if (strncmp(k, partial, plen) == 0 && is_identifier(k)) {
          lua_pushvalue(L, -1);
          lua_pushboolean(L, 1);
          lua_rawset(L, set);
        }
      }
    }
  }
  if (lua_getmetatable(L, v)) {
    int mt = lua_gettop(L), ix = mt + 1;
    lua_pushliteral(L, "__index");
    if (lua_rawget(L, mt) == LUA_TTABLE) {
      add_keys(L, ix, set, partial, level + 1);
    } else if (lua_type(L, ix) == LUA_TFUNCTION) {
      /* A function __index usually serves a table it closes over: the
      ** methods behind a tensor's numeric indexing, engram's lazily loaded
      ** submodules. Offer that table's keys (never _ENV's: all globals). */
      const char *name;
      int up;
      for (up = 1; (name = lua_getupvalue(L, ix, up)) != NULL; up++) {
        if (lua_type(L, -1) == LUA_TTABLE && strcmp(name, "_ENV") != 0)
          add_keys(L, lua_gettop(L), set, partial, level + 1);
        lua_pop(L, 1);
      }
    }
    lua_settop(L, mt - 1);
  }
}

/* Protected: the completions of the text (an expression like a.b:c) as an array. */
static int collect_completions(lua_State *L) {
  static const char *const keywords[] = {"and", "break", "do", "else", "elseif", "end",
                                         "false", "for", "function", "goto", "if", "in",
                                         "local", "nil", "not", "or", "repeat", "return",
                                         "then", "true", "until", "while"};
  const char *text = luaL_checkstring(L, 1);
  const char *sep = strrchr(text, '.'), *colon = strrchr(text, ':'), *partial;
  int set, result;
  lua_Integer n = 0;
  if (colon && (!sep || colon > sep)) sep = colon;
  lua_newtable(L);
  set = lua_gettop(L);
  partial = sep ? sep + 1 : text;
  lua_pushglobaltable(L);
  if (sep) {
    /* Walk a.b.c from the globals; a __index may run (lazy modules load). */
    const char *p = text;
    while (p < sep) {
      const char *e = p;
      while (e < sep && *e != '.' && *e != ':') e++;
      lua_pushlstring(L, p, (size_t)(e - p));
      if (!is_identifier(lua_tostring(L, -1))) return 0;
      lua_gettable(L, -2);
      lua_remove(L, -2);
      p = e + 1;
    }
  } else {
    size_t i, plen = strlen(partial);
    for (i = 0; i < sizeof keywords / sizeof keywords[0]; i++)
      if (strncmp(keywords[i], partial, plen) == 0) {
        lua_pushstring(L, keywords[i]);
        lua_pushboolean(L, 1);
        lua_rawset(L, set);
      }
  }
  add_keys(L, lua_gettop(L), set, partial, 0);
  lua_newtable(L);
  result = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, set)) {
    lua_pop(L, 1);
    lua_pushlstring(L, text, sep ? (size_t)(sep - text) + 1 : 0);
    lua_pushvalue(L, -2);
    lua_concat(L, 2);
    lua_rawseti(L, result, ++n);
  }
  return 1;
}

static char *next_match(const char *text, int state) {
  (void)text;
  if (state == 0) next_completion = 0;
  if (next_completion < ncompletions) {
    char *m = completions[next_completion];
    completions[next_completion++] = NULL; /* readline frees what we return */
    return m;
  }
  return NULL;
}

static void free_completions(void) {
  size_t i;
  for (i = 0; i < ncompletions; i++) free(completions[i]);
  free(completions);
  completions = NULL;
  ncompletions = 0;
}

static char **complete(const char *text, int start, int end) {
  lua_State *L = completeL;
  int top = lua_gettop(L);
  char **matches = NULL;
  (void)start;
  (void)end;
  rl_attempted_completion_over = 1; /* never fall back to file names */
  rl_completion_append_character = '\0';
  lua_pushcfunction(L, collect_completions);
  lua_pushstring(L, text);
  if (lua_pcall(L, 1, 1, 0) == LUA_OK && lua_type(L, -1) == LUA_TTABLE) {
    size_t i, n = (size_t)lua_rawlen(L, -1);
    completions = n ? calloc(n, sizeof *completions) : NULL;
    if (completions) {
      for (i = 0; i < n; i++) {
        lua_rawgeti(L, -1, (lua_Integer)i + 1);
        completions[i] = strdup(lua_tostring(L, -1));
        lua_pop(L, 1);
        if (completions[i]) ncompletions++;
        else break;
      }
      matches = rl_completion_matches(text, next_match);
      free_completions();
    }
  }
  lua_settop(L, top);
  return matches;
}

/* ---------------------------------------------------------------------------
** The REPL
*/

static void init_readline(lua_State *L) {
  const char *h = getenv("ENGRAM_HISTORY");
  completeL = L;
  rl_readline_name = "engram";
  rl_attempted_completion_function = complete;
  /* '.' and ':' are part of the word, so "engram.nn.li" completes as a whole. */
  rl_completer_word_break_characters = " \t\n\"'`@$><=;|&{}()[]+-*/%^~#,";
  using_history();
  if (h == NULL) {
    const char *home = getenv("HOME");
    if (home && *home) {
      lua_pushfstring(L, "%s/.engram_history", home);
      history_path = strdup(lua_tostring(L, -1));
      lua_pop(L, 1);
    }
  } else if (*h) {
    history_path = strdup(h);
  }
  if (history_path) read_history(history_path);
}

static void close_readline(void) {
  if (history_path) history_truncate_file(history_path, 1000);
  clear_history();
  free(history_path);
  history_path = NULL;
}

void cmd_repl(lua_State *L) {
  int status, quiet;
  use_readline = isatty(STDIN_FILENO);
  if (use_readline) {
    init_readline(L);
    printf("engram %s (%s, OpenBLAS %s). Ctrl-D quits; end a line with ';' to not print it.\n",
           EG_VERSION, LUA_RELEASE, openblas_get_corename());
    fflush(stdout);
  }
  for (;;) {
    int base;
    quiet = 0;
    status = loadline(L, &quiet);
    if (status == CHUNK_EOF) break;
    if (status == CHUNK_INTR) continue;
    base = lua_gettop(L) - 1;
    if (status == LUA_OK) status = cmd_docall(L, 0, LUA_MULTRET);
    if (status == LUA_OK) {
      int n = lua_gettop(L) - base;
      if (n > 0 && !quiet) {
        lua_pushcfunction(L, print_values);
        lua_insert(L, base + 1);
        status = lua_pcall(L, n, 0, 0);
        if (status != LUA_OK)
          cmd_message(lua_pushfstring(L, "error showing the result (%s)", lua_tostring(L, -1)));
      }
      lua_settop(L, base);
    } else {
      cmd_report(L, status);
    }
    fflush(stdout);
  }
  lua_settop(L, 0);
  if (use_readline) close_readline();
}
