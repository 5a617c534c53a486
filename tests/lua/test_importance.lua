-- The batched path of per-sample importance (strategies.importance) on
-- models beyond a plain MLP: a CNN (Conv2d, ReLU, MaxPool2d, Flatten,
-- Linear), a LayerNorm MLP with Dropout, an Embedding model, a Linear over
-- [B, T, in], a model of two parameter groups (one frozen or not), a
-- MultiHead and nested Sequentials. For EWC's empirical and expected Fisher and MAS, the batched
-- path equals the loop and a brute-force sum over samples of h(that sample's
-- gradient), with the output gradient worked out here by hand and the sums
-- kept in double. Models the batched path cannot take fall back to the
-- loop with a one-line note (once; none when quiet), or are an error naming
-- the module when the caller asks for "batched". EWC and MAS in a learner
-- take the batched path for a CNN.
local lu = require("luaunit")
local engram = require("engram")
local nn = engram.nn
local ewc = require("engram.strategies.ewc")
local mas = require("engram.strategies.mas")
local importance = require("engram.strategies.importance")

-- One output gradient per pass for sample logits z (a Lua array), and its weight.
local function passes(kind, z, y)
  if kind == "mas" then
    local g = {}
    for k, v in ipairs(z) do g[k] = 2 * v end
    return { { g = g, w = 1 } }
  end
  local zmax, sum, p = -math.huge, 0, {}
  for _, v in ipairs(z) do zmax = math.max(zmax, v) end
  for k, v in ipairs(z) do p[k] = math.exp(v - zmax); sum = sum + p[k] end
  for k = 1, #z do p[k] = p[k] / sum end
  local out = {}
  for c = 1, #z do
    if kind == "expected" or c == y + 1 then
      local g = {}
      for k = 1, #z do g[k] = p[k] - (k == c and 1 or 0) end -- d(-log p_c)/dz
      out[#out + 1] = { g = g, w = kind == "expected" and p[c] or 1 }
    end
  end
  return out
end

-- Per group, a Lua array: (1/N) sum_n sum_pass w h(gradient of sample n alone).
local function brute(model, ds, kind)
  local groups = model:groups()
  local want = {}
  for i, g in ipairs(groups) do
    want[i] = {}
    for j = 1, g.numel do want[i][j] = 0 end
  end
  model:evaluate()
  for x, y in ds:chunks { batch = 1, flat = true } do
    local z = model:forward(x):clone()
    for _, p in ipairs(passes(kind, z:view(z:numel()):totable(), y:get(1))) do
      model:zero_grad()
      model:forward(x)
      model:backward(x, engram.tensor({ p.g }):view(table.unpack(z:size())), false)
      for i, g in ipairs(groups) do
        local gg, wi = g.grads:totable(), want[i]
        for j = 1, #gg do
          local h = kind == "mas" and math.abs(gg[j]) or gg[j] * gg[j]
          wi[j] = wi[j] + p.w * h / #ds
        end
      end
    end
  end
  model:zero_grad()
  model:train()
  return want
end

-- ||got - want|| / ||want||
local function rel(got, want)
  local num, den = 0, 0
  for j = 1, #want do num, den = num + (got[j] - want[j]) ^ 2, den + want[j] ^ 2 end
  return den > 0 and math.sqrt(num / den) or math.sqrt(num)
end

local function estimate(model, task, kind, path)
  if kind == "mas" then return mas.importance(model, task, { path = path, samples = "all" }) end
  return ewc.fisher(model, task, { fisher = kind, path = path, samples = "all", active = false })
end

-- Both paths against the brute force, every group, each kind.
local function check_model(model, ds, what, kinds)
  local task = { train = ds, index = 1 }
  for _, kind in ipairs(kinds or { "empirical", "expected", "mas" }) do
    local want = brute(model, ds, kind)
    for _, path in ipairs({ "batched", "loop" }) do
      local F, used = estimate(model, task, kind, path)
      lu.assertEquals(used, path)
      lu.assertEquals(#F, #want)
      for i = 1, #want do
        local e = rel(F[i]:totable(), want[i])
        lu.assertTrue(e < 1e-5, string.format("%s, %s, %s path, group %d: relative error %.2e", what, kind, path,
          i, e))
      end
    end
  end
end

local function images(n, c, h, w, classes, seed)
  return engram.data.blobs { n = n, classes = classes, dim = c * h * w, std = 1.0, seed = seed }
end

TestImportance = {}

function TestImportance.test_cnn_batched_equals_loop_and_per_sample_gradients()
  local model = nn.Sequential(nn.Reshape { 2, 6, 6 }, nn.Conv2d(2, 3, 3, { padding = 1 }), nn.ReLU(),
    nn.MaxPool2d(2), nn.Conv2d(3, 4, 2, { stride = 1 }), nn.Tanh(), nn.Flatten(), nn.Linear(16, 3))
  model:build { seed = 4 }
  check_model(model, images(24, 2, 6, 6, 3, 1), "CNN")
  -- a strided, padded convolution without bias
  local m2 = nn.Sequential(nn.Reshape { 1, 7, 7 }, nn.Conv2d(1, 2, 3, { stride = 2, padding = 1, bias = false }),
    nn.Sigmoid(), nn.Flatten(), nn.Linear(32, 3))
  m2:build { seed = 5 }
  check_model(m2, images(16, 1, 7, 7, 3, 2), "strided CNN", { "empirical", "mas" })
end

function TestImportance.test_the_default_cnn_takes_the_batched_path()
  local model = nn.cnn { input = { 1, 8, 8 }, channels = { 2, 3 }, hidden = 5, classes = 3 }:build { seed = 1 }
  lu.assertNotNil(importance.layout(model))
  check_model(model, images(12, 1, 8, 8, 3, 3), "cnn{}", { "empirical" })
end

function TestImportance.test_layernorm_mlp_with_dropout_batched_equals_loop_and_per_sample_gradients()
  local model = nn.mlp { 6, 8, 7, 3, layernorm = true, dropout = 0.3, activation = "gelu" }:build { seed = 2 }
  check_model(model, engram.data.blobs { n = 30, classes = 3, dim = 6, std = 1.5, seed = 3 }, "LayerNorm MLP")
end

-- ids [n, L] with repeats inside samples, an Embedding, a Linear over [B, L, D]
-- (positions sum within a sample before h), LayerNorm over [B, L, H].
local function id_data(n, L, V, classes, seed)
  local rng = engram.generator(seed)
  local ids, ys = {}, {}
  for i = 1, n do
    local row = {}
    for j = 1, L do row[j] = math.floor(rng:uniform() * V) end
    row[L] = row[1] -- at least one repeat
    ids[i], ys[i] = row, (i - 1) % classes
  end
  return engram.data.from_tensors(engram.tensor(ids), engram.tensor(ys))
end

function TestImportance.test_embedding_model_batched_equals_loop_and_per_sample_gradients()
  local V, L, D = 7, 5, 4
  local model = nn.Sequential(nn.Embedding(V, D), nn.Linear(D, 3), nn.LayerNorm(3), nn.Tanh(), nn.Flatten(),
    nn.Linear(L * 3, 3))
  model:build { seed = 3 }
  check_model(model, id_data(20, L, V, 3, 7), "Embedding model")
end

function TestImportance.test_linear_over_positions_batched_equals_loop_and_per_sample_gradients()
  local T, I = 4, 3
  local model = nn.Sequential(nn.Reshape { T, I }, nn.Linear(I, 5), nn.GELU(), nn.Linear(5, 2), nn.Flatten(),
    nn.Linear(T * 2, 3))
  model:build { seed = 6 }
  local ds = engram.data.blobs { n = 24, classes = 3, dim = T * I, std = 1.0, seed = 4 }
  check_model(model, ds, "Linear over [B,T,in]")
  -- not h of the sum of per-position terms: the batched sums positions before h
  local F = ewc.fisher(model, { train = ds, index = 1 }, { path = "batched", samples = "all", active = false })[1]
  lu.assertTrue(F:sum() > 0)
end

function TestImportance.test_two_groups_batched_equals_loop_and_frozen_groups_get_zeros()
  local ds = engram.data.blobs { n = 24, classes = 3, dim = 6, std = 1.5, seed = 5 }
  local model = nn.mlp { 6, 8, 3 }:build { seed = 1 }
  model:add_group("extra", nn.Tanh(), nn.Linear(3, 4), { seed = 2 })
  lu.assertEquals(#model:groups(), 2)
  check_model(model, ds, "two groups")
  model:freeze("base")
  check_model(model, ds, "base frozen", { "empirical", "mas" })
  for _, path in ipairs({ "batched", "loop" }) do
    local F = ewc.fisher(model, { train = ds, index = 1 }, { path = path, samples = "all", active = false })
    lu.assertEquals(F[1]:abs():sum(), 0, path .. ": the frozen group's importance")
    lu.assertTrue(F[2]:sum() > 0)
    lu.assertEquals(F[1]:numel(), model:groups()[1].numel)
  end
  -- the layers compute their parameter gradients again afterwards, frozen ones not
  model:unfreeze("base")
  model:zero_grad()
  local x = engram.randn(2, 6)
  model:backward(x, model:forward(x):clone():fill_(1))
  lu.assertTrue(model:groups()[1].grads:abs():sum() > 0)
end

function TestImportance.test_multihead_takes_the_trunk_and_the_selected_head()
  local ds = engram.data.blobs { n = 20, classes = 2, dim = 5, std = 1.5, seed = 6 }
  local model = nn.MultiHead(nn.Sequential(nn.Linear(5, 6), nn.ReLU()), nn.Linear(6, 2)):build { seed = 1 }
  model:add_group("head2", nn.Linear(6, 2), { seed = 3 })
  model:set_head(2)
  check_model(model, ds, "MultiHead, head 2")
  local F = ewc.fisher(model, { train = ds, index = 1 }, { path = "batched", samples = "all", active = false })
  local p = model:parameters()
  -- head 1 (in base, after the trunk) was not used: zeros
  lu.assertEquals(p[3].name, "2.weight")
  lu.assertEquals(F[1]:narrow(1, 6 * 5 + 6 + 1, 12 + 2):abs():sum(), 0)
end

function TestImportance.test_nested_sequentials_are_one_chain()
  local inner = nn.Sequential(nn.Linear(6, 5), nn.LayerNorm(5), nn.Sequential(nn.ReLU(), nn.Dropout(0.2)))
  local model = nn.Sequential(nn.Identity(), inner, nn.Linear(5, 3), nn.LogSoftmax()):build { seed = 8 }
  check_model(model, engram.data.blobs { n = 20, classes = 3, dim = 6, std = 1.5, seed = 9 }, "nested Sequentials")
end

function TestImportance.test_ewc_and_mas_in_a_learner_take_the_batched_path_for_a_cnn()
  local all = images(160, 1, 8, 8, 4, 3)
  local train, test = all:split(0.75, 1)
  local scen = engram.scenarios.split(train, test, { tasks = 2 })
  for _, s in ipairs({ engram.strategies.ewc { lambda = 1, samples = 40 }, engram.strategies.mas { samples = 40 } }) do
    local model = nn.cnn { input = { 1, 8, 8 }, channels = { 2 }, hidden = 6, classes = 4 }:build { seed = 1 }
    engram.learner(model, { epochs = 1, quiet = true }):use(s):run(scen)
    lu.assertEquals(s.path_used, "batched", s.name)
  end
end

function TestImportance.test_models_the_batched_path_cannot_take_fall_back_with_one_note()
  local ds = engram.data.blobs { n = 12, classes = 2, dim = 4, std = 1.5, seed = 6 }
  local task = { train = ds, index = 1 }
  local lines = {}
  local write = importance.write
  importance.write = function(line) lines[#lines + 1] = line end
  local ok, err = pcall(function()
    local model = nn.Sequential(nn.Linear(4, 3), nn.Concat(2, nn.Linear(3, 2), nn.Linear(3, 2))):build { seed = 1 }
    local F, used = ewc.fisher(model, task, { samples = "all", active = false })
    lu.assertEquals(used, "loop")
    local want = brute(model, ds, "empirical")
    lu.assertTrue(rel(F[1]:totable(), want[1]) < 1e-5)
    ewc.fisher(model, task, { samples = "all" }) -- once per reason
    lu.assertEquals(lines, { "ewc: per-sample gradients one sample at a time (slower): the batched path does not " ..
      "take Concat(dim 2) (module 2 of Sequential)" })
    -- a module written in Lua, with parameters
    local Scale = { params_spec = { { name = "weight", shape = { 3 } } } }
    Scale.__index = Scale
    function Scale:forward(x) self.output = x:clone():mul_(2); return self.output end
    function Scale:backward(_, gy) self.grad_input = gy:clone():mul_(2); return self.grad_input end
    local lua_model = nn.Sequential(nn.Linear(4, 3), setmetatable({}, Scale)):build { seed = 1 }
    local _, used2 = mas.importance(lua_model, task, { samples = "all", quiet = true })
    lu.assertEquals(used2, "loop")
    lu.assertEquals(#lines, 1, "quiet: no note")
    mas.importance(lua_model, task, { samples = "all" })
    lu.assertEquals(#lines, 2)
    lu.assertStrContains(lines[2], "mas: per-sample gradients one sample at a time")
    lu.assertStrContains(lines[2], "does not take a module written in Lua (module 2 of Sequential)")
    lu.assertErrorMsgContains("mas: the batched path does not take a module written in Lua (module 2 of " ..
      "Sequential); use 'loop'", mas.importance, lua_model, task, { path = "batched" })
  end)
  importance.write = write
  if not ok then error(err, 0) end
end

function TestImportance.test_the_layer_primitives_name_themselves_in_errors()
  local cl = engram.cl
  local z = engram.zeros
  lu.assertErrorMsgContains("conv2d_h_grad_accumulate: input must be 4-D [N x C x H x W], got 1-D",
    cl.conv2d_h_grad_accumulate, z(2, 3, 3, 3), nil, z(1, 2, 3, 3), z(5), 1, 0)
  lu.assertErrorMsgContains("conv2d_h_grad_accumulate", cl.conv2d_h_grad_accumulate, z(2, 1, 3, 3), nil,
    z(1, 2, 3, 3), z(1, 1, 3, 3), 0, 0)
  lu.assertErrorMsgContains("layernorm_h_grad_accumulate: delta [2x4] and input [2x3] do not fit",
    cl.layernorm_h_grad_accumulate, z(3), z(3), z(2, 4), z(2, 3), z(2), z(2))
  lu.assertErrorMsgContains("embedding_h_grad_accumulate: id 9 at position 1 is not an integer in [0, 4)",
    cl.embedding_h_grad_accumulate, z(4, 2), z(1, 2, 2), engram.tensor { { 1, 9 } })
  lu.assertErrorMsgContains("linear_sq_grad_accumulate: delta [2x3x4], input [2x2x5] and weight importance [4x5] " ..
    "do not fit", cl.linear_sq_grad_accumulate, z(4, 5), nil, z(2, 3, 4), z(2, 2, 5))
end
