-- Runs every tests/lua/test_*.lua file (or the files named as arguments) with
-- LuaUnit and ends with "lua: N passed, N failed". Run it with the engram
-- command from the project root:   build/engram tests/lua/run.lua [files] [-p pattern]
local lu = require("luaunit")

local dir = "tests/lua"
local files, luargs = {}, {}
local i = 1
while arg and arg[i] do
  local a = arg[i]
  if a:sub(1, 1) == "-" then
    luargs[#luargs + 1] = a
    if arg[i + 1] and (a == "-p" or a == "-x" or a == "-o") then
      luargs[#luargs + 1] = arg[i + 1]; i = i + 1
    end
  else
    files[#files + 1] = a
  end
  i = i + 1
end
if #files == 0 then
  local p = io.popen('ls "' .. dir .. '"/test_*.lua 2>/dev/null')
  for f in p:lines() do files[#files + 1] = f end
  p:close()
end

package.path = dir .. "/?.lua;" .. package.path
for _, f in ipairs(files) do
  local chunk, err = loadfile(f)
  if not chunk then error("cannot load test file " .. err) end
  chunk()
end

local runner = lu.LuaUnit.new()
runner:setOutputType("text")
-- Without options LuaUnit would read the global `arg` (our file names) as test names.
if #luargs == 0 then luargs = { "-o", "text" } end
local failures = runner:runSuite(table.unpack(luargs))
local r = runner.result
local failed = r.failureCount + r.errorCount
-- LuaUnit's runCount already leaves out skipped tests.
print(string.format("lua: %d passed, %d failed", r.runCount - failed, failed))
os.exit(failures == 0 and 0 or 1, true)
