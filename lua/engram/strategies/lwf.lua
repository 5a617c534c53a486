--- Learning without forgetting (Li & Hoiem 2017).
--
--   learner:use(engram.strategies.lwf{alpha = 1, T = 2})
--
-- From task 2 on, every training batch is also passed through the model as
-- it was at the end of the previous task (ctx.old_model: the strategy sets
-- needs_old_model), and the loss hook adds the distillation
--
--     α · T² · KL(softmax(old/T) ‖ softmax(new/T))      (engram.loss.KLDistill)
--
-- to ctx.loss and its gradient to ctx.grad_logits, on the old tasks' outputs:
-- in class-IL the classes of tasks 1..t−1, in domain-IL all outputs, in
-- task-IL (masked logits) each old task's own classes, one term per old task
-- (its own softmax, as its own head). Needs no stored data.
--
-- Options (defaults in brackets):
--   alpha [1]   weight of the distillation against the task's loss; when not given,
--               the default for the scenario's kind (engram.strategies.defaults), 1 for others
--   T [2]       temperature (> 0)
-- Per-task heads (the learner's heads = true) are not supported yet: each old
-- head would need its own forward of the new model; use masked task-IL.
local strategies = require("engram.strategies")
local defaults = require("engram.strategies.defaults")
local loss = require("engram.loss")

local LwF = {}
LwF.__index = LwF
LwF.needs_old_model = true
-- before_task keeps the teacher for state(): it observes, so a schedule that
-- starts LwF later still hands it the right model
LwF.observe_hooks = { before_task = true }

local function new(opts)
  local o = strategies.options("lwf", opts, { alpha = 1, T = 2 }, 3)
  if type(o.alpha) ~= "number" or o.alpha ~= o.alpha or o.alpha < 0 or o.alpha == math.huge then
    error("lwf: alpha must be a finite number >= 0, got " .. tostring(o.alpha), 3)
  end
  if type(o.T) ~= "number" or o.T ~= o.T or o.T <= 0 or o.T == math.huge then
    error("lwf: temperature T must be a finite number > 0, got " .. tostring(o.T), 3)
  end
  -- alpha not given: before_run takes the default for the scenario's kind
  return setmetatable({ name = "lwf", options = o, _alpha = o.alpha, _alpha_given = opts ~= nil and
    opts.alpha ~= nil }, LwF)
end

function LwF:describe()
  return { name = "lwf", options = { alpha = self._alpha, default_for = self._default_for and
    (self._default_for .. "-IL") or nil, T = self.options.T } }
end

function LwF:before_run(ctx)
  self._for, self._crits, self._old = nil, nil, nil
  if not self._alpha_given then
    local kind = ctx and ctx.scenario and ctx.scenario.kind
    self._alpha, self._default_for = defaults.strength("lwf", kind, "alpha", self.options.alpha)
  end
end

function LwF:before_task(ctx)
  self._old = ctx.old_model
end
-- resuming inside a task: the teacher is the old model the checkpoint kept
LwF.resume_task = LwF.before_task

-- The distillation terms for task t: one criterion per set of old outputs.
local function criteria(self, ctx)
  local T, kind = self.options.T, ctx.scenario.kind
  local crits = {}
  if kind == "task" then
    for s = 1, ctx.t - 1 do
      crits[#crits + 1] = loss.KLDistill { T = T, active = ctx.learner:active(ctx.tasks[s]) or false }
    end
  else
    local seen, old = {}, {}
    for s = 1, ctx.t - 1 do
      for _, c in ipairs(ctx.tasks[s].targets or ctx.tasks[s].classes) do
        if not seen[c] then seen[c], old[#old + 1] = true, c end
      end
    end
    local all = #old >= ctx.scenario.num_classes
    crits[1] = loss.KLDistill { T = T, active = (not all) and old or false }
  end
  return crits
end

function LwF:loss(ctx)
  local old = ctx.old_model
  if ctx.t == 1 or not old or self._alpha == 0 then return end
  if ctx.opts.heads then
    error("lwf: per-task heads (the learner's heads = true) are not supported yet; use masked task-IL " ..
      "(heads = false)", 0)
  end
  if self._for ~= ctx.t then self._for, self._crits = ctx.t, criteria(self, ctx) end
  local teacher = old:forward(ctx.x)
  local alpha, total = self._alpha, 0
  for _, c in ipairs(self._crits) do
    local v, g = c:forward_backward(ctx.logits, teacher)
    total = total + v
    ctx.grad_logits:add_(g, alpha)
  end
  ctx.loss = ctx.loss + alpha * total
  ctx.penalty = ctx.penalty + alpha * total
end

--- The state as named tensors: the parameters of the model the current task
-- distils from, "old_model.<group>.<name>" (none during task 1).
function LwF:state()
  local out = {}
  if self._old then
    for _, p in ipairs(self._old:parameters()) do out["old_model." .. p.group .. "." .. p.name] = p.value end
  end
  return out
end

--- A checkpoint's state: the teacher is the model at the end of the last
-- task saved, which the learner re-creates (ctx.old_model) on resume.
function LwF:load_state(st)
  for name in pairs(st) do
    if not name:match("^old_model%.") then error("lwf: load_state: unknown tensor '" .. name .. "'", 0) end
  end
  self._old, self._for, self._crits = nil, nil, nil
end

return setmetatable({ LwF = LwF }, { __call = function(_, opts)
  local s = new(opts)
  return s
end })
