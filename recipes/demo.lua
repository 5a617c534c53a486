-- demo.lua — catastrophic forgetting and experience replay, in one minute.
--
-- Trains mlp{784, 400, 400, 10} on Split Fashion-MNIST (5 tasks of 2 classes,
-- class-incremental: no task identity at test time), one epoch per task,
-- twice: naive fine-tuning, then experience replay with a 1,000-sample
-- reservoir memory held in C. After each task it shows the accuracy on every
-- task as bars, then the accuracy matrices and a comparison table.
--
--   build/engram recipes/demo.lua [--seed 1] [--epochs 1] [--memory 1000] [--scenario class|task|domain]
--       [--quiet] [--out results.json] [--log run.jsonl] [--only naive,replay]
--   (make demo runs it with the defaults)
--
-- Takes about 8 s on 2 cores (measured: 3 s naive, 4.5 s replay, evaluation
-- included, plus data loading). Expect naive to end near 20% average accuracy (each new task
-- wipes out the previous ones: BWT near -99 points) and replay near 79%
-- (seed 1: naive 19.9%, replay 78.9%).
local engram = require("engram")
local S = engram.strategies

local opts = engram.options.parse(arg or {}, {
  name = "demo",
  description = "Naive fine-tuning vs experience replay on Split Fashion-MNIST (class-IL).",
  options = {
    { "memory", 1000, "replay memory size (samples)" },
    { "reference", false, "also train each task alone from scratch (per-task references for NAR)" },
  },
  defaults = { batch = 128, lr = 0.001, threads = 2, scenario = "class" },
  runs = { "naive", "replay" },
})
if opts.threads then engram.core.set_threads(math.tointeger(opts.threads)) end
engram.seed(opts.seed)

local train, test = engram.data.fashion_mnist { normalize = true }
local ok, scenario = pcall(engram.scenarios.split, train, test,
  { tasks = opts.tasks or 5, scenario = opts.scenario, seed = opts.seed })
if not ok then opts.fail(scenario) end

local log = opts.log and engram.json.lines(opts.log, { mode = "w" }) or false
local function say(...) if not opts.quiet then print(...) end end

say(string.format("demo: %s; mlp{784, 400, 400, 10}, %d epoch(s) per task, batch %d, Adam lr %g",
  tostring(scenario), opts.epochs, opts.batch, opts.lr))

local function bars(doc)
  local R, T = doc.acc, #doc.acc
  say(string.format("\n%s: accuracy on each task after training task i", doc.name))
  for i = 1, T do
    local cells = {}
    for j = 1, T do
      local n = math.floor(R[i][j] * 10 + 0.5)
      cells[j] = string.rep("#", n) .. string.rep(".", 10 - n)
    end
    say(string.format("  after task %d  %s  avg %5.1f%%", i, table.concat(cells, " "), 100 * doc.avg_acc_per_task[i]))
  end
end

local docs = engram.learner.compare(scenario, {
  { name = "naive", strategies = function() return { S.naive() } end },
  { name = "replay", strategies = function() return { S.replay { memory = opts.memory } } end },
}, {
  model = function() return engram.nn.mlp { 784, 400, 400, scenario.num_classes }:build { seed = opts.seed } end,
  opts = { epochs = opts.epochs, batch = opts.batch, lr = opts.lr, seed = opts.seed, quiet = opts.quiet,
    reference = opts.reference, log = log },
  only = opts.only_set,
})
if log then log:close() end

for _, d in ipairs(docs) do bars(d) end
say("")
for _, d in ipairs(docs) do engram.results.print(d); print() end
io.write(engram.results.compare_table(docs))
if #docs == 2 then
  print(string.format("\nreplay vs naive: %+.1f points of average accuracy, forgetting %.1f -> %.1f points",
    100 * (docs[2].avg_acc - docs[1].avg_acc), 100 * docs[1].forgetting, 100 * docs[2].forgetting))
end
if opts.out then engram.results.save(opts.out, #docs == 1 and docs[1] or docs) end
