-- lora_bench.lua — the cost of per-task LoRA on mlp{784,400,400,10}: a
-- training step with rank-8 LoRA on both hidden layers (their base weights
-- frozen, the output layer trained, as recipes/lora.lua's task-IL run does)
-- beside a full fine-tuning step; a forward with the set merged, unmerged
-- and of the base model alone; and switching to another task's set
-- (activate in both layers; for merged sets unmerge + merge) beside one
-- training step.
--
--   build/engram bench/lora_bench.lua [--batch 128] [--eval-batch 1000]
--       [--threads 2] [--rank 8] [--seconds 1] [--rounds 3]
--
-- Synthetic in-memory batches; Adam; each figure is the best of `rounds`
-- rounds of `seconds` each, alternating the variants (the machine is
-- shared), per call. Output lines "lora_bench what=... us=..." and a summary.
local engram = require("engram")
local nn = engram.nn
local clock = engram.clock

local opts = { batch = 128, eval_batch = 1000, threads = 2, rank = 8, seconds = 1, rounds = 3 }
local i = 1
while arg and arg[i] do
  local a = arg[i]
  local key = a:match("^%-%-([%w%-]+)$")
  if a == "--help" or a == "-h" then
    print("usage: engram bench/lora_bench.lua [--batch 128] [--eval-batch 1000] [--threads 2] [--rank 8]" ..
      " [--seconds 1] [--rounds 3]")
    os.exit(0)
  elseif key and arg[i + 1] and opts[key:gsub("%-", "_")] ~= nil then
    opts[key:gsub("%-", "_")] = tonumber(arg[i + 1]); i = i + 1
  else
    io.stderr:write("lora_bench: unknown argument " .. a .. "\n"); os.exit(2)
  end
  i = i + 1
end
engram.core.set_threads(math.tointeger(opts.threads))
engram.seed(1)

local B = math.tointeger(opts.batch)
local x = engram.randn(B, 784)
local y = engram.tensor((function()
  local t = {}
  for k = 1, B do t[k] = (k - 1) % 10 end
  return t
end)())
local xe = engram.randn(math.tointeger(opts.eval_batch), 784)

local function trainer(model)
  local ce, opt = engram.loss.CrossEntropy(), engram.optim.Adam(model, { lr = 1e-3 })
  return function()
    model:zero_grad()
    local _, g = ce:forward_backward(model:forward(x), y)
    model:backward(x, g, false)
    opt:step()
  end
end

-- the full model
local full = nn.mlp { 784, 400, 400, 10 }:build { seed = 1 }
-- the same with two tasks' LoRA sets on the hidden layers, set 2 active
local lora = nn.mlp { 784, 400, 400, 10 }:build { seed = 1 }
local ws = lora:wrap({ "1", "3" }, function(l) return nn.LoRA(l, { rank = math.tointeger(opts.rank) }) end)
for _, k in ipairs { 1, 2 } do
  local fs = {}
  for j, w in ipairs(ws) do fs[j] = w:add_set(k) end
  lora:new_group("lora.task" .. k, fs)
end
for _, w in ipairs(ws) do
  for _, k in ipairs { 1, 2 } do w.sets[k].B:copy_(engram.randn(400, math.tointeger(opts.rank)) * 0.01) end
  w:activate(2)
end
lora:freeze_layers(function(m) return m == ws[1].modules[1] or m == ws[2].modules[1] end)
lora:freeze("lora.task1")
local base = nn.mlp { 784, 400, 400, 10 }:build { seed = 1 }
base:evaluate(); lora:train()

local step_full, step_lora = trainer(full), trainer(lora)
local function activate(k) for _, w in ipairs(ws) do w:activate(k) end end
local flip = 1
local variants = {
  { "step_full", step_full },
  { "step_lora", step_lora },
  { "forward_base", function() base:forward(xe) end },
  { "forward_lora", function() lora:forward(xe) end },
  { "forward_merged", function() lora:forward(xe) end, function()
    lora:evaluate(); for _, w in ipairs(ws) do w:merge(2) end
  end, function() for _, w in ipairs(ws) do w:unmerge() end; lora:train() end },
  { "switch_activate", function() flip = 3 - flip; activate(flip) end, nil, function() activate(2) end },
  { "switch_merged", function()
    for _, w in ipairs(ws) do w:unmerge() end
    flip = 3 - flip
    for _, w in ipairs(ws) do w:merge(flip) end
  end, function() for _, w in ipairs(ws) do w:merge(2) end end,
    function() for _, w in ipairs(ws) do w:unmerge() end; activate(2) end },
}

local best = {}
local function measure(v)
  local name, f, setup, teardown = v[1], v[2], v[3], v[4]
  if setup then setup() end
  f(); f() -- warm
  local t0, n, fastest = clock(), 0, math.huge
  while clock() - t0 < opts.seconds do
    local a = clock()
    f()
    fastest = math.min(fastest, clock() - a)
    n = n + 1
  end
  if teardown then teardown() end
  best[name] = math.min(best[name] or math.huge, fastest)
end
for _ = 1, math.tointeger(opts.rounds) do
  for _, v in ipairs(variants) do measure(v) end
end
for _, v in ipairs(variants) do
  print(string.format("lora_bench what=%s us=%.1f", v[1], 1e6 * best[v[1]]))
end
local function us(k) return 1e6 * best[k] end
print(string.format("\nmlp{784,400,400,10}, batch %d (eval %d), %d threads, rank %d; best of %d rounds:", B,
  math.tointeger(opts.eval_batch), math.tointeger(opts.threads), math.tointeger(opts.rank),
  math.tointeger(opts.rounds)))
print(string.format("  training step, full fine-tuning        %9.1f us", us("step_full")))
print(string.format("  training step, LoRA on layers 1 and 3  %9.1f us  (%.2fx the full step)", us("step_lora"),
  best.step_lora / best.step_full))
print(string.format("  forward, base model                    %9.1f us", us("forward_base")))
print(string.format("  forward, LoRA merged                   %9.1f us  (%.2fx the base)", us("forward_merged"),
  best.forward_merged / best.forward_base))
print(string.format("  forward, LoRA unmerged                 %9.1f us  (%.2fx the base)", us("forward_lora"),
  best.forward_lora / best.forward_base))
print(string.format("  switch task (activate)                 %9.1f us  (%.5fx a LoRA step)", us("switch_activate"),
  best.switch_activate / best.step_lora))
print(string.format("  switch task (unmerge + merge)          %9.1f us  (%.3fx a LoRA step)", us("switch_merged"),
  best.switch_merged / best.step_lora))
