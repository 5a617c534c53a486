-- train_bench.lua — training throughput of mlp{784,400,400,10} (cross-entropy,
-- plain SGD) from Lua, beside the same network in PyTorch (bench/torch_mlp.py)
-- when python3 can import torch.
--
--   build/engram bench/train_bench.lua [--batches 16,128,512] [--threads 1,2]
--                                      [--seconds 1] [--rounds 3] [--sgd optim|axpy]
--                                      [--no-torch]
--
-- Synthetic in-memory batches on both sides (data loading is not timed); the
-- same loop: zero_grad, forward, cross-entropy, backward, SGD step (lr 0.01;
-- engram.optim.SGD, or with --sgd axpy the same update p -= lr g as one
-- axpy over the flat parameter vector).
-- Every (batch, threads) pair is measured for `seconds` after a warm-up as
-- the best of windows of 2048 samples, in `rounds` alternating rounds
-- (engram, torch, engram, torch: the machine is shared), and the best is
-- kept; each side is reported at its best thread count. At the largest
-- batch it also times the step's matrix products alone (the same sgemm calls
-- into preallocated outputs), a step and the products one after the other in
-- one loop, and reports the whole step's FLOP rate (best single step) as a
-- fraction of theirs (best single set of products).
-- Output lines (read by bench/run.sh): "engram batch=B threads=T samples_per_s=S",
-- "torch ...", then a summary table.
local engram = require("engram")
local nn = engram.nn
local core = engram.core
local clock = engram.clock

local opts = { batches = "16,128,512", threads = "1,2", seconds = "1", rounds = "3", sgd = "optim", torch = true }
local i = 1
while arg and arg[i] do
  local a = arg[i]
  if a == "--no-torch" then
    opts.torch = false
  elseif a == "--help" or a == "-h" then
    print("usage: engram bench/train_bench.lua [--batches 16,128,512] [--threads 1,2] [--seconds 1]" ..
      " [--rounds 3] [--sgd optim|axpy] [--no-torch]")
    os.exit(0)
  elseif a:match("^%-%-%a+$") and arg[i + 1] then
    opts[a:sub(3)] = arg[i + 1]; i = i + 1
  else
    io.stderr:write("train_bench: unknown argument " .. a .. "\n"); os.exit(2)
  end
  i = i + 1
end
local function list(s)
  local t = {}
  for v in s:gmatch("%d+") do t[#t + 1] = tonumber(v) end
  return t
end
if opts.sgd ~= "optim" and opts.sgd ~= "axpy" then
  io.stderr:write("train_bench: --sgd must be optim or axpy, got " .. opts.sgd .. "\n"); os.exit(2)
end
local batches, threads, seconds = list(opts.batches), list(opts.threads), tonumber(opts.seconds)
local rounds = tonumber(opts.rounds)

local crit = engram.loss.CrossEntropy()
local function ce(z, y)
  local _, g = crit:forward_backward(z, y)
  return g
end

local function make_batches(B)
  local xs, ys = {}, {}
  for k = 1, 32 do
    xs[k] = engram.rand(B, 784)
    ys[k] = (engram.rand(B) * 10):floor():clamp(0, 9)
  end
  return xs, ys
end

-- One training step of a fresh model on B-sample batches: step(k) trains on batch k of 32.
local function make_step(B)
  local model = nn.mlp { 784, 400, 400, 10 }:build { seed = 1 }
  local xs, ys = make_batches(B)
  local lr = 0.01
  local opt -- engram.optim.SGD, or with --sgd axpy p -= lr g over the flat vector
  if opts.sgd == "optim" then
    opt = engram.optim.SGD(model, { lr = lr })
  else
    local p, g = model:flat()
    opt = { step = function() core.nn_axpy(p, -lr, g) end }
  end
  return function(k)
    local x, y = xs[k], ys[k]
    model:zero_grad()
    local z = model:forward(x)
    model:backward(x, ce(z, y), false)
    opt:step()
  end
end

local function run(B, T, secs)
  secs = secs or seconds
  core.set_threads(T)
  local step = make_step(B)
  for k = 1, 20 do step((k - 1) % 32 + 1) end
  -- The best of many short windows (2048 samples each): a burst of someone
  -- else's work on the shared machine spoils a window, not the figure.
  local chunk = math.max(2, 2048 // B)
  local n, start, best_dt = 0, clock(), math.huge
  repeat
    local t0 = clock()
    for _ = 1, chunk do
      step(n % 32 + 1)
      n = n + 1
    end
    best_dt = math.min(best_dt, clock() - t0)
  until clock() - start >= secs
  return chunk * B / best_dt, best_dt / chunk
end

-- The step's matrix products alone, into preallocated outputs: products() runs them once.
local function make_products(B)
  local x, W1, W2, W3 = engram.rand(B, 784), engram.rand(400, 784), engram.rand(400, 400), engram.rand(10, 400)
  local h1, h2, z = engram.zeros(B, 400), engram.zeros(B, 400), engram.zeros(B, 10)
  local g1, g2, g3 = engram.zeros(400, 784), engram.zeros(400, 400), engram.zeros(10, 400)
  local gz = engram.rand(B, 10)
  local o = {
    { h1, x, W1, false, true }, { h2, h1, W2, false, true }, { z, h2, W3, false, true },  -- forward
    { g3, gz, h2, true, false }, { h2, gz, W3, false, false },                         -- layer 3
    { g2, h2, h1, true, false }, { h1, h2, W2, false, false },                         -- layer 2
    { g1, h1, x, true, false },                                                        -- layer 1 (no gx)
  }
  local specs = {}
  for k, s in ipairs(o) do specs[k] = { ta = s[4], tb = s[5], out = s[1] } end
  return function()
    for k, s in ipairs(o) do engram.mm(s[2], s[3], specs[k]) end
  end
end

-- A step and the products alone, one after the other in one loop, best time
-- of each: a slow spell of the shared machine lands on both or on neither.
local function step_and_products(B, T, secs)
  core.set_threads(T)
  local step, products = make_step(B), make_products(B)
  for k = 1, 10 do step(k); products() end
  local n, bs, bp, start = 0, math.huge, math.huge, clock()
  repeat
    local t0 = clock()
    step(n % 32 + 1)
    local t1 = clock()
    products()
    local t2 = clock()
    bs, bp, n = math.min(bs, t1 - t0), math.min(bp, t2 - t1), n + 1
  until clock() - start >= secs
  return bs, bp
end

local flops_per_sample = 2 * (784 * 400 + 400 * 400 + 400 * 10) * 2 + 2 * (400 * 400 + 10 * 400)

print(string.format("engram blas_core=%s sgd=%s", tostring(core.blas_core), opts.sgd))
local best, tbest = {}, {}

local function engram_round()
  for _, B in ipairs(batches) do
    for _, T in ipairs(threads) do
      local sps, sec = run(B, T)
      print(string.format("engram batch=%d threads=%d samples_per_s=%.0f", B, T, sps))
      if not best[B] or sps > best[B].sps then best[B] = { sps = sps, T = T, sec = sec } end
    end
  end
end

local function torch_round()
  -- Debian's python3-torch lives in /usr/bin/python3's dist-packages; a
  -- python3 earlier on PATH (pyenv, venv) may not see it.
  local py = os.getenv("ENGRAM_PYTHON")
  if not py then
    local f = io.open("/usr/bin/python3")
    py = f and "/usr/bin/python3" or "python3"
    if f then f:close() end
  end
  local cmd = string.format("%s bench/torch_mlp.py --batches %s --threads %s --seconds %s 2>&1",
    py, opts.batches, opts.threads, opts.seconds)
  local f = io.popen(cmd)
  for line in f:lines() do
    print(line)
    local B, T, O, s = line:match("^torch batch=(%d+) threads=(%d+) omp=(%d+) samples_per_s=(%d+)")
    if B then
      B, T, s = tonumber(B), tonumber(T), tonumber(s)
      if not tbest[B] or s > tbest[B].sps then tbest[B] = { sps = s, T = T, O = tonumber(O) } end
    end
  end
  f:close()
end

-- Alternating rounds, best of all: the machine is shared, and a burst of
-- someone else's work should not land on one side only.
for _ = 1, rounds do
  engram_round()
  if opts.torch then torch_round() end
end

-- The step against its matrix products alone, at the largest batch.
local Bmax = batches[#batches]
local ssec, gsec = step_and_products(Bmax, best[Bmax].T, 2 * seconds)
local step_rate = flops_per_sample * Bmax / ssec / 1e9
local gemm_rate = flops_per_sample * Bmax / gsec / 1e9
print(string.format("engram gemm_only batch=%d threads=%d step_gflops=%.1f gemm_gflops=%.1f fraction=%.3f",
  Bmax, best[Bmax].T, step_rate, gemm_rate, step_rate / gemm_rate))

print()
print(string.format("%-6s %24s %26s %7s", "batch", "engram samples/s (BLAS)", "torch samples/s (BLAS/omp)",
  "ratio"))
for _, B in ipairs(batches) do
  local e, t = best[B], tbest[B]
  print(string.format("%-6d %16.0f (%d thr) %26s %7s", B, e.sps, e.T,
    t and string.format("%16.0f (%d/%d thr)", t.sps, t.T, t.O) or (opts.torch and "torch not installed" or "not run"),
    t and string.format("%.2fx", e.sps / t.sps) or "-"))
end
