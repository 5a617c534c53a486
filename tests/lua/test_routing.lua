-- Per-sample task routing: a Switch sends each sample of a mixed batch
-- through its own key's module (forward and backward), and the heads
-- strategy routes replayed samples through their own task's head whatever
-- the order the strategies were added in.
local lu = require("luaunit")
local engram = require("engram")
local nn, S = engram.nn, engram.strategies

TestRouting = {}

function TestRouting.test_a_routed_switch_equals_each_module_on_its_own_rows()
  local a, b = nn.Linear(4, 3), nn.Linear(4, 3)
  local sw = nn.Switch { passthrough = false }
  sw:add(1, a); sw:add(2, b)
  local model = nn.Sequential(sw):build { seed = 3 }
  local x, gy = engram.randn(5, 4), engram.randn(5, 3)
  local keys = engram.tensor { 2, 1, 2, 2, 1 }
  sw:route(keys)
  local y = model:forward(x):clone()
  model:zero_grad()
  local gx = model:backward(x, gy):clone()
  local gwa, gwb = a.grad_weight:clone(), b.grad_weight:clone()
  sw:route(nil)
  -- by hand: rows 2, 5 through a; rows 1, 3, 4 through b
  local ra, rb = { 2, 5 }, { 1, 3, 4 }
  model:zero_grad()
  local ya = a:forward(x:index(ra)):clone()
  local ga = a:backward(x:index(ra), gy:index(ra)):clone()
  local yb = b:forward(x:index(rb)):clone()
  local gb = b:backward(x:index(rb), gy:index(rb)):clone()
  lu.assertTrue(y:index(ra):allclose(ya, 1e-6) and y:index(rb):allclose(yb, 1e-6))
  lu.assertTrue(gx:index(ra):allclose(ga, 1e-6) and gx:index(rb):allclose(gb, 1e-6))
  lu.assertTrue(gwa:allclose(a.grad_weight, 1e-6) and gwb:allclose(b.grad_weight, 1e-6))
  -- unrouted again: the selected module for every row
  sw:select(1)
  lu.assertTrue(model:forward(x):allclose(a:forward(x), 1e-6))
  sw:route(engram.tensor { 1, 3, 1, 1, 1 })
  lu.assertErrorMsgContains("no module for", model.forward, model, x)
  sw:route(engram.tensor { 1, 2 })
  lu.assertErrorMsgContains("2 routing keys for a batch of 5", model.forward, model, x)
  lu.assertErrorMsgContains("Switch:route: keys must be", sw.route, sw, 3)
end

-- Replay with per-task heads in task-IL: each replayed sample goes through
-- its own task's (frozen) head, so replay protects the shared layers. On a
-- Split Fashion-MNIST subset: heads alone forget a little, heads + replay
-- less, in either order of use.
function TestRouting.test_replay_with_per_task_heads_routes_each_sample_to_its_head()
  local train, test = engram.data.fashion_mnist { normalize = true }
  local scen = engram.scenarios.split(train, test, { tasks = 5, samples = 2000, test_samples = 500, seed = 1,
    scenario = "task" })
  local function go(list)
    local L = engram.learner(nn.mlp { 784, 256, 10 }:build { seed = 1 },
      { epochs = 1, batch = 64, lr = 0.001, quiet = true })
    for _, s in ipairs(list) do L:use(s) end
    return L:run(scen)
  end
  local heads = go { S.heads {} }
  local first = go { S.heads {}, S.replay { memory = 500 } }
  local second = go { S.replay { memory = 500 }, S.heads {} }
  lu.assertTrue(first.forgetting < heads.forgetting, string.format("forgetting: heads + replay %.4f, heads %.4f",
    first.forgetting, heads.forgetting))
  lu.assertEquals(first.acc, second.acc) -- the order of use does not matter
end
