-- ewc.lua — elastic weight consolidation against naive fine-tuning, where
-- EWC is known to help: Permuted Fashion-MNIST (domain-IL: same labels, each
-- task a fixed pixel permutation) and Split Fashion-MNIST in task-IL (the
-- task's classes known at test time, logits masked to them).
--
-- Runs (select with --only):
--   naive-perm, ewc-perm, online-perm   Permuted Fashion-MNIST, 5 tasks
--   naive-task, ewc-task                Split Fashion-MNIST task-IL, 5 tasks
-- EWC uses the empirical Fisher (per-sample squared gradients over --fisher
-- training samples, computed per Linear layer in one product) and adds
-- (λ/2) Σ F (θ − θ*)² per past task (online: one running Fisher, γ = --gamma).
--
--   build/engram recipes/ewc.lua [--lambda 100] [--fisher 1000] [--gamma 1]
--       [--samples 60000] [--epochs 1] [--seed 1] [--scenario all|permuted|task]
--       [--only naive-perm,ewc-perm]
--       [--out results.json] [--log run.jsonl]
--
-- Takes about 1 minute on 2 cores (each permuted run ~15 s: 5 x 60,000
-- images). Expect (seed 1, lambda 100, measured): permuted naive 67.5%, EWC
-- 76.8% (+9.3 points; forgetting 22.0 -> 8.1), online EWC 81.9% (+14.3;
-- forgetting 1.6); task-IL naive 93.9%, EWC 97.7% (+3.8; forgetting 6.5 ->
-- 1.7). In class-IL EWC does not help (bench/cl_bench.lua: 19.9%, like naive),
-- as van de Ven & Tolias report.
local engram = require("engram")
local S = engram.strategies

local opts = engram.options.parse(arg or {}, {
  name = "ewc",
  description = "EWC vs naive fine-tuning on Permuted Fashion-MNIST (domain-IL) and Split Fashion-MNIST (task-IL).",
  options = {
    { "lambda", 100, "EWC penalty strength" },
    { "fisher", 1000, "training samples for the Fisher estimate" },
    { "gamma", 1.0, "online EWC: decay of the running Fisher" },
    { "samples", 60000, "permuted: training images per task" },
    { "reference", false, "also train each task alone from scratch (per-task references for NAR)" },
  },
  defaults = { batch = 128, lr = 0.001, threads = 2, scenario = "all" },
  runs = { "naive-perm", "ewc-perm", "online-perm", "naive-task", "ewc-task" },
})
if opts.threads then engram.core.set_threads(math.tointeger(opts.threads)) end
engram.seed(opts.seed)

local MEAN, STD = 0.2860, 0.3530
local train, test = engram.data.fashion_mnist()
train, test = train:normalized(MEAN, STD), test:normalized(MEAN, STD)
local T = opts.tasks or 5
local families = { all = { perm = true, task = true }, permuted = { perm = true }, task = { task = true } }
local family = families[opts.scenario]
if not family then
  io.stderr:write("ewc: --scenario must be all, permuted or task, got " .. tostring(opts.scenario) .. "\n")
  os.exit(2)
end
local lazy = {}
local function permuted()
  lazy.p = lazy.p or engram.scenarios.permuted(train, test, { tasks = T, samples = opts.samples, seed = opts.seed })
  return lazy.p
end
local function split_task()
  lazy.s = lazy.s or engram.scenarios.split(train, test, { tasks = T, scenario = "task", seed = opts.seed })
  return lazy.s
end

local function ewc(online)
  return function()
    return { S.ewc { lambda = opts.lambda, samples = opts.fisher, online = online, gamma = opts.gamma } }
  end
end
local naive = function() return { S.naive() } end

local log = opts.log and engram.json.lines(opts.log, { mode = "w" }) or false
local common = {
  model = function() return engram.nn.mlp { 784, 400, 400, 10 }:build { seed = opts.seed } end,
  opts = { epochs = opts.epochs, batch = opts.batch, lr = opts.lr, seed = opts.seed, quiet = opts.quiet,
    reference = opts.reference, log = log },
  only = opts.only_set,
}
local perm = not family.perm and {} or engram.learner.compare(permuted, {
  { name = "naive-perm", strategies = naive, scenario = permuted },
  { name = "ewc-perm", strategies = ewc(false), scenario = permuted },
  { name = "online-perm", strategies = ewc(true), scenario = permuted },
}, common)
-- CER of each family against its own naive run
local task = not family.task and {} or engram.learner.compare(split_task, {
  { name = "naive-task", strategies = naive, scenario = split_task },
  { name = "ewc-task", strategies = ewc(false), scenario = split_task },
}, common)
engram.learner.with_naive(perm, "naive-perm")
engram.learner.with_naive(task, "naive-task")
if log then log:close() end

local docs = {}
for _, d in ipairs(perm) do docs[#docs + 1] = d end
for _, d in ipairs(task) do docs[#docs + 1] = d end
for _, d in ipairs(docs) do engram.results.print(d); print() end
io.write(engram.results.compare_table(docs))
local by = {}
for _, d in ipairs(docs) do by[d.name] = d end
for _, pair in ipairs { { "ewc-perm", "naive-perm" }, { "online-perm", "naive-perm" }, { "ewc-task", "naive-task" } } do
  local a, b = by[pair[1]], by[pair[2]]
  if a and b then
    print(string.format("%-12s vs %-10s: ACC %+.1f points, forgetting %.1f -> %.1f points", pair[1], pair[2],
      100 * (a.avg_acc - b.avg_acc), 100 * b.forgetting, 100 * a.forgetting))
  end
end
if opts.out then engram.results.save(opts.out, #docs == 1 and docs[1] or docs) end
