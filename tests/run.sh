#!/bin/sh
# Runs every suite (C programs in BUILD/tests, then the LuaUnit suite through
# the engram command) and ends with one line "N passed, N failed".
# Exits non-zero when anything failed or a suite crashed.
BUILD=${1:-build}
# The CLI tests run the command under test (build-asan/engram for check-asan).
ENGRAM_BIN=${ENGRAM_BIN:-$BUILD/engram}; export ENGRAM_BIN
# Under AddressSanitizer a failed huge allocation must come back as NULL (and
# so as EG_ENOMEM), as it does without it, instead of aborting the run.
if [ -n "$ENGRAM_ASAN" ]; then
  ASAN_OPTIONS=${ASAN_OPTIONS:-allocator_may_return_null=1}; export ASAN_OPTIONS
fi
pass=0; fail=0; crashed=0
log=$(mktemp); trap 'rm -f "$log"' EXIT
count() { # reads "...: N passed, M failed" lines from $log
  line=$(grep -E '[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
  p=$(echo "$line" | sed -E 's/.* ([0-9]+) passed, ([0-9]+) failed.*/\1/')
  f=$(echo "$line" | sed -E 's/.* ([0-9]+) passed, ([0-9]+) failed.*/\2/')
  [ -n "$line" ] || { p=0; f=0; }
  pass=$((pass + p)); fail=$((fail + f))
}
for t in "$BUILD"/tests/test_*; do
  [ -x "$t" ] || continue
  "$t" >"$log" 2>&1; rc=$?
  cat "$log"
  count
  if [ $rc -ne 0 ] && ! grep -qE '[0-9]+ passed, [1-9][0-9]* failed' "$log"; then
    echo "$(basename "$t"): crashed (exit $rc)"; crashed=$((crashed + 1)); fail=$((fail + 1))
  fi
done
for t in "$BUILD"/examples/*; do # the embedding API's example hosts
  [ -x "$t" ] || continue
  "$t" >"$log" 2>&1; rc=$?
  cat "$log"
  count
  if [ $rc -ne 0 ] && ! grep -qE '[0-9]+ passed, [1-9][0-9]* failed' "$log"; then
    echo "$(basename "$t"): crashed (exit $rc)"; fail=$((fail + 1))
  fi
done
# make install staged and back out (not under the sanitizers: a packaging test)
if [ -z "$ENGRAM_ASAN" ] && [ -f tests/install.sh ]; then
  sh tests/install.sh "$BUILD" >"$log" 2>&1; rc=$?
  cat "$log"
  count
  if [ $rc -ne 0 ] && ! grep -qE '[0-9]+ passed, [1-9][0-9]* failed' "$log"; then
    echo "install: crashed (exit $rc)"; fail=$((fail + 1))
  fi
fi
if [ -d tests/lua ]; then
  "$BUILD"/engram tests/lua/run.lua >"$log" 2>&1; rc=$?
  cat "$log"
  count
  if [ $rc -ne 0 ] && ! grep -qE '[0-9]+ passed, [1-9][0-9]* failed' "$log"; then
    echo "lua suite: crashed (exit $rc)"; fail=$((fail + 1))
  fi
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
