/*
** test_embed.c — the embedding API's options (bindings/engram.h): the
** sandbox (functions refused, files only in the named directories, for Lua's
** io and for engram's own readers and writers, no ".." or symbolic link out,
** require "engram" still works), the memory cap (Lua's memory and tensors),
** the instruction and time limits, tensors in and out of host memory, the
** results document as JSON. Each refusal is checked against an engine
** without the option, where the same chunk works. Built like the example
** hosts (it links the bindings), run by tests/run.sh from the project root.
*/
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <lua.h>

#include "check.h"
#include "engram.h"

/* ---- helpers ---- */

static char dir_rw[64], dir_ro[64], dir_out[64];

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  return remove(path);
}

static void write_text(const char *dir, const char *name, const char *text) {
  char path[256];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  if (f) {
    fputs(text, f);
    fclose(f);
  }
}

/* Runs chunk; reports the engine's message when the status is not the one expected. */
static int run_is(engram_state *E, const char *chunk, int want, int line) {
  int st = engram_dostring(E, chunk);
  if (st != want)
    fprintf(stderr, "  line %d: status %d (%s), expected %d: %s\n", line, st, engram_errstr(st), want,
            engram_errmsg(E));
  return st == want;
}
#define RUNS(E, chunk) CHECK(run_is((E), (chunk), ENGRAM_OK, __LINE__))
#define FAILS(E, chunk, status, text) \
  CHECK(run_is((E), (chunk), (status), __LINE__) && strstr(engram_errmsg(E), (text)) != NULL)

/* The global `ok` after a chunk: the chunk's own verdict on what it saw. */
static int global_true(engram_state *E, const char *name) {
  lua_State *L = engram_lua(E);
  int v = lua_getglobal(L, name) == LUA_TBOOLEAN && lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

/* A chunk setting globals for the paths (rw, ro, out) of this run. */
static void set_dirs(engram_state *E) {
  char chunk[400];
  snprintf(chunk, sizeof chunk, "RW, RO, OUT = '%s', '%s', '%s'", dir_rw, dir_ro, dir_out);
  engram_dostring(E, chunk);
}

/* A sandboxed engine; with_dirs: rw and ro allowed (and RW, RO, OUT set). */
static engram_state *open_sandbox(int with_dirs) {
  engram_options o;
  engram_state *E = NULL;
  const char *rw[] = {dir_rw, NULL}, *ro[] = {dir_ro, NULL};
  engram_options_init(&o);
  o.sandbox = 1;
  if (with_dirs) {
    o.dirs = rw;
    o.read_dirs = ro;
  }
  if (engram_open_with(&E, &o) != ENGRAM_OK) fprintf(stderr, "  open: %s\n", engram_errmsg(E));
  if (with_dirs) set_dirs(E);
  return E;
}

/* ---- options ---- */

static void test_options_default_to_engram_open_and_bad_options_are_refused(void) {
  engram_options o;
  engram_state *E = NULL;
  const char *missing[] = {"/nonexistent/engram-dir", NULL};
  engram_options_init(&o);
  CHECK(o.size == sizeof o && o.sandbox == 0 && o.memory_limit == 0 && o.instruction_limit == 0);
  CHECK(engram_open_with(&E, &o) == ENGRAM_OK);
  RUNS(E, "assert(os.getenv('PATH') and debug and io.popen and engram.ones(2):sum() == 2)");
  engram_close(E);
  CHECK(engram_open_with(&E, NULL) == ENGRAM_OK);
  engram_close(E);
  o.size = 3;
  CHECK(engram_open_with(&E, &o) == ENGRAM_EMISUSE && strstr(engram_errmsg(E), "engram_options_init"));
  engram_close(E);
  engram_options_init(&o);
  o.sandbox = 1;
  o.dirs = missing;
  CHECK(engram_open_with(&E, &o) == ENGRAM_EMISUSE && strstr(engram_errmsg(E), "/nonexistent/engram-dir"));
  engram_close(E);
  engram_options_init(&o);
  o.time_limit = -1;
  CHECK(engram_open_with(&E, &o) == ENGRAM_EMISUSE && strstr(engram_errmsg(E), "time_limit"));
  engram_close(E);
  CHECK(engram_open_with(NULL, &o) == ENGRAM_EMISUSE);
  CHECK(engram_memory_used(NULL, NULL) == 0);
  CHECK(strcmp(engram_errstr(ENGRAM_ELIMIT), "instruction or time limit reached") == 0);
}

/* ---- the sandbox: functions ---- */

static void test_sandbox_refuses_what_reaches_the_process(void) {
  engram_state *E = open_sandbox(1);
  static const char *const refused[] = {"os.execute('true')", "io.popen('ls')", "os.exit(0)",
                                        "package.loadlib('libc.so.6', '*')", "os.tmpname()", "io.tmpfile()",
                                        "os.setlocale('C')", NULL};
  for (const char *const *c = refused; *c; c++) {
    char chunk[200];
    snprintf(chunk, sizeof chunk, "%s", *c);
    FAILS(E, chunk, ENGRAM_ERUN, "not available in the sandbox");
  }
  RUNS(E, "assert(os.getenv('PATH') == nil and os.getenv('HOME') == nil)");
  RUNS(E, "assert(debug == nil and package.loaded.debug == nil)");
  FAILS(E, "require 'debug'", ENGRAM_ERUN, "module 'debug' not found");
  /* no C searchers: preload, the sandbox's file searcher, engram's compiled-in library */
  RUNS(E, "assert(package.cpath == '' and #package.searchers == 3)");
  FAILS(E, "require 'socket'", ENGRAM_ERUN, "no module 'socket' in engram's compiled-in library");
  /* what stays: time, the clock, strings, printing to the host's stdout */
  RUNS(E, "assert(os.time() > 0 and os.clock() >= 0 and string.format('%d', 3) == '3' and io.write)");
  /* the engine is still usable after each refusal */
  RUNS(E, "x = engram.ones(2, 2):sum(); assert(x == 4)");
  engram_close(E);
}

static void test_sandbox_and_every_engine_refuse_binary_chunks(void) {
  engram_state *E = open_sandbox(0);
  FAILS(E, "assert(load(string.dump(function() return 1 end)))", ENGRAM_ERUN, "attempt to load a binary chunk");
  FAILS(E, "load(string.dump(function() end), 'x', 'b')", ENGRAM_ERUN, "binary chunks are not accepted");
  RUNS(E, "assert(load('return 1')() == 1)");
  engram_close(E);
}

/* ---- the sandbox: files ---- */

static void test_sandbox_files_only_in_the_named_directories(void) {
  engram_state *E = open_sandbox(1);
  write_text(dir_ro, "data.txt", "read me\n");
  write_text(dir_out, "secret.txt", "secret\n");
  /* writing and reading back in the read-write directory */
  RUNS(E, "local f = assert(io.open(RW .. '/out.txt', 'w')); f:write('hello'); f:close()\n"
          "assert(io.open(RW .. '/out.txt'):read('a') == 'hello')\n"
          "assert(io.lines(RW .. '/out.txt')() == 'hello')\n"
          "assert(os.rename(RW .. '/out.txt', RW .. '/moved.txt')); assert(os.remove(RW .. '/moved.txt'))");
  /* the read-only directory: reads, no writes */
  RUNS(E, "assert(io.open(RO .. '/data.txt'):read('l') == 'read me')\n"
          "local f, msg = io.open(RO .. '/new.txt', 'w')\n"
          "assert(f == nil and msg:find('read%-only directory'), msg)");
  /* outside: /etc/passwd and the other directory, by every road */
  RUNS(E, "local f, msg, code = io.open('/etc/passwd')\n"
          "assert(f == nil and msg:find('not allowed in the sandbox') and code == 13, msg)\n"
          "assert(io.open(OUT .. '/secret.txt') == nil)\n"
          "assert(io.open(RW .. '/../' .. OUT:match('[^/]+$') .. '/secret.txt') == nil)\n"
          "assert(loadfile('/etc/passwd') == nil)\n"
          "assert(not pcall(io.lines, '/etc/passwd'))\n"
          "assert(not pcall(dofile, '/etc/passwd'))\n"
          "assert(not pcall(io.input, '/etc/passwd'))\n"
          "assert(not pcall(io.output, OUT .. '/x.txt'))\n"
          "assert(not pcall(os.remove, OUT .. '/secret.txt'))\n"
          "assert(not pcall(os.rename, RW .. '/a', OUT .. '/b'))\n"
          "assert(io.open(42, 'w') == nil)");
  FAILS(E, "io.lines('/etc/passwd')", ENGRAM_ERUN, "io.lines: /etc/passwd: not allowed in the sandbox");
  CHECK(access("42", F_OK) != 0);
  engram_close(E);

  /* the control: without the sandbox the same reads succeed */
  engram_open(&E);
  RUNS(E, "assert(io.open('/etc/passwd')):close()");
  engram_close(E);
}

static void test_sandbox_symbolic_links_do_not_lead_out(void) {
  char link[128], dlink[128], dangling[128];
  engram_state *E = open_sandbox(1);
  write_text(dir_out, "secret.txt", "secret\n");
  snprintf(link, sizeof link, "%s/link.txt", dir_rw);
  snprintf(dlink, sizeof dlink, "%s/outdir", dir_rw);
  snprintf(dangling, sizeof dangling, "%s/dangling", dir_rw);
  char target[128];
  snprintf(target, sizeof target, "%s/secret.txt", dir_out);
  CHECK(symlink(target, link) == 0);
  CHECK(symlink(dir_out, dlink) == 0);
  snprintf(target, sizeof target, "%s/made-by-the-script", dir_out);
  CHECK(symlink(target, dangling) == 0);
  RUNS(E, "assert(io.open(RW .. '/link.txt') == nil)\n"
          "assert(io.open(RW .. '/outdir/secret.txt') == nil)\n"
          "assert(io.open(RW .. '/outdir/new.txt', 'w') == nil)\n"
          "local f, msg = io.open(RW .. '/dangling', 'w'); assert(f == nil and msg:find('symbolic link'), msg)");
  CHECK(access(target, F_OK) != 0);
  engram_close(E);
}

static void test_sandbox_covers_engrams_own_readers_and_writers(void) {
  engram_state *E = open_sandbox(1);
  write_text(dir_out, "d.csv", "1,2,0\n3,4,1\n");
  write_text(dir_ro, "d.csv", "1,2,0\n3,4,1\n");
  RUNS(E, "local t = {w = engram.ones(2, 3)}\n"
          "engram.io.save(RW .. '/m.safetensors', t)\n"
          "assert(engram.io.load(RW .. '/m.safetensors').w:sum() == 6)\n"
          "engram.json.write_file(RW .. '/r.json', {a = 1})\n"
          "assert(engram.json.read_file(RW .. '/r.json').a == 1)\n"
          "assert(#engram.data.csv(RO .. '/d.csv') == 2)");
  FAILS(E, "engram.io.save('/tmp/engram-sandbox-escape.safetensors', {w = engram.ones(1)})", ENGRAM_ERUN,
        "not allowed in the sandbox");
  CHECK(access("/tmp/engram-sandbox-escape.safetensors", F_OK) != 0);
  FAILS(E, "engram.io.save(RO .. '/m.safetensors', {w = engram.ones(1)})", ENGRAM_ERUN, "read-only directory");
  FAILS(E, "engram.io.load(OUT .. '/m.safetensors')", ENGRAM_ERUN, "not allowed in the sandbox");
  FAILS(E, "engram.data.csv(OUT .. '/d.csv')", ENGRAM_ERUN, "csv: ");
  FAILS(E, "engram.data.idx('/etc/passwd', '/etc/passwd')", ENGRAM_ERUN, "idx: /etc/passwd: not allowed");
  FAILS(E, "engram.data.fashion_mnist()", ENGRAM_ERUN, "fashion_mnist");
  FAILS(E, "engram.json.write_file(OUT .. '/r.json', {a = 1})", ENGRAM_ERUN, "not allowed in the sandbox");
  FAILS(E, "engram.core.write_file_atomic('/tmp/engram-escape.txt', 'x')", ENGRAM_ERUN, "write_file_atomic: ");
  FAILS(E, "engram.core.png_write(OUT .. '/i.png', engram.zeros(2, 2))", ENGRAM_ERUN, "png: ");
  RUNS(E, "local ok, msg = engram.core.check_writable(OUT .. '/x'); assert(not ok)");
  engram_close(E);
}

static void test_sandbox_require_reads_the_library_and_the_directories_only(void) {
  engram_state *E = open_sandbox(1);
  write_text(dir_rw, "helper.lua", "return {answer = 42}\n");
  write_text(dir_out, "evil.lua", "return {answer = 666}\n");
  RUNS(E, "assert(require('engram').ones and require('engram.json').encode)");
  RUNS(E, "assert(require('helper').answer == 42)");
  FAILS(E, "package.path = OUT .. '/?.lua'; require 'evil'", ENGRAM_ERUN, "module 'evil' not found");
  FAILS(E, "package.path = '/etc/?'; require 'passwd'", ENGRAM_ERUN, "not allowed in the sandbox");
  RUNS(E, "assert(package.searchpath('passwd', '/etc/?') == nil)");
  engram_close(E);

  /* no directories at all: the library still loads, no file opens */
  E = open_sandbox(0);
  RUNS(E, "assert(engram and io.open('/etc/passwd') == nil)");
  engram_close(E);
}

/* When package.path leads to no engram file (an installed tree moved), the
** library compiled into the embedding API answers require, in the sandbox
** too; the same modules as the files. */
static void test_require_falls_back_to_the_compiled_in_library(void) {
  engram_state *E = NULL;
  CHECK(engram_open(&E) == ENGRAM_OK);
  RUNS(E, "package.path = ''; package.loaded['engram.json'] = nil; "
          "local m, where = require('engram.json'); "
          "assert(where == '[engram]/engram/json.lua' and m.encode({1}) == '[1]')");
  FAILS(E, "package.path = ''; require 'engram.nonexistent'", ENGRAM_ERUN,
        "no module 'engram.nonexistent' in engram's compiled-in library");
  engram_close(E);
  E = open_sandbox(0);
  RUNS(E, "package.path = ''; package.loaded['engram.util'] = nil; "
          "local _, where = require('engram.util'); assert(where == '[engram]/engram/util.lua')");
  engram_close(E);
}

/* ---- the memory cap ---- */

static engram_state *open_capped(size_t limit) {
  engram_options o;
  engram_state *E = NULL;
  engram_options_init(&o);
  o.memory_limit = limit;
  if (engram_open_with(&E, &o) != ENGRAM_OK) fprintf(stderr, "  open: %s\n", engram_errmsg(E));
  return E;
}

static void test_memory_cap_refuses_tensors_strings_and_tables(void) {
  engram_state *E = open_capped(64u << 20);
  size_t peak;
  CHECK(engram_memory_used(E, &peak) > 0 && peak < (64u << 20));
  /* 80 MB of floats: over the cap (the control below makes the same tensor) */
  FAILS(E, "big = engram.zeros(20000000)", ENGRAM_ENOMEM, "out of memory");
  RUNS(E, "assert(engram.ones(10):sum() == 10)");
  FAILS(E, "big = engram.zeros(1e9)", ENGRAM_ENOMEM, "out of memory");
  FAILS(E, "s = string.rep('x', 1 << 30)", ENGRAM_ENOMEM, "not enough memory");
  RUNS(E, "s = nil; assert(#string.rep('x', 1000) == 1000)");
  FAILS(E, "t = {}; for i = 1, 1e9 do t[i] = i end", ENGRAM_ENOMEM, "not enough memory");
  RUNS(E, "t = nil; collectgarbage()");
  /* a script may catch it and go on */
  RUNS(E, "local ok, msg = pcall(engram.zeros, 1e9); assert(not ok and msg:find('out of memory'))");
  /* dead tensors are collected before a refusal: 100 x 4 MB in a 64 MB cap */
  RUNS(E, "for i = 1, 100 do local x = engram.zeros(1000000); x:fill_(i) end");
  CHECK(engram_memory_used(E, &peak) < (64u << 20) && peak <= (64u << 20) + 4096);
  engram_close(E);

  /* the control: no cap, the same 80 MB tensor is made */
  engram_open(&E);
  RUNS(E, "big = engram.zeros(20000000); assert(big:size(1) == 20000000)");
  engram_close(E);
}

static void test_memory_cap_counts_tensors_and_gives_them_back(void) {
  engram_state *E = open_capped(256u << 20);
  size_t before = engram_memory_used(E, NULL), held;
  RUNS(E, "x = engram.zeros(4000000)"); /* 16 MB */
  held = engram_memory_used(E, NULL);
  /* 16 MB more, give or take Lua's garbage collected meanwhile */
  CHECK(held > before + 16000000 - 65536 && held < before + 16000000 + 65536);
  RUNS(E, "x = nil; collectgarbage(); collectgarbage()");
  CHECK(engram_memory_used(E, NULL) < before + 65536);
  engram_close(E);
}

/* ---- the limits ---- */

static void test_instruction_limit_stops_runaway_code_per_call(void) {
  engram_options o;
  engram_state *E = NULL;
  engram_options_init(&o);
  o.instruction_limit = 1000000;
  CHECK(engram_open_with(&E, &o) == ENGRAM_OK);
  FAILS(E, "while true do end", ENGRAM_ELIMIT, "instruction limit of 1000000 reached");
  RUNS(E, "local n = 0; for i = 1, 50000 do n = n + i end; assert(n == 1250025000)");
  /* pcall cannot swallow it, nor can a coroutine */
  FAILS(E, "while true do pcall(function() while true do end end) end", ENGRAM_ELIMIT, "instruction limit");
  FAILS(E, "local co = coroutine.wrap(function() while true do end end); while true do pcall(co) end",
        ENGRAM_ELIMIT, "instruction limit");
  RUNS(E, "ok = engram.ones(3):sum() == 3");
  CHECK(global_true(E, "ok"));
  engram_close(E);

  /* loading engram's library at open is not charged to the scripts' limit */
  o.instruction_limit = 100;
  CHECK(engram_open_with(&E, &o) == ENGRAM_OK);
  RUNS(E, "assert(engram.ones and engram.core)");
  FAILS(E, "for i = 1, 1000 do end", ENGRAM_ELIMIT, "instruction limit of 100 reached");
  engram_close(E);

  /* the control: no limit, a long loop ends normally */
  engram_open(&E);
  RUNS(E, "local n = 0; for i = 1, 2000000 do n = n + 1 end; assert(n == 2000000)");
  engram_close(E);
}

static void test_time_limit_stops_runaway_code(void) {
  engram_options o;
  engram_state *E = NULL;
  struct timespec a, b;
  engram_options_init(&o);
  o.time_limit = 0.2;
  CHECK(engram_open_with(&E, &o) == ENGRAM_OK);
  clock_gettime(CLOCK_MONOTONIC, &a);
  FAILS(E, "while true do end", ENGRAM_ELIMIT, "time limit of 0.2");
  clock_gettime(CLOCK_MONOTONIC, &b);
  double s = (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec);
  CHECK(s >= 0.19 && s < 2.0);
  RUNS(E, "assert(engram.ones(2):sum() == 2)");
  engram_close(E);
}

/* ---- tensors in and out ---- */

static void test_tensors_copied_in_and_read_out(void) {
  engram_state *E = NULL;
  float data[6] = {1, 2, 3, 4, 5, 6}, out[6] = {0};
  int64_t shape[2] = {2, 3}, got[ENGRAM_MAXDIM];
  int ndim = -1;
  engram_open(&E);
  CHECK(engram_tensor_copy_in(E, "x", data, 2, shape) == ENGRAM_OK);
  data[0] = 100; /* a copy: the engine does not see it */
  RUNS(E, "assert(x:sum() == 21 and x:size(1) == 2 and x:size(2) == 3)");
  CHECK(engram_tensor_read(E, "x:t()", &ndim, got, out, 6) == ENGRAM_OK);
  CHECK(ndim == 2 && got[0] == 3 && got[1] == 2);
  CHECK(out[0] == 1 && out[1] == 4 && out[2] == 2 && out[5] == 6); /* the transpose, row-major */
  CHECK(engram_tensor_read(E, "x", &ndim, got, NULL, 0) == ENGRAM_OK && ndim == 2);
  CHECK(engram_tensor_read(E, "x", NULL, NULL, out, 5) == ENGRAM_EMISUSE && strstr(engram_errmsg(E), "6 elements"));
  CHECK(engram_tensor_read(E, "42", NULL, NULL, out, 6) == ENGRAM_EMISUSE && strstr(engram_errmsg(E), "not a tensor"));
  CHECK(engram_tensor_read(E, "x +", NULL, NULL, out, 6) == ENGRAM_ESYNTAX);
  CHECK(engram_tensor_read(E, "error('no')", NULL, NULL, out, 6) == ENGRAM_ERUN);
  /* dotted names make their tables; a scalar (ndim 0) */
  CHECK(engram_tensor_copy_in(E, "data.train.x", data, 1, shape + 1) == ENGRAM_OK);
  CHECK(engram_tensor_copy_in(E, "s", data + 1, 0, NULL) == ENGRAM_OK);
  RUNS(E, "assert(data.train.x:size(1) == 3 and s:item() == 2)");
  /* refused before anything runs */
  CHECK(engram_tensor_copy_in(E, "1x", data, 2, shape) == ENGRAM_EMISUSE);
  CHECK(engram_tensor_copy_in(E, "a..b", data, 2, shape) == ENGRAM_EMISUSE);
  CHECK(engram_tensor_copy_in(E, "x", NULL, 2, shape) == ENGRAM_EMISUSE);
  CHECK(engram_tensor_copy_in(E, "x", data, 9, shape) == ENGRAM_EMISUSE);
  int64_t neg[1] = {-1};
  CHECK(engram_tensor_copy_in(E, "x", data, 1, neg) == ENGRAM_EMISUSE);
  CHECK(engram_tensor_copy_in(NULL, "x", data, 2, shape) == ENGRAM_EMISUSE);
  RUNS(E, "n = 5");
  CHECK(engram_tensor_copy_in(E, "n.x", data, 2, shape) == ENGRAM_ERUN && strstr(engram_errmsg(E), "not a table"));
  CHECK(lua_gettop(engram_lua(E)) == 0);
  engram_close(E);
}

static void test_wrapped_tensors_share_the_hosts_buffer(void) {
  engram_state *E = NULL;
  float *buf = malloc(4 * sizeof(float));
  int64_t shape[1] = {4};
  for (int i = 0; i < 4; i++) buf[i] = (float)i;
  engram_open(&E);
  CHECK(engram_tensor_wrap(E, "w", buf, 1, shape) == ENGRAM_OK);
  RUNS(E, "assert(w:sum() == 6); w:mul_(2); v = w:narrow(1, 2, 2)");
  CHECK(buf[1] == 2 && buf[3] == 6);
  buf[0] = 10; /* the engine sees the host's writes */
  RUNS(E, "assert(w[1] == 10); w = nil; collectgarbage()");
  engram_close(E); /* the views die here: buf must still be the host's to free */
  CHECK(buf[2] == 4);
  free(buf);
}

static void test_results_document_as_json(void) {
  engram_state *E = NULL;
  const char *json = NULL;
  size_t len = 0;
  engram_open(&E);
  RUNS(E, "doc = {acc = engram.json.array{engram.json.array{0.5, 0.25}}, name = 'run'}");
  CHECK(engram_results_json(E, "doc", &json, &len) == ENGRAM_OK);
  CHECK(json && len == strlen(json) && strstr(json, "\"name\": \"run\"") && strstr(json, "0.25"));
  CHECK(engram_results_json(E, "'{\"a\": 1}'", &json, NULL) == ENGRAM_OK && strcmp(json, "{\"a\": 1}") == 0);
  CHECK(engram_results_json(E, "42", &json, &len) == ENGRAM_EMISUSE && json == NULL);
  CHECK(engram_results_json(E, "doc", NULL, &len) == ENGRAM_EMISUSE);
  CHECK(engram_results_json(E, "{f = print}", &json, &len) == ENGRAM_ERUN);
  engram_close(E);
}

int main(void) {
  strcpy(dir_rw, "/tmp/engram-rw-XXXXXX");
  strcpy(dir_ro, "/tmp/engram-ro-XXXXXX");
  strcpy(dir_out, "/tmp/engram-out-XXXXXX");
  if (!mkdtemp(dir_rw) || !mkdtemp(dir_ro) || !mkdtemp(dir_out)) {
    perror("test_embed: mkdtemp");
    return 1;
  }
  RUN(test_options_default_to_engram_open_and_bad_options_are_refused);
  RUN(test_sandbox_refuses_what_reaches_the_process);
  RUN(test_sandbox_and_every_engine_refuse_binary_chunks);
  RUN(test_sandbox_files_only_in_the_named_directories);
  RUN(test_sandbox_symbolic_links_do_not_lead_out);
  RUN(test_sandbox_covers_engrams_own_readers_and_writers);
  RUN(test_sandbox_require_reads_the_library_and_the_directories_only);
  RUN(test_require_falls_back_to_the_compiled_in_library);
  RUN(test_memory_cap_refuses_tensors_strings_and_tables);
  RUN(test_memory_cap_counts_tensors_and_gives_them_back);
  RUN(test_instruction_limit_stops_runaway_code_per_call);
  RUN(test_time_limit_stops_runaway_code);
  RUN(test_tensors_copied_in_and_read_out);
  RUN(test_wrapped_tensors_share_the_hosts_buffer);
  RUN(test_results_document_as_json);
  nftw(dir_rw, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
  nftw(dir_ro, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
  nftw(dir_out, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
  return CHECK_DONE("embed api");
}
