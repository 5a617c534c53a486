-- fisher_bench.lua — what EWC's Fisher costs after a task, against training:
--   mlp{784,400,400,10} on task 1 of Split Fashion-MNIST (12,000 samples):
--     one training epoch over them (batch 128, Adam: forward, cross-entropy,
--     backward, step), beside the empirical, sampled and expected Fisher
--     over all of them (engram.strategies.ewc.fisher, the batched path; the
--     expected one over the 10 classes of class-IL);
--   a small CNN (cnn{channels = {8, 16}, hidden = 64}) on 1,000 samples:
--     training on them (8 batches of 125) beside the empirical Fisher over
--     them (the batched path: Conv2d's per-sample gradients).
-- Targets (issue 11): an empirical or sampled Fisher over all 12,000 samples
-- at most 2x one epoch over them; the expected Fisher over 10 classes at
-- most 6x; the CNN's Fisher over 1,000 samples at most 3x training on them.
--
--   build/engram bench/fisher_bench.lua [--threads 2] [--rounds 3]
--
-- Each measurement is the best of `rounds` rounds that alternate them (the
-- machine may be shared).
local engram = require("engram")
local core, clock = engram.core, engram.clock
local ewc = engram.strategies.ewc

local opts = engram.options.parse(arg or {}, {
  name = "fisher_bench",
  description = "What EWC's Fisher after a task costs against training (issue 11).",
  options = { { "rounds", 3, "alternating rounds, the best of which is kept" } },
  defaults = { threads = 2 },
})
local T, rounds = math.tointeger(opts.threads), math.tointeger(opts.rounds)
core.set_threads(T)

local train, test = engram.data.fashion_mnist { normalize = true }
local scen = engram.scenarios.split(train, test, { tasks = 5, scenario = "class", seed = 1 })
local task = scen.tasks[1]
local N = #task.train

-- One pass of training over ds in batches of B (the learner's step without hooks).
local function trainer(model, ds, B)
  local opt = engram.optim.Adam(model, { lr = 1e-3 })
  local crit = engram.loss.CrossEntropy()
  local it = ds:batches { batch = B, seed = 1, flat = true }
  return function()
    for x, y in it do
      model:zero_grad()
      local _, gz = crit:forward_backward(model:forward(x), y)
      model:backward(x, gz, false)
      opt:step()
    end
  end
end

local mlp = engram.nn.mlp { 784, 400, 400, 10 }:build { seed = 1 }
local cnn = engram.nn.cnn { channels = { 8, 16 }, hidden = 64 }:build { seed = 1 }
local first = {}
for k = 1, 1000 do first[k] = k end
local small = task.train:subset { indices = first }
local small_task = { train = small, index = 1 }

local function fisher(model, t, kind, samples)
  return function()
    local _, used = ewc.fisher(model, t, { fisher = kind, samples = samples, path = "batched", active = false,
      quiet = true })
    assert(used == "batched", "the batched path")
  end
end

local runs = {
  { "mlp: one epoch of training (12,000 samples)", trainer(mlp, task.train, 128) },
  { "mlp: empirical Fisher, all 12,000", fisher(mlp, task, "empirical", "all"), 2 },
  { "mlp: sampled Fisher, all 12,000", fisher(mlp, task, "sampled", "all"), 2 },
  { "mlp: expected Fisher (10 classes), all 12,000", fisher(mlp, task, "expected", "all"), 6 },
  { "cnn: training on 1,000 samples", trainer(cnn, small, 125) },
  { "cnn: empirical Fisher, 1,000 samples", fisher(cnn, small_task, "empirical", "all"), 3 },
}
local best = {}
for r = 1, rounds do
  for k, run in ipairs(runs) do
    local t0 = clock()
    run[2]()
    local dt = clock() - t0
    if r == 1 or dt < best[k] then best[k] = dt end
  end
end
print(string.format("Fisher cost: task 1 of Split Fashion-MNIST (%d samples), %d BLAS thread(s), core %s, best of %d",
  N, T, tostring(core.blas_core), rounds))
local base
for k, run in ipairs(runs) do
  local name, target = run[1], run[3]
  if not target then
    base = best[k]
    print(string.format("%-48s %8.3f s", name, best[k]))
  else
    local ratio = best[k] / base
    print(string.format("%-48s %8.3f s  %5.2fx  target <= %gx: %s", name, best[k], ratio, target,
      ratio <= target and "met" or "MISSED"))
  end
end
