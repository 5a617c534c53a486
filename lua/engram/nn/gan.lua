--- engram.nn.gan: a small generative adversarial network (Goodfellow et al.
-- 2014) of two MLPs built from engram.nn layers, usable alone and as the
-- generator of generative replay (Shin et al. 2017 used a GAN).
--
--   local gan = engram.nn.gan{input = 784, latent = 64}
--   gan:fit(train, {iterations = 2000})        -- a dataset of [0,1] inputs
--   local x = gan:sample(16)                    -- [16,784] (borrowed)
--
-- Options (defaults in brackets; an unknown key is an error):
--   input [required]     floats per sample (the data must lie in [0, 1]:
--                        the generator ends with a Sigmoid)
--   latent [64]          size of the noise z ~ N(0, I) (> 0)
--   hidden [{256, 256}]  hidden sizes of the generator (ReLU) and of the
--                        discriminator (reversed, LeakyReLU 0.2)
--   lr [1e-3]            both Adams, betas {0.5, 0.999} (Radford et al. 2016's
--                        betas; the moving average below tolerates a higher
--                        rate than their 2e-4, and learns faster)
--   ema [0.999]          samples come from an exponential moving average of
--                        the generator's parameters (Yazici et al. 2019), with
--                        decay min(ema, (1 + k) / (10 + k)) at step k; 0: from
--                        the generator itself
--   seed [1]             initialisation and the noise
--   classes [0]          > 0: class-conditional: a one-hot label joins G's
--                        noise, and D has one output per class, the asked
--                        class's being its logit (a projection discriminator,
--                        Miyato & Koyama 2018, with the class embedding as
--                        the last layer's rows); train and sample take labels
--
-- Why (Split Fashion-MNIST, T-shirts and trousers, 2,000 steps of 64): the
-- projection makes samples follow the label (99.8% judged as the asked
-- class by a classifier trained on real data; with the label joined to D's
-- input instead, 61%, chance 50%), and the moving average removes the
-- speckle of the last steps' generator (a classifier trained on real
-- pullovers and dresses plus generated T-shirts and trousers then gets 63%
-- of the real T-shirts and trousers right, 81.5% at lr 1e-3, against 10-20%
-- from the raw generator: it learns to tell the speckled samples from real
-- images, and calls every real image a new class).
--
-- Training, one step per batch: the discriminator D takes one Adam step on
-- BCE(D(x), 1) + BCE(D(G(z)), 0), then the generator G one on the
-- non-saturating loss BCE(D(G(z)), 1) = -log D(G(z)) (its gradient does not
-- vanish while D rejects G's samples), with the same z; then the moving
-- average follows G. The parameters of G and D are one arena (gan.net =
-- Sequential(G, D)); each Adam trains its part (engram.optim on a module
-- inside a model); the average (gan.G_ema) has an arena of its own.
--
-- Methods: train_batch(x [, y]) -> d_loss, g_loss; g_loss_backward(z [, labels]) -> loss; train_mixed(x, _, xr, _, w)
-- (real data x weighted w and replayed xr weighted 1 - w in D's real term;
-- conditional: the fake batch's labels are drawn from y with probability w,
-- else from yr);
-- fit(ds, {iterations, batch, seed}); sample(n [, labels]) -> [n, input] (BORROWED), labels;
-- copy_from(other); clone(); state() ("generator.1.weight", ...,
-- "discriminator.1.weight", ..., "generator_ema.1.weight", ...); gan.trained: steps taken.
local core = require("engram.core")

local GAN = {}
GAN.__index = GAN

local DEFAULTS = { input = false, latent = 64, hidden = false, lr = 1e-3, seed = 1, classes = 0, ema = 0.999 }

local generator = require("engram.nn.generator")

local function new(opts)
  local o = generator.options("gan", opts, DEFAULTS, { 256, 256 }, "the size of the noise")
  if type(o.ema) ~= "number" or not (o.ema >= 0 and o.ema < 1) then
    error("gan: ema (the generator's moving-average decay) must be a number in [0, 1), got " .. tostring(o.ema), 0)
  end
  local nn = require("engram.nn")
  local C = o.classes
  local gs = { o.latent + C }
  for _, h in ipairs(o.hidden) do gs[#gs + 1] = h end
  gs[#gs + 1] = o.input
  local G = nn.mlp(gs):add(nn.Sigmoid())
  -- D: one output per class (conditional: the asked class's output is
  -- its logit) or one
  local D, nin = nn.Sequential(), o.input
  for i = #o.hidden, 1, -1 do
    D:add(nn.Linear(nin, o.hidden[i])):add(nn.LeakyReLU(0.2))
    nin = o.hidden[i]
  end
  D:add(nn.Linear(nin, math.max(C, 1)))
  local net = nn.Sequential(G, D):build { seed = o.seed }
  local optim, loss = require("engram.optim"), require("engram.loss")
  local s = setmetatable({ options = o, net = net, G = net.modules[1], D = net.modules[2], trained = 0,
    rng = core.generator(o.seed * 7919 + 29), crit = loss.BCEWithLogits(), _bufs = {}, _eye = generator.eye(C) },
    GAN)
  -- the moving average of G's parameters, in an arena of its own: samples come from it
  if o.ema > 0 then s.G_ema = s.G:clone() end
  s.optG = optim.Adam(s.G, { lr = o.lr, betas = { 0.5, 0.999 } })
  s.optD = optim.Adam(s.D, { lr = o.lr, betas = { 0.5, 0.999 } })
  return s
end

-- A [n,1] tensor of v (1: real, 0: fake), kept per size.
function GAN:_target(n, v)
  local key = v .. ":" .. n
  local t = self._bufs[key]
  if not t then
    t = core.full({ n, 1 }, v)
    self._bufs[key] = t
  end
  return t
end

-- D's logit on x: its output, or (conditional) its output for label y.
-- The one-hot rows of y are kept for _d_out_grad. Bad labels: an error
-- at level (from here).
function GAN:_d_fwd(x, y, method, level)
  local d = self.D:forward(x)
  if self.options.classes == 0 then return d end
  self:_check_labels(d:size(1), y, method, level + 1)
  self._oh = self._eye:index(y:view(-1) + 1)
  return (d * self._oh):sum(2):view(-1, 1)
end

-- The gradient of D's outputs from the logit's gradient g (the asked class's output only).
function GAN:_d_out_grad(g)
  if self.options.classes == 0 then return g end
  return self._oh * g:expand(g:size(1), self.options.classes)
end

-- D's BCE against target (ones or zeros) on x (labels y), weighted w; backward into D.
function GAN:_d_term(x, y, target, w)
  local d = self:_d_fwd(x, y, "train_mixed", 4)
  local l, g = self.crit:forward_backward(d, target)
  g:mul_(w)
  self.D:backward(x, self:_d_out_grad(g), false)
  return w * l
end

function GAN:_check(x, who)
  if not core.istensor(x) or x:dim() ~= 2 or x:size(2) ~= self.options.input then
    error(string.format("gan:%s: expected x [B, %d]", who, self.options.input), 3)
  end
end

--- The generator's non-saturating loss -log D(G(z)) (the mean over z's
-- rows; labels when conditional), its gradient added to G's through D's
-- input gradient (D's own gradients change too: zero them before D's step).
function GAN:g_loss_backward(z, labels)
  local zin = self:_with_label(z, labels, "g_loss_backward")
  local fake = self.G:forward(zin)
  local d = self:_d_fwd(fake, labels, "g_loss_backward", 3)
  local lg, g = self.crit:forward_backward(d, self:_target(z:size(1), 1))
  local gx = self.D:backward(fake, self:_d_out_grad(g), true)
  self.G:backward(zin, gx, false)
  return lg
end

-- Labels of the fake batch (conditional): each row takes a current label
-- with probability w, else a replayed one.
function GAN:_fake_labels(B, y, yr, w)
  local lab = self._flab
  if not lab or lab:numel() ~= B then
    lab = core.zeros(B)
    self._flab = lab
  end
  local rng = self.rng
  for i = 1, B do
    if yr and rng:uniform() >= w then
      lab:set(i, yr:get(rng:randint(1, yr:numel())))
    else
      lab:set(i, y:get(rng:randint(1, y:numel())))
    end
  end
  return lab
end

--- One step of D then G; real data x (weight w) and replayed xr (weight 1 - w).
function GAN:train_mixed(x, y, xr, yr, w)
  self:_check(x, "train_mixed")
  if not xr then w = 1 end
  local B = x:size(1)
  local cond = self.options.classes > 0
  if cond then
    self:_check_labels(B, y, "train_mixed", 3)
    if xr then self:_check_labels(xr:size(1), yr, "train_mixed", 3) end
  end
  local fl = cond and self:_fake_labels(B, y, xr and yr, w) or nil
  -- discriminator
  self.D:zero_grad()
  local ld = self:_d_term(x, y, self:_target(B, 1), w)
  if xr then ld = ld + self:_d_term(xr, yr, self:_target(xr:size(1), 1), 1 - w) end
  local z = self._z
  if not z or z:size(1) ~= B then
    z = core.zeros(B, self.options.latent)
    self._z = z
  end
  z:copy_(core.randn({ B, self.options.latent }, self.rng))
  local fake = self.G:forward(self:_with_label(z, fl, "train_mixed"))
  ld = ld + self:_d_term(fake, fl, self:_target(B, 0), 1)
  self.optD:step()
  -- generator: non-saturating, the same z
  self.G:zero_grad()
  local lg = self:g_loss_backward(z, fl)
  self.optG:step()
  self:_ema_step()
  self.trained = self.trained + 1
  return ld, lg
end

-- G_ema = b G_ema + (1 - b) G, b = min(ema, (1 + k) / (10 + k)) at step k
-- (a short memory while G moves fast at the start).
function GAN:_ema_step()
  local e = self.G_ema
  if not e then return end
  local k = self.trained
  local b = math.min(self.options.ema, (1 + k) / (10 + k))
  local avg, cur = e:flat(), self.G:flat()
  avg:mul_(b)
  core.nn_axpy(avg, 1 - b, cur)
end

function GAN:train_batch(x, y) return self:train_mixed(x, y, nil, nil, 1) end


function GAN:sample(n, labels)
  self:_check_sample(n)
  local b = self._sbufs
  if not b or b.n ~= n then
    b = { n = n, z = core.zeros(n, self.options.latent), out = core.zeros(n, self.options.input) }
    self._sbufs = b
  end
  b.z:copy_(core.randn({ n, self.options.latent }, self.rng))
  local C = self.options.classes
  if C > 0 and labels == nil then labels = self:_random_labels(n) end
  b.out:copy_((self.G_ema or self.G):forward(self:_with_label(b.z, labels, "sample")))
  return b.out, labels
end




function GAN:__tostring()
  local o = self.options
  return string.format("GAN(input %d, latent %d, hidden {%s}, %d parameters)", o.input, o.latent,
    table.concat(o.hidden, ", "), self.net:numel())
end

-- The optimisers a checkpoint saves (generator.install's checkpoint()).
function GAN:_optimizers() return { G = self.optG, D = self.optD } end

generator.install(GAN, "gan", new, { "generator", "discriminator" })

local copy_from, state = GAN.copy_from, GAN.state

function GAN:copy_from(other)
  if getmetatable(other) == GAN and (other.G_ema == nil) ~= (self.G_ema == nil) then
    error("gan:copy_from: one GAN keeps a moving average of its generator (ema > 0) and the other not", 2)
  end
  copy_from(self, other)
  if self.G_ema then self.G_ema:copy_params(other.G_ema) end
end

--- The parameters as named tensors, with the generator's moving average ("generator_ema.1.weight", ...).
function GAN:state()
  local out = state(self)
  if self.G_ema then
    for _, p in ipairs(self.G_ema:parameters()) do out["generator_ema." .. p.name] = p.value end
  end
  return out
end

return { new = new, GAN = GAN }
