-- si.lua — synaptic intelligence (Zenke, Poole & Ganguli 2017) against naive
-- fine-tuning and joint training where SI is meant to work: Permuted
-- Fashion-MNIST (domain-IL, 5 tasks) and Split Fashion-MNIST task-IL (5 tasks
-- of 2 classes, logits masked to the task's). SI integrates each weight's
-- contribution to the fall of the task loss along the training path (in C,
-- every step) and pays c Σ Ω (θ − θ*)² for moving it later.
--
-- Runs (select with --only): naive-domain, si-domain, joint-domain,
-- naive-task, si-task, joint-task.
--
--   build/engram recipes/si.lua [--c C] [--xi 0.1] [--scenario all|domain|task]
--       [--epochs 2] [--samples 60000] [--seed 1] [--only si-task,naive-task]
--       [--out results.json] [--log run.jsonl]
--
-- mlp{784, 400, 400, 10}, Adam lr 0.001, batch 128, 2 epochs per task; c is
-- --c or, by default, engram.strategies.defaults.si for the scenario's kind
-- (chosen on validation splits: docs/defaults.md).
-- Takes about 2 minutes on 2 cores (--scenario task: 30 s). Expect (seed 1,
-- measured; ACC, forgetting in points): domain-IL (c 1) naive 63.8% (29.0),
-- SI 82.8% (3.4), joint 86.1%; task-IL (c 1000) naive 91.6% (9.3), SI 99.0%
-- (0.1), joint 98.8%. Over seeds 1-3 see recipes/regularisation.lua.
local engram = require("engram")
local S = engram.strategies

local opts = engram.options.parse(arg or {}, {
  name = "si",
  description = "SI vs naive and joint on Permuted Fashion-MNIST (domain-IL) and Split Fashion-MNIST (task-IL).",
  options = {
    { "c", nil, "SI's strength c (default: engram.strategies.defaults.si for the scenario's kind)", type = "number" },
    { "xi", 0.1, "SI's damping xi" },
    { "samples", 60000, "permuted: training images per task" },
  },
  defaults = { batch = 128, epochs = 2, lr = 0.001, threads = 2, scenario = "all" },
  runs = { "naive-domain", "si-domain", "joint-domain", "naive-task", "si-task", "joint-task" },
})
if opts.threads then engram.core.set_threads(math.tointeger(opts.threads)) end
engram.seed(opts.seed)
local kinds = ({ all = { "domain", "task" }, domain = { "domain" }, task = { "task" } })[opts.scenario]
if not kinds then opts.fail("--scenario must be all, domain or task, got " .. tostring(opts.scenario)) end

local train, test = engram.data.fashion_mnist { normalize = true }
local T = opts.tasks or 5
local function scenario(kind)
  if kind == "domain" then
    return engram.scenarios.permuted(train, test, { tasks = T, samples = opts.samples, seed = opts.seed })
  end
  return engram.scenarios.split(train, test, { tasks = T, scenario = kind, seed = opts.seed })
end

local log = opts.log and engram.json.lines(opts.log, { mode = "w" }) or false
local docs = {}
for _, kind in ipairs(kinds) do
  local these = engram.learner.compare(scenario(kind), {
    { name = "naive-" .. kind, strategies = function() return { S.naive() } end },
    { name = "si-" .. kind, strategies = function() return { S.si { c = opts.c, xi = opts.xi } } end },
    { name = "joint-" .. kind, strategies = function() return { S.joint() } end },
  }, {
    model = function() return engram.nn.mlp { 784, 400, 400, 10 }:build { seed = opts.seed } end,
    opts = { epochs = opts.epochs, batch = opts.batch, lr = opts.lr, seed = opts.seed, quiet = opts.quiet, log = log },
    only = opts.only_set,
  })
  engram.learner.with_naive(these, "naive-" .. kind)
  for _, d in ipairs(these) do docs[#docs + 1] = d end
end
if log then log:close() end

if not opts.quiet then
  for _, d in ipairs(docs) do engram.results.print(d); print() end
end
io.write(engram.results.compare_table(docs))
local by = {}
for _, d in ipairs(docs) do by[d.name] = d end
for _, kind in ipairs(kinds) do
  local a, b = by["si-" .. kind], by["naive-" .. kind]
  if a and b then
    print(string.format("si-%s (c %g): ACC %+.1f points over naive, forgetting %.1f -> %.1f points", kind,
      a.strategies[1].options.c, 100 * (a.avg_acc - b.avg_acc), 100 * b.forgetting, 100 * a.forgetting))
  end
end
if opts.out then engram.results.save(opts.out, #docs == 1 and docs[1] or docs) end
