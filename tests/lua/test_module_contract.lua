-- The module contract every layer and container keeps, in training and in
-- evaluation mode: forward returns what it leaves in self.output, backward
-- what it leaves in self.grad_input (strategies and probes read them
-- afterwards: EWC's batched Fisher, the learner's drift probe), and clone()
-- copies parameters and configuration, never activations or gradients.
local lu = require("luaunit")
local engram = require("engram")
local nn = engram.nn
local S = engram.strategies

-- Every module kind with an input that suits it.
local function cases()
  local img = function() return engram.randn(2, 2, 6, 6) end
  local vec = function() return engram.randn(3, 8) end
  local ids = function() return engram.tensor({ { 0, 3 }, { 2, 1 } }) end
  local seq = function() return engram.randn(2, 3, 8) end
  return {
    { "Linear", function() return nn.Linear(8, 5) end, vec },
    { "ReLU", nn.ReLU, vec }, { "LeakyReLU", function() return nn.LeakyReLU(0.1) end, vec },
    { "Tanh", nn.Tanh, vec }, { "Sigmoid", nn.Sigmoid, vec }, { "GELU", nn.GELU, vec },
    { "Softmax", nn.Softmax, vec }, { "LogSoftmax", nn.LogSoftmax, vec },
    { "Dropout", function() return nn.Dropout(0.3) end, vec },
    { "Dropout(0)", function() return nn.Dropout(0) end, vec },
    { "LayerNorm", function() return nn.LayerNorm(8) end, vec },
    { "LayerNorm(no affine)", function() return nn.LayerNorm(8, { affine = false }) end, vec },
    { "Flatten", nn.Flatten, img }, { "Reshape", function() return nn.Reshape { 2, 36 } end, img },
    { "Identity", nn.Identity, vec },
    { "Conv2d", function() return nn.Conv2d(2, 3, 3, { padding = 1 }) end, img },
    { "MaxPool2d", function() return nn.MaxPool2d(2) end, img },
    { "Embedding", function() return nn.Embedding(4, 3) end, ids },
    { "Sequential", function() return nn.Sequential(nn.Linear(8, 4), nn.Dropout(0.5), nn.Identity()) end, vec },
    { "Concat", function() return nn.Concat(2, nn.Linear(8, 2), nn.Identity()) end, vec },
    { "MultiHead", function() return nn.MultiHead(nn.Sequential(nn.Linear(8, 4), nn.ReLU()), { nn.Linear(4, 2) }) end,
      vec },
    { "CausalSelfAttention", function() return nn.CausalSelfAttention(8, 2) end, seq },
    { "TransformerBlock", function() return nn.TransformerBlock(8, 2, { dropout = 0.2 }) end, seq },
    { "GPT", function() return nn.gpt { vocab = 4, ctx = 3, dim = 8, heads = 2, layers = 1, dropout = 0.1 } end, ids },
    { "GPT(tied)", function() return nn.gpt { vocab = 4, ctx = 3, dim = 8, heads = 2, layers = 1, tied = true } end,
      ids },
  }
end

-- A scratch buffer no kernel has sized yet holds no storage.
local function empty(t)
  local ok, n = pcall(t.numel, t)
  return not ok or n == 0
end

TestModuleContract = {}

function TestModuleContract.test_forward_and_backward_leave_what_they_return_in_output_and_grad_input()
  for _, c in ipairs(cases()) do
    for _, mode in ipairs({ "train", "evaluate" }) do
      local m = c[2]()
      m:build { seed = 1 }
      m[mode](m)
      local x = c[3]()
      local y = m:forward(x)
      local what = c[1] .. " in " .. mode .. " mode"
      lu.assertTrue(rawequal(m.output, y), what .. ": self.output is not what forward returned")
      local gy = engram.randn(table.unpack(y:size()))
      local gx = m:backward(x, gy)
      if c[1] ~= "Embedding" and not c[1]:match("^GPT") then -- ids have no gradient
        lu.assertNotNil(gx, what)
        lu.assertTrue(rawequal(m.grad_input, gx), what .. ": self.grad_input is not what backward returned")
      end
    end
  end
end

function TestModuleContract.test_dropout_in_evaluation_passes_its_input_through_and_its_gradient_back()
  local m = nn.Dropout(0.5)
  m:evaluate()
  local x, gy = engram.randn(4, 6), engram.randn(4, 6)
  lu.assertEquals(m:forward(x):totable(), x:totable())
  lu.assertEquals(m.output:totable(), x:totable())
  lu.assertEquals(m:backward(x, gy):totable(), gy:totable())
  -- back in training mode it writes its own buffer, never the input it passed through
  m:train()
  local keep = x:clone()
  local y = m:forward(x)
  lu.assertFalse(rawequal(y, x))
  lu.assertEquals(x:totable(), keep:totable())
end

-- The defect this guards: with dropout, EWC's Fisher and the drift probe read
-- a module's output that evaluation mode never set.
function TestModuleContract.test_ewc_and_the_drift_probe_work_on_a_model_with_dropout()
  local all = engram.data.blobs { n = 600, classes = 6, dim = 8, std = 1.0, seed = 3 }
  local train, test = all:split(0.8, 1)
  local scen = engram.scenarios.split(train, test, { tasks = 3 })
  local model = nn.mlp { 8, 32, 32, 6, dropout = 0.3 }:build { seed = 1 }
  local L = engram.learner(model, { epochs = 1, batch = 32, lr = 0.01, quiet = true, seed = 1 })
  L:use(S.ewc { lambda = 100, samples = 64 })
  local doc = L:run(scen)
  lu.assertEquals(#doc.acc, 3)
  local drift = doc.extra.drift
  lu.assertNotNil(drift, "the drift probe ran")
  lu.assertEquals(#drift, 3)
  for t = 2, 3 do lu.assertTrue(drift[t] > 0, "drift after task " .. t .. ": " .. tostring(drift[t])) end
end

function TestModuleContract.test_clone_holds_parameters_and_nothing_of_the_last_step()
  local m = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 4)):build { seed = 2 }
  local x = engram.randn(32, 8)
  local y = m:forward(x)
  m:backward(x, engram.randn(32, 4))
  lu.assertTrue(m:flat():numel() > 0)
  local _, grads = m:flat()
  lu.assertTrue(grads:abs():sum() > 0)

  -- what building the same model allocates (its parameter group: the two
  -- arenas and their index), and nothing per activation or parameter view
  local fresh = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 4))
  local before = engram.core.alloc_count()
  fresh:build { seed = 2 }
  local built = engram.core.alloc_count() - before
  before = engram.core.alloc_count()
  local c = m:clone()
  local n = engram.core.alloc_count() - before
  lu.assertTrue(n <= built, string.format("the clone made %d allocations, a build %d", n, built))
  for i, mod in ipairs(c.modules) do
    lu.assertTrue(empty(mod.output), "module " .. i .. " output")
    lu.assertTrue(empty(mod.grad_input), "module " .. i .. " grad_input")
  end
  local cp, cg = c:flat()
  lu.assertEquals(cg:abs():sum(), 0, "gradients start at zero")
  lu.assertEquals(cp:totable(), (m:flat()):totable())
  -- and it runs, to the same result, with buffers of its own
  c:evaluate(); m:evaluate()
  local y2 = c:forward(x)
  lu.assertEquals(y2:totable(), m:forward(x):totable())
  lu.assertFalse(rawequal(y2, y))
end

function TestModuleContract.test_a_gpt_clone_holds_parameters_and_nothing_of_the_last_step()
  local m = nn.gpt { vocab = 6, ctx = 4, dim = 8, heads = 2, layers = 2, tied = true }:build { seed = 2 }
  local ids = engram.tensor({ { 0, 3, 5 }, { 2, 1, 4 } })
  local y = m:forward(ids):clone()
  m:backward(ids, engram.randn(6, 6))
  local c = m:clone()
  local attn = c:attention()
  lu.assertEquals(#attn, 2)
  for _, a in ipairs(attn) do lu.assertTrue(empty(a.probs), "attention probabilities start empty") end
  -- the tied head reads the clone's own embedding
  lu.assertTrue(rawequal(c.modules[6].emb, c.modules[1]))
  local cp, cg = c:flat()
  lu.assertEquals(cg:abs():sum(), 0)
  lu.assertEquals(cp:totable(), (m:flat()):totable())
  lu.assertEquals(c:forward(ids):totable(), y:totable())
  lu.assertEquals(c:numel(), m:numel())
  lu.assertEquals(c:numel { trainable = true }, m:numel())
  c:freeze("base")
  lu.assertEquals(c:numel { trainable = true }, 0)
  lu.assertEquals(m:numel { trainable = true }, m:numel())
end

function TestModuleContract.test_clone_shares_a_dropout_generator_and_copies_other_tensors()
  local g = engram.generator(5)
  local ln = nn.LayerNorm(4, { affine = false })
  local m = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5, { generator = g }), ln):build { seed = 1 }
  local c = m:clone()
  lu.assertTrue(rawequal(c.modules[2].generator, g))
  -- a constant a module keeps (LayerNorm's ones) is copied, not emptied
  lu.assertEquals(c.modules[3]._ones:totable(), ln._ones:totable())
  lu.assertFalse(rawequal(c.modules[3]._ones, ln._ones))
end
