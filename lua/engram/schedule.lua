--- engram.schedule: which strategies run for which task.
--
--   local sched = engram.schedule
--   learner:use(S.ewc{lambda = 100}, {tasks = "2-"})         -- EWC from task 2 on
--   learner:use(sched{                                        -- phases
--     {tasks = "1",   use = {S.naive()}},
--     {tasks = "2-3", use = {S.replay{memory = 500}}},
--     {tasks = "4-",  use = {S.replay{memory = 500}, S.ewc{}}},
--   })
--
-- Task sets: nil (every task), an integer, a list {1, 3}, a string of
-- comma-separated items "1,3-5,7-" (ranges inclusive; "n-" means n to the
-- end), or a function(t, T) -> boolean.
-- A schedule is itself a strategy: at each hook it calls the hooks of the
-- strategies whose phase contains the current task (ctx.t), phase by phase,
-- each phase's strategies in their order. before_run and after_run reach every
-- strategy. A strategy listed in several phases keeps its state across them.
-- Evaluation hooks (before_eval/after_eval) use the task just trained.
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
local EVERY = { before_run = true, after_run = true }

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
  for _, h in ipairs(HOOKS) do
    local any = false
    for _, m in ipairs(members) do if type(m[h]) == "function" then any = true end end
    if any then
      if EVERY[h] then
        s[h] = function(_, ctx)
          for _, m in ipairs(members) do if m[h] then m[h](m, ctx) end end
        end
      else
        s[h] = function(_, ctx)
          for _, ph in ipairs(phases) do
            if ph.when(ctx.t, ctx.T) then
              for _, m in ipairs(ph.use) do if m[h] then m[h](m, ctx) end end
            end
          end
        end
      end
    end
  end
  for _, m in ipairs(members) do if m.needs_old_model then s.needs_old_model = true end end
  s.describe = function()
    local out = { name = name, options = {} }
    local names = {}
    for i, ph in ipairs(phases) do
      local list = {}
      for _, m in ipairs(ph.use) do list[#list + 1] = m.name or "custom" end
      names[i] = tostring(ph.spec) .. ":" .. table.concat(list, "+")
    end
    out.options.phases = table.concat(names, "; ")
    return out
  end
  return s
end

--- A strategy that runs s only for the tasks in spec.
function schedule.only(s, spec)
  if type(s) ~= "table" then error("schedule.only: the strategy must be a table of hooks, got " .. type(s), 2) end
  local ok, when = pcall(schedule.tasks, spec)
  if not ok then error(when, 2) end
  local c = composite(s.name or "custom", { { when = when, use = { s }, spec = spec } })
  local inner = c.describe
  c.describe = function()
    local d = type(s.describe) == "function" and s:describe() or inner()
    d.options = d.options or {}
    if type(spec) == "string" or type(spec) == "number" then d.options.tasks = tostring(spec) end
    return d
  end
  return c
end

--- A schedule from phases {{tasks = spec, use = {strategy, ...}}, ...}.
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
      if k ~= "tasks" and k ~= "use" then
        error(string.format("schedule: phase %d: unknown key '%s' (known: tasks, use)", i, tostring(k)), 2)
      end
    end
    local use = ph.use
    if use.name or getmetatable(use) then use = { use } end
    for j, m in ipairs(use) do
      if type(m) ~= "table" then error(string.format("schedule: phase %d: strategy %d is not a table", i, j), 2) end
    end
    local ok, when = pcall(schedule.tasks, ph.tasks)
    if not ok then error(string.format("schedule: phase %d: %s", i, tostring(when):gsub("^.-schedule: ", "")), 2) end
    list[i] = { when = when, use = use, spec = ph.tasks == nil and "all" or ph.tasks }
  end
  return composite(opts.name or "schedule", list)
end

return setmetatable(schedule, { __call = function(_, phases, opts)
  local ok, s = pcall(schedule.new, phases, opts)
  if not ok then error(s, 2) end
  return s
end })
