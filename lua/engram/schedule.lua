--- engram.schedule: which strategies run for which task.
--
--   local sched = engram.schedule
--   learner:use(S.ewc{lambda = 100}, {tasks = "2-"})         -- penalise from task 2 on,
--                                                             -- protecting task 1
--   learner:use(sched{                                        -- phases
--     {tasks = "1",   use = {S.naive()}},
--     {tasks = "2-3", use = {S.replay{memory = 500}}},
--     {tasks = "4-",  use = {S.replay{memory = 500}, S.ewc{}}},
--   })
--
-- Task sets: nil (every task), an integer, a list {1, 3}, a string of
-- comma-separated items "1,3-5,7-" (ranges inclusive; "n-" means n to the
-- end), or a function(t, T) -> boolean.
--
-- ACT AND OBSERVE. A scheduled strategy ACTS only in its task set: the
-- training hooks (before_task, before_phase, before_epoch, before_batch, loss,
-- after_backward, after_step, after_epoch, after_phase) run for those tasks alone. It
-- OBSERVES every task: after_task and the evaluation hooks (before_eval,
-- after_eval) run after each task, so that EWC scheduled from task 2 has
-- task 1's Fisher when it starts penalising, and replay scheduled from task 3
-- finds tasks 1 and 2 in its memory. A phase with observe = false (or
-- learner:use(s, {tasks = ..., observe = false})) observes its own tasks only.
-- before_run and after_run reach every strategy. A strategy whose training
-- hook only watches (SI's path integral reads every step) declares it:
-- observe_hooks = {after_backward = true, after_step = true}; such hooks
-- then observe like after_task.
--
-- A schedule is itself a strategy: at each hook it calls the hooks of the
-- strategies that act (or observe) at the current task (ctx.t), phase by
-- phase, each phase's strategies in their order; a strategy listed in
-- several phases runs once per hook and keeps its state across them.
-- Evaluation hooks use the task just trained (ctx.t).
local schedule = {}

--- A predicate function(t, T) -> boolean for a task set (see the header).
function schedule.tasks(spec)
  if spec == nil then return function() return true end end
  local tp = type(spec)
  if tp == "function" then return spec end
  if math.type(spec) == "integer" then return function(t) return t == spec end end
  if tp == "table" then
    local set = {}
    for i, v in ipairs(spec) do
      if math.type(v) ~= "integer" or v < 1 then
        error(string.format("schedule: task %d of the list is not a task number: %s", i, tostring(v)), 2)
      end
      set[v] = true
    end
    return function(t) return set[t] == true end
  end
  if tp == "string" then
    local ranges = {}
    for item in spec:gmatch("[^,]+") do
      item = item:match("^%s*(.-)%s*$")
      local a, b = item:match("^(%d+)%s*%-%s*(%d*)$")
      if a then
        ranges[#ranges + 1] = { tonumber(a), b ~= "" and tonumber(b) or math.huge }
      elseif item:match("^%d+$") then
        ranges[#ranges + 1] = { tonumber(item), tonumber(item) }
      else
        error("schedule: bad task set '" .. spec .. "' (e.g. \"1,3-5,7-\")", 2)
      end
    end
    if #ranges == 0 then error("schedule: empty task set '" .. spec .. "'", 2) end
    return function(t)
      for _, r in ipairs(ranges) do if t >= r[1] and t <= r[2] then return true end end
      return false
    end
  end
  error("schedule: a task set is nil, an integer, a list, a string like \"2-4\" or a function, got " .. tp, 2)
end

local HOOKS = require("engram.learner").HOOKS
-- Run-level hooks reach every strategy; observing hooks reach a strategy
-- every task unless all its phases say observe = false; the rest (the
-- training hooks) are acting: only in the strategy's task set.
local EVERY = { before_run = true, after_run = true }
local OBSERVE = { after_task = true, before_eval = true, after_eval = true }
schedule.OBSERVING = { "after_task", "before_eval", "after_eval" }
schedule.ACTING = {}
for _, h in ipairs(HOOKS) do
  if not EVERY[h] and not OBSERVE[h] then schedule.ACTING[#schedule.ACTING + 1] = h end
end

--- (Internal) Makes s dispatch to its members: each hook of a member becomes a hook of
-- s that calls, at run-level hooks, every member, and otherwise the members
-- lists(ctx)[hook] gives (in order); the first member's prediction hook; the
-- members' observe_hooks, needs_task_grads and needs_old_model. Shared by
-- schedules and plans (engram.plan).
function schedule._install(s, members, lists)
  for _, h in ipairs(HOOKS) do
    local any = false
    for _, m in ipairs(members) do if type(m[h]) == "function" then any = true end end
    if any then
      if EVERY[h] then
        s[h] = function(_, ctx)
          for _, m in ipairs(members) do if m[h] then m[h](m, ctx) end end
        end
      else
        s[h] = function(me, ctx)
          local list = lists(ctx, me)[h]
          for i = 1, #list do
            local m = list[i]
            m[h](m, ctx)
          end
        end
      end
    end
  end
  -- the prediction hook (evaluation: it observes): the first member that has one
  for _, m in ipairs(members) do
    if type(m.predict) == "function" then
      s.predict = function(_, ...) return m:predict(...) end
      break
    end
  end
  for _, m in ipairs(members) do
    if type(m.observe_hooks) == "table" then
      s.observe_hooks = s.observe_hooks or {}
      for h, v in pairs(m.observe_hooks) do if v then s.observe_hooks[h] = true end end
    end
    if m.needs_task_grads then s.needs_task_grads = true end
    if m.needs_old_model then s.needs_old_model = true end
  end
  return s
end

local function composite(name, phases)
  local s = { name = name, phases = phases }
  local members = {}
  for _, ph in ipairs(phases) do
    for _, m in ipairs(ph.use) do
      local seen = false
      for _, x in ipairs(members) do if x == m then seen = true end end
      if not seen then members[#members + 1] = m end
    end
  end
  s.members = members
  -- For task t of T and each hook: the members to call. First those that
  -- act (phase by phase, each phase's strategies in order, a strategy once),
  -- then, for an observing hook, those that only observe (in the order of
  -- members). A strategy's observe_hooks = {after_step = true, ...} makes
  -- those training hooks observing for it (SI's path integral watches every
  -- step). Worked out once per task: hooks run every batch.
  local function observes(m, h) return OBSERVE[h] or (type(m.observe_hooks) == "table" and m.observe_hooks[h]) end
  local cache = {}
  local function lists(ctx)
    local t, T = ctx.t, ctx.T
    if cache.T ~= T then cache = { T = T } end
    local l = cache[t]
    if l then return l end
    local act, acting, watchers = {}, {}, {}
    for _, ph in ipairs(phases) do
      if ph.when(t, T) then
        for _, m in ipairs(ph.use) do
          if not acting[m] then acting[m] = true; act[#act + 1] = m end
        end
      end
    end
    for _, m in ipairs(members) do
      local watch = false
      for _, ph in ipairs(phases) do
        if not acting[m] and not watch and ph.observe then
          for _, x in ipairs(ph.use) do if x == m then watch = true end end
        end
      end
      if watch then watchers[#watchers + 1] = m end
    end
    l = {}
    for _, h in ipairs(HOOKS) do
      local list = {}
      for _, m in ipairs(act) do if m[h] then list[#list + 1] = m end end
      for _, m in ipairs(watchers) do if m[h] and observes(m, h) then list[#list + 1] = m end end
      l[h] = list
    end
    cache[t] = l
    return l
  end
  schedule._install(s, members, lists)
  -- resuming inside a task (engram.checkpoint): resume_task of the members
  -- before_task would have reached at this task
  s.resume_task = function(_, ctx)
    for _, m in ipairs(lists(ctx).before_task or {}) do
      if type(m.resume_task) == "function" then m:resume_task(ctx) end
    end
  end
  s.describe = function()
    local out = { name = name, options = {} }
    local names = {}
    for i, ph in ipairs(phases) do
      local list = {}
      for _, m in ipairs(ph.use) do list[#list + 1] = m.name or "custom" end
      names[i] = tostring(ph.spec) .. ":" .. table.concat(list, "+") .. (ph.observe and "" or " (observe=false)")
    end
    out.options.phases = table.concat(names, "; ")
    return out
  end
  return s
end

-- The observe flag of a phase or of use's options: nil (default) is true.
local function observe_flag(v, who, level)
  if v == nil then return true end
  if type(v) ~= "boolean" then
    error(string.format("%s: observe must be true or false, got %s", who, type(v)), level + 1)
  end
  return v
end

--- A strategy that acts only in the tasks in spec and observes every task
-- (opts.observe = false: observes only those too).
function schedule.only(s, spec, opts)
  if type(s) ~= "table" then error("schedule.only: the strategy must be a table of hooks, got " .. type(s), 2) end
  if opts ~= nil and type(opts) ~= "table" then
    error("schedule.only: options must be a table, got " .. type(opts), 2)
  end
  for k in pairs(opts or {}) do
    if k ~= "observe" then error("schedule.only: unknown option '" .. tostring(k) .. "' (known: observe)", 2) end
  end
  local observe = observe_flag(opts and opts.observe, "schedule.only", 2)
  local ok, when = pcall(schedule.tasks, spec)
  if not ok then error(when, 2) end
  local c = composite(s.name or "custom", { { when = when, use = { s }, spec = spec, observe = observe } })
  local inner = c.describe
  c.describe = function()
    local d = type(s.describe) == "function" and s:describe() or inner()
    d.options = d.options or {}
    if type(spec) == "string" or type(spec) == "number" then d.options.tasks = tostring(spec) end
    if not observe then d.options.observe = false end
    return d
  end
  return c
end

--- A schedule from phases {{tasks = spec, use = {strategy, ...}, observe = true}, ...}.
function schedule.new(phases, opts)
  if type(phases) ~= "table" or #phases == 0 then
    error("schedule: expected a list of phases {tasks = ..., use = {...}}", 2)
  end
  opts = opts or {}
  if type(opts) ~= "table" then error("schedule: options must be a table, got " .. type(opts), 2) end
  local list = {}
  for i, ph in ipairs(phases) do
    if type(ph) ~= "table" or type(ph.use) ~= "table" then
      error(string.format("schedule: phase %d needs use = {strategies}", i), 2)
    end
    for k in pairs(ph) do
      if k ~= "tasks" and k ~= "use" and k ~= "observe" then
        error(string.format("schedule: phase %d: unknown key '%s' (known: observe, tasks, use)", i, tostring(k)), 2)
      end
    end
    local use = ph.use
    if use.name or getmetatable(use) then use = { use } end
    for j, m in ipairs(use) do
      if type(m) ~= "table" then error(string.format("schedule: phase %d: strategy %d is not a table", i, j), 2) end
    end
    local ok, when = pcall(schedule.tasks, ph.tasks)
    if not ok then error(string.format("schedule: phase %d: %s", i, tostring(when):gsub("^.-schedule: ", "")), 2) end
    local observe = observe_flag(ph.observe, string.format("schedule: phase %d", i), 2)
    list[i] = { when = when, use = use, spec = ph.tasks == nil and "all" or ph.tasks, observe = observe }
  end
  return composite(opts.name or "schedule", list)
end

return setmetatable(schedule, { __call = function(_, phases, opts)
  local ok, s = pcall(schedule.new, phases, opts)
  if not ok then error(s, 2) end
  return s
end })
