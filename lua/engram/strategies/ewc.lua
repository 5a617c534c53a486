--- Elastic weight consolidation (Kirkpatrick et al. 2017) and online EWC
-- (Schwarz et al. 2018), over the model's flat parameter groups.
--
--   learner:use(engram.strategies.ewc{lambda = 1000})                 -- a penalty per past task
--   learner:use(engram.strategies.ewc{lambda = 1000, online = true, gamma = 0.9})
--
-- After each task the diagonal EMPIRICAL Fisher F = mean over N training
-- samples of the per-sample squared gradient of the loss (the data's labels,
-- not the model's samples) is estimated at the task's final parameters θ*.
-- While later tasks train, the loss hook adds (λ/2) Σ F (θ − θ*)² for each
-- past task (or once, with online F̃ ← γ F̃ + F and the latest θ*) and its
-- gradient λ F ⊙ (θ − θ*) in one C call per parameter group (cl.quad_penalty).
--
-- Options (defaults in brackets):
--   lambda [1000]     penalty strength λ
--   online [false]    online EWC: one running Fisher and one anchor
--   gamma [1]         online EWC's decay of the running Fisher
--   samples [1000]    training samples N for the Fisher (seeded subset)
--   fisher ["auto"]   "batched": per-sample squared gradients of every Linear
--                     layer from one product per layer and chunk of samples
--                     (Goodfellow 2015; needs a Sequential of Linear layers and
--                     element-wise activations with one parameter group);
--                     "loop": one backward pass per sample (any model);
--                     "auto": batched when the model allows it, else loop
--   seed [nil]        the Fisher subset's seed (default: the run's seed + task)
local core = require("engram.core")
local cl = require("engram.cl")
local strategies = require("engram.strategies")

local EWC = {}
EWC.__index = EWC

local function new(opts)
  local o = strategies.options("ewc", opts,
    { lambda = 1000, online = false, gamma = 1, samples = 1000, fisher = "auto", seed = false }, 3)
  if type(o.lambda) ~= "number" or o.lambda < 0 then
    error("ewc: lambda must be a number >= 0, got " .. tostring(o.lambda), 3)
  end
  if type(o.gamma) ~= "number" or o.gamma < 0 or o.gamma > 1 then
    error("ewc: gamma must be a number in [0, 1], got " .. tostring(o.gamma), 3)
  end
  if math.type(o.samples) ~= "integer" or o.samples < 1 then
    error("ewc: samples must be a positive integer, got " .. tostring(o.samples), 3)
  end
  if o.fisher ~= "auto" and o.fisher ~= "batched" and o.fisher ~= "loop" then
    error("ewc: fisher must be 'auto', 'batched' or 'loop', got " .. tostring(o.fisher), 3)
  end
  return setmetatable({ name = o.online and "online-ewc" or "ewc", options = o }, EWC)
end

function EWC:describe()
  local o = self.options
  return { name = self.name, options = { lambda = o.lambda, online = o.online, gamma = o.online and o.gamma or nil,
    samples = o.samples, fisher = self.fisher_used or o.fisher } }
end

local ELEMENTWISE = { ReLU = true, LeakyReLU = true, Tanh = true, Sigmoid = true, GELU = true, Identity = true,
  Dropout = true }

-- For the batched Fisher: the Linear layers of a plain Sequential with their
-- offsets in the (only) parameter group, or nil when the model does not fit.
local function linear_layout(model)
  local mods = rawget(model, "modules")
  if type(mods) ~= "table" or #mods == 0 or type(model.groups) ~= "function" then return nil end
  local groups = model:groups()
  if #groups ~= 1 then return nil end
  local params = groups[1].params
  local layers, off = {}, 0
  for k, m in ipairs(mods) do
    if m.in_features and m.out_features and m.weight then
      local nw = m.weight:numel()
      local l = { index = k, w_off = off, w_n = nw, out = m.out_features, inp = m.in_features }
      off = off + nw
      if m.bias then
        l.b_off, l.b_n = off, m.bias:numel()
        off = off + l.b_n
      end
      -- the arena layout must be what we assume: weight then bias, in module order
      if not params:narrow(1, l.w_off + 1, nw):equal(m.weight:view(nw)) then return nil end
      if l.b_off and not params:narrow(1, l.b_off + 1, l.b_n):equal(m.bias) then return nil end
      layers[#layers + 1] = l
    else
      local name = tostring(m):match("^(%a+)")
      local has_params = rawget(m, "_pspec") or rawget(m, "params_spec")
      if has_params or not ELEMENTWISE[name] then return nil end
    end
  end
  if off ~= params:numel() or #layers == 0 then return nil end
  return layers
end

local function label_map(task, y, targets)
  if targets then return targets(task, y) end
  if task.label_map then return task.label_map:index(y:add_(1)) end
  return y
end

-- Empirical Fisher by one backward pass per sample.
local function fisher_loop(model, task, ds, groups, F, crit, targets)
  local N = #ds
  for x, y in ds:chunks { batch = 1, flat = true } do
    y = label_map(task, y, targets)
    model:zero_grad()
    local logits = model:forward(x)
    local _, g = crit:forward_backward(logits, y)
    model:backward(x, g, false)
    for i, grp in ipairs(groups) do
      if not grp.frozen then cl.sq_accumulate(F[i], grp.grads, 1 / N) end
    end
  end
end

-- Empirical Fisher of every Linear layer from per-sample gradients δₙ xₙᵀ:
-- Σₙ (δₙ xₙᵀ)² = (δ²)ᵀ(x²), one product per layer and chunk.
local function fisher_batched(model, task, ds, layers, F, crit, targets)
  local N, mods = #ds, model.modules
  for x, y in ds:chunks { batch = 256, flat = true } do
    y = label_map(task, y, targets)
    local B = x:size(1)
    model:zero_grad()
    local logits = model:forward(x)
    local _, g = crit:forward_backward(logits, y)
    model:backward(x, g, false)
    -- g holds the per-sample gradients divided by B (mean loss): scale B²/N
    local scale = B * B / N
    for _, l in ipairs(layers) do
      local k = l.index
      local input = k == 1 and x or mods[k - 1].output
      local delta = k == #mods and g or mods[k + 1].grad_input
      local FW = F:narrow(1, l.w_off + 1, l.w_n):view(l.out, l.inp)
      local Fb = l.b_off and F:narrow(1, l.b_off + 1, l.b_n) or core.zeros(l.out)
      cl.linear_sq_grad_accumulate(FW, Fb, delta, input, scale)
    end
  end
end

--- Estimates the empirical Fisher of `task` for the model: a new array of
-- flat tensors, one per parameter group (zeros for frozen groups), and the
-- method used ("batched" or "loop"). opts: samples [1000], fisher ["auto"],
-- seed [1] (the subset), active (output mask; default task.active, false for
-- none), targets (function(task, y) -> labels; default the task's label map).
function EWC.fisher(model, task, opts)
  opts = opts or {}
  local samples, mode, seed = opts.samples or 1000, opts.fisher or "auto", opts.seed or 1
  local ds = task.train
  if #ds > samples then ds = ds:split(samples / #ds, seed) end
  local groups = model:groups()
  local F = {}
  for i, g in ipairs(groups) do F[i] = core.zeros(g.numel) end
  local active = task.active
  if opts.active ~= nil then active = opts.active or nil end
  local crit = require("engram.loss").CrossEntropy { active = active }
  local was_training = model.training
  model:evaluate()
  local layers = mode ~= "loop" and linear_layout(model) or nil
  if mode == "batched" and not layers then
    error("ewc: fisher = 'batched' needs a Sequential of Linear layers and element-wise activations " ..
      "with one parameter group (use 'loop')", 2)
  end
  if layers then
    fisher_batched(model, task, ds, layers, F[1], crit, opts.targets)
  else
    fisher_loop(model, task, ds, groups, F, crit, opts.targets)
  end
  model:zero_grad()
  if was_training ~= false then model:train() end
  return F, layers and "batched" or "loop"
end

function EWC:before_run()
  self.past, self.F, self.anchor = {}, nil, nil
end

function EWC:after_task(ctx)
  local o = self.options
  local L = ctx.learner
  local F, used = EWC.fisher(ctx.model, ctx.task, { samples = o.samples, fisher = o.fisher,
    seed = o.seed or (ctx.opts.seed * 1009 + ctx.t), active = L:active(ctx.task) or false,
    targets = function(task, y) return L:targets(task, y) end })
  self.fisher_used = used
  local anchor = {}
  for i, g in ipairs(ctx.model:groups()) do anchor[i] = g.params:clone() end
  if o.online then
    if self.F then
      for i = 1, #F do
        if self.F[i] and self.F[i]:numel() == F[i]:numel() then cl.decay_accumulate(self.F[i], F[i], o.gamma)
        else self.F[i] = F[i] end
      end
    else
      self.F = F
    end
    self.anchor = anchor
  else
    self.past[#self.past + 1] = { F = F, anchor = anchor }
  end
  local fsum = 0
  for i = 1, #F do fsum = fsum + F[i]:sum() end
  ctx.log("ewc_fisher", { task = ctx.t, fisher_sum = fsum, mode = used })
end

-- Adds (λ/2) Σ F (θ − θ*)² to the loss and λ F (θ − θ*) to the gradients.
local function penalise(groups, F, anchor, lambda)
  local pen = 0
  for i, g in ipairs(groups) do
    if not g.frozen and F[i] and anchor[i] and F[i]:numel() == g.numel then
      pen = pen + cl.quad_penalty(g.params, anchor[i], F[i], lambda, g.grads)
    end
  end
  return pen
end

function EWC:loss(ctx)
  local lambda = self.options.lambda
  if lambda == 0 then return end
  local groups = self._groups
  if not groups or ctx.step == 0 then
    groups = ctx.model:groups()
    self._groups = groups
  end
  local pen = 0
  if self.options.online then
    if self.F then pen = penalise(groups, self.F, self.anchor, lambda) end
  else
    for _, p in ipairs(self.past) do pen = pen + penalise(groups, p.F, p.anchor, lambda) end
  end
  ctx.loss = ctx.loss + pen
  ctx.penalty = ctx.penalty + pen
end

-- not a tail call: new's errors point two levels up, at the recipe's line
return setmetatable({ fisher = EWC.fisher, EWC = EWC }, { __call = function(_, opts)
  local s = new(opts)
  return s
end })
