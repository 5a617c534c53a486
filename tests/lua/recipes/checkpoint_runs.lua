-- checkpoint_runs.lua — a small recipe for tests/lua/test_checkpoint.lua:
-- three runs of 4 class-IL tasks of Gaussian blobs (EWC with LoRA sets from
-- task 2 on; LwF with SI; replay with EWC, when replay can be checkpointed),
-- with the common options (--checkpoint, --resume, --start-task,
-- --stop-task, --out, --log). --params FILE writes every run's final
-- parameters to FILE (safetensors, "<run>.<group>.<param>"). About 1 s.
local engram = require("engram")
local S = engram.strategies

local opts = engram.options.parse(arg or {}, {
  name = "checkpoint_runs",
  options = { { "params", nil, "write the runs' final parameters here", type = "string" },
    { "iterations", 150, "steps per task" } },
  defaults = { batch = 64, lr = 0.005, threads = 1 },
})
engram.core.set_threads(math.tointeger(opts.threads))
engram.seed(opts.seed)
local all = engram.data.blobs { n = 2400, classes = 8, dim = 16, std = 2.0, seed = 5 }
local train, test = all:split(0.8, 1)
local scenario = engram.scenarios.split(train, test, { tasks = 4, seed = opts.seed })

local replay_ok = type(S.replay {}.load_state) == "function"
local runs = {
  { name = "ewc-lora", strategies = function()
    return { S.ewc { lambda = 50, samples = 200 }, engram.schedule.only(S.lora { rank = 4 }, "2-") }
  end },
  { name = "lwf-si", strategies = function() return { S.lwf {}, S.si { c = 0.5 } } end },
}
if replay_ok then
  runs[#runs + 1] = { name = "replay-ewc", strategies = function()
    return { S.replay { memory = 200 }, S.ewc { lambda = 10, samples = 100 } }
  end }
end
local models = {}
local log = opts.log and engram.json.lines(opts.log, { mode = "w" }) or false
local docs = engram.learner.compare(scenario, runs, {
  model = function()
    local m = engram.nn.mlp { 16, 128, 128, 8 }:build { seed = opts.seed }
    models[#models + 1] = m
    return m
  end,
  opts = { iterations = math.tointeger(opts.iterations), batch = opts.batch, lr = opts.lr, seed = opts.seed,
    quiet = true, log = log },
})
if log then log:close() end
if opts.out then engram.results.save(opts.out, docs) end
if opts.params then
  local t = {}
  for i, m in ipairs(models) do
    for _, p in ipairs(m:parameters()) do t[runs[i].name .. "." .. p.group .. "." .. p.name] = p.value end
  end
  engram.io.save(opts.params, t)
end
print(string.format("checkpoint_runs: %d runs done%s", #docs, replay_ok and "" or " (replay left out)"))
