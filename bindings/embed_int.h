/*
** embed_int.h — what embed.c shares with the `engram` command (bindings/cmd/) and
** nothing else. Internal: not installed, not API (that is engram.h).
*/
#ifndef EG_EMBED_INT_H
#define EG_EMBED_INT_H

#include <lua.h>

#if defined(__GNUC__)
#define EG_EMBED_HIDDEN __attribute__((visibility("hidden")))
#else
#define EG_EMBED_HIDDEN
#endif

/* The pcall message handler of engram: turns any error object into a string
** ("(error object is a X value)" when it has no __tostring) and appends a
** traceback, as lua.c does. */
EG_EMBED_HIDDEN int eg_embed_msghandler(lua_State *L);

#endif
