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
--   lr [2e-4]            both Adams, betas {0.5, 0.999} (Radford et al. 2016's
--                        DCGAN settings, which also keep this small MLP GAN stable)
--   seed [1]             initialisation and the noise
--   classes [0]          > 0: class-conditional (a one-hot label joins G's
--                        noise and D's input; train and sample take labels)
--
-- Training, one step per batch: the discriminator D takes one Adam step on
-- BCE(D(x), 1) + BCE(D(G(z)), 0), then the generator G one on the
-- non-saturating loss BCE(D(G(z)), 1) = -log D(G(z)) (its gradient does not
-- vanish while D rejects G's samples), with the same z. The parameters of G
-- and D are one arena (gan.net = Sequential(G, D)); each Adam trains its
-- part (engram.optim on a module inside a model).
--
-- Methods: train_batch(x [, y]) -> d_loss, g_loss; g_loss_backward(z [, labels]) -> loss; train_mixed(x, _, xr, _, w)
-- (real data x weighted w and replayed xr weighted 1 - w in D's real term;
-- conditional: the fake batch's labels are drawn from y with probability w,
-- else from yr);
-- fit(ds, {iterations, batch, seed}); sample(n [, labels]) -> [n, input] (BORROWED), labels;
-- copy_from(other); clone(); state() ("generator.1.weight", ...,
-- "discriminator.1.weight", ...); gan.trained: steps taken.
local core = require("engram.core")

local GAN = {}
GAN.__index = GAN

local DEFAULTS = { input = false, latent = 64, hidden = false, lr = 2e-4, seed = 1, classes = 0 }

local generator = require("engram.nn.generator")

local function new(opts)
  local o = generator.options("gan", opts, DEFAULTS, { 256, 256 }, "the size of the noise")
  local nn = require("engram.nn")
  local C = o.classes
  local gs, ds = { o.latent + C }, { o.input + C, activation = "leaky_relu" }
  for _, h in ipairs(o.hidden) do gs[#gs + 1] = h end
  for i = #o.hidden, 1, -1 do ds[#ds + 1] = o.hidden[i] end
  gs[#gs + 1], ds[#ds + 1] = o.input, 1
  local G = nn.mlp(gs):add(nn.Sigmoid())
  local D = nn.mlp(ds)
  local net = nn.Sequential(G, D):build { seed = o.seed }
  local optim, loss = require("engram.optim"), require("engram.loss")
  local s = setmetatable({ options = o, net = net, G = net.modules[1], D = net.modules[2], trained = 0,
    rng = core.generator(o.seed * 7919 + 29), crit = loss.BCEWithLogits(), _bufs = {}, _eye = generator.eye(C) },
    GAN)
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

-- [x | onehot(y)] when conditional, else x.

-- D's BCE against target (ones or zeros) on x (labels y), weighted w; backward into D.
function GAN:_d_term(x, y, target, w)
  x = self:_with_label(x, y, "train_mixed")
  local d = self.D:forward(x)
  local l, g = self.crit:forward_backward(d, target)
  g:mul_(w)
  self.D:backward(x, g, false)
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
  local din = self:_with_label(fake, labels, "g_loss_backward")
  local d = self.D:forward(din)
  local lg, g = self.crit:forward_backward(d, self:_target(z:size(1), 1))
  local gx = self.D:backward(din, g, true)
  if self.options.classes > 0 then
    local gf = self._gf
    if not gf or gf:size(1) ~= z:size(1) then
      gf = core.zeros(z:size(1), self.options.input)
      self._gf = gf
    end
    gx = gf:copy_(gx:narrow(2, 1, self.options.input))
  end
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
  self.trained = self.trained + 1
  return ld, lg
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
  b.out:copy_(self.G:forward(self:_with_label(b.z, labels, "sample")))
  return b.out, labels
end





function GAN:__tostring()
  local o = self.options
  return string.format("GAN(input %d, latent %d, hidden {%s}, %d parameters)", o.input, o.latent,
    table.concat(o.hidden, ", "), self.net:numel())
end

generator.install(GAN, "gan", new, { "generator", "discriminator" })

return { new = new, GAN = GAN }
