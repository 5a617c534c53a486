--- Joint training: all tasks' training data at once, in the first task's
-- training, and no training after (the upper bound). The accuracy matrix's
-- rows are then all the jointly trained model; its ACC is what matters.
--
-- Where samples of different tasks may share a batch (split class-/domain-IL,
-- permuted/rotated domain-IL) the tasks' training sets are concatenated and
-- shuffled together; otherwise (task-IL masks, class-IL with per-task
-- labels) batches are drawn from each task in turn, in a shuffled order.
local strategies = require("engram.strategies")

local function parts_upto(ctx, n)
  local parts = {}
  for j = 1, n do parts[j] = { ds = ctx.tasks[j].train, task = ctx.tasks[j] } end
  return parts
end

-- Sets ctx.train_set (one mixed set) or ctx.train_parts for tasks 1..n.
local function train_on_tasks(ctx, n)
  local s = ctx.scenario
  if s.mixable and s.name == "split" then
    local ds = ctx.tasks[1].train
    for j = 2, n do ds = ds:concat(ctx.tasks[j].train) end
    ctx.train_set = ds
    ctx.criterion:set_active(nil)
  else
    ctx.train_parts = parts_upto(ctx, n)
  end
end

local function joint(opts)
  strategies.options("joint", opts, {}, 2)
  return {
    name = "joint", options = {}, stateless = true,
    before_task = function(_, ctx)
      if ctx.t == 1 then train_on_tasks(ctx, ctx.T) else ctx.skip_training = true end
    end,
    -- resuming inside task 1 (engram.checkpoint): the same data again
    resume_task = function(_, ctx) if ctx.t == 1 then train_on_tasks(ctx, ctx.T) end end,
  }
end

return setmetatable({ train_on_tasks = train_on_tasks }, { __call = function(_, opts) return joint(opts) end })
