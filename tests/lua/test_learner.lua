-- engram.learner: the task -> epoch -> batch loop, the hook protocol (order,
-- context, composition), evaluation into the accuracy matrix, and the errors
-- raised before training. Small synthetic scenarios (Gaussian blobs), seeded.
local lu = require("luaunit")
local engram = require("engram")
local S = engram.strategies

-- 6 well-separated blobs in 8-D, split into 3 class-IL tasks of 2 classes.
local function blob_scenario(opts)
  local all = engram.data.blobs { n = 1200, classes = 6, dim = 8, std = 1.0, seed = 3 }
  local train, test = all:split(0.8, 1)
  local o = { tasks = 3 }
  for k, v in pairs(opts or {}) do o[k] = v end
  return engram.scenarios.split(train, test, o)
end

local function model(out)
  return engram.nn.mlp { 8, 32, out or 6 }:build { seed = 1 }
end

local function run(strategy, lopts, scen)
  local o = { epochs = 2, batch = 32, lr = 0.01, quiet = true }
  for k, v in pairs(lopts or {}) do o[k] = v end
  local L = engram.learner(model(), o)
  if strategy then L:use(strategy) end
  return L:run(scen or blob_scenario()), L
end

-- A strategy written in Lua that records every hook call as "tag:hook".
local function recorder(tag, calls)
  local s = { name = "rec-" .. tag }
  for _, h in ipairs(engram.learner.HOOKS) do
    s[h] = function(_, ctx) calls[#calls + 1] = tag .. ":" .. h .. ":" .. ctx.t end
  end
  return s
end

TestLearner = {}

function TestLearner.test_naive_forgets_and_joint_does_not()
  local naive = run(S.naive())
  local joint = run(S.joint())
  local R = naive.acc
  lu.assertEquals(#R, 3)
  lu.assertTrue(R[1][1] > 0.9, "task 1 is learnt")
  lu.assertTrue(R[3][1] < 0.5, "naive fine-tuning forgets task 1: " .. R[3][1])
  lu.assertTrue(naive.forgetting > 0.3)
  lu.assertTrue(naive.bwt < -0.3)
  lu.assertTrue(joint.avg_acc > 0.9, "joint ACC " .. joint.avg_acc)
  lu.assertTrue(joint.forgetting < 0.05)
  lu.assertTrue(joint.avg_acc > naive.avg_acc + 0.2)
end

function TestLearner.test_untrained_accuracies_and_unseen_tasks_are_measured()
  local doc = run(S.naive())
  lu.assertEquals(#doc.baseline_acc, 3)
  -- class-IL: an unseen task's classes were never targets, so after task 1
  -- the model cannot predict task 3's classes
  lu.assertTrue(doc.acc[1][3] < 0.2)
  lu.assertNotNil(doc.fwt)
  lu.assertEquals(doc.scenario.kind, "class-IL")
  lu.assertEquals(doc.strategies[1].name, "naive")
  lu.assertTrue(doc.train_seconds > 0)
  lu.assertEquals(doc.trainable_params, 8 * 32 + 32 + 32 * 6 + 6)
end

function TestLearner.test_hooks_run_in_documented_order_across_strategies()
  local calls = {}
  local L = engram.learner(model(), { epochs = 1, batch = 400, quiet = true })
  L:use(recorder("A", calls)):use(recorder("B", calls))
  L:run(blob_scenario())
  local i = 0
  local function expect(...)
    for _, want in ipairs { ... } do
      i = i + 1
      lu.assertEquals(calls[i], want, "call " .. i)
    end
  end
  expect("A:before_run:0", "B:before_run:0", "A:before_task:1", "B:before_task:1",
    "A:before_phase:1", "B:before_phase:1", "A:before_epoch:1", "B:before_epoch:1",
    "A:before_batch:1", "B:before_batch:1", "A:loss:1", "B:loss:1",
    "A:after_backward:1", "B:after_backward:1", "A:after_step:1", "B:after_step:1")
  -- 320 training samples per task in batches of 400: one batch, then the epoch ends
  expect("A:after_epoch:1", "B:after_epoch:1", "A:after_phase:1", "B:after_phase:1", "A:after_task:1",
    "B:after_task:1")
  for _ = 1, 3 do expect("A:before_eval:1", "B:before_eval:1", "A:after_eval:1", "B:after_eval:1") end
  expect("A:before_task:2", "B:before_task:2")
  lu.assertEquals(calls[#calls], "B:after_run:3")
  lu.assertEquals(calls[#calls - 1], "A:after_run:3")
end

function TestLearner.test_context_carries_what_strategies_need()
  local seen = {}
  local probe = S.new("probe", {
    loss = function(_, ctx)
      if seen.loss then return end
      seen.loss = true
      lu.assertIsTable(ctx.model)
      lu.assertIsNumber(ctx.loss)
      lu.assertEquals(ctx.x:size(1), 32)
      lu.assertEquals(ctx.y:size(1), 32)
      lu.assertEquals(ctx.logits:size(2), 6)
      lu.assertEquals(ctx.grad_logits:size(2), 6)
      lu.assertIsTable(ctx.optimizer)
      lu.assertIsTable(ctx.task)
      lu.assertEquals(ctx.t, 1)
      lu.assertEquals(ctx.T, 3)
      lu.assertIsFunction(ctx.log)
      lu.assertIsNumber(ctx.rng:uniform())
      lu.assertEquals(ctx.scenario.kind, "class")
    end,
    after_task = function(_, ctx) ctx.log("probe", { t = ctx.t }) end,
  })
  local _, L = run(probe)
  lu.assertTrue(seen.loss)
  local n = 0
  for _, e in ipairs(L.ctx.events) do if e.event == "probe" then n = n + 1 end end
  lu.assertEquals(n, 3)
end

function TestLearner.test_ctx_batches_gives_the_positions_of_the_batch_samples()
  -- the key to per-sample side information: the labels at batches:indices()
  -- in batches:dataset() are the batch's labels, for every batch of every task
  local checked, bad = 0, 0
  local probe = { name = "probe", before_batch = function(_, ctx)
    local ix, ds = ctx.batches:indices(), ctx.batches:dataset()
    lu.assertIs(ds, ctx.train_set)
    local labels = ds:labels()
    for k = 1, ix:size(1) do
      if labels:get(math.tointeger(ix:get(k))) ~= ctx.y:get(k) then bad = bad + 1 end
      checked = checked + 1
    end
  end }
  run(probe)
  lu.assertEquals(bad, 0)
  lu.assertEquals(checked, 2 * 960) -- 2 epochs over the 960 training samples
end

function TestLearner.test_after_backward_can_change_gradients()
  -- zeroing every gradient leaves the model untrained
  local freeze = S.new("zero-grads", {
    after_backward = function(_, ctx)
      for _, g in ipairs(ctx.model:groups()) do g.grads:zero_() end
    end,
  })
  local doc = run(freeze)
  for j = 1, 3 do lu.assertAlmostEquals(doc.acc[3][j], doc.baseline_acc[j], 1e-9) end
end

function TestLearner.test_loss_hook_adds_to_the_loss_value()
  local losses = {}
  local add = S.new("plus-one", {
    loss = function(_, ctx) ctx.loss = ctx.loss + 1; ctx.penalty = ctx.penalty + 1 end,
    after_step = function(_, ctx) losses[#losses + 1] = ctx.loss - ctx.task_loss end,
  })
  run(add)
  lu.assertTrue(#losses > 0)
  for _, d in ipairs(losses) do lu.assertAlmostEquals(d, 1, 1e-9) end
end

function TestLearner.test_before_task_can_skip_training()
  local skip = S.new("skip", { before_task = function(_, ctx) ctx.skip_training = ctx.t > 1 end })
  local doc = run(skip)
  lu.assertEquals(doc.acc[3][1], doc.acc[1][1])
end

function TestLearner.test_use_with_tasks_runs_a_strategy_only_for_those_tasks()
  local calls = {}
  local L = engram.learner(model(), { epochs = 1, quiet = true })
  L:use(recorder("X", calls), { tasks = "2-" })
  L:run(blob_scenario())
  local tasks = {}
  for _, c in ipairs(calls) do
    local h, t = c:match("^X:([%w_]+):(%d+)$")
    if h == "before_task" then tasks[#tasks + 1] = tonumber(t) end
  end
  lu.assertEquals(tasks, { 2, 3 })
  lu.assertEquals(calls[1], "X:before_run:0") -- run-level hooks reach every strategy
end

-- The act/observe rule: training hooks in the task set only, after_task and
-- the evaluation hooks every task (observe = false: the task set only).
function TestLearner.test_a_scheduled_strategy_acts_in_its_tasks_and_observes_every_task()
  local function tasks_by_hook(calls)
    local by = {}
    for _, c in ipairs(calls) do
      local h, t = c:match("^X:([%w_]+):(%d+)$")
      if h and tonumber(t) > 0 then
        by[h] = by[h] or {}
        local l = by[h]
        if l[#l] ~= tonumber(t) then l[#l + 1] = tonumber(t) end
      end
    end
    return by
  end
  local calls = {}
  engram.learner(model(), { epochs = 1, quiet = true }):use(recorder("X", calls), { tasks = "2-" })
    :run(blob_scenario())
  local by = tasks_by_hook(calls)
  for _, h in ipairs(engram.schedule.ACTING) do lu.assertEquals(by[h], { 2, 3 }, h .. " acts in tasks 2-3") end
  for _, h in ipairs(engram.schedule.OBSERVING) do lu.assertEquals(by[h], { 1, 2, 3 }, h .. " observes every task") end
  calls = {}
  engram.learner(model(), { epochs = 1, quiet = true })
    :use(recorder("X", calls), { tasks = "2-", observe = false }):run(blob_scenario())
  by = tasks_by_hook(calls)
  for _, h in ipairs(engram.schedule.OBSERVING) do lu.assertEquals(by[h], { 2, 3 }, h .. " with observe = false") end
end

function TestLearner.test_a_strategy_in_overlapping_phases_runs_once_per_hook()
  local calls = {}
  local x = recorder("X", calls)
  local sched = engram.schedule {
    { tasks = "1-2", use = { x } },
    { tasks = "2-", use = { x }, observe = false },
  }
  engram.learner(model(), { epochs = 1, quiet = true }):use(sched):run(blob_scenario())
  local n = {}
  for _, c in ipairs(calls) do n[c] = (n[c] or 0) + 1 end
  lu.assertEquals(n["X:before_task:2"], 1)
  lu.assertEquals(n["X:after_task:2"], 1)
  lu.assertEquals(n["X:before_task:3"], 1)
  lu.assertEquals(n["X:after_task:1"], 1) -- the first phase observes
  lu.assertErrorMsgContains("schedule: phase 1: observe must be true or false, got string", engram.schedule,
    { { tasks = "1", use = { x }, observe = "no" } })
  lu.assertErrorMsgContains("use: observe needs tasks", engram.learner(model()).use, engram.learner(model()), x,
    { observe = false })
end

-- The prediction hook: a strategy may decide how a test batch becomes
-- predicted classes (iCaRL's nearest mean of exemplars); the accuracy matrix
-- then counts its predictions.
function TestLearner.test_a_strategy_can_replace_the_prediction()
  local scen = blob_scenario()
  local seen = {}
  local always = S.new("first-class", {
    predict = function(_, x, logits, task)
      seen[#seen + 1] = { x:size(1), logits:size(2), task.index }
      return engram.zeros(x:size(1)):fill_(task.targets[1])
    end,
  })
  local L = engram.learner(model(), { epochs = 1, quiet = true })
  L:use(always)
  local doc = L:run(scen)
  -- each task's test set holds its two classes in about equal numbers
  for t = 1, 3 do
    for j = 1, 3 do lu.assertTrue(math.abs(doc.acc[t][j] - 0.5) < 0.15, "acc " .. t .. "," .. j) end
  end
  lu.assertEquals(seen[1][2], 6)
  -- through a schedule too
  local L2 = engram.learner(model(), { epochs = 1, quiet = true })
  L2:use(always, { tasks = "2-" })
  lu.assertTrue(math.abs(L2:run(scen).acc[1][1] - 0.5) < 0.15)
  local bad = S.new("bad", { predict = function() return engram.zeros(2) end })
  local L3 = engram.learner(model(), { epochs = 1, quiet = true })
  L3:use(bad)
  lu.assertErrorMsgContains("bad's predict returned 2 values, expected a tensor of", L3.run, L3, scen)
end

function TestLearner.test_schedule_switches_strategies_per_task()
  local a, b = {}, {}
  local sched = engram.schedule {
    { tasks = "1", use = { recorder("a", a) } },
    { tasks = "2-3", use = { recorder("b", b) } },
  }
  run(sched)
  local function tasks_of(calls)
    local seen = {}
    for _, c in ipairs(calls) do
      local t = c:match(":before_task:(%d+)$")
      if t then seen[#seen + 1] = tonumber(t) end
    end
    return seen
  end
  lu.assertEquals(tasks_of(a), { 1 })
  lu.assertEquals(tasks_of(b), { 2, 3 })
  local pred = engram.schedule.tasks("1,3-4,7-")
  lu.assertTrue(pred(1)); lu.assertFalse(pred(2)); lu.assertTrue(pred(4)); lu.assertTrue(pred(99))
  lu.assertErrorMsgContains("bad task set", engram.schedule.tasks, "x-y")
end

function TestLearner.test_model_output_width_mismatch_is_an_error_before_training()
  local calls = {}
  local L = engram.learner(model(10), { quiet = true })
  L:use(recorder("A", calls))
  lu.assertErrorMsgContains("the model outputs 10 values per sample but the scenario", L.run, L, blob_scenario())
  lu.assertEquals(#calls, 0)
  local L2 = engram.learner(engram.nn.mlp { 5, 6 }:build { seed = 1 }, { quiet = true })
  lu.assertErrorMsgContains("cannot take the scenario's inputs", L2.run, L2, blob_scenario())
end

function TestLearner.test_bad_options_and_strategies_are_errors()
  lu.assertErrorMsgContains("unknown option 'epoch'", engram.learner, model(), { epoch = 1 })
  lu.assertErrorMsgContains("optimizer must be", engram.learner, model(), { optimizer = "rmsprop" })
  lu.assertErrorMsgContains("expected a model", engram.learner, {})
  local L = engram.learner(model(), {})
  lu.assertErrorMsgContains("the table has no hook", L.use, L, { foo = 1 })
  lu.assertErrorMsgContains("hook 'loss' must be a function", L.use, L, { loss = 3 })
  lu.assertErrorMsgContains("expected a scenario", L.run, L, 42)
end

function TestLearner.test_iteration_budget_sets_steps_per_task()
  local steps = {}
  local count = S.new("count", { after_task = function(_, ctx) steps[ctx.t] = ctx.step end })
  run(count, { iterations = 7, batch = 64 })
  lu.assertEquals(steps, { 7, 7, 7 })
end

function TestLearner.test_early_stopping_on_validation_stops_and_keeps_the_best()
  local epochs = {}
  local count = S.new("epochs", { after_epoch = function(_, ctx) epochs[ctx.t] = ctx.epoch end })
  local doc = run(count, { epochs = 60, patience = 2, lr = 0.05 }, blob_scenario { validation = 0.2 })
  for t = 1, 3 do lu.assertTrue(epochs[t] < 60, "task " .. t .. " stopped at epoch " .. tostring(epochs[t])) end
  lu.assertTrue(doc.acc[1][1] > 0.9)
end

function TestLearner.test_reference_runs_give_nar()
  local doc = run(S.naive(), { reference = true })
  lu.assertEquals(#doc.reference_acc, 3)
  for j = 1, 3 do lu.assertTrue(doc.reference_acc[j] > 0.9) end
  lu.assertNotNil(doc.nar)
  lu.assertStrContains(doc.reference, "scratch")
end

function TestLearner.test_representation_drift_of_the_hidden_layer_is_recorded()
  local doc = run(S.naive())
  local d = doc.extra.drift
  lu.assertEquals(d[1], 0)
  lu.assertTrue(d[3] > 0)
  lu.assertEquals(doc.extra.drift_layer, 2)
end

function TestLearner.test_log_writes_json_lines_events()
  local path = os.tmpname()
  run(S.naive(), { log = path })
  local events = engram.json.read_lines(path)
  os.remove(path)
  local kinds = {}
  for _, e in ipairs(events) do kinds[e.event] = (kinds[e.event] or 0) + 1 end
  lu.assertEquals(kinds.task_start, 3)
  lu.assertEquals(kinds.task_end, 3)
  lu.assertEquals(kinds.epoch, 6)
end

function TestLearner.test_task_il_masks_training_and_evaluation()
  local doc = run(S.naive(), nil, blob_scenario { scenario = "task" })
  -- with the logits masked to the task's classes, fine-tuning forgets far less
  lu.assertTrue(doc.acc[3][1] > 0.8, "task-IL accuracy on task 1: " .. doc.acc[3][1])
  lu.assertEquals(doc.scenario.kind, "task-IL")
end

function TestLearner.test_domain_il_split_trains_on_relabelled_targets()
  local all = engram.data.blobs { n = 1200, classes = 6, dim = 8, std = 1.0, seed = 3 }
  local train, test = all:split(0.8, 1)
  local scen = engram.scenarios.split(train, test, { tasks = 3, scenario = "domain" })
  local L = engram.learner(engram.nn.mlp { 8, 32, 2 }:build { seed = 1 }, { epochs = 2, batch = 32, lr = 0.01,
    quiet = true })
  local doc = L:run(scen)
  lu.assertTrue(doc.acc[3][3] > 0.9)
end

function TestLearner.test_per_task_heads_train_each_task_on_its_own_head()
  local all = engram.data.blobs { n = 1200, classes = 6, dim = 8, std = 1.0, seed = 3 }
  local train, test = all:split(0.8, 1)
  local scen = engram.scenarios.split(train, test, { tasks = 3, scenario = "task" })
  local nn = engram.nn
  local m = nn.MultiHead(nn.Sequential(nn.Linear(8, 32), nn.ReLU()), { nn.Linear(32, 2) }):build { seed = 1 }
  m:add_group("head2", nn.Linear(32, 2), { seed = 2 })
  m:add_group("head3", nn.Linear(32, 2), { seed = 3 })
  local L = engram.learner(m, { epochs = 2, batch = 32, lr = 0.01, heads = true, quiet = true, drift_layer = false })
  L:use(S.ewc { lambda = 10 })
  local doc = L:run(scen)
  for j = 1, 3 do lu.assertTrue(doc.acc[j][j] > 0.9, "task " .. j .. " on its head: " .. doc.acc[j][j]) end
  lu.assertTrue(doc.acc[3][1] > 0.8)
  local flat = engram.learner(engram.nn.mlp { 8, 6 }:build { seed = 1 }, { heads = true, quiet = true })
  lu.assertErrorMsgContains("heads = true needs a model with a MultiHead", flat.run, flat, scen)
end

function TestLearner.test_old_model_is_a_frozen_copy_from_the_previous_task()
  local seen = {}
  local s = S.new("lwf-like", {
    needs_old_model = true,
    before_task = function(_, ctx)
      seen[ctx.t] = ctx.old_model
      if ctx.t == 2 then
        local x = ctx.tasks[1].test:range(1, 5, nil, nil, true)
        local a = ctx.old_model:forward(x):clone()
        local b = ctx.model:forward(x)
        lu.assertTrue(a:allclose(b), "old model = model right after task 1")
      end
    end,
    after_task = function(_, ctx)
      if ctx.t == 2 then
        local x = ctx.tasks[1].test:range(1, 5, nil, nil, true)
        lu.assertFalse(ctx.old_model:forward(x):clone():allclose(ctx.model:forward(x)), "the copy did not train")
      end
    end,
  })
  run(s)
  lu.assertNil(seen[1])
  lu.assertNotNil(seen[2])
  lu.assertNotEquals(seen[2], seen[3])
end

function TestLearner.test_eval_on_val_fills_the_matrix_from_the_validation_parts()
  local scen = blob_scenario { validation = 0.2 }
  local doc, L = run(S.naive(), { eval_on = "val" }, scen)
  for j, task in ipairs(scen.tasks) do
    lu.assertAlmostEquals(doc.acc[3][j], L:evaluate(task, task.val), 1e-12)
  end
  lu.assertEquals(doc.extra.options.eval_on, "val")
  -- the same run on the test parts gives the test accuracies
  local doc2, L2 = run(S.naive(), nil, scen)
  for j, task in ipairs(scen.tasks) do lu.assertAlmostEquals(doc2.acc[3][j], L2:evaluate(task), 1e-12) end
  lu.assertNil(doc2.extra.options.eval_on)
  -- no validation part: an error before training
  lu.assertErrorMsgContains("task 1 has no validation part", run, S.naive(), { eval_on = "val" })
  lu.assertErrorMsgContains("eval_on must be 'test' or 'val'", run, S.naive(), { eval_on = "train" })
end

function TestLearner.test_select_chooses_on_validation_and_names_the_best()
  local scen = blob_scenario { validation = 0.2 }
  local idle = { name = "idle", before_task = function(_, ctx) ctx.skip_training = true end }
  local cands = {
    { name = "idle", strategies = function() return { idle } end },
    { name = "joint", strategies = function() return { S.joint() } end },
    { name = "naive", strategies = function() return { S.naive() } end },
  }
  local best, scores, docs = engram.learner.select(scen, cands, {
    model = function() return model() end, opts = { epochs = 2, batch = 32, lr = 0.01, quiet = true } })
  lu.assertIs(best, cands[2]) -- joint keeps every task; naive forgets; idle never learns
  lu.assertEquals(#scores, 3)
  lu.assertEquals(scores[2].name, "joint")
  lu.assertTrue(scores[2].avg_acc > scores[3].avg_acc + 0.2)
  lu.assertTrue(scores[3].avg_acc > scores[1].avg_acc)
  for _, d in ipairs(docs) do lu.assertEquals(d.extra.options.eval_on, "val") end
  lu.assertErrorMsgContains("select: task 1 has no validation part", engram.learner.select, blob_scenario(), cands,
    { model = function() return model() end })
  lu.assertErrorMsgContains("non-empty list", engram.learner.select, scen, {}, {})
end

-- Once warm, a training step allocates no tensor storage: the loop, the
-- label maps of domain-IL and the strategies' hooks reuse their buffers.
function TestLearner.test_warm_training_steps_allocate_nothing()
  local function counts(strategy, scen_opts)
    local seen = {}
    local probe = { name = "probe", after_step = function(_, ctx)
      if ctx.t == 2 then seen[#seen + 1] = engram.core.alloc_count() end
    end }
    local out = scen_opts and scen_opts.scenario == "domain" and 2 or 6
    local L = engram.learner(model(out), { epochs = 4, batch = 32, lr = 0.01, quiet = true, drift_layer = false })
    if strategy then L:use(strategy) end
    L:use(probe)
    L:run(blob_scenario(scen_opts))
    return seen
  end
  for _, case in ipairs {
    { "naive class-IL", S.naive(), nil },
    { "naive domain-IL", S.naive(), { scenario = "domain" } },
    { "replay class-IL", S.replay { memory = 100 }, nil },
    { "replay task-IL (per-sample tasks)", S.replay { memory = 100 }, { scenario = "task" } },
    { "ewc domain-IL", S.ewc { lambda = 10 }, { scenario = "domain" } },
    { "si domain-IL", S.si { c = 1 }, { scenario = "domain" } },
  } do
    local seen = counts(case[2], case[3])
    lu.assertTrue(#seen > 20, case[1])
    -- after the first few steps of task 2 (buffers sized), the count stays put
    lu.assertEquals(seen[#seen], seen[5], case[1] .. ": storage allocated during warm steps")
  end
end

function TestLearner.test_same_seed_and_threads_give_bit_identical_runs()
  -- Products large enough for OpenBLAS to split over two threads (it runs
  -- products under 2^18 multiply-adds on one); replay and EWC together.
  local core = engram.core
  local threads = core.get_threads()
  local all = engram.data.blobs { n = 1500, classes = 6, dim = 64, std = 2.0, seed = 5 }
  local train, test = all:split(0.8, 1)
  local function once()
    local scen = engram.scenarios.split(train, test, { tasks = 3 })
    local m = engram.nn.mlp { 64, 256, 256, 6 }:build { seed = 2 }
    local L = engram.learner(m, { epochs = 2, batch = 128, lr = 1e-3, optimizer = "adam", quiet = true, seed = 4 })
    L:use(S.replay { memory = 120 }):use(S.ewc { lambda = 5 })
    local doc = L:run(scen)
    return doc.acc, m:flat():clone()
  end
  core.set_threads(2)
  local ok, err = pcall(function()
    local acc1, p1 = once()
    local acc2, p2 = once()
    lu.assertEquals(acc2, acc1)
    lu.assertEquals((p2 - p1):abs():max(), 0)
  end)
  core.set_threads(threads)
  if not ok then error(err, 0) end
end
