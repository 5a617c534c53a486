/*
** lutil.h — what every binding source shares: the tensor userdata, turning a
** core status into a Lua error, and the 1-based <-> 0-based conversion.
** Internal to the module (not the embedding API, which is engram.h).
*/
#ifndef EG_LUTIL_H
#define EG_LUTIL_H

#include <lauxlib.h>
#include <lua.h>

#include "rng.h"
#include "tensor.h"

#define EG_TENSOR_MT "engram.Tensor"
#define EG_RNG_MT "engram.Generator"

#if defined(__GNUC__)
#define EG_HIDDEN __attribute__((visibility("hidden")))
#else
#define EG_HIDDEN
#endif

/* After a core call: raises "<op>: <core message>" when status != EG_OK. */
#define eg_lua_try(L, call, op)                     \
  do {                                              \
    int st__ = (call);                              \
    if (st__ != EG_OK) eg_lua_fail((L), st__, (op)); \
  } while (0)
EG_HIDDEN int eg_lua_fail(lua_State *L, int status, const char *op);

/* Pushes a new empty tensor userdata (storage NULL) and returns it. Create
** the userdata first, then fill it: a failure half-way leaves an empty,
** collectable tensor. */
EG_HIDDEN eg_tensor *eg_lua_newtensor(lua_State *L);
/* The tensor at idx or a "bad argument" error; errors on a released tensor. */
EG_HIDDEN eg_tensor *eg_lua_checktensor(lua_State *L, int idx);
EG_HIDDEN eg_tensor *eg_lua_totensor(lua_State *L, int idx); /* NULL if not a tensor */
/* Tells Lua's collector about nbytes of C memory just allocated (lua_gc step). */
EG_HIDDEN void eg_lua_account(lua_State *L, size_t nbytes);
/* The generator at idx, or the module's default generator when idx is none/nil. */
EG_HIDDEN eg_rng *eg_lua_optrng(lua_State *L, int idx);

/* 1-based Lua index (negative counts from the end: -1 is the last) -> 0-based,
** or a "bad argument" error naming what when out of [1, n]. */
EG_HIDDEN int64_t eg_lua_checkindex(lua_State *L, int arg, int64_t n, const char *what);
/* A Lua dimension number (1-based, negative from the end) -> 0-based. */
EG_HIDDEN int eg_lua_checkdim(lua_State *L, int arg, int ndim);
/* Reads a shape from args first..top (numbers) or from a table at first.
** Returns ndim; errors on non-integral, negative or too many sizes. */
EG_HIDDEN int eg_lua_checkshape(lua_State *L, int first, int64_t *shape, const char *op);

/* Added by the tensor bindings (lutil.c). */
/* Like eg_lua_checkindex, but raises "<op>: index 7 out of range for
** dimension <dim+1> of size 3" (the tensor indexing style). */
EG_HIDDEN int64_t eg_lua_index(lua_State *L, int arg, int64_t n, int dim, const char *op);
/* Reads a shape from args first..last (numbers) or one table at first.
** allow_infer accepts one -1 (for view). Checks the element count (no
** overflow, at most 2^40) before anything is allocated. Returns ndim. */
EG_HIDDEN int eg_lua_readshape(lua_State *L, int first, int last, int64_t *shape, int allow_infer, const char *op);
/* Gives t the shape in place (contents unspecified), telling the collector
** when new storage was allocated. borrowed: keep the storage whenever it is
** large enough even if other tensors view it (eg_tensor_resize_buffer: batch
** buffers, layer outputs); otherwise eg_tensor_resize (reallocates when shared). */
EG_HIDDEN void eg_lua_resize(lua_State *L, eg_tensor *t, int ndim, const int64_t *shape, int borrowed, const char *op);
/* Pushes a new zero-filled tensor of the shape (accounted to the collector) and returns it. */
EG_HIDDEN eg_tensor *eg_lua_pushnew(lua_State *L, int ndim, const int64_t *shape, const char *op);
/* Index data (float tensors holding integers): dst becomes a new tensor holding
** src - 1 (Lua's 1-based indices for the core); eg_lua_index_to_lua adds 1 in
** place (core results for Lua). The only places tensor indices change base. */
EG_HIDDEN int eg_lua_index_to_c(lua_State *L, eg_tensor *dst, const eg_tensor *src, const char *op);
EG_HIDDEN void eg_lua_index_to_lua(lua_State *L, eg_tensor *t, const char *op);

/* The file name at arg, for op to open (write: to create or replace). Outside
** the embedding API's sandbox, luaL_checkstring; in it, the name is resolved
** and checked against the sandbox's directories (embed_sandbox.c): arg is
** replaced by the resolved name, which is returned, or "op: path: not allowed
** in the sandbox (...)" is raised. */
EG_HIDDEN const char *eg_lua_path(lua_State *L, int arg, int write, const char *op);
/* The same, returning NULL with that message pushed instead of raising it. */
EG_HIDDEN const char *eg_lua_trypath(lua_State *L, int arg, int write, const char *op);

/* Each binding source registers its part of the module table on the top of the stack. */
EG_HIDDEN void eg_lua_open_tensor(lua_State *L);
EG_HIDDEN void eg_lua_open_rng(lua_State *L);
EG_HIDDEN void eg_lua_open_nn(lua_State *L);
EG_HIDDEN void eg_lua_open_data(lua_State *L);
EG_HIDDEN void eg_lua_open_text(lua_State *L);
/* Datasets for other binding sources (ldata.c): a new empty dataset userdata
** pushed (the core fills the returned slot), and the live dataset at idx. */
typedef struct eg_dataset eg_dataset;
EG_HIDDEN eg_dataset **eg_lua_newdataset(lua_State *L);
EG_HIDDEN eg_dataset *eg_lua_checkdataset(lua_State *L, int idx);

/* ---- losses, optimisers, continual-learning primitives (lloss.c, loptim.c, lcl.c) ---- */
EG_HIDDEN void eg_lua_open_loss(lua_State *L);
EG_HIDDEN void eg_lua_open_optim(lua_State *L);
EG_HIDDEN void eg_lua_open_io(lua_State *L);
EG_HIDDEN void eg_lua_open_cl(lua_State *L);
EG_HIDDEN void eg_lua_open_gen(lua_State *L);
EG_HIDDEN void eg_lua_open_attn(lua_State *L);
/* ---- end losses, optimisers, cl ---- */

#endif
