--- engram.nn.vae: a variational autoencoder (Kingma & Welling 2014) built
-- from engram.nn layers, usable alone and as the generator of generative
-- replay (engram.strategies.generative_replay).
--
--   local vae = engram.nn.vae{input = 784, latent = 32}
--   vae:fit(train, {iterations = 2000})      -- a dataset of [0,1] inputs
--   local x = vae:sample(16)                  -- [16,784] (borrowed)
--
-- Options (defaults in brackets; an unknown key is an error):
--   input [required]     floats per sample
--   latent [32]          size Z of the latent code (> 0)
--   hidden [{400, 400}]  hidden sizes of the encoder; the decoder mirrors them
--   classes [0]          > 0: class-conditional (a one-hot label joins the
--                        encoder's and the decoder's input; sample takes labels)
--   likelihood ["bernoulli"]  "bernoulli": inputs in [0,1], the decoder gives
--                        logits and the reconstruction loss is the binary
--                        cross-entropy summed over the inputs (samples are the
--                        sigmoid's means); "gaussian": the decoder gives means,
--                        the loss is half the squared error summed over them
--   kl_weight [1]        weight of the KL term
--   activation ["relu"]  of the hidden layers (as in engram.nn.mlp)
--   lr [1e-3]            the VAE's own Adam
--   seed [1]             initialisation and the latent noise
--
-- Loss per sample: reconstruction + kl_weight * KL(q(z|x) || N(0, I)), the
-- mean over the batch. The encoder (mlp) gives h = [mu | logvar] (2Z
-- outputs); z = mu + exp(logvar/2) eps and the KL with its gradient are C
-- kernels (engram.core.vae_reparam_forward/backward, vae_kl; core/gen.h).
-- Parameters: one arena for the encoder and the decoder (vae.net, a
-- Sequential holding both); vae:state() names them ("encoder.1.weight", ...).
--
-- Methods:
--   vae:loss_backward(x [, y [, scale = 1]]) -> loss    adds scale * the batch's
--       gradient to the VAE's gradients (no step); y: labels when conditional
--   vae:step()                    one Adam step (then zero the gradients yourself)
--   vae:zero_grad()
--   vae:train_batch(x [, y]) -> loss    zero_grad, loss_backward, step
--   vae:train_mixed(x, y, xr, yr, w) -> loss   one step on w * loss(x) + (1 - w) * loss(xr)
--   vae:fit(ds, {iterations = 1000, batch = 128, seed = 1}) -> last loss
--   vae:sample(n [, labels]) -> x [n, input] (BORROWED: the next sample refills it);
--       labels: a tensor of n class ids, or nil for uniform ones (conditional)
--   vae:copy_from(other)          the other VAE's parameters (same options)
--   vae:clone()                   a copy with its own arena
--   vae:state() -> named tensors; vae.trained: steps taken (0: untrained)
local core = require("engram.core")

local VAE = {}
VAE.__index = VAE

local DEFAULTS = { input = false, latent = 32, hidden = false, classes = 0, likelihood = "bernoulli", kl_weight = 1,
  lr = 1e-3, seed = 1, activation = "relu" }

local generator = require("engram.nn.generator")

local function new(opts)
  local o = generator.options("vae", opts, DEFAULTS, { 400, 400 }, "the size of the latent code")
  if o.likelihood ~= "bernoulli" and o.likelihood ~= "gaussian" then
    error("vae: likelihood must be 'bernoulli' or 'gaussian', got " .. tostring(o.likelihood), 0)
  end
  if type(o.kl_weight) ~= "number" or o.kl_weight ~= o.kl_weight or o.kl_weight < 0 or o.kl_weight == math.huge then
    error("vae: kl_weight must be a finite number >= 0, got " .. tostring(o.kl_weight), 0)
  end
  local nn = require("engram.nn")
  local C, Z = o.classes, o.latent
  local es, ds = { o.input + C }, { Z + C }
  for _, h in ipairs(o.hidden) do es[#es + 1] = h end
  for i = #o.hidden, 1, -1 do ds[#ds + 1] = o.hidden[i] end
  es[#es + 1], ds[#ds + 1] = 2 * Z, o.input
  es.activation, ds.activation = o.activation, o.activation
  local ok, enc = pcall(nn.mlp, es)
  if not ok then error("vae: " .. tostring(enc):gsub("^.-mlp: ", ""), 0) end
  local dec = nn.mlp(ds)
  local net = nn.Sequential(enc, dec):build { seed = o.seed }
  local s = setmetatable({ options = o, net = net, encoder = enc, decoder = dec, trained = 0,
    rng = core.generator(o.seed * 7919 + 17),
    opt = require("engram.optim").Adam(net, { lr = o.lr }),
    crit = o.likelihood == "bernoulli" and require("engram.loss").BCEWithLogits() or require("engram.loss").MSE(),
    _bufs = {}, _eye = generator.eye(C) }, VAE)
  return s
end

-- Buffers of n rows, reused while n stays.
function VAE:_buffers(n)
  local b = self._bufs
  if b.n ~= n then
    local Z = self.options.latent
    b.n, b.z, b.eps, b.gh = n, core.zeros(n, Z), core.zeros(n, Z), core.zeros(n, 2 * Z)
    b.gz = core.zeros(n, Z)
    b.out = core.zeros(n, self.options.input)
  end
  return b
end

-- [x | onehot(y)] when conditional, else x.


function VAE:loss_backward(x, y, scale)
  if not core.istensor(x) or x:dim() ~= 2 or x:size(2) ~= self.options.input then
    error(string.format("vae:loss_backward: expected x [B, %d], got %s", self.options.input,
      core.istensor(x) and table.concat(x:size(), "x") or type(x)), 2)
  end
  scale = scale or 1
  local o = self.options
  local B, Z, D = x:size(1), o.latent, o.input
  local b = self:_buffers(B)
  local xin = self:_with_label(x, y, "loss_backward")
  local h = self.encoder:forward(xin)
  local gen = self.rng
  if self._fixed_eps then gen = false end -- the gradient check's: eps as the last call drew it
  core.vae_reparam_forward(b.z, b.eps, h, gen)
  local din = o.classes > 0 and core.cat({ b.z, xin:narrow(2, D + 1, o.classes) }, 2) or b.z
  local out = self.decoder:forward(din)
  local rec, gout = self.crit:forward_backward(out, x)
  -- the criteria take the mean over B*D elements; the loss sums over the inputs
  local rscale = o.likelihood == "bernoulli" and D or D / 2
  gout:mul_(rscale * scale)
  local gdin = self.decoder:backward(din, gout, true)
  local gz = b.gz
  if o.classes > 0 then gz:copy_(gdin:narrow(2, 1, Z)) else gz = gdin end
  core.vae_reparam_backward(b.gh, gz, b.eps, h)
  local kl = core.vae_kl(h, o.kl_weight * scale / B, b.gh)
  self.encoder:backward(xin, b.gh, false)
  return scale * rec * rscale + kl
end

function VAE:step()
  self.opt:step()
  self.trained = self.trained + 1
end

--- One step on current data x (labels y) weighted w and replayed data xr
-- (labels yr) weighted 1 - w (generative replay's mix; xr may be nil).
function VAE:train_mixed(x, y, xr, yr, w)
  self.net:zero_grad()
  local l = self:loss_backward(x, y, xr and w or 1)
  if xr then l = l + self:loss_backward(xr, yr, 1 - w) end
  self:step()
  return l
end

function VAE:train_batch(x, y)
  self.net:zero_grad()
  local l = self:loss_backward(x, y, 1)
  self:step()
  return l
end

--- Trains on a dataset (flat batches; labels used when conditional).

--- n generated samples (borrowed), the decoder's means.
function VAE:sample(n, labels)
  self:_check_sample(n)
  local o = self.options
  local b = self:_buffers(n)
  b.z:copy_(core.randn({ n, o.latent }, self.rng))
  local din = b.z
  if o.classes > 0 then
    if labels == nil then labels = self:_random_labels(n) end
    if not core.istensor(labels) or labels:numel() ~= n then
      error(string.format("vae:sample: a conditional VAE needs %d labels", n), 2)
    end
    din = self:_with_label(b.z, labels, "sample")
  end
  local out = self.decoder:forward(din)
  b.out:copy_(out)
  if o.likelihood == "bernoulli" then b.out:sigmoid_() end
  return b.out, labels
end

--- A VAE with the same options and parameters (its own arena and Adam).


--- The parameters as named tensors ("encoder.1.weight", "decoder.3.bias", ...).


function VAE:__tostring()
  local o = self.options
  return string.format("VAE(input %d, latent %d, hidden {%s}%s, %s, %d parameters)", o.input, o.latent,
    table.concat(o.hidden, ", "), o.classes > 0 and (", " .. o.classes .. " classes") or "", o.likelihood,
    self.net:numel())
end

-- The optimisers a checkpoint saves (generator.install's checkpoint()).
function VAE:_optimizers() return { opt = self.opt } end

generator.install(VAE, "vae", new, { "encoder", "decoder" })

return { new = new, VAE = VAE }
