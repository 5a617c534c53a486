/*
** embed_lua.h — engram's Lua library compiled into the embedding API
** (tools/embed_lua.sh writes the table; bindings/embed.c searches it).
** Internal: not installed.
*/
#ifndef EG_EMBED_LUA_H
#define EG_EMBED_LUA_H

#include <stddef.h>

typedef struct eg_lua_module {
  const char *name;          /* "engram", "engram.nn.vae", ... */
  const char *file;          /* "engram/init.lua", "engram/nn/vae.lua", ... */
  const unsigned char *text; /* the file's bytes (a text chunk) */
  size_t size;
} eg_lua_module;

/* Ended by an entry whose name is NULL. */
extern const eg_lua_module eg_lua_modules[];

#endif
