-- mas.lua — memory aware synapses (Aljundi et al. 2018) against naive
-- fine-tuning and joint training where MAS is meant to work: Permuted
-- Fashion-MNIST (domain-IL, 5 tasks) and Split Fashion-MNIST task-IL (5 tasks
-- of 2 classes, logits masked to the task's). After each task MAS measures how
-- much the output's squared norm moves with each weight (the mean of each
-- sample's own |∂‖f(x)‖²/∂θ| over --importance samples, no labels needed) and
-- pays λ Σ Ω (θ − θ*)² for moving it later.
--
-- Runs (select with --only): naive-domain, mas-domain, joint-domain,
-- naive-task, mas-task, joint-task.
--
--   build/engram recipes/mas.lua [--lambda L] [--importance 1000] [--scenario all|domain|task]
--       [--epochs 2] [--samples 60000] [--seed 1] [--only mas-task,naive-task]
--       [--out results.json] [--log run.jsonl]
--
-- mlp{784, 400, 400, 10}, Adam lr 0.001, batch 128, 2 epochs per task; λ is
-- --lambda or, by default, engram.strategies.defaults.mas for the scenario's kind
-- (chosen on validation splits: docs/defaults.md).
-- Takes about 2 minutes on 2 cores (--scenario task: 30 s). Expect (seed 1,
-- measured; ACC, forgetting in points): domain-IL (λ 0.01) naive 63.8%
-- (29.0), MAS 82.1% (2.5), joint 86.1%; task-IL (λ 100) naive 91.6% (9.3),
-- MAS 99.1% (0.1), joint 98.8%. Over seeds 1-3 see recipes/regularisation.lua.
local engram = require("engram")
local S = engram.strategies

local opts = engram.options.parse(arg or {}, {
  name = "mas",
  description = "MAS vs naive and joint on Permuted Fashion-MNIST (domain-IL) and Split Fashion-MNIST (task-IL).",
  options = {
    { "lambda", nil, "MAS's strength (default: engram.strategies.defaults.mas for the scenario's kind)",
      type = "number" },
    { "importance", 1000, "training samples MAS measures the importance on" },
    { "samples", 60000, "permuted: training images per task" },
  },
  defaults = { batch = 128, epochs = 2, lr = 0.001, threads = 2, scenario = "all" },
  runs = { "naive-domain", "mas-domain", "joint-domain", "naive-task", "mas-task", "joint-task" },
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
    { name = "mas-" .. kind,
      strategies = function() return { S.mas { lambda = opts.lambda, samples = opts.importance } } end },
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
  local a, b = by["mas-" .. kind], by["naive-" .. kind]
  if a and b then
    print(string.format("mas-%s (lambda %g): ACC %+.1f points over naive, forgetting %.1f -> %.1f points", kind,
      a.strategies[1].options.lambda, 100 * (a.avg_acc - b.avg_acc), 100 * b.forgetting, 100 * a.forgetting))
  end
end
if opts.out then engram.results.save(opts.out, #docs == 1 and docs[1] or docs) end
