-- The replay family beyond experience replay: A-GEM (the projection in C
-- over every group, and less forgetting than naive fine-tuning in class-IL),
-- DER / DER++ and generative replay; bad options are errors naming them.
local lu = require("luaunit")
local engram = require("engram")
local S = engram.strategies

-- class-IL: 6 blobs in 3 tasks of 2 classes
local function split_blobs()
  local all = engram.data.blobs { n = 1200, classes = 6, dim = 8, std = 1.0, seed = 3 }
  local train, test = all:split(0.8, 1)
  return engram.scenarios.split(train, test, { tasks = 3 })
end

local function run(strategy, scen, lopts)
  local o = { epochs = 3, batch = 32, lr = 0.01, quiet = true, name = strategy.name }
  for k, v in pairs(lopts or {}) do o[k] = v end
  local model = engram.nn.mlp { scen.tasks[1].train:numel(), 32, 6 }:build { seed = 1 }
  local L = engram.learner(model, o)
  L:use(strategy)
  return L:run(scen), L
end

local naive_doc
local function naive(scen)
  naive_doc = naive_doc or run(S.naive(), scen)
  return naive_doc
end

local function less_forgetting(doc, base, what, forget_by, acc_by)
  lu.assertTrue(doc.forgetting < base.forgetting - forget_by,
    string.format("%s forgetting %.3f, naive %.3f", what, doc.forgetting, base.forgetting))
  lu.assertTrue(doc.avg_acc > base.avg_acc + acc_by,
    string.format("%s ACC %.3f, naive %.3f", what, doc.avg_acc, base.avg_acc))
end

TestReplayFamily = {}

function TestReplayFamily.test_agem_project_over_groups_from_lua()
  local g1, g2 = engram.tensor { 1, 0 }, engram.tensor { 0, -1, 0 }
  local r1, r2 = engram.tensor { -1, 0 }, engram.tensor { 0, 1, 0 }
  -- g.r = -2, r.r = 2: g -= (-1) r -> g = 0 everywhere
  local projected, dot = engram.cl.agem_project({ g1, g2 }, { r1, r2 })
  lu.assertTrue(projected)
  lu.assertAlmostEquals(dot, -2, 1e-9)
  lu.assertEquals(g1:totable(), { 0, 0 })
  lu.assertEquals(g2:totable(), { 0, 0, 0 })
  -- no conflict: untouched
  g1 = engram.tensor { 1, 2 }
  projected, dot = engram.cl.agem_project({ g1 }, { engram.tensor { 1, 0 } })
  lu.assertFalse(projected)
  lu.assertEquals(dot, 1)
  lu.assertEquals(g1:totable(), { 1, 2 })
  lu.assertErrorMsgContains("agem_project: 1 gradients but 2 reference gradients", engram.cl.agem_project,
    { g1 }, { r1, r2 })
  lu.assertErrorMsgContains("group 1", engram.cl.agem_project, { g1 }, { r2 })
end

function TestReplayFamily.test_agem_reduces_forgetting_in_class_il()
  local scen = split_blobs()
  local s = S.agem { memory = 100, batch = 64 }
  local doc = run(s, scen)
  less_forgetting(doc, naive(scen), "A-GEM", 0.3, 0.2)
  -- it projected steps of tasks 2 and 3 (in class-IL nearly all conflict)
  local st = doc.extra.agem
  lu.assertTrue(st.steps > 0 and st.projected > st.steps / 2,
    string.format("projected %d of %d", st.projected, st.steps))
end

-- After the hook, the step's gradient does not conflict with the memory's:
-- g.g_ref >= 0 up to rounding, checked with a strategy that runs after A-GEM.
function TestReplayFamily.test_agem_step_never_conflicts_with_the_memory_gradient()
  local scen = split_blobs()
  local s = S.agem { memory = 60, batch = 60 } -- the whole memory: the same reference every time
  local worst, checked = math.huge, 0
  local probe = { name = "probe" }
  function probe.after_backward(_, ctx)
    if not s.mem or #s.mem == 0 then return end
    local d, n = 0, 0
    for i, g in ipairs(s._groups) do
      d, n = d + g.grads:dot(s._ref[i]), n + g.grads:norm() * s._ref[i]:norm()
    end
    if n > 0 then worst, checked = math.min(worst, d / n), checked + 1 end
    ctx.x = ctx.x -- reads only
  end
  local model = engram.nn.mlp { 8, 32, 6 }:build { seed = 1 }
  local L = engram.learner(model, { epochs = 1, batch = 32, lr = 0.01, quiet = true })
  L:use(s):use(probe)
  L:run(scen)
  lu.assertTrue(checked > 10)
  lu.assertTrue(worst > -1e-5, "cosine after projection " .. worst)
end

function TestReplayFamily.test_agem_options_are_checked()
  lu.assertErrorMsgContains("agem: memory (capacity in samples) must be a positive integer, got 0", S.agem,
    { memory = 0 })
  lu.assertErrorMsgContains("agem: batch", S.agem, { batch = 0 })
  lu.assertErrorMsgContains("agem: unknown option 'memroy'", S.agem, { memroy = 10 })
  lu.assertEquals(S.make("agem", { memory = 5 }).options.memory, 5)
end

function TestReplayFamily.test_der_and_derpp_reduce_forgetting_in_class_il()
  local scen = split_blobs()
  local der = run(S.der { memory = 100, alpha = 1 }, scen)
  less_forgetting(der, naive(scen), "DER", 0.3, 0.2)
  local derpp = run(S.der { memory = 100, alpha = 0.3, beta = 0.5 }, scen)
  lu.assertEquals(derpp.strategies[1].name, "der++")
  less_forgetting(derpp, naive(scen), "DER++", 0.4, 0.3)
end

-- The memory keeps each sample with the logits the model gave it when it was
-- stored: with lr so small that the model hardly moves, the stored logits
-- are the model's outputs on the stored inputs.
function TestReplayFamily.test_der_stores_the_logits_of_the_step()
  local scen = split_blobs()
  local s = S.der { memory = 50, alpha = 1, beta = 1 }
  local doc, L = run(s, scen, { lr = 1e-9, epochs = 1 })
  lu.assertTrue(doc.strategies[1].options.beta == 1)
  local st = s:state()
  lu.assertEquals(st["memory.logits"]:size(1), 50)
  lu.assertEquals(st["memory.logits"]:size(2), 6)
  local out = L.model:forward(st["memory.x"])
  local d = (out - st["memory.logits"]):abs():max()
  lu.assertTrue(d < 1e-4, "stored logits differ from the model's outputs by " .. d)
  lu.assertTrue(out:abs():max() > 0.05)
end

function TestReplayFamily.test_der_options_are_checked()
  lu.assertErrorMsgContains("der: memory (capacity in samples) must be a positive integer, got 0", S.der,
    { memory = 0 })
  lu.assertErrorMsgContains("der: alpha must be a finite number > 0, got 0", S.der, { alpha = 0 })
  lu.assertErrorMsgContains("der: beta must be a finite number >= 0", S.der, { beta = -1 })
  lu.assertErrorMsgContains("der: unknown option 'gamma'", S.der, { gamma = 1 })
  lu.assertEquals(S.der { beta = 0 }.name, "der")
end

function TestReplayFamily.test_per_task_heads_are_refused_with_a_named_error()
  local all = engram.data.blobs { n = 400, classes = 4, dim = 8, std = 1.0, seed = 3 }
  local train, test = all:split(0.8, 1)
  local scen = engram.scenarios.split(train, test, { tasks = 2, scenario = "task" })
  for _, s in ipairs { S.agem { memory = 20 }, S.der { memory = 20 } } do
    local nn = engram.nn
    local model = nn.MultiHead(nn.mlp { 8, 16 }, { nn.Linear(16, 2), nn.Linear(16, 2) }):build { seed = 1 }
    local L = engram.learner(model, { epochs = 1, batch = 32, quiet = true, heads = true })
    L:use(s)
    lu.assertErrorMsgContains(s.options.alpha and "der: per-task heads" or "agem: per-task heads", L.run, L, scen)
  end
end
