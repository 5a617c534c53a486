--- engram.nn.layers: the layers, each a class over the core's kernels
-- (forward and backward in C). See engram.nn's header for the contract.
local core = require("engram.core")
local base = require("engram.nn.module")

local nn = base.nn
local class, new, buffer, options, posint = base.class, base.new, base.buffer, base.options, base.posint
local ensure_built, label = base.ensure_built, base.label

local ACT = { relu = 0, leaky_relu = 1, tanh = 2, sigmoid = 3, gelu = 4 }

-- ----------------------------------------------------------------- layers

local Linear = class("Linear")
--- Linear(in, out, {bias=true}): y = x W^T + b, W [out, in] (PyTorch layout).
-- x may have leading dimensions; its last must be in.
function nn.Linear(nin, nout, opts)
  local o = options(opts, { bias = true }, "Linear")
  local m = new(Linear)
  m.in_features, m.out_features = posint(nin, "input size", "Linear"), posint(nout, "output size", "Linear")
  m._ws = buffer() -- small batches run faster as (W x^T)^T (see eg_linear_forward_ws)
  m._pspec = { { name = "weight", shape = { m.out_features, m.in_features } } }
  if o.bias then m._pspec[2] = { name = "bias", shape = { m.out_features } } end
  return m
end
-- reset(gen) re-initialises a built module's parameters in place.
local function need_params(self)
  if not rawget(self, "weight") then
    error(string.format("%s:reset: the module is not built (build the model first)", label(self)), 3)
  end
end

function Linear:reset(gen)
  need_params(self)
  local b = 1 / math.sqrt(self.in_features)
  core.nn_init_uniform(self.weight, -b, b, gen)
  if self.bias then core.nn_init_uniform(self.bias, -b, b, gen) end
end
function Linear:forward(x)
  if not self._built then ensure_built(self) end
  return core.nn_linear_forward(self.output, x, self.weight, self.bias, self._ws)
end
function Linear:backward(x, gy, need)
  if self._frozen then
    return core.nn_linear_backward(need ~= false and self.grad_input, nil, nil, gy, x, self.weight)
  end
  return core.nn_linear_backward(need ~= false and self.grad_input, self.grad_weight, self.grad_bias, gy, x,
    self.weight)
end
function Linear:_repr()
  return string.format("Linear(%d->%d%s)", self.in_features, self.out_features,
    self._pspec[2] and "" or ", no bias")
end

-- Element-wise activations: backward from the saved output (GELU from the input).
local function activation(name, kind, text)
  local cls = class(name)
  cls._kind = kind
  cls.forward = function(self, x) return core.nn_act_forward(self.output, x, kind, self.alpha) end
  cls.backward = function(self, x, gy)
    return core.nn_act_backward(self.grad_input, gy, x, self.output, kind, self.alpha)
  end
  cls._repr = function(self) return self.alpha and string.format("%s(%g)", text, self.alpha) or text end
  return cls
end
local ReLU = activation("ReLU", ACT.relu, "ReLU")
local LeakyReLU = activation("LeakyReLU", ACT.leaky_relu, "LeakyReLU")
local Tanh = activation("Tanh", ACT.tanh, "Tanh")
local Sigmoid = activation("Sigmoid", ACT.sigmoid, "Sigmoid")
local GELU = activation("GELU", ACT.gelu, "GELU")
function nn.ReLU() return new(ReLU) end
--- LeakyReLU(slope = 0.01)
function nn.LeakyReLU(slope)
  local m = new(LeakyReLU)
  m.alpha = slope or 0.01
  if type(m.alpha) ~= "number" then error("LeakyReLU: slope must be a number", 2) end
  return m
end
function nn.Tanh() return new(Tanh) end
function nn.Sigmoid() return new(Sigmoid) end
--- GELU, tanh approximation (PyTorch's gelu(approximate="tanh")).
function nn.GELU() return new(GELU) end

local Softmax = class("Softmax")
local LogSoftmax = class("LogSoftmax")
--- Softmax and LogSoftmax over the last dimension.
function nn.Softmax() return new(Softmax) end
function nn.LogSoftmax() return new(LogSoftmax) end
function Softmax:forward(x) return core.nn_softmax_forward(self.output, x, false) end
function Softmax:backward(_, gy) return core.nn_softmax_backward(self.grad_input, gy, self.output, false) end
function LogSoftmax:forward(x) return core.nn_softmax_forward(self.output, x, true) end
function LogSoftmax:backward(_, gy) return core.nn_softmax_backward(self.grad_input, gy, self.output, true) end

local Dropout = class("Dropout")
--- Dropout(p = 0.5, {generator=g}): in training mode zeroes each element
-- with probability p and scales the rest by 1/(1-p), with masks drawn from
-- the generator (default: the engine's default generator, so engram.seed
-- makes runs repeatable); the identity in evaluation mode.
function nn.Dropout(p, opts)
  local o = options(opts, { generator = false }, "Dropout")
  p = p or 0.5
  if type(p) ~= "number" or p < 0 or p >= 1 then error("Dropout: p must be in [0, 1)", 2) end
  local m = new(Dropout)
  m.p, m.generator, m._mask = p, o.generator or nil, buffer()
  m._out, m._gin = m.output, m.grad_input -- its own buffers; output is x itself when it passes x through
  return m
end
function Dropout:forward(x)
  if self.training and self.p > 0 then
    self._active = true
    self.output = core.nn_dropout_forward(self._out, self._mask, x, self.p, self.generator)
  else
    self._active = false
    self.output = x
  end
  return self.output
end
function Dropout:backward(_, gy)
  if self._active then
    self.grad_input = core.nn_dropout_backward(self._gin, gy, self._mask)
  else
    self.grad_input = gy
  end
  return self.grad_input
end
function Dropout:_repr() return string.format("Dropout(%g)", self.p) end

local LayerNorm = class("LayerNorm")
--- LayerNorm(D, {eps=1e-5, affine=true}) over the last dimension.
function nn.LayerNorm(D, opts)
  local o = options(opts, { eps = 1e-5, affine = true }, "LayerNorm")
  local m = new(LayerNorm)
  m.dim, m.eps, m.affine = posint(D, "size", "LayerNorm"), o.eps, o.affine
  m._mean, m._rstd = buffer(), buffer()
  if o.affine then
    m._pspec = { { name = "weight", shape = { m.dim } }, { name = "bias", shape = { m.dim } } }
  else
    m._ones = core.ones(m.dim)
  end
  return m
end
function LayerNorm:reset()
  need_params(self)
  self.weight:fill_(1)
  self.bias:fill_(0)
end
function LayerNorm:forward(x)
  if not self._built and self.affine then ensure_built(self) end
  return core.nn_layernorm_forward(self.output, self._mean, self._rstd, x, self.weight or self._ones, self.bias,
    self.eps)
end
function LayerNorm:backward(x, gy, need)
  local gw, gb = self.grad_weight, self.grad_bias
  if self._frozen then gw, gb = nil, nil end
  return core.nn_layernorm_backward(need ~= false and self.grad_input, gw, gb, gy, x, self._mean, self._rstd,
    self.weight or self._ones)
end
function LayerNorm:_repr() return string.format("LayerNorm(%d)", self.dim) end

local Flatten = class("Flatten")
--- Flatten(): [N, ...] -> [N, rest] (a view; 2-D input passes unchanged).
function nn.Flatten() return new(Flatten) end
function Flatten:forward(x) return core.nn_flatten(self.output, x) end
function Flatten:backward(x, gy) return core.nn_view_as(self.grad_input, gy, x) end

local Reshape = class("Reshape")
--- Reshape{1, 28, 28}: [N, ...] -> [N, 1, 28, 28] (a view; one size may be -1).
function nn.Reshape(shape)
  if type(shape) ~= "table" or #shape == 0 then error("Reshape: give the per-sample shape as a table", 2) end
  local m = new(Reshape)
  m.shape = shape
  return m
end
function Reshape:forward(x) return core.nn_reshape(self.output, x, self.shape) end
function Reshape:backward(x, gy) return core.nn_view_as(self.grad_input, gy, x) end
function Reshape:_repr() return "Reshape(" .. table.concat(self.shape, "x") .. ")" end

local Identity = class("Identity")
function nn.Identity() return new(Identity) end
function Identity:forward(x)
  self.output = x
  return x
end
function Identity:backward(_, gy)
  self.grad_input = gy
  return gy
end

local Conv2d = class("Conv2d")
--- Conv2d(in_channels, out_channels, kernel, {stride=1, padding=0, bias=true})
-- over [N, C, H, W]; square kernels; im2col + one sgemm per image.
function nn.Conv2d(cin, cout, k, opts)
  local o = options(opts, { stride = 1, padding = 0, bias = true }, "Conv2d")
  local m = new(Conv2d)
  m.in_channels = posint(cin, "input channels", "Conv2d")
  m.out_channels = posint(cout, "output channels", "Conv2d")
  m.kernel = posint(k, "kernel size", "Conv2d")
  m.stride = posint(o.stride, "stride", "Conv2d")
  m.padding = o.padding
  if math.type(m.padding) ~= "integer" or m.padding < 0 then error("Conv2d: padding must be an integer >= 0", 2) end
  m._cols = buffer()
  m._pspec = { { name = "weight", shape = { m.out_channels, m.in_channels, m.kernel, m.kernel } } }
  if o.bias then m._pspec[2] = { name = "bias", shape = { m.out_channels } } end
  return m
end
function Conv2d:reset(gen)
  need_params(self)
  local b = 1 / math.sqrt(self.in_channels * self.kernel * self.kernel)
  core.nn_init_uniform(self.weight, -b, b, gen)
  if self.bias then core.nn_init_uniform(self.bias, -b, b, gen) end
end
function Conv2d:forward(x)
  if not self._built then ensure_built(self) end
  return core.nn_conv2d_forward(self.output, self._cols, x, self.weight, self.bias, self.stride, self.padding)
end
function Conv2d:backward(x, gy, need)
  local gW, gb = self.grad_weight, self.grad_bias
  if self._frozen then gW, gb = nil, nil end
  return core.nn_conv2d_backward(need ~= false and self.grad_input, gW, gb, self._cols, gy, x, self.weight,
    self.stride, self.padding)
end
function Conv2d:_repr()
  return string.format("Conv2d(%d->%d, %dx%d, stride %d, padding %d)", self.in_channels, self.out_channels,
    self.kernel, self.kernel, self.stride, self.padding)
end

local MaxPool2d = class("MaxPool2d")
--- MaxPool2d(k, {stride=k, padding=0}) over [N, C, H, W].
function nn.MaxPool2d(k, opts)
  local o = options(opts, { stride = false, padding = 0 }, "MaxPool2d")
  local m = new(MaxPool2d)
  m.kernel = posint(k, "kernel size", "MaxPool2d")
  m.stride = posint(o.stride or m.kernel, "stride", "MaxPool2d")
  m.padding = o.padding
  m._idx = buffer()
  return m
end
function MaxPool2d:forward(x)
  return core.nn_maxpool2d_forward(self.output, self._idx, x, self.kernel, self.stride, self.padding)
end
function MaxPool2d:backward(x, gy) return core.nn_maxpool2d_backward(self.grad_input, gy, self._idx, x) end
function MaxPool2d:_repr() return string.format("MaxPool2d(%d, stride %d)", self.kernel, self.stride) end

local Embedding = class("Embedding")
--- Embedding(V, D): ids (float tensor of 0-based integral ids in [0, V),
-- like PyTorch; any shape) -> ids' shape followed by D. No input gradient.
function nn.Embedding(V, D)
  local m = new(Embedding)
  m.num, m.dim = posint(V, "vocabulary size", "Embedding"), posint(D, "width", "Embedding")
  m._pspec = { { name = "weight", shape = { m.num, m.dim } } }
  return m
end
function Embedding:reset(gen)
  need_params(self)
  core.nn_init_normal(self.weight, 0, 1, gen)
end
function Embedding:forward(ids)
  if not self._built then ensure_built(self) end
  return core.nn_embedding_forward(self.output, ids, self.weight)
end
function Embedding:backward(ids, gy)
  if not self._frozen then core.nn_embedding_backward(self.grad_weight, gy, ids) end
  return nil
end
function Embedding:_repr() return string.format("Embedding(%d, %d)", self.num, self.dim) end


return nn
