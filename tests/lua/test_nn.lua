-- engram.nn: containers, Lua-written modules, parameter groups, errors,
-- gradient checks of every layer and through containers, and a tiny model
-- that overfits.
--
-- Gradient checks go through tests/lua/gradcheck.lua (as the C suites go
-- through tests/c/gradcheck.h): L = sum(y * r) for a smooth random r in
-- [-1, 1], summed in double; central differences with step 1e-2 max(1, |v|)
-- in float32; per tensor ||num - ana|| / max(||num||, ||ana||) <= 2e-3 and
-- per element |num_i - ana_i| <= 2e-3 |num_i| + 5e-4 max|g|, relative
-- measures that hold for small entries (the old tol * (1 + |num|) with tol
-- 1e-2 passed anything on entries of 1e-3). The worst unmutated check is
-- about 2.5e-4 (the seven-layer model), 8x below. Each check also runs on
-- the gradient scaled by 1.01 and with each element moved by 1% of the
-- largest magnitude, and those must fail.
-- ReLU/LeakyReLU inputs sit at |x| >= 0.1 where the test controls them,
-- MaxPool inputs are distinct and 0.05 apart (more than any step).
local lu = require("luaunit")
local engram = require("engram")
local gradcheck = require("gradcheck")
local nn = engram.nn

-- Values away from zero so a ReLU kink never sits inside [x - eps, x + eps].
local function away(...)
  local t = engram.rand(...) * 0.9 + 0.1
  local s = engram.rand(...):gt(0.5) * 2 - 1
  return t * s
end

-- Kinks: a finite difference across a ReLU/LeakyReLU kink or a MaxPool tie
-- measures neither side. One step moves a value that reaches such a layer
-- by at most about 0.01 here (weights within 1/sqrt(fan_in), inputs within
-- 1), so these inputs keep every such value 0.02 from a kink and every
-- pool window's largest value 0.03 above its second.
local function min_abs(t) return t:abs():min() end
-- The smallest gap between the largest and second-largest value of the
-- k x k windows (stride k, no padding) of t [N,C,H,W].
local function pool_gap(t, k)
  local N, C, H, W = table.unpack(t:size())
  local gap = math.huge
  for n = 1, N do
    for c = 1, C do
      for i = 1, H - k + 1, k do
        for j = 1, W - k + 1, k do
          local a, b = -math.huge, -math.huge
          for di = 0, k - 1 do
            for dj = 0, k - 1 do
              local v = t:get(n, c, i + di, j + dj)
              if v > a then a, b = v, a elseif v > b then b = v end
            end
          end
          gap = math.min(gap, a - b)
        end
      end
    end
  end
  return gap
end
-- Draws inputs with draw() until ok(x) holds (a few tries for these shapes).
local function draw_until(draw, ok)
  for _ = 1, 1000 do
    local x = draw()
    if ok(x) then return x end
  end
  error("no input away from the kinks in 1000 draws")
end

-- A module written in Lua: y = x * scale (one parameter per feature).
local function lua_scale(d)
  local m = { params_spec = { { name = "scale", shape = { d } } }, name = "Scale" }
  function m:reset() self.scale:fill_(1.5) end
  function m:forward(x)
    self.output = x * self.scale:view(1, d):expand(x:size(1), d)
    return self.output
  end
  function m:backward(x, gy)
    self.grad_scale:add_((gy * x):sum(1):view(d))
    return gy * self.scale:view(1, d):expand(x:size(1), d)
  end
  return m
end

TestNN = {}

function TestNN.test_sequential_gradients_match_finite_differences()
  engram.seed(101) -- the default generator's state must not depend on test order
  local m = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 5), nn.GELU(), nn.LayerNorm(5),
    nn.Linear(5, 3), nn.LogSoftmax()):build { seed = 1 }
  local bad = gradcheck.module(m, engram.randn(3, 4),
    { what = "Sequential(Linear, Tanh, Linear, GELU, LayerNorm, Linear, LogSoftmax)" })
  lu.assertEquals(bad, {})
end

function TestNN.test_concat_and_a_lua_module_gradients_match_finite_differences()
  engram.seed(102)
  local m = nn.Sequential(nn.Linear(3, 4), nn.Concat(2, nn.Sequential(nn.Linear(4, 2), nn.Sigmoid()),
    lua_scale(4), nn.Softmax()), nn.Linear(10, 2)):build { seed = 2 }
  lu.assertEquals(m:forward(engram.randn(5, 3)):size(), { 5, 2 })
  lu.assertEquals(gradcheck.module(m, engram.randn(2, 3), { what = "Concat with a Lua module" }), {})
end

function TestNN.test_cnn_gradients_match_finite_differences()
  engram.seed(103)
  local m = nn.Sequential(nn.Conv2d(1, 2, 3, { padding = 1 }), nn.LeakyReLU(0.1), nn.MaxPool2d(2),
    nn.Flatten(), nn.Linear(8, 3)):build { seed = 3 }
  local x = draw_until(function() return engram.rand(1, 1, 4, 4) * 2 - 1 end, function(x)
    m:forward(x)
    return min_abs(m.modules[1].output) >= 0.02 and pool_gap(m.modules[2].output, 2) >= 0.03
  end)
  lu.assertEquals(gradcheck.module(m, x, { what = "Sequential(Conv2d, LeakyReLU, MaxPool2d, Flatten, Linear)" }), {})
end

function TestNN.test_multihead_trains_only_the_selected_head()
  engram.seed(104)
  local trunk = nn.Sequential(nn.Linear(3, 4), nn.ReLU())
  local m = nn.MultiHead(trunk, { nn.Linear(4, 2), nn.Linear(4, 2) }):build { seed = 4 }
  local x = draw_until(function() return away(2, 3) end, function(x)
    trunk:forward(x)
    return min_abs(trunk.modules[1].output) >= 0.02
  end)
  m:set_head(2)
  lu.assertEquals(gradcheck.module(m, x), {})
  m:zero_grad()
  m:forward(x)
  m:backward(x, engram.ones(2, 2))
  local head1 = m.modules[2]
  lu.assertEquals(head1.grad_weight:norm(), 0)
  lu.assertTrue(m.modules[3].grad_weight:norm() > 0)
  lu.assertErrorMsgContains("out of range 1..2", function() m:set_head(3) end)
end

function TestNN.test_zero_grad_of_a_module_inside_a_model_zeroes_its_subtree()
  -- used to fail with "attempt to index a nil value": only the root holds the groups
  local m = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Sequential(nn.Linear(4, 2))):build { seed = 5 }
  local x = away(2, 3)
  m:forward(x)
  m:backward(x, engram.ones(2, 2))
  local first, last = m.modules[1], m.modules[3].modules[1]
  lu.assertTrue(first.grad_weight:norm() > 0 and last.grad_weight:norm() > 0)
  lu.assertIs(m.modules[3]:zero_grad(), m.modules[3])
  lu.assertEquals(last.grad_weight:norm() + last.grad_bias:norm(), 0)
  lu.assertTrue(first.grad_weight:norm() > 0) -- outside the subtree: untouched
  m:zero_grad()
  local _, g = m:flat()
  lu.assertEquals(g:norm(), 0)
end

function TestNN.test_a_module_inside_a_model_answers_for_its_own_parameters()
  -- parameters/flat/numel/groups on a layer of a built model used to fail
  -- with "attempt to index a nil value"
  local m = nn.mlp { 4, 3, 2 }:build { seed = 6 }
  local last = m.modules[3]
  local names = {}
  for _, e in ipairs(last:parameters()) do names[#names + 1] = e.name .. ":" .. table.concat(e.shape, "x") end
  lu.assertEquals(names, { "3.weight:2x3", "3.bias:2" })
  lu.assertEquals({ last:numel(), m.modules[1]:numel(), m.modules[2]:numel(), m:numel() }, { 8, 15, 0, 23 })
  local p = last:flat()
  local P = m:flat()
  lu.assertEquals(p:numel(), 8)
  lu.assertEquals(#last:groups(), 1)
  lu.assertEquals(last:groups()[1].grads:numel(), 8)
  p:fill_(7)
  lu.assertEquals(P:narrow(1, 16, 8):sum(), 56) -- a view of the model's arena
  lu.assertTrue(P:narrow(1, 1, 15):max() < 7)
  lu.assertErrorMsgContains("ReLU has no parameters", function() m.modules[2]:flat() end)
  lu.assertErrorMsgContains("Linear(3->2) is inside a model; call freeze on the model",
    function() last:freeze() end)
  lu.assertErrorMsgContains("call add_group on the model", function() last:add_group("x", nn.Linear(2, 2)) end)
  m:freeze("base")
  lu.assertTrue(last:groups()[1].frozen)
  lu.assertEquals(last:numel { trainable = true }, 0)
end

function TestNN.test_an_optimiser_over_one_layer_trains_that_layer_only()
  local m = nn.mlp { 4, 3, 2 }:build { seed = 7 }
  local opt = engram.optim.SGD(m.modules[3], { lr = 0.1 })
  local before = m:flat():clone()
  local x, y = away(5, 4), engram.tensor { 0, 1, 0, 1, 1 }
  m:zero_grad()
  local _, gz = engram.loss.CrossEntropy():forward_backward(m:forward(x), y)
  m:backward(x, gz, false)
  opt:step()
  local moved = (m:flat() - before):abs()
  lu.assertEquals(moved:narrow(1, 1, 15):max(), 0)
  lu.assertTrue(moved:narrow(1, 16, 8):max() > 0)
  -- its state persists from step to step (it is keyed by the params view)
  local adam = engram.optim.Adam(m.modules[3])
  adam:step(); adam:step()
  lu.assertEquals(adam:state_dict().groups.base.t, 2)
  lu.assertIs(m.modules[3]:groups()[1].params, m.modules[3]:groups()[1].params)
end

function TestNN.test_copy_params_between_layers_of_two_models()
  local a, b = nn.mlp { 4, 3, 2 }:build { seed = 8 }, nn.mlp { 4, 3, 2 }:build { seed = 9 }
  b.modules[3]:copy_params(a.modules[3])
  lu.assertEquals((b.modules[3].weight - a.modules[3].weight):abs():max(), 0)
  lu.assertTrue((b.modules[1].weight - a.modules[1].weight):abs():max() > 0)
  lu.assertErrorMsgContains("copy_params: group 'base'", function() b.modules[1]:copy_params(a.modules[3]) end)
end

function TestNN.test_a_module_sits_in_one_place_of_one_tree()
  -- a module keeps its own buffers: a second place would overwrite what the
  -- first saved for backward; a container inside itself never ended (walks
  -- of the tree recursed until the C stack ran out)
  local a = nn.Linear(3, 3)
  lu.assertErrorMsgContains("Sequential: Linear(3->3) is already in this container", nn.Sequential, a, a)
  lu.assertErrorMsgContains("Concat: Linear(3->3) is already in this container", nn.Concat, 2, a, a)
  local s = nn.Sequential(nn.Linear(3, 3))
  lu.assertErrorMsgContains("Sequential (12 parameters) contains this container", function() s:add(s) end)
  local outer = nn.Sequential(s)
  lu.assertErrorMsgContains("contains this container", function() s:add(outer) end)
  local m = nn.Sequential(a, nn.Concat(2, a, nn.Linear(3, 1)))
  lu.assertErrorMsgContains("build: Linear(3->3) sits in two places of the model",
    function() m:forward(engram.zeros(2, 3)) end)
  local r = nn.mlp { 3, 3, 2 }:build { seed = 1 }
  lu.assertErrorMsgContains("add_group: Linear(3->3) is already in the model",
    function() r:add_group("x", r.modules[1]) end)
  lu.assertErrorMsgContains("add_group: Sequential (20 parameters) is already in the model",
    function() r:add_group("x", r) end)
  local h = nn.Linear(2, 2)
  lu.assertErrorMsgContains("add_group: Linear(2->2) is given twice", function() r:add_group("x", h, h) end)
  lu.assertEquals(#r.modules, 3) -- nothing attached by the calls that failed
end

function TestNN.test_a_build_that_fails_leaves_the_modules_unbuilt()
  local m = nn.Sequential(nn.Linear(3, 2), nn.LayerNorm(2 ^ 41))
  lu.assertErrorMsgContains("declare", function() m:build { seed = 1 } end)
  lu.assertNil(rawget(m.modules[1], "_group"))
  lu.assertErrorMsgContains("LayerNorm(2199023255552):reset: the module is not built",
    function() m.modules[2]:reset() end)
end

function TestNN.test_bad_arguments_to_containers_and_methods_are_named_errors()
  lu.assertErrorMsgContains("Sequential: not a module", nn.Sequential, 5)
  lu.assertErrorMsgContains("MultiHead: the heads must be a module or a list of modules, got boolean",
    nn.MultiHead, nn.Linear(2, 2), true)
  local mh = nn.MultiHead(nn.Linear(2, 2)):build { seed = 1 }
  lu.assertErrorMsgContains("MultiHead: no heads", function() mh:backward(engram.zeros(1, 2), engram.zeros(1, 2)) end)
  local c = nn.Concat(2, nn.Linear(2, 1), nn.Linear(2, 1))
  lu.assertErrorMsgContains("Concat:backward: no forward before it",
    function() c:backward(engram.zeros(1, 2), engram.zeros(1, 2)) end)
  -- nor after a forward that failed (a branch passed a non-tensor through)
  local cd = nn.Concat(2, nn.Identity(), nn.Identity())
  lu.assertError(function() cd:forward(3) end)
  lu.assertErrorMsgContains("Concat:backward: no forward before it", function() cd:backward(3, engram.zeros(1, 2)) end)
  local m = nn.mlp { 2, 2 }:build { seed = 1 }
  lu.assertErrorMsgContains("load_flat: the values must be a tensor, got string", function() m:load_flat("x") end)
  lu.assertErrorMsgContains("copy_params: the source must be a module, got table",
    function() m:copy_params(engram.optim.SGD(m)) end)
  lu.assertErrorMsgContains("cnn: channels[2] must be positive", nn.cnn, { channels = { 4, 0 } })
  lu.assertErrorMsgContains("cnn: dropout must be a number", nn.cnn, { dropout = {} })
end

function TestNN.test_a_clone_of_a_module_inside_a_model_holds_its_subtree_alone()
  -- it used to copy the whole group it lived in (every other layer's values too)
  local inner = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2))
  local m = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), inner):build { seed = 11 }
  engram.seed(5)
  local want = engram.rand(3)
  engram.seed(5)
  local c = inner:clone()
  lu.assertEquals((engram.rand(3) - want):abs():max(), 0) -- the default generator is untouched
  lu.assertEquals(c:numel(), 23)
  local _, g = c:flat()
  lu.assertEquals(g:numel(), 23)
  local x = away(2, 4)
  lu.assertEquals((c:forward(x) - inner:forward(x)):abs():max(), 0)
  c.modules[1].weight:fill_(0) -- its own arena
  lu.assertTrue(inner.modules[1].weight:abs():max() > 0)
  local names = {}
  for _, e in ipairs(c:parameters()) do names[#names + 1] = e.name end
  lu.assertEquals(names, { "1.weight", "1.bias", "3.weight", "3.bias" })
  m:freeze("base")
  lu.assertTrue(m.modules[1]:clone():groups()[1].frozen)
end

function TestNN.test_embedding_gradient_matches_finite_differences()
  engram.seed(105)
  local m = nn.Sequential(nn.Embedding(5, 3), nn.Flatten(), nn.Linear(6, 2)):build { seed = 5 }
  local ids = engram.tensor { { 0, 4 }, { 2, 2 } }
  lu.assertEquals(m:forward(ids):size(), { 2, 2 })
  lu.assertEquals(gradcheck.module(m, ids, { no_input = true, what = "Sequential(Embedding, Flatten, Linear)" }), {})
  lu.assertErrorMsgContains("not an integer in [0, 5)", function() m:forward(engram.tensor { { 5, 0 } }) end)
end

-- Each layer alone, inside a Sequential (which builds its parameters).
local function check_layer(layer, x, opts)
  return gradcheck.module(nn.Sequential(layer):build { seed = 1 }, x, opts)
end

function TestNN.test_linear_gradients_pass_the_check_and_fail_its_mutations()
  engram.seed(130)
  lu.assertEquals(check_layer(nn.Linear(4, 3), engram.randn(2, 4)), {})
  lu.assertEquals(check_layer(nn.Linear(4, 3, { bias = false }), engram.randn(2, 3, 4)), {}) -- leading dimensions
end

function TestNN.test_activation_gradients_pass_the_check_and_fail_its_mutations()
  engram.seed(131)
  local layers = { nn.ReLU(), nn.LeakyReLU(0.1), nn.Tanh(), nn.Sigmoid(), nn.GELU(), nn.Softmax(), nn.LogSoftmax() }
  for _, layer in ipairs(layers) do
    lu.assertEquals(check_layer(layer, away(3, 5) * 2), {}, tostring(layer))
  end
end

function TestNN.test_dropout_gradient_in_training_mode_passes_the_check()
  engram.seed(132)
  local x = engram.randn(3, 6)
  local d = nn.Dropout(0.3)
  local reseed = function() engram.seed(9) end -- the same mask at every forward
  lu.assertEquals(check_layer(d, x, { before = reseed }), {})
  lu.assertTrue(d.output:eq(0):sum() > 0) -- some elements were dropped
end

function TestNN.test_layernorm_gradients_pass_the_check_and_fail_its_mutations()
  engram.seed(133)
  local m = nn.Sequential(nn.LayerNorm(5)):build { seed = 1 }
  local ln = m.modules[1]
  ln.weight:copy_(engram.rand(5) + 0.5) -- not the initial ones and zeros
  ln.bias:copy_(engram.randn(5))
  lu.assertEquals(gradcheck.module(m, engram.randn(3, 5) * 2), {})
  lu.assertEquals(check_layer(nn.LayerNorm(4, { affine = false }), engram.randn(2, 3, 4)), {})
end

function TestNN.test_view_layers_pass_the_gradient_check()
  engram.seed(134)
  lu.assertEquals(check_layer(nn.Flatten(), engram.randn(2, 2, 3)), {})
  lu.assertEquals(check_layer(nn.Reshape { 3, 2 }, engram.randn(2, 6)), {})
  lu.assertEquals(check_layer(nn.Identity(), engram.randn(2, 3)), {})
end

function TestNN.test_conv2d_gradients_pass_the_check_and_fail_its_mutations()
  engram.seed(135)
  lu.assertEquals(check_layer(nn.Conv2d(2, 3, 3, { stride = 2, padding = 1 }), engram.randn(2, 2, 5, 4)), {})
  lu.assertEquals(check_layer(nn.Conv2d(1, 2, 2, { bias = false }), engram.randn(1, 1, 3, 4)), {})
end

function TestNN.test_maxpool2d_gradients_pass_the_check_and_fail_its_mutations()
  engram.seed(136)
  -- distinct values 0.05 apart in [-1.5, 1.5): a step (at most 0.015) never changes a window's maximum
  local x = ((engram.randperm(60) - 1) * 0.05 - 1.5):view(2, 2, 5, 3)
  lu.assertEquals(check_layer(nn.MaxPool2d(2), x), {})
  lu.assertEquals(check_layer(nn.MaxPool2d(3, { stride = 2, padding = 1 }), x), {})
end

function TestNN.test_embedding_alone_passes_the_gradient_check()
  engram.seed(137)
  lu.assertEquals(check_layer(nn.Embedding(4, 3), engram.tensor { { 3, 0, 3 } }, { no_input = true }), {})
end

function TestNN.test_builders_pass_the_gradient_check()
  engram.seed(138)
  local m = nn.mlp { 4, 5, 3, activation = "gelu", layernorm = true }:build { seed = 1 }
  lu.assertEquals(gradcheck.module(m, engram.randn(2, 4), { what = "mlp" }), {})
  local c = nn.cnn { input = { 1, 4, 4 }, channels = { 2 }, hidden = 3, classes = 2 }:build { seed = 2 }
  -- modules: Reshape, Conv2d, ReLU, MaxPool2d, Flatten, Linear, ReLU, Linear
  local x = draw_until(function() return engram.rand(1, 16) * 2 - 1 end, function(x)
    c:forward(x)
    return min_abs(c.modules[2].output) >= 0.02 and pool_gap(c.modules[3].output, 2) >= 0.03
      and min_abs(c.modules[6].output) >= 0.02
  end)
  lu.assertEquals(gradcheck.module(c, x, { what = "cnn" }), {})
end

function TestNN.test_the_gradient_check_fails_a_gradient_off_by_one_and_a_half_percent()
  -- a Lua module whose weight gradient is 1.5% too large (what tol * (1 + |num|)
  -- with tol 2e-2 passed), and one whose gradient is wrong in one element only
  engram.seed(139)
  local function scaled(f, only_first)
    local m = lua_scale(4)
    local backward = m.backward
    function m:backward(x, gy)
      local before = self.grad_scale:clone()
      local gx = backward(self, x, gy)
      local d = self.grad_scale - before
      if only_first then d:narrow(1, 1, 1):mul_(f) else d:mul_(f) end
      self.grad_scale:copy_(before + d)
      return gx
    end
    return m
  end
  local x = engram.randn(3, 4)
  lu.assertEquals(gradcheck.module(nn.Sequential(lua_scale(4)):build { seed = 1 }, x, { what = "Scale" }), {})
  local bad = gradcheck.module(nn.Sequential(scaled(1.015)):build { seed = 1 }, x, { what = "Scale, 1.5% off" })
  lu.assertEquals(#bad, 1)
  lu.assertStrContains(bad[1], "base: FAILED")
  bad = gradcheck.module(nn.Sequential(scaled(1.05, true)):build { seed = 1 }, x, { what = "Scale, one element off" })
  lu.assertEquals(#bad, 1)
  lu.assertStrContains(bad[1], "worst element [1]")
end

function TestNN.test_tiny_mlp_overfits_a_tiny_dataset()
  engram.seed(106)
  engram.seed(7)
  local n, classes = 32, 4
  local x = engram.randn(n, 10)
  local labels = {}
  for i = 1, n do labels[i] = (i * 7) % classes end -- arbitrary labels: must be memorised
  local m = nn.mlp { 10, 64, classes }
  m:add(nn.LogSoftmax())
  m:build { seed = 7 }
  local p, g = m:flat()
  local gy = engram.zeros(n, classes)
  for i = 1, n do gy:set(i, labels[i] + 1, -1 / n) end -- d(mean NLL)/d(log-probabilities)
  local function accuracy()
    local y, ok = m:forward(x), 0
    for i = 1, n do
      local best, arg = -math.huge, 0
      for j = 1, classes do
        if y:get(i, j) > best then best, arg = y:get(i, j), j - 1 end
      end
      if arg == labels[i] then ok = ok + 1 end
    end
    return ok / n
  end
  lu.assertTrue(accuracy() < 0.6)
  for _ = 1, 300 do
    m:zero_grad()
    m:forward(x)
    m:backward(x, gy, false)
    engram.core.nn_axpy(p, -0.5, g) -- plain SGD over the flat arena
  end
  lu.assertEquals(accuracy(), 1.0)
end

function TestNN.test_warm_training_step_allocates_nothing()
  engram.seed(107)
  local m = nn.mlp { 20, 16, 16, 3, dropout = 0.2 }:build { seed = 1 }
  local p, g = m:flat()
  local x, gy = engram.randn(8, 20), engram.randn(8, 3)
  local x2, gy2 = engram.randn(4, 20), engram.randn(4, 3)
  local function step()
    m:zero_grad()
    m:forward(x)
    m:backward(x, gy, false)
    engram.core.nn_axpy(p, -0.01, g)
  end
  step(); step()
  local before = engram.core.alloc_count()
  for _ = 1, 5 do step() end
  lu.assertEquals(engram.core.alloc_count(), before)
  -- a smaller batch reuses the buffers too
  m:forward(x2); m:backward(x2, gy2, false)
  lu.assertEquals(engram.core.alloc_count(), before)
end

function TestNN.test_warm_step_with_loss_and_adam_allocates_nothing()
  engram.seed(120)
  local m = nn.mlp { 20, 16, 3 }:build { seed = 1 }
  local ce, opt = engram.loss.CrossEntropy(), engram.optim.Adam(m, { lr = 1e-3 })
  local x, y = engram.randn(8, 20), engram.tensor { 0, 1, 2, 0, 1, 2, 0, 1 }
  local function step()
    opt:zero_grad()
    local z = m:forward(x)
    local _, gz = ce:forward_backward(z, y)
    m:backward(x, gz, false)
    opt:step()
  end
  step(); step()
  local before = engram.core.alloc_count()
  for _ = 1, 5 do step() end
  lu.assertEquals(engram.core.alloc_count(), before)
end

function TestNN.test_wrong_input_width_names_the_layer()
  engram.seed(108)
  local m = nn.mlp { 784, 400, 400, 10 }
  lu.assertErrorMsgContains("Linear(784->400) in module 1 of Sequential: input width 785 does not match 784",
    function() m:forward(engram.zeros(2, 785)) end)
  local outer = nn.Sequential(nn.ReLU(), nn.Sequential(nn.Linear(3, 2)))
  lu.assertErrorMsgContains("in module 2 of Sequential: Linear(3->2) in module 1 of Sequential: input width 4",
    function() outer:forward(engram.zeros(1, 4)) end)
end

function TestNN.test_parameters_are_named_views_into_one_flat_vector()
  engram.seed(109)
  local m = nn.mlp { 4, 3, 2 }:build { seed = 1 }
  local ps = m:parameters()
  lu.assertEquals(#ps, 4)
  lu.assertEquals(ps[1].name, "1.weight")
  lu.assertEquals(ps[1].shape, { 3, 4 })
  lu.assertEquals(ps[4].name, "3.bias")
  lu.assertEquals(ps[4].group, "base")
  local p, g = m:flat()
  lu.assertEquals(p:numel(), 3 * 4 + 3 + 2 * 3 + 2)
  lu.assertEquals(m:numel(), p:numel())
  ps[2].value:fill_(9)    -- 1.bias sits right after 1.weight
  lu.assertEquals(p:get(13), 9)
  g:fill_(1)
  lu.assertEquals(ps[3].grad:sum(), 6)
  m:zero_grad()
  lu.assertEquals(g:sum(), 0)
end

function TestNN.test_build_is_seeded_and_like_pytorch()
  engram.seed(110)
  local a = nn.mlp { 100, 50, 10 }:build { seed = 3 }
  local b = nn.mlp { 100, 50, 10 }:build { seed = 3 }
  local c = nn.mlp { 100, 50, 10 }:build { seed = 4 }
  lu.assertTrue(a:flat():equal(b:flat()))
  lu.assertFalse(a:flat():equal(c:flat()))
  local w = a:parameters()[1].value
  lu.assertTrue(w:max() <= 0.1 and w:min() >= -0.1) -- U(-1/sqrt(100), 1/sqrt(100))
  lu.assertTrue(w:max() > 0.09)
end

function TestNN.test_clone_is_a_deep_copy_with_its_own_arena()
  engram.seed(111)
  local m = nn.mlp { 5, 4, 3, dropout = 0.1 }:build { seed = 1 }
  local c = m:clone()
  local x = engram.randn(2, 5)
  m:evaluate(); c:evaluate()
  lu.assertTrue(c:forward(x):equal(m:forward(x)))
  local pc = c:flat()
  pc:fill_(0)
  lu.assertFalse(m:flat():equal(pc))
  lu.assertEquals(c:parameters()[1].value:sum(), 0) -- the layers see the clone's arena
  c:copy_params(m)
  lu.assertTrue(c:flat():equal(m:flat()))
  c:load_flat(engram.zeros(c:numel()))
  lu.assertEquals(c:flat():sum(), 0)
end

function TestNN.test_train_and_evaluate_switch_dropout()
  engram.seed(112)
  local m = nn.Sequential(nn.Dropout(0.5)):build()
  local x = engram.ones(4, 50)
  lu.assertEquals(m:evaluate(), m)
  lu.assertTrue(m:forward(x):equal(x))
  m:train()
  local y = m:forward(x)
  lu.assertTrue(y:min() == 0 and y:max() == 2)
  engram.seed(11)
  local y1 = m:forward(x):clone()
  engram.seed(11)
  lu.assertTrue(m:forward(x):equal(y1))
end

function TestNN.test_add_after_build_points_to_add_group()
  engram.seed(113)
  local m = nn.mlp { 4, 3, 2 }:build()
  lu.assertErrorMsgContains("add_group", function() m:add(nn.Linear(2, 2)) end)
  local before = m:flat():clone()
  lu.assertEquals(m:add_group("adapter", nn.Linear(2, 2), { seed = 1 }), 4)
  local gs = m:groups()
  lu.assertEquals(#gs, 2)
  lu.assertEquals(gs[1].name, "base")
  lu.assertEquals(gs[2].name, "adapter")
  lu.assertEquals(gs[2].numel, 6)
  lu.assertTrue(gs[1].params:equal(before))
  lu.assertErrorMsgContains("groups()", function() m:flat() end)
  lu.assertEquals(m:forward(engram.randn(3, 4)):size(), { 3, 2 })
  lu.assertEquals(m:parameters()[5].name, "4.weight")
  lu.assertEquals(m:parameters()[5].group, "adapter")
end

function TestNN.test_freeze_skips_parameter_gradients_and_counts()
  engram.seed(114)
  local m = nn.MultiHead(nn.Sequential(nn.Linear(3, 4), nn.ReLU()), nn.Linear(4, 2)):build { seed = 1 }
  local k = m:add_group("head2", nn.Linear(4, 2))
  lu.assertEquals(k, 2) -- the head number
  lu.assertEquals(m:add_group("head3", nn.Linear(4, 2)), 3)
  m:set_head(2)
  m:freeze("base")
  lu.assertEquals(m:numel { trainable = true }, 20)
  lu.assertEquals(m:numel(), 16 + 10 + 10 + 10)
  local x = away(2, 3)
  m:zero_grad()
  m:forward(x)
  m:backward(x, engram.ones(2, 2))
  local gs = m:groups()
  lu.assertTrue(gs[1].frozen)
  lu.assertEquals(gs[1].grads:norm(), 0)
  lu.assertTrue(gs[2].grads:norm() > 0)
  m:unfreeze("base")
  lu.assertFalse(m:groups()[1].frozen)
  lu.assertErrorMsgContains("no parameter group 'nope'", function() m:freeze("nope") end)
end

function TestNN.test_hidden_activations_are_readable()
  engram.seed(115)
  local m = nn.mlp { 4, 3, 2 }:build { seed = 1 }
  local x = engram.randn(5, 4)
  local h = m:forward_to(x, 2):clone()
  lu.assertEquals(h:size(), { 5, 3 })
  m:forward(x)
  lu.assertTrue(m.modules[2].output:equal(h))
  lu.assertTrue(h:min() >= 0)
end

function TestNN.test_tostring_shows_layers_and_sizes()
  engram.seed(116)
  local s = tostring(nn.mlp { 784, 400, 400, 10 })
  lu.assertStrContains(s, "Sequential (478,410 parameters)")
  lu.assertStrContains(s, "(1) Linear(784->400)  [314,000]")
  lu.assertStrContains(s, "(2) ReLU")
  lu.assertStrContains(tostring(nn.cnn()), "Conv2d(1->16, 3x3")
end

function TestNN.test_cnn_builder_accepts_flat_and_image_batches()
  engram.seed(117)
  local m = nn.cnn { channels = { 4 }, hidden = 8 }:build { seed = 1 }
  lu.assertEquals(m:forward(engram.randn(2, 784)):size(), { 2, 10 })
  lu.assertEquals(m:forward(engram.randn(3, 1, 28, 28)):size(), { 3, 10 })
  lu.assertEquals(m:backward(engram.randn(3, 1, 28, 28), engram.randn(3, 10)):size(), { 3, 1, 28, 28 })
end

function TestNN.test_unknown_options_are_errors_naming_the_known_ones()
  engram.seed(118)
  lu.assertErrorMsgContains("unknown option 'activaton' (known: activation, dropout, flatten, layernorm)",
    function() nn.mlp { 4, 2, activaton = "tanh" } end)
  lu.assertErrorMsgContains("unknown activation", function() nn.mlp { 4, 2, activation = "swish" } end)
  lu.assertErrorMsgContains("p must be in [0, 1)", function() nn.Dropout(1) end)
end
