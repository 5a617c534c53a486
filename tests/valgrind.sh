#!/bin/sh
# make check-valgrind: memcheck over one short recipe on a data subset:
# tests/lua/recipes/checkpoint_runs.lua (three runs — EWC with LoRA, LwF
# with SI, replay with EWC — on 4 tasks of Gaussian blobs, 20 steps a task),
# saving checkpoints and stopping after task 2, then resumed from them to the
# end (the safetensors writer and reader, the checksum, every layer, loss,
# optimiser and strategy primitive those runs call). Clean means: no invalid
# read or write, no use of uninitialised values, no definitely lost block
# (--error-exitcode makes any of them fail the run); tests/valgrind.supp
# holds the suppressions, each with its reason. Ends with
# "valgrind: N passed, N failed". About 3 minutes on 2 cores.
set -u
BUILD=${1:-build}
VG=${VALGRIND:-valgrind}
command -v "$VG" >/dev/null 2>&1 || { echo "valgrind: not installed (apt-get install valgrind)"; exit 1; }
pass=0; fail=0
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
here=$(pwd)
run() { # name, expected exit status, args...
  name=$1; want=$2; shift 2
  start=$(date +%s)
  (cd "$tmp" && "$VG" --tool=memcheck --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
    --show-leak-kinds=definite --num-callers=30 --suppressions="$here/tests/valgrind.supp" \
    --log-file="$tmp/$name.vg" "$here/$BUILD/engram" "$here/tests/lua/recipes/checkpoint_runs.lua" \
    --iterations 20 "$@" >"$tmp/$name.out" 2>&1)
  rc=$?
  summary=$(grep -E "ERROR SUMMARY|definitely lost|All heap blocks" "$tmp/$name.vg" | sed 's/^==[0-9]*== //' | tr '\n' ' ')
  if [ "$rc" -eq "$want" ]; then
    pass=$((pass + 1)); echo "valgrind: ok: $name in $(( $(date +%s) - start )) s: $summary"
  else
    fail=$((fail + 1)); echo "valgrind: FAILED: $name (exit $rc, expected $want): $summary"
    grep -E "Invalid|uninitialised|definitely" -A 12 "$tmp/$name.vg" | head -n 60; tail -n 5 "$tmp/$name.out"
  fi
}
run "recipe-stopped-after-task-2" 1 --checkpoint ck --stop-task 2 --out out.json
run "recipe-resumed-to-the-end" 0 --resume ck --out out.json
echo "valgrind: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
