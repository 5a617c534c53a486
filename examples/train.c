/*
** train.c — a host that trains on its own data through the embedding API
** (bindings/engram.h): it makes a small two-task classification set in C
** (four Gaussian classes in 8 dimensions; task 1 holds classes 0-1, task 2
** classes 2-3), passes it in as tensors (the training inputs wrap the host's
** buffer, the rest are copied), runs a chunk that trains an MLP with a
** learner, naively and with experience replay (class-incremental), and reads back the
** results document as JSON and the model's predictions on the test set,
** whose accuracy it recomputes itself. Under a memory cap and an instruction
** limit, in the sandbox with no file access at all. About 1 s; exits 0 when
** every check holds; `make test` runs it.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engram.h"

#define DIM 8
#define CLASSES 4
#define PER_CLASS_TRAIN 200
#define PER_CLASS_TEST 100

static int checks = 0, failures = 0;

static void check(int ok, const char *what) {
  printf("train: %s: %s\n", ok ? "ok" : "FAILED", what);
  checks++;
  if (!ok) failures++;
}

/* A small deterministic generator (the host's own, not engram's). */
static uint64_t state = 88172645463325252ull;
static double uniform(void) {
  state ^= state << 13;
  state ^= state >> 7;
  state ^= state << 17;
  return ((double)(state >> 11) + 0.5) / 9007199254740992.0;
}
static double gauss(void) { return sqrt(-2.0 * log(uniform())) * cos(6.283185307179586 * uniform()); }

/* n samples per class of classes [c0, c0 + 2): centre c at +3 on axis c. */
static void make_task(float *x, float *y, int c0, int n) {
  for (int c = c0; c < c0 + 2; c++)
    for (int i = 0; i < n; i++, x += DIM, y++) {
      for (int d = 0; d < DIM; d++) x[d] = (float)(0.7 * gauss() + (d == c ? 3.0 : 0.0));
      *y = (float)c;
    }
}

static int run(engram_state *E, const char *chunk, const char *what) {
  int st = engram_dostring(E, chunk);
  if (st != ENGRAM_OK) fprintf(stderr, "train: %s: %s\n", engram_errstr(st), engram_errmsg(E));
  check(st == ENGRAM_OK, what);
  return st;
}

static const char *recipe =
    "local S = engram.strategies\n"
    "engram.seed(1)\n"
    "local tasks = {}\n"
    "for t = 1, 2 do\n"
    "  local d = data[t]\n"
    "  tasks[t] = {train = engram.data.from_tensors(d.x, d.y, {classes = 4}),\n"
    "              test = engram.data.from_tensors(d.tx, d.ty, {classes = 4})}\n"
    "end\n"
    "local scenario = engram.scenarios.from_tasks(tasks, {num_classes = 4})\n"
    "local function train(name, strategy)\n"
    "  model = engram.nn.mlp{8, 32, 4}:build{seed = 1}\n"
    "  local L = engram.learner(model, {epochs = 3, batch = 32, lr = 0.01, quiet = true, name = name})\n"
    "  L:use(strategy)\n"
    "  return L:run(scenario)\n"
    "end\n"
    "naive = engram.tensor(train('naive', S.naive()).acc)\n"
    "doc = train('replay', S.replay{memory = 100})\n"
    "model:evaluate()\n"
    "predictions = model:forward(engram.cat({data[1].tx, data[2].tx}, 1)):argmax(2)\n";

int main(void) {
  static float x1[2 * PER_CLASS_TRAIN * DIM], y1[2 * PER_CLASS_TRAIN], x2[2 * PER_CLASS_TRAIN * DIM],
      y2[2 * PER_CLASS_TRAIN];
  static float tx[2][2 * PER_CLASS_TEST * DIM], ty[2][2 * PER_CLASS_TEST];
  static float pred[4 * PER_CLASS_TEST];
  int64_t xs[2] = {2 * PER_CLASS_TRAIN, DIM}, ys[1] = {2 * PER_CLASS_TRAIN};
  int64_t txs[2] = {2 * PER_CLASS_TEST, DIM}, tys[1] = {2 * PER_CLASS_TEST}, shape[ENGRAM_MAXDIM];
  engram_options o;
  engram_state *E = NULL;
  const char *json;
  size_t len, peak;
  int st, ndim, ok = 1;

  make_task(x1, y1, 0, PER_CLASS_TRAIN);
  make_task(x2, y2, 2, PER_CLASS_TRAIN);
  make_task(tx[0], ty[0], 0, PER_CLASS_TEST);
  make_task(tx[1], ty[1], 2, PER_CLASS_TEST);

  engram_options_init(&o);
  o.sandbox = 1;                    /* and no directories: no file access */
  o.memory_limit = 128u << 20;      /* 128 MiB for Lua and the tensors */
  o.instruction_limit = 200000000;  /* per call */
  st = engram_open_with(&E, &o);
  if (st != ENGRAM_OK) {
    fprintf(stderr, "train: engram_open_with: %s: %s\n", engram_errstr(st), engram_errmsg(E));
    engram_close(E);
    return 1;
  }
  /* Training inputs wrap the host's arrays (no copy: they outlive E); the rest is copied. */
  ok &= engram_tensor_wrap(E, "data.1.x", x1, 2, xs) == ENGRAM_OK;
  check(!ok && strstr(engram_errmsg(E), "name") != NULL, "a name that is not a Lua name is refused");
  ok = engram_dostring(E, "data = {{}, {}}") == ENGRAM_OK;
  ok &= engram_tensor_wrap(E, "d1.x", x1, 2, xs) == ENGRAM_OK;
  ok &= engram_tensor_wrap(E, "d2.x", x2, 2, xs) == ENGRAM_OK;
  ok &= engram_tensor_copy_in(E, "d1.y", y1, 1, ys) == ENGRAM_OK;
  ok &= engram_tensor_copy_in(E, "d2.y", y2, 1, ys) == ENGRAM_OK;
  ok &= engram_tensor_copy_in(E, "d1.tx", tx[0], 2, txs) == ENGRAM_OK;
  ok &= engram_tensor_copy_in(E, "d2.tx", tx[1], 2, txs) == ENGRAM_OK;
  ok &= engram_tensor_copy_in(E, "d1.ty", ty[0], 1, tys) == ENGRAM_OK;
  ok &= engram_tensor_copy_in(E, "d2.ty", ty[1], 1, tys) == ENGRAM_OK;
  ok &= engram_dostring(E, "data = {d1, d2}") == ENGRAM_OK;
  if (!ok) fprintf(stderr, "train: %s\n", engram_errmsg(E));
  check(ok, "the host's data goes in as tensors");

  if (run(E, recipe, "a learner with replay trains on it (sandbox, memory cap, instruction limit)") == ENGRAM_OK) {
    st = engram_results_json(E, "doc", &json, &len);
    check(st == ENGRAM_OK && strstr(json, "\"acc\"") && strstr(json, "\"replay\""),
          "the results document comes back as JSON");
    if (st == ENGRAM_OK) printf("train: results document: %zu bytes of JSON\n", len);

    /* The accuracy matrix, read as a tensor: acc[2][j] after the second task. */
    run(E, "acc = engram.tensor(doc.acc)", "the accuracy matrix becomes a tensor");
    float acc[4] = {0};
    st = engram_tensor_read(E, "acc", &ndim, shape, acc, 4);
    check(st == ENGRAM_OK && ndim == 2 && shape[0] == 2 && shape[1] == 2, "the accuracy matrix is 2 x 2");
    printf("train: accuracy after task 2: task 1 %.3f, task 2 %.3f\n", acc[2], acc[3]);
    float nacc[4] = {0};
    st = engram_tensor_read(E, "naive", NULL, NULL, nacc, 4);
    printf("train: without replay (naive): task 1 %.3f, task 2 %.3f\n", nacc[2], nacc[3]);
    check(st == ENGRAM_OK && nacc[2] < 0.2f && acc[2] > 0.8f && acc[3] > 0.8f,
          "replay keeps both tasks above 80% where naive fine-tuning forgets task 1 (class-incremental)");

    /* Predictions read out; the host scores them itself. */
    st = engram_tensor_read(E, "predictions", &ndim, shape, pred, sizeof pred / sizeof *pred);
    check(st == ENGRAM_OK && ndim == 1 && shape[0] == 4 * PER_CLASS_TEST, "the predictions come back");
    int right = 0;
    for (int i = 0; i < 4 * PER_CLASS_TEST; i++) right += (int)pred[i] - 1 == (int)ty[i / (2 * PER_CLASS_TEST)][i % (2 * PER_CLASS_TEST)];
    double host_acc = (double)right / (4 * PER_CLASS_TEST);
    printf("train: the host's own accuracy on both test sets: %.3f\n", host_acc);
    check(fabs(host_acc - 0.5 * (acc[2] + acc[3])) < 1e-3, "the host's accuracy agrees with the document");
  }
  engram_memory_used(E, &peak);
  printf("train: peak memory counted: %.1f MiB of 128\n", (double)peak / 1048576.0);
  check(peak > 0 && peak <= o.memory_limit, "the engine stayed under its memory cap");
  engram_close(E);
  printf("train: %d passed, %d failed\n", checks - failures, failures);
  return failures == 0 ? 0 : 1;
}
