--- Cumulative training: at task t, train on the training data of tasks 1..t
-- (retraining on everything seen so far; same mixing rule as joint).
local strategies = require("engram.strategies")

return function(opts)
  strategies.options("cumulative", opts, {}, 2)
  local joint = require("engram.strategies.joint")
  return {
    name = "cumulative", options = {}, stateless = true,
    before_task = function(_, ctx) joint.train_on_tasks(ctx, ctx.t) end,
    -- resuming inside a task (engram.checkpoint): the same data again
    resume_task = function(_, ctx) joint.train_on_tasks(ctx, ctx.t) end,
  }
end
