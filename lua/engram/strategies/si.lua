--- Synaptic intelligence (Zenke, Poole & Ganguli 2017).
--
--   learner:use(engram.strategies.si{c = 1})
--
-- While a task trains, every optimiser step adds to each parameter's path
-- integral ω −= g ⊙ Δθ, g the gradient of the task loss alone (the learner's
-- ctx.penalty_grads take every penalty's share out, this one's too) and Δθ
-- the step taken: inside the optimiser's own pass (optim's track_path; with
-- engram's optimisers and no other after_backward hook than the quadratic
-- strategies'), else one C loop per parameter group (cl.si_accumulate). At the
-- task's end Ω += ω / ((θ* − θ₀)² + ξ), θ₀ where the task started, and ω
-- restarts at zero (cl.si_consolidate). Later tasks pay c Σ Ω (θ − θ*)²,
-- θ* the last task's parameters, through the penalty every quadratic
-- strategy shares (engram.strategies.quadratic; s:state() also lists
-- "omega.*" and "start.*").
--
-- Scheduled with tasks = "2-", SI still watches every step of task 1 (its
-- after_backward and after_step observe: observe_hooks) and so protects it.
--
-- Options (defaults in brackets):
--   c [1]        strength c of c Σ Ω (θ − θ*)²; when not given, the default for
--                the scenario's kind (engram.strategies.defaults), 1 for others
--   xi [0.1]     damping ξ (van de Ven's value; keeps the division finite)
local cl = require("engram.cl")
local core = require("engram.core")
local strategies = require("engram.strategies")
local quadratic = require("engram.strategies.quadratic")

local SI = quadratic.class()
SI.needs_task_grads = true
SI.observe_hooks = { before_task = true, after_backward = true, after_step = true }

local function new(opts)
  local o = strategies.options("si", opts, { c = 1, xi = 0.1 }, 3)
  quadratic.check_strength("si", "c", o.c, 3)
  if type(o.xi) ~= "number" or o.xi ~= o.xi or o.xi <= 0 or o.xi == math.huge then
    error("si: xi must be a finite number > 0, got " .. tostring(o.xi), 3)
  end
  local s = setmetatable({ name = "si", options = o }, SI)
  -- c Σ Ω (θ − θ*)² is (λ'/2) Σ Ω (θ − θ*)² with λ' = 2c; Ω is a running sum
  s:_init(o.c, 2, true, 1)
  if opts == nil or opts.c == nil then s:_strength_by_kind("c") end
  return s
end

function SI:describe()
  return { name = "si", options = { c = self._strength, default_for = self._default_for and
    (self._default_for .. "-IL") or nil, xi = self.options.xi } }
end

function SI:before_run(ctx)
  quadratic.Quadratic.before_run(self, ctx)
  self.omega, self.start, self.prev, self.g = nil, nil, nil, nil
end

-- Whether the gradients reach after_step as backward left them: no clipping
-- (it scales them in place) and no other strategy's after_backward (it may
-- project them). Then SI reads them there and copies nothing.
local function untouched(self, ctx)
  local opt = ctx.optimizer
  if opt and opt.opts and opt.opts.clip then return false end
  local list = ctx.learner and ctx.learner._hooks and ctx.learner._hooks.after_backward
  if not list then return false end
  for _, s in ipairs(list) do
    if s ~= self then
      if not s.members then return false end
      for _, m in ipairs(s.members) do
        if m ~= self and m.after_backward then return false end
      end
    end
  end
  return true
end

-- Per group: ω, θ₀ (the start of the task's path), θ before the step, and
-- (unless the step's gradients can be read in after_step) the task gradient
-- of the step; new groups join with zeros at their values. Three ways, the
-- fastest that is safe: "fused", the optimiser's step updates ω in its own
-- pass (optim's track_path: an engram optimiser and no other after_backward
-- hook than the quadratic strategies'); "direct", after_step reads the
-- step's gradients; else after_backward copies the task gradient.
function SI:before_task(ctx)
  local groups = ctx.model:groups()
  self._sgroups, self._direct = groups, untouched(self, ctx)
  -- state() names the running path integral by the model's parameters from the first task on
  self._model, self._names = self._model or ctx.model, self._names or {}
  for i, g in ipairs(groups) do self._names[i] = g.name end
  self._fused = quadratic.can_fuse(self, ctx, "track_path")
  self.omega, self.start, self.prev, self.g = self.omega or {}, self.start or {}, self.prev or {}, self.g or {}
  self._late = {}
  for i, grp in ipairs(groups) do
    if not self.omega[i] or self.omega[i]:numel() ~= grp.numel then
      self.omega[i], self.start[i], self.prev[i] = core.zeros(grp.numel), grp.params:clone(), core.zeros(grp.numel)
    end
    if not self._direct and not self._fused and (not self.g[i] or self.g[i]:numel() ~= grp.numel) then
      self.g[i] = core.zeros(grp.numel)
    end
    self.prev[i]:copy_(grp.params)
  end
end

-- The task gradient of the step, g − (the penalties' share): handed to the
-- optimiser's step (fused), or kept as it was after backward, unless nothing
-- can change it before after_step.
function SI:after_backward(ctx)
  local pg = ctx.penalty_grads
  if self._fused then
    -- a group another tracker already claimed: θ before the step kept here, ω updated in after_step
    local opt, late = ctx.optimizer, self._late
    for i, grp in ipairs(self._sgroups) do
      late[i] = not grp.frozen and not opt:track_path(grp.params, self.omega[i], pg and pg[i])
      if late[i] then self.prev[i]:copy_(grp.params) end
    end
    return
  end
  if self._direct then return end
  for i, grp in ipairs(self._sgroups) do
    local g = self.g[i]
    g:copy_(grp.grads)
    if pg then g:sub_(pg[i]) end
  end
end

function SI:after_step(ctx)
  quadratic.Quadratic.after_step(self, ctx)
  local pg = ctx.penalty_grads
  for i, grp in ipairs(self._sgroups) do
    if not grp.frozen then
      if self._fused then
        -- with fused terms the optimiser leaves the gradients as backward made them
        if self._late[i] then cl.si_accumulate(self.omega[i], self.prev[i], grp.grads, pg and pg[i], grp.params) end
      elseif self._direct then
        cl.si_accumulate(self.omega[i], self.prev[i], grp.grads, pg and pg[i], grp.params)
      else
        cl.si_accumulate(self.omega[i], self.prev[i], self.g[i], nil, grp.params)
      end
    end
  end
end

--- Resuming inside a task (engram.checkpoint): the path integral so far and
-- its start came with the state; before_task then only re-derives the rest
-- (θ before the next step, the way the steps are tracked).
SI.resume_task = SI.before_task

function SI:importance(ctx)
  local out = {}
  for i, grp in ipairs(ctx.model:groups()) do
    out[i] = core.zeros(grp.numel)
    if self.omega and self.omega[i] and self.omega[i]:numel() == grp.numel then
      cl.si_consolidate(out[i], self.omega[i], self.start[i], grp.params, self.options.xi)
    end
  end
  return out
end

function SI:state(model)
  local out = quadratic.Quadratic.state(self, model)
  model = model or self._model
  if self.omega then
    quadratic.param_views(model, self.omega, self._names, "omega", out)
    quadratic.param_views(model, self.start, self._names, "start", out)
  end
  return out
end

--- Puts back what state() gave: the quadratic part and the running path
-- integral (omega) with its starting point.
function SI:load_state(st, ctx, meta)
  local used = {}
  quadratic.Quadratic.load_state(self, st, ctx, meta, used)
  self.omega = quadratic.flats_from("si", ctx.model, st, "omega", used)
  self.start = self.omega and quadratic.flats_from("si", ctx.model, st, "start", used)
  self.prev, self.g = nil, nil
  if self.omega then
    self.prev = {}
    for i, f in ipairs(self.omega) do self.prev[i] = core.zeros(f:numel()) end
  end
  quadratic.check_used("si", st, used)
end

return setmetatable({ SI = SI }, { __call = function(_, opts)
  local s = new(opts)
  return s
end })
