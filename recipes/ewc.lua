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
--       [--only naive-perm,ewc-perm] [--select 1,10,100,1000 [--validation 0.1]]
--       [--out results.json] [--log run.jsonl]
--
-- Takes about 1 minute on 2 cores (each permuted run ~15 s: 5 x 60,000
-- images). Expect (seed 1, lambda 100, measured): permuted naive 67.5%, EWC
-- 76.8% (+9.3 points; forgetting 22.0 -> 8.1), online EWC 81.9% (+14.3;
-- forgetting 1.6); task-IL naive 93.9%, EWC 97.7% (+3.8; forgetting 6.5 ->
-- 1.7). In class-IL EWC does not help (bench/cl_bench.lua: 19.9%, like naive),
-- as van de Ven & Tolias report.
--
-- --select chooses λ without looking at the test sets: for every EWC run it
-- trains one learner per candidate on the same scenario with a validation
-- share held out of each task's training part (engram.learner.select, the
-- accuracy matrix filled from the validation parts), keeps the λ with the
-- best average accuracy after the last task, then runs on the full training
-- parts and reports on the test sets as usual.
local engram = require("engram")
local S = engram.strategies

local opts = engram.options.parse(arg or {}, {
  name = "ewc",
  description = "EWC vs naive fine-tuning on Permuted Fashion-MNIST (domain-IL) and Split Fashion-MNIST (task-IL).",
  options = {
    { "lambda", 100.0, "EWC penalty strength" },
    { "select", {}, "choose lambda among these values (e.g. 1,10,100,1000) on a validation share of each task's " ..
      "training data, separately for every EWC run, then run with the choice" },
    { "validation", 0.1, "--select: share of each task's training data held out for the choice" },
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

local train, test = engram.data.fashion_mnist { normalize = true }
local T = opts.tasks or 5
local families = { all = { perm = true, task = true }, permuted = { perm = true }, task = { task = true } }
local family = families[opts.scenario]
if not family then
  opts.fail("--scenario must be all, permuted or task, got " .. tostring(opts.scenario))
end
local lambdas = {}
for i, v in ipairs(opts.select) do
  lambdas[i] = tonumber(v)
  if not lambdas[i] or lambdas[i] <= 0 then
    opts.fail("--select takes positive numbers, got '" .. v .. "'")
  end
end
if opts.validation <= 0 or opts.validation >= 1 then
  opts.fail("--validation must be a share between 0 and 1, got " .. opts.validation)
end

local lazy = {}
local function permuted(val) -- val: a validation share, or nothing (compare passes the run table)
  val = type(val) == "number" and val or nil
  local k = val and "pv" or "p"
  lazy[k] = lazy[k] or engram.scenarios.permuted(train, test, { tasks = T, samples = opts.samples, seed = opts.seed,
    validation = val })
  return lazy[k]
end
local function split_task(val)
  val = type(val) == "number" and val or nil
  local k = val and "sv" or "s"
  lazy[k] = lazy[k] or engram.scenarios.split(train, test, { tasks = T, scenario = "task", seed = opts.seed,
    validation = val })
  return lazy[k]
end

local function model() return engram.nn.mlp { 784, 400, 400, 10 }:build { seed = opts.seed } end
local function ewc_list(lambda, online)
  return { S.ewc { lambda = lambda, samples = opts.fisher, online = online, gamma = opts.gamma } }
end

-- λ for one EWC run: --lambda, or the best of --select on validation data.
local function choose(run, make_scenario, online)
  if #lambdas == 0 or not opts.selected(run) then return opts.lambda end
  local cands = {}
  for i, l in ipairs(lambdas) do
    cands[i] = { name = string.format("%s-lambda%g", run, l), lambda = l,
      strategies = function() return ewc_list(l, online) end }
  end
  local best, scores = engram.learner.select(make_scenario(opts.validation), cands, {
    model = model, opts = { epochs = opts.epochs, batch = opts.batch, lr = opts.lr, seed = opts.seed,
      quiet = opts.quiet, drift_layer = false } })
  print(string.format("%s: lambda chosen on a %g validation share (ACC on validation after the last task):",
    run, opts.validation))
  for i, sc in ipairs(scores) do
    print(string.format("  lambda %-8g ACC %5.1f%%  forgetting %5.1f%s", lambdas[i], 100 * sc.avg_acc,
      100 * sc.forgetting, cands[i] == best and "   <- chosen" or ""))
  end
  return best.lambda
end

local function ewc(online, lambda)
  return function() return ewc_list(lambda, online) end
end
local naive = function() return { S.naive() } end

local log = opts.log and engram.json.lines(opts.log, { mode = "w" }) or false
local common = {
  model = model,
  opts = { epochs = opts.epochs, batch = opts.batch, lr = opts.lr, seed = opts.seed, quiet = opts.quiet,
    reference = opts.reference, log = log },
  only = opts.only_set,
}
local perm = not family.perm and {} or engram.learner.compare(permuted, {
  { name = "naive-perm", strategies = naive, scenario = permuted },
  { name = "ewc-perm", strategies = ewc(false, choose("ewc-perm", permuted, false)), scenario = permuted },
  { name = "online-perm", strategies = ewc(true, choose("online-perm", permuted, true)), scenario = permuted },
}, common)
-- CER of each family against its own naive run
local task = not family.task and {} or engram.learner.compare(split_task, {
  { name = "naive-task", strategies = naive, scenario = split_task },
  { name = "ewc-task", strategies = ewc(false, choose("ewc-task", split_task, false)), scenario = split_task },
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
