-- engram.loss: criteria through the Lua API — gradients against central
-- differences, active classes, borrowed buffers, accuracy and errors.
--
-- Gradient checks go through tests/lua/gradcheck.lua: central differences
-- of the mean loss (a double) with step 1e-2 max(1, |x|) in float32; per
-- tensor ||num - ana|| / max(||num||, ||ana||) <= 2e-3 and per element
-- |num_i - ana_i| <= 2e-3 |num_i| + 5e-4 max|g| — relative, since a mean
-- loss's gradient entries are small (about 1/B); the worst unmutated check
-- is about 1e-5. The same check on the gradient scaled by 1.01, or with
-- each element moved by 1% of the largest magnitude, must fail. The losses
-- are smooth, so no input avoids a kink.
local lu = require("luaunit")
local engram = require("engram")
local gc = require("gradcheck")
local loss = engram.loss

-- crit:backward(x, t) against central differences of crit:forward(x, t)
-- (a mean, in double), through the shared check and its mutation tests.
local function gradcheck(crit, x, t)
  local ok, msg = gc.check(tostring(crit), function() return crit:forward(x, t) end, x, crit:backward(x, t):clone())
  lu.assertTrue(ok, msg)
end

TestLoss = {}

function TestLoss.setUp() engram.seed(7) end

function TestLoss.test_cross_entropy_gradient_matches_finite_differences()
  local x = engram.randn(4, 6) * 2
  gradcheck(loss.CrossEntropy(), x, engram.tensor{ 0, 5, 2, 2 })
  gradcheck(loss.CrossEntropy{ active = { 2, 4 } }, x, engram.tensor{ 2, 4, 4, 2 })
end

function TestLoss.test_mse_bce_and_kl_gradients_match_finite_differences()
  local x = engram.randn(3, 4)
  gradcheck(loss.MSE(), x, engram.randn(3, 4))
  gradcheck(loss.BCEWithLogits(), x, engram.rand(3, 4))
  gradcheck(loss.KLDistill{ T = 2 }, x, engram.randn(3, 4))
  gradcheck(loss.KLDistill{ T = 4, active = { 0, 1, 3 } }, x, engram.randn(3, 4))
end

function TestLoss.test_cross_entropy_of_equal_logits_is_log_of_class_count()
  local x = engram.zeros(5, 10)
  lu.assertAlmostEquals(loss.CrossEntropy():forward(x, engram.tensor{ 0, 1, 2, 3, 9 }), math.log(10), 1e-6)
  local ce = loss.CrossEntropy{ active = { 3, 4, 7 } }
  lu.assertAlmostEquals(ce:forward(x, engram.tensor{ 3, 4, 7, 3, 3 }), math.log(3), 1e-6)
  ce:set_active(nil)
  lu.assertAlmostEquals(ce:forward(x, engram.tensor{ 0, 1, 2, 3, 9 }), math.log(10), 1e-6)
end

function TestLoss.test_active_classes_get_zero_gradient_elsewhere()
  local ce = loss.CrossEntropy():set_active({ 1, 0 })
  local l, g = ce:forward_backward(engram.randn(3, 5), engram.tensor{ 0, 1, 1 })
  lu.assertTrue(l > 0)
  lu.assertEquals(g:narrow(2, 3, 3):abs():sum(), 0)
  lu.assertTrue(g:narrow(2, 1, 2):abs():sum() > 0)
  lu.assertStrContains(tostring(ce), "active={0,1}")
end

function TestLoss.test_backward_reuses_its_buffer_until_the_shape_changes()
  local ce = loss.CrossEntropy()
  local y = engram.tensor{ 1, 2 }
  local g1 = ce:backward(engram.randn(2, 3), y)
  local g2 = ce:backward(engram.randn(2, 3), y)
  lu.assertTrue(rawequal(g1, g2))
  local g3 = ce:backward(engram.randn(3, 3), engram.tensor{ 0, 1, 2 })
  lu.assertFalse(rawequal(g1, g3))
end

function TestLoss.test_forward_backward_equals_forward_then_backward()
  local x, t = engram.randn(4, 3), engram.randn(4, 3)
  local kd = loss.KLDistill{ T = 3 }
  local l, g = kd:forward_backward(x, t)
  lu.assertAlmostEquals(l, kd:forward(x, t), 1e-12)
  lu.assertTrue(g:clone():allclose(kd:backward(x, t)))
end

function TestLoss.test_label_out_of_range_is_a_clear_error()
  local ce = loss.CrossEntropy()
  local x = engram.zeros(4, 10)
  lu.assertErrorMsgContains("cross_entropy: label 12 out of range for 10 classes (sample 4)",
    ce.forward, ce, x, engram.tensor{ 0, 1, 2, 12 })
  lu.assertErrorMsgContains("label 1.5 is not an integer (sample 2)", ce.backward, ce, x,
    engram.tensor{ 0, 1.5, 2, 3 })
  lu.assertErrorMsgContains("labels [3] must have 4 elements", ce.forward, ce, x, engram.tensor{ 0, 1, 2 })
  ce:set_active{ 0, 1 }
  lu.assertErrorMsgContains("label 2 is not an active class (sample 3)", ce.forward, ce, x,
    engram.tensor{ 0, 1, 2, 1 })
  ce:set_active{ 0, 10 }
  lu.assertErrorMsgContains("active class 10 out of range for 10 classes", ce.forward, ce, x,
    engram.tensor{ 0, 0, 0, 0 })
end

function TestLoss.test_errors_point_at_the_callers_line()
  local ok, err = pcall(function()
    return loss.CrossEntropy():forward(engram.zeros(2, 3), engram.tensor{ 0, 3 })
  end)
  lu.assertFalse(ok)
  lu.assertStrContains(err, "test_loss.lua:")
end

function TestLoss.test_shape_mismatch_and_bad_options_are_errors()
  lu.assertErrorMsgContains("mse: input [2x3] does not match target [3x2]", function()
    loss.MSE():forward(engram.zeros(2, 3), engram.zeros(3, 2))
  end)
  lu.assertErrorMsgContains("target 2 at element 0 is outside [0, 1]", function()
    loss.BCEWithLogits():forward(engram.zeros(1, 2), engram.tensor{ { 2, 0 } })
  end)
  lu.assertErrorMsgContains("unknown option 'temperature' (known: T, active)", loss.KLDistill, { temperature = 2 })
  lu.assertErrorMsgContains("temperature T must be a positive number", loss.KLDistill, { T = 0 })
  lu.assertErrorMsgContains("unknown option 'x' (known: active)", loss.CrossEntropy, { x = 1 })
  lu.assertErrorMsgContains("MSE: this criterion has no active classes", function() loss.MSE():set_active{ 1 } end)
  lu.assertErrorMsgContains("active class #2 (-1) is not a class id", loss.CrossEntropy, { active = { 1, -1 } })
  -- what is not a tensor is named before anything reads it
  lu.assertErrorMsgContains("CrossEntropy:forward: the input must be a tensor, got nil",
    function() loss.CrossEntropy():forward(nil, engram.zeros(2)) end)
  lu.assertErrorMsgContains("MSE:backward: the target must be a tensor, got number",
    function() loss.MSE():backward(engram.zeros(2), 3) end)
  lu.assertErrorMsgContains("KLDistill:forward_backward: the input must be a tensor, got boolean",
    function() loss.KLDistill():forward_backward(true, engram.zeros(2)) end)
  lu.assertErrorMsgContains("accuracy: the logits must be a tensor, got number", loss.accuracy, -2, engram.zeros(2))
end

function TestLoss.test_accuracy_counts_correct_rows()
  local x = engram.tensor{ { 5, 1, 0 }, { 0, 2, 3 }, { 9, 0, 8 }, { 0, 1, 0 }, { 7, 0, 1 } }
  local y = engram.tensor{ 0, 1, 2, 1, 2 }
  local acc, n = loss.accuracy(x, y)
  lu.assertEquals(n, 2) -- rows 1 and 4
  lu.assertAlmostEquals(acc, 0.4, 1e-12)
  local _, n2 = loss.accuracy(x, y, { 1, 2 })
  lu.assertEquals(n2, 3) -- rows 3, 4 and 5: class 0 no longer competes
  lu.assertErrorMsgContains("label 3 out of range for 3 classes (sample 4)", loss.accuracy, x,
    engram.tensor{ 0, 1, 2, 3, 0 })
end

function TestLoss.test_a_warm_step_allocates_nothing()
  local ce = loss.CrossEntropy{ active = { 0, 1, 2 } }
  local x, y = engram.randn(8, 5), engram.tensor{ 0, 1, 2, 0, 1, 2, 0, 1 }
  ce:forward_backward(x, y)
  local before = engram.core.alloc_count()
  for _ = 1, 5 do ce:forward_backward(x, y) end
  lu.assertEquals(engram.core.alloc_count(), before)
end
