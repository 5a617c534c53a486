--- engram.optim: optimisers over flat parameter groups, and learning-rate schedules.
--
--   local opt = engram.optim.SGD(model, {lr = 0.1, momentum = 0.9})
--   for x, y in batches do
--     opt:zero_grad(); ... model:backward(x, gy); opt:step()
--   end
--   opt:reset()          -- drop momentum / moments and restart the schedule (between tasks)
--
-- Constructors (defaults shown; an unknown option is an error):
--   SGD(model, {lr = 0.01, momentum = 0, dampening = 0, nesterov = false,
--               weight_decay = 0, clip = nil, schedule = nil})
--   Adam(model, {lr = 1e-3, betas = {0.9, 0.999}, eps = 1e-8, weight_decay = 0,
--                clip = nil, schedule = nil})      -- L2: weight decay added to the gradient
--   AdamW(model, {... same, weight_decay = 0.01})  -- decoupled: p <- p (1 - lr wd) first
-- The update rules are PyTorch's. `clip` is a maximum joint L2 norm of the
-- gradients of all trainable groups (they are scaled down before the step;
-- opt.last_grad_norm is the norm before clipping). `schedule` is one of the
-- engram.optim.schedule objects below; it sets the learning rate of every step.
--
-- `model` is anything with model:groups() -> {{name=, params=, grads=,
-- frozen=, mask=?}, ...} (flat tensors, engram.nn models), or such a list of
-- groups itself. The groups are re-read at every step: a group added after
-- the optimiser (a new head, adapters) gets its state at its first step.
-- Frozen groups are skipped. A mask (1 train, 0 keep; same number of elements
-- as the group) set with opt:set_mask(name, mask), or given as the group's
-- `mask` field, freezes single elements: they and their state do not change.
-- Each step is one C loop per group; a warm step allocates no tensors.
--
-- Fused terms: what a regulariser does at every step, done inside the next
-- step's own pass over a group instead of in passes of its own over the
-- arena (core/optim.h, eg_step_terms). Both are for the next step only (a
-- strategy asks again at every step it acts in), and both return false when
-- the group already has one for that step (the caller then does the work
-- itself, as it would for an optimiser without these methods):
--   opt:penalise(params, pen)   a quadratic penalty on the group whose
--       parameters are `params`: pen = {F =, anchor =, lambda =}
--       ((lambda/2) Σ F (θ − anchor)²) or {A =, B =, C =, lambda =} (the
--       folded (lambda/2) (Σ (A θ² − 2 B θ) + C)). Its gradient joins the
--       step's gradient (before clipping) without being written into the
--       group's grads; after the step pen.value is the penalty at the
--       parameters before it (0 if the group was frozen).
--   opt:track_path(params, omega [, pg])   SI's path integral:
--       omega −= (g − pg) ⊙ Δθ, g the group's grads as backward left them
--       (no fused penalty, no clipping), Δθ the step taken.
-- With clipping and fused terms the gradients are scaled inside the step:
-- the groups' grads keep what backward left in them.
--
-- Schedules (engram.optim.schedule), objects with :lr_at(step, base_lr) where
-- step counts the steps already taken (0 for the first):
--   step{every = n, gamma = 0.1}       base * gamma^floor(step / every)
--   cosine{total = n, min = 0}         min + (base - min)(1 + cos(pi min(step,total)/total))/2
--   warmup{steps = n, after = nil}     base (step+1)/n for the first n steps, then
--                                      after:lr_at(step - n, base) (or base)
local core = require("engram.core")
local util = require("engram.util")

local optim = {}
local schedule = {}
optim.schedule = schedule

local NONE = {} -- marks an option without a default

local function check_opts(who, opts, defaults, level)
  local o = util.with_defaults(util.check_options(who, opts, defaults, level + 1), defaults, NONE)
  return o
end

local function check_number(who, name, v, lo, level, strict)
  if type(v) ~= "number" or v ~= v or v == math.huge or v < lo or (strict and v == lo) then
    error(string.format("%s: %s must be a number %s %s, got %s", who, name, strict and ">" or ">=", lo, tostring(v)),
      level + 1)
  end
  return v
end

local call = require("engram.util").call

-- ---------------------------------------------------------------- schedules

local Schedule = {}
Schedule.__index = Schedule
function Schedule:__tostring() return "engram.optim.schedule." .. self.kind end

local function check_step(who, step)
  if math.type(step) ~= "integer" and not (type(step) == "number" and step == math.floor(step)) or step < 0 then
    error(string.format("%s: step must be an integer >= 0, got %s", who, tostring(step)), 3)
  end
end

--- Multiplies the rate by gamma every `every` steps.
function schedule.step(opts)
  local o = check_opts("schedule.step", opts, { every = NONE, gamma = 0.1 }, 2)
  if math.type(o.every) ~= "integer" or o.every < 1 then
    error("schedule.step: 'every' must be an integer >= 1, got " .. tostring(o.every), 2)
  end
  check_number("schedule.step", "gamma", o.gamma, 0, 2)
  return setmetatable({ kind = "step", every = o.every, gamma = o.gamma, lr_at = function(self, step, base)
    check_step("schedule.step", step)
    return base * self.gamma ^ (step // self.every)
  end }, Schedule)
end

--- Cosine annealing from the base rate to `min` over `total` steps, then `min`.
function schedule.cosine(opts)
  local o = check_opts("schedule.cosine", opts, { total = NONE, min = 0 }, 2)
  if math.type(o.total) ~= "integer" or o.total < 1 then
    error("schedule.cosine: 'total' must be an integer >= 1, got " .. tostring(o.total), 2)
  end
  check_number("schedule.cosine", "min", o.min, 0, 2)
  return setmetatable({ kind = "cosine", total = o.total, min = o.min, lr_at = function(self, step, base)
    check_step("schedule.cosine", step)
    local s = math.min(step, self.total)
    return self.min + (base - self.min) * (1 + math.cos(math.pi * s / self.total)) / 2
  end }, Schedule)
end

--- Linear warm-up over `steps` steps, then another schedule (or the base rate).
function schedule.warmup(opts)
  local o = check_opts("schedule.warmup", opts, { steps = NONE, after = NONE }, 2)
  if math.type(o.steps) ~= "integer" or o.steps < 1 then
    error("schedule.warmup: 'steps' must be an integer >= 1, got " .. tostring(o.steps), 2)
  end
  if o.after ~= nil and (type(o.after) ~= "table" or type(o.after.lr_at) ~= "function") then
    error("schedule.warmup: 'after' must be a schedule (an object with lr_at)", 2)
  end
  return setmetatable({ kind = "warmup", steps = o.steps, after = o.after, lr_at = function(self, step, base)
    check_step("schedule.warmup", step)
    if step < self.steps then return base * (step + 1) / self.steps end
    if self.after then return self.after:lr_at(step - self.steps, base) end
    return base
  end }, Schedule)
end

-- ---------------------------------------------------------------- optimisers

local Optimizer = {}
Optimizer.__index = Optimizer

local weak = { __mode = "k" }

local function check_model(who, model, level)
  if type(model) ~= "table" then
    error(string.format("%s: expected a model or a list of parameter groups, got %s", who, type(model)), level + 1)
  end
  if type(model.groups) ~= "function" then
    for i, g in ipairs(model) do
      if type(g) ~= "table" or not core.istensor(g.params) or not core.istensor(g.grads) then
        error(string.format("%s: group #%d needs tensors 'params' and 'grads'", who, i), level + 1)
      end
    end
  end
end

-- level: where the recipe is, seen from new_optimizer's caller.
local function new_optimizer(kind, model, opts, defaults, level)
  level = level + 1
  check_model(kind, model, level)
  local o = check_opts(kind, opts, defaults, level)
  check_number(kind, "lr", o.lr, 0, level)
  check_number(kind, "weight_decay", o.weight_decay, 0, level)
  if o.clip ~= nil then check_number(kind, "clip", o.clip, 0, level, true) end
  if o.schedule ~= nil and (type(o.schedule) ~= "table" or type(o.schedule.lr_at) ~= "function") then
    error(kind .. ": 'schedule' must be a schedule (an object with lr_at)", level)
  end
  local self = setmetatable({ kind = kind, model = model, opts = o, _base_lr = o.lr, _step = 0,
                              _state = setmetatable({}, weak), _masks = {}, _clip = {},
                              _fused = setmetatable({}, weak), _serial = 0, _armed = -1, _scaled = {} }, Optimizer)
  return self
end

function Optimizer:__tostring()
  local o, parts = self.opts, {}
  for _, k in ipairs({ "lr", "momentum", "nesterov", "eps", "weight_decay", "clip" }) do
    if o[k] ~= nil and o[k] ~= false and not (k ~= "lr" and o[k] == 0) then
      parts[#parts + 1] = k .. "=" .. tostring(o[k])
    end
  end
  if o.betas then parts[#parts + 1] = string.format("betas={%g,%g}", o.betas[1], o.betas[2]) end
  return "engram.optim." .. self.kind .. "{" .. table.concat(parts, ", ") .. "}"
end

function Optimizer:_groups()
  local m = self.model
  if type(m.groups) == "function" then return m:groups() end
  return m
end

--- The learning rate the next step will use.
function Optimizer:lr()
  local s = self.opts.schedule
  if s then return s:lr_at(self._step, self._base_lr) end
  return self._base_lr
end

--- Sets the base learning rate (what schedules scale).
function Optimizer:set_lr(lr)
  self._base_lr = check_number(self.kind .. ":set_lr", "lr", lr, 0, 2)
  return self
end

--- Number of steps taken since creation or the last reset.
function Optimizer:steps() return self._step end

--- Sets (or with nil removes) the element mask of the group named name.
function Optimizer:set_mask(name, mask)
  if type(name) ~= "string" then
    error(string.format("%s:set_mask: the group name must be a string, got %s", self.kind, type(name)), 2)
  end
  if mask ~= nil and not core.istensor(mask) then
    error(self.kind .. ":set_mask: the mask must be a tensor (1 train, 0 keep) or nil", 2)
  end
  self._masks[name] = mask
  return self
end

--- Zeroes the gradients of the model (every group).
function Optimizer:zero_grad()
  local m = self.model
  if type(m.zero_grad) == "function" then
    m:zero_grad()
  else
    for _, g in ipairs(m) do g.grads:zero_() end
  end
  return self
end

--- Drops all optimiser state (momentum, moments, step counts) and restarts the schedule.
function Optimizer:reset()
  self._state = setmetatable({}, weak)
  self._step = 0
  return self
end

function Optimizer:_state_for(g)
  local st = self._state[g.params]
  local n = g.params:numel()
  if st and st.numel == n then return st end
  st = { numel = n, t = 0 }
  self:_init_state(st, n)
  self._state[g.params] = st
  return st
end

-- The fused terms of group params for the coming step (a new step clears them).
function Optimizer:_entry(who, params)
  if not core.istensor(params) then
    error(string.format("%s:%s: the group's parameters must be a tensor, got %s", self.kind, who, type(params)), 3)
  end
  local f = self._fused[params]
  if not f then
    f = { serial = -1, terms = {}, checked = setmetatable({}, weak) }
    self._fused[params] = f
  end
  if f.serial ~= self._serial then
    local t = f.terms
    f.serial, f.pen = self._serial, nil
    t.penalty, t.u, t.w, t.lambda, t.C, t.omega, t.pg, t.value = nil, nil, nil, nil, nil, nil, nil, nil
  end
  return f
end

-- (a tensor checked once for a group is not checked here again; the step checks
-- every size, so a tensor resized since is still an error naming it)
local function check_pen_tensor(self, who, pen, key, params, f)
  local v = pen[key]
  if f.checked[v] then return v end
  if not core.istensor(v) or v:numel() ~= params:numel() then
    error(string.format("%s:%s: pen.%s must be a tensor of %d values, got %s", self.kind, who, key, params:numel(),
      core.istensor(v) and (v:numel() .. " values") or type(v)), 3)
  end
  f.checked[v] = true
  return v
end

--- Fuses a quadratic penalty into the next step of one group (see the header).
function Optimizer:penalise(params, pen)
  local f = self:_entry("penalise", params)
  if type(pen) ~= "table" then error(self.kind .. ":penalise: pen must be a table, got " .. type(pen), 2) end
  local lam = pen.lambda
  if type(lam) ~= "number" or lam ~= lam or math.abs(lam) == math.huge then
    error(self.kind .. ":penalise: pen.lambda must be a finite number, got " .. tostring(lam), 2)
  end
  if f.pen then return false end
  local t = f.terms
  if pen.A ~= nil then
    t.penalty, t.u, t.w, t.C = "folded", check_pen_tensor(self, "penalise", pen, "A", params, f),
      check_pen_tensor(self, "penalise", pen, "B", params, f), pen.C or 0
  else
    t.penalty, t.u, t.w, t.C = "anchor", check_pen_tensor(self, "penalise", pen, "F", params, f),
      check_pen_tensor(self, "penalise", pen, "anchor", params, f), 0
  end
  t.lambda, f.pen, pen.value, self._armed = lam, pen, 0, self._serial
  return true
end

--- Fuses SI's path integral into the next step of one group (see the header).
function Optimizer:track_path(params, omega, pg)
  local f = self:_entry("track_path", params)
  local n = params:numel()
  if not core.istensor(omega) or omega:numel() ~= n or (pg ~= nil and (not core.istensor(pg) or pg:numel() ~= n)) then
    error(string.format("%s:track_path: omega (and pg, if given) must be tensors of %d values", self.kind, n), 2)
  end
  if f.terms.omega then return false end
  f.terms.omega, f.terms.pg, self._armed = omega, pg, self._serial
  return true
end

-- Clipping with fused terms: the joint norm of g + the fused penalties'
-- gradients, and the scale the steps then apply (the grads stay unscaled).
function Optimizer:_fused_clip(groups)
  local s = 0
  for _, g in ipairs(groups) do
    if not g.frozen then
      local f = self._fused[g.params]
      local t = f and f.serial == self._serial and f.terms or nil
      if t then t.have_value, t.scale = false, 1 end
      s = call(self.kind, core.grad_sumsq_terms, s, g.params, g.grads, t)
    end
  end
  local norm = math.sqrt(s)
  self.last_grad_norm = norm
  if norm ~= norm or norm == math.huge then
    error(self.kind .. ": clip_grad_norm: the gradient norm is not finite", 3)
  end
  local scale = self.opts.clip / (norm + 1e-6)
  return scale < 1 and scale or 1
end

--- One update of every trainable group from its gradients (and the terms fused into this step).
function Optimizer:step()
  local groups = self:_groups()
  if not self._has_params then -- groups only grow: once found, parameters stay
    for _, g in ipairs(groups) do
      if g.params:numel() > 0 then self._has_params = true end
    end
    if not self._has_params then error(self.kind .. ": nothing to train: the model has no parameters", 2) end
  end
  local lr = self:lr()
  if type(lr) ~= "number" or lr ~= lr or lr < 0 then
    error(string.format("%s: the schedule gave learning rate %s", self.kind, tostring(lr)), 2)
  end
  local serial = self._serial
  local fused = self._armed == serial
  local scale = 1
  if self.opts.clip then
    if fused then
      scale = self:_fused_clip(groups)
    else
      local list = self._clip
      for i = #list, 1, -1 do list[i] = nil end
      for _, g in ipairs(groups) do
        if not g.frozen then list[#list + 1] = g.grads end
      end
      self.last_grad_norm = call(self.kind, core.clip_grad_norm, list, self.opts.clip)
    end
  end
  local scaled = self._scaled
  scaled.scale = scale
  for _, g in ipairs(groups) do
    if not g.frozen then
      local st = self:_state_for(g)
      st.t = st.t + 1
      local t
      if fused then
        local f = self._fused[g.params]
        t = f and f.serial == serial and f.terms or (scale < 1 and scaled) or nil
        if t and t ~= scaled then
          t.scale = scale
          if not self.opts.clip then t.have_value = false end
        end
      end
      self:_update(g, st, lr, g.mask or (g.name ~= nil and self._masks[g.name]) or nil, t)
      if t and t.penalty then self._fused[g.params].pen.value = t.value end
    end
  end
  self._step, self._serial = self._step + 1, serial + 1
  return self
end

--- The state as named tensors (copies) per group name, for checkpoints.
function Optimizer:state_dict()
  local out = { kind = self.kind, step = self._step, lr = self._base_lr, groups = {} }
  for _, g in ipairs(self:_groups()) do
    local st = g.name and self._state[g.params]
    if st then
      local e = { t = st.t }
      for _, k in ipairs({ "buf", "m", "v" }) do
        if st[k] then e[k] = st[k]:clone() end
      end
      out.groups[g.name] = e
    end
  end
  return out
end

--- Restores what state_dict returned (groups matched by name and size).
function Optimizer:load_state_dict(sd)
  local who = self.kind .. ":load_state_dict"
  if type(sd) ~= "table" or sd.kind ~= self.kind or type(sd.groups) ~= "table" then
    error(string.format("%s: not a %s state", who, self.kind), 2)
  end
  if sd.step ~= nil and (math.type(sd.step) ~= "integer" or sd.step < 0) then
    error(string.format("%s: step must be an integer >= 0, got %s", who, tostring(sd.step)), 2)
  end
  if sd.lr ~= nil and (type(sd.lr) ~= "number" or sd.lr ~= sd.lr or sd.lr < 0) then
    error(string.format("%s: lr must be a number >= 0, got %s", who, tostring(sd.lr)), 2)
  end
  -- Everything is checked before anything changes: a bad state is rejected whole.
  local kept = {}
  self:_init_state(kept, 0)
  local plan = {}
  for _, g in ipairs(self:_groups()) do
    local e = g.name and sd.groups[g.name]
    if e ~= nil then
      if type(e) ~= "table" or math.type(e.t) ~= "integer" or e.t < 0 then
        error(string.format("%s: group '%s': not a state (t, and the tensors buf, m, v)", who, g.name), 2)
      end
      local n = g.params:numel()
      for _, k in ipairs({ "buf", "m", "v" }) do
        local v = e[k]
        if v ~= nil then
          if not core.istensor(v) then
            error(string.format("%s: group '%s': %s must be a tensor, got %s", who, g.name, k, type(v)), 2)
          end
          if not kept[k] then
            error(string.format("%s: group '%s': this %s keeps no '%s'", who, g.name, self.kind, k), 2)
          end
          if v:numel() ~= n then
            error(string.format("%s: group '%s' has %d parameters, the state %d", who, g.name, n, v:numel()), 2)
          end
        end
      end
      plan[#plan + 1] = { g = g, e = e }
    end
  end
  self:reset()
  self._step, self._base_lr = sd.step or 0, sd.lr or self._base_lr
  for _, p in ipairs(plan) do
    local st = self:_state_for(p.g)
    st.t = p.e.t
    for _, k in ipairs({ "buf", "m", "v" }) do
      if p.e[k] then st[k]:copy(p.e[k]) end
    end
  end
  return self
end

-- ---- SGD

local SGD = setmetatable({}, { __index = Optimizer })
SGD.__index = SGD
SGD.__tostring = Optimizer.__tostring

function SGD:_init_state(st, n)
  if self.opts.momentum > 0 then st.buf = core.zeros(n) end
end

function SGD:_update(g, st, lr, mask, terms)
  local o = self.opts
  call("sgd", core.sgd_step, g.params, g.grads, st.buf, lr, o.momentum, o.dampening, o.nesterov, o.weight_decay,
    st.t, mask, terms)
end

--- Stochastic gradient descent (momentum, Nesterov, weight decay).
function optim.SGD(model, opts)
  local self = new_optimizer("SGD", model, opts, { lr = 0.01, momentum = 0, dampening = 0, nesterov = false,
                             weight_decay = 0, clip = NONE, schedule = NONE }, 2)
  local o = self.opts
  local ok, err = pcall(core.sgd_check, o.lr, check_number("SGD", "momentum", o.momentum, 0, 2),
    check_number("SGD", "dampening", o.dampening, 0, 2), o.nesterov, o.weight_decay)
  if not ok then error("SGD: " .. tostring(err):gsub("^sgd: ", ""), 2) end
  return setmetatable(self, SGD)
end

-- ---- Adam / AdamW

local Adam = setmetatable({}, { __index = Optimizer })
Adam.__index = Adam
Adam.__tostring = Optimizer.__tostring

function Adam._init_state(_, st, n)
  st.m = core.zeros(n)
  st.v = core.zeros(n)
end

function Adam:_update(g, st, lr, mask, terms)
  local o = self.opts
  call(self.kind, core.adam_step, g.params, g.grads, st.m, st.v, lr, o.betas[1], o.betas[2], o.eps,
    o.weight_decay, self._decoupled, st.t, mask, terms)
end

local function new_adam(kind, model, opts, wd, decoupled)
  local self = new_optimizer(kind, model, opts, { lr = 1e-3, betas = { 0.9, 0.999 }, eps = 1e-8, weight_decay = wd,
                             clip = NONE, schedule = NONE }, 3)
  local o = self.opts
  if type(o.betas) ~= "table" or type(o.betas[1]) ~= "number" or type(o.betas[2]) ~= "number" then
    error(kind .. ": 'betas' must be a pair of numbers {beta1, beta2}", 3)
  end
  check_number(kind, "eps", o.eps, 0, 3, true)
  local ok, err = pcall(core.adam_check, o.lr, o.betas[1], o.betas[2], o.eps, o.weight_decay, decoupled)
  if not ok then error(kind .. ": " .. tostring(err):gsub("^adamw?: ", ""), 3) end
  self._decoupled = decoupled
  return setmetatable(self, Adam)
end

--- Adam (Kingma & Ba) with L2 weight decay added to the gradient.
function optim.Adam(model, opts)
  local o = new_adam("Adam", model, opts, 0, false) -- not a tail call: error levels count this frame
  return o
end

--- AdamW (Loshchilov & Hutter): decoupled weight decay.
function optim.AdamW(model, opts)
  local o = new_adam("AdamW", model, opts, 0.01, true)
  return o
end

return optim
