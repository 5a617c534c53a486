-- baselines.lua — the reference points every continual-learning method is
-- judged against, on Split Fashion-MNIST (5 tasks of 2 classes) in the three
-- scenarios (class-, task- and domain-IL):
--   naive       fine-tuning on each task in turn (the lower bound)
--   joint       all tasks' data at once (the upper bound)
--   cumulative  at task t, retrain on the data of tasks 1..t
--
--   build/engram recipes/baselines.lua [--scenario all|class|task|domain]
--       [--epochs 2] [--seed 1] [--only naive,joint] [--out results.json]
--
-- Takes about 40 s on 2 cores with the defaults (9 runs; cumulative trains
-- on 15 task-sized sets). Two epochs per task by default: with one, joint
-- (one pass over the whole training set) lands on either side of 85%
-- depending on the seed (85.2%, 85.7%, 83.4% for seeds 1-3); with two it
-- gives 86.7-86.9%. Expect (seed 1, measured) ACC: class-IL naive 19.9%,
-- joint 86.9%, cumulative 87.4%; task-IL naive 90.7%, joint 98.8%,
-- cumulative 99.3%; domain-IL naive 76.9%, joint 97.3%, cumulative 97.5%.
-- (Joint's matrix repeats one model in every row: read its ACC, not its
-- BWT/FWT.)
local engram = require("engram")
local S = engram.strategies

local opts = engram.options.parse(arg or {}, {
  name = "baselines",
  description = "Naive, joint and cumulative training on Split Fashion-MNIST in class-, task- and domain-IL.",
  options = {
    { "reference", false, "also train each task alone from scratch (per-task references for NAR)" },
  },
  defaults = { batch = 128, epochs = 2, lr = 0.001, scenario = "all", threads = 2 },
  runs = { "naive", "joint", "cumulative" },
})
if opts.threads then engram.core.set_threads(math.tointeger(opts.threads)) end
engram.seed(opts.seed)
local kinds = opts.scenario == "all" and { "class", "task", "domain" } or { opts.scenario }

local train, test = engram.data.fashion_mnist { normalize = true }

local log = opts.log and engram.json.lines(opts.log, { mode = "w" }) or false
local docs = {}
for _, kind in ipairs(kinds) do
  local ok, scen = pcall(engram.scenarios.split, train, test, { tasks = opts.tasks or 5, scenario = kind,
    seed = opts.seed })
  if not ok then opts.fail(scen) end
  local runs = {}
  for _, name in ipairs { "naive", "joint", "cumulative" } do
    runs[#runs + 1] = { name = name, strategies = function() return { S.make(name) } end }
  end
  local only
  if next(opts.only_set) ~= nil then only = opts.only_set end
  local these = engram.learner.compare(scen, runs, {
    model = function() return engram.nn.mlp { 784, 400, 400, scen.num_classes }:build { seed = opts.seed } end,
    opts = { epochs = opts.epochs, batch = opts.batch, lr = opts.lr, seed = opts.seed, quiet = opts.quiet,
      reference = opts.reference, log = log },
    only = only,
  })
  for _, d in ipairs(these) do
    d.name = d.name .. "-" .. kind
    docs[#docs + 1] = d
  end
end
if log then log:close() end

if not opts.quiet then
  for _, d in ipairs(docs) do engram.results.print(d); print() end
end
io.write(engram.results.compare_table(docs))
if opts.out then engram.results.save(opts.out, #docs == 1 and docs[1] or docs) end
