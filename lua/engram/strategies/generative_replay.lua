--- Generative replay, DGR (Shin et al. 2017) with van de Ven et al.'s
-- weighting and distillation (2018, 2020).
--
--   learner:use(engram.strategies.generative_replay{generator = "vae", distill = true, T = 2})
--   learner:use(engram.strategies.generative_replay{generator = "gan"})
--
-- A generator (engram.nn.vae or engram.nn.gan) learns the inputs of every
-- task so far. While task t trains (t > 1), every step also draws a batch
-- from the generator as it was at the end of task t-1, labels it with the
-- model as it was then (ctx.old_model: needs_old_model), and trains on it:
--
--   (1/t) L_current + (1 - 1/t) L_replay
--
-- with L_replay the cross-entropy on the old model's hard labels (its argmax
-- over the previous tasks' classes) or, with distill = true, the
-- distillation T² KL(softmax(old/T) ‖ softmax(new/T)) (engram.loss.KLDistill),
-- both over all outputs, the old model's logits of the classes it never saw
-- set to -1e4: replayed inputs also push the current task's classes down
-- (over the old classes alone, nothing keeps the new classes from taking
-- the old inputs in class-IL). The generator trains in the same steps on the
-- same mix: the current batch weighted 1/t and the replayed one 1 - 1/t
-- (its own replay keeps its earlier tasks). Training both together shares
-- the replayed batch: one generator sample and one old-model forward a step.
--
-- Options (defaults in brackets):
--   generator ["vae"]    "vae" or "gan"
--   distill [false]      soft targets at temperature T instead of hard labels
--   T [2]                the temperature (> 0)
--   latent [nil]         the generator's latent size (vae 32, gan 64)
--   hidden [nil]         its hidden sizes (vae {400, 400}, gan {256, 256})
--   conditional [false]  a class-conditional generator (VAE or GAN); replayed
--                        samples are drawn for classes of the previous tasks,
--                        uniformly
--   likelihood ["bernoulli"]  VAE only (inputs in [0,1]; "gaussian" otherwise)
--   gen_lr [nil]         the generator's learning rate (vae 1e-3, gan 1e-3)
--   batch [nil]          replayed samples per step (default: the batch size)
--   gen_batch [nil]      the generator trains on this many of the current and
--                        of the replayed samples each step (default: all); a
--                        smaller share makes its step cheaper
--   seed [1]             the generator's initialisation and noise
--
-- Hooks: before_task (the frozen copy of the generator), loss (the current
-- loss scaled to 1/t: strategies added before this one are scaled with it),
-- after_backward (the replayed batch's forward/backward, whose gradient adds
-- to the step's, and the generator's step). ctx.logits is the replayed
-- batch's output after this hook. Class- and domain-IL; per-task heads are
-- refused. State: the generator's parameters ("generator.<name>", the VAE's
-- "encoder.*"/"decoder.*" or the GAN's "generator.*"/"discriminator.*"/"generator_ema.*"),
-- its optimisers ("generator.optim.*") and the frozen copy ("old_generator.*"):
-- checkpoints between tasks resume exactly (load_state).
-- ctx.extra.generative_replay: the generator's description and its last loss.
local core = require("engram.core")
local loss = require("engram.loss")
local strategies = require("engram.strategies")

local GR = {}
GR.__index = GR
GR.needs_old_model = true

local function new(opts)
  local o = strategies.options("generative_replay", opts, { generator = "vae", distill = false, T = 2,
    latent = false, hidden = false, conditional = false, likelihood = "bernoulli", gen_lr = false, batch = false,
    gen_batch = false, seed = 1 }, 3)
  local function bad(msg) error("generative_replay: " .. msg, 4) end
  if o.generator ~= "vae" and o.generator ~= "gan" then
    bad("generator must be 'vae' or 'gan', got " .. tostring(o.generator))
  end
  if type(o.T) ~= "number" or o.T ~= o.T or o.T <= 0 or o.T == math.huge then
    bad("temperature T must be a finite number > 0, got " .. tostring(o.T))
  end
  if o.latent and (math.type(o.latent) ~= "integer" or o.latent < 1) then
    bad("latent (the generator's latent size) must be a positive integer, got " .. tostring(o.latent))
  end
  if o.batch and (math.type(o.batch) ~= "integer" or o.batch < 1) then
    bad("batch must be a positive integer, got " .. tostring(o.batch))
  end
  if o.gen_batch and (math.type(o.gen_batch) ~= "integer" or o.gen_batch < 1) then
    bad("gen_batch must be a positive integer, got " .. tostring(o.gen_batch))
  end
  return setmetatable({ name = "generative_replay", options = o }, GR)
end

function GR:describe()
  local o = self.options
  return { name = "generative_replay", options = { generator = o.generator, distill = o.distill, T = o.T,
    latent = o.latent or nil, hidden = o.hidden and table.concat(o.hidden, ",") or nil,
    conditional = o.conditional or nil, batch = o.batch or nil, gen_batch = o.gen_batch or nil } }
end

function GR:_make(ctx)
  local o = self.options
  local input = ctx.tasks[1].train:numel()
  local spec = { input = input, seed = o.seed, latent = o.latent or nil, hidden = o.hidden or nil,
    lr = o.gen_lr or nil }
  spec.classes = o.conditional and ctx.scenario.num_classes or nil
  if o.generator == "vae" then spec.likelihood = o.likelihood end
  local ok, g = pcall(require("engram.nn")[o.generator], spec)
  if not ok then error("generative_replay: " .. tostring(g):gsub("^.-:%d+: ", ""), 0) end
  return g
end

function GR:before_run(ctx)
  self.gen, self.old_gen = self:_make(ctx), nil
  self._crit_for, self._last = nil, nil
  ctx.extra.generative_replay = { generator = tostring(self.gen) }
end

-- The previous tasks' classes (class- and task-IL: theirs; domain-IL: all).
local function old_classes(ctx)
  local seen, list = {}, {}
  for s = 1, ctx.t - 1 do
    for _, c in ipairs(ctx.tasks[s].targets or ctx.tasks[s].classes) do
      if not seen[c] then seen[c], list[#list + 1] = true, c end
    end
  end
  if ctx.scenario.kind == "domain" then
    list = {}
    for c = 0, ctx.scenario.num_classes - 1 do list[#list + 1] = c end
  end
  table.sort(list)
  return list
end

function GR:before_task(ctx)
  if ctx.opts.heads then
    error("generative_replay: per-task heads (the learner's heads = true) are not supported; use class- or " ..
      "domain-IL", 0)
  end
  if ctx.t == 1 then return end
  if self.gen.trained == 0 then
    error("generative_replay: the generator is untrained at the start of task " .. ctx.t ..
      " (it trains while the strategy acts: schedule it from task 1)", 0)
  end
  if self.old_gen then self.old_gen:copy_from(self.gen) else self.old_gen = self.gen:clone() end
  local old = old_classes(ctx)
  self._old = old
  local K = ctx.scenario.num_classes
  -- the old model knows the previous tasks' classes only: its target puts
  -- (next to) no mass on the others, and the loss is over all outputs, so
  -- that replayed inputs also push the current task's classes down
  local neg = core.full({ 1, K }, -1e4)
  for _, c in ipairs(old) do neg:set(1, c + 1, 0) end
  self._neg = neg
  if self.options.distill then
    self._crit = loss.KLDistill { T = self.options.T }
  else
    self._crit = loss.CrossEntropy()
  end
  self._oldlist = core.tensor(old)
end

function GR.loss(_, ctx)
  if ctx.t == 1 or not ctx.grad_logits then return end -- (no task batch in a phase with data = "none")
  local w = 1 / ctx.t
  ctx.grad_logits:mul_(w)
  ctx.loss = ctx.loss * w
end

-- n class ids drawn uniformly from the previous tasks' classes (conditional).
function GR:_labels(n)
  local list, lab = self._oldlist, self._lab
  if not lab or lab:numel() ~= n then
    lab = core.zeros(n)
    self._lab = lab
  end
  local rng, k = self.gen.rng, list:numel()
  for i = 1, n do lab:set(i, list:get(rng:randint(1, k))) end
  return lab
end

function GR:after_backward(ctx)
  local t, x, y = ctx.t, ctx.task_x, ctx.task_y
  local xr, yr
  -- a phase with data = "none" (a sleep): the replayed samples alone, at full
  -- weight, and the generator does not train on its own samples
  local sleeping = x:size(1) == 0
  local w = sleeping and 0 or 1 / t
  if t > 1 then
    local model, old = ctx.model, ctx.old_model
    local n = self.options.batch or (sleeping and ctx.batch_size) or x:size(1)
    if self.options.conditional then
      xr, yr = self.old_gen:sample(n, self:_labels(n))
    else
      xr = self.old_gen:sample(n)
    end
    local target = old:forward(xr) + self._neg:expand(n, self._neg:size(2))
    if not self.options.distill then
      local _, idx = target:max(2)
      target = idx:view(-1) - 1
    end
    local student = model:forward(xr)
    local l, g = self._crit:forward_backward(student, target)
    g:mul_(1 - w)
    model:backward(xr, g, false)
    local add = (1 - w) * l
    ctx.loss, ctx.penalty = ctx.loss + add, ctx.penalty + add
  end
  if sleeping then return end
  local k = self.options.gen_batch
  if k and k < x:size(1) then x, y = x:narrow(1, 1, k), y:narrow(1, 1, k) end
  if k and xr and k < xr:size(1) then xr, yr = xr:narrow(1, 1, k), yr and yr:narrow(1, 1, k) end
  self._last = self.gen:train_mixed(x, y, xr, yr, w)
end

function GR:after_task(ctx)
  ctx.extra.generative_replay.last_loss = self._last
  ctx.extra.generative_replay.steps = self.gen.trained
end

--- The state as named tensors: the generator's parameters
-- ("generator.encoder.1.weight", ...) and its optimisers' buffers
-- ("generator.optim.opt.base.m", ...), and from task 2 on the frozen copy
-- that replays ("old_generator.*"). state_meta() holds their steps, noise
-- generators' states and optimisers' scalars. With the old model the
-- learner keeps (needs_old_model), a checkpoint between tasks then continues
-- bit-identically (docs/checkpoints.md).
function GR:state()
  local out, meta = {}, {}
  for prefix, g in pairs { generator = self.gen, old_generator = self.old_gen } do
    local t, m = g:checkpoint()
    for k, v in pairs(t) do out[prefix .. "." .. k] = v end
    meta[prefix] = m
  end
  self._meta = meta
  return out
end

function GR:state_meta()
  if not self._meta then self:state() end
  local m = self._meta
  self._meta = nil
  return m
end

function GR:load_state(st, _, meta)
  if type(meta) ~= "table" or type(meta.generator) ~= "table" then
    error("generative_replay: load_state: the generator's records are missing", 0)
  end
  local parts = { generator = {}, old_generator = {} }
  for name, t in pairs(st) do
    local prefix, rest = name:match("^([%w_]+)%.(.+)$")
    if not parts[prefix] then error("generative_replay: load_state: unknown tensor '" .. name .. "'", 0) end
    parts[prefix][rest] = t
  end
  if (meta.old_generator ~= nil) ~= (next(parts.old_generator) ~= nil) then
    error("generative_replay: load_state: the frozen copy of the generator is incomplete", 0)
  end
  self.gen:load_checkpoint(parts.generator, meta.generator, "generative_replay: load_state: generator")
  if meta.old_generator then
    self.old_gen = self.old_gen or self.gen:clone()
    self.old_gen:load_checkpoint(parts.old_generator, meta.old_generator,
      "generative_replay: load_state: old generator")
  end
end

return setmetatable({ GR = GR }, { __call = function(_, opts)
  local s = new(opts)
  return s
end })
