-- engram.nn.transformer: causal self-attention (its C kernel through the
-- bindings, and the module), the pre-LN block and the GPT builder. Gradient
-- checks go through tests/lua/gradcheck.lua (L = sum(y * r); central
-- differences; every check also run mutated, and the mutations must fail):
-- the kernel's qkv gradient, the attention module, the block (also with
-- dropout, its masks reseeded before every forward), and every parameter
-- of small GPTs, separate and tied head, over several seeds. Then the
-- contract with the text side (ids [B, T] -> logits [B*T, vocab]), the
-- attention probabilities, bad input, clone and files, no allocation when
-- warm, and a tiny GPT that learns a repeating sequence.
local lu = require("luaunit")
local engram = require("engram")
local gradcheck = require("gradcheck")
local nn, core = engram.nn, engram.core

local function ids_of(B, T, V, seed)
  local g = engram.generator(seed)
  local t = core.zeros(B, T)
  for b = 1, B do
    for s = 1, T do t:set(b, s, math.floor(g:uniform() * V) % V) end
  end
  return t
end

TestTransformer = {}

function TestTransformer.test_attention_kernel_gradient_matches_finite_differences()
  for _, c in ipairs({ { 2, 4, 2, 6, 1 }, { 1, 5, 3, 9, 2 } }) do
    local N, T, H, D, seed = table.unpack(c)
    engram.seed(seed)
    local qkv = engram.randn(N, T, 3 * D)
    local r = engram.rand(N, T, D) * 2 - 1
    local y, att, gq, sc = nn.buffer(), nn.buffer(), nn.buffer(), nn.buffer()
    local function L() return core.nn_attn_forward(y, att, qkv, T, H):dot(r) end
    L()
    local g = core.nn_attn_backward(gq, sc, r, qkv, att, T, H):clone()
    local ok, msg = gradcheck.check(string.format("attention kernel N%d T%d H%d D%d", N, T, H, D), L, qkv, g)
    lu.assertTrue(ok, msg)
  end
end

function TestTransformer.test_attention_module_gradients_pass_the_check_and_fail_its_mutations()
  for seed = 1, 2 do
    local m = nn.CausalSelfAttention(8, 2):build { seed = seed }
    engram.seed(seed)
    lu.assertEquals(gradcheck.module(m, engram.randn(2, 5, 8), { what = "CausalSelfAttention seed " .. seed }), {})
  end
end

function TestTransformer.test_block_gradients_pass_the_check_with_and_without_dropout()
  for seed = 1, 2 do
    local b = nn.TransformerBlock(8, 2, { hidden = 12 }):build { seed = seed }
    engram.seed(10 + seed)
    lu.assertEquals(gradcheck.module(b, engram.randn(2, 4, 8), { what = "TransformerBlock seed " .. seed }), {})
  end
  local b = nn.TransformerBlock(8, 2, { hidden = 12, dropout = 0.2 }):build { seed = 3 }
  local x = engram.randn(2, 4, 8)
  lu.assertEquals(gradcheck.module(b, x, { what = "TransformerBlock with dropout", before = function()
    engram.seed(77)
  end }), {})
end

-- Every parameter tensor of the model on its own (each check with its
-- mutations), L = sum(logits * r). The parameters are first drawn at the
-- scale the finite-difference reference suits: embeddings N(0, 1) (as
-- PyTorch's default), matrices N(0, 0.3^2), biases N(0, 0.1^2), LayerNorm
-- weights N(1, 0.1^2). At GPT-2's initialisation (std 0.02) the residual
-- stream is smaller than the step, the final LayerNorm magnifies it, and
-- the central difference, not the gradient, is off by a few percent. Even
-- at this scale the tied head's curvature puts the central difference with
-- the helper's step 1e-2 up to 2% off on single elements (measured: it
-- falls to 0.3 of the tolerance at step 3e-3, so it is truncation), so the
-- GPT checks take step 3e-3 (rounding, u |L| / h, stays near 1e-5). The
-- tolerances and the mutations are the helper's.
local function check_gpt(model, ids, what, seed)
  engram.seed(seed)
  local g = engram.generator(7)
  for _, p in ipairs(model:parameters()) do
    local emb = p.name == "1.weight" or p.name == "2.weight"
    local mean, std = 0, 0.3
    if emb then std = 1 elseif #p.shape == 1 then
      if p.name:match("weight$") then mean, std = 1, 0.1 else std = 0.1 end
    end
    core.nn_init_normal(p.value, mean, std, g)
  end
  local r = engram.rand(table.unpack(model:forward(ids):size())) * 2 - 1
  local function L() return model:forward(ids):dot(r) end
  model:zero_grad()
  model:forward(ids)
  lu.assertNil(model:backward(ids, r))
  local bad, n = {}, 0
  local step = gradcheck.STEP
  gradcheck.STEP = 3e-3
  for _, p in ipairs(model:parameters()) do
    local ok, msg = gradcheck.check(what .. " " .. p.name, L, p.value, p.grad:clone())
    if not ok then bad[#bad + 1] = msg end
    n = n + 1
  end
  gradcheck.STEP = step
  lu.assertEquals(bad, {})
  return n
end

function TestTransformer.test_every_gpt_parameter_gradient_passes_the_check_over_seeds()
  for seed = 1, 3 do
    local m = nn.gpt { vocab = 7, ctx = 5, dim = 8, heads = 2, layers = 2, hidden = 12 }:build { seed = seed }
    local n = check_gpt(m, ids_of(2, 4, 7, seed), "gpt seed " .. seed, seed)
    lu.assertEquals(n, #m:parameters())
    lu.assertEquals(n, 2 + 2 * 12 + 2 + 1)
  end
end

function TestTransformer.test_tied_head_sums_both_gradients_into_the_embedding()
  local m = nn.gpt { vocab = 7, ctx = 5, dim = 8, heads = 2, layers = 1, hidden = 12, tied = true }:build { seed = 4 }
  lu.assertEquals(m:parameters()[1].name, "1.weight")
  for _, p in ipairs(m:parameters()) do lu.assertNotEquals(p.name, "6.weight", "no head matrix of its own") end
  -- the embedding matrix is both the input table and the output head: a gradient
  -- missing either part fails the check
  check_gpt(m, ids_of(3, 5, 7, 4), "tied gpt", 4)
  local sep = nn.gpt { vocab = 7, ctx = 5, dim = 8, heads = 2, layers = 1, hidden = 12 }:build { seed = 4 }
  lu.assertEquals(sep:numel() - m:numel(), 7 * 8)
end

function TestTransformer.test_logits_are_rows_b_times_T_plus_t_predicting_the_next_token()
  local m = nn.gpt { vocab = 11, ctx = 8, dim = 16, heads = 4, layers = 2 }:build { seed = 1 }
  m:evaluate()
  local ids = ids_of(3, 6, 11, 5)
  local y = m:forward(ids):clone()
  lu.assertEquals(y:size(), { 18, 11 })
  -- causal: row b*T+t depends on tokens 1..t only (changing a later token leaves it)
  local ids2 = ids:clone()
  ids2:set(2, 5, (ids:get(2, 5) + 1) % 11)
  local y2 = m:forward(ids2)
  for t = 1, 6 do
    local row = 6 + t -- sequence 2
    local same = true
    for v = 1, 11 do same = same and y:get(row, v) == y2:get(row, v) end
    lu.assertEquals(same, t < 5, "position " .. t)
  end
  -- sequence b alone gives the rows of sequence b in the batch
  local one = m:forward(ids:narrow(1, 2, 1):contiguous())
  for t = 1, 6 do
    for v = 1, 11 do lu.assertAlmostEquals(one:get(t, v), y:get(6 + t, v), 1e-5) end
  end
end

function TestTransformer.test_attention_probabilities_are_kept_per_layer_and_head()
  local m = nn.gpt { vocab = 11, ctx = 8, dim = 16, heads = 4, layers = 3 }:build { seed = 2 }
  m:forward(ids_of(2, 7, 11, 1))
  local attn = m:attention()
  lu.assertEquals(#attn, 3)
  for _, a in ipairs(attn) do
    local p = a.probs
    lu.assertEquals(p:size(), { 2, 4, 7, 7 })
    local sums = p:sum(4)
    for b = 1, 2 do
      for h = 1, 4 do
        for i = 1, 7 do
          lu.assertAlmostEquals(sums:get(b, h, i), 1, 1e-5)
          for j = i + 1, 7 do lu.assertEquals(p:get(b, h, i, j), 0) end
        end
      end
    end
  end
end

function TestTransformer.test_bad_input_is_a_clear_error_naming_the_option()
  lu.assertErrorMsgContains("dim 10 is not divisible by heads 4", function()
    nn.gpt { vocab = 5, ctx = 4, dim = 10, heads = 4, layers = 1 }
  end)
  lu.assertErrorMsgContains("dim 6 is not divisible by heads 4", function() nn.CausalSelfAttention(6, 4) end)
  lu.assertErrorMsgContains("dim 6 is not divisible by heads 4", function() nn.TransformerBlock(6, 4) end)
  lu.assertErrorMsgContains("unknown option 'width'", function() nn.gpt { width = 3 } end)
  lu.assertErrorMsgContains("layers must be positive", function() nn.gpt { layers = 0 } end)
  local m = nn.gpt { vocab = 5, ctx = 4, dim = 8, heads = 2, layers = 1 }:build { seed = 1 }
  lu.assertErrorMsgContains("sequence length 5 is longer than the context of 4 (option ctx)", function()
    m:forward(core.zeros(2, 5))
  end)
  lu.assertErrorMsgContains("token ids must be integers in [0, 5) (option vocab)", function()
    m:forward(engram.tensor { { 0, 5 } })
  end)
  lu.assertErrorMsgContains("id -1 at position 1", function() m:forward(engram.tensor { { 0, -1 } }) end)
  lu.assertErrorMsgContains("id 1.5 at position 0", function() m:forward(engram.tensor { { 1.5, 2 } }) end)
  lu.assertErrorMsgContains("ids must be [batch, time]", function() m:forward(engram.tensor { 0, 1 }) end)
  lu.assertErrorMsgContains("ids must be [batch, time]", function() m:forward(core.zeros(1, 2, 3)) end)
  lu.assertErrorMsgContains("ids must be a tensor", function() m:forward({ 1, 2 }) end)
  m:forward(engram.tensor { { 0, 1, 2 } })
  lu.assertErrorMsgContains("grad_logits must be [3, 5]", function()
    m:backward(engram.tensor { { 0, 1, 2 } }, core.zeros(3, 4))
  end)
  local a = nn.CausalSelfAttention(8, 2)
  lu.assertErrorMsgContains("input must be [batch, time, 8], got [3x8]", function() a:forward(core.zeros(3, 8)) end)
  lu.assertErrorMsgContains("input must be [batch, time, 8], got [1x3x6]", function()
    a:forward(core.zeros(1, 3, 6))
  end)
  -- the kernel's own checks, through the bindings
  lu.assertErrorMsgContains("not divisible by 4 heads", function()
    core.nn_attn_forward(nn.buffer(), nn.buffer(), core.zeros(2, 18), 2, 4)
  end)
  lu.assertErrorMsgContains("not whole sequences of length 3", function()
    core.nn_attn_forward(nn.buffer(), nn.buffer(), core.zeros(4, 6), 3, 1)
  end)
end

function TestTransformer.test_projections_are_linear_layers_so_lora_wraps_them()
  local m = nn.gpt { vocab = 7, ctx = 4, dim = 8, heads = 2, layers = 2 }:build { seed = 1 }
  m:evaluate()
  local ids = ids_of(2, 4, 7, 3)
  local before = m:forward(ids):clone()
  lu.assertEquals(#m:find("Linear"), 2 * 4 + 1)
  local ws = m:wrap("Linear", function(l) return nn.LoRA(l, { rank = 2 }) end)
  lu.assertEquals(#ws, 9)
  local fs = {}
  for i, w in ipairs(ws) do fs[i] = w:add_set("t1") end
  m:new_group("lora", fs, { seed = 2 })
  for _, w in ipairs(ws) do w:activate("t1") end
  -- B starts at zero: the wrapped model computes what it did
  local after = m:forward(ids)
  for i = 1, before:size(1) do
    for v = 1, 7 do lu.assertAlmostEquals(after:get(i, v), before:get(i, v), 1e-6) end
  end
  m:freeze("base")
  lu.assertTrue(m:numel { trainable = true } < m:numel())
  -- and gradients reach the LoRA factors through the attention kernel
  m:zero_grad()
  m:forward(ids)
  m:backward(ids, engram.randn(8, 7))
  local g = m:groups()
  lu.assertEquals(g[2].name, "lora")
  lu.assertTrue(g[2].grads:abs():sum() > 0)
end

function TestTransformer.test_clone_files_and_modes_work_as_for_other_models()
  local m = nn.gpt { vocab = 9, ctx = 6, dim = 8, heads = 2, layers = 2, dropout = 0.1 }:build { seed = 3 }
  local ids = ids_of(2, 6, 9, 2)
  m:evaluate()
  local y = m:forward(ids):clone()
  local c = m:clone()
  c:evaluate()
  lu.assertEquals(c:forward(ids):totable(), y:totable())
  lu.assertFalse(rawequal(c.modules[4].modules[1].modules[2].probs, m.modules[4].modules[1].modules[2].probs))
  -- parameters through a safetensors file into a model built with another seed
  local path = os.tmpname()
  local named = {}
  for _, p in ipairs(m:parameters()) do named[p.name] = p.value end
  engram.io.save(path, named)
  local other = nn.gpt { vocab = 9, ctx = 6, dim = 8, heads = 2, layers = 2, dropout = 0.1 }:build { seed = 9 }
  other:evaluate()
  local loaded = engram.io.load(path)
  os.remove(path)
  for _, p in ipairs(other:parameters()) do p.value:copy_(loaded[p.name]) end
  lu.assertEquals(other:forward(ids):totable(), y:totable())
  -- training mode: dropout changes the output; evaluation mode is deterministic
  m:train()
  engram.seed(1)
  local t1 = m:forward(ids):clone()
  lu.assertNotEquals(t1:totable(), y:totable())
  m:evaluate()
  lu.assertEquals(m:forward(ids):totable(), y:totable())
end

function TestTransformer.test_a_warm_training_step_allocates_nothing()
  local m = nn.gpt { vocab = 16, ctx = 8, dim = 16, heads = 2, layers = 2, dropout = 0.1 }:build { seed = 1 }
  local opt = engram.optim.Adam(m, { lr = 1e-3 })
  local ce = engram.loss.CrossEntropy()
  local ids, target = ids_of(4, 8, 16, 1), ids_of(4, 8, 16, 2):view(-1)
  local function step()
    m:zero_grad()
    local _, g = ce:forward_backward(m:forward(ids), target)
    m:backward(ids, g)
    opt:step()
  end
  step(); step()
  local before = core.alloc_count()
  for _ = 1, 3 do step() end
  lu.assertEquals(core.alloc_count() - before, 0)
end

-- A repeating 5-token pattern over a vocabulary of 12: after 60 Adam steps
-- the next-token loss is far below log(12) = 2.48 (uniform guessing). About 0.3 s.
function TestTransformer.test_a_tiny_gpt_learns_a_repeating_sequence()
  local V, T, B = 12, 16, 8
  local m = nn.gpt { vocab = V, ctx = T, dim = 32, heads = 4, layers = 2 }:build { seed = 1 }
  local opt = engram.optim.Adam(m, { lr = 3e-3 })
  local ce = engram.loss.CrossEntropy()
  local pattern = { 3, 7, 1, 9, 4 }
  local ids, target = core.zeros(B, T), core.zeros(B * T)
  for b = 1, B do
    for t = 1, T do
      ids:set(b, t, pattern[(b + t - 2) % 5 + 1])
      target:set((b - 1) * T + t, pattern[(b + t - 1) % 5 + 1])
    end
  end
  local first, last
  for i = 1, 60 do
    m:zero_grad()
    local l, g = ce:forward_backward(m:forward(ids), target)
    m:backward(ids, g)
    opt:step()
    if i == 1 then first = l end
    last = l
  end
  lu.assertTrue(first > 0.8 * math.log(V), string.format("first loss %.3f", first))
  lu.assertTrue(last < 0.1 * math.log(V), string.format("loss %.3f after 60 steps (log V = %.3f)", last, math.log(V)))
end
