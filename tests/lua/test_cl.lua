-- engram.cl: the replay memory (engram.Memory) and the penalty/importance
-- primitives through the Lua API.
--
-- The penalty's gradient goes through tests/lua/gradcheck.lua: central
-- differences (step 1e-2 max(1, |theta|) in float32; the penalty is summed
-- in double), per tensor ||num - ana|| / max(||num||, ||ana||) <= 2e-3, per
-- element |num_i - ana_i| <= 2e-3 |num_i| + 5e-4 max|g|; the same check on
-- the gradient scaled by 1.01, or with each element moved by 1% of the
-- largest magnitude, must fail. Worst unmutated check: about 1e-5.
local lu = require("luaunit")
local engram = require("engram")
local gc = require("gradcheck")
local cl = engram.cl

-- n samples of width d whose first feature is their id (first .. first+n-1).
local function batch(first, n, d, classes)
  local x, y = engram.zeros(n, d), engram.zeros(n)
  for i = 1, n do
    x:set(i, 1, first + i - 1)
    y:set(i, (first + i - 1) % classes)
  end
  return x, y
end

TestMemory = {}

function TestMemory.test_fills_then_stays_at_capacity_and_counts_seen()
  local mem = cl.memory(50, { dim = 3 })
  lu.assertEquals(#mem, 0)
  local g = engram.generator(1)
  for b = 0, 9 do
    local x, y = batch(20 * b, 20, 3, 5)
    mem:add(x, y, 1, nil, g)
    lu.assertEquals(#mem, math.min(20 * (b + 1), 50))
  end
  lu.assertEquals(mem:seen(), 200)
  lu.assertEquals(mem:capacity(), 50)
  lu.assertStrContains(tostring(mem), "50/50 samples of width 3, 200 seen")
  -- every stored sample is one that was offered, with its own label
  local x, y, task = mem:tensors()
  lu.assertEquals(x:size(), { 50, 3 })
  for i = 1, 50 do
    lu.assertEquals(y:get(i), x:get(i, 1) % 5)
    lu.assertEquals(task:get(i), 1)
  end
end

function TestMemory.test_reservoir_inclusion_frequency_is_m_over_n()
  -- 1,000 items into M = 20 with 300 seeds: each block of 100 items expects
  -- 300 * 20 / 10 = 600 survivors (sd ~23).
  local blocks = {}
  for b = 1, 10 do blocks[b] = 0 end
  local x, y = batch(0, 1000, 1, 10)
  for seed = 1, 300 do
    local mem = cl.memory(20, { dim = 1 })
    mem:add(x, y, 0, nil, engram.generator(seed))
    local sx = mem:tensors()
    for i = 1, 20 do
      local b = sx:get(i, 1) // 100 + 1
      blocks[b] = blocks[b] + 1
    end
    mem:close()
  end
  for b = 1, 10 do lu.assertTrue(math.abs(blocks[b] - 600) < 120, "block " .. b .. ": " .. blocks[b]) end
end

function TestMemory.test_balanced_memory_shares_slots_between_classes_seen()
  local mem = cl.memory(60, { dim = 2, balanced = true })
  local g = engram.generator(4)
  for task = 0, 2 do -- classes {2t, 2t+1}, 400 samples each
    local x, y = engram.zeros(800, 2), engram.zeros(800)
    for i = 1, 800 do y:set(i, 2 * task + i % 2) end
    mem:add(x, y, task, nil, g)
    local _, labels = mem:tensors()
    local per = {}
    for i = 1, #mem do
      local c = labels:get(i)
      per[c] = (per[c] or 0) + 1
    end
    local C = 2 * (task + 1)
    for c = 0, C - 1 do
      lu.assertTrue(per[c] <= math.ceil(60 / C), string.format("class %d holds %d", c, per[c]))
    end
    lu.assertEquals(#mem, 60)
  end
end

function TestMemory.test_sample_returns_borrowed_buffers_in_the_added_shape()
  local mem = cl.memory(10, { dim = 4, logits = 2 })
  local x = engram.arange(0, 24):view(6, 1, 2, 2)
  local y = engram.tensor{ 0, 1, 2, 3, 4, 5 }
  local lg = engram.arange(0, 12):view(6, 2)
  mem:add(x, y, 3, lg)
  local sx, sy, st, sl = mem:sample(6, engram.generator(2))
  lu.assertEquals(sx:size(), { 6, 1, 2, 2 })
  lu.assertEquals(sl:size(), { 6, 2 })
  local seen = {}
  for i = 1, 6 do
    local id = sy:get(i)
    seen[id] = true
    lu.assertEquals(sx:get(i, 1, 1, 1), 4 * id) -- rows travel with their labels
    lu.assertEquals(sl:get(i, 2), 2 * id + 1)
    lu.assertEquals(st:get(i), 3)
  end
  for id = 0, 5 do lu.assertTrue(seen[id], "without replacement: every sample once") end
  local sx2 = mem:sample(6)
  lu.assertTrue(rawequal(sx, sx2))
  local before = engram.core.alloc_count()
  for _ = 1, 5 do mem:sample(6) end
  lu.assertEquals(engram.core.alloc_count(), before)
  local big = mem:sample(15) -- more than stored: with replacement
  lu.assertEquals(big:size(1), 15)
end

function TestMemory.test_errors_are_clear()
  lu.assertErrorMsgContains("unknown option 'size' (known: balanced, dim, insert, levels, logits, per_class)",
    cl.memory, 10, { size = 3 })
  lu.assertErrorMsgContains("'dim' (floats per sample) must be an integer >= 1", cl.memory, 10, {})
  lu.assertErrorMsgContains("capacity must be an integer >= 1", cl.memory, 0, { dim = 2 })
  local mem = cl.memory(10, { dim = 4 })
  lu.assertErrorMsgContains("memory_sample: the memory is empty", mem.sample, mem, 2)
  lu.assertErrorMsgContains("memory_add: samples [3x5] does not have rows of width 4", mem.add, mem,
    engram.zeros(3, 5), engram.zeros(3))
  lu.assertErrorMsgContains("labels has 2 elements, expected 3", mem.add, mem, engram.zeros(3, 4), engram.zeros(2))
  lu.assertErrorMsgContains("label 0.5 (sample 0) is not a class id", mem.add, mem, engram.zeros(1, 4),
    engram.tensor{ 0.5 })
  lu.assertErrorMsgContains("stores no logits", mem.add, mem, engram.zeros(1, 4), engram.zeros(1), 0,
    engram.zeros(1, 2))
  mem:close()
  lu.assertErrorMsgContains("attempt to use a closed memory", mem.add, mem, engram.zeros(1, 4), engram.zeros(1))
  lu.assertStrContains(tostring(mem), "closed")
end

function TestMemory.test_load_restores_what_tensors_returned()
  local mem = cl.memory(8, { dim = 4, logits = 2 })
  local ex, ey = mem:tensors()
  lu.assertEquals(ex:size(), { 0, 4 })
  lu.assertEquals(ey:numel(), 0)
  local x, y = batch(0, 30, 4, 3)
  mem:add(x:view(30, 2, 2), y, 2, engram.randn(30, 2), engram.generator(1))
  local sx, sy, st, sl = mem:tensors()
  local copy = cl.memory(8, { dim = 4, logits = 2 })
  copy:load(sx:clone(), sy:clone(), st:clone(), sl:clone(), mem:seen())
  lu.assertEquals(#copy, 8)
  lu.assertEquals(copy:seen(), 30)
  local cx, cy, ct, cl2 = copy:tensors()
  lu.assertEquals(cx:size(), { 8, 2, 2 })
  lu.assertTrue(cx:equal(sx) and cy:equal(sy) and ct:equal(st) and cl2:equal(sl))
  lu.assertErrorMsgContains("memory_load: 9 samples for a capacity of 8", copy.load, copy, engram.zeros(9, 4),
    engram.zeros(9), nil, engram.zeros(9, 2))
end

function TestMemory.test_views_outlive_the_memory()
  local mem = cl.memory(4, { dim = 2 })
  mem:add(engram.ones(2, 2), engram.tensor{ 1, 1 })
  local x = mem:tensors()
  mem:close()
  mem = nil -- luacheck: ignore
  collectgarbage()
  lu.assertEquals(x:sum(), 4)
end

TestPenalty = {}

function TestPenalty.test_quad_penalty_value_and_gradient()
  local theta, anchor = engram.tensor{ 1, 2, 3 }, engram.tensor{ 0, 2, 5 }
  local F, grad = engram.tensor{ 2, 7, 0.5 }, engram.ones(3)
  local v = cl.quad_penalty(theta, anchor, F, 4, grad)
  lu.assertAlmostEquals(v, 2 * (2 + 0 + 0.5 * 4), 1e-9)
  lu.assertTrue(grad:allclose(engram.tensor{ 1 + 8, 1, 1 - 4 }))
  -- its gradient through the shared check and its mutation tests
  engram.seed(5)
  theta, anchor, F = engram.randn(20), engram.randn(20), engram.rand(20)
  grad = engram.zeros(20)
  cl.quad_penalty(theta, anchor, F, 3, grad)
  lu.assertTrue(gc.check("quad_penalty", function() return cl.quad_penalty(theta, anchor, F, 3) end, theta, grad))
  lu.assertErrorMsgContains("quad_penalty: importance has 3 elements, expected 20", cl.quad_penalty, theta,
    anchor, engram.zeros(3), 1)
end

function TestPenalty.test_loss_plus_penalty_over_a_model_passes_the_gradient_check()
  -- as the EWC strategy uses it: the penalty's gradient added to the loss's
  -- in the model's gradient arena
  engram.seed(6)
  local m = engram.nn.mlp { 3, 4, 2, activation = "tanh" }:build { seed = 1 }
  local ce = engram.loss.CrossEntropy()
  local x, y = engram.randn(5, 3), engram.tensor { 0, 1, 1, 0, 1 }
  local g = m:groups()[1]
  local anchor, F = g.params:clone() + engram.randn(g.numel) * 0.3, engram.rand(g.numel)
  local function L() return ce:forward(m:forward(x), y) + cl.quad_penalty(g.params, anchor, F, 2) end
  m:zero_grad()
  local _, gz = ce:forward_backward(m:forward(x), y)
  m:backward(x, gz, false)
  cl.quad_penalty(g.params, anchor, F, 2, g.grads)
  lu.assertTrue(gc.check("cross_entropy + quad_penalty", L, g.params, g.grads:clone()))
end

function TestPenalty.test_importance_accumulation()
  local F = engram.tensor{ 1, 0 }
  cl.sq_accumulate(F, engram.tensor{ 2, -3 }, 0.5)
  lu.assertTrue(F:allclose(engram.tensor{ 3, 4.5 }))
  cl.decay_accumulate(F, engram.tensor{ 1, 1 }, 0.5)
  lu.assertTrue(F:allclose(engram.tensor{ 2.5, 3.25 }))
end

function TestPenalty.test_linear_trick_matches_per_sample_gradients()
  engram.seed(8)
  local B, O, I = 5, 3, 4
  local delta, x = engram.randn(B, O), engram.randn(B, I)
  local FW, Fb = engram.zeros(O, I), engram.zeros(O)
  cl.linear_sq_grad_accumulate(FW, Fb, delta, x, 1 / B)
  local refW, refb = engram.zeros(O, I), engram.zeros(O)
  for n = 1, B do
    local d, xn = delta:narrow(1, n, 1), x:narrow(1, n, 1) -- [1,O], [1,I]
    local gW = d:t():mm(xn)                                -- sample n's dL/dW
    refW:add_(gW:square() / B)
    refb:add_(d:view(O):square() / B)
  end
  lu.assertTrue(FW:allclose(refW, 1e-5, 1e-6))
  lu.assertTrue(Fb:allclose(refb, 1e-5, 1e-6))
end
