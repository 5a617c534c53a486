-- combined.lua — generative replay, per-task LoRA and EWC composed in one
-- plan, with a consolidation phase, against each ingredient alone, on Split
-- Fashion-MNIST class-IL (5 tasks of 2 classes, no task identity at test).
--
-- The plan (engram.recipe.class_il_runs "combined"; docs/recipes.md):
--   task 1        phase "first":  the whole model learns; generative replay's
--                                 VAE learns the task; EWC records its Fisher
--   tasks 2..5    phase "learn":  LoRA trains rank-r factors of its own on the
--                                 hidden layers (their base weights frozen; the
--                                 set is folded into the base after the task),
--                                 EWC anchors the shared output layer, generative
--                                 replay mixes the old generator's samples,
--                                 labelled by the previous model (distillation)
--                 phase "consolidate": a "sleep" of generative replay alone
--                                 (data = "none"), --sleep steps at --sleep-lr
--
-- Runs (select with --only): naive, ewc, replay, gr, lora, combined.
--
--   build/engram recipes/combined.lua [--iterations 500] [--rank 16]
--       [--sleep 100] [--sleep-lr 1e-4] [--memory 1000] [--lambda 0]
--       [--only gr,combined] [--seed 1] [--out results.json]
--
-- Inputs on [0, 1] (normalize = false: the Bernoulli VAE wants them);
-- mlp{784, 400, 400, 10}, Adam 1e-3, batch 128, --iterations steps per task
-- for every run. Figures: see "Measured" below.
local engram = require("engram")

local NAMES = { "naive", "ewc", "replay", "gr", "lora", "combined" }
local opts = engram.options.parse(arg or {}, {
  name = "combined",
  description = "Generative replay + per-task LoRA + EWC in one plan vs each alone (Split Fashion-MNIST, class-IL).",
  options = {
    { "iterations", 500, "steps per task for every run" },
    { "rank", 16, "LoRA rank" },
    { "sleep", 100, "steps of the consolidation phase (generative replay alone)" },
    { "sleep_lr", 1e-4, "learning rate of the consolidation phase" },
    { "memory", 1000, "experience replay's memory (samples)" },
    { "lambda", 0, "EWC's strength (0: its class-IL default, docs/defaults.md)" },
  },
  defaults = { batch = 128, lr = 0.001, threads = 2, scenario = "class" },
  runs = NAMES,
})
if opts.threads then engram.core.set_threads(math.tointeger(opts.threads)) end
engram.seed(opts.seed)

local train, test = engram.data.fashion_mnist { normalize = false }
local ok, scenario = pcall(engram.scenarios.split, train, test,
  { tasks = opts.tasks or 5, scenario = opts.scenario, seed = opts.seed })
if not ok then opts.fail(scenario) end

local runs = engram.recipe.class_il_runs { seed = opts.seed, memory = math.tointeger(opts.memory),
  lambda = opts.lambda > 0 and opts.lambda or nil, rank = math.tointeger(opts.rank),
  sleep = math.tointeger(opts.sleep), sleep_lr = opts.sleep_lr }
local docs = engram.recipe.class_il_compare(scenario, runs, NAMES, opts)

for _, d in ipairs(docs) do engram.results.print(d); print() end
io.write(engram.results.compare_table(docs))
local by, best = {}, nil
for _, d in ipairs(docs) do by[d.name] = d end
for _, n in ipairs { "ewc", "replay", "gr", "lora" } do
  if by[n] and n ~= "replay" and (not best or by[n].avg_acc > best.avg_acc) then best = by[n] end
end
if by.combined and best then
  print(string.format("\ncombined %.1f%% vs its best single ingredient (%s) %.1f%%: %+.1f points",
    100 * by.combined.avg_acc, best.name, 100 * best.avg_acc, 100 * (by.combined.avg_acc - best.avg_acc)))
end
if opts.out then engram.results.save(opts.out, #docs == 1 and docs[1] or docs) end
