-- What the kill-and-resume tests share (test_checkpoint.lua,
-- test_checkpoint_more.lua): a test recipe run in a directory of its own,
-- killed with a signal once its event log shows enough events, resumed,
-- and its outcome (results without what depends on the clock, and the
-- final parameters' bytes) compared with an uninterrupted run's.
local engram = require("engram")
local lu = require("luaunit")
local helpers = require("helpers")
local q = helpers.q

local M = {}

M.BIN = os.getenv("ENGRAM_BIN") or "build/engram"

function M.sh(cmd)
  local _, how, code = os.execute(cmd)
  return how == "exit" and code or 128 + code
end

function M.exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

-- The results without what depends on the clock.
local CLOCK = { train_seconds = true, eval_seconds = true, total_seconds = true, created = true, peak_rss_mb = true,
  cer = true, naive = true }
local function strip(v)
  if type(v) ~= "table" then return v end
  local c = {}
  for k, x in pairs(v) do if not CLOCK[k] then c[k] = strip(x) end end
  return setmetatable(c, getmetatable(v))
end

--- The run's results JSON (clock aside) and its parameters' bytes.
function M.outcome(dir)
  local doc = engram.json.read_file(dir .. "/out.json")
  return engram.json.encode(strip(doc)), helpers.read_file(dir .. "/params.st")
end

function M.tmpdir()
  local d = helpers.tmpname("-ckpt")
  assert(os.execute("mkdir -p " .. q(d)))
  return d
end

--- A runner of the recipe (a path under tests/lua/recipes) with fixed extra options:
--   r.run(dir, args, env) -> exit status
--   r.killed_after(dir, args, n, sig, event) -> exit status: killed with
--     SIGKILL (or sig) once the log shows n events named event (task_end)
--   r.reference() -> outcome of the uninterrupted run (made once)
--   r.finishes_like_the_reference(dir, extra): resumes to the end and compares
function M.runner(recipe, fixed)
  local r = {}
  local bin, path = q(os.getenv("PWD") .. "/" .. M.BIN), q(os.getenv("PWD") .. "/" .. recipe)
  fixed = fixed or ""
  function r.run(dir, args, env)
    return M.sh(string.format("cd %s && %s %s %s %s %s --out out.json --params params.st >run.log 2>&1",
      q(dir), env or "", bin, path, fixed, args))
  end
  function r.killed_after(dir, args, n, sig, event)
    local cmd = string.format("cd %s && { %s %s %s %s --out out.json --params params.st --log events.jsonl " ..
      ">run.log 2>&1 & pid=$!; i=0; while [ $i -lt 2000 ]; do " ..
      "c=$(grep -c '\"event\":\"%s\"' events.jsonl 2>/dev/null); [ \"${c:-0}\" -ge %d ] && break; " ..
      "kill -0 $pid 2>/dev/null || break; sleep 0.01; i=$((i+1)); done; kill -%s $pid 2>/dev/null; wait $pid; } " ..
      "2>/dev/null", q(dir), bin, path, fixed, args, event or "task_end", n, sig or "9")
    return M.sh(cmd)
  end
  local reference
  function r.reference()
    if not reference then
      local d = M.tmpdir()
      lu.assertEquals(r.run(d, ""), 0, helpers.read_file(d .. "/run.log"))
      reference = { M.outcome(d) }
      os.execute("rm -rf " .. q(d))
    end
    return reference[1], reference[2]
  end
  function r.finishes_like_the_reference(d, extra)
    local want_doc, want_params = r.reference()
    lu.assertEquals(r.run(d, "--resume ck" .. (extra or "")), 0, helpers.read_file(d .. "/run.log"))
    local doc, params = M.outcome(d)
    lu.assertEquals(doc, want_doc)
    lu.assertTrue(params == want_params, "the final parameters are bit-identical")
    os.execute("rm -rf " .. q(d))
  end
  return r
end

return M
