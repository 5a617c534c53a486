-- progressive.lua — progressive networks (Rusu et al. 2016) against full
-- fine-tuning of one network of the same column size: every task gets a
-- new column (an MLP {784, H, H, 10}) with lateral connections from the
-- hidden activations of every earlier column; the earlier columns are
-- frozen, and evaluating task j runs column j, so nothing is forgotten,
-- while later columns reuse what earlier ones learnt.
--
-- Runs (select with --only):
--   full-task, progressive-task   Split Fashion-MNIST, task-IL (5 tasks)
--   full-perm, progressive-perm   Permuted Fashion-MNIST, domain-IL with the
--                                 task known
-- "full" is naive fine-tuning of mlp{784, H, H, 10}; each column is reported
-- with the parameters it trained and the bytes stored for it.
--
--   build/engram recipes/progressive.lua [--hidden 100] [--epochs 1]
--       [--samples 60000] [--scenario all|task|permuted] [--only progressive-task]
--       [--seed 1] [--out results.json] [--log run.jsonl]
--
-- Takes about 35 s on 2 cores. Expect (seed 1, 1 epoch, hidden 100,
-- measured): zero forgetting (every task's accuracy after task 5 equals the
-- one right after learning it, bit for bit); column t trains 89,610 +
-- 11,000 (t - 1) parameters (its layers and its laterals); task-IL ACC
-- 99.0% against 97.7% for full fine-tuning of one column, permuted 84.5%
-- against 71.5%, each task >= 99.8% of full fine-tuning's accuracy on it.
local engram = require("engram")
local S = engram.strategies

local opts = engram.options.parse(arg or {}, {
  name = "progressive",
  description = "Progressive networks vs full fine-tuning on Split Fashion-MNIST (task-IL) and Permuted " ..
    "Fashion-MNIST.",
  options = {
    { "hidden", 100, "hidden width of every column" },
    { "samples", 60000, "permuted: training images per task" },
  },
  defaults = { batch = 128, lr = 0.001, threads = 2, scenario = "all" },
  runs = { "full-task", "progressive-task", "full-perm", "progressive-perm" },
})
if opts.threads then engram.core.set_threads(math.tointeger(opts.threads)) end
engram.seed(opts.seed)
local families = { all = { perm = true, task = true }, permuted = { perm = true }, task = { task = true } }
local family = families[opts.scenario]
if not family then opts.fail("--scenario must be all, task or permuted, got " .. tostring(opts.scenario)) end
local H = math.tointeger(opts.hidden)
if not H or H < 1 then opts.fail("--hidden must be a positive integer") end

local train, test = engram.data.fashion_mnist { normalize = true }
local T = opts.tasks or 5
local nn = engram.nn

local run, log = require("engram.recipe").runner(opts)

local docs, pairs_ = {}, {}
local function family_runs(tag, scenario)
  local full = run("full-" .. tag, nn.mlp { 784, H, H, 10 }:build { seed = opts.seed }, scenario, { S.naive() })
  local prog = run("progressive-" .. tag, nn.Sequential(nn.Progressive { 784, H, H, 10 }):build { seed = opts.seed },
    scenario, { S.progressive {} })
  if full then docs[#docs + 1] = full end
  if prog then docs[#docs + 1] = prog end
  pairs_[#pairs_ + 1] = { full = full, prog = prog }
end
if family.task then
  family_runs("task", engram.scenarios.split(train, test, { tasks = T, scenario = "task", seed = opts.seed }))
end
if family.perm then
  family_runs("perm", engram.scenarios.permuted(train, test, { tasks = T, samples = opts.samples, seed = opts.seed }))
end

for _, d in ipairs(docs) do engram.results.print(d); print() end
io.write(engram.results.compare_table(docs))
local column = nn.mlp { 784, H, H, 10 }:build { seed = 1 }:numel()
for _, p in ipairs(pairs_) do
  if p.prog then
    print("\n(the base model below is one column, " .. engram.results.thousands(column) .. " parameters)")
    print(table.concat(engram.results.isolation_vs(p.prog, p.full, column), "\n"))
  end
end
if log then log:close() end
if opts.out then engram.results.save(opts.out, #docs == 1 and docs[1] or docs) end
