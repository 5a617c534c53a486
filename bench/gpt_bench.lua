-- gpt_bench.lua — training throughput of engram.nn.gpt beside the same model in
-- PyTorch (bench/torch_gpt.py), and the peak memory of a training run (issue 17).
--
--   build/engram bench/gpt_bench.lua [--dims 128,512] [--threads 1,2] [--batch 16]
--                                    [--ctx 128] [--rounds 2] [--no-torch]
--   build/engram bench/gpt_bench.lua --memory [--dim 128] [--steps 5]
--
-- The model (both sides): byte-level vocabulary 256, context 128, 4 layers,
-- 4 heads, the given width, feed-forward 4x, no dropout, separate head. A
-- step: zero_grad, forward, mean cross-entropy over all B*T positions,
-- backward, Adam (lr 1e-3), on one synthetic batch of B sequences (data
-- loading is not timed). Each (dim, threads) is the best single step of a
-- few after a warm-up, in `rounds` alternating rounds (engram, torch,
-- engram, torch: the machine is shared), keeping the best; each side is
-- reported at its best thread count. Output lines:
--   engram dim=D batch=B ctx=T threads=N tokens_per_s=S
--   torch  dim=D batch=B ctx=T threads=N tokens_per_s=S
-- then a summary table with the ratio (target: >= 1.5 at dim 128, >= 1.0 at 512).
--
-- --memory: trains the default model for a few steps in this process and
-- prints its peak RSS (VmHWM) beside what the run holds: parameters and
-- their gradients, Adam's two moments, and one step's activations (every
-- buffer the modules keep after a step, counted by walking the model).
-- Target: peak RSS at most 2x their sum. Run it in a process of its own.
local engram = require("engram")
local nn, core = engram.nn, engram.core

local opts = { dims = "128,512", threads = "1,2", batch = "16", ctx = "128", rounds = "2", torch = true,
               memory = false, dim = "128", steps = "5" }
local i = 1
while arg and arg[i] do
  local a = arg[i]
  if a == "--no-torch" then
    opts.torch = false
  elseif a == "--memory" then
    opts.memory = true
  elseif a:match("^%-%-%a+$") and arg[i + 1] then
    opts[a:sub(3)] = arg[i + 1]; i = i + 1
  else
    io.stderr:write("gpt_bench: unknown argument " .. a .. "\n"); os.exit(2)
  end
  i = i + 1
end
local function list(s)
  local t = {}
  for v in s:gmatch("%d+") do t[#t + 1] = tonumber(v) end
  return t
end
local B, T, V = tonumber(opts.batch), tonumber(opts.ctx), 256

-- The model, its optimiser and one batch; step() runs one training step.
local function setup(dim)
  local m = nn.gpt { vocab = V, ctx = T, dim = dim, heads = 4, layers = 4 }:build { seed = 1 }
  local opt = engram.optim.Adam(m, { lr = 1e-3 })
  local ce = engram.loss.CrossEntropy()
  local g = engram.generator(1)
  local ids, target = core.zeros(B, T), core.zeros(B * T)
  for b = 1, B do
    for t = 1, T do ids:set(b, t, math.floor(g:uniform() * V) % V) end
  end
  for k = 1, B * T do target:set(k, math.floor(g:uniform() * V) % V) end
  local function step()
    m:zero_grad()
    local _, gl = ce:forward_backward(m:forward(ids), target)
    m:backward(ids, gl)
    opt:step()
  end
  return m, step
end

if opts.memory then
  local dim = tonumber(opts.dim)
  local m, step = setup(dim)
  for _ = 1, tonumber(opts.steps) do step() end
  local P = m:numel()
  -- every tensor a module holds that is not a parameter or gradient view: its buffers after a step
  local params, seen, act = {}, {}, 0
  for _, p in ipairs(m:parameters()) do params[p.value], params[p.grad] = true, true end
  local function count(t)
    if core.istensor(t) and not params[t] and not seen[t] then
      seen[t] = true
      local ok, n = pcall(t.numel, t)
      if ok then act = act + n end
    end
  end
  local function walk(mod)
    for _, v in pairs(mod) do count(v) end
    for _, c in ipairs(rawget(mod, "modules") or {}) do walk(c) end
  end
  walk(m)
  local MB = 1024 * 1024
  local held = (4 * P + act) * 4 / MB
  local rss = engram.results.peak_rss_mb()
  print(string.format("memory dim=%d batch=%d ctx=%d params=%d params_mb=%.1f grads_mb=%.1f adam_mb=%.1f " ..
    "activations_mb=%.1f sum_mb=%.1f peak_rss_mb=%.1f ratio=%.2f", dim, B, T, P, P * 4 / MB, P * 4 / MB, 2 * P * 4 / MB,
    act * 4 / MB, held, rss or -1, rss and rss / held or -1))
  return
end

local function engram_tps(dim, threads)
  core.set_threads(threads)
  local _, step = setup(dim)
  local steps = dim >= 384 and 3 or 8
  for _ = 1, 2 do step() end
  local best = math.huge
  for _ = 1, steps do
    local t0 = engram.clock()
    step()
    best = math.min(best, engram.clock() - t0)
  end
  collectgarbage()
  return B * T / best
end

local function torch_tps(dim, threads)
  local cmd = string.format("/usr/bin/python3 bench/torch_gpt.py --dims %d --threads %d --batch %d --ctx %d " ..
    "--steps %d 2>&1", dim, threads, B, T, dim >= 384 and 3 or 8)
  local p = io.popen(cmd)
  local out = p:read("a")
  p:close()
  if out:match("torch unavailable") then return nil, "torch unavailable" end
  local v = out:match("tokens_per_s=(%d+)")
  if not v then return nil, out end
  return tonumber(v)
end

local dims, threads = list(opts.dims), list(opts.threads)
local best = { engram = {}, torch = {} }
local torch_ok, torch_note = opts.torch, nil
for round = 1, tonumber(opts.rounds) do
  for _, dim in ipairs(dims) do
    for _, th in ipairs(threads) do
      local v = engram_tps(dim, th)
      print(string.format("engram dim=%d batch=%d ctx=%d threads=%d tokens_per_s=%.0f (round %d)", dim, B, T, th, v,
        round))
      local k = dim .. "/" .. th
      best.engram[k] = math.max(best.engram[k] or 0, v)
      if torch_ok then
        local tv, err = torch_tps(dim, th)
        if not tv then
          torch_ok, torch_note = false, err
        else
          print(string.format("torch dim=%d batch=%d ctx=%d threads=%d tokens_per_s=%.0f (round %d)", dim, B, T, th,
            tv, round))
          best.torch[k] = math.max(best.torch[k] or 0, tv)
        end
      end
      io.stdout:flush()
    end
  end
end

print()
print(string.format("GPT training step, vocab %d, ctx %d, 4 layers, 4 heads, batch %d (tokens/s, best thread count " ..
  "of %s; OpenBLAS %s)", V, T, B, opts.threads, core.blas_core))
print(string.format("%-6s %10s %8s %10s %8s %8s %8s", "dim", "engram", "threads", "torch", "threads", "ratio",
  "target"))
for _, dim in ipairs(dims) do
  local e, et, t, tt = 0, 0, 0, 0
  for _, th in ipairs(threads) do
    local k = dim .. "/" .. th
    if best.engram[k] and best.engram[k] > e then e, et = best.engram[k], th end
    if best.torch[k] and best.torch[k] > t then t, tt = best.torch[k], th end
  end
  local target = dim <= 128 and 1.5 or 1.0
  if t > 0 then
    print(string.format("%-6d %10.0f %8d %10.0f %8d %8.2f %8s", dim, e, et, t, tt, e / t,
      (e / t >= target and ">= " or "< ") .. target))
  else
    print(string.format("%-6d %10.0f %8d %10s %8s %8s %8s", dim, e, et, "-", "-", "-", target))
  end
end
if not torch_ok and opts.torch then print("torch: skipped (" .. tostring(torch_note):gsub("%s+$", "") .. ")") end
