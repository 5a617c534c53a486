--- engram.nn: layers, containers and models.
--
--   local nn = require "engram.nn"            -- or engram.nn
--   local model = nn.mlp{784, 400, 400, 10}    -- Linear/ReLU/Linear/ReLU/Linear
--   local y  = model:forward(x)                -- x [B,784] -> y [B,10]
--   local gx = model:backward(x, gy)           -- after forward on the same x
--
-- MODULES. Every module has forward(x) -> y and backward(x, gy[, need_gx]) -> gx.
-- Parameter gradients ACCUMULATE until zero_grad(); gx is recomputed.
-- backward's third argument, when false, lets the first layer skip the
-- gradient with respect to the model input (returns nil): training loops
-- should pass false, it saves one matrix product per step.
--
-- BORROWED RESULTS. forward returns the module's own output buffer and
-- backward its grad_input buffer: both are overwritten by the next call. Use
-- y:clone() to keep one. Every module, in training and in evaluation mode,
-- leaves what forward returned in self.output and what backward returned in
-- self.grad_input (a module that passes its input through, like Identity or
-- Dropout in evaluation, leaves the input itself there). Buffers only grow, so a warm training step
-- allocates nothing (engram.core.alloc_count() does not move).
--
-- PARAMETERS live in flat arenas ("parameter groups", core/params.h): when a
-- model is built (model:build{seed=1}, or automatically at the first forward
-- or parameters call) ALL declared parameters of the tree get one contiguous
-- float vector, and their gradients another of the same layout; each layer's
-- weight is a view into it from birth. Initialisation follows PyTorch's
-- defaults: Linear and Conv2d weights and biases U(-1/sqrt(fan_in),
-- 1/sqrt(fan_in)), LayerNorm 1 and 0, Embedding N(0, 1).
-- Growing a built model makes a NEW group: model:add_group(name, module...)
-- (a Sequential appends the modules, a MultiHead adds them as heads).
--
-- The model interface (any module, usually the root container):
--   model:forward(x) -> y                  model:backward(x, gy[, need_gx]) -> gx
--   model:zero_grad()                      model:build{seed=, generator=}
--   model:parameters() -> { {name=, shape=, value=view, grad=view, group=gname}, ... }
--   model:groups()     -> { {name=, params=flat, grads=flat, frozen=bool, numel=n}, ... } ("base" first)
--   model:flat()       -> params, grads of the only group (error with several groups)
--   model:numel{trainable=false}           model:freeze(gname) / model:unfreeze(gname)
--   model:train() / model:evaluate()       (return self; model.training)
--   model:clone()      parameters in arenas of its own (gradients zero), frozen
--                      flags and configuration; no activations, no gradients;
--                      generators shared (see Module:clone)
--   model:load_flat(t) copies t into the base group's parameters
--   dst:copy_params(src)                   same architecture
--   model:add_group(name, m...)            new modules with parameters in a new group
--   model:set_head(k)  selects head k of the MultiHead in the tree
--   model:forward_to(x, k) -> output of module k of a Sequential;
--   model.modules[k].output is module k's output after a forward
--   tostring(model)    the tree with sizes and parameter counts
-- SURGERY on a built model (engram.nn.surgery, docs/isolation.md), with
-- selectors: a path "3" or "encoder.2" (index or child `name` per segment),
-- a class "Linear", a function(m, path) or a list; none matching is an error:
--   model:wrap(sel, function(layer, path) return nn.LoRA(layer, {rank = 8}) end[, opts])
--   model:insert_after(sel, module or fn[, opts])  model:replace(sel, module or fn[, opts])
--   model:remove(sel)      model:find(sel) -> {{path=, module=}}   model:get(path)
--   model:new_group(name, {modules placed by a container's own method})
--   model:freeze_layers(sel) / unfreeze_layers(sel)   (element masks in their groups)
--   model:freeze_params(pattern) / unfreeze_params(pattern)   ("bias$", "base.1.weight")
--   model:summary({1, 784}[, {quiet = true}]) prints and returns the tree with
--   output shapes, parameter counts, groups and trainable flags
-- New parameters go into ONE new group per call (opts.group, default
-- "wrap1", "insert1", ...; opts.seed/generator initialise them); the other
-- groups keep their arenas; removed layers' parameters stay in theirs, unused.
-- ISOLATION modules (engram.nn.isolation): LoRA(linear, {rank, alpha}),
-- Adapter(dim, {bottleneck}), Switch(), Progressive(sizes).
-- TRANSFORMERS (engram.nn.transformer): CausalSelfAttention(dim, heads),
-- TransformerBlock(dim, heads, {hidden, dropout}), and the builder
-- gpt{vocab, ctx, dim, heads, layers, dropout, tied}: ids [B, T] -> logits
-- [B*T, vocab]; each attention's probabilities in attn.probs [B, heads, T, T].
-- A module inside a model (model.modules[3]) answers parameters, groups, flat,
-- numel, zero_grad, load_flat and copy_params for its own subtree, as views
-- into the model's arenas: engram.optim.SGD(model.modules[3]) trains that
-- layer only. freeze and add_group act on whole groups: call them on the model.
--
-- LUA-WRITTEN MODULES: any table with forward(self, x) and backward(self, x, gy)
-- can sit in a container. It may declare parameters with
--   params_spec = { {name = "weight", shape = {4, 3}}, ... }
-- and then finds self.weight / self.grad_weight (views into the arena) after
-- build; it is initialised by its reset(self, generator) if it has one,
-- otherwise like a Linear weight (fan_in = product of sizes after the first;
-- 1-D entries start at zero). Its backward must accumulate into grad_*.
--
-- ERRORS name the layer: "Linear(784->400) in module 1 of Sequential: input
-- width 785 does not match 784".
--
-- FILES: engram.nn.module (the base class, parameter groups, clone),
-- engram.nn.layers, engram.nn.containers; this file the builders mlp and cnn.
local base = require("engram.nn.module")
require("engram.nn.layers")
require("engram.nn.containers")
require("engram.nn.surgery")
require("engram.nn.isolation")
require("engram.nn.transformer")

local nn = base.nn
local options, posint = base.options, base.posint

-- ---------------------------------------------------------------- builders

local activations = {
  relu = nn.ReLU, tanh = nn.Tanh, sigmoid = nn.Sigmoid, gelu = nn.GELU, leaky_relu = nn.LeakyReLU,
}

--- mlp{784, 400, 400, 10, activation="relu", dropout=0, layernorm=false, flatten=false}
-- Linear layers between the sizes with the activation (relu, tanh, sigmoid,
-- gelu, leaky_relu) after every hidden one, then Dropout(p) when dropout > 0,
-- and LayerNorm before the activation when layernorm. flatten=true starts
-- with Flatten (for [N,1,28,28] images).
function nn.mlp(spec)
  if type(spec) ~= "table" then error("mlp: expected a table of sizes, e.g. mlp{784, 400, 10}", 2) end
  local sizes, opts = {}, {}
  for k, v in pairs(spec) do
    if math.type(k) == "integer" then sizes[k] = v else opts[k] = v end
  end
  local o = options(opts, { activation = "relu", dropout = 0, layernorm = false, flatten = false }, "mlp")
  if #sizes < 2 then error("mlp: needs at least two sizes (input and output)", 2) end
  local act = activations[o.activation]
  if not act then
    error("mlp: unknown activation '" .. tostring(o.activation) .. "' (relu, tanh, sigmoid, gelu, leaky_relu)", 2)
  end
  local m = nn.Sequential()
  if o.flatten then m:add(nn.Flatten()) end
  for i = 1, #sizes - 1 do
    m:add(nn.Linear(sizes[i], sizes[i + 1]))
    if i < #sizes - 1 then
      if o.layernorm then m:add(nn.LayerNorm(sizes[i + 1])) end
      m:add(act())
      if o.dropout > 0 then m:add(nn.Dropout(o.dropout)) end
    end
  end
  return m
end

--- vae{input = 784, latent = 32, ...}: a variational autoencoder (engram.nn.vae's header).
function nn.vae(opts)
  local ok, v = pcall(require("engram.nn.vae").new, opts)
  if not ok then error(v, 2) end
  return v
end

--- gan{input = 784, latent = 64, ...}: a small GAN (engram.nn.gan's header).
function nn.gan(opts)
  local ok, g = pcall(require("engram.nn.gan").new, opts)
  if not ok then error(g, 2) end
  return g
end

--- cnn{input={1, 28, 28}, channels={16, 32}, hidden=128, classes=10, dropout=0}
-- Reshape to the input shape (so [N,784] and [N,1,28,28] both work), then per
-- entry of channels: Conv2d 3x3 padding 1, ReLU, MaxPool2d 2; then Flatten,
-- Linear(hidden), ReLU, [Dropout], Linear(classes).
function nn.cnn(opts)
  local o = options(opts, { input = { 1, 28, 28 }, channels = { 16, 32 }, hidden = 128, classes = 10, dropout = 0 },
    "cnn")
  if type(o.input) ~= "table" or #o.input ~= 3 then
    error("cnn: input must be {channels, height, width}", 2)
  end
  local c, h, w = posint(o.input[1], "input channels", "cnn"), posint(o.input[2], "input height", "cnn"),
    posint(o.input[3], "input width", "cnn")
  if type(o.channels) ~= "table" then error("cnn: channels must be a list of channel counts", 2) end
  for i, ch in ipairs(o.channels) do posint(ch, "channels[" .. i .. "]", "cnn") end
  posint(o.hidden, "hidden", "cnn"); posint(o.classes, "classes", "cnn")
  if type(o.dropout) ~= "number" then error("cnn: dropout must be a number in [0, 1)", 2) end
  local m = nn.Sequential(nn.Reshape({ c, h, w }))
  for _, ch in ipairs(o.channels) do
    m:add(nn.Conv2d(c, ch, 3, { padding = 1 })):add(nn.ReLU()):add(nn.MaxPool2d(2))
    c, h, w = ch, h // 2, w // 2
  end
  m:add(nn.Flatten()):add(nn.Linear(c * h * w, o.hidden)):add(nn.ReLU())
  if o.dropout > 0 then m:add(nn.Dropout(o.dropout)) end
  m:add(nn.Linear(o.hidden, o.classes))
  return m
end

return nn
