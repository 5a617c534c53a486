#!/bin/sh
# make install staged into a temporary DESTDIR and back out again, as a
# packager would: the engram command runs a recipe from there, a C host builds
# against `pkg-config --cflags --libs engram` (the embedding API) and
# engram-core (the core alone) and runs, the man page is there, and make
# uninstall leaves nothing. Ends with "install: N passed, N failed". Run by
# tests/run.sh. (A staged tree is found through pkg-config's prefix variable
# and, for the host's Lua library, LUA_PATH: after a real install neither is
# needed.)
set -u
BUILD=${1:-build}
pass=0; fail=0
check() { if eval "$2" >/dev/null 2>&1; then pass=$((pass + 1)); else echo "install: FAILED: $1"; fail=$((fail + 1)); fi; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
D="$tmp/stage"
PREFIX=$(make --no-print-directory -s -f Makefile print-prefix BUILD="$BUILD" 2>/dev/null)
[ -n "$PREFIX" ] || PREFIX=/usr/local
if ! make --no-print-directory -s install BUILD="$BUILD" DESTDIR="$D" >"$tmp/log" 2>&1; then
  cat "$tmp/log"; echo "install: 0 passed, 1 failed"; exit 1
fi
P="$D$PREFIX"
export PKG_CONFIG_PATH="$P/lib/pkgconfig"
pc() { pkg-config --define-variable=prefix="$P" "$@"; }
check "the command runs from the staged tree" \
  "[ \"\$(cd / && '$P/bin/engram' -e 'print(require(\"engram\").ones(3):sum())')\" = 3.0 ]"
check "recipes are installed and run" "'$P/bin/engram' '$P/share/engram/recipes/train_fmnist.lua' --help"
check "pkg-config knows engram and engram-core" "pkg-config --exists engram && pkg-config --exists engram-core"
check "a host builds with pkg-config engram and runs" \
  "cc -o '$tmp/embed' examples/embed.c \$(pc --cflags --libs engram) && (cd / && \
   LD_LIBRARY_PATH='$P/lib' LUA_PATH='$P/share/lua/5.4/?.lua;$P/share/lua/5.4/?/init.lua;;' '$tmp/embed')"
cat >"$tmp/core.c" <<'C'
#include <engram/core.h>
int main(void) {
  eg_tensor t = EG_TENSOR_INIT;
  int64_t sh[1] = {4};
  if (eg_tensor_new(&t, 1, sh) || eg_fill(&t, 2.0f)) return 1;
  double s;
  int ok = eg_reduce_all(&s, &t, EG_SUM) == EG_OK && s == 8.0;
  eg_tensor_release(&t);
  return ok ? 0 : 1;
}
C
check "a host builds with pkg-config engram-core and runs" \
  "cc -o '$tmp/core' '$tmp/core.c' \$(pc --cflags --libs engram-core) && LD_LIBRARY_PATH='$P/lib' '$tmp/core'"
check "the man page is installed" "[ -s '$P/share/man/man1/engram.1' ]"
make --no-print-directory -s uninstall BUILD="$BUILD" DESTDIR="$D" >/dev/null 2>&1
check "make uninstall leaves no file" "[ -z \"\$(find '$D' -type f)\" ]"
# A real install under a non-default PREFIX (in a copy of the build tree, so
# that this tree keeps its own PREFIX), then the installed tree moved: the
# sandboxed example host builds with pkg-config against it and runs from /
# with no LUA_PATH — from the prefix, and after the move from the Lua
# library compiled into libengram_embed (bindings/embed.c); the engram
# command finds its library next to itself. (LD_LIBRARY_PATH is for the
# dynamic linker's libengram.so, not for engram.)
X="$tmp/prefix"; Y="$tmp/moved"; B="$tmp/build"
cp -rp "$BUILD" "$B"
if make --no-print-directory -s install BUILD="$B" PREFIX="$X" >"$tmp/log2" 2>&1; then
  host() { # builds examples/$1.c against the install in $2
    PKG_CONFIG_PATH="$2/lib/pkgconfig" cc -o "$tmp/$1" "examples/$1.c" \
      $(PKG_CONFIG_PATH="$2/lib/pkgconfig" pkg-config --cflags --libs engram)
  }
  clean_env="env -u LUA_PATH -u LUA_PATH_5_4 -u LUA_INIT -u LUA_INIT_5_4"
  check "the sandbox host builds with pkg-config against PREFIX=$X and runs" \
    "host sandbox '$X' && (cd / && $clean_env LD_LIBRARY_PATH='$X/lib' '$tmp/sandbox')"
  check "the embedding host finds engram's library under that PREFIX" \
    "host embed '$X' && (cd / && $clean_env LD_LIBRARY_PATH='$X/lib' '$tmp/embed')"
  mv "$X" "$Y"
  check "after the installed tree is moved, the sandbox host still runs" \
    "[ ! -e '$X' ] && (cd / && $clean_env LD_LIBRARY_PATH='$Y/lib' '$tmp/sandbox')"
  check "a host built against the moved tree runs" \
    "sed -i 's#^prefix=.*#prefix=$Y#' '$Y/lib/pkgconfig/engram.pc' && host embed '$Y' && \
     (cd / && $clean_env LD_LIBRARY_PATH='$Y/lib' '$tmp/embed')"
  check "the moved engram command runs a moved recipe" \
    "(cd / && $clean_env '$Y/bin/engram' '$Y/share/engram/recipes/train_fmnist.lua' --help)"
else
  cat "$tmp/log2"; echo "install: FAILED: make install PREFIX=$X"; fail=$((fail + 1))
fi
# LuaRocks builds and installs the same tree (engram-dev-1.rockspec), and
# stock lua5.4 then finds engram through `luarocks path`
if command -v luarocks >/dev/null 2>&1; then
  T="$tmp/rocks"
  check "luarocks make builds and installs the rockspec" \
    "luarocks --lua-version 5.4 --tree '$T' make engram-dev-1.rockspec"
  check "stock lua5.4 requires engram from the rock tree" \
    "(eval \"\$(luarocks --lua-version 5.4 --tree '$T' path)\" && cd / && \
     [ \"\$(lua5.4 -e 'print(require(\"engram\").ones(2):sum())')\" = 2.0 ])"
  check "luarocks remove leaves no Lua file" \
    "luarocks --lua-version 5.4 --tree '$T' remove engram && [ -z \"\$(find '$T/share/lua' -name '*.lua' 2>/dev/null)\" ]"
fi
echo "install: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
