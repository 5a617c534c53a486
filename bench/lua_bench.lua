-- lua_bench.lua — tensor operations timed from Lua; bench/run.sh prints them
-- beside bench/mm_bench.c (cblas_sgemm called directly from C).
--
--   build/engram bench/lua_bench.lua [size ...]     (default 256 512 1024 2048)
--
-- Output, one fact per line (read by run.sh):
--   core <openblas core>
--   mm <n> <best seconds> <GFLOP/s>         engram.mm(a, b, out): preallocated output
--   mm_alloc <n> <best seconds> <GFLOP/s>   a:mm(b): allocates the result each call
--   small <name> <nanoseconds per call>     a Lua call on a 16-element tensor
local engram = require("engram")
local clock = engram.clock

local sizes = {}
for i = 1, #arg do sizes[#sizes + 1] = tonumber(arg[i]) end
if #sizes == 0 then sizes = {256, 512, 1024, 2048} end

print("core " .. tostring(engram.blas_core))

-- Same repetition rule as mm_bench.c: about a second of work, at least 5.
local function reps_for(n)
  local r = math.floor(1.0 * 50e9 / (2 * n * n * n))
  return math.max(5, math.min(400, r))
end

local function best_of(reps, f)
  f() -- warm-up
  local best = math.huge
  for _ = 1, reps do
    local t0 = clock()
    f()
    local dt = clock() - t0
    if dt < best then best = dt end
  end
  return best
end

engram.seed(1)
for _, n in ipairs(sizes) do
  local a, b, out = engram.randn(n, n), engram.randn(n, n), engram.zeros(n, n)
  local flops = 2 * n * n * n
  local t = best_of(reps_for(n), function() engram.mm(a, b, out) end)
  print(string.format("mm %d %.6f %.2f", n, t, flops / t / 1e9))
  t = best_of(reps_for(n), function() local _ = a:mm(b) end)
  print(string.format("mm_alloc %d %.6f %.2f", n, t, flops / t / 1e9))
  io.stdout:flush()
  a, b, out = nil, nil, nil
  collectgarbage()
end

-- Per-call cost of a small operation: best of 5 runs of N calls.
local function per_call(N, f)
  local best = math.huge
  for _ = 1, 5 do
    local t0 = clock()
    f(N)
    local dt = clock() - t0
    if dt < best then best = dt end
  end
  return best / N * 1e9
end

local x = engram.zeros(16)
local N = 200000
print(string.format("small add_ %.1f", per_call(N, function(k)
  for _ = 1, k do x:add_(1) end
end)))
print(string.format("small + %.1f", per_call(N, function(k)
  for _ = 1, k do local _ = x + 1 end
end)))
print(string.format("small loop %.1f", per_call(N, function(k)
  local y = 0
  for _ = 1, k do y = y + 1 end
end)))
