-- LuaRocks: build and install engram from this source tree.
--   luarocks --lua-version 5.4 make engram-dev-1.rockspec [--tree DIR]
-- It runs the Makefile (needs Debian's libopenblas-dev and zlib1g-dev): the
-- Lua library, the C module engram.core and the engram command.
rockspec_format = "3.0"
package = "engram"
version = "dev-1"
source = { url = "git+https://example.invalid/engram.git" } -- unused by `luarocks make`
description = {
  summary = "Continual learning with a C core (float32 tensors on OpenBLAS) and Lua recipes",
  detailed = [[
engram trains neural networks on streams of tasks without forgetting the old
ones: replay (experience, A-GEM, DER++, iCaRL, generative), regularisation
(EWC, SI, MAS, LwF) and parameter isolation (LoRA, adapters, heads,
progressive networks), composed as strategies of one learner.]],
  license = "MIT",
}
dependencies = { "lua >= 5.4, < 5.5" }
external_dependencies = {
  OPENBLAS = { library = "openblas" },
  ZLIB = { library = "z" },
}
build = {
  type = "make",
  build_variables = { CFLAGS = "$(CFLAGS)", LUA_INCDIR = "$(LUA_INCDIR)" },
  install_variables = { PREFIX = "$(PREFIX)", LUADIR = "$(LUADIR)", LIBDIR = "$(LIBDIR)" },
}
