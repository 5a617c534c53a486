#!/bin/sh
# Speed figures (make bench): sh bench/run.sh BUILD
#
# Tensor operations: the matrix product called from Lua (engram.mm into a
# preallocated output, and the allocating a:mm(b)) beside cblas_sgemm called
# directly from C, and the cost of one small operation called from Lua.
# Both sides run with the same OpenBLAS kernels and thread count: the kernels
# the engram command settles on (it may re-exec itself with
# OPENBLAS_CORETYPE=SkylakeX on AVX-512 machines) are exported to both runs,
# and OPENBLAS_NUM_THREADS defaults to the number of cores.
# Record the figures in docs/BENCHMARKS.md.
BUILD=${1:-build}
set -e

RUN="$BUILD/engram"
[ -x "$RUN" ] || { echo "bench: $RUN is missing: run make bench (or make first)" >&2; exit 1; }
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-$(nproc 2>/dev/null || echo 1)}"
if [ -z "$OPENBLAS_CORETYPE" ]; then
  core=$("$RUN" -e 'print(require("engram.core").blas_core)' 2>/dev/null || true)
  [ -n "$core" ] && [ "$core" != "nil" ] && export OPENBLAS_CORETYPE="$core"
fi

out=$(mktemp); trap 'rm -f "$out"' EXIT

echo "== Tensor operations (issue: foundation) =="
echo "machine: $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1), $(nproc) cores;" \
  "OPENBLAS_NUM_THREADS=$OPENBLAS_NUM_THREADS OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-(auto)}"
# Three alternating rounds, best of all: the machine may be shared, and a
# burst of someone else's work should not land on one side only.
: >"$out.c"; : >"$out.lua"
for round in 1 2 3; do
  "$BUILD/bench/mm_bench" >>"$out.c"
  "$RUN" bench/lua_bench.lua >>"$out.lua"
done
echo "C kernels:   $(sed -n 's/^core //p' "$out.c" | sort -u | tr '\n' ' ')"
echo "Lua kernels: $(sed -n 's/^core //p' "$out.lua" | sort -u | tr '\n' ' ')"
echo
awk '
  function best(arr, k, v) { if (!(k in arr) || v > arr[k]) arr[k] = v }
  function least(arr, k, v) { if (!(k in arr) || v < arr[k]) arr[k] = v }
  FNR == 1 { file++ }
  file == 1 && $1 == "mm" { if (!($2 in c)) order[++n] = $2; best(c, $2, $4) }
  file == 2 && $1 == "mm" { best(l, $2, $4) }
  file == 2 && $1 == "mm_alloc" { best(a, $2, $4) }
  file == 2 && $1 == "small" { least(s, $2, $3) }
  END {
    printf "%-6s %14s %14s %8s %14s %8s\n", "size", "C sgemm", "Lua mm(out)", "ratio", "Lua a:mm(b)", "ratio"
    for (i = 1; i <= n; i++) {
      k = order[i]
      printf "%-6s %9.1f GF/s %9.1f GF/s %8.3f %9.1f GF/s %8.3f\n", k, c[k], l[k], l[k] / c[k], a[k], a[k] / c[k]
    }
    printf "\nsmall op from Lua on a 16-element tensor (ns per call):\n"
    printf "  x:add_(1)  %8.1f\n  x + 1      %8.1f\n  empty loop %8.1f\n", s["add_"], s["+"], s["loop"]
  }' "$out.c" "$out.lua"
rm -f "$out.c" "$out.lua"

# ---- Training throughput (issue: layers/training) -------------------------
# Section appended by the layers/training engineer (bench/train_bench.lua,
# bench/torch_mlp.py). Runs twice: with OpenBLAS's own kernel choice (no
# re-exec, OPENBLAS_CORETYPE unset) and with the engram command's default.
# PyTorch is started from inside the bench, so it inherits the same
# OPENBLAS_CORETYPE as engram in each run (it matters if torch uses OpenBLAS).
echo
echo "== Training throughput (issue: layers/training) =="
echo "-- OpenBLAS's own kernel choice (ENGRAM_NO_REEXEC=1, OPENBLAS_CORETYPE unset):"
env -u OPENBLAS_CORETYPE ENGRAM_NO_REEXEC=1 "$RUN" bench/train_bench.lua
echo
echo "-- default (the engram command re-execs with OPENBLAS_CORETYPE=SkylakeX on AVX-512):"
env -u OPENBLAS_CORETYPE "$RUN" bench/train_bench.lua
# ---- end of training throughput section ------------------------------------

# ---- Continual-learning loop (issue: the continual-learning engine) --------
# A 5-task naive run on Split Fashion-MNIST, evaluation included (target <= 10 s),
# and the same with replay and EWC.
echo
echo "== Continual-learning loop (issue: the continual-learning engine) =="
"$RUN" bench/cl_bench.lua

# ---- Regularisation (issue 11) ----------------------------------------------
# What EWC (5 past tasks), online EWC and SI add to a training step at batch 128.
echo
echo "== Regularisation: the cost of a penalty in a training step (issue 11) =="
"$RUN" bench/reg_bench.lua
echo
echo "== Regularisation: the cost of a Fisher after a task (issue 11) =="
"$RUN" bench/fisher_bench.lua

# ---- Parameter isolation (issue 13) ------------------------------------------
# A rank-8 LoRA training step beside a full one, merged/unmerged forwards, switching sets.
echo
echo "== Parameter isolation: LoRA (issue 13) =="
"$RUN" bench/lora_bench.lua

# ---- Replay memories (issue 12, point 7) -------------------------------------
# Experience replay beside naive fine-tuning, each run in its own process:
# time (target <= 1.5x naive) and peak RSS (target <= naive + memory bytes + 10%).
echo
echo "== Replay: time and peak memory beside naive (issue 12) =="
ENGRAM_BIN="$RUN" "$RUN" bench/replay_bench.lua

# ---- GPT (issue 17) -----------------------------------------------------------
# The attention kernel beside its matrix products alone (target <= 2x), a GPT
# training step in tokens/s beside the same model in PyTorch (bench/torch_gpt.py,
# skipped with a note when torch is missing; targets >= 1.5x at dim 128, >= 1.0x
# at dim 512, each side at its best thread count), and the peak RSS of a default
# training run beside parameters + Adam + one step's activations (target <= 2x),
# in a process of its own. OpenBLAS picks its own kernels (OPENBLAS_CORETYPE and
# OPENBLAS_L2_SIZE unset); the lines say which ran.
echo
echo "== GPT: attention, training throughput, memory (issue 17) =="
for th in 1 2; do
  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=$th "$BUILD/bench/attn_bench"
done
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$RUN" bench/gpt_bench.lua
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$RUN" bench/gpt_bench.lua --memory
# ---- end of GPT section ---------------------------------------------------------
