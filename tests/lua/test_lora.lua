-- LoRA (engram.nn.isolation): training starts exactly from the base model,
-- gradients match finite differences (with mutations), one arena per set,
-- merge/unmerge (bit-identical after unmerge), the weighted combination of
-- sets, no allocation in a warm step, and the errors for bad input.
local lu = require("luaunit")
local engram = require("engram")
local gradcheck = require("gradcheck")
local nn = engram.nn

local function fails(f, ...)
  local ok, err = pcall(f, ...)
  lu.assertFalse(ok)
  return tostring(err)
end

-- mlp{in, h, out} with LoRA sets `keys` on both Linear layers, each set in a group "lora.<key>".
local function lora_mlp(sizes, opts, keys, seed, sel)
  local m = nn.mlp(sizes):build { seed = seed or 1 }
  local ws = m:wrap(sel or "Linear", function(l) return nn.LoRA(l, opts) end)
  for _, k in ipairs(keys or {}) do
    local fs = {}
    for i, w in ipairs(ws) do fs[i] = w:add_set(k) end
    m:new_group("lora." .. k, fs, { seed = 7 })
  end
  return m, ws
end

local function activate(ws, k)
  for _, w in ipairs(ws) do w:activate(k) end
end

TestLoRA = {}

function TestLoRA.test_a_new_set_starts_exactly_from_the_base_model()
  engram.seed(301)
  local base = nn.mlp { 12, 8, 4 }:build { seed = 3 }
  local x = engram.randn(5, 12)
  local y0 = base:forward(x):clone()
  local m, ws = lora_mlp({ 12, 8, 4 }, { rank = 2, alpha = 4 }, { 1 }, 3)
  activate(ws, 1)
  lu.assertTrue(m:forward(x):equal(y0)) -- B = 0
  lu.assertEquals(#m:groups(), 2)
  lu.assertEquals(m:groups()[2].name, "lora.1")
  lu.assertEquals(m:groups()[2].numel, 2 * (12 + 8) + 2 * (8 + 4))
  lu.assertEquals(ws[1].sets[1].B:abs():sum(), 0)
  lu.assertTrue(ws[1].sets[1].A:abs():sum() > 0)
  lu.assertEquals(ws[1].sets[1].scale, 2)
end

function TestLoRA.test_gradients_match_finite_differences()
  engram.seed(302)
  local m, ws = lora_mlp({ 6, 5, 3 }, { rank = 2, alpha = 3 }, { 1 }, 4)
  m:remove("2") -- no ReLU kink in the check
  activate(ws, 1)
  for _, w in ipairs(ws) do w.sets[1].B:copy_(engram.randn(table.unpack(w.sets[1].B:size())) * 0.5) end
  lu.assertEquals(gradcheck.module(m, engram.randn(3, 6), { what = "LoRA mlp" }), {})
  -- with the base frozen: the factors' gradients and the input's (the base's stay zero)
  m:freeze("base")
  local x, r = engram.randn(2, 6), engram.randn(2, 3)
  m:zero_grad()
  m:forward(x)
  local gx = m:backward(x, r):clone()
  local g = m:groups()
  lu.assertEquals(g[1].grads:abs():sum(), 0)
  local function L() return m:forward(x):dot(r) end
  lu.assertTrue(gradcheck.check("LoRA mlp, base frozen: x", L, x, gx))
  lu.assertTrue(gradcheck.check("LoRA mlp, base frozen: factors", L, g[2].params, g[2].grads:clone()))
  -- inputs with leading dimensions [B, T, in]
  m:unfreeze("base")
  lu.assertEquals(gradcheck.module(m, engram.randn(2, 3, 6), { what = "LoRA over positions" }), {})
end

function TestLoRA.test_a_gradient_scaled_wrong_is_caught()
  engram.seed(303)
  local m, ws = lora_mlp({ 4, 3 }, { rank = 2, alpha = 2 }, { 1 }, 5)
  activate(ws, 1)
  ws[1].sets[1].B:copy_(engram.randn(3, 2))
  -- a LoRA whose backward forgets the scale on A's gradient (alpha/rank = 1.5)
  ws[1].sets[1].scale = 1.5
  local good = gradcheck.module(m, engram.randn(2, 4), { what = "LoRA scale 1.5" })
  lu.assertEquals(good, {})
  local orig = ws[1].backward
  ws[1].backward = function(self, x, gy, need)
    local f = self.sets[self.active]
    local s = f.scale
    local r = orig(self, x, gy, need)
    f.grad_A:mul_(1 / s) -- drop the scale
    return r
  end
  lu.assertTrue(#gradcheck.module(m, engram.randn(2, 4), { what = "LoRA without A's scale" }) > 0)
end

function TestLoRA.test_merge_gives_the_same_outputs_and_unmerge_restores_the_weights_bit_for_bit()
  engram.seed(304)
  local m, ws = lora_mlp({ 10, 8, 4 }, { rank = 3 }, { 1 }, 6)
  activate(ws, 1)
  for _, w in ipairs(ws) do w.sets[1].B:copy_(engram.randn(table.unpack(w.sets[1].B:size()))) end
  local x = engram.randn(6, 10)
  local y = m:forward(x):clone()
  local W = ws[1].modules[1].weight:clone()
  for _, w in ipairs(ws) do w:merge() end
  lu.assertFalse(ws[1].modules[1].weight:equal(W))
  lu.assertTrue(m:forward(x):allclose(y, 1e-4, 1e-5))
  -- merged: the forward is the base Linear's alone (the factors are not used)
  ws[1].sets[1].B:zero_()
  lu.assertTrue(m:forward(x):allclose(y, 1e-4, 1e-5))
  lu.assertStrContains(fails(ws[1].merge, ws[1]), "set 1 is merged already")
  lu.assertStrContains(fails(ws[1].activate, ws[1], nil), "set 1 is merged into the weights; unmerge() first")
  m:zero_grad()
  lu.assertStrContains(fails(m.backward, m, x, engram.ones(6, 4)), "unmerge() before training")
  for _, w in ipairs(ws) do w:unmerge() end
  lu.assertTrue(ws[1].modules[1].weight:equal(W))
  lu.assertStrContains(fails(ws[1].unmerge, ws[1]), "no set is merged")
end

function TestLoRA.test_a_weighted_combination_is_the_weighted_sum_of_the_sets()
  engram.seed(305)
  local m, ws = lora_mlp({ 6, 5 }, { rank = 2 }, { 1, 2 }, 7)
  local lw = ws[1]
  lw.sets[1].B:copy_(engram.randn(5, 2))
  lw.sets[2].B:copy_(engram.randn(5, 2))
  lw.sets[2].scale = 0.5
  local x = engram.randn(4, 6)
  activate(ws, nil)
  local y0 = m:forward(x):clone()
  activate(ws, 1)
  local d1 = m:forward(x) - y0
  activate(ws, 2)
  local d2 = m:forward(x) - y0
  local f = lw:add_set("mix", { rank = 4, scale = 1 })
  m:new_group("lora.mix", { f })
  lw:fill_weighted("mix", { 1, 2 }, { 0.3, 0.7 })
  activate(ws, "mix")
  lu.assertTrue((m:forward(x) - y0):allclose(d1 * 0.3 + d2 * 0.7, 1e-4, 1e-5))
  local g = lw:add_set("bad", { rank = 3 })
  m:new_group("lora.bad", { g })
  lu.assertStrContains(fails(lw.fill_weighted, lw, "bad", { 1, 2 }, { 1, 1 }),
    "ranks add up to 4, set 'bad' has rank 3")
  lu.assertStrContains(fails(lw.fill_weighted, lw, "mix", { 1, 9 }, { 1, 1 }), "has no set 9")
end

function TestLoRA.test_a_warm_training_step_allocates_nothing()
  engram.seed(306)
  local m, ws = lora_mlp({ 20, 16, 16, 3 }, { rank = 4 }, { 1 }, 8, { "1", "3" })
  activate(ws, 1)
  m:freeze("base")
  local ce, opt = engram.loss.CrossEntropy(), engram.optim.Adam(m, { lr = 1e-3 })
  local x, y = engram.randn(8, 20), engram.tensor { 0, 1, 2, 0, 1, 2, 0, 1 }
  local function step()
    m:zero_grad()
    local _, g = ce:forward_backward(m:forward(x), y)
    m:backward(x, g, false)
    opt:step()
  end
  step(); step()
  local before = engram.core.alloc_count()
  for _ = 1, 5 do step() end
  lu.assertEquals(engram.core.alloc_count(), before)
  lu.assertFalse(ws[1].sets[1].B:abs():sum() == 0) -- the factors trained
end

function TestLoRA.test_bad_input_gives_errors_naming_the_option_or_the_set()
  local l = nn.Linear(6, 4)
  lu.assertStrContains(fails(nn.LoRA, l, { rank = 0 }), "LoRA: rank must be positive, got 0")
  lu.assertStrContains(fails(nn.LoRA, l, { rank = 5 }),
    "LoRA: rank 5 is larger than the layer (Linear(6->4): at most 4)")
  lu.assertStrContains(fails(nn.LoRA, nn.ReLU()), "LoRA: wraps a Linear, got ReLU")
  lu.assertStrContains(fails(nn.LoRA, l, { ranks = 2 }), "unknown option 'ranks'")
  lu.assertStrContains(fails(nn.LoRA, l, { rank = 2, alpha = -1 }), "alpha must be a positive number")
  local m, ws = lora_mlp({ 6, 4 }, { rank = 2 }, { 1 }, 9)
  lu.assertStrContains(fails(ws[1].activate, ws[1], 3), "LoRA:activate: Linear(6->4) has no set 3 (sets: 1)")
  lu.assertStrContains(fails(ws[1].add_set, ws[1], 1), "a set 1 exists already")
  lu.assertStrContains(fails(ws[1].load_set, ws[1], 1, engram.zeros(2, 5), engram.zeros(4, 2)),
    "set 1 has A 2x5 and B 4x2; Linear(6->4) needs A [r, 6] and B [4, r]")
  lu.assertStrContains(fails(ws[1].merge, ws[1]), "no set given and none active")
  -- factors made for a base of another shape (here put in by hand) are refused by merge
  local f = ws[1].sets[1]
  local A = f.A
  f.A = engram.zeros(2, 5)
  lu.assertStrContains(fails(ws[1].merge, ws[1], 1),
    "LoRA:merge: set 1 has A 2x5 and B 4x2; Linear(6->4) needs A [r, 6] and B [4, r]")
  f.A = A
  lu.assertStrContains(fails(ws[1].merge, ws[1], 5), "LoRA:merge: Linear(6->4) has no set 5 (sets: 1)")
  lu.assertStrContains(fails(m.wrap, m, "1", function(x) return nn.LoRA(x) end), "already wrapped")
end

-- Bottleneck adapters, the per-task Switch and progressive columns (the
-- other modules of engram.nn.isolation).
TestIsolationModules = {}

function TestIsolationModules.test_an_adapter_starts_near_the_identity_and_its_gradients_check()
  engram.seed(311)
  local m = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 3)):build { seed = 1 }
  local x = engram.randn(4, 5)
  local y0 = m:forward(x):clone()
  local a = m:insert_after("2", nn.Adapter(6, { bottleneck = 2, activation = "tanh", init = 0 }),
    { group = "adapters" })[1]
  lu.assertTrue(m:forward(x):equal(y0)) -- init = 0: exactly the identity
  lu.assertEquals(m:groups()[2].numel, 2 * 6 + 2 + 6 * 2 + 6)
  a.up_weight:copy_(engram.randn(6, 2) * 0.5)
  a.up_bias:copy_(engram.randn(6) * 0.1)
  lu.assertEquals(gradcheck.module(m, engram.randn(3, 5), { what = "Adapter(tanh)" }), {})
  local b = nn.Adapter(6, { bottleneck = 3 })
  local m2 = nn.Sequential(nn.Linear(5, 6), b):build { seed = 2 }
  lu.assertTrue(b.up_weight:abs():max() <= 1e-3)
  lu.assertTrue(m2:forward(x):allclose(m2:get("1").output, 1e-2, 1e-2))
  lu.assertStrContains(fails(nn.Adapter, 6, { activation = "relu6" }), "unknown activation 'relu6'")
  lu.assertStrContains(fails(nn.Adapter, 6, { bottleneck = 0 }), "bottleneck must be positive, got 0")
end

function TestIsolationModules.test_a_switch_runs_the_selected_module_or_passes_through()
  engram.seed(312)
  local sw = nn.Switch()
  local m = nn.Sequential(nn.Linear(3, 3), sw):build { seed = 3 }
  local x = engram.randn(2, 3)
  local h = m:forward(x):clone()
  local a = sw:add(1, nn.Linear(3, 2))
  m:new_group("head1", { a })
  lu.assertTrue(m:forward(x):equal(h)) -- none selected: passes through
  sw:select(1)
  lu.assertEquals(m:forward(x):size(), { 2, 2 })
  lu.assertEquals(gradcheck.module(m, x, { what = "Switch" }), {})
  lu.assertStrContains(fails(sw.select, sw, 2), "Switch:select: no module for 2 (keys: 1)")
  lu.assertStrContains(fails(sw.add, sw, 1, nn.ReLU()), "a module for 1 exists already")
end

function TestIsolationModules.test_progressive_columns_gradients_check_with_laterals()
  engram.seed(313)
  local p = nn.Progressive({ 4, 5, 3, 2 }, { activation = "tanh" })
  local m = nn.Sequential(p):build { seed = 4 }
  local x = engram.randn(3, 4)
  local c2 = p:add_column()
  m:new_group("column2", { c2 })
  local c3 = p:add_column()
  m:new_group("column3", { c3 })
  lu.assertEquals(m:groups()[3].numel, (4 * 5 + 5) + (5 * 3 + 3) + (3 * 2 + 2) + 2 * (5 * 3) + 2 * (3 * 2))
  p:select(1)
  local y1 = m:forward(x):clone()
  p:select(3)
  -- every column trainable: gradients through the laterals into the earlier columns and the input
  lu.assertEquals(gradcheck.module(m, x, { what = "Progressive, 3 columns" }), {})
  -- earlier columns frozen, input gradient not asked: the backward skips them
  m:freeze("base"); m:freeze("column2")
  m:zero_grad()
  m:forward(x)
  m:backward(x, engram.ones(3, 2), false)
  lu.assertEquals(m:groups()[1].grads:abs():sum(), 0)
  lu.assertTrue(m:groups()[3].grads:abs():sum() > 0)
  p:select(1)
  lu.assertTrue(m:forward(x):equal(y1)) -- column 1 does not see later columns
  lu.assertStrContains(fails(p.select, p, 4), "column 4 out of range 1..3")
end

function TestLoRA.test_a_clone_after_a_forward_keeps_the_sets_and_computes_the_same()
  engram.seed(307)
  local m, ws = lora_mlp({ 8, 6, 3 }, { rank = 2 }, { 2 }, 10, "1")
  activate(ws, 2)
  ws[1].sets[2].B:fill_(0.3)
  m:freeze_layers("1.1")
  local x = engram.randn(4, 8)
  local y = m:forward(x):clone()
  local c = m:clone() -- after a forward: the LoRA's own buffers are not a borrowed output
  lu.assertTrue(c:forward(x):equal(y))
  lu.assertEquals(#c:groups(), 2)
  lu.assertEquals(c:numel { trainable = true }, m:numel { trainable = true })
  c:get("1"):activate(nil)
  lu.assertFalse(c:forward(x):equal(y))
  lu.assertTrue(m:forward(x):equal(y)) -- the original is untouched
end

function TestIsolationModules.test_warm_steps_with_adapters_and_progressive_columns_allocate_nothing()
  engram.seed(314)
  local p = nn.Progressive({ 10, 8, 8, 3 })
  local models = {
    nn.Sequential(nn.Linear(10, 8), nn.ReLU(), nn.Adapter(8, { bottleneck = 2 }), nn.Linear(8, 3)):build { seed = 1 },
    nn.Sequential(p):build { seed = 2 },
  }
  local c2 = p:add_column()
  models[2]:new_group("column2", { c2 })
  p:select(2)
  models[2]:freeze("base")
  local x, y = engram.randn(6, 10), engram.tensor { 0, 1, 2, 0, 1, 2 }
  for _, m in ipairs(models) do
    local ce, opt = engram.loss.CrossEntropy(), engram.optim.Adam(m, { lr = 1e-3 })
    local function step()
      m:zero_grad()
      local _, g = ce:forward_backward(m:forward(x), y)
      m:backward(x, g, false)
      opt:step()
    end
    step(); step()
    local before = engram.core.alloc_count()
    for _ = 1, 5 do step() end
    lu.assertEquals(engram.core.alloc_count(), before)
  end
end

function TestLoRA.test_fold_puts_a_set_into_the_base_for_good()
  engram.seed(305)
  local m, ws = lora_mlp({ 10, 8, 4 }, { rank = 3 }, { 1 }, 6)
  activate(ws, 1)
  for _, w in ipairs(ws) do w.sets[1].B:copy_(engram.randn(table.unpack(w.sets[1].B:size()))) end
  local x = engram.randn(6, 10)
  local y = m:forward(x):clone()
  for _, w in ipairs(ws) do w:fold(1) end
  activate(ws, nil) -- the base alone now computes what the set did
  lu.assertTrue(m:forward(x):allclose(y, 1e-4, 1e-5))
  activate(ws, 1) -- the folded set adds nothing (its B is zero)
  lu.assertTrue(m:forward(x):allclose(y, 1e-4, 1e-5))
  lu.assertStrContains(fails(ws[1].fold, ws[1], 9), "has no set 9")
end

function TestLoRA.test_fold_now_lets_a_later_phase_train_the_whole_layer()
  -- a plan: task 2 learns through a LoRA set, then s:fold(2) and a "tune"
  -- phase on the same data trains the wrapped layer's base weights (frozen
  -- while the set trained) and leaves the folded set's factors alone
  local all = engram.data.blobs { n = 900, classes = 6, dim = 8, std = 1.0, seed = 3 }
  local train, test = all:split(0.8, 1)
  local scen = engram.scenarios.split(train, test, { tasks = 3 })
  local s = engram.strategies.lora { rank = 2, layers = "1" }
  local seen = {}
  local x = engram.randn(5, 8)
  local function base(ctx) return ctx.model.modules[1].modules[1].weight:clone() end
  local function factors(ctx) return ctx.model.modules[1].sets[2].B:clone() end
  local plan = engram.plan {
    strategies = { lora = s },
    phases = { learn = { use = { "lora" } }, tune = { use = {}, epochs = 1 } },
    tasks = { { tasks = "1", run = { "learn" } }, { tasks = "2", run = { "learn", "tune" } },
      { tasks = "3", run = { "learn" } } },
    hooks = {
      before_phase = function(ctx)
        if ctx.t ~= 2 then return end
        if ctx.phase.name == "learn" then seen.base0 = base(ctx) return end
        ctx.model:evaluate()
        local y = ctx.model:forward(x):clone()
        s:fold(2)
        seen.same = ctx.model:forward(x):allclose(y, 1e-4, 1e-5)
        ctx.model:train()
        seen.base1, seen.B1 = base(ctx), factors(ctx)
      end,
      after_phase = function(ctx)
        if ctx.t == 2 and ctx.phase.name == "tune" then seen.base2, seen.B2 = base(ctx), factors(ctx) end
      end,
    },
  }
  local L = engram.learner(nn.mlp { 8, 32, 6 }:build { seed = 1 }, { epochs = 2, batch = 32, lr = 0.01, quiet = true })
  L:use(plan):run(scen)
  lu.assertTrue(seen.same, "folding changed the model's output")
  lu.assertFalse(seen.base1:allclose(seen.base0, 0, 1e-6), "the fold moved the base by the set's product")
  lu.assertFalse(seen.base2:allclose(seen.base1, 0, 1e-6), "the tune phase trained the base weights")
  lu.assertTrue(seen.B2:equal(seen.B1), "the folded set's factors stayed as they were")
  lu.assertStrContains(fails(s.fold, s, 9), "fold: no set for task 9")
end

function TestLoRA.test_the_strategy_with_fold_evaluates_without_task_identity()
  -- class-IL: with fold, every task is evaluated with the same (base) model,
  -- whatever the task; without it, evaluating task j activates set j
  local all = engram.data.blobs { n = 900, classes = 6, dim = 8, std = 1.0, seed = 3 }
  local train, test = all:split(0.8, 1)
  local scen = engram.scenarios.split(train, test, { tasks = 3 })
  local active = {}
  local probe = { name = "probe", after_eval = function(_, ctx)
    active[#active + 1] = tostring(ctx.model.modules[1].active)
  end }
  local L = engram.learner(nn.mlp { 8, 32, 6 }:build { seed = 1 }, { epochs = 3, batch = 32, lr = 0.01, quiet = true })
  local s = engram.strategies.lora { rank = 2, layers = "1", fold = true }
  L:use(s, { tasks = "2-" }):use(probe)
  local doc = L:run(scen)
  for _, a in ipairs(active) do lu.assertEquals(a, "nil") end
  lu.assertEquals(#active, 9)
  lu.assertTrue(doc.acc[3][3] > 0.8, "task 3 learnt through its set: " .. doc.acc[3][3])
  lu.assertStrContains(fails(engram.strategies.lora, { fold = 1 }), "fold must be true or false")
end
