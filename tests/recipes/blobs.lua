-- blobs.lua — a tiny recipe for the tests of `engram search` (not a demo).
--
-- Two tasks of Gaussian blobs (4 classes of 8 features, 2 classes per task,
-- class-IL), mlp{8, --hidden, 4}; two runs: "naive" fine-tuning and "ewc"
-- (EWC with strength --lambda; a negative --lambda makes the run fail, as a
-- bad setting would). About 0.1 s a run (--epochs 2).
--
--   build/engram tests/recipes/blobs.lua [--lambda 10] [--hidden 16] [--epochs 2] [--reference]
--       [--out r.json]
--
-- For the tests it also records, in every results document's extra:
--   test_touches       method calls on any task's test set (a spy wrapped
--                      around the dataset methods): 0 proves the run never
--                      read the test split
--   started, finished  engram.core.clock() (CLOCK_MONOTONIC, the same clock
--                      in every process) when the recipe began and ended
local engram = require("engram")
local S = engram.strategies
local started = engram.core.clock()

local opts = engram.options.parse(arg or {}, {
  name = "blobs",
  description = "Tiny EWC vs naive run on Gaussian blobs, for the tests of engram search.",
  options = {
    { "lambda", 10.0, "EWC strength (negative: the run fails)" },
    { "hidden", 16, "hidden units" },
    { "reference", false, "also train each task alone (NAR's references)" },
  },
  defaults = { epochs = 2, batch = 32, lr = 0.01 },
  runs = { "naive", "ewc" },
})
if opts.threads then engram.core.set_threads(math.tointeger(opts.threads)) end
engram.seed(opts.seed)

local all = engram.data.blobs { n = 1200, classes = 4, dim = 8, std = 1.5, seed = 7 }
local train, test = all:split(0.75, 3)
local scenario = engram.scenarios.split(train, test, { tasks = 2, seed = opts.seed })

-- The spy: every dataset method called on a task's test set is counted.
local test_sets = setmetatable({}, { __mode = "k" })
for _, task in ipairs(scenario.tasks) do test_sets[task.test] = true end
local touches = 0
local methods = getmetatable(train).__index
for name, f in pairs(methods) do
  if type(f) == "function" then
    methods[name] = function(self, ...)
      if test_sets[self] then touches = touches + 1 end
      return f(self, ...)
    end
  end
end

local docs = engram.learner.compare(scenario, {
  { name = "naive", strategies = function() return { S.naive() } end },
  { name = "ewc", strategies = function() return { S.ewc { lambda = opts.lambda, samples = 200 } } end },
}, {
  model = function() return engram.nn.mlp { 8, opts.hidden, 4 }:build { seed = opts.seed } end,
  opts = { epochs = opts.epochs, batch = opts.batch, lr = opts.lr, seed = opts.seed, quiet = true,
    reference = opts.reference },
  only = opts.only_set,
})
for _, d in ipairs(docs) do
  d.extra.test_touches = touches
  d.extra.started, d.extra.finished = started, engram.core.clock()
end
io.write(engram.results.compare_table(docs))
print("test set method calls: " .. touches)
if opts.out then engram.results.save(opts.out, docs) end
