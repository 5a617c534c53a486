/*
** ltext.c — the Tokenizer userdata and the text functions of core._text
** (window datasets, the sampler, listing a directory's files). Thin: checks,
** then one core call; engram.text (lua/engram/text.lua) wraps them.
*/
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lutil.h"
#include "text.h"

#define EG_TOKENIZER_MT "engram.Tokenizer"

typedef struct {
  eg_tokenizer *tk;
} ltok;

static eg_tokenizer *check_tok(lua_State *L, int idx) {
  ltok *t = luaL_checkudata(L, idx, EG_TOKENIZER_MT);
  if (!t->tk) luaL_argerror(L, idx, "attempt to use a released tokenizer");
  return t->tk;
}

static ltok *push_tok(lua_State *L) {
  ltok *t = lua_newuserdatauv(L, sizeof *t, 0);
  t->tk = NULL;
  luaL_setmetatable(L, EG_TOKENIZER_MT);
  return t;
}

/* byte_tokenizer() */
static int l_byte(lua_State *L) {
  ltok *t = push_tok(L);
  eg_lua_try(L, eg_tokenizer_byte(&t->tk), "tokenizer");
  return 1;
}

/* char_tokenizer(text) builds the vocabulary from text; char_tokenizer(tensor)
** takes it as a tensor of code points. */
static int l_char(lua_State *L) {
  if (lua_type(L, 1) == LUA_TSTRING) {
    size_t n;
    const char *s = lua_tolstring(L, 1, &n);
    ltok *t = push_tok(L);
    eg_lua_try(L, eg_tokenizer_char_from_text(&t->tk, s, n), "tokenizer");
    return 1;
  }
  eg_tensor *v = eg_lua_totensor(L, 1);
  if (!v) luaL_error(L, "tokenizer: expected a text or a tensor of code points, got %s", luaL_typename(L, 1));
  if (v->ndim != 1) luaL_error(L, "tokenizer: the code points must be a 1-D tensor");
  int64_t n = eg_numel(v);
  int32_t *cps = lua_newuserdatauv(L, sizeof(int32_t) * (size_t)(n ? n : 1), 0);
  const float *p = eg_data(v);
  for (int64_t i = 0; i < n; i++) {
    float c = p[i * v->stride[0]];
    if (!(c >= 0 && c <= 0x10FFFF) || c != (float)(int32_t)c)
      luaL_error(L, "tokenizer: entry %I (%f) is not a code point", (lua_Integer)i + 1, (double)c);
    cps[i] = (int32_t)c;
  }
  ltok *t = push_tok(L);
  eg_lua_try(L, eg_tokenizer_char(&t->tk, cps, n), "tokenizer");
  return 1;
}

/* tok:encode(text) -> tensor [n] of ids */
static int m_encode(lua_State *L) {
  eg_tokenizer *tk = check_tok(L, 1);
  size_t n;
  const char *s = luaL_checklstring(L, 2, &n);
  int32_t *ids = lua_newuserdatauv(L, sizeof(int32_t) * (n ? n : 1), 0);
  int64_t count;
  eg_tokenizer_encode(tk, s, n, ids, &count);
  eg_tensor *t = eg_lua_pushnew(L, 1, &count, "encode");
  float *d = eg_data(t);
  for (int64_t i = 0; i < count; i++) d[i] = (float)ids[i];
  return 1;
}

/* tok:decode(ids) -> string; ids a tensor (any shape, read in order) or a table */
static int m_decode(lua_State *L) {
  eg_tokenizer *tk = check_tok(L, 1);
  eg_tensor *t = eg_lua_totensor(L, 2);
  int64_t n;
  float *ids;
  if (t) {
    if (!eg_is_contiguous(t)) luaL_error(L, "decode: the ids must be a contiguous tensor (clone() it)");
    n = eg_numel(t);
    ids = n ? eg_data(t) : NULL;
  } else if (lua_istable(L, 2)) {
    n = (int64_t)lua_rawlen(L, 2);
    ids = lua_newuserdatauv(L, sizeof(float) * (size_t)(n ? n : 1), 0);
    for (int64_t i = 0; i < n; i++) {
      lua_rawgeti(L, 2, (lua_Integer)i + 1);
      if (lua_type(L, -1) != LUA_TNUMBER)
        luaL_error(L, "decode: ids[%I] is a %s, expected a token id", (lua_Integer)i + 1, luaL_typename(L, -1));
      ids[i] = (float)lua_tonumber(L, -1);
      lua_pop(L, 1);
    }
  } else {
    return luaL_error(L, "decode: expected a tensor or a table of token ids, got %s", luaL_typename(L, 2));
  }
  char *buf = lua_newuserdatauv(L, 4 * (size_t)(n ? n : 1), 0);
  size_t len;
  eg_lua_try(L, eg_tokenizer_decode(tk, ids, n, buf, &len), "decode");
  lua_pushlstring(L, buf, len);
  return 1;
}

static int m_vocab(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)eg_tokenizer_vocab(check_tok(L, 1)));
  return 1;
}

static int m_kind(lua_State *L) {
  lua_pushstring(L, eg_tokenizer_kind(check_tok(L, 1)) == EG_TOKENIZER_BYTE ? "byte" : "char");
  return 1;
}

/* tok:codepoints() -> tensor of the vocabulary's code points (char-level) or nil */
static int m_codepoints(lua_State *L) {
  eg_tokenizer *tk = check_tok(L, 1);
  if (eg_tokenizer_kind(tk) == EG_TOKENIZER_BYTE) {
    lua_pushnil(L);
    return 1;
  }
  int64_t n = eg_tokenizer_vocab(tk);
  eg_tensor *t = eg_lua_pushnew(L, 1, &n, "codepoints");
  for (int64_t i = 0; i < n; i++) eg_data(t)[i] = (float)eg_tokenizer_symbol(tk, i);
  return 1;
}

static int m_tostring(lua_State *L) {
  ltok *t = luaL_checkudata(L, 1, EG_TOKENIZER_MT);
  if (!t->tk)
    lua_pushstring(L, "Tokenizer (released)");
  else
    lua_pushfstring(L, "Tokenizer(%s-level, vocabulary %I)",
                    eg_tokenizer_kind(t->tk) == EG_TOKENIZER_BYTE ? "byte" : "char",
                    (lua_Integer)eg_tokenizer_vocab(t->tk));
  return 1;
}

static int m_gc(lua_State *L) {
  ltok *t = luaL_checkudata(L, 1, EG_TOKENIZER_MT);
  eg_tokenizer_free(t->tk);
  t->tk = NULL;
  return 0;
}

static int l_is_tokenizer(lua_State *L) {
  ltok *t = luaL_testudata(L, 1, EG_TOKENIZER_MT);
  lua_pushboolean(L, t && t->tk);
  return 1;
}

/* ------------------------------------------------------------- windows */

static lua_Integer int_arg(lua_State *L, int arg, lua_Integer lo, lua_Integer hi, const char *name) {
  int isint;
  lua_Integer v = lua_tointegerx(L, arg, &isint);
  if (!isint) luaL_error(L, "windows: %s must be an integer, got %s", name, luaL_typename(L, arg));
  if (v < lo || v > hi) luaL_error(L, "windows: %s %I is out of range [%I, %I]", name, v, lo, hi);
  return v;
}

/* windows(tok, text, T, stride, holdout, validation, block) -> train, held, tokens, val */
static int l_windows(lua_State *L) {
  eg_tokenizer *tk = check_tok(L, 1);
  size_t n;
  const char *s = luaL_checklstring(L, 2, &n);
  lua_Integer T = int_arg(L, 3, 1, 1 << 24, "ctx");
  lua_Integer stride = int_arg(L, 4, 1, (lua_Integer)1 << 40, "stride");
  double holdout = luaL_checknumber(L, 5), validation = luaL_checknumber(L, 6);
  lua_Integer block = int_arg(L, 7, 0, (lua_Integer)1 << 50, "block");
  lua_settop(L, 7);
  int32_t *ids = lua_newuserdatauv(L, sizeof(int32_t) * (n ? n : 1), 0);
  int64_t count;
  eg_tokenizer_encode(tk, s, n, ids, &count);
  eg_dataset **a = eg_lua_newdataset(L), **b = eg_lua_newdataset(L);
  lua_pushinteger(L, (lua_Integer)count);
  eg_dataset **c = eg_lua_newdataset(L);
  eg_dataset *tr, *va, *he;
  eg_lua_try(L, eg_dataset_windows(&tr, &va, &he, ids, count, eg_tokenizer_vocab(tk), T, stride, holdout, validation,
                                   block),
             "windows");
  *a = tr;
  *b = he;
  *c = va;
  eg_lua_account(L, (size_t)count * (eg_tokenizer_vocab(tk) <= 256 ? 1 : 2) + (size_t)eg_dataset_size(tr) * 8);
  return 4;
}

/* window(ds) -> T of a window dataset, or nil; and the stream's token count */
static int l_window(lua_State *L) {
  eg_dataset *ds = eg_lua_checkdataset(L, 1);
  int64_t T = eg_dataset_window(ds);
  if (!T) {
    lua_pushnil(L);
    return 1;
  }
  lua_pushinteger(L, (lua_Integer)T);
  lua_pushinteger(L, (lua_Integer)eg_dataset_stream_tokens(ds));
  return 2;
}

/* ------------------------------------------------------------- sampler */

/* sample(logits, temperature, top_k, generator) -> 0-based id: from the last
** row of logits [L, V] (or of a 1-D [V]) */
static int l_sample(lua_State *L) {
  eg_tensor *t = eg_lua_checktensor(L, 1);
  if (t->ndim < 1 || t->ndim > 2) luaL_error(L, "sample: logits must be [V] or [L, V], got %d dimensions", t->ndim);
  int64_t V = t->shape[t->ndim - 1];
  if (V < 1 || eg_numel(t) == 0) luaL_error(L, "sample: the logits are empty");
  if (t->stride[t->ndim - 1] != 1) luaL_error(L, "sample: the logits' rows must be contiguous (clone() them)");
  const float *row = eg_data(t) + (t->ndim == 2 ? (t->shape[0] - 1) * t->stride[0] : 0);
  double temp = luaL_checknumber(L, 2);
  lua_Integer k = luaL_optinteger(L, 3, 0);
  eg_rng *r = eg_lua_optrng(L, 4);
  int64_t id;
  eg_lua_try(L, eg_sample_logits(row, V, temp, (int64_t)k, r, &id), "sample");
  lua_pushinteger(L, (lua_Integer)id);
  return 1;
}

/* sample_rows(logits, temperature, top_k, generator, out) -> out: one id per
** row of logits [N, V] (rows contiguous, any row stride: a view such as the
** last position of every sequence), written into out [N] (float32 ids,
** 0-based), in row order from the one generator (the same draws as N calls of
** sample). Allocates nothing in Lua. */
static int l_sample_rows(lua_State *L) {
  eg_tensor *t = eg_lua_checktensor(L, 1);
  if (t->ndim != 2) luaL_error(L, "sample_rows: logits must be [N, V], got %d dimensions", t->ndim);
  int64_t N = t->shape[0], V = t->shape[1];
  if (V < 1) luaL_error(L, "sample_rows: the logits are empty");
  if (t->stride[1] != 1) luaL_error(L, "sample_rows: the logits' rows must be contiguous (clone() them)");
  double temp = luaL_checknumber(L, 2);
  lua_Integer k = luaL_optinteger(L, 3, 0);
  eg_rng *r = eg_lua_optrng(L, 4);
  eg_tensor *out = eg_lua_checktensor(L, 5);
  if (eg_numel(out) != N || !eg_is_contiguous(out))
    luaL_error(L, "sample_rows: out must be a contiguous tensor of %I ids", (lua_Integer)N);
  for (int64_t i = 0; i < N; i++) {
    int64_t id;
    eg_lua_try(L, eg_sample_logits(eg_data(t) + i * t->stride[0], V, temp, (int64_t)k, r, &id), "sample_rows");
    eg_data(out)[i] = (float)id;
  }
  lua_settop(L, 5);
  return 1;
}

/* ------------------------------------------------------------- files */

typedef struct {
  char *path;
  dev_t dev;
  ino_t ino;
} entry;

typedef struct {
  entry *v;
  size_t n, cap;
  int failed;
} list;

static int add(list *l, const char *s, const struct stat *st) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 64;
    entry *v = realloc(l->v, cap * sizeof *v);
    if (!v) return 0;
    l->v = v, l->cap = cap;
  }
  l->v[l->n].path = strdup(s);
  if (!l->v[l->n].path) return 0;
  l->v[l->n].dev = st->st_dev;
  l->v[l->n].ino = st->st_ino;
  l->n++;
  return 1;
}

static int cmp_path(const void *a, const void *b) {
  return strcmp(((const entry *)a)->path, ((const entry *)b)->path);
}

/* By file identity, then path: the first path of each file comes first. */
static int cmp_file(const void *a, const void *b) {
  const entry *x = a, *y = b;
  if (x->dev != y->dev) return x->dev < y->dev ? -1 : 1;
  if (x->ino != y->ino) return x->ino < y->ino ? -1 : 1;
  return strcmp(x->path, y->path);
}

/* Every regular file under dir (symbolic links to files followed; to
** directories not, which keeps cycles out), depth-first. */
static void walk(list *l, const char *dir, int depth) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  while (!l->failed && (e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    size_t len = strlen(dir) + strlen(e->d_name) + 2;
    char *p = malloc(len);
    if (!p) {
      l->failed = 1;
      break;
    }
    snprintf(p, len, "%s/%s", dir, e->d_name);
    struct stat st, lst;
    if (lstat(p, &lst) == 0 && stat(p, &st) == 0) {
      if (S_ISDIR(st.st_mode) && !S_ISLNK(lst.st_mode) && depth < 64)
        walk(l, p, depth + 1);
      else if (S_ISREG(st.st_mode) && !add(l, p, &st))
        l->failed = 1;
    }
    free(p);
  }
  closedir(d);
}

/* list_files(dir) -> sorted table of the paths of the regular files under
** dir, each file once (a file reached by several links: its first path). */
static int l_list_files(lua_State *L) {
  const char *dir = eg_lua_path(L, 1, 0, "list_files");
  struct stat st;
  if (stat(dir, &st) != 0) return luaL_error(L, "list_files: %s: %s", dir, strerror(errno));
  if (!S_ISDIR(st.st_mode)) return luaL_error(L, "list_files: %s is not a directory", dir);
  list l = {0};
  walk(&l, dir, 0);
  size_t m = 0;
  if (!l.failed && l.n > 0) {
    qsort(l.v, l.n, sizeof *l.v, cmp_file);
    for (size_t i = 0; i < l.n; i++) {
      if (m > 0 && l.v[m - 1].dev == l.v[i].dev && l.v[m - 1].ino == l.v[i].ino) {
        free(l.v[i].path);
        continue;
      }
      l.v[m++] = l.v[i];
    }
    qsort(l.v, m, sizeof *l.v, cmp_path);
  } else {
    m = l.n;
  }
  lua_createtable(L, l.failed ? 0 : (int)m, 0);
  for (size_t i = 0; i < m; i++) {
    if (!l.failed) {
      lua_pushstring(L, l.v[i].path);
      lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    free(l.v[i].path);
  }
  free(l.v);
  if (l.failed) return luaL_error(L, "list_files: out of memory listing %s", dir);
  return 1;
}

/* ------------------------------------------------------------- registration */

static const luaL_Reg tok_methods[] = {{"encode", m_encode}, {"decode", m_decode},         {"vocab", m_vocab},
                                       {"kind", m_kind},     {"codepoints", m_codepoints}, {"release", m_gc},
                                       {NULL, NULL}};
static const luaL_Reg tok_meta[] = {
    {"__tostring", m_tostring}, {"__gc", m_gc}, {"__close", m_gc}, {"__len", m_vocab}, {NULL, NULL}};
static const luaL_Reg functions[] = {{"byte_tokenizer", l_byte},
                                     {"char_tokenizer", l_char},
                                     {"is_tokenizer", l_is_tokenizer},
                                     {"windows", l_windows},
                                     {"window", l_window},
                                     {"sample", l_sample},
                                     {"sample_rows", l_sample_rows},
                                     {"list_files", l_list_files},
                                     {NULL, NULL}};

void eg_lua_open_text(lua_State *L) {
  int mod = lua_gettop(L);
  luaL_newmetatable(L, EG_TOKENIZER_MT);
  luaL_setfuncs(L, tok_meta, 0);
  luaL_newlib(L, tok_methods);
  lua_pushvalue(L, -1);
  lua_setfield(L, mod, "Tokenizer"); /* engram.text adds methods written in Lua here */
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  luaL_newlib(L, functions);
  lua_setfield(L, mod, "_text");
}
