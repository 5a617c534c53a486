-- Model surgery (engram.nn.surgery): wrap, insert_after, replace, remove,
-- new_group, selectors (paths, names, classes, functions), freezing by layer
-- or parameter name, summary; the arenas of groups that did not change keep
-- their storage, and an optimiser sees new groups at its next step.
local lu = require("luaunit")
local engram = require("engram")
local gradcheck = require("gradcheck")
local nn = engram.nn

-- A Lua-written wrapper: y = 2 * inner(x) + bias (a parameter of its own).
local function doubler(inner)
  local m = { modules = { inner }, name = "Doubler",
    params_spec = { { name = "bias", shape = { inner.out_features } } } }
  function m:reset() self.bias:fill_(0.25) end
  function m:forward(x)
    local y = self.modules[1]:forward(x)
    self.output = y * 2 + self.bias:view(1, -1):expand(y:size(1), y:size(2))
    return self.output
  end
  function m:backward(x, gy, need)
    self.grad_bias:add_(gy:sum(1):view(-1))
    self.grad_input = self.modules[1]:backward(x, gy * 2, need)
    return self.grad_input
  end
  return m
end

local function step(model, x)
  local opt = engram.optim.SGD(model, { lr = 0.1 })
  model:zero_grad()
  local y = model:forward(x)
  model:backward(x, engram.ones(table.unpack(y:size())))
  opt:step()
  return opt
end

-- The error f(...) raised (it must raise one).
local function fails(f, ...)
  local ok, err = pcall(f, ...)
  lu.assertFalse(ok)
  return tostring(err)
end

TestSurgery = {}

function TestSurgery.test_wrap_keeps_the_base_arena_and_puts_new_parameters_in_a_new_group()
  local m = nn.mlp { 6, 5, 3 }:build { seed = 1 }
  local params = m:groups()[1].params
  local before = params:clone()
  local x = engram.randn(4, 6)
  local y0 = m:forward(x):clone()
  local ws = m:wrap("1", function(l, path)
    lu.assertEquals(path, "1")
    return doubler(l)
  end, { group = "dbl" })
  lu.assertEquals(#ws, 1)
  local gs = m:groups()
  lu.assertEquals(#gs, 2)
  lu.assertTrue(rawequal(gs[1].params, params)) -- not re-flattened
  lu.assertEquals(gs[2].name, "dbl")
  lu.assertEquals(gs[2].numel, 5)
  lu.assertTrue(gs[1].params:equal(before))
  lu.assertIs(m:get("1"), ws[1])
  lu.assertIs(m:get("1.1").weight, m:get("1").modules[1].weight)
  -- the wrapper computes what it should: 2 * Linear + 0.25 before the ReLU
  local l1 = m:get("1.1")
  local want = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3)):build { seed = 1 }
  want.modules[1].weight:copy_(l1.weight * 2)
  want.modules[1].bias:copy_(l1.bias * 2 + 0.25)
  want.modules[3].weight:copy_(m:get("3").weight)
  want.modules[3].bias:copy_(m:get("3").bias)
  lu.assertTrue(m:forward(x):allclose(want:forward(x), 1e-5, 1e-6))
  lu.assertFalse(m:forward(x):equal(y0))
  -- the optimiser made before the wrap trains the new group from its next step
  local opt = engram.optim.SGD(m, { lr = 0.1 })
  m:zero_grad()
  m:backward(x, engram.ones(4, 3))
  local b0 = gs[2].params:clone()
  opt:step()
  lu.assertFalse(gs[2].params:equal(b0))
  lu.assertEquals(gradcheck.module(m, engram.randn(3, 6), { what = "wrapped mlp" }), {})
end

function TestSurgery.test_selectors_take_paths_names_classes_functions_and_lists()
  local enc = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4))
  enc.name = "encoder"
  local m = nn.Sequential(enc, nn.Linear(4, 2)):build { seed = 2 }
  lu.assertIs(m:get("encoder.3"), enc.modules[3])
  lu.assertIs(m:get("1.3"), enc.modules[3])
  local lin = m:find("Linear")
  lu.assertEquals(#lin, 3)
  lu.assertEquals({ lin[1].path, lin[2].path, lin[3].path }, { "1.1", "1.3", "2" })
  local f = m:find(function(mod, path) return mod.out_features == 2 and path == "2" end)
  lu.assertEquals(#f, 1)
  lu.assertEquals(#m:find({ "2", "encoder.1", "2" }), 2) -- each once
end

function TestSurgery.test_selectors_that_match_nothing_are_errors_naming_them()
  local m = nn.mlp { 4, 3, 2 }:build { seed = 3 }
  local err = fails(m.wrap, m, "7", function(l) return doubler(l) end)
  lu.assertStrContains(err, "wrap: no module at path '7'")
  lu.assertStrContains(err, "has 3 modules")
  err = fails(m.freeze_layers, m, "Conv2d")
  lu.assertStrContains(err, "freeze_layers: 'Conv2d' matches no module")
  err = fails(m.get, m, "1.2")
  lu.assertStrContains(err, "no module at path '1.2': '1' (Linear(4->3)) has no modules")
  err = fails(m.insert_after, m, "encoder.2", nn.ReLU())
  lu.assertStrContains(err, "no module at path 'encoder.2'")
  err = fails(m.freeze_params, m, "nothing_like_this")
  lu.assertStrContains(err, "no parameter name matches 'nothing_like_this'")
end

function TestSurgery.test_wrapping_twice_by_accident_is_an_error()
  local m = nn.mlp { 4, 3, 2 }:build { seed = 4 }
  m:wrap("1", doubler)
  local err = fails(m.wrap, m, "Linear", doubler)
  lu.assertStrContains(err, "at '1.1' is already wrapped (Doubler at '1'); pass again = true")
  err = fails(m.wrap, m, "1", doubler)
  lu.assertStrContains(err, "at '1' is already wrapped")
  lu.assertEquals(#m:groups(), 2) -- nothing changed by the failed calls
  m:wrap("1", doubler, { again = true })
  lu.assertEquals(#m:groups(), 3)
  err = fails(m.wrap, m, "3", function() return nn.ReLU() end)
  lu.assertStrContains(err, "must return a new module holding the layer (at '3' it returned ReLU)")
end

function TestSurgery.test_insert_replace_remove_change_the_chain_and_make_groups()
  local m = nn.mlp { 4, 3, 2 }:build { seed = 5 }
  local base_params = m:groups()[1].params
  local x = engram.randn(2, 4)
  m:insert_after("2", nn.Linear(3, 3))
  lu.assertEquals(#m.modules, 4)
  lu.assertEquals(m:groups()[2].name, "insert1")
  lu.assertEquals(m:forward(x):size(), { 2, 2 })
  m:insert_after("ReLU", function() return nn.Tanh() end) -- no parameters: no group
  lu.assertEquals(#m:groups(), 2)
  lu.assertEquals(m:get("3").__name, "Tanh")
  local new = m:replace("5", nn.Linear(3, 5), { group = "wide" })[1]
  lu.assertEquals(m:forward(x):size(), { 2, 5 })
  lu.assertEquals(m:groups()[3].name, "wide")
  lu.assertIs(m:get("5"), new)
  m:remove("2") -- the ReLU: the gradient check below stays away from kinks
  lu.assertEquals(#m.modules, 4)
  lu.assertEquals(m:get("2").__name, "Tanh")
  lu.assertTrue(rawequal(m:groups()[1].params, base_params))
  local err = fails(m.insert_after, m, "Linear", nn.ReLU())
  lu.assertStrContains(err, "3 modules match; give a function")
  engram.seed(11)
  lu.assertEquals(gradcheck.module(m, engram.randn(3, 4), { what = "after surgery" }), {})
end

function TestSurgery.test_insert_after_outside_a_sequential_is_an_error()
  local m = nn.MultiHead(nn.Linear(3, 3), { nn.Linear(3, 2) }):build { seed = 6 }
  local err = fails(m.insert_after, m, "1", nn.ReLU())
  lu.assertStrContains(err, "is in a MultiHead; modules are inserted in a Sequential")
end

function TestSurgery.test_freeze_layers_and_params_keep_values_and_count_as_not_trainable()
  local m = nn.mlp { 5, 4, 3 }:build { seed = 7 }
  m:freeze_layers("1")
  lu.assertEquals(m:numel { trainable = true }, 3 * 4 + 3)
  local w1, w3 = m:get("1").weight:clone(), m:get("3").weight:clone()
  step(m, engram.randn(6, 5))
  lu.assertTrue(m:get("1").weight:equal(w1))
  lu.assertFalse(m:get("3").weight:equal(w3))
  lu.assertTrue(m:get("1")._frozen)
  m:unfreeze_layers("1")
  lu.assertNil(m:groups()[1].mask)
  m:freeze_params("bias$")
  lu.assertEquals(m:numel { trainable = true }, 4 * 5 + 3 * 4)
  local b1 = m:get("1").bias:clone()
  w1 = m:get("1").weight:clone()
  step(m, engram.randn(6, 5))
  lu.assertTrue(m:get("1").bias:equal(b1))
  lu.assertFalse(m:get("1").weight:equal(w1))
  m:unfreeze_params("bias")
  lu.assertEquals(m:numel { trainable = true }, m:numel())
  -- a group masked whole is reported frozen (optimisers skip it in one test)
  m:freeze_layers("Linear")
  lu.assertTrue(m:groups()[1].frozen)
  m:unfreeze_layers("3")
  lu.assertFalse(m:groups()[1].frozen)
end

function TestSurgery.test_new_group_adopts_modules_placed_in_the_tree()
  local m = nn.mlp { 3, 2 }:build { seed = 8 }
  local h = nn.Linear(2, 2)
  m.modules[#m.modules + 1] = h -- as a container's own method would place it
  lu.assertEquals(m:new_group("mine", { h }, { seed = 1 }), "mine")
  lu.assertEquals(m:groups()[2].numel, 6)
  lu.assertEquals(m:forward(engram.randn(1, 3)):size(), { 1, 2 })
  local err = fails(m.new_group, m, "again", { h })
  lu.assertStrContains(err, "has its parameters in group 'mine' already")
  err = fails(m.new_group, m, "out", { nn.Linear(2, 2) })
  lu.assertStrContains(err, "is not in the model")
end

function TestSurgery.test_summary_shows_shapes_parameters_groups_and_trainable_flags()
  local m = nn.mlp { 784, 400, 10 }:build { seed = 9 }
  m:insert_after("2", nn.Linear(400, 400), { group = "extra" })
  m:freeze("base")
  local text = m:summary({ 2, 784 }, { quiet = true })
  lu.assertStrContains(text, "Linear(784->400) (1)")
  lu.assertStrMatches(text, ".*Linear%(784%->400%) %(1%)%s+2x400%s+314,000%s+base%s+no\n.*")
  lu.assertStrMatches(text, ".*Linear%(400%->400%) %(3%)%s+2x400%s+160,400%s+extra%s+yes\n.*")
  lu.assertStrContains(text, "Trainable params: 160,400 (")
  lu.assertStrContains(text, "group base")
  lu.assertStrContains(text, "frozen")
  local err = fails(m.summary, m, { 2, 5 }, { quiet = true })
  lu.assertStrContains(err, "summary: the forward failed")
  -- the forward hooks are gone afterwards
  lu.assertNil(rawget(m:get("1"), "forward"))
end
