-- baselines.lua — the reference points every continual-learning method is
-- judged against, on Split Fashion-MNIST (5 tasks of 2 classes) in the three
-- scenarios (class-, task- and domain-IL):
--   naive       fine-tuning on each task in turn (the lower bound)
--   joint       all tasks' data at once (the upper bound)
--   cumulative  at task t, retrain on the data of tasks 1..t
--
--   build/engram recipes/baselines.lua [--scenario all|class|task|domain]
--       [--epochs 1] [--seed 1] [--only naive,joint] [--out results.json]
--
-- Takes about 1 to 1.5 minutes on 2 cores with the defaults (9 runs;
-- cumulative trains on 15 task-sized sets). Expect (seed 1, 1 epoch,
-- measured) ACC: class-IL naive 19.9%, joint 85.2%, cumulative 86.7%;
-- task-IL naive 93.9%, joint 98.9%, cumulative 99.1%; domain-IL naive 76.5%,
-- joint 97.0%, cumulative 97.4%. (Joint's matrix repeats one model in every
-- row: read its ACC, not its BWT/FWT.)
local engram = require("engram")
local S = engram.strategies

local opts = engram.options.parse(arg or {}, {
  name = "baselines",
  description = "Naive, joint and cumulative training on Split Fashion-MNIST in class-, task- and domain-IL.",
  options = {
    { "reference", false, "also train each task alone from scratch (per-task references for NAR)" },
  },
  defaults = { batch = 128, lr = 0.001, scenario = "all", threads = 2 },
  runs = { "naive", "joint", "cumulative" },
})
if opts.threads then engram.core.set_threads(math.tointeger(opts.threads)) end
engram.seed(opts.seed)
local kinds = opts.scenario == "all" and { "class", "task", "domain" } or { opts.scenario }

local MEAN, STD = 0.2860, 0.3530
local train, test = engram.data.fashion_mnist()
train, test = train:normalized(MEAN, STD), test:normalized(MEAN, STD)

local log = opts.log and engram.json.lines(opts.log, { mode = "w" }) or false
local docs = {}
for _, kind in ipairs(kinds) do
  local ok, scen = pcall(engram.scenarios.split, train, test, { tasks = opts.tasks or 5, scenario = kind,
    seed = opts.seed })
  if not ok then io.stderr:write("baselines: ", tostring(scen), "\n"); os.exit(2) end
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
