/*
** sandbox.c — a host that runs untrusted scripts through the embedding API
** (bindings/engram.h) with the sandbox, a memory cap and an instruction
** limit: os.execute and io.popen are refused, /etc/passwd cannot be read,
** a file in the one allowed directory can be written, a runaway loop is
** stopped by the limit, allocations over the cap (a 4 GB tensor, a 1 GB
** string, an endless table) are refused, and a binary chunk is refused; after
** each the engine still runs engram. Exits 0 when every check holds; `make
** test` runs it (well under a second).
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engram.h"

static int checks = 0, failures = 0;

static void check(int ok, const char *what) {
  printf("sandbox: %s: %s\n", ok ? "ok" : "FAILED", what);
  checks++;
  if (!ok) failures++;
}

/* Runs an untrusted chunk; expects status `want` and `text` in the message
** (NULL: none to look for), then checks that the engine still works. */
static void expect(engram_state *E, const char *chunk, int want, const char *text, const char *what) {
  int st = engram_dostring(E, chunk);
  const char *msg = engram_errmsg(E);
  int ok = st == want && (text == NULL || strstr(msg, text) != NULL);
  if (st != ENGRAM_OK) printf("sandbox:   %s: %.*s\n", engram_errstr(st), (int)strcspn(msg, "\n"), msg);
  if (!ok) fprintf(stderr, "sandbox: status %d, expected %d: %s\n", st, want, msg);
  ok = ok && engram_dostring(E, "assert(engram.ones(2, 2):sum() == 4)") == ENGRAM_OK;
  check(ok, what);
}

int main(void) {
  char dir[] = "/tmp/engram-sandbox-XXXXXX", file[64], chunk[256];
  const char *dirs[] = {dir, NULL};
  engram_options o;
  engram_state *E = NULL;
  int st;

  if (mkdtemp(dir) == NULL) {
    perror("sandbox: mkdtemp");
    return 1;
  }
  engram_options_init(&o);
  o.sandbox = 1;
  o.dirs = dirs;                   /* the only place files may be read or written */
  o.memory_limit = 64u << 20;      /* 64 MiB */
  o.instruction_limit = 10000000;  /* per call */
  st = engram_open_with(&E, &o);
  if (st != ENGRAM_OK) {
    fprintf(stderr, "sandbox: engram_open_with: %s: %s\n", engram_errstr(st), engram_errmsg(E));
    engram_close(E);
    return 1;
  }

  expect(E, "os.execute('touch /tmp/pwned')", ENGRAM_ERUN, "os.execute: not available in the sandbox",
         "os.execute is refused");
  expect(E, "io.popen('id')", ENGRAM_ERUN, "io.popen: not available in the sandbox", "io.popen is refused");
  expect(E, "print(assert(io.open('/etc/passwd')):read('a'))", ENGRAM_ERUN,
         "/etc/passwd: not allowed in the sandbox", "reading /etc/passwd is refused");
  expect(E, "engram.io.save('/tmp/escaped.safetensors', {w = engram.ones(3)})", ENGRAM_ERUN,
         "not allowed in the sandbox", "engram's own writers are held to the directories too");
  snprintf(chunk, sizeof chunk,
           "local f = assert(io.open('%s/out.txt', 'w')); f:write('written in the sandbox'); f:close()\n"
           "engram.io.save('%s/w.safetensors', {w = engram.ones(3)})",
           dir, dir);
  expect(E, chunk, ENGRAM_OK, NULL, "writing into the allowed directory works");
  snprintf(file, sizeof file, "%s/out.txt", dir);
  FILE *f = fopen(file, "r");
  char text[64] = "";
  if (f) {
    if (!fgets(text, sizeof text, f)) text[0] = '\0';
    fclose(f);
  }
  check(strcmp(text, "written in the sandbox") == 0, "the host reads what the script wrote");
  expect(E, "while true do end", ENGRAM_ELIMIT, "instruction limit of 10000000 reached",
         "a runaway loop is stopped by the instruction limit");
  expect(E, "x = engram.zeros(1e9)", ENGRAM_ENOMEM, "out of memory", "a 4 GB tensor over the 64 MiB cap is refused");
  expect(E, "s = string.rep('x', 1 << 30)", ENGRAM_ENOMEM, "not enough memory",
         "a 1 GB string over the cap is refused");
  expect(E, "t = {} for i = 1, 1e9 do t[i] = i end", ENGRAM_ENOMEM, "not enough memory",
         "an endless table is refused at the cap");
  expect(E, "t = nil collectgarbage()", ENGRAM_OK, NULL, "the table's memory is given back");
  expect(E, "load(string.dump(function() end), 'c', 'b')", ENGRAM_ERUN, "binary chunks are not accepted",
         "a binary chunk is refused");

  engram_close(E);
  unlink(file);
  snprintf(file, sizeof file, "%s/w.safetensors", dir);
  unlink(file);
  rmdir(dir);
  check(access("/tmp/escaped.safetensors", F_OK) != 0, "nothing was written outside the directory");
  printf("sandbox: %d passed, %d failed\n", checks - failures, failures);
  return failures == 0 ? 0 : 1;
}
