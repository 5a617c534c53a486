--- The importance-weighted quadratic penalty that EWC, online EWC, SI and
-- MAS share, and that a user can feed with an importance of their own.
--
-- After each task an importance Ω (one flat tensor per parameter group, the
-- layout of the group's arena) is computed at the task's final parameters
-- θ*. While later tasks train, the loss hook adds, per past task s (or once,
-- for a running importance),
--
--     (λ'/2) Σᵢ Ωₛ,ᵢ (θᵢ − θ*ₛ,ᵢ)²      and its gradient   λ' Ωₛ ⊙ (θ − θ*ₛ)
--
-- in one C call per group (cl.quad_penalty), λ' = scale · strength; the
-- penalties of several past tasks are folded into one: Σₛ Ωₛ (θ − θ*ₛ)² =
-- Σ (A θ² − 2 B θ) + C with A = Σ Ωₛ, B = Σ Ωₛ θ*ₛ, C = Σ Ωₛ θ*ₛ², so the
-- cost of a step does not grow with the number of tasks (cl.quad_fold,
-- cl.quad_penalty_folded).
--
-- FUSED. With one of engram's optimisers, and no strategy other than the
-- quadratic ones having an after_backward hook (one that reads the
-- gradients expects the penalty's share in them), the loss hook hands the
-- penalty to the optimiser instead (optim's penalise): its gradient joins
-- the update inside the step's own pass over the arena, never written into
-- the gradients (so ctx.penalty_grads do not hold it), and its value, taken
-- at the parameters before the step, joins ctx.loss and ctx.penalty in this
-- strategy's after_step (hooks of strategies added after it see it). The
-- step is the same arithmetic as adding the gradient before backward, except
-- that the bias gradients are summed row by row onto what the gradient
-- holds, so there the rounding differs (tests: the same losses to 1e-5).
-- Any other optimiser (a function of the user's) gets the gradient added
-- before backward, as always. EWC's
-- (λ/2) Σ F (θ − θ*)² has scale 1; SI's c Σ Ω (θ − θ*)² and MAS's
-- λ Σ Ω (θ − θ*)² have scale 2. The strategies differ only in Ω.
--
-- Your own importance:
--
--   -- "L2 with importance 1": pull every weight towards its value at the end
--   -- of the last task, (λ/2) Σ (θ − θ*)²
--   learner:use(engram.strategies.quadratic{
--     name = "l2", lambda = 0.01, online = true,
--     importance = function(ctx)
--       local out = {}
--       for i, g in ipairs(ctx.model:groups()) do out[i] = engram.ones(g.numel) end
--       return out
--     end,
--   })
--
-- Options of quadratic{} (defaults in brackets):
--   importance    function(ctx) -> {Ω per group}: flat tensors, one per
--                 entry of ctx.model:groups(), each of that group's numel
--                 (called in after_task, at the task's final parameters)
--   lambda [1]    strength λ (the penalty is (λ/2) Σ Ω (θ − θ*)²)
--   online [false] one running Ω ← γ Ω + Ωₜ and the latest anchor, instead
--                 of one (Ω, θ*) pair per past task
--   gamma [1]     the running importance's decay (online)
--   name ["quadratic"]
--
-- STATE. s:state() returns the strategy's state as named tensors, views of
-- its flat tensors shaped like the parameters they weigh, ready for a
-- checkpoint and for the REPL:
--   "task1.importance.base.1.weight"  [400x784]   (per past task)
--   "importance.base.1.weight", "anchor.base.1.weight"   (online)
-- Loading a state back means copying into these views.
local core = require("engram.core")
local cl = require("engram.cl")
local strategies = require("engram.strategies")
local defaults = require("engram.strategies.defaults")

local quadratic = {}

local Quadratic = {}
Quadratic.__index = Quadratic
-- Checkpoints inside a task resume exactly (engram.checkpoint): nothing
-- accumulates during a task but in state(); SI adds resume_task.
Quadratic.midtask = true
quadratic.Quadratic = Quadratic

--- A subclass of Quadratic (for EWC, SI, MAS).
function quadratic.class()
  local c = setmetatable({}, { __index = Quadratic })
  c.__index = c
  return c
end

--- Common option checks; `who` names the strategy in errors.
function quadratic.check_strength(who, key, v, level)
  if type(v) ~= "number" or v ~= v or v < 0 or v == math.huge then
    error(string.format("%s: %s must be a finite number >= 0, got %s", who, key, tostring(v)), level + 1)
  end
end
function quadratic.check_gamma(who, v, level)
  if type(v) ~= "number" or v ~= v or v < 0 or v > 1 then
    error(string.format("%s: gamma must be a number in [0, 1], got %s", who, tostring(v)), level + 1)
  end
end

--- Sets the fields the base needs: strength (λ), scale, online, gamma.
function Quadratic:_init(strength, scale, online, gamma)
  self._strength, self._scale, self._online, self._gamma = strength, scale, online and true or false, gamma or 1
  self.past, self.Omega, self.anchor, self._fold = {}, nil, nil, nil
  self._pens, self._pending = {}, {}
  return self
end

--- Marks the strength as not given by the user: before_run then takes the
-- default for the scenario's kind (engram.strategies.defaults[self.name]) as
-- the option `key`, or keeps the constructor's value for an unknown kind.
function Quadratic:_strength_by_kind(key)
  self._default_key, self._fallback = key, self._strength
  return self
end

function Quadratic:before_run(ctx)
  self.past, self.Omega, self.anchor, self._groups, self._fold = {}, nil, nil, nil, nil
  self._names, self._pens, self._pending = nil, {}, {}
  if self._default_key then
    local kind = ctx and ctx.scenario and ctx.scenario.kind
    self._strength, self._default_for = defaults.strength(self.name, kind, self._default_key, self._fallback)
  end
end

-- Checks what an importance function returned against the model's groups.
local function check_importance(who, F, groups, level)
  if type(F) ~= "table" then
    error(string.format("%s: the importance must be a list of flat tensors, one per parameter group, got %s", who,
      type(F)), level + 1)
  end
  for i, g in ipairs(groups) do
    local t = F[i]
    if not core.istensor(t) then
      error(string.format("%s: the importance of group %d ('%s') is %s, expected a tensor of %d values", who, i,
        g.name, type(t), g.numel), level + 1)
    end
    if t:numel() ~= g.numel then
      error(string.format("%s: the importance of group %d ('%s') has %d values, the group %d", who, i, g.name,
        t:numel(), g.numel), level + 1)
    end
  end
  if #F ~= #groups then
    error(string.format("%s: %d importances for %d parameter groups", who, #F, #groups), level + 1)
  end
end

--- Records the importance F (one flat tensor per group) of the task just
-- learnt, with the current parameters as its anchor.
function Quadratic:consolidate(ctx, F)
  local groups = ctx.model:groups()
  check_importance(self.name, F, groups, 2)
  self._model = ctx.model
  local anchor = {}
  for i, g in ipairs(groups) do
    anchor[i] = g.params:clone()
    if not F[i]:is_contiguous() then F[i] = F[i]:contiguous() end
    F[i] = F[i]:view(g.numel)
  end
  if self._online then
    if self.Omega then
      for i = 1, #F do
        if self.Omega[i] and self.Omega[i]:numel() == F[i]:numel() then
          cl.decay_accumulate(self.Omega[i], F[i], self._gamma)
        else
          self.Omega[i] = F[i]:clone()
        end
      end
    else
      self.Omega = {}
      for i = 1, #F do self.Omega[i] = F[i]:clone() end
    end
    self.anchor = anchor
  else
    self.past[#self.past + 1] = { F = F, anchor = anchor, task = ctx.t }
    -- the penalty of every past task in one pass: A = Σ F, B = Σ F θ*, C = Σ F θ*²
    local fold = self._fold or {}
    self._fold = fold
    for i, g in ipairs(groups) do
      local f = fold[i]
      if not f then
        f = { A = core.zeros(g.numel), B = core.zeros(g.numel), C = 0 }
        fold[i] = f
      end
      f.C = cl.quad_fold(f.A, f.B, f.C, F[i], anchor[i])
    end
  end
  self._names = self._names or {}
  for i, g in ipairs(groups) do self._names[i] = g.name end
  local fsum = 0
  for i = 1, #F do fsum = fsum + F[i]:sum() end
  ctx.log(self.name .. "_importance", { task = ctx.t, importance_sum = fsum })
end

function Quadratic:after_task(ctx)
  self:consolidate(ctx, self:importance(ctx))
end

-- Whether the penalty can go into the optimiser's step (optim's penalise):
-- an engram optimiser, and no strategy but the quadratic ones has an
-- after_backward hook (one that reads the gradients, A-GEM's projection
-- say, expects the penalty's share in them).
function quadratic.can_fuse(self, ctx, method)
  local opt = ctx.optimizer
  if type(opt) ~= "table" or type(opt[method]) ~= "function" then return false end
  local list = ctx.learner and ctx.learner._hooks and ctx.learner._hooks.after_backward
  if not list then return false end
  for _, s in ipairs(list) do
    if s ~= self then
      for _, m in ipairs(s.members or { s }) do
        if m ~= self and m.after_backward and not m._quadratic then return false end
      end
    end
  end
  return true
end
Quadratic._quadratic = true

-- The penalty of group i (a table optim's penalise takes, reused), or nil.
function Quadratic:_pen(i, g, lambda)
  local pens = self._pens
  local p = pens[i]
  if not p then
    p = {}
    pens[i] = p
  end
  if self._online then
    local F, a = self.Omega and self.Omega[i], self.anchor and self.anchor[i]
    if not (F and a and F:numel() == g.numel) then return nil end
    p.F, p.anchor, p.A, p.B, p.C = F, a, nil, nil, nil
  else
    local f = self._fold and self._fold[i]
    if not (f and f.A:numel() == g.numel) then return nil end
    p.A, p.B, p.C, p.F, p.anchor = f.A, f.B, f.C, nil, nil
  end
  p.lambda, p.value = lambda, 0
  return p
end

-- Adds (λ'/2) Σ F (θ − θ*)² to the loss and λ' F (θ − θ*) to the gradients:
-- one C call per group, or, when it can, inside the optimiser's step, whose
-- value then joins ctx.loss and ctx.penalty in after_step.
function Quadratic:loss(ctx)
  local pending = self._pending
  for i = #pending, 1, -1 do pending[i] = nil end
  local lambda = self._scale * self._strength
  if lambda == 0 then return end
  local groups = self._groups
  if not groups or ctx.step == 0 then -- groups may grow between tasks
    groups = ctx.model:groups()
    self._groups, self._fuse = groups, quadratic.can_fuse(self, ctx, "penalise")
  end
  local opt, fuse, pen = ctx.optimizer, self._fuse, 0
  for i, g in ipairs(groups) do
    local p = not g.frozen and self:_pen(i, g, lambda)
    if p then
      if fuse and opt:penalise(g.params, p) then
        pending[#pending + 1] = p
      elseif p.A then
        pen = pen + cl.quad_penalty_folded(g.params, p.A, p.B, p.C, lambda, g.grads)
      else
        pen = pen + cl.quad_penalty(g.params, p.anchor, p.F, lambda, g.grads)
      end
    end
  end
  ctx.loss = ctx.loss + pen
  ctx.penalty = ctx.penalty + pen
end

-- The values of the penalties the optimiser's step took.
function Quadratic:after_step(ctx)
  local pending = self._pending
  if #pending == 0 then return end
  local v = 0
  for i = 1, #pending do v = v + pending[i].value end
  for i = #pending, 1, -1 do pending[i] = nil end
  ctx.loss = ctx.loss + v
  ctx.penalty = ctx.penalty + v
end

-- Views of the flat tensors `flats` (one per group) shaped like the
-- parameters, named prefix .. "." .. group .. "." .. parameter.
local function param_views(model, flats, names, prefix, out)
  local params = model and model:parameters() or {}
  local off = {}
  for i, flat in ipairs(flats) do
    local gname = names and names[i] or ("group" .. i)
    off[gname] = { flat = flat, at = 0 }
  end
  for _, p in ipairs(params) do
    local o = off[p.group]
    if o then
      local n = 1
      for _, d in ipairs(p.shape) do n = n * d end
      if o.at + n <= o.flat:numel() then
        out[prefix .. "." .. p.group .. "." .. p.name] = o.flat:narrow(1, o.at + 1, n):view(p.shape)
      end
      o.at = o.at + n
    end
  end
  -- a group the model no longer has (or no model given): the flat tensor whole
  for i, flat in ipairs(flats) do
    local gname = names and names[i] or ("group" .. i)
    if off[gname].at == 0 then out[prefix .. "." .. gname] = flat end
  end
  return out
end
quadratic.param_views = param_views

--- The state as named tensors (see the header). model: the model whose
-- parameter names shape the views (default: the one of the last run).
function Quadratic:state(model)
  model = model or self._model
  local out = {}
  if self._online then
    if self.Omega then
      param_views(model, self.Omega, self._names, "importance", out)
      param_views(model, self.anchor, self._names, "anchor", out)
    end
  else
    for k, p in ipairs(self.past) do
      param_views(model, p.F, self._names, "task" .. k .. ".importance", out)
      param_views(model, p.anchor, self._names, "task" .. k .. ".anchor", out)
    end
  end
  return out
end

--- Changes the strength during a run (a plan's phase `set`, or between
-- learner:step() calls): {lambda = v} (SI: {c = v}). Returns the previous
-- values, in the same form. check_only: only check opts (a plan does, when
-- it is built).
function Quadratic:configure(opts, check_only)
  local key = self.name == "si" and "c" or "lambda"
  if type(opts) ~= "table" then error(self.name .. ": configure expects a table {" .. key .. " = v}", 2) end
  for k in pairs(opts) do
    if k ~= key then
      error(string.format("%s: configure: unknown option '%s' (known: %s)", self.name, tostring(k), key), 2)
    end
  end
  local prev = { [key] = self._strength }
  if opts[key] ~= nil then
    quadratic.check_strength(self.name, key, opts[key], 2)
    if check_only then return prev end
    self._strength = opts[key]
    if self.options then self.options[key] = opts[key] end
  end
  return prev
end

--- Bytes of float32 state kept for the penalty (importances and anchors).
-- (with the folded sums A and B separate-task EWC keeps to make its penalty
-- one pass: two more copies, whatever the number of tasks)
function Quadratic:state_bytes()
  local n = 0
  for _, t in pairs(self:state()) do n = n + t:numel() end
  for _, f in ipairs(self._fold or {}) do n = n + f.A:numel() + f.B:numel() end
  return 4 * n
end

-- ---------------------------------------------------- quadratic{importance=}

local Custom = quadratic.class()

function Custom:importance(ctx)
  return self.options.importance(ctx)
end

function Custom:describe()
  local o = self.options
  return { name = self.name, options = { lambda = o.lambda, online = o.online, gamma = o.online and o.gamma or nil } }
end

local function new(opts)
  local o = strategies.options("quadratic", opts,
    { importance = false, lambda = 1, online = false, gamma = 1, name = "quadratic" }, 3)
  if type(o.importance) ~= "function" then
    error("quadratic: importance must be a function(ctx) -> {flat tensor per parameter group}", 3)
  end
  quadratic.check_strength("quadratic", "lambda", o.lambda, 3)
  quadratic.check_gamma("quadratic", o.gamma, 3)
  if type(o.name) ~= "string" then error("quadratic: name must be a string", 3) end
  local s = setmetatable({ name = o.name, options = o }, Custom)
  return s:_init(o.lambda, 1, o.online, o.gamma)
end

-- ---------------------------------------------------- checkpoints

-- The flat tensors (one per group of the model, as far as the state has
-- them: groups only grow) behind the views state() names prefix.<group>.<param>
-- (or prefix.<group> whole); nil when the state has none. Marks the names it
-- takes in `used`; raises on a view that is missing or of another shape.
function quadratic.flats_from(who, model, st, prefix, used)
  local out = {}
  for i, g in ipairs(model:groups()) do
    local whole = st[prefix .. "." .. g.name]
    local flat
    if whole then
      if whole:numel() ~= g.numel then
        error(string.format("%s: load_state: %s.%s has %d values, the group %d", who, prefix, g.name, whole:numel(),
          g.numel), 0)
      end
      flat, used[prefix .. "." .. g.name] = whole:contiguous():view(g.numel):clone(), true
    else
      flat = core.zeros(g.numel)
      local views, found, missing = param_views(model, { flat }, { g.name }, prefix, {}), 0, nil
      for name, v in pairs(views) do
        local t = st[name]
        if t then
          if t:numel() ~= v:numel() then
            error(string.format("%s: load_state: %s has %d values, the parameter %d", who, name, t:numel(),
              v:numel()), 0)
          end
          v:copy_(t:view(table.unpack(v:size())))
          used[name], found = true, found + 1
        else
          missing = name
        end
      end
      if found == 0 then break end
      if missing then error(string.format("%s: load_state: the state has no %s", who, missing), 0) end
    end
    out[i] = flat
  end
  return #out > 0 and out or nil
end

--- Raises naming a tensor of st that load_state did not take.
function quadratic.check_used(who, st, used)
  for name in pairs(st) do
    if not used[name] then error(string.format("%s: load_state: unknown tensor '%s'", who, name), 0) end
  end
end

--- Puts back what state() gave (a checkpoint, engram.checkpoint): the
-- importances and anchors of the past tasks (the folded sums recomputed in
-- the same order, so the penalty is bit-identical), or the running ones.
-- meta: what state_meta() gave. Called after before_run; `used` (optional)
-- collects the names taken, for a subclass with more state.
function Quadratic:load_state(st, ctx, meta, used)
  local who, model, check = self.name, ctx.model, used == nil
  used = used or {}
  local flats = quadratic.flats_from
  self.past, self.Omega, self.anchor, self._fold, self._groups = {}, nil, nil, nil, nil
  if self._online then
    self.Omega = flats(who, model, st, "importance", used)
    self.anchor = self.Omega and flats(who, model, st, "anchor", used)
  else
    local groups = model:groups()
    while true do
      local k = #self.past + 1
      local F = flats(who, model, st, "task" .. k .. ".importance", used)
      if not F then break end
      local anchor = flats(who, model, st, "task" .. k .. ".anchor", used)
      if not anchor or #anchor ~= #F then error(string.format("%s: load_state: task %d's anchors do not match its " ..
        "importances", who, k), 0) end
      self.past[k] = { F = F, anchor = anchor, task = k }
      self._fold = self._fold or {}
      for i = 1, #F do
        local f = self._fold[i]
        if not f then
          f = { A = core.zeros(groups[i].numel), B = core.zeros(groups[i].numel), C = 0 }
          self._fold[i] = f
        end
        f.C = cl.quad_fold(f.A, f.B, f.C, F[i], anchor[i])
      end
    end
  end
  self._model, self._names = model, {}
  for i, g in ipairs(model:groups()) do self._names[i] = g.name end
  self.path_used = type(meta) == "table" and meta.path_used or nil
  if check then quadratic.check_used(who, st, used) end
end

--- What state() does not hold: the Fisher or importance path the last
-- estimate took (EWC, MAS), for the results.
function Quadratic:state_meta()
  return { path_used = self.path_used }
end

return setmetatable(quadratic, { __call = function(_, opts)
  local s = new(opts)
  return s
end })
