/*
** lio.c — files for the Lua library: safe writes (json.write_atomic,
** results, reports, the recipes' up-front --out check; core/io.h) and named
** tensors in the safetensors layout (engram.io, checkpoints;
** core/safetensors.h): thin wrappers over the core.
*/
#include <stdio.h>
#include <string.h>

#include "image.h"
#include "io.h"
#include "lutil.h"
#include "safetensors.h"

#define EG_STFILE_MT "engram.SafetensorsFile"

/* write_file_atomic(path, text) */
static int l_write_file_atomic(lua_State *L) {
  size_t n;
  const char *path = eg_lua_path(L, 1, 1, "write_file_atomic"), *text = luaL_checklstring(L, 2, &n);
  eg_lua_try(L, eg_write_file_atomic(path, text, n), "write_file_atomic");
  return 0;
}

/* check_writable(path [, probe bytes = 65536]) -> true, or nil, message */
static int l_check_writable(lua_State *L) {
  lua_Integer probe = luaL_optinteger(L, 2, 65536);
  luaL_argcheck(L, probe >= 0, 2, "probe size must be >= 0");
  const char *path = eg_lua_trypath(L, 1, 1, "check_writable");
  if (path == NULL) {
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2;
  }
  if (eg_check_writable(path, (size_t)probe) != EG_OK) {
    lua_pushnil(L);
    lua_pushstring(L, eg_errmsg());
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* The file read by st_load, closed by the collector even if building the
** result tables fails half-way. */
static int stfile_gc(lua_State *L) {
  eg_st_file **h = luaL_checkudata(L, 1, EG_STFILE_MT);
  eg_st_close(*h);
  *h = NULL;
  return 0;
}

/* st_load(path) -> tensors {name = tensor}, names {in file order}, metadata {key = value} */
static int l_st_load(lua_State *L) {
  const char *path = eg_lua_path(L, 1, 0, "safetensors_load");
  eg_st_file **h = lua_newuserdatauv(L, sizeof *h, 0);
  *h = NULL;
  luaL_setmetatable(L, EG_STFILE_MT);
  eg_lua_try(L, eg_st_open(h, path), "safetensors_load");
  eg_st_file *f = *h;
  int64_t n = eg_st_count(f), m = eg_st_meta_count(f);
  lua_createtable(L, 0, (int)(n < 1 << 20 ? n : 0)); /* tensors */
  lua_createtable(L, (int)(n < 1 << 20 ? n : 0), 0); /* names */
  for (int64_t i = 0; i < n; i++) {
    eg_tensor *t = eg_lua_newtensor(L);
    eg_lua_try(L, eg_st_tensor(f, i, t), "safetensors_load");
    eg_lua_account(L, (size_t)eg_numel(t) * sizeof(float));
    lua_setfield(L, -3, eg_st_name(f, i));
    lua_pushstring(L, eg_st_name(f, i));
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_createtable(L, 0, (int)(m < 1 << 20 ? m : 0)); /* metadata */
  for (int64_t i = 0; i < m; i++) {
    lua_pushstring(L, eg_st_meta_value(f, i));
    lua_setfield(L, -2, eg_st_meta_key(f, i));
  }
  eg_st_close(f);
  *h = NULL;
  return 3;
}

/* st_save(path, names {..}, tensors {..} [, metadata {key = value}]) */
static int l_st_save(lua_State *L) {
  const char *path = eg_lua_path(L, 1, 1, "safetensors_save");
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TTABLE);
  lua_Integer n = (lua_Integer)lua_rawlen(L, 2);
  if ((lua_Integer)lua_rawlen(L, 3) != n) luaL_error(L, "safetensors_save: %I names for %I tensors", n,
                                                     (lua_Integer)lua_rawlen(L, 3));
  int64_t nmeta = 0;
  if (!lua_isnoneornil(L, 4)) {
    luaL_checktype(L, 4, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, 4)) {
      if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "safetensors_save: metadata keys and values must be strings");
      nmeta++;
      lua_pop(L, 1);
    }
  }
  /* arrays in userdata: collected whatever happens */
  const char **names = lua_newuserdatauv(L, sizeof *names * (size_t)(n + 1), 0);
  const eg_tensor **ts = lua_newuserdatauv(L, sizeof *ts * (size_t)(n + 1), 0);
  const char **keys = lua_newuserdatauv(L, sizeof *keys * (size_t)(nmeta + 1), 0);
  const char **vals = lua_newuserdatauv(L, sizeof *vals * (size_t)(nmeta + 1), 0);
  for (lua_Integer i = 1; i <= n; i++) {
    if (lua_rawgeti(L, 2, i) != LUA_TSTRING) luaL_error(L, "safetensors_save: name %I is not a string", i);
    names[i - 1] = lua_tostring(L, -1); /* held by the table */
    lua_pop(L, 1);
    lua_rawgeti(L, 3, i);
    eg_tensor *t = eg_lua_totensor(L, -1);
    if (!t) luaL_error(L, "safetensors_save: tensor %I ('%s') is not a tensor", i, names[i - 1]);
    ts[i - 1] = t; /* held by the table */
    lua_pop(L, 1);
  }
  if (nmeta) {
    int64_t k = 0;
    lua_pushnil(L);
    while (lua_next(L, 4)) {
      keys[k] = lua_tostring(L, -2), vals[k] = lua_tostring(L, -1);
      k++;
      lua_pop(L, 1);
    }
  }
  eg_lua_try(L, eg_st_save(path, (int64_t)n, names, ts, nmeta, keys, vals), "safetensors_save");
  return 0;
}

/* mkdir_p(path): the directory and its missing parents. */
static int l_mkdir_p(lua_State *L) {
  eg_lua_try(L, eg_mkdir_p(luaL_checkstring(L, 1)), "mkdir");
  return 0;
}

/* checksum(tensors, text) -> 16 hex digits: eg_checksum64 over the values
** of a list of contiguous tensors, then the text (a checkpoint's metadata). */
static int l_checksum(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  size_t len;
  const char *text = luaL_checklstring(L, 2, &len);
  uint64_t h = EG_CHECKSUM_INIT;
  lua_Integer n = (lua_Integer)lua_rawlen(L, 1);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, 1, i);
    eg_tensor *t = eg_lua_totensor(L, -1);
    if (!t || !t->storage) luaL_error(L, "checksum: item %I is not a tensor", i);
    if (!eg_is_contiguous(t)) luaL_error(L, "checksum: tensor %I is not contiguous", i);
    h = eg_checksum64(h, eg_data(t), (size_t)eg_numel(t) * sizeof(float));
    lua_pop(L, 1);
  }
  h = eg_checksum64(h, text, len);
  char hex[17];
  snprintf(hex, sizeof hex, "%016llx", (unsigned long long)h);
  lua_pushstring(L, hex);
  return 1;
}

/* image_grid(images, h, w, rows, cols, pad, lo, hi) -> a new tensor [H, W] */
static int l_image_grid(lua_State *L) {
  eg_tensor *src = eg_lua_checktensor(L, 1);
  lua_Integer h = luaL_checkinteger(L, 2), w = luaL_checkinteger(L, 3), rows = luaL_checkinteger(L, 4);
  lua_Integer cols = luaL_checkinteger(L, 5), pad = luaL_checkinteger(L, 6);
  float lo = (float)luaL_checknumber(L, 7), hi = (float)luaL_checknumber(L, 8);
  eg_tensor *out = eg_lua_newtensor(L);
  eg_lua_try(L, eg_image_grid(out, src, (int64_t)h, (int64_t)w, (int64_t)rows, (int64_t)cols, (int64_t)pad, lo, hi),
             "image_grid");
  eg_lua_account(L, (size_t)eg_numel(out) * sizeof(float));
  return 1;
}

/* A C buffer owned by a userdata, so a Lua error cannot leak it. */
#define EG_CBUF_MT "engram.CBuffer"
static int cbuf_gc(lua_State *L) {
  unsigned char **p = luaL_checkudata(L, 1, EG_CBUF_MT);
  eg_free(*p);
  *p = NULL;
  return 0;
}

/* png_encode(img [H, W]) -> the PNG file's bytes */
static int l_png_encode(lua_State *L) {
  eg_tensor *img = eg_lua_checktensor(L, 1);
  unsigned char **png = lua_newuserdatauv(L, sizeof *png, 0);
  *png = NULL;
  luaL_setmetatable(L, EG_CBUF_MT);
  size_t n;
  eg_lua_try(L, eg_png_encode(png, &n, img), "png");
  lua_pushlstring(L, (const char *)*png, n);
  eg_free(*png);
  *png = NULL;
  return 1;
}

/* png_write(path, img [H, W]) */
static int l_png_write(lua_State *L) {
  const char *path = eg_lua_path(L, 1, 1, "png");
  eg_lua_try(L, eg_png_write(path, eg_lua_checktensor(L, 2)), "png");
  return 0;
}

static const luaL_Reg functions[] = {{"write_file_atomic", l_write_file_atomic},
                                     {"image_grid", l_image_grid},
                                     {"png_encode", l_png_encode},
                                     {"png_write", l_png_write},
                                     {"check_writable", l_check_writable},
                                     {"checksum", l_checksum},
                                     {"mkdir_p", l_mkdir_p},
                                     {"safetensors_load", l_st_load},
                                     {"safetensors_save", l_st_save},
                                     {NULL, NULL}};

void eg_lua_open_io(lua_State *L) {
  if (luaL_newmetatable(L, EG_STFILE_MT)) {
    lua_pushcfunction(L, stfile_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, EG_CBUF_MT)) {
    lua_pushcfunction(L, cbuf_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  luaL_setfuncs(L, functions, 0);
}
