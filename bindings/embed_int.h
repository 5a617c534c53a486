/*
** embed_int.h — what the embedding API's sources (embed.c, embed_sandbox.c,
** embed_io.c) share with each other and with the `engram` command
** (bindings/cmd/). Internal: not installed, not API (that is engram.h).
*/
#ifndef EG_EMBED_INT_H
#define EG_EMBED_INT_H

#include <lua.h>

#include "engram.h"

#if defined(__GNUC__)
#define EG_EMBED_HIDDEN __attribute__((visibility("hidden")))
#else
#define EG_EMBED_HIDDEN
#endif

/* The pcall message handler of engram: turns any error object into a string
** ("(error object is a X value)" when it has no __tostring) and appends a
** traceback, as lua.c does. */
EG_EMBED_HIDDEN int eg_embed_msghandler(lua_State *L);

typedef struct eg_sandbox eg_sandbox;

struct engram_state {
  lua_State *L;
  char *err;      /* last failure message, eg_malloc'ed */
  int err_lost;   /* a failure whose message could not be copied */
  char *text;     /* the last engram_results_json document, eg_malloc'ed */
  eg_sandbox *sb; /* NULL: no sandbox */
  eg_budget budget;       /* memory_limit: the Lua state and the core's allocations */
  eg_budget *outer;       /* the thread's budget before the current call */
  int depth;              /* calls in progress (a host may nest them) */
  uint64_t instr_limit;   /* per call; 0: none */
  double time_limit;      /* seconds per call; 0: none */
  uint64_t instr;         /* instructions counted in this call */
  double deadline;        /* CLOCK_MONOTONIC seconds */
  int limit_hit;          /* the running call passed a limit */
};

/* ---- embed.c: around every call that runs Lua ---- */
/* Starts a call: the engine's memory budget on this thread, fresh limits. */
EG_EMBED_HIDDEN void eg_embed_enter(engram_state *E);
/* Ends it: returns st, made ENGRAM_ELIMIT / ENGRAM_ENOMEM when the failure
** came from a limit or the memory cap. */
EG_EMBED_HIDDEN int eg_embed_leave(engram_state *E, int st);
/* Keeps msg as the last error of E; returns status. */
EG_EMBED_HIDDEN int eg_embed_error(engram_state *E, int status, const char *msg);
/* Keeps the error object on the top of E's stack (popped) as the last error;
** returns the ENGRAM_ status of the Lua status st. */
EG_EMBED_HIDDEN int eg_embed_take_error(engram_state *E, int st);
/* prefix and s[0..n) in a new NUL-terminated string, or NULL. The engine's
** own buffers (messages, documents for the host) are not charged to its
** memory budget, so a full budget never costs the host its error message;
** free them with eg_embed_free. */
EG_EMBED_HIDDEN char *eg_embed_dup(const char *prefix, const char *s, size_t n);
EG_EMBED_HIDDEN void eg_embed_free(void *p);
/* Calls the function under narg arguments on the top, under the traceback
** handler, keeping nres results on the stack (none on failure; the error is
** recorded on E). Returns an ENGRAM_ status. */
EG_EMBED_HIDDEN int eg_embed_call(engram_state *E, int narg, int nres);

/* ---- embed_sandbox.c ---- */
/* A sandbox over the directories (NULL-terminated lists, either may be NULL);
** ENGRAM_OK, or a status with a message in err (n bytes). */
EG_EMBED_HIDDEN int eg_sandbox_new(eg_sandbox **out, const char *const *dirs, const char *const *read_dirs,
                                   char *err, size_t n);
EG_EMBED_HIDDEN void eg_sandbox_free(eg_sandbox *sb);
/* Protected (lua_pcall it with sb as a light userdata): applies sb to the
** state whose standard libraries and package.path (the engram library's
** directories) are set up. */
EG_EMBED_HIDDEN int eg_sandbox_apply(lua_State *L);

#endif
