/*
** ldata.c — the Dataset and Batcher userdata. Thin: argument checks, the
** 1-based -> 0-based conversion of sample indices, then one core call.
** Registers core.Dataset (the methods table, which lua/engram/data.lua
** extends with the option-table methods) and core._data (the constructors
** that engram.data wraps). Functions taking options tables live in Lua.
*/
#include <math.h>
#include <string.h>

#include "data.h"
#include "lutil.h"

#define EG_DATASET_MT "engram.Dataset"
#define EG_BATCHER_MT "engram.Batcher"

typedef struct {
  eg_dataset *ds;
} ldataset;

typedef struct {
  eg_batcher *b;
  eg_tensor *x, *y; /* the reused batch tensors (uservalues 1 and 2) */
} lbatcher;

/* ------------------------------------------------------------- helpers */

static eg_dataset *check_ds(lua_State *L, int idx) {
  ldataset *d = luaL_checkudata(L, idx, EG_DATASET_MT);
  if (!d->ds) luaL_argerror(L, idx, "attempt to use a released dataset");
  return d->ds;
}

/* Pushes a dataset userdata first, then lets the core fill it (so a failure
** leaves a collectable empty handle). */
static ldataset *push_ds(lua_State *L) {
  ldataset *d = lua_newuserdatauv(L, sizeof *d, 0);
  d->ds = NULL;
  luaL_setmetatable(L, EG_DATASET_MT);
  return d;
}

eg_dataset **eg_lua_newdataset(lua_State *L) { return &push_ds(L)->ds; }
eg_dataset *eg_lua_checkdataset(lua_State *L, int idx) { return check_ds(L, idx); }

/* Window datasets (text.h) have a sequence of targets per sample, no label. */
static void no_labels(lua_State *L, eg_dataset *ds, const char *op) {
  if (eg_dataset_label(ds, 0) < 0)
    luaL_error(L, "%s: a text window dataset has T target tokens per sample, not a label (use ds:get(i))", op);
}

static void account_ds(lua_State *L, const eg_dataset *ds) {
  size_t per = eg_dataset_is_u8(ds) ? 1 : sizeof(float);
  eg_lua_account(L, (size_t)eg_dataset_size(ds) * ((size_t)eg_dataset_sample_numel(ds) * per + 4));
}

/* A seed: an integer, a Generator (one draw from it), or none/nil (one draw
** from the default generator, so engram.seed governs it). Errors name op. */
static uint64_t opt_seed(lua_State *L, int arg, const char *op) {
  if (lua_isnoneornil(L, arg)) return eg_rng_u64(eg_lua_optrng(L, lua_gettop(L) + 1));
  if (lua_type(L, arg) == LUA_TNUMBER) {
    int isint;
    lua_Integer s = lua_tointegerx(L, arg, &isint);
    if (!isint) luaL_error(L, "%s: seed %s is not an integer", op, lua_tostring(L, arg));
    return (uint64_t)s;
  }
  if (luaL_testudata(L, arg, EG_RNG_MT)) return eg_rng_u64(eg_lua_optrng(L, arg));
  luaL_error(L, "%s: seed must be an integer or a generator, got %s", op, luaL_typename(L, arg));
  return 0;
}

/* An integer argument in [lo, hi], or an error "op: name ...". Used by the
** functions that engram.data calls with values from options tables, where
** argument numbers would mean nothing to the user. */
static lua_Integer int_arg(lua_State *L, int arg, lua_Integer lo, lua_Integer hi, const char *op, const char *name) {
  int isint;
  lua_Integer v = lua_tointegerx(L, arg, &isint);
  if (!isint) {
    if (lua_type(L, arg) == LUA_TNUMBER) luaL_error(L, "%s: %s %s is not an integer", op, name, lua_tostring(L, arg));
    luaL_error(L, "%s: %s must be an integer, got %s", op, name, luaL_typename(L, arg));
  }
  if (v < lo || v > hi) luaL_error(L, "%s: %s %I is out of range [%I, %I]", op, name, v, lo, hi);
  return v;
}

static double num_arg(lua_State *L, int arg, const char *op, const char *name) {
  if (lua_type(L, arg) != LUA_TNUMBER) luaL_error(L, "%s: %s must be a number, got %s", op, name, luaL_typename(L, arg));
  return lua_tonumber(L, arg);
}

/* Reads a list of integers (a table or a 1-D tensor) at arg into a scratch
** buffer owned by a userdata left on the stack. 1-based positions in [1, n]
** (negative from the end) become 0-based when n > 0; with n == 0 the values
** are returned as they are (class ids). Returns the count. */
static int64_t read_list(lua_State *L, int arg, int64_t n, int64_t **out, const char *what, const char *op) {
  eg_tensor *t = eg_lua_totensor(L, arg);
  int64_t m;
  if (t) {
    if (t->ndim > 1) luaL_error(L, "%s: %s must be a 1-D tensor or a table", op, what);
    m = eg_numel(t);
  } else {
    if (!lua_istable(L, arg))
      luaL_error(L, "%s: %s must be a table or a 1-D tensor, got %s", op, what, luaL_typename(L, arg));
    m = (int64_t)lua_rawlen(L, arg); /* never negative or a non-integer, unlike a __len */
  }
  int64_t *p = lua_newuserdatauv(L, sizeof(int64_t) * (size_t)(m ? m : 1), 0);
  for (int64_t k = 0; k < m; k++) {
    double v;
    if (t) {
      v = eg_data(t)[k * (t->ndim ? t->stride[0] : 0)];
    } else {
      lua_geti(L, arg, (lua_Integer)k + 1);
      if (lua_type(L, -1) != LUA_TNUMBER)
        luaL_error(L, "%s: %s[%I] is a %s, expected an integer", op, what, (lua_Integer)k + 1, luaL_typename(L, -1));
      v = lua_tonumber(L, -1);
      lua_pop(L, 1);
    }
    if (v != floor(v) || fabs(v) > 9e15)
      luaL_error(L, "%s: %s[%I] = %f is not an integer", op, what, (lua_Integer)k + 1, v);
    int64_t i = (int64_t)v;
    if (n > 0) {
      if (i < 0) i += n + 1;
      if (i < 1 || i > n)
        luaL_error(L, "%s: %s[%I] = %I out of range for a dataset of %I samples", op, what, (lua_Integer)k + 1,
                   (lua_Integer)v, (lua_Integer)n);
      i -= 1;
    }
    p[k] = i;
  }
  *out = p;
  return m;
}

/* Optional x, y tensors to reuse at args ax, ax+1 (nil: new ones). Leaves x, y on the stack. */
static void push_xy(lua_State *L, int ax, eg_tensor **x, eg_tensor **y) {
  for (int k = 0; k < 2; k++) {
    eg_tensor **t = k ? y : x;
    if (lua_isnoneornil(L, ax + k)) {
      *t = eg_lua_newtensor(L);
    } else {
      *t = luaL_checkudata(L, ax + k, EG_TENSOR_MT); /* a released tensor is refilled */
      lua_pushvalue(L, ax + k);
    }
  }
}

/* ---------------------------------------------------------- constructors */

/* idx(images_path, labels_path) */
static int l_idx(lua_State *L) {
  const char *im = eg_lua_path(L, 1, 0, "idx"), *lb = eg_lua_path(L, 2, 0, "idx");
  ldataset *d = push_ds(L);
  eg_lua_try(L, eg_dataset_from_idx(&d->ds, im, lb), "idx");
  account_ds(L, d->ds);
  return 1;
}

/* fashion_mnist([dir]) -> train, test */
static int l_fashion_mnist(lua_State *L) {
  const char *dir = luaL_optstring(L, 1, NULL), *files[4];
  char p[4][EG_FMNIST_PATH];
  eg_lua_try(L, eg_fashion_mnist_files(dir, p), "fashion_mnist");
  lua_settop(L, 0);
  for (int k = 0; k < 4; k++) {
    lua_pushstring(L, p[k]);
    files[k] = eg_lua_path(L, k + 1, 0, "fashion_mnist");
  }
  ldataset *a = push_ds(L), *b = push_ds(L);
  eg_dataset *tr, *te;
  eg_lua_try(L, eg_dataset_fashion_mnist_from(files, &tr, &te), "fashion_mnist");
  a->ds = tr;
  b->ds = te;
  account_ds(L, tr);
  account_ds(L, te);
  return 2;
}

/* csv(path, header, label, sep): label is a 1-based column (negative from
** the end), a column name, or false for no labels. */
static int l_csv(lua_State *L) {
  const char *path = eg_lua_path(L, 1, 0, "csv");
  eg_csv_opts o = {0};
  o.header = lua_toboolean(L, 2);
  if (lua_type(L, 3) == LUA_TSTRING) {
    o.label_name = lua_tostring(L, 3);
  } else if (lua_isboolean(L, 3) && !lua_toboolean(L, 3)) {
    o.no_labels = 1;
  } else {
    lua_Integer c = lua_isnoneornil(L, 3) ? -1 : int_arg(L, 3, -100000000, 100000000, "csv", "label_column");
    if (c == 0) luaL_error(L, "csv: label_column 0: columns are numbered from 1 (negative from the end)");
    o.label_column = (int)(c > 0 ? c - 1 : c);
  }
  size_t sl = 1;
  const char *sep = lua_isnoneornil(L, 4) ? "," : lua_tolstring(L, 4, &sl);
  if (!sep || sl != 1) luaL_error(L, "csv: sep must be one character");
  /* NUL would mean the default ',' to the core; line ends cannot separate fields. */
  if (sep[0] == '\0' || sep[0] == '\n' || sep[0] == '\r')
    luaL_error(L, "csv: sep cannot be a NUL, newline or carriage return character");
  o.sep = sep[0];
  ldataset *d = push_ds(L);
  eg_lua_try(L, eg_dataset_from_csv(&d->ds, path, &o), "csv");
  account_ds(L, d->ds);
  return 1;
}

/* blobs(n, classes, dim, std, seed) */
static int l_blobs(lua_State *L) {
  lua_Integer n = int_arg(L, 1, 1, (lua_Integer)1 << 32, "blobs", "n");
  int classes = (int)int_arg(L, 2, 1, 1 << 24, "blobs", "classes");
  lua_Integer dim = int_arg(L, 3, 1, 1 << 24, "blobs", "dim");
  double std = num_arg(L, 4, "blobs", "std");
  uint64_t seed = opt_seed(L, 5, "blobs");
  ldataset *d = push_ds(L);
  eg_lua_try(L, eg_dataset_blobs(&d->ds, (int64_t)n, classes, (int64_t)dim, std, seed), "blobs");
  account_ds(L, d->ds);
  return 1;
}

/* spirals(n, classes, turns, noise, seed) */
static int l_spirals(lua_State *L) {
  lua_Integer n = int_arg(L, 1, 1, (lua_Integer)1 << 32, "spirals", "n");
  int classes = (int)int_arg(L, 2, 1, 1 << 24, "spirals", "classes");
  double turns = num_arg(L, 3, "spirals", "turns"), noise = num_arg(L, 4, "spirals", "noise");
  uint64_t seed = opt_seed(L, 5, "spirals");
  ldataset *d = push_ds(L);
  eg_lua_try(L, eg_dataset_spirals(&d->ds, (int64_t)n, classes, turns, noise, seed), "spirals");
  account_ds(L, d->ds);
  return 1;
}

/* from_tensors(x, y [, classes]) */
static int l_from_tensors(lua_State *L) {
  eg_tensor *x = eg_lua_checktensor(L, 1), *y = eg_lua_checktensor(L, 2);
  lua_Integer c = lua_isnoneornil(L, 3) ? 0 : int_arg(L, 3, 0, 1 << 24, "from_tensors", "classes");
  ldataset *d = push_ds(L);
  eg_lua_try(L, eg_dataset_from_tensors(&d->ds, x, y, (int)c), "from_tensors");
  account_ds(L, d->ds);
  return 1;
}

static int l_is_dataset(lua_State *L) {
  ldataset *d = luaL_testudata(L, 1, EG_DATASET_MT);
  lua_pushboolean(L, d && d->ds);
  return 1;
}

/* -------------------------------------------------------------- inspection */

static int m_size(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)eg_dataset_size(check_ds(L, 1)));
  return 1;
}

static int m_shape(lua_State *L) {
  int64_t sh[EG_MAXDIM];
  int nd = eg_dataset_shape(check_ds(L, 1), sh);
  lua_createtable(L, nd, 0);
  for (int i = 0; i < nd; i++) {
    lua_pushinteger(L, (lua_Integer)sh[i]);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

static int m_numel(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)eg_dataset_sample_numel(check_ds(L, 1)));
  return 1;
}

static int m_num_classes(lua_State *L) {
  lua_pushinteger(L, eg_dataset_nclasses(check_ds(L, 1)));
  return 1;
}

static int m_dtype(lua_State *L) {
  lua_pushstring(L, eg_dataset_is_u8(check_ds(L, 1)) ? "uint8" : "float32");
  return 1;
}

/* ds:quantization() -> {scale =, offset =, levels = tensor [256]}, or nil
** when the samples are not uint8 codes through an affine map */
static int m_quantization(lua_State *L) {
  eg_dataset *ds = check_ds(L, 1);
  float lv[256];
  double scale, offset;
  if (!eg_dataset_levels(ds, lv, &scale, &offset)) {
    lua_pushnil(L);
    return 1;
  }
  lua_createtable(L, 0, 3);
  lua_pushnumber(L, scale);
  lua_setfield(L, -2, "scale");
  lua_pushnumber(L, offset);
  lua_setfield(L, -2, "offset");
  int64_t sh[1] = {256};
  memcpy(eg_data(eg_lua_pushnew(L, 1, sh, "quantization")), lv, sizeof lv);
  lua_setfield(L, -2, "levels");
  return 1;
}

static int64_t *counts_of(lua_State *L, eg_dataset *ds) {
  int64_t *c = lua_newuserdatauv(L, sizeof(int64_t) * (size_t)eg_dataset_nclasses(ds), 0);
  eg_dataset_class_counts(ds, c);
  return c;
}

/* class_counts() -> {[class id] = count} for every class 0..C-1 */
static int m_class_counts(lua_State *L) {
  eg_dataset *ds = check_ds(L, 1);
  int nc = eg_dataset_nclasses(ds);
  int64_t *c = counts_of(L, ds);
  lua_createtable(L, nc, 1);
  for (int k = 0; k < nc; k++) {
    lua_pushinteger(L, (lua_Integer)c[k]);
    lua_rawseti(L, -2, k);
  }
  return 1;
}

/* classes() -> {ids of the classes present, ascending}, number of classes */
static int m_classes(lua_State *L) {
  eg_dataset *ds = check_ds(L, 1);
  int nc = eg_dataset_nclasses(ds);
  int64_t *c = counts_of(L, ds);
  lua_newtable(L);
  for (int k = 0, j = 1; k < nc; k++)
    if (c[k] > 0) {
      lua_pushinteger(L, k);
      lua_rawseti(L, -2, j++);
    }
  lua_pushinteger(L, nc);
  return 2;
}

/* labels() -> new tensor [n] of class ids */
static int m_labels(lua_State *L) {
  eg_dataset *ds = check_ds(L, 1);
  int64_t n = eg_dataset_size(ds);
  if (n > 0) no_labels(L, ds, "labels");
  eg_tensor *t = eg_lua_pushnew(L, 1, &n, "labels");
  float *p = eg_data(t);
  for (int64_t i = 0; i < n; i++) p[i] = (float)eg_dataset_label(ds, i);
  return 1;
}

static int m_label(lua_State *L) {
  eg_dataset *ds = check_ds(L, 1);
  int64_t i = eg_lua_checkindex(L, 2, eg_dataset_size(ds), "dataset");
  no_labels(L, ds, "label");
  lua_pushinteger(L, eg_dataset_label(ds, i));
  return 1;
}

static int m_tostring(lua_State *L) {
  ldataset *d = luaL_checkudata(L, 1, EG_DATASET_MT);
  char buf[256];
  if (!d->ds)
    lua_pushstring(L, "Dataset (released)");
  else
    lua_pushstring(L, eg_dataset_describe(d->ds, buf, sizeof buf));
  return 1;
}

static int m_gc(lua_State *L) {
  ldataset *d = luaL_checkudata(L, 1, EG_DATASET_MT);
  eg_dataset_release(d->ds);
  d->ds = NULL;
  return 0;
}

/* ---------------------------------------------------------------- derived */

/* subset_indices(list): 1-based positions */
static int m_subset_indices(lua_State *L) {
  eg_dataset *ds = check_ds(L, 1);
  int64_t *idx;
  int64_t n = eg_dataset_size(ds);
  int64_t m = read_list(L, 2, n > 0 ? n : -1, &idx, "indices", "subset");
  if (n == 0 && m > 0) luaL_error(L, "subset: indices out of range for an empty dataset");
  ldataset *d = push_ds(L);
  eg_lua_try(L, eg_dataset_subset(&d->ds, ds, idx, m), "subset");
  return 1;
}

/* subset_labels(list of class ids) */
static int m_subset_labels(lua_State *L) {
  eg_dataset *ds = check_ds(L, 1);
  int64_t *lab;
  int64_t m = read_list(L, 2, 0, &lab, "labels", "subset");
  int *l = lua_newuserdatauv(L, sizeof(int) * (size_t)(m ? m : 1), 0);
  for (int64_t k = 0; k < m; k++) {
    if (lab[k] < 0 || lab[k] >= eg_dataset_nclasses(ds))
      luaL_error(L, "subset: label %I is not a class of this dataset (0..%d)", (lua_Integer)lab[k],
                 eg_dataset_nclasses(ds) - 1);
    l[k] = (int)lab[k];
  }
  ldataset *d = push_ds(L);
  eg_lua_try(L, eg_dataset_subset_labels(&d->ds, ds, l, (int)m), "subset");
  return 1;
}

/* subset_fractions({[class id] = fraction}, seed): absent classes kept whole */
static int m_subset_fractions(lua_State *L) {
  eg_dataset *ds = check_ds(L, 1);
  if (!lua_istable(L, 2)) luaL_error(L, "subset: fractions must be a table {[class id] = fraction}");
  uint64_t seed = opt_seed(L, 3, "subset");
  int nc = eg_dataset_nclasses(ds);
  /* Every key must be a class id: a misspelt or out-of-range key would
  ** otherwise be ignored silently and the subset left balanced. */
  lua_pushnil(L);
  while (lua_next(L, 2)) {
    lua_pop(L, 1);
    int isint;
    lua_Integer c = lua_tointegerx(L, -1, &isint);
    if (lua_type(L, -1) != LUA_TNUMBER || !isint || c < 0 || c >= nc)
      luaL_error(L, "subset: fractions key %s is not a class id of this dataset (0..%d)",
                 luaL_tolstring(L, -1, NULL), nc - 1);
  }
  double *fr = lua_newuserdatauv(L, sizeof(double) * (size_t)nc, 0);
  for (int c = 0; c < nc; c++) {
    int t = lua_geti(L, 2, c);
    if (t == LUA_TNIL)
      fr[c] = 1.0;
    else if (t == LUA_TNUMBER)
      fr[c] = lua_tonumber(L, -1);
    else
      luaL_error(L, "subset: fraction for class %d is a %s, expected a number", c, luaL_typename(L, -1));
    lua_pop(L, 1);
  }
  ldataset *d = push_ds(L);
  eg_lua_try(L, eg_dataset_subset_fractions(&d->ds, ds, fr, nc, seed), "subset");
  return 1;
}

/* split(fraction [, seed]) -> first, rest */
static int m_split(lua_State *L) {
  eg_dataset *ds = check_ds(L, 1);
  double f = luaL_checknumber(L, 2);
  if (!(f >= 0 && f <= 1)) luaL_argerror(L, 2, lua_pushfstring(L, "fraction %f is not in [0, 1]", f));
  uint64_t seed = opt_seed(L, 3, "split");
  ldataset *a = push_ds(L), *b = push_ds(L);
  eg_dataset *x, *y;
  eg_lua_try(L, eg_dataset_split(&x, &y, ds, f, seed), "split");
  a->ds = x;
  b->ds = y;
  return 2;
}

static int m_concat(lua_State *L) {
  eg_dataset *a = check_ds(L, 1), *b = check_ds(L, 2);
  ldataset *d = push_ds(L);
  eg_lua_try(L, eg_dataset_concat(&d->ds, a, b), "concat");
  account_ds(L, d->ds);
  return 1;
}

/* permuted([seed | generator | permutation tensor or table of 1-based positions]) */
static int m_permuted(lua_State *L) {
  eg_dataset *ds = check_ds(L, 1);
  int64_t *perm = NULL;
  uint64_t seed = 0;
  if (eg_lua_totensor(L, 2) || lua_istable(L, 2)) {
    int64_t m = eg_dataset_sample_numel(ds);
    if (read_list(L, 2, m, &perm, "permutation", "permuted") != m)
      luaL_error(L, "permuted: a permutation of %I pixel positions is needed", (lua_Integer)m);
  } else {
    seed = opt_seed(L, 2, "permuted");
  }
  ldataset *d = push_ds(L);
  eg_lua_try(L, eg_dataset_permuted(&d->ds, ds, perm, seed), "permuted");
  return 1;
}

/* permutation() -> tensor of 1-based pixel positions, or nil when none */
static int m_permutation(lua_State *L) {
  eg_dataset *ds = check_ds(L, 1);
  int64_t m = eg_dataset_sample_numel(ds);
  int64_t *p = lua_newuserdatauv(L, sizeof(int64_t) * (size_t)m, 0);
  if (!eg_dataset_permutation(ds, p)) {
    lua_pushnil(L);
    return 1;
  }
  eg_tensor *t = eg_lua_pushnew(L, 1, &m, "permutation");
  for (int64_t j = 0; j < m; j++) eg_data(t)[j] = (float)(p[j] + 1);
  return 1;
}

static int m_rotated(lua_State *L) {
  eg_dataset *ds = check_ds(L, 1);
  double deg = luaL_checknumber(L, 2);
  ldataset *d = push_ds(L);
  eg_lua_try(L, eg_dataset_rotated(&d->ds, ds, deg), "rotated");
  account_ds(L, d->ds);
  return 1;
}

static int m_normalized(lua_State *L) {
  eg_dataset *ds = check_ds(L, 1);
  double mean = luaL_checknumber(L, 2), std = luaL_checknumber(L, 3);
  ldataset *d = push_ds(L);
  eg_lua_try(L, eg_dataset_normalized(&d->ds, ds, mean, std), "normalized");
  return 1;
}

static int m_noisy(lua_State *L) {
  eg_dataset *ds = check_ds(L, 1);
  double std = luaL_checknumber(L, 2);
  uint64_t seed = opt_seed(L, 3, "noisy");
  ldataset *d = push_ds(L);
  eg_lua_try(L, eg_dataset_noisy(&d->ds, ds, std, seed), "noisy");
  return 1;
}

/* ------------------------------------------------------------- samples out */

static void account_xy(lua_State *L, const eg_tensor *x) { eg_lua_account(L, (size_t)eg_numel(x) * sizeof(float)); }

/* get(i) -> x [sample shape] (new), label (a window dataset: y [T], new) */
static int m_get(lua_State *L) {
  eg_dataset *ds = check_ds(L, 1);
  int64_t i = eg_lua_checkindex(L, 2, eg_dataset_size(ds), "dataset");
  eg_tensor *x = eg_lua_newtensor(L);
  if (eg_dataset_label(ds, i) < 0) { /* a window dataset */
    eg_tensor *y = eg_lua_newtensor(L);
    eg_lua_try(L, eg_dataset_gather(ds, &i, 1, x, y, EG_BATCH_FLAT), "get");
    int64_t T = eg_dataset_sample_numel(ds);
    eg_lua_try(L, eg_view(x, x, 1, &T), "get");
    eg_lua_try(L, eg_view(y, y, 1, &T), "get");
    return 2;
  }
  eg_tensor y = EG_TENSOR_INIT;
  int st = eg_dataset_gather(ds, &i, 1, x, &y, 0);
  eg_tensor_release(&y);
  eg_lua_try(L, st, "get");
  /* Drop the batch dimension of size 1. */
  for (int d = 1; d < x->ndim; d++) {
    x->shape[d - 1] = x->shape[d];
    x->stride[d - 1] = x->stride[d];
  }
  x->ndim--;
  lua_pushinteger(L, eg_dataset_label(ds, i));
  return 2;
}

/* gather(indices [, x, y [, flat]]) -> x, y (reused when given) */
static int m_gather(lua_State *L) {
  eg_dataset *ds = check_ds(L, 1);
  lua_settop(L, 5); /* scratch buffers go above the arguments */
  int64_t n = eg_dataset_size(ds);
  if (n == 0) luaL_error(L, "gather: the dataset is empty");
  int64_t *idx;
  int64_t m = read_list(L, 2, n, &idx, "indices", "gather");
  if (m == 0) luaL_error(L, "gather: no indices");
  int flat = lua_toboolean(L, 5) ? EG_BATCH_FLAT : 0;
  eg_tensor *x, *y;
  push_xy(L, 3, &x, &y);
  eg_lua_try(L, eg_dataset_gather(ds, idx, m, x, y, flat), "gather");
  account_xy(L, x);
  return 2;
}

/* range(first, count [, x, y [, flat]]) -> x, y: samples first..first+count-1 (1-based) */
static int m_range(lua_State *L) {
  eg_dataset *ds = check_ds(L, 1);
  lua_settop(L, 6);
  int64_t n = eg_dataset_size(ds);
  int64_t first = eg_lua_checkindex(L, 2, n, "dataset");
  lua_Integer count = luaL_checkinteger(L, 3);
  if (count < 1 || count > n - first)
    luaL_argerror(L, 3, lua_pushfstring(L, "count %I out of range: %I samples from %I", count,
                                        (lua_Integer)(n - first), (lua_Integer)first + 1));
  int flat = lua_toboolean(L, 6) ? EG_BATCH_FLAT : 0;
  eg_tensor *x, *y;
  push_xy(L, 4, &x, &y);
  eg_lua_try(L, eg_dataset_range(ds, first, (int64_t)count, x, y, flat), "range");
  account_xy(L, x);
  return 2;
}

/* tensors([flat]) -> X [n, ...], Y [n] as new tensors */
static int m_tensors(lua_State *L) {
  eg_dataset *ds = check_ds(L, 1);
  int flat = lua_toboolean(L, 2) ? EG_BATCH_FLAT : 0;
  int64_t n = eg_dataset_size(ds);
  if (n == 0) luaL_error(L, "tensors: the dataset is empty");
  eg_tensor *x = eg_lua_newtensor(L), *y = eg_lua_newtensor(L);
  eg_lua_try(L, eg_dataset_range(ds, 0, n, x, y, flat), "tensors");
  account_xy(L, x);
  return 2;
}

/* ---------------------------------------------------------------- batcher */

static lbatcher *check_b(lua_State *L, int idx) {
  lbatcher *b = luaL_checkudata(L, idx, EG_BATCHER_MT);
  if (!b->b) luaL_argerror(L, idx, "attempt to use a released batch iterator");
  return b;
}

/* batcher(batch, shuffle, drop_last, seed, flat) */
static int m_batcher(lua_State *L) {
  eg_dataset *ds = check_ds(L, 1);
  lua_Integer batch = int_arg(L, 2, 1, (lua_Integer)1 << 32, "batches", "batch size");
  int shuffle = lua_toboolean(L, 3), drop_last = lua_toboolean(L, 4);
  uint64_t seed = shuffle ? opt_seed(L, 5, "batches") : 0;
  int flat = lua_toboolean(L, 6) ? EG_BATCH_FLAT : 0;
  lbatcher *b = lua_newuserdatauv(L, sizeof *b, 3);
  b->b = NULL;
  b->x = b->y = NULL;
  luaL_setmetatable(L, EG_BATCHER_MT);
  b->x = eg_lua_newtensor(L);
  lua_setiuservalue(L, -2, 1);
  b->y = eg_lua_newtensor(L);
  lua_setiuservalue(L, -2, 2);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 3);
  eg_lua_try(L, eg_batcher_new(&b->b, ds, (int64_t)batch, shuffle, drop_last, seed, flat), "batches");
  return 1;
}

/* b() / b:next() -> x, y (borrowed, overwritten by the next call) or nil at the end of an epoch */
static int b_next(lua_State *L) {
  lbatcher *b = check_b(L, 1);
  int64_t count;
  eg_storage *before = b->x->storage;
  eg_lua_try(L, eg_batcher_next(b->b, b->x, b->y, &count), "batches");
  if (count == 0) {
    lua_pushnil(L);
    return 1;
  }
  if (b->x->storage != before) account_xy(L, b->x);
  lua_getiuservalue(L, 1, 1);
  lua_getiuservalue(L, 1, 2);
  return 2;
}

static int b_len(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)eg_batcher_nbatches(check_b(L, 1)->b));
  return 1;
}

static int b_epoch(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)eg_batcher_epoch(check_b(L, 1)->b));
  return 1;
}

static int b_rewind(lua_State *L) {
  eg_batcher_rewind(check_b(L, 1)->b);
  lua_settop(L, 1);
  return 1;
}

/* indices() -> new tensor of the 1-based dataset positions in the last batch */
static int b_indices(lua_State *L) {
  lbatcher *b = check_b(L, 1);
  int64_t c;
  const int64_t *ix = eg_batcher_indices(b->b, &c);
  eg_tensor *t = eg_lua_pushnew(L, 1, &c, "indices");
  for (int64_t k = 0; k < c; k++) eg_data(t)[k] = (float)(ix[k] + 1);
  return 1;
}

static int b_dataset(lua_State *L) {
  check_b(L, 1);
  lua_getiuservalue(L, 1, 3);
  return 1;
}

static int b_gc(lua_State *L) {
  lbatcher *b = luaL_checkudata(L, 1, EG_BATCHER_MT);
  eg_batcher_free(b->b);
  b->b = NULL;
  return 0;
}

static int b_tostring(lua_State *L) {
  lbatcher *b = luaL_checkudata(L, 1, EG_BATCHER_MT);
  if (!b->b)
    lua_pushstring(L, "Batches (released)");
  else
    lua_pushfstring(L, "Batches(%I per epoch, epoch %I)", (lua_Integer)eg_batcher_nbatches(b->b),
                    (lua_Integer)eg_batcher_epoch(b->b));
  return 1;
}

/* ------------------------------------------------------------- registration */

static const luaL_Reg ds_methods[] = {
    {"size", m_size}, {"shape", m_shape}, {"numel", m_numel}, {"num_classes", m_num_classes},
    {"dtype", m_dtype}, {"quantization", m_quantization}, {"class_counts", m_class_counts}, {"classes", m_classes}, {"labels", m_labels},
    {"label", m_label}, {"subset_indices", m_subset_indices}, {"subset_labels", m_subset_labels},
    {"subset_fractions", m_subset_fractions}, {"split", m_split}, {"concat", m_concat},
    {"permuted", m_permuted}, {"permutation", m_permutation}, {"rotated", m_rotated},
    {"normalized", m_normalized}, {"noisy", m_noisy}, {"get", m_get}, {"gather", m_gather},
    {"range", m_range}, {"tensors", m_tensors}, {"batcher", m_batcher}, {"release", m_gc},
    {NULL, NULL}};

static const luaL_Reg ds_meta[] = {{"__len", m_size}, {"__tostring", m_tostring}, {"__gc", m_gc},
                                   {"__close", m_gc}, {NULL, NULL}};

static const luaL_Reg b_methods[] = {{"next", b_next},       {"nbatches", b_len}, {"epoch", b_epoch},
                                     {"rewind", b_rewind},   {"indices", b_indices},
                                     {"dataset", b_dataset}, {"release", b_gc},   {NULL, NULL}};

static const luaL_Reg b_meta[] = {{"__call", b_next},         {"__len", b_len}, {"__gc", b_gc},
                                  {"__close", b_gc},          {"__tostring", b_tostring},
                                  {NULL, NULL}};

static const luaL_Reg functions[] = {{"idx", l_idx},         {"fashion_mnist", l_fashion_mnist},
                                     {"csv", l_csv},         {"blobs", l_blobs},
                                     {"spirals", l_spirals}, {"from_tensors", l_from_tensors},
                                     {"is_dataset", l_is_dataset}, {NULL, NULL}};

void eg_lua_open_data(lua_State *L) {
  int mod = lua_gettop(L);
  luaL_newmetatable(L, EG_DATASET_MT);
  luaL_setfuncs(L, ds_meta, 0);
  luaL_newlib(L, ds_methods);
  lua_pushvalue(L, -1);
  lua_setfield(L, mod, "Dataset"); /* engram.data adds the option-table methods here */
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  luaL_newmetatable(L, EG_BATCHER_MT);
  luaL_setfuncs(L, b_meta, 0);
  luaL_newlib(L, b_methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  /* Not "data": init.lua copies core's fields into engram, and engram.data is the Lua library. */
  luaL_newlib(L, functions);
  lua_setfield(L, mod, "_data");
}
