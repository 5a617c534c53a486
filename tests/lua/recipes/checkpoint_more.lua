-- checkpoint_more.lua — a small recipe for tests/lua/test_checkpoint_more.lua:
-- the strategies whose checkpoints re-create or carry more than tensors,
-- each a run of 4 class-IL tasks of Gaussian blobs (select with --only):
--   gr-vae        generative replay with a VAE (its Adam, noise, frozen copy)
--   gr-gan        generative replay with a conditional GAN (two Adams, the
--                 moving average, the frozen copy), distillation
--   freeze        layer 1 frozen in task 2 only (and kept frozen after)
--   progressive   a column per task (the model grows)
--   plan          a plan: EWC and replay learn, a consolidation phase with
--                 its own SGD and lr after every task from 2, a val_drop rule
-- with the common options (--checkpoint, --resume, --start-task,
-- --stop-task, --out, --log). --params FILE writes every
-- run's final parameters to FILE. About 2 s for all five.
local engram = require("engram")
local S = engram.strategies
local nn = engram.nn

local opts = engram.options.parse(arg or {}, {
  name = "checkpoint_more",
  options = { { "params", nil, "write the runs' final parameters here", type = "string" },
    { "iterations", 40, "steps per task" } },
  defaults = { batch = 32, lr = 0.005, threads = 1 },
})
engram.core.set_threads(math.tointeger(opts.threads))
engram.seed(opts.seed)
local all = engram.data.blobs { n = 1200, classes = 8, dim = 16, std = 2.0, seed = 5 }
local train, test = all:split(0.8, 1)
local scenario = engram.scenarios.split(train, test, { tasks = 4, seed = opts.seed, validation = 0.2 })

local function mlp() return nn.mlp { 16, 32, 32, 8 }:build { seed = opts.seed } end
local runs = {
  { name = "gr-vae", strategies = function()
    return { S.generative_replay { generator = "vae", likelihood = "gaussian", latent = 4, hidden = { 16 },
      batch = 16 } }
  end },
  { name = "gr-gan", strategies = function()
    return { S.generative_replay { generator = "gan", conditional = true, distill = true, latent = 4,
      hidden = { 16 }, batch = 16 } }
  end },
  { name = "freeze", strategies = function()
    return { engram.schedule.only(S.freeze { layers = "1" }, "2"), S.si { c = 0.5 } }
  end },
  { name = "progressive", model = function()
    return nn.Sequential(nn.Progressive { 16, 64, 64, 8 }):build { seed = opts.seed }
  end, strategies = function() return { S.progressive {} } end },
  { name = "plan", strategies = function()
    return { engram.plan {
      strategies = { ewc = S.ewc { lambda = 10, samples = 50 }, replay = S.replay { memory = 60 } },
      phases = {
        learn = { use = { "ewc", "replay" } },
        consolidate = { use = { "replay" }, data = "none", iterations = 5, lr = 0.01, optimizer = "sgd" },
      },
      tasks = { { tasks = "1", run = { "learn" } }, { tasks = "2-", run = { "learn", "consolidate" } } },
      rules = { { when = { metric = "val_drop", above = 0.01 }, run = "consolidate", at_most = 3 } },
    } }
  end },
}
local models = {} -- {name, model} of every run made, for --params
for _, r in ipairs(runs) do
  local make = r.model or mlp
  r.model = function()
    local m = make()
    models[#models + 1] = { r.name, m }
    return m
  end
end
local log = opts.log and engram.json.lines(opts.log, { mode = "w" }) or false
local docs = engram.learner.compare(scenario, runs, {
  only = opts.only_set,
  opts = { iterations = math.tointeger(opts.iterations), batch = opts.batch, lr = opts.lr, seed = opts.seed,
    quiet = true, log = log },
})
if log then log:close() end
if opts.out then engram.results.save(opts.out, docs) end
if opts.params then
  -- the final parameters of every run, by run name
  local t = {}
  for _, e in ipairs(models) do
    for _, p in ipairs(e[2]:parameters()) do t[e[1] .. "." .. p.group .. "." .. p.name] = p.value end
  end
  engram.io.save(opts.params, t)
end
print(string.format("checkpoint_more: %d runs done", #docs))
