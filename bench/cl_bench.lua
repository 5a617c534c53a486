-- cl_bench.lua — the continual-learning loop's speed: a 5-task naive run on
-- Split Fashion-MNIST (class-IL, mlp{784, 400, 400, 10}, 1 epoch per task,
-- batch 128, Adam), evaluation of every task after every task included
-- (target: <= 10 s on 2 cores), and the same with experience replay and EWC.
--
--   build/engram bench/cl_bench.lua [--threads 2] [--only naive,replay,ewc]
--
-- Prints one line per run: total seconds (data loading excluded), training
-- and evaluation seconds, and the final average accuracy.
local engram = require("engram")
local S = engram.strategies

local opts = engram.options.parse(arg or {}, {
  name = "cl_bench",
  description = "Timing of 5-task continual-learning runs on Split Fashion-MNIST.",
  defaults = { batch = 128, lr = 0.001, threads = 2, quiet = true },
  runs = { "naive", "replay", "ewc" },
})
engram.core.set_threads(math.tointeger(opts.threads or 2))
local t0 = engram.clock()
local train, test = engram.data.fashion_mnist { normalize = true }
local scen = engram.scenarios.split(train, test, { tasks = 5, scenario = "class", seed = opts.seed })
print(string.format("cl_bench: data loaded in %.2f s; %s; %d thread(s)", engram.clock() - t0, tostring(scen),
  math.tointeger(opts.threads or 2)))
local make = { naive = function() return S.naive() end, replay = function() return S.replay { memory = 1000 } end,
  ewc = function() return S.ewc { lambda = 100 } end }
for _, name in ipairs { "naive", "replay", "ewc" } do
  if opts.selected(name) then
    local model = engram.nn.mlp { 784, 400, 400, 10 }:build { seed = opts.seed }
    local L = engram.learner(model, { epochs = opts.epochs, batch = opts.batch, lr = opts.lr, quiet = true,
      drift_layer = false, name = name })
    L:use(make[name]())
    local t = engram.clock()
    local doc = L:run(scen)
    local total = engram.clock() - t
    print(string.format("cl %-7s split-fmnist class-IL 5 tasks x %d epoch: %6.2f s total (train %.2f s, eval %.2f s)" ..
      "  ACC %.1f%%%s", name, opts.epochs, total, doc.train_seconds, doc.eval_seconds, 100 * doc.avg_acc,
      name == "naive" and (total <= 10 and "  [target <= 10 s: met]" or "  [target <= 10 s: MISSED]") or ""))
  end
end
