-- The regularisation family: SI, MAS and an importance of the user's own on
-- the shared quadratic penalty, and LwF, reduce forgetting against naive
-- fine-tuning on a small domain-IL benchmark; LwF's distillation is the
-- KLDistill of each old task's outputs; MAS's importance is each sample's own
-- |gradient| (batched = loop = by hand); SI's path integral uses the task
-- loss's gradient without the penalty; the state is named tensors; bad
-- options are errors naming them.
local lu = require("luaunit")
local engram = require("engram")
local S = engram.strategies

-- domain-IL: 4 overlapping blobs in 16-D, 4 tasks of permuted features
local function permuted_blobs()
  local all = engram.data.blobs { n = 3000, classes = 4, dim = 16, std = 2.0, seed = 5 }
  local train, test = all:split(0.8, 1)
  return engram.scenarios.permuted(train, test, { tasks = 4 })
end

local function run(strategy, scen, use_opts, lopts)
  local o = { epochs = 3, batch = 32, lr = 0.01, quiet = true }
  for k, v in pairs(lopts or {}) do o[k] = v end
  local model = engram.nn.mlp { 16, 32, 4 }:build { seed = 1 }
  local L = engram.learner(model, o)
  L:use(strategy, use_opts)
  return L:run(scen), L
end

local naive_doc
local function naive(scen)
  naive_doc = naive_doc or run(S.naive(), scen)
  return naive_doc
end

local function less_forgetting(doc, base, what)
  lu.assertTrue(doc.forgetting < base.forgetting / 2,
    string.format("%s forgetting %.3f, naive %.3f", what, doc.forgetting, base.forgetting))
  lu.assertTrue(doc.avg_acc > base.avg_acc + 0.1,
    string.format("%s ACC %.3f, naive %.3f", what, doc.avg_acc, base.avg_acc))
end

TestRegularisation = {}

function TestRegularisation.test_si_reduces_forgetting_in_domain_il()
  local scen = permuted_blobs()
  less_forgetting(run(S.si { c = 1 }, scen), naive(scen), "SI")
end

function TestRegularisation.test_mas_reduces_forgetting_in_domain_il()
  local scen = permuted_blobs()
  local s = S.mas { lambda = 0.1 } -- 1 and above hold the weights so still that no task is learnt well
  less_forgetting(run(s, scen), naive(scen), "MAS")
  lu.assertEquals(s.path_used, "batched")
end

function TestRegularisation.test_an_importance_of_ones_is_an_l2_pull_that_reduces_forgetting()
  local scen = permuted_blobs()
  local l2 = S.quadratic { name = "l2", lambda = 1, online = true, importance = function(ctx)
    local out = {}
    for i, g in ipairs(ctx.model:groups()) do out[i] = engram.ones(g.numel) end
    return out
  end }
  local doc = run(l2, scen)
  lu.assertEquals(doc.strategies[1].name, "l2")
  lu.assertTrue(doc.forgetting < naive(scen).forgetting - 0.1,
    string.format("L2 forgetting %.3f, naive %.3f", doc.forgetting, naive(scen).forgetting))
end

function TestRegularisation.test_a_wrong_importance_is_an_error_naming_the_group()
  local scen = permuted_blobs()
  local bad = S.quadratic { importance = function() return { engram.ones(3) } end }
  lu.assertErrorMsgContains("quadratic: the importance of group 1 ('base') has 3 values, the group 676",
    run, bad, scen, nil, { epochs = 1 })
  bad = S.quadratic { importance = function() return 1 end }
  lu.assertErrorMsgContains("quadratic: the importance must be a list of flat tensors", run, bad, scen, nil,
    { epochs = 1 })
end

-- MAS: the batched path, the loop and a brute-force sum of per-sample
-- |d ||f(x_n)||^2 / d theta| agree.
function TestRegularisation.test_mas_importance_is_the_mean_of_per_sample_absolute_gradients()
  local all = engram.data.blobs { n = 40, classes = 3, dim = 5, std = 1.0, seed = 2 }
  local task = { train = all, index = 1 }
  local model = engram.nn.mlp { 5, 7, 3, activation = "tanh" }:build { seed = 3 }
  local mas = require("engram.strategies.mas")
  local Fb, pb = mas.importance(model, task, { samples = "all", path = "batched" })
  local Fl, pl = mas.importance(model, task, { samples = "all", path = "loop" })
  lu.assertEquals({ pb, pl }, { "batched", "loop" })
  -- by hand, one sample at a time, in double
  local params, grads = model:flat()
  local want = {}
  for i = 1, params:numel() do want[i] = 0 end
  model:evaluate()
  for x in all:chunks { batch = 1, flat = true } do
    model:zero_grad()
    local y = model:forward(x)
    model:backward(x, y * 2, false)
    local g = grads:totable()
    for i = 1, #g do want[i] = want[i] + math.abs(g[i]) / #all end
  end
  local b, l = Fb[1]:totable(), Fl[1]:totable()
  for i = 1, #want do
    lu.assertAlmostEquals(b[i], want[i], 1e-5 * (1 + math.abs(want[i])))
    lu.assertAlmostEquals(l[i], want[i], 1e-5 * (1 + math.abs(want[i])))
  end
end

function TestRegularisation.test_mas_in_task_il_counts_the_task_outputs_only()
  local all = engram.data.blobs { n = 20, classes = 4, dim = 5, std = 1.0, seed = 2 }
  local model = engram.nn.mlp { 5, 6, 4 }:build { seed = 3 }
  local mas = require("engram.strategies.mas")
  local F = mas.importance(model, { train = all, index = 1 }, { samples = "all", active = { 0, 1 } })[1]
  -- the last layer's rows for outputs 3 and 4 get no importance
  local W = model.modules[3].weight
  local off = model.modules[1].weight:numel() + 6
  local rows = F:narrow(1, off + 1, W:numel()):view(4, 6)
  lu.assertEquals(rows:narrow(1, 3, 2):abs():sum(), 0)
  lu.assertTrue(rows:narrow(1, 1, 2):sum() > 0)
end

-- SI accumulates -g_task * dtheta with g_task the gradient without any
-- penalty: a probe recomputes it from the gradients and SI's own penalty.
function TestRegularisation.test_si_path_integral_uses_the_task_gradient_without_the_penalty()
  local all = engram.data.blobs { n = 400, classes = 4, dim = 8, std = 2.0, seed = 5 }
  local train, test = all:split(0.8, 1)
  local scen = engram.scenarios.permuted(train, test, { tasks = 2 })
  local model = engram.nn.mlp { 8, 6, 4 }:build { seed = 1 }
  local s = S.si { c = 5 }
  local want, before, gtask, pen_seen = nil, nil, nil, false
  local probe = S.new("probe", {
    before_task = function(_, ctx)
      want = {}
      for i = 1, ctx.model:flat():numel() do want[i] = 0 end
    end,
    after_backward = function(_, ctx)
      local p, g = ctx.model:flat()
      before, gtask = p:totable(), g:totable()
      if s.Omega then -- SI's own penalty gradient, 2c Omega (theta - theta*)
        local O, a = s.Omega[1]:totable(), s.anchor[1]:totable()
        for i = 1, #gtask do
          local pg = 2 * 5 * O[i] * (before[i] - a[i])
          if pg ~= 0 then pen_seen = true end
          gtask[i] = gtask[i] - pg
        end
      end
    end,
    after_step = function(_, ctx)
      local after = ctx.model:flat():totable()
      for i = 1, #want do want[i] = want[i] - gtask[i] * (after[i] - before[i]) end
      if ctx.step == 20 then
        local got = s.omega[1]:totable()
        for i = 1, #want do lu.assertAlmostEquals(got[i], want[i], 1e-4 * (1 + math.abs(want[i]))) end
        ctx.stop = true
      end
    end,
  })
  local L = engram.learner(model, { iterations = 20, batch = 16, lr = 0.05, optimizer = "sgd", quiet = true })
  L:use(s):use(probe)
  L:run(scen)
  lu.assertTrue(pen_seen, "task 2 trained under SI's penalty")
end

-- An engram optimiser without its fused terms (penalise, track_path): the
-- strategies then do their per-step work in passes of their own.
local function unfused(make)
  return function(model)
    local o = make(model)
    return { step = function() o:step() end, reset = function() o:reset() end, opts = o.opts }
  end
end

-- SI's path integral whichever way it gets the task gradient: fused into
-- the optimiser's step (an engram optimiser, no other after_backward hook),
-- read in after_step (an optimiser without fused terms: nothing can change
-- the gradients after backward), or copied after backward (another
-- after_backward hook). The last two are the same bits; the fused way adds
-- the penalty's gradient after backward instead of before it, which changes
-- the rounding of the bias gradients (summed row by row onto what the
-- gradient holds) and nothing else.
function TestRegularisation.test_si_reads_the_step_gradients_directly_only_when_safe()
  local all = engram.data.blobs { n = 400, classes = 4, dim = 8, std = 2.0, seed = 5 }
  local train, test = all:split(0.8, 1)
  local scen = engram.scenarios.permuted(train, test, { tasks = 3 })
  local function go(extra, optimizer)
    local model = engram.nn.mlp { 8, 6, 4 }:build { seed = 1 }
    local s = S.si { c = 2 }
    local L = engram.learner(model, { epochs = 1, batch = 16, lr = 0.05, quiet = true, optimizer = optimizer })
    L:use(s)
    if extra then L:use(extra) end
    L:run(scen)
    return s
  end
  local direct = go(nil, unfused(function(m) return engram.optim.Adam(m, { lr = 0.05 }) end))
  lu.assertTrue(direct._direct)
  lu.assertFalse(direct._fused)
  local copied = go(S.new("watch", { after_backward = function() end }))
  lu.assertFalse(copied._direct)
  lu.assertFalse(copied._fused)
  lu.assertTrue(direct.Omega[1]:equal(copied.Omega[1]), "the same importance")
  local fused = go()
  lu.assertTrue(fused._fused)
  local d = (fused.Omega[1] - direct.Omega[1]):abs():max()
  lu.assertTrue(d <= 1e-5 * direct.Omega[1]:abs():max(), "fused importance off by " .. d)
end

-- The quadratic strategies' penalties fused into the optimiser's step train
-- the same as the penalties added to the gradients before backward (an
-- optimiser without fused terms): the same losses and penalties step by step
-- (ctx.loss includes the penalty from the strategy's after_step on), the
-- same parameters to rounding (the bias gradients: see above); scheduled,
-- a strategy penalises only in the tasks it acts in.
function TestRegularisation.test_fused_penalties_train_as_the_unfused_ones()
  local all = engram.data.blobs { n = 300, classes = 4, dim = 8, std = 2.0, seed = 5 }
  local train, test = all:split(0.8, 1)
  local scen = engram.scenarios.permuted(train, test, { tasks = 3 })
  local function go(make_s, optimizer, lopts, use_opts)
    local model = engram.nn.mlp { 8, 6, 4 }:build { seed = 1 }
    local o = { epochs = 1, batch = 16, lr = 0.05, quiet = true, optimizer = optimizer }
    for k, v in pairs(lopts or {}) do o[k] = v end
    local L = engram.learner(model, o)
    local s = make_s()
    local seen = { loss = {}, penalty = {}, task = {} }
    L:use(s, use_opts):use(S.new("probe", { after_step = function(_, ctx)
      local n = #seen.loss + 1
      seen.loss[n], seen.penalty[n], seen.task[n] = ctx.loss, ctx.penalty, ctx.t
    end }))
    L:run(scen)
    return model:flat():clone(), seen, s
  end
  local adam = function(m) return engram.optim.Adam(m, { lr = 0.05 }) end
  local sgd = function(m) return engram.optim.SGD(m, { lr = 0.05, momentum = 0.9, clip = 0.5 }) end
  local cases = {
    { "ewc", function() return S.ewc { lambda = 50 } end, adam },
    { "online ewc", function() return S.ewc { lambda = 50, online = true, gamma = 0.9 } end, adam },
    { "si", function() return S.si { c = 2 } end, adam },
    { "mas, sgd with clipping", function() return S.mas { lambda = 5 } end, sgd },
    { "ewc from task 3", function() return S.ewc { lambda = 50 } end, adam, { tasks = 3 } },
  }
  for _, c in ipairs(cases) do
    local name, make_s, make_o, use_opts = c[1], c[2], c[3], c[4]
    local pf, sf, strat = go(make_s, make_o, nil, use_opts)
    local pu, su = go(make_s, unfused(make_o), nil, use_opts)
    lu.assertTrue(strat._fuse or (strat.members and strat.members[1]._fuse), name .. ": fused")
    lu.assertEquals(#sf.loss, #su.loss)
    local penalised = { 0, 0, 0 }
    for i = 1, #sf.loss do
      local msg = string.format("%s, step %d", name, i)
      lu.assertAlmostEquals(sf.loss[i], su.loss[i], 1e-5 * (1 + math.abs(su.loss[i])), msg)
      lu.assertAlmostEquals(sf.penalty[i], su.penalty[i], 1e-5 * (1 + math.abs(su.penalty[i])), msg)
      if sf.penalty[i] > 0 then penalised[sf.task[i]] = penalised[sf.task[i]] + 1 end
    end
    lu.assertEquals(penalised[1], 0, name)
    lu.assertEquals(penalised[2] > 0, use_opts == nil, name .. ": task 2 penalised unless not acting")
    lu.assertTrue(penalised[3] > 0, name)
    local d = (pf - pu):abs():max()
    lu.assertTrue(d <= 1e-4 * (1 + pu:abs():max()), name .. ": parameters off by " .. d)
  end
end

function TestRegularisation.test_si_from_task_2_still_watches_task_1()
  local scen = permuted_blobs()
  local s = S.si { c = 1 }
  local doc = run(s, scen, { tasks = "2-" })
  -- task 1's path was integrated although SI acts from task 2 only
  lu.assertNotNil(s.Omega)
  less_forgetting(doc, naive(scen), "SI from task 2")
end

function TestRegularisation.test_state_is_named_tensors_shaped_like_the_parameters()
  local all = engram.data.blobs { n = 200, classes = 4, dim = 8, std = 2.0, seed = 5 }
  local train, test = all:split(0.8, 1)
  local scen = engram.scenarios.permuted(train, test, { tasks = 3 })
  local function names(s)
    local out = {}
    for k, v in pairs(s:state()) do out[#out + 1] = k .. " " .. table.concat(v:size(), "x") end
    table.sort(out)
    return out
  end
  local function go(s)
    local model = engram.nn.mlp { 8, 6, 4 }:build { seed = 1 }
    local doc = engram.learner(model, { epochs = 1, quiet = true }):use(s):run(scen)
    lu.assertEquals(doc.strategies[1].state_bytes, s:state_bytes(), "the results carry the state's bytes")
    return s
  end
  local ewc = go(S.ewc { lambda = 10 })
  lu.assertEquals(#names(ewc), 3 * 2 * 4) -- per past task: importance and anchor of 4 parameters
  lu.assertEquals(ewc:state()["task2.importance.base.1.weight"]:size(), { 6, 8 })
  -- two copies per past task, and the two folded sums of the one-pass penalty
  lu.assertEquals(ewc:state_bytes(), (3 * 2 + 2) * 4 * (6 * 8 + 6 + 4 * 6 + 4))
  local si = go(S.si { c = 1 })
  lu.assertEquals(names(si), {
    "anchor.base.1.bias 6", "anchor.base.1.weight 6x8", "anchor.base.3.bias 4", "anchor.base.3.weight 4x6",
    "importance.base.1.bias 6", "importance.base.1.weight 6x8", "importance.base.3.bias 4",
    "importance.base.3.weight 4x6",
    "omega.base.1.bias 6", "omega.base.1.weight 6x8", "omega.base.3.bias 4", "omega.base.3.weight 4x6",
    "start.base.1.bias 6", "start.base.1.weight 6x8", "start.base.3.bias 4", "start.base.3.weight 4x6" })
  -- views: they are the strategy's tensors, not copies
  local v = si:state()["importance.base.1.weight"]
  lu.assertEquals(v:sum(), si.Omega[1]:narrow(1, 1, 48):sum())
  local mas = go(S.mas { lambda = 1 })
  lu.assertTrue(mas:state()["importance.base.3.weight"]:sum() > 0)
end

function TestRegularisation.test_lwf_reduces_forgetting_in_domain_il()
  local scen = permuted_blobs()
  local s = S.lwf { alpha = 1, T = 2 }
  less_forgetting(run(s, scen), naive(scen), "LwF")
  -- its state: the model it distils from, shaped like the parameters
  lu.assertEquals(s:state()["old_model.base.1.weight"]:size(), { 32, 16 })
end

-- The distillation's gradient reaches ctx.grad_logits: against the same
-- KLDistill computed by hand on the old and new logits, per old task's
-- classes in task-IL.
function TestRegularisation.test_lwf_adds_the_distillation_of_each_old_task_in_task_il()
  local all = engram.data.blobs { n = 600, classes = 6, dim = 8, std = 2.0, seed = 3 }
  local train, test = all:split(0.8, 1)
  local scen = engram.scenarios.split(train, test, { tasks = 3, scenario = "task" })
  local model = engram.nn.mlp { 8, 16, 6 }:build { seed = 1 }
  local s = S.lwf { alpha = 0.5, T = 3 }
  local checked = 0
  local probe
  local before = S.new("before", { loss = function(_, ctx) probe = { g = ctx.grad_logits:clone(), l = ctx.loss } end })
  local after = S.new("after", { loss = function(_, ctx)
    if ctx.t < 2 or ctx.step > 0 then return end
    local teacher = ctx.old_model:forward(ctx.x)
    local want_g, want_l = probe.g, probe.l
    for k = 1, ctx.t - 1 do
      local kd = engram.loss.KLDistill { T = 3, active = ctx.tasks[k].active }
      local v, g = kd:forward_backward(ctx.logits, teacher)
      want_l = want_l + 0.5 * v
      want_g = want_g + g * 0.5
    end
    lu.assertAlmostEquals(ctx.loss, want_l, 1e-9)
    lu.assertTrue((ctx.grad_logits - want_g):abs():max() < 1e-6)
    checked = checked + 1
  end })
  engram.learner(model, { epochs = 1, batch = 32, lr = 0.01, quiet = true }):use(before):use(s):use(after):run(scen)
  lu.assertEquals(checked, 2)
  lu.assertEquals(#s._crits, 2) -- task 3: one term per old task
end

-- The three Fishers against per-sample gradients taken one at a time (in
-- double): empirical with the data labels, expected as sum_c p(c|x) g_c^2;
-- both paths. The sampled Fisher is deterministic for a seed and, over many
-- samples, close to the expected one it estimates.
local function brute_fisher(model, ds, kind, active)
  local params, grads = model:flat()
  local want = {}
  for i = 1, params:numel() do want[i] = 0 end
  model:evaluate()
  for x, y in ds:chunks { batch = 1, flat = true } do
    local logits = model:forward(x):clone()
    local z, K = logits:totable()[1], logits:size(2)
    local classes = active or {}
    if not active then for c = 0, K - 1 do classes[#classes + 1] = c end end
    local zmax, sum = -math.huge, 0
    for _, c in ipairs(classes) do zmax = math.max(zmax, z[c + 1]) end
    for _, c in ipairs(classes) do sum = sum + math.exp(z[c + 1] - zmax) end
    local labels = kind == "empirical" and { y:get(1) } or classes
    for _, c in ipairs(labels) do
      local w = kind == "empirical" and 1 or math.exp(z[c + 1] - zmax) / sum
      local ce = engram.loss.CrossEntropy { active = active }
      model:zero_grad()
      model:forward(x)
      local _, g = ce:forward_backward(logits, engram.tensor { c })
      model:backward(x, g, false)
      local gg = grads:totable()
      for i = 1, #gg do want[i] = want[i] + w * gg[i] * gg[i] / #ds end
    end
  end
  model:zero_grad()
  return want
end

local function assert_close(got, want, rel, what)
  local num, den = 0, 0
  for i = 1, #want do num, den = num + (got[i] - want[i]) ^ 2, den + want[i] ^ 2 end
  lu.assertTrue(math.sqrt(num / den) < rel, string.format("%s: relative error %.2e", what, math.sqrt(num / den)))
end

function TestRegularisation.test_empirical_and_expected_fisher_match_per_sample_gradients()
  local ewc = require("engram.strategies.ewc")
  local all = engram.data.blobs { n = 30, classes = 3, dim = 5, std = 1.5, seed = 2 }
  local task = { train = all, index = 1 }
  local model = engram.nn.mlp { 5, 7, 3, activation = "tanh" }:build { seed = 3 }
  for _, kind in ipairs({ "empirical", "expected" }) do
    local want = brute_fisher(model, all, kind)
    for _, path in ipairs({ "batched", "loop" }) do
      local F, used = ewc.fisher(model, task, { fisher = kind, path = path, samples = "all", active = false })
      lu.assertEquals(used, path)
      assert_close(F[1]:totable(), want, 1e-5, kind .. " " .. path)
    end
  end
  -- task-IL: the softmax over the task's classes only
  local want = brute_fisher(model, all, "expected", { 0, 2 })
  local F = ewc.fisher(model, task, { fisher = "expected", samples = "all", active = { 0, 2 } })
  assert_close(F[1]:totable(), want, 1e-5, "expected over classes 0 and 2")
end

function TestRegularisation.test_sampled_fisher_is_seeded_and_estimates_the_expected_one()
  local ewc = require("engram.strategies.ewc")
  local all = engram.data.blobs { n = 4000, classes = 3, dim = 5, std = 3, seed = 2 }
  local task = { train = all, index = 1 }
  local model = engram.nn.mlp { 5, 7, 3, activation = "tanh" }:build { seed = 3 }
  local opts = { fisher = "sampled", samples = "all", active = false, seed = 9 }
  local a, b = ewc.fisher(model, task, opts)[1], ewc.fisher(model, task, opts)[1]
  lu.assertTrue(a:equal(b), "same seed, same Fisher")
  opts.seed = 10
  lu.assertFalse(a:equal(ewc.fisher(model, task, opts)[1]), "another seed, other labels")
  local expected = ewc.fisher(model, task, { fisher = "expected", samples = "all", active = false })[1]
  assert_close(a:totable(), expected:totable(), 0.1, "sampled against expected")
  local empirical = ewc.fisher(model, task, { fisher = "empirical", samples = "all", active = false })[1]
  lu.assertFalse(empirical:allclose(expected, 1e-2), "the empirical Fisher is another quantity")
end

function TestRegularisation.test_ewc_with_each_fisher_reduces_forgetting()
  local scen = permuted_blobs()
  for _, kind in ipairs({ "empirical", "sampled", "expected" }) do
    less_forgetting(run(S.ewc { lambda = 100, fisher = kind }, scen), naive(scen), "EWC " .. kind)
  end
end

function TestRegularisation.test_bad_options_are_errors_naming_them()
  lu.assertErrorMsgContains("si: c must be a finite number >= 0, got -1", S.si, { c = -1 })
  lu.assertErrorMsgContains("si: xi must be a finite number > 0, got 0", S.si, { xi = 0 })
  lu.assertErrorMsgContains("si: unknown option 'lambda'", S.si, { lambda = 1 })
  lu.assertErrorMsgContains("mas: lambda must be a finite number >= 0, got inf", S.mas, { lambda = math.huge })
  lu.assertErrorMsgContains("mas: samples must be a positive integer or \"all\", got 0", S.mas, { samples = 0 })
  lu.assertErrorMsgContains("mas: path must be 'auto', 'batched' or 'loop', got fast", S.mas, { path = "fast" })
  lu.assertErrorMsgContains("ewc: lambda must be a finite number >= 0, got -2", S.ewc, { lambda = -2 })
  lu.assertErrorMsgContains("ewc: lambda must be a finite number >= 0, got inf", S.ewc, { lambda = math.huge })
  lu.assertErrorMsgContains("quadratic: importance must be a function", S.quadratic, { lambda = 1 })
  lu.assertErrorMsgContains("ewc: fisher must be 'empirical', 'sampled' or 'expected', got true", S.ewc,
    { fisher = "true" })
  lu.assertErrorMsgContains("ewc: samples must be a positive integer or \"all\", got 0", S.ewc, { samples = 0 })
  lu.assertErrorMsgContains("lwf: temperature T must be a finite number > 0, got 0", S.lwf, { T = 0 })
  lu.assertErrorMsgContains("lwf: alpha must be a finite number >= 0, got -1", S.lwf, { alpha = -1 })
  lu.assertErrorMsgContains("quadratic: gamma must be a number in [0, 1], got 2", S.quadratic,
    { importance = function() end, gamma = 2 })
end
