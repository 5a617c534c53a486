-- engram.strategies: baselines (naive, joint, cumulative), experience replay
-- and EWC on small seeded synthetic benchmarks; each proving strategy must
-- really reduce forgetting against naive fine-tuning.
local lu = require("luaunit")
local engram = require("engram")
local S = engram.strategies

local function blobs(opts)
  local all = engram.data.blobs(opts)
  return all:split(0.8, 1)
end

-- class-IL: 6 blobs in 3 tasks of 2 classes
local function split_blobs()
  local train, test = blobs { n = 1200, classes = 6, dim = 8, std = 1.0, seed = 3 }
  return engram.scenarios.split(train, test, { tasks = 3 })
end

-- domain-IL: 4 overlapping blobs in 16-D, 4 tasks of permuted features
local function permuted_blobs()
  local train, test = blobs { n = 3000, classes = 4, dim = 16, std = 2.0, seed = 5 }
  return engram.scenarios.permuted(train, test, { tasks = 4 })
end

local function run(strategy, scen, out, lopts)
  local o = { epochs = 3, batch = 32, lr = 0.01, quiet = true, name = strategy.name }
  for k, v in pairs(lopts or {}) do o[k] = v end
  local model = engram.nn.mlp { scen.tasks[1].train:numel(), 32, out }:build { seed = 1 }
  local L = engram.learner(model, o)
  L:use(strategy)
  return L:run(scen), L
end

TestStrategies = {}

function TestStrategies.test_replay_reduces_forgetting_in_class_il()
  local scen = split_blobs()
  local naive = run(S.naive(), scen, 6)
  local replay = run(S.replay { memory = 100 }, scen, 6)
  lu.assertTrue(replay.forgetting < naive.forgetting - 0.2,
    string.format("forgetting: replay %.3f, naive %.3f", replay.forgetting, naive.forgetting))
  lu.assertTrue(replay.avg_acc > naive.avg_acc + 0.15,
    string.format("ACC: replay %.3f, naive %.3f", replay.avg_acc, naive.avg_acc))
end

function TestStrategies.test_ewc_reduces_forgetting_in_domain_il()
  local scen = permuted_blobs()
  local naive = run(S.naive(), scen, 4)
  local ewc = run(S.ewc { lambda = 100 }, scen, 4)
  lu.assertTrue(ewc.forgetting < naive.forgetting / 2,
    string.format("forgetting: ewc %.3f, naive %.3f", ewc.forgetting, naive.forgetting))
  lu.assertTrue(ewc.avg_acc > naive.avg_acc + 0.1,
    string.format("ACC: ewc %.3f, naive %.3f", ewc.avg_acc, naive.avg_acc))
end

function TestStrategies.test_online_ewc_reduces_forgetting_with_one_fisher()
  local scen = permuted_blobs()
  local naive = run(S.naive(), scen, 4)
  local s = S.ewc { lambda = 100, online = true, gamma = 1 }
  local ewc = run(s, scen, 4)
  lu.assertEquals(ewc.strategies[1].name, "online-ewc")
  -- one running Fisher and one anchor, whatever the number of tasks
  local names = {}
  for k in pairs(s:state()) do names[#names + 1] = k end
  table.sort(names)
  lu.assertEquals(names, { "anchor.base.1.bias", "anchor.base.1.weight", "anchor.base.3.bias", "anchor.base.3.weight",
    "importance.base.1.bias", "importance.base.1.weight", "importance.base.3.bias", "importance.base.3.weight" })
  lu.assertEquals(s:state()["importance.base.1.weight"]:size(), { 32, 16 })
  lu.assertEquals(#s.past, 0)
  lu.assertTrue(ewc.forgetting < naive.forgetting / 2)
end

function TestStrategies.test_replay_batches_are_current_plus_memory_of_the_same_size()
  local sizes = {}
  local probe = S.new("probe", {
    loss = function(_, ctx) sizes[ctx.t] = sizes[ctx.t] or { x = ctx.x:size(1), task = ctx.task_x:size(1) } end,
  })
  local scen = split_blobs()
  local model = engram.nn.mlp { 8, 16, 6 }:build { seed = 1 }
  local r = S.replay { memory = 50 }
  local L = engram.learner(model, { epochs = 1, batch = 20, quiet = true })
  L:use(r):use(probe)
  L:run(scen)
  lu.assertEquals(sizes[1].x, 20) -- memory empty during task 1 (filled at its end)
  lu.assertEquals(sizes[2].x, 40)
  lu.assertEquals(sizes[2].task, 20)
  lu.assertEquals(#r.mem, 50)
  lu.assertEquals(r.mem:seen(), 3 * 320)
  -- the memory holds samples of every task, with the scenario's labels
  local _, y, task = r.mem:tensors()
  local tasks, labels = {}, {}
  for i = 1, #r.mem do tasks[task:get(i)] = true; labels[y:get(i)] = true end
  lu.assertTrue(tasks[0] and tasks[1] and tasks[2])
  for c = 0, 5 do lu.assertTrue(labels[c], "class " .. c .. " in memory") end
end

function TestStrategies.test_stream_replay_fills_the_memory_during_the_task()
  local r = S.replay { memory = 30, update = "stream" }
  local scen = split_blobs()
  local model = engram.nn.mlp { 8, 16, 6 }:build { seed = 1 }
  engram.learner(model, { epochs = 1, batch = 20, quiet = true }):use(r):run(scen)
  lu.assertEquals(#r.mem, 30)
  lu.assertEquals(r.mem:seen(), 3 * 320)
end

function TestStrategies.test_ewc_penalty_is_added_from_the_second_task()
  local pen = {}
  local probe = S.new("probe", {
    after_step = function(_, ctx) pen[ctx.t] = math.max(pen[ctx.t] or 0, ctx.penalty) end,
  })
  local scen = permuted_blobs()
  local model = engram.nn.mlp { 16, 16, 4 }:build { seed = 1 }
  local L = engram.learner(model, { epochs = 1, batch = 32, lr = 0.01, quiet = true })
  L:use(S.ewc { lambda = 10 }):use(probe)
  L:run(scen)
  lu.assertEquals(pen[1], 0)
  lu.assertTrue(pen[2] > 0)
  lu.assertTrue(pen[4] > 0)
end

-- The act/observe rule (engram.schedule): EWC scheduled from task 2 on
-- estimates task 1's Fisher (after_task observes every task) and penalises
-- from task 2 (the loss hook acts in its task set): task 1 is protected.
function TestStrategies.test_ewc_from_task_2_protects_task_1()
  local pen = {}
  local probe = S.new("probe", {
    after_step = function(_, ctx) pen[ctx.t] = math.max(pen[ctx.t] or 0, ctx.penalty) end,
  })
  local scen = permuted_blobs()
  local function ewc_run(use_opts)
    local model = engram.nn.mlp { 16, 32, 4 }:build { seed = 1 }
    local L = engram.learner(model, { epochs = 3, batch = 32, lr = 0.01, quiet = true })
    L:use(S.ewc { lambda = 100 }, use_opts):use(probe)
    return L:run(scen)
  end
  local naive = run(S.naive(), scen, 4)
  local ewc = ewc_run { tasks = "2-" }
  lu.assertEquals(pen[1], 0, "no penalty while task 1 trains")
  lu.assertTrue(pen[2] > 0, "task 2 is penalised with task 1's Fisher")
  local T = #ewc.acc
  lu.assertTrue(ewc.acc[T][1] > naive.acc[T][1] + 0.1,
    string.format("task 1 at the end: ewc from task 2 %.3f, naive %.3f", ewc.acc[T][1], naive.acc[T][1]))
  lu.assertTrue(ewc.forgetting < naive.forgetting / 2,
    string.format("forgetting: ewc from task 2 %.3f, naive %.3f", ewc.forgetting, naive.forgetting))
  -- observe = false: EWC sees only its own tasks, so nothing protects task 1 in task 2
  pen = {}
  local blind = ewc_run { tasks = "2-", observe = false }
  lu.assertEquals(pen[2], 0, "no Fisher of task 1, no penalty in task 2")
  lu.assertTrue(pen[3] > 0)
  lu.assertTrue(ewc.acc[T][1] > blind.acc[T][1] + 0.05,
    string.format("task 1 at the end: observing %.3f, blind %.3f", ewc.acc[T][1], blind.acc[T][1]))
end

-- Replay scheduled from task 3 stores tasks 1 and 2 (after_task observes)
-- and replays them from task 3 on (before_batch acts only there).
function TestStrategies.test_replay_from_task_3_holds_tasks_1_and_2()
  local sizes = {}
  local probe = S.new("probe", {
    loss = function(_, ctx) sizes[ctx.t] = sizes[ctx.t] or ctx.x:size(1) end,
  })
  local all = engram.data.blobs { n = 1600, classes = 8, dim = 8, std = 1.0, seed = 3 }
  local train, test = all:split(0.8, 1)
  local scen = engram.scenarios.split(train, test, { tasks = 4 })
  local r = S.replay { memory = 200 }
  local seen_at_3
  local watch = S.new("watch", { before_task = function(_, ctx) if ctx.t == 3 then seen_at_3 = r.mem end end })
  local model = engram.nn.mlp { 8, 32, 8 }:build { seed = 1 }
  local L = engram.learner(model, { epochs = 2, batch = 20, lr = 0.01, quiet = true })
  L:use(watch):use(r, { tasks = "3-" }):use(probe)
  local doc = L:run(scen)
  lu.assertEquals(sizes[1], 20); lu.assertEquals(sizes[2], 20) -- not replayed before task 3
  lu.assertEquals(sizes[3], 40); lu.assertEquals(sizes[4], 40)
  lu.assertNotNil(seen_at_3, "the memory exists when task 3 starts")
  -- at the end of the run it holds all four tasks, tasks 1 and 2 among them
  local _, _, task = r.mem:tensors()
  local tasks = {}
  for i = 1, #r.mem do tasks[task:get(i)] = true end
  lu.assertTrue(tasks[0] and tasks[1], "tasks 1 and 2 in memory")
  -- and replaying them helps: task 1 at the end against naive
  local naive = run(S.naive(), scen, 8)
  lu.assertTrue(doc.acc[4][1] > naive.acc[4][1] + 0.2,
    string.format("task 1 at the end: replay from task 3 %.3f, naive %.3f", doc.acc[4][1], naive.acc[4][1]))
end

function TestStrategies.test_batched_fisher_equals_per_sample_loop()
  local scen = permuted_blobs()
  local model = engram.nn.mlp { 16, 12, 12, 4 }:build { seed = 2 }
  local task = scen.tasks[2]
  local ewc = require("engram.strategies.ewc")
  local Fa, ma = ewc.fisher(model, task, { samples = 300, path = "batched", seed = 4 })
  local Fb, mb = ewc.fisher(model, task, { samples = 300, path = "loop", seed = 4 })
  lu.assertEquals(ma, "batched")
  lu.assertEquals(mb, "loop")
  lu.assertTrue(Fa[1]:sum() > 0)
  lu.assertTrue(Fa[1]:allclose(Fb[1], 1e-4), "batched and per-sample Fisher differ")
  -- a squared minibatch gradient would be much smaller than the per-sample average
end

function TestStrategies.test_fisher_loop_handles_models_the_batched_path_cannot()
  local scen = permuted_blobs()
  local nn = engram.nn
  local model = nn.Sequential(nn.Concat(2, nn.Linear(16, 6), nn.Linear(16, 6)), nn.ReLU(), nn.Linear(12, 4))
  model:build { seed = 2 }
  local ewc = require("engram.strategies.ewc")
  local F, mode = ewc.fisher(model, scen.tasks[1], { samples = 50, quiet = true })
  lu.assertEquals(mode, "loop")
  lu.assertTrue(F[1]:sum() > 0)
  lu.assertErrorMsgContains("ewc: the batched path does not take Concat(dim 2)", ewc.fisher, model, scen.tasks[1],
    { samples = 10, path = "batched" })
end

function TestStrategies.test_joint_trains_once_on_everything_and_cumulative_on_all_seen()
  local steps = {}
  local probe = S.new("probe", { after_task = function(_, ctx) steps[#steps + 1] = ctx.step end })
  local scen = split_blobs()
  local function go(s)
    steps = {}
    local model = engram.nn.mlp { 8, 16, 6 }:build { seed = 1 }
    engram.learner(model, { epochs = 1, batch = 32, quiet = true }):use(s):use(probe):run(scen)
    return steps
  end
  local n = {}
  for t = 1, 3 do n[t] = #scen.tasks[t].train end
  local function batches(k) return (k + 31) // 32 end
  lu.assertEquals(go(S.joint()), { batches(n[1] + n[2] + n[3]), 0, 0 })
  lu.assertEquals(go(S.cumulative()), { batches(n[1]), batches(n[1] + n[2]), batches(n[1] + n[2] + n[3]) })
  lu.assertEquals(go(S.naive()), { batches(n[1]), batches(n[2]), batches(n[3]) })
end

function TestStrategies.test_joint_in_task_il_interleaves_batches_of_each_task()
  local all = engram.data.blobs { n = 1200, classes = 6, dim = 8, std = 1.0, seed = 3 }
  local train, test = all:split(0.8, 1)
  local scen = engram.scenarios.split(train, test, { tasks = 3, scenario = "task" })
  local seen = {}
  local probe = S.new("probe", { before_batch = function(_, ctx) seen[ctx.batch_task.index] = true end })
  local model = engram.nn.mlp { 8, 16, 6 }:build { seed = 1 }
  local doc = engram.learner(model, { epochs = 2, batch = 32, lr = 0.01, quiet = true })
    :use(S.joint()):use(probe):run(scen)
  lu.assertTrue(seen[1] and seen[2] and seen[3])
  lu.assertTrue(doc.avg_acc > 0.95)
end

function TestStrategies.test_strategy_options_are_checked()
  lu.assertErrorMsgContains(
    "replay: unknown option 'memroy' (known: balanced, batch, grid, grid_file, insert, levels, memory, " ..
      "per_class, score, seed, storage, update, weight)",
    S.replay, { memroy = 10 })
  lu.assertErrorMsgContains("replay: memory must be a positive integer", S.replay, { memory = 0 })
  lu.assertErrorMsgContains("ewc: unknown option 'lamda'", S.ewc, { lamda = 1 })
  lu.assertErrorMsgContains("ewc: gamma must be a number in [0, 1]", S.ewc, { gamma = 2 })
  lu.assertErrorMsgContains("unknown strategy 'ewk'", S.make, "ewk")
  lu.assertErrorMsgContains("naive: unknown option", S.naive, { x = 1 })
  lu.assertEquals(S.make("ewc", { lambda = 5 }).options.lambda, 5)
end
