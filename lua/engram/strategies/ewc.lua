--- Elastic weight consolidation (Kirkpatrick et al. 2017) and online EWC
-- (Schwarz et al. 2018), over the model's flat parameter groups.
--
--   learner:use(engram.strategies.ewc{lambda = 1000})                 -- a penalty per past task
--   learner:use(engram.strategies.ewc{lambda = 1000, online = true, gamma = 0.9})
--
-- After each task the diagonal EMPIRICAL Fisher F = mean over N training
-- samples of the per-sample squared gradient of the loss (the data's labels,
-- not the model's samples) is estimated at the task's final parameters θ*
-- (engram.strategies.importance). While later tasks train, the loss hook adds
-- (λ/2) Σ F (θ − θ*)² for each past task (or once, with online F̃ ← γ F̃ + F
-- and the latest θ*) and its gradient λ F ⊙ (θ − θ*) in one C call per
-- parameter group: the penalty every quadratic strategy shares
-- (engram.strategies.quadratic, whose header also shows s:state()).
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
local strategies = require("engram.strategies")
local quadratic = require("engram.strategies.quadratic")
local importance = require("engram.strategies.importance")

local EWC = quadratic.class()

local function new(opts)
  local o = strategies.options("ewc", opts,
    { lambda = 1000, online = false, gamma = 1, samples = 1000, fisher = "auto", seed = false }, 3)
  quadratic.check_strength("ewc", "lambda", o.lambda, 3)
  quadratic.check_gamma("ewc", o.gamma, 3)
  if math.type(o.samples) ~= "integer" or o.samples < 1 then
    error("ewc: samples must be a positive integer, got " .. tostring(o.samples), 3)
  end
  if o.fisher ~= "auto" and o.fisher ~= "batched" and o.fisher ~= "loop" then
    error("ewc: fisher must be 'auto', 'batched' or 'loop', got " .. tostring(o.fisher), 3)
  end
  local s = setmetatable({ name = o.online and "online-ewc" or "ewc", options = o }, EWC)
  return s:_init(o.lambda, 1, o.online, o.gamma)
end

function EWC:describe()
  local o = self.options
  return { name = self.name, options = { lambda = o.lambda, online = o.online, gamma = o.online and o.gamma or nil,
    samples = o.samples, fisher = self.fisher_used or o.fisher } }
end

--- Estimates the empirical Fisher of `task` for the model: a new array of
-- flat tensors, one per parameter group (zeros for frozen groups), and the
-- method used ("batched" or "loop"). opts: samples [1000], fisher ["auto"],
-- seed [1] (the subset), active (output mask; default task.active, false for
-- none), targets (function(task, y) -> labels; default the task's label map).
function EWC.fisher(model, task, opts)
  opts = opts or {}
  local active = task.active
  if opts.active ~= nil then active = opts.active or nil end
  local crit = require("engram.loss").CrossEntropy { active = active }
  local ok, F, used = pcall(importance.per_sample, model, task, {
    who = "ewc", power = "sq", samples = opts.samples, seed = opts.seed, path = opts.fisher, targets = opts.targets,
    -- each sample's own gradient: the criterion's is of the batch mean
    output_grad = function(logits, y)
      local _, g = crit:forward_backward(logits, y)
      return g:mul_(logits:size(1))
    end,
  })
  if not ok then error(F, 2) end
  return F, used
end

function EWC:importance(ctx)
  local o = self.options
  local L = ctx.learner
  local F, used = EWC.fisher(ctx.model, ctx.task, { samples = o.samples, fisher = o.fisher,
    seed = o.seed or (ctx.opts.seed * 1009 + ctx.t), active = L:active(ctx.task) or false,
    targets = function(task, y) return L:targets(task, y) end })
  self.fisher_used = used
  return F
end

-- not a tail call: new's errors point two levels up, at the recipe's line
return setmetatable({ fisher = EWC.fisher, EWC = EWC }, { __call = function(_, opts)
  local s = new(opts)
  return s
end })
