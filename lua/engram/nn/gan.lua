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

local function posint(v, name, allow_zero)
  if math.type(v) ~= "integer" or v < (allow_zero and 0 or 1) then
    error(string.format("gan: %s must be an integer %s, got %s", name, allow_zero and ">= 0" or "> 0", tostring(v)),
      0)
  end
end

local function new(opts)
  if type(opts) ~= "table" then error("gan: expected an options table {input = ..., latent = ...}", 0) end
  local o = {}
  for k, v in pairs(opts) do
    if DEFAULTS[k] == nil then
      local names = {}
      for n in pairs(DEFAULTS) do names[#names + 1] = n end
      table.sort(names)
      error(string.format("gan: unknown option '%s' (known: %s)", tostring(k), table.concat(names, ", ")), 0)
    end
    o[k] = v
  end
  for k, v in pairs(DEFAULTS) do if o[k] == nil then o[k] = v end end
  if not o.input then error("gan: the option 'input' (floats per sample) is required", 0) end
  posint(o.input, "input (floats per sample)")
  posint(o.latent, "latent (the size of the noise)")
  posint(o.classes, "classes", true)
  o.hidden = o.hidden or { 256, 256 }
  if type(o.hidden) ~= "table" or #o.hidden == 0 then
    error("gan: hidden must be a list of sizes, e.g. {256, 256}", 0)
  end
  for i, h in ipairs(o.hidden) do posint(h, "hidden[" .. i .. "]") end
  if type(o.lr) ~= "number" or o.lr ~= o.lr or o.lr <= 0 or o.lr == math.huge then
    error("gan: lr must be a positive finite number, got " .. tostring(o.lr), 0)
  end
  posint(o.seed, "seed", true)
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
    rng = core.generator(o.seed * 7919 + 29), crit = loss.BCEWithLogits(), _bufs = {} }, GAN)
  if C > 0 then
    local e = core.zeros(C, C)
    for c = 1, C do e:set(c, c, 1) end
    s._eye = e
  end
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
function GAN:_with_label(x, y, who)
  local C = self.options.classes
  if C == 0 then return x end
  if not core.istensor(y) or y:numel() ~= x:size(1) then
    error(string.format("gan:%s: a conditional GAN (classes = %d) needs a label per sample", who, C), 3)
  end
  if y:min() < 0 or y:max() >= C then
    error(string.format("gan:%s: labels must be class ids in [0, %d)", who, C), 3)
  end
  return core.cat({ x, self._eye:index(y:view(-1) + 1) }, 2)
end

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

function GAN:fit(ds, opts)
  if not require("engram.data").is_dataset(ds) then error("gan:fit: expected a dataset, got " .. type(ds), 2) end
  opts = opts or {}
  local iterations, batch = opts.iterations or 1000, opts.batch or 128
  posint(iterations, "fit's iterations")
  posint(batch, "fit's batch")
  local it = ds:batches { batch = batch, shuffle = true, flat = true, seed = opts.seed or self.options.seed }
  local ld, lg
  for _ = 1, iterations do
    local x, y = it:next()
    if x == nil then x, y = it:next() end
    ld, lg = self:train_batch(x, y)
  end
  return ld, lg
end

function GAN:sample(n, labels)
  if math.type(n) ~= "integer" or n < 1 then
    error("gan:sample: n must be a positive integer, got " .. tostring(n), 2)
  end
  if self.trained == 0 then
    error("gan:sample: the GAN is untrained (train it first: gan:fit(ds), gan:train_batch(x) or copy_from)", 2)
  end
  local b = self._sbufs
  if not b or b.n ~= n then
    b = { n = n, z = core.zeros(n, self.options.latent), out = core.zeros(n, self.options.input) }
    self._sbufs = b
  end
  b.z:copy_(core.randn({ n, self.options.latent }, self.rng))
  local C = self.options.classes
  if C > 0 and labels == nil then
    labels = core.zeros(n)
    for i = 1, n do labels:set(i, self.rng:randint(1, C) - 1) end
  end
  b.out:copy_(self.G:forward(self:_with_label(b.z, labels, "sample")))
  return b.out, labels
end

function GAN:copy_from(other)
  if getmetatable(other) ~= GAN then error("gan:copy_from: expected a GAN", 2) end
  self.net:copy_params(other.net)
  self.trained = other.trained
end

function GAN:clone()
  local o = {}
  for k, v in pairs(self.options) do o[k] = v end
  local c = new(o)
  c:copy_from(self)
  return c
end

function GAN:state()
  local out = {}
  for _, p in ipairs(self.net:parameters()) do
    out[(p.name:gsub("^1%.", "generator."):gsub("^2%.", "discriminator."))] = p.value
  end
  return out
end

function GAN:parameters() return self.net:parameters() end
function GAN:groups() return self.net:groups() end
function GAN:numel() return self.net:numel() end
function GAN:zero_grad() self.net:zero_grad() end

function GAN:__tostring()
  local o = self.options
  return string.format("GAN(input %d, latent %d, hidden {%s}, %d parameters)", o.input, o.latent,
    table.concat(o.hidden, ", "), self.net:numel())
end

return { new = new, GAN = GAN }
