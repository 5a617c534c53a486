-- luacheck configuration: `make lint`
std = "lua54"
max_line_length = 120
exclude_files = { "build/**", "build-asan/**" }
files["tests/lua/**"] = { allow_defined_top = true, ignore = { "212/self" } } -- LuaUnit methods may not use self
files["tests/lua/run.lua"] = { globals = {} }
files["recipes/**"] = { read_globals = { "engram" } }
files["bench/**"] = { read_globals = { "engram" } }
