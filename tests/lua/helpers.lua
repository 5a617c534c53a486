-- Small helpers shared by the LuaUnit suites (files, shell quoting, an
-- in-memory output sink). tests/lua/run.lua puts this folder on package.path.
local helpers = {}

--- s quoted for /bin/sh.
function helpers.q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

--- A fresh temporary path (no file there), with an optional suffix.
function helpers.tmpname(suffix)
  local p = os.tmpname()
  os.remove(p)
  return p .. (suffix or "")
end

--- Writes bytes to path; returns path.
function helpers.write_file(path, bytes)
  local f = assert(io.open(path, "wb"))
  f:write(bytes)
  f:close()
  return path
end

--- The whole content of path.
function helpers.read_file(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

--- Runs `[env] bin args` from the shell with stdin (a string, or nothing)
-- and returns its stdout, stderr and exit status (128 + n for signal n).
function helpers.run(bin, args, stdin, env)
  local out, err, inp = os.tmpname(), os.tmpname(), os.tmpname()
  helpers.write_file(inp, stdin or "")
  local cmd = string.format("%s%s %s <%s >%s 2>%s", env and (env .. " ") or "", helpers.q(bin), args or "",
    helpers.q(inp), helpers.q(out), helpers.q(err))
  local _, how, code = os.execute(cmd)
  local o, e = helpers.read_file(out), helpers.read_file(err)
  os.remove(out); os.remove(err); os.remove(inp)
  if how == "signal" then code = 128 + code end
  return o, e, code
end

--- A file-like object that keeps what is written in .text.
function helpers.sink()
  local t = { text = "" }
  function t:write(...)
    for _, s in ipairs({ ... }) do self.text = self.text .. s end
    return self
  end
  function t.flush() end
  return t
end

--- v as 4 big-endian bytes (IDX headers).
function helpers.be32(v)
  return string.char((v >> 24) & 255, (v >> 16) & 255, (v >> 8) & 255, v & 255)
end

--- A seeded first-order Markov text over the letters of `alphabet`: each
-- letter is followed by the next one of the alphabet most of the time.
function helpers.markov_text(alphabet, n, seed)
  local g = require("engram.core").generator(seed)
  local out, k = {}, 1
  for i = 1, n do
    if g:uniform() < 0.8 then k = k % #alphabet + 1 else k = g:randint(1, #alphabet) end
    out[i] = alphabet:sub(k, k)
  end
  return table.concat(out)
end

--- Writes three Markov text files (DIR/d1.txt .. d3.txt over disjoint
-- alphabets, 3000 letters each) into a new temporary directory; returns it.
function helpers.markov_domains()
  local dir = helpers.tmpname(".d")
  assert(os.execute("mkdir -p " .. helpers.q(dir)))
  local alphabets = { "abcdefghijklm", "nopqrstuvwxyz", "0123456789+-*" }
  for d = 1, 3 do
    helpers.write_file(string.format("%s/d%d.txt", dir, d), helpers.markov_text(alphabets[d], 3000, d))
  end
  return dir
end

--- The text-domains scenario over the first n [3] files markov_domains wrote
-- in dir (ctx 12), with `samples` training and `test_samples` held-out windows.
function helpers.markov_scenario(dir, n, samples, test_samples)
  local domains = {}
  for d = 1, n or 3 do domains[d] = { name = "d" .. d, paths = { dir .. "/d" .. d .. ".txt" } } end
  return require("engram").scenarios.text_domains { domains = domains, ctx = 12, quiet = true, samples = samples,
    test_samples = test_samples }
end

return helpers
