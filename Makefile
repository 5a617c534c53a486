# engram — build, test, bench and demo.
#
#   make            core library (static and shared), Lua module, `engram` command
#   make test       installs missing Debian packages, builds, runs every suite
#   make demo       installs missing Debian packages, builds, runs the main recipe
#   make bench      speed figures (see docs/BENCHMARKS.md)
#   make check-asan every suite under AddressSanitizer + UBSan
#   make check-valgrind  memcheck over one short recipe (about 3 minutes)
#   make install    PREFIX=/usr/local DESTDIR=
#
# Honours CC, CXX (the C++ header test only), CFLAGS, LDFLAGS, PREFIX, DESTDIR, LUA_INCDIR, LUA_LIBS.

CC      ?= cc
PREFIX  ?= /usr/local
BUILD   ?= build
OPT     ?= -O2
CFLAGS  ?= $(OPT) -g
WARN    := -std=c11 -Wall -Wextra -Wno-unused-parameter
# -fno-math-errno: sqrtf and friends need not set errno, which lets update loops vectorise; no result changes.
BASEFLAGS := $(WARN) -D_GNU_SOURCE -fPIC -fvisibility=hidden -fno-math-errno -Icore

LUA_PC  := $(shell for p in lua5.4 lua54 lua-5.4 lua; do pkg-config --exists $$p 2>/dev/null && echo $$p && break; done)
LUA_INCDIR ?= $(if $(LUA_PC),$(patsubst -I%,%,$(filter -I%,$(shell pkg-config --cflags $(LUA_PC)))),/usr/include/lua5.4)
LUA_LIBS   ?= $(if $(LUA_PC),$(shell pkg-config --libs $(LUA_PC)),-llua5.4)
LUA_INC    := $(if $(LUA_INCDIR),-I$(LUA_INCDIR),)

CORE_LIBS := -lopenblas -lz -lm -lpthread
EXE_LIBS  := $(LUA_LIBS) -lreadline $(CORE_LIBS) -ldl

CORE_SRC  := $(sort $(wildcard core/*.c))
CORE_OBJ  := $(CORE_SRC:%.c=$(BUILD)/%.o)
# bindings/*.c is the module (and the embedding API); bindings/cmd/ is the command.
BIND_SRC  := $(sort $(wildcard bindings/*.c))
BIND_OBJ  := $(BIND_SRC:%.c=$(BUILD)/%.o)
# engram's Lua library compiled in (tools/embed_lua.sh): the embedding API's
# fallback when no library is found on package.path (a moved install)
LUA_SRC   := $(shell find lua/engram -name '*.lua' 2>/dev/null | LC_ALL=C sort)
EMBED_LUA := $(BUILD)/bindings/embed_lua.c
BIND_OBJ  += $(BUILD)/bindings/embed_lua.o
CMD_SRC   := $(sort $(wildcard bindings/cmd/*.c))
CMD_OBJ   := $(CMD_SRC:%.c=$(BUILD)/%.o)
CTEST_SRC := $(sort $(wildcard tests/c/test_*.c))
CTEST_BIN := $(CTEST_SRC:tests/c/%.c=$(BUILD)/tests/%)
# The public headers, installed in PREFIX/include/engram/: the umbrella
# engram/core.h, the per-concept headers it includes, the embedding API.
PUB_HDRS  := core/engram/core.h $(sort $(filter-out %_impl.h,$(wildcard core/*.h))) bindings/engram.h
# test_header compiles against a staged install of PUB_HDRS (no -Icore), and
# again as C++ when a C++ compiler is there, to prove the extern "C" guards.
STAGE     := $(BUILD)/stage
HAVE_CXX  := $(shell command -v $(CXX) >/dev/null 2>&1 && echo yes)
CTEST_BIN += $(if $(HAVE_CXX),$(BUILD)/tests/test_header_cxx)
BENCH_SRC := $(sort $(wildcard bench/*.c))
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

LIB_A   := $(BUILD)/libengram.a
LIB_SO  := $(BUILD)/libengram.so
MOD_SO  := $(BUILD)/lua/engram/core.so
EXE     := $(BUILD)/engram

DEB_PKGS := lua5.4 liblua5.4-dev libopenblas-dev zlib1g-dev libreadline-dev lua-unit pkg-config dataset-fashion-mnist python3-numpy luarocks

.PHONY: all deps test demo bench check-asan check-valgrind build-asan-tests clean install install-headers uninstall lint print-prefix fuzz
all: $(LIB_A) $(LIB_SO) $(MOD_SO) $(EXE)

# ---- dependencies (Debian packages only) ----
deps:
	@sh tools/deps.sh $(DEB_PKGS)

# ---- core ----
$(BUILD)/core/%.o: core/%.c $(wildcard core/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(BASEFLAGS) $(CFLAGS) -c $< -o $@

$(LIB_A): $(CORE_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(LIB_SO): $(CORE_OBJ)
	$(CC) -shared $(CFLAGS) $(LDFLAGS) -o $@ $^ $(CORE_LIBS)

# ---- bindings ----
$(EMBED_LUA): $(LUA_SRC) tools/embed_lua.sh
	@mkdir -p $(dir $@)
	sh tools/embed_lua.sh lua $@

$(BUILD)/bindings/embed_lua.o: $(EMBED_LUA) bindings/embed_lua.h
	$(CC) $(BASEFLAGS) -Ibindings $(CFLAGS) -c $< -o $@

$(BUILD)/bindings/%.o: bindings/%.c $(wildcard bindings/*.h) $(wildcard core/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(BASEFLAGS) $(LUA_INC) $(CFLAGS) -c $< -o $@

$(BUILD)/bindings/cmd/%.o: bindings/cmd/%.c $(wildcard bindings/cmd/*.h) $(wildcard bindings/*.h) $(wildcard core/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(BASEFLAGS) -Ibindings $(LUA_INC) $(CFLAGS) -c $< -o $@

# The module links the core statically and does not link liblua (the interpreter provides it).
$(MOD_SO): $(BIND_OBJ) $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) -shared $(CFLAGS) $(LDFLAGS) -o $@ $(BIND_OBJ) $(LIB_A) $(CORE_LIBS)

$(EXE): $(CMD_OBJ) $(BIND_OBJ) $(LIB_A)
	$(CC) $(CFLAGS) $(LDFLAGS) -rdynamic -o $@ $(CMD_OBJ) $(BIND_OBJ) $(LIB_A) $(EXE_LIBS)

# ---- C tests and benches (core only, no Lua) ----
$(BUILD)/tests/%: tests/c/%.c $(wildcard tests/c/*.h) $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(BASEFLAGS) $(CFLAGS) -Itests/c $(LDFLAGS) -o $@ $< $(LIB_A) $(CORE_LIBS)

$(STAGE)/include/engram/core.h: $(PUB_HDRS)
	@$(MAKE) --no-print-directory install-headers DESTDIR=$(STAGE) PREFIX=

$(BUILD)/tests/test_header: tests/c/test_header.c tests/c/check.h $(STAGE)/include/engram/core.h $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(WARN) -I$(STAGE)/include -Itests/c $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB_A) $(CORE_LIBS)

$(BUILD)/tests/test_header_cxx: tests/c/test_header.c tests/c/check.h $(STAGE)/include/engram/core.h $(LIB_A)
	@mkdir -p $(dir $@)
	$(CXX) -x c++ -std=c++11 -Wall -Wextra -I$(STAGE)/include -Itests/c $(CFLAGS) $(LDFLAGS) -o $@ $< -x none \
	  $(LIB_A) $(CORE_LIBS)

$(BUILD)/bench/%: bench/%.c $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(BASEFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB_A) $(CORE_LIBS)

# ---- running ----
test: deps
	@$(MAKE) --no-print-directory all $(CTEST_BIN)
	@sh tests/run.sh $(BUILD)

demo: deps
	@$(MAKE) --no-print-directory all
	@$(BUILD)/engram recipes/demo.lua

bench: deps
	@$(MAKE) --no-print-directory all $(BENCH_BIN)
	@sh bench/run.sh $(BUILD)

check-asan: deps
	@$(MAKE) --no-print-directory BUILD=build-asan OPT=-O1 \
	  CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	  LDFLAGS="-fsanitize=address,undefined" all build-asan-tests
	@ENGRAM_ASAN=1 sh tests/run.sh build-asan

build-asan-tests: $(CTEST_BIN)

# memcheck over one short recipe saving every 7 steps: stopped after task 2,
# killed inside task 3 and resumed (tests/valgrind.sh; about 3 minutes, not in make test)
check-valgrind: deps
	@sh tools/deps.sh valgrind
	@$(MAKE) --no-print-directory all
	@sh tests/valgrind.sh $(BUILD)

lint:
	luacheck -q lua recipes tests/lua tests/recipes bench

# ---- fuzzing the file readers (libFuzzer, Debian's clang) ----
# make fuzz [FUZZ_RUNS=1000000]: IDX, CSV, safetensors (checkpoints) and
# results JSON, each seeded with the valid files in tests/fuzz/corpus/<name>,
# under ASan and UBSan. Crashers found are written to tests/fuzz/crashers/
# (keep them: every later make fuzz replays them first).
FUZZ_CC    ?= clang
FUZZ_RUNS  ?= 1000000
FUZZ_DIR   := build-fuzz
FUZZ_FLAGS := -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -Icore
fuzz: deps
	@sh tools/deps.sh clang libclang-rt-14-dev
	@mkdir -p $(FUZZ_DIR) tests/fuzz/crashers
	@for t in idx csv safetensors; do \
	  $(FUZZ_CC) $(FUZZ_FLAGS) tests/fuzz/fuzz_$$t.c $(CORE_SRC) $(CORE_LIBS) -o $(FUZZ_DIR)/fuzz_$$t || exit 1; \
	done
	@$(MAKE) --no-print-directory $(EMBED_LUA)
	@$(FUZZ_CC) $(FUZZ_FLAGS) -Ibindings $(LUA_INC) -DEG_PREFIX='"$(PREFIX)"' tests/fuzz/fuzz_json.c $(CORE_SRC) \
	  $(BIND_SRC) $(EMBED_LUA) $(LUA_LIBS) $(CORE_LIBS) -ldl -o $(FUZZ_DIR)/fuzz_json
	@for t in idx csv safetensors json; do \
	  for c in tests/fuzz/crashers/$$t-*; do [ -f "$$c" ] || continue; \
	    $(FUZZ_DIR)/fuzz_$$t "$$c" >/dev/null 2>&1 || { echo "fuzz $$t: $$c crashes again"; exit 1; }; done; \
	  work=$$(mktemp -d); log=$$(mktemp); start=$$(date +%s); \
	  if ASAN_OPTIONS=allocator_may_return_null=1 $(FUZZ_DIR)/fuzz_$$t -runs=$(FUZZ_RUNS) \
	      -artifact_prefix=tests/fuzz/crashers/$$t- "$$work" tests/fuzz/corpus/$$t >"$$log" 2>&1; then \
	    echo "fuzz $$t: $(FUZZ_RUNS) runs clean in $$(( $$(date +%s) - start )) s, corpus $$(ls "$$work" | wc -l) new inputs"; \
	  else tail -n 30 "$$log"; echo "fuzz $$t: FAILED (see tests/fuzz/crashers/)"; rm -rf "$$work" "$$log"; exit 1; fi; \
	  rm -rf "$$work" "$$log"; \
	done

clean:
	rm -rf build build-asan build-fuzz

# A host includes <engram/core.h> (or <engram/engram.h>) with -I$(PREFIX)/include.
install-headers:
	install -d $(DESTDIR)$(PREFIX)/include/engram
	install -m 644 $(PUB_HDRS) $(DESTDIR)$(PREFIX)/include/engram/

# Where make install puts things (LuaRocks sets LUADIR and LIBDIR for its tree).
LUADIR  ?= $(PREFIX)/share/lua/5.4
LIBDIR  ?= $(PREFIX)/lib/lua/5.4
EMBED_A := $(BUILD)/libengram_embed.a

# The embedding API (bindings/engram.h) as a library of its own: the Lua
# module and engram_open/engram_dofile, over the core (libengram).
$(EMBED_A): $(BIND_OBJ)
	rm -f $@ && ar rcs $@ $^

# pkg-config files, written by make install for its PREFIX: engram-core (the
# C core alone) and engram (the embedding API, with Lua):
#   cc host.c $$(pkg-config --cflags --libs engram)
define PC_CORE
prefix=$(PREFIX)
includedir=$${prefix}/include
libdir=$${prefix}/lib

Name: engram-core
Description: engram continual-learning core: float32 tensors, layers, strategies (C only)
Version: $(VERSION)
Cflags: -I$${includedir}
Libs: -L$${libdir} -lengram
Libs.private: $(CORE_LIBS)
endef
define PC_EMBED
prefix=$(PREFIX)
includedir=$${prefix}/include
libdir=$${prefix}/lib

Name: engram
Description: engram embedding API: run recipes from a C host (Lua 5.4 inside)
Version: $(VERSION)
Cflags: -I$${includedir}/engram -I$${includedir} $(LUA_INC)
Libs: -L$${libdir} -lengram_embed -lengram $(LUA_LIBS) $(CORE_LIBS) -ldl
endef
export PC_CORE PC_EMBED

VERSION := $(shell sed -n 's/^\#define EG_VERSION "\(.*\)"/\1/p' core/eg_base.h)

# The files make install writes, for make uninstall (relative to PREFIX, or absolute for LUADIR/LIBDIR).
INSTALLED = $(PREFIX)/bin/engram $(PREFIX)/lib/libengram.a $(PREFIX)/lib/libengram.so \
  $(PREFIX)/lib/libengram_embed.a $(PREFIX)/lib/pkgconfig/engram.pc $(PREFIX)/lib/pkgconfig/engram-core.pc \
  $(PREFIX)/share/man/man1/engram.1 $(LIBDIR)/engram/core.so

install: all $(EMBED_A) install-headers
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/lib/pkgconfig \
	  $(DESTDIR)$(LIBDIR)/engram $(DESTDIR)$(LUADIR)/engram $(DESTDIR)$(PREFIX)/share/man/man1 \
	  $(DESTDIR)$(PREFIX)/share/engram/recipes
	install -m 755 $(BUILD)/engram $(DESTDIR)$(PREFIX)/bin/engram
	install -m 644 $(LIB_A) $(LIB_SO) $(EMBED_A) $(DESTDIR)$(PREFIX)/lib/
	printf '%s\n' "$$PC_CORE" > $(DESTDIR)$(PREFIX)/lib/pkgconfig/engram-core.pc
	printf '%s\n' "$$PC_EMBED" > $(DESTDIR)$(PREFIX)/lib/pkgconfig/engram.pc
	install -m 755 $(MOD_SO) $(DESTDIR)$(LIBDIR)/engram/core.so
	cp -r lua/engram/. $(DESTDIR)$(LUADIR)/engram/
	install -m 644 docs/engram.1 $(DESTDIR)$(PREFIX)/share/man/man1/engram.1
	install -m 644 recipes/*.lua $(DESTDIR)$(PREFIX)/share/engram/recipes/

print-prefix:
	@echo $(PREFIX)

uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))
	rm -rf $(DESTDIR)$(PREFIX)/include/engram $(DESTDIR)$(LUADIR)/engram $(DESTDIR)$(PREFIX)/share/engram
	-rmdir $(DESTDIR)$(LIBDIR)/engram 2>/dev/null

# ---- the embedding API (bindings/engram.h): example hosts, run by tests/run.sh ----
EMBED_EX := $(patsubst examples/%.c,$(BUILD)/examples/%,$(wildcard examples/*.c))
all: $(EMBED_EX)
$(BUILD)/bindings/embed.o: BASEFLAGS += -DEG_PREFIX='"$(PREFIX)"'
# embed.o bakes PREFIX in (where an installed host finds the Lua library):
# a stamp named after PREFIX rebuilds it when make install gets another one.
PREFIX_STAMP := $(BUILD)/.prefix$(subst /,_,$(PREFIX))
$(PREFIX_STAMP):
	@mkdir -p $(BUILD) && rm -f $(BUILD)/.prefix* && touch $@
$(BUILD)/bindings/embed.o: $(PREFIX_STAMP)
EMBED_LINK = $(BIND_OBJ) $(LIB_A) $(LUA_LIBS) $(CORE_LIBS) -ldl
$(BUILD)/examples/%: examples/%.c bindings/engram.h $(BIND_OBJ) $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(BASEFLAGS) $(LUA_INC) -Ibindings $(CFLAGS) $(LDFLAGS) -o $@ $< $(EMBED_LINK)
# The embedding API's tests: a host program like the examples (not core-only).
$(BUILD)/tests/test_embed: tests/c/test_embed.c tests/c/check.h bindings/engram.h $(BIND_OBJ) $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(BASEFLAGS) $(LUA_INC) -Ibindings -Itests/c $(CFLAGS) $(LDFLAGS) -o $@ $< $(EMBED_LINK)
