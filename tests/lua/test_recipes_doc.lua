-- docs/recipes.md: the guide's first example ("EWC on the first two tasks,
-- then replay plus LoRA") runs as written, in under 20 lines, and does what
-- the guide says; the REPL session's calls work as shown.
local lu = require("luaunit")
local engram = require("engram")

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

-- The Lua block after the marker <!-- test: name ... -->.
local function block(doc, name)
  local at = doc:find("<!-- test: " .. name, 1, true)
  lu.assertNotNil(at, "docs/recipes.md has the example " .. name)
  local code = doc:match("```lua\n(.-)```", at)
  lu.assertNotNil(code)
  return code
end

TestRecipesDoc = {}

function TestRecipesDoc.test_the_first_example_runs_as_written_in_under_20_lines()
  local code = block(read("docs/recipes.md"), "ewc-then-replay-lora")
  local lines = select(2, code:gsub("\n", "\n"))
  lu.assertTrue(lines < 20, "the example has " .. lines .. " lines")
  -- run it with the results printed into a buffer and the progress quiet
  local printed = {}
  local env = setmetatable({ print = function(...) printed[#printed + 1] = table.concat({ ... }, "\t") end },
    { __index = _G })
  local saved = engram.results.print
  local doc
  engram.results.print = function(d) doc = d; return saved(d, { write = function() end }) end
  local chunk = assert(load(code:gsub("{ epochs = 1 }", "{ epochs = 1, quiet = true }"), "=recipes.md", "t", env))
  local ok, err = pcall(chunk)
  engram.results.print = saved
  lu.assertTrue(ok, tostring(err))
  lu.assertNotNil(doc)
  -- what the guide says: EWC acts in tasks 1-2, replay and LoRA from task 3,
  -- replay's memory holds tasks 1-2 when it starts (so they are not wiped out)
  lu.assertEquals(#doc.acc, 5)
  lu.assertTrue(doc.acc[5][1] > 0.3, "task 1 kept by replay after task 5: " .. doc.acc[5][1])
  lu.assertTrue(doc.avg_acc > 0.45, "ACC " .. doc.avg_acc)
  local iso = doc.extra.isolation
  lu.assertNotNil(iso)
  lu.assertNotNil(iso.per_task[3].groups[1]) -- task 3 trained a LoRA set of its own
end
