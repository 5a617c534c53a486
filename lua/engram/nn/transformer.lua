--- engram.nn.transformer: a GPT-style decoder -- causal multi-head
-- self-attention (its kernel in C, core/attn.h), the pre-LN transformer
-- block and the builder engram.nn.gpt. Definitions (GELU form, LayerNorm
-- eps, initialisation) are in docs/numerics.md.
--
--   local model = engram.nn.gpt { vocab = 256, ctx = 128, dim = 128, heads = 4, layers = 4 }
--   local logits = model:forward(ids)        -- ids [B, T] (float, integral, 0-based), T <= ctx
--                                            -- logits [B*T, vocab]: row b*T+t predicts token t+1
--   model:backward(ids, grad_logits)         -- grad_logits [B*T, vocab]; returns nil (ids have no gradient)
--
-- Every projection is an ordinary nn.Linear child (the attention's qkv and
-- output projections, the feed-forward layers, the separate output head),
-- so LoRA (model:wrap("Linear", ...)), adapters (model:insert_after on the
-- blocks, which sit in a Sequential), freezing, EWC/SI/MAS and checkpoints
-- work on a GPT as on any model. All parameters live in the model's arena.
--
-- ATTENTION PROBABILITIES. After a forward, each CausalSelfAttention keeps
-- attn.probs, a [B, heads, T, T] tensor: probs[b][h][i][j] is how much
-- position i attends to position j <= i (0 for j > i; each row sums to 1).
-- It is the module's buffer (overwritten by the next forward; clone() it to
-- keep it). model:attention() lists the modules, block by block.
local core = require("engram.core")
local base = require("engram.nn.module")

local nn = base.nn
local class, new, buffer, options, posint = base.class, base.new, base.buffer, base.options, base.posint
local ensure_built = base.ensure_built

-- Initialisation as GPT-2 (and nanoGPT): weights N(0, std), biases 0. Set on
-- the instance, so the layers stay ordinary Linear / Embedding modules.
local function normal_init(std)
  return function(self, gen)
    core.nn_init_normal(self.weight, 0, std, gen)
    if rawget(self, "bias") then self.bias:fill_(0) end
  end
end

local function shape_str(t) return "[" .. table.concat(t:size(), "x") .. "]" end

-- ------------------------------------------------------------- attention

local CSA = class("CausalSelfAttention")
--- CausalSelfAttention(dim, heads, {bias=true}): x [B, T, dim] -> [B, T, dim].
-- modules[1] = Linear(dim, 3*dim) (q | k | v, head h at columns h*dim/heads
-- of each), modules[2] = Linear(dim, dim) (the output projection). Scores are
-- scaled by 1/sqrt(dim/heads); position i attends to positions j <= i.
function nn.CausalSelfAttention(dim, heads, opts)
  local o = options(opts, { bias = true }, "CausalSelfAttention")
  dim, heads = posint(dim, "dim", "CausalSelfAttention"), posint(heads, "heads", "CausalSelfAttention")
  if dim % heads ~= 0 then
    error(string.format("CausalSelfAttention: dim %d is not divisible by heads %d", dim, heads), 2)
  end
  local m = new(CSA)
  m.dim, m.heads = dim, heads
  m.modules = { nn.Linear(dim, 3 * dim, { bias = o.bias }), nn.Linear(dim, dim, { bias = o.bias }) }
  m.probs, m._y, m._gqkv, m._scratch = buffer(), buffer(), buffer(), buffer()
  return m
end

local function check_input(self, x, who)
  if not core.istensor(x) then error(string.format("%s: input must be a tensor, got %s", who, type(x)), 3) end
  if x:dim() ~= 3 or x:size(3) ~= self.dim then
    error(string.format("%s: input must be [batch, time, %d], got %s", who, self.dim, shape_str(x)), 3)
  end
end

function CSA:forward(x)
  if not self._built then ensure_built(self) end
  check_input(self, x, "CausalSelfAttention")
  local qkv = self.modules[1]:forward(x)
  self._qkv = qkv
  core.nn_attn_forward(self._y, self.probs, qkv, x:size(2), self.heads)
  self.output = self.modules[2]:forward(self._y)
  return self.output
end

function CSA:backward(x, gy, need)
  local qkv = self._qkv
  if not qkv then error("CausalSelfAttention:backward: no forward before it", 2) end
  local gatt = self.modules[2]:backward(self._y, gy, true)
  local gqkv = core.nn_attn_backward(self._gqkv, self._scratch, gatt, qkv, self.probs, x:size(2), self.heads)
  self.grad_input = self.modules[1]:backward(x, gqkv, need)
  return self.grad_input
end

-- A container's tree: this line, then its children indented.
local function tree(self, indent, title)
  local lines = { title }
  for i, m in ipairs(self.modules) do
    local s = type(m._repr) == "function" and m:_repr((indent or "") .. "  ") or tostring(m)
    lines[#lines + 1] = string.format("%s  (%d) %s", indent or "", i, s)
  end
  return table.concat(lines, "\n")
end

function CSA:_repr(indent)
  return tree(self, indent, string.format("CausalSelfAttention(dim %d, %d heads)", self.dim, self.heads))
end

-- ----------------------------------------------------------------- block

local Block = class("TransformerBlock")
--- TransformerBlock(dim, heads, {hidden=4*dim, dropout=0, eps=1e-5}): pre-LN,
--   x1 = x + Dropout(Attention(LayerNorm(x)))
--   y  = x1 + Dropout(Linear(GELU(Linear(LayerNorm(x1)))))
-- modules: 1 LayerNorm, 2 CausalSelfAttention, 3 LayerNorm, 4 Sequential(Linear(dim, hidden),
-- GELU, Linear(hidden, dim)), 5 and 6 the two Dropouts. x [B, T, dim].
function nn.TransformerBlock(dim, heads, opts)
  local o = options(opts, { hidden = false, dropout = 0, eps = 1e-5 }, "TransformerBlock")
  dim = posint(dim, "dim", "TransformerBlock")
  local hidden = posint(o.hidden or 4 * dim, "hidden", "TransformerBlock")
  if type(o.dropout) ~= "number" or o.dropout < 0 or o.dropout >= 1 then
    error("TransformerBlock: dropout must be a number in [0, 1)", 2)
  end
  local ok, attn = pcall(nn.CausalSelfAttention, dim, heads)
  if not ok then error((tostring(attn):gsub("^[^\n:]-:%d+: ", "")), 2) end
  local m = new(Block)
  m.dim, m.heads, m.hidden = dim, heads, hidden
  m.modules = { nn.LayerNorm(dim, { eps = o.eps }), attn, nn.LayerNorm(dim, { eps = o.eps }),
                nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)),
                nn.Dropout(o.dropout), nn.Dropout(o.dropout) }
  m._x1, m._g1 = buffer(), buffer()
  return m
end

function Block:forward(x)
  if not self._built then ensure_built(self) end
  local M = self.modules
  local a = M[5]:forward(M[2]:forward(M[1]:forward(x)))
  local x1 = core.nn_add(self._x1, x, a)
  local f = M[6]:forward(M[4]:forward(M[3]:forward(x1)))
  self.output = core.nn_add(self.output, x1, f)
  return self.output
end

function Block:backward(x, gy, need)
  local M = self.modules
  local x1 = self._x1
  local g = M[6]:backward(M[4].output, gy)
  g = M[4]:backward(M[3].output, g, true)
  g = M[3]:backward(x1, g, true)
  local g1 = core.nn_add(self._g1, gy, g) -- the residual path and the feed-forward path
  g = M[5]:backward(M[2].output, g1)
  g = M[2]:backward(M[1].output, g, true)
  if need == false then -- only the parameter gradients
    M[1]:backward(x, g, false)
    return nil
  end
  g = M[1]:backward(x, g, true)
  self.grad_input = core.nn_add(self.grad_input, g1, g)
  return self.grad_input
end

function Block:_repr(indent)
  return tree(self, indent, string.format("TransformerBlock(dim %d, %d heads, hidden %d)", self.dim, self.heads,
    self.hidden))
end

-- ----------------------------------------------------------- tied head

local Tied = class("TiedHead")
-- The output head sharing the token embedding's matrix: logits = x E^T.
-- It has no parameters of its own: it reads emb.weight and adds its
-- gradient into emb.grad_weight, where the embedding's gradient also goes
-- (the two sum, as in PyTorch with a shared Parameter).
local function tied_head(emb)
  local m = new(Tied)
  m.emb = emb
  return m
end
function Tied:forward(x)
  return core.nn_linear_forward(self.output, x, self.emb.weight, nil)
end
function Tied:backward(x, gy, need)
  local e = self.emb
  return core.nn_linear_backward(need ~= false and self.grad_input, (not e._frozen) and e.grad_weight or nil, nil,
    gy, x, e.weight)
end
function Tied:_repr() return string.format("TiedHead(%d->%d, the token embedding's matrix)", self.emb.dim,
  self.emb.num) end

-- ------------------------------------------------------------------- GPT

local GPT = class("GPT")

--- gpt{vocab=256, ctx=128, dim=128, heads=4, layers=4, dropout=0, tied=false, hidden=4*dim, bias=true}
-- Token and position embeddings, `layers` pre-LN blocks, a final LayerNorm
-- and the output head (a Linear(dim, vocab) without bias, or, tied=true, the
-- token embedding's matrix). modules: 1 token Embedding(vocab, dim), 2
-- position Embedding(ctx, dim), 3 Dropout, 4 Sequential of the blocks, 5
-- LayerNorm, 6 the head.
function nn.gpt(opts)
  local o = options(opts, { vocab = 256, ctx = 128, dim = 128, heads = 4, layers = 4, dropout = 0, tied = false,
                            hidden = false, bias = true }, "gpt")
  for _, k in ipairs({ "vocab", "ctx", "dim", "heads", "layers" }) do o[k] = posint(o[k], k, "gpt") end
  if o.dim % o.heads ~= 0 then
    error(string.format("gpt: dim %d is not divisible by heads %d", o.dim, o.heads), 2)
  end
  if type(o.dropout) ~= "number" or o.dropout < 0 or o.dropout >= 1 then
    error("gpt: dropout must be a number in [0, 1)", 2)
  end
  if o.hidden then o.hidden = posint(o.hidden, "hidden", "gpt") end
  local m = new(GPT)
  m.config = { vocab = o.vocab, ctx = o.ctx, dim = o.dim, heads = o.heads, layers = o.layers, dropout = o.dropout,
               tied = o.tied and true or false, hidden = o.hidden or 4 * o.dim, bias = o.bias and true or false }
  local std, proj_std = 0.02, 0.02 / math.sqrt(2 * o.layers)
  local tok, pos = nn.Embedding(o.vocab, o.dim), nn.Embedding(o.ctx, o.dim)
  tok.reset, pos.reset = normal_init(std), normal_init(std)
  local blocks = nn.Sequential()
  for _ = 1, o.layers do
    local b = nn.TransformerBlock(o.dim, o.heads, { hidden = m.config.hidden, dropout = o.dropout })
    local attn, ff = b.modules[2], b.modules[4]
    if not o.bias then
      attn.modules[1] = nn.Linear(o.dim, 3 * o.dim, { bias = false })
      attn.modules[2] = nn.Linear(o.dim, o.dim, { bias = false })
      ff.modules[1] = nn.Linear(o.dim, m.config.hidden, { bias = false })
      ff.modules[3] = nn.Linear(m.config.hidden, o.dim, { bias = false })
    end
    attn.modules[1].reset, ff.modules[1].reset = normal_init(std), normal_init(std)
    attn.modules[2].reset, ff.modules[3].reset = normal_init(proj_std), normal_init(proj_std)
    blocks:add(b)
  end
  local head
  if o.tied then
    head = tied_head(tok)
  else
    head = nn.Linear(o.dim, o.vocab, { bias = false })
    head.reset = normal_init(std)
  end
  m.modules = { tok, pos, nn.Dropout(o.dropout), blocks, nn.LayerNorm(o.dim), head }
  m._pos, m._x0, m._gview = buffer(), buffer(), buffer()
  return m
end

-- The position ids [B, T] (0 .. T-1 in every row), made again only when the shape changes.
local function positions(self, B, T)
  local p = self._pos
  if self._pos_shape ~= B * 65536 + T or p:numel() ~= B * T then
    p = core.zeros(B, T)
    for b = 1, B do
      for t = 1, T do p:set(b, t, t - 1) end
    end
    self._pos, self._pos_shape = p, B * 65536 + T
  end
  return p
end

local function check_ids(self, ids, who)
  if not core.istensor(ids) then error(string.format("%s: ids must be a tensor, got %s", who, type(ids)), 3) end
  if ids:dim() ~= 2 then
    error(string.format("%s: ids must be [batch, time] (float tensor of integral token ids), got %s", who,
      shape_str(ids)), 3)
  end
  local T = ids:size(2)
  if T > self.config.ctx then
    error(string.format("%s: sequence length %d is longer than the context of %d (option ctx)", who, T,
      self.config.ctx), 3)
  end
  if T < 1 or ids:size(1) < 1 then error(string.format("%s: ids %s hold no tokens", who, shape_str(ids)), 3) end
end

function GPT:forward(ids)
  if not self._built then ensure_built(self) end
  check_ids(self, ids, "gpt")
  local M = self.modules
  local ok, tok = pcall(M[1].forward, M[1], ids)
  if not ok then
    error(string.format("gpt: token ids must be integers in [0, %d) (option vocab): %s", self.config.vocab,
      tostring(tok):gsub("^[^\n:]-:%d+: ", "")), 2)
  end
  local pos = M[2]:forward(positions(self, ids:size(1), ids:size(2)))
  local x = M[3]:forward(core.nn_add(self._x0, tok, pos))
  local h = M[6]:forward(M[5]:forward(M[4]:forward(x)))
  self.output = core.nn_view_rows(self.output, h, h:size(3))
  return self.output
end

function GPT:backward(ids, grad_logits)
  local M = self.modules
  local h = M[6].output
  if not core.istensor(grad_logits) or grad_logits:numel() ~= h:numel() then
    error(string.format("gpt:backward: grad_logits must be [%d, %d], got %s", h:size(1) * h:size(2), h:size(3),
      core.istensor(grad_logits) and shape_str(grad_logits) or type(grad_logits)), 2)
  end
  local g = core.nn_view_as(self._gview, grad_logits, h)
  g = M[6]:backward(M[5].output, g, true)
  g = M[5]:backward(M[4].output, g, true)
  g = M[4]:backward(M[3].output, g, true)
  g = M[3]:backward(self._x0, g)
  M[1]:backward(ids, g)
  M[2]:backward(self._pos, g)
  self.grad_input = nil
  return nil
end

--- The CausalSelfAttention modules, block by block (their .probs after a forward).
function GPT:attention()
  local out = {}
  for i, b in ipairs(self.modules[4].modules) do
    local a
    base.walk(b, function(m) if not a and getmetatable(m) == CSA then a = m end end, "")
    out[i] = a
  end
  return out
end

function GPT:_repr(indent)
  local c = self.config
  return tree(self, indent, string.format("GPT(vocab %d, ctx %d, dim %d, %d heads, %d layers%s; %s parameters)",
    c.vocab, c.ctx, c.dim, c.heads, c.layers, c.tied and ", tied head" or "",
    base.fmtint(rawget(self, "_built") and self:numel() or 0)))
end

return nn
