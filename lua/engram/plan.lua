--- engram.plan: a training plan — per-task phases with their own strategies,
-- optimiser settings, budgets and data, rules that react to measurements,
-- and hooks of your own (docs/recipes.md has the grammar and worked examples).
--
--   local P = engram.plan {
--     strategies = { lora = S.lora{rank = 8}, ewc = S.ewc{lambda = 100},
--                    gr = S.generative_replay{distill = true} },
--     phases = {
--       learn       = { use = {"lora", "ewc", "gr"} },
--       consolidate = { use = {"gr"}, data = "none", iterations = 200, lr = 1e-4 },
--     },
--     tasks = { {tasks = "1", run = {"learn"}}, {tasks = "2-", run = {"learn", "consolidate"}} },
--     rules = { {when = {metric = "val_drop", task = 1, above = 0.10}, run = "consolidate", at_most = 2} },
--     hooks = { after_task = function(ctx) print("task " .. ctx.t .. " done") end },
--   }
--   engram.learner(model, {epochs = 1}):use(P):run(scenario)
--
-- Keys (every one optional but strategies or phases):
--   name ["plan"]   the plan's name in results
--   strategies      {name = strategy, ...}: the plan's strategies, named so that
--                   phases and `set` can refer to them (a list works too: names
--                   are then the strategies' own names)
--   phases          {name = phase, ...}; default: one phase "learn" using every
--                   strategy. A phase's keys:
--     use           list of strategy names (or strategy tables) acting in it
--                   [all the plan's strategies]
--     data          "task" (the task's training data) [default] | "none" (no
--                   stream data: each batch is what the acting strategies add
--                   in before_batch/after_backward — replay, generative replay —
--                   a "sleep"; needs iterations) | a dataset | function(ctx) ->
--                   dataset (trained with the current task's labels and mask)
--     epochs, iterations, batch   the budget [the learner's]
--     lr            the learning rate during the phase [the learner's]
--     optimizer     "adam" | "sgd" | function(model) -> optimiser: its own
--                   optimiser, kept across the tasks where the phase runs
--     reset_optimizer   drop the optimiser's state at the phase's start [false]
--     set           {strategy name = {option = value}}: re-configured for the
--                   phase (strategy:configure), put back after it
--     hooks         {hook = function(ctx) ...}: hooks of your own acting in it
--     observe       false: its strategies observe only the tasks they act in
--   tasks           list of {tasks = task set, run = {phase names}}: the first
--                   entry whose set holds t gives task t's phases; a task no
--                   entry holds runs {"learn"} (an error if there is no learn)
--   rules           list of {when = condition, run = phase, at_most = n,
--                   after = phase name, tasks = task set}: checked after every
--                   scheduled phase (or only after the phase named `after`)
--                   of the tasks in `tasks` [all]; when the condition holds
--                   the phase `run` runs at once, at most `at_most` times in
--                   the run [unlimited]. A condition is a function(m, ctx) ->
--                   boolean, or {metric = name, task = j, above = v | below = v}
--                   over the measurements m (plan.METRICS):
--     val_acc       accuracy on task j's validation part (no task: the mean
--                   over the earlier tasks 1..t-1)
--     val_drop      how far val_acc has fallen since the end of task j's own
--                   training (no task: the mean over the earlier tasks)
--     loss          the mean training loss of the phase's last epoch
--     drift         representation drift on the task-1 probe set
--                   (engram.metrics.drift) since the end of task 1
--   hooks           {hook = function(ctx) ...}: run-wide hooks of your own,
--                   in every phase (including before_phase / after_phase)
--
-- A name the plan does not know (a phase, a strategy, an option of `set`, a
-- metric, a hook) is an error when the plan is built; a metric over
-- validation parts the scenario lacks is an error before training starts.
-- ACT AND OBSERVE (engram.schedule): a strategy acts (training hooks) in the
-- phases that use it; before_task reaches the strategies acting in any phase
-- the task may run; the observing hooks (after_task, evaluation) reach every
-- strategy every task.
local util = require("engram.util")

local plan = {}

local learner_mod = require("engram.learner")
local HOOKS = learner_mod.HOOKS
local HOOK_SET = {}
for _, h in ipairs(HOOKS) do HOOK_SET[h] = true end
local OBSERVE = { after_task = true, before_eval = true, after_eval = true }
local TASK_LEVEL = { before_task = true }

plan.METRICS = { val_acc = true, val_drop = true, loss = true, drift = true }
local PHASE_KEYS = { use = true, data = true, epochs = true, iterations = true, batch = true, lr = true,
  optimizer = true, reset_optimizer = true, set = true, hooks = true, observe = true }
local PLAN_KEYS = { name = true, strategies = true, phases = true, tasks = true, rules = true, hooks = true }
local RULE_KEYS = { when = true, run = true, at_most = true, after = true, tasks = true, name = true }

local function fail(msg, level) error("plan: " .. msg, level + 1) end

local function sorted_keys(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = tostring(k) end
  table.sort(out)
  return out
end

local function check_hooks(where, hooks, level)
  if hooks == nil then return {} end
  if type(hooks) ~= "table" then fail(where .. ": hooks must be a table {hook = function}", level + 1) end
  for k, v in pairs(hooks) do
    if not HOOK_SET[k] then
      fail(string.format("%s: unknown hook '%s' (known: %s)", where, tostring(k), table.concat(HOOKS, ", ")),
        level + 1)
    end
    if type(v) ~= "function" then fail(string.format("%s: hook '%s' must be a function", where, k), level + 1) end
  end
  return hooks
end

-- A strategy of one's own from {hook = function(ctx)}: hooks get ctx only.
local function hook_strategy(name, hooks)
  local s = { name = name, _custom = true }
  for h, f in pairs(hooks) do s[h] = function(_, ctx) return f(ctx) end end
  return s
end

local function positive_int(where, k, v, level)
  if v ~= nil and (math.type(v) ~= "integer" or v < 1) then
    fail(string.format("%s: %s must be a positive integer, got %s", where, k, tostring(v)), level + 1)
  end
end

-- The strategies by name, in a stable order.
local function named_strategies(spec, level)
  local byname, order = {}, {}
  if spec == nil then return byname, order end
  if type(spec) ~= "table" then fail("strategies must be a table {name = strategy}", level + 1) end
  local function add(name, s)
    if type(s) ~= "table" then fail(string.format("strategy '%s' is not a strategy table", name), level + 2) end
    local ok, e = pcall(learner_mod.check_strategy, s, 1)
    if not ok then fail(string.format("strategy '%s': %s", name, tostring(e):gsub("^use: ", "")), level + 2) end
    if byname[name] then fail(string.format("two strategies are named '%s'", name), level + 2) end
    byname[name], order[#order + 1] = s, name
  end
  for i, s in ipairs(spec) do add(type(s) == "table" and s.name or ("strategy " .. i), s) end
  local keys = {}
  for k in pairs(spec) do if math.type(k) ~= "integer" then keys[#keys + 1] = k end end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  for _, k in ipairs(keys) do
    if type(k) ~= "string" then fail("strategy names must be strings, got " .. type(k), level + 1) end
    add(k, spec[k])
  end
  return byname, order
end

local function check_phase(name, ph, byname, order, level)
  local where = "phase '" .. name .. "'"
  if type(ph) ~= "table" then fail(where .. " must be a table", level + 1) end
  for k in pairs(ph) do
    if not PHASE_KEYS[k] then
      fail(string.format("%s: unknown key '%s' (known: %s)", where, tostring(k),
        table.concat(sorted_keys(PHASE_KEYS), ", ")), level + 1)
    end
  end
  local p = { name = name, data = ph.data or "task", epochs = ph.epochs, iterations = ph.iterations,
    batch = ph.batch, lr = ph.lr, optimizer = ph.optimizer, reset_optimizer = ph.reset_optimizer and true or false,
    observe = ph.observe ~= false, use = {}, set = {}, plan = true }
  positive_int(where, "epochs", ph.epochs, level + 1)
  positive_int(where, "iterations", ph.iterations, level + 1)
  positive_int(where, "batch", ph.batch, level + 1)
  if ph.lr ~= nil and (type(ph.lr) ~= "number" or ph.lr ~= ph.lr or ph.lr <= 0 or ph.lr == math.huge) then
    fail(string.format("%s: lr must be a positive finite number, got %s", where, tostring(ph.lr)), level + 1)
  end
  if ph.optimizer ~= nil and ph.optimizer ~= "adam" and ph.optimizer ~= "sgd" and type(ph.optimizer) ~= "function" then
    fail(string.format("%s: optimizer must be 'adam', 'sgd' or a function(model), got %s", where,
      tostring(ph.optimizer)), level + 1)
  end
  if ph.observe ~= nil and type(ph.observe) ~= "boolean" then
    fail(where .. ": observe must be true or false", level + 1)
  end
  local d = p.data
  if d ~= "task" and d ~= "none" and type(d) ~= "function" and not require("engram.data").is_dataset(d) then
    fail(string.format("%s: data must be 'task', 'none', a dataset or a function(ctx) -> dataset, got %s", where,
      tostring(d)), level + 1)
  end
  if d == "none" and not ph.iterations then
    fail(where .. ": data = 'none' needs iterations (the number of steps: there is no data to make epochs of)",
      level + 1)
  end
  if ph.use == nil then
    for _, n in ipairs(order) do p.use[#p.use + 1] = byname[n] end
  else
    if type(ph.use) ~= "table" then fail(where .. ": use must be a list of strategy names", level + 1) end
    for i, u in ipairs(ph.use) do
      local s = u
      if type(u) == "string" then
        s = byname[u]
        if not s then
          fail(string.format("%s: unknown strategy '%s' (known: %s)", where, u,
            #order > 0 and table.concat(order, ", ") or "none; name them in strategies = {...}"), level + 1)
        end
      elseif type(u) == "table" then
        local ok, e = pcall(learner_mod.check_strategy, u, 1)
        if not ok then
          fail(string.format("%s: strategy %d: %s", where, i, tostring(e):gsub("^use: ", "")), level + 1)
        end
      else
        fail(string.format("%s: use[%d] must be a strategy name, got %s", where, i, type(u)), level + 1)
      end
      p.use[#p.use + 1] = s
    end
  end
  if ph.set ~= nil then
    if type(ph.set) ~= "table" then fail(where .. ": set must be {strategy name = {option = value}}", level + 1) end
    for sname, opts in pairs(ph.set) do
      local s = byname[sname]
      if not s then
        fail(string.format("%s: set: unknown strategy '%s' (known: %s)", where, tostring(sname),
          table.concat(order, ", ")), level + 1)
      end
      if type(s.configure) ~= "function" then
        fail(string.format("%s: set: strategy '%s' cannot be re-configured during a run (it has no configure method)",
          where, sname), level + 1)
      end
      if type(opts) ~= "table" then
        fail(string.format("%s: set.%s must be a table of options", where, sname), level + 1)
      end
      -- a dry run names an unknown option or a bad value now, not in the middle of training
      local ok, e = pcall(s.configure, s, opts, true)
      if not ok then
        fail(string.format("%s: set %s: %s", where, sname, tostring(e):gsub("^.-:%d+: ", "")), level + 1)
      end
      p.set[#p.set + 1] = { strategy = s, name = sname, opts = opts }
    end
  end
  local hooks = check_hooks(where, ph.hooks, level + 1)
  if next(hooks) then p.use[#p.use + 1] = hook_strategy(name .. "-hooks", hooks) end
  return p
end

local function check_condition(i, when, level)
  local where = string.format("rule %d", i)
  if type(when) == "function" then return when end
  if type(when) ~= "table" then
    fail(where .. ": when must be a function(m, ctx) or {metric = ..., above = v | below = v}", level + 1)
  end
  for k in pairs(when) do
    if k ~= "metric" and k ~= "task" and k ~= "above" and k ~= "below" then
      fail(string.format("%s: unknown key '%s' in when (known: above, below, metric, task)", where, tostring(k)),
        level + 1)
    end
  end
  if not plan.METRICS[when.metric] then
    fail(string.format("%s: unknown metric '%s' (known: %s)", where, tostring(when.metric),
      table.concat(sorted_keys(plan.METRICS), ", ")), level + 1)
  end
  if (when.above == nil) == (when.below == nil) then
    fail(where .. ": when needs exactly one of above = v or below = v", level + 1)
  end
  local v = when.above or when.below
  if type(v) ~= "number" or v ~= v then fail(where .. ": the threshold must be a number", level + 1) end
  positive_int(where, "task", when.task, level + 1)
  local metric, task, above = when.metric, when.task, when.above ~= nil
  return function(m)
    local x = m[metric](m, task)
    if x == nil then return false, nil end
    if above then return x > v, x end
    return x < v, x
  end, when
end

--- A plan from its description (see the header). Errors name what is wrong.
function plan.new(spec)
  if type(spec) ~= "table" then fail("expected a table {strategies = ..., phases = ..., tasks = ...}", 2) end
  util.check_options("plan", spec, PLAN_KEYS, 2)
  local byname, order = named_strategies(spec.strategies, 2)
  local phases = {}
  if spec.phases == nil then
    phases.learn = check_phase("learn", {}, byname, order, 2)
  else
    if type(spec.phases) ~= "table" then fail("phases must be a table {name = phase}", 2) end
    for name, ph in pairs(spec.phases) do
      if type(name) ~= "string" then fail("phase names must be strings, got " .. type(name), 2) end
      phases[name] = check_phase(name, ph, byname, order, 2)
    end
  end
  local function phase_of(n, where)
    if type(n) ~= "string" then fail(string.format("%s: a phase name must be a string, got %s", where, type(n)), 3) end
    local p = phases[n]
    if not p then
      fail(string.format("%s: unknown phase '%s' (known: %s)", where, n, table.concat(sorted_keys(phases), ", ")), 3)
    end
    return p
  end
  local tasks = {}
  if spec.tasks ~= nil then
    if type(spec.tasks) ~= "table" then fail("tasks must be a list of {tasks = set, run = {phases}}", 2) end
    for i, e in ipairs(spec.tasks) do
      local where = "tasks[" .. i .. "]"
      if type(e) ~= "table" or type(e.run) ~= "table" then fail(where .. " needs run = {phase names}", 2) end
      for k in pairs(e) do
        if k ~= "tasks" and k ~= "run" then
          fail(string.format("%s: unknown key '%s' (known: run, tasks)", where, tostring(k)), 2)
        end
      end
      local ok, when = pcall(require("engram.schedule").tasks, e.tasks)
      if not ok then fail(where .. ": " .. tostring(when):gsub("^.-schedule: ", ""), 2) end
      local run = {}
      for j, n in ipairs(e.run) do run[j] = phase_of(n, where) end
      tasks[i] = { when = when, run = run, spec = e.tasks == nil and "all" or e.tasks }
    end
  end
  local rules = {}
  for i, r in ipairs(spec.rules or {}) do
    local where = "rule " .. i
    if type(r) ~= "table" then fail(where .. " must be a table {when = ..., run = phase}", 2) end
    for k in pairs(r) do
      if not RULE_KEYS[k] then
        fail(string.format("%s: unknown key '%s' (known: %s)", where, tostring(k),
          table.concat(sorted_keys(RULE_KEYS), ", ")), 2)
      end
    end
    local cond, decl = check_condition(i, r.when, 2)
    positive_int(where, "at_most", r.at_most, 2)
    local ok, when = pcall(require("engram.schedule").tasks, r.tasks)
    if not ok then fail(where .. ": " .. tostring(when):gsub("^.-schedule: ", ""), 2) end
    rules[i] = { name = r.name or ("rule " .. i), cond = cond, decl = decl, run = phase_of(r.run, where),
      after = r.after ~= nil and phase_of(r.after, where) or nil, at_most = r.at_most or math.huge,
      tasks = when, fired = 0 }
  end
  if spec.rules ~= nil and type(spec.rules) ~= "table" then fail("rules must be a list", 2) end
  local hooks = check_hooks("plan", spec.hooks, 2)
  local self = setmetatable({ name = spec.name or "plan", is_plan = true, byname = byname, order = order,
    phase_list = phases, task_list = tasks, rules = rules }, plan.Plan)
  -- members: every strategy any phase uses, then the plan's own hooks
  local members, seen = {}, {}
  local names = sorted_keys(phases)
  for _, n in ipairs(order) do
    local s = byname[n]
    if not seen[s] then seen[s], members[#members + 1] = true, s end
  end
  for _, n in ipairs(names) do
    for _, s in ipairs(phases[n].use) do
      if not seen[s] then seen[s], members[#members + 1] = true, s end
    end
  end
  if next(hooks) then
    local hs = hook_strategy(self.name .. "-hooks", hooks)
    members[#members + 1] = hs
    self._everywhere = hs
  end
  self.members = members
  if #members == 0 then fail("the plan has no strategy and no hook", 2) end
  self:_install()
  return self
end

local Plan = {}
Plan.__index = Plan
plan.Plan = Plan

function Plan:__tostring()
  return string.format("plan '%s' (%d phases, %d strategies, %d rules)", self.name, #sorted_keys(self.phase_list),
    #self.members, #self.rules)
end

--- The phases scheduled for task t (before any rule fires).
function Plan:phases_for(t, T)
  for _, e in ipairs(self.task_list) do
    if e.when(t, T) then return e.run end
  end
  local learn = self.phase_list.learn
  if not learn then
    error(string.format("plan: no tasks entry holds task %d and there is no phase 'learn' to run by default", t), 0)
  end
  return { learn }
end

-- The hook lists for (t, phase): acting members of the phase, then (for
-- observing hooks) the members that observe. Cached per task and phase.
function Plan:_lists(ctx)
  local t, T, ph = ctx.t, ctx.T, ctx.phase
  local key = ph and ph.name or ""
  local cache = self._cache
  if not cache or cache.T ~= T or cache.t ~= t then
    cache = { T = T, t = t }
    self._cache = cache
  end
  local l = cache[key]
  if l then return l end
  local sched = self:phases_for(t, T)
  -- the phases task t may run: its schedule and the rules' phases
  local may = {}
  for _, p in ipairs(sched) do may[#may + 1] = p end
  for _, r in ipairs(self.rules) do if r.tasks(t, T) then may[#may + 1] = r.run end end
  local acting_task, acting_phase, observe_any = {}, {}, {}
  for _, p in ipairs(may) do
    for _, s in ipairs(p.use) do acting_task[s] = true end
  end
  if ph then for _, s in ipairs(ph.use) do acting_phase[s] = true end end
  -- a strategy observes every task unless every phase using it says observe = false
  for _, p in pairs(self.phase_list) do
    if p.observe then for _, s in ipairs(p.use) do observe_any[s] = true end end
  end
  l = {}
  for _, h in ipairs(HOOKS) do
    local list = {}
    for _, s in ipairs(self.members) do
      if type(s[h]) == "function" then
        local yes
        if s == self._everywhere then
          yes = true
        elseif OBSERVE[h] or (type(s.observe_hooks) == "table" and s.observe_hooks[h]) then
          yes = observe_any[s] or acting_task[s]
        elseif TASK_LEVEL[h] or h == "after_phase" or not ph then
          yes = acting_task[s]
        else
          yes = acting_phase[s]
        end
        if yes then list[#list + 1] = s end
      end
    end
    l[h] = list
  end
  cache[key] = l
  return l
end

function Plan:_install()
  require("engram.schedule")._install(self, self.members, function(ctx, me) return me:_lists(ctx) end)
  local inner = self.before_run
  self.before_run = function(me, ctx)
    me:_before_run(ctx)
    if inner then inner(me, ctx) end
  end
end

-- Checks what needs the scenario (validation parts for val metrics) and
-- resets the rules' counts.
function Plan:_before_run(ctx)
  self._cache, self.fired, self._ref = nil, {}, {}
  for _, r in ipairs(self.rules) do
    r.fired = 0
    local m = r.decl and r.decl.metric
    if m == "val_acc" or m == "val_drop" then
      for j, task in ipairs(ctx.tasks) do
        if not task.val or #task.val == 0 then
          error(string.format("plan: %s measures %s but task %d has no validation part (give the scenario a " ..
            "validation share, e.g. validation = 0.1)", r.name, m, j), 0)
        end
      end
      if r.decl.task and r.decl.task > ctx.T then
        error(string.format("plan: %s measures task %d but the scenario has %d tasks", r.name, r.decl.task, ctx.T), 0)
      end
    end
  end
  ctx.extra.plan = { name = self.name, fired = self.fired }
end

-- The measurements a rule reads, computed on demand at one check.
local Measure = {}
Measure.__index = Measure

function Measure:val_acc(j)
  local ctx = self.ctx
  if j == nil then
    if ctx.t < 2 then return nil end
    local s = 0
    for i = 1, ctx.t - 1 do s = s + self:val_acc(i) end
    return s / (ctx.t - 1)
  end
  local c = self._val[j]
  if c == nil then
    c = ctx.learner:evaluate(ctx.tasks[j], ctx.tasks[j].val)
    self._val[j] = c
  end
  return c
end

function Measure:val_drop(j)
  local ctx = self.ctx
  if j == nil then
    if ctx.t < 2 then return nil end
    local s = 0
    for i = 1, ctx.t - 1 do s = s + self:val_drop(i) end
    return s / (ctx.t - 1)
  end
  local ref = self.plan._ref[j]
  if ref == nil then return nil end
  return ref - self:val_acc(j)
end

function Measure:loss() return self.ctx.epoch_loss end

function Measure:drift() return self.ctx.learner:_drift_now() end

local function measures(self, ctx)
  return setmetatable({ ctx = ctx, plan = self, _val = {} }, Measure)
end

--- Called by the learner after a scheduled phase: the phases rules make run now.
function Plan:triggered(ctx, phase)
  local out
  local m
  for _, r in ipairs(self.rules) do
    if r.fired < r.at_most and r.tasks(ctx.t, ctx.T) and (r.after == nil or r.after == phase) then
      m = m or measures(self, ctx)
      local ok, yes, value = pcall(r.cond, m, ctx)
      if not ok then error(string.format("plan: %s: %s", r.name, tostring(yes)), 0) end
      if yes then
        r.fired = r.fired + 1
        out = out or {}
        out[#out + 1] = r.run
        local e = { task = ctx.t, rule = r.name, phase = r.run.name, after = phase.name, value = value }
        self.fired[#self.fired + 1] = e
        ctx.log("rule", e)
      end
    end
  end
  return out
end

--- Called by the learner once task t's scheduled phases are done: records
-- the validation accuracy of task t that val_drop compares against.
function Plan:task_trained(ctx)
  for _, r in ipairs(self.rules) do
    local m = r.decl and r.decl.metric
    if m == "val_drop" then
      self._ref[ctx.t] = ctx.learner:evaluate(ctx.task, ctx.task.val)
      return
    end
    if not r.decl then -- a function condition may call m:val_drop
      if ctx.task.val and #ctx.task.val > 0 then self._ref[ctx.t] = ctx.learner:evaluate(ctx.task, ctx.task.val) end
      return
    end
  end
end

function Plan:describe()
  local phases = {}
  for _, n in ipairs(sorted_keys(self.phase_list)) do
    local p = self.phase_list[n]
    local names = {}
    for _, s in ipairs(p.use) do names[#names + 1] = s.name or "custom" end
    local bits = { table.concat(names, "+") }
    if p.data ~= "task" then bits[#bits + 1] = "data=" .. (type(p.data) == "string" and p.data or "custom") end
    if p.lr then bits[#bits + 1] = "lr=" .. p.lr end
    if p.iterations then bits[#bits + 1] = "iterations=" .. p.iterations end
    if p.epochs then bits[#bits + 1] = "epochs=" .. p.epochs end
    phases[#phases + 1] = n .. ": " .. table.concat(bits, " ")
  end
  local tasks = {}
  for _, e in ipairs(self.task_list) do
    local names = {}
    for _, p in ipairs(e.run) do names[#names + 1] = p.name end
    tasks[#tasks + 1] = tostring(e.spec) .. ": " .. table.concat(names, ",")
  end
  local opts = { phases = table.concat(phases, "; ") }
  if #tasks > 0 then opts.tasks = table.concat(tasks, "; ") end
  if #self.rules > 0 then
    local rs = {}
    for _, r in ipairs(self.rules) do
      local d = r.decl
      rs[#rs + 1] = (d and string.format("%s%s %s %g", d.metric, d.task and ("(" .. d.task .. ")") or "",
        d.above and ">" or "<", d.above or d.below) or "custom") .. " -> " .. r.run.name
    end
    opts.rules = table.concat(rs, "; ")
  end
  local members = {}
  for _, s in ipairs(self.members) do
    if not s._custom then
      local d = type(s.describe) == "function" and s:describe() or { name = s.name or "custom" }
      if type(s.state_bytes) == "function" and d.state_bytes == nil then d.state_bytes = s:state_bytes() end
      members[#members + 1] = d
    end
  end
  return { name = self.name, options = opts, strategies = members }
end

-- ------------------------------------------------------------- checkpoints
-- A plan's own state (engram.checkpoint; its strategies save theirs as its
-- members, the optimisers of its phases are the learner's): how often each
-- rule fired, the rules' firings (ctx.extra.plan.fired) and the validation
-- accuracies val_drop compares against. No tensors: state_meta holds it.
-- Between tasks nothing else is in flight (phase settings are put back after
-- every phase, the hook lists are recomputed). A rule's function condition
-- must keep no state of its own for a resume to be exact.

function Plan.state() return {} end

function Plan:state_meta()
  local fired, ref = {}, {}
  for i, r in ipairs(self.rules) do fired[i] = r.fired end
  for t, v in pairs(self._ref or {}) do ref[#ref + 1] = { t, v } end
  table.sort(ref, function(a, b) return a[1] < b[1] end)
  return { fired = fired, ref = ref }
end

function Plan:load_state(st, ctx, meta)
  if next(st) then error("plan: load_state: a plan keeps no tensors", 0) end
  if type(meta) ~= "table" or type(meta.fired) ~= "table" or #meta.fired ~= #self.rules or
      type(meta.ref) ~= "table" then
    error(string.format("plan: load_state: the records of '%s' do not match its %d rules", self.name, #self.rules), 0)
  end
  for i, r in ipairs(self.rules) do r.fired = meta.fired[i] end
  self._ref = {}
  for _, e in ipairs(meta.ref) do self._ref[e[1]] = e[2] end
  -- the firings so far, in the results as before (ctx.extra comes from the checkpoint)
  local rec = ctx.extra.plan
  if type(rec) == "table" and type(rec.fired) == "table" then self.fired = rec.fired end
  ctx.extra.plan = rec or { name = self.name, fired = self.fired }
  self._cache = nil
end

--- The strategy a plan knows by name.
function Plan:strategy(name)
  local s = self.byname[name]
  if not s then
    error(string.format("plan: unknown strategy '%s' (known: %s)", tostring(name), table.concat(self.order, ", ")), 2)
  end
  return s
end

return setmetatable(plan, { __call = function(_, spec)
  local ok, p = pcall(plan.new, spec)
  if not ok then error(p, 2) end
  return p
end })
