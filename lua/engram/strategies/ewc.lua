--- Elastic weight consolidation (Kirkpatrick et al. 2017) and online EWC
-- (Schwarz et al. 2018), over the model's flat parameter groups.
--
--   learner:use(engram.strategies.ewc{lambda = 1000})                 -- a penalty per past task
--   learner:use(engram.strategies.ewc{lambda = 1000, online = true, gamma = 0.9})
--
-- After each task the diagonal Fisher information F, a mean over N training
-- samples of per-sample squared gradients of the log-likelihood (never the
-- square of a batch-mean gradient), is estimated at the task's final
-- parameters θ* (engram.strategies.importance), in one of three kinds:
--   "empirical"  the data's label:                 F = mean_n (∇ log p(yₙ|xₙ))²
--   "sampled"    a label drawn from the model:    ŷₙ ~ p(·|xₙ), then as above
--                (the true Fisher by Monte Carlo, one draw per sample)
--   "expected"   the exact expectation over the classes, weighted by the
--                model:  F = mean_n Σ_c p(c|xₙ) (∇ log p(c|xₙ))²  (what the
--                literature's reference code computes; one backward per class)
-- In task-IL the softmax is over the task's classes. While later tasks train,
-- the loss hook adds (λ/2) Σ F (θ − θ*)² for each past task (or once, with
-- online F̃ ← γ F̃ + F and the latest θ*) and its gradient λ F ⊙ (θ − θ*) in
-- one C call per parameter group: the penalty every quadratic strategy
-- shares (engram.strategies.quadratic, whose header also shows s:state()).
--
-- Options (defaults in brackets):
--   lambda [1000]       penalty strength λ; when not given, the default for the
--                       scenario's kind (engram.strategies.defaults), 1000 for others
--   online [false]      online EWC: one running Fisher and one anchor
--   gamma [1]           online EWC's decay of the running Fisher
--   fisher ["empirical"] "empirical" | "sampled" | "expected" (above)
--   samples [1000]      training samples N for the Fisher (a seeded subset), or "all"
--   path ["auto"]       "batched": per chunk of samples one backward and one C
--                       call per layer that forms each sample's own gradient
--                       (a Linear's from one product, Goodfellow 2015; needs a
--                       chain of Linear, Conv2d, LayerNorm, Embedding and
--                       layers without parameters: strategies.importance);
--                       "loop": one backward pass per sample (any model);
--                       "auto": batched when the model allows it, else loop
--                       (with a note on stderr unless the learner is quiet)
--   seed [nil]          the subset's (and the sampled labels') seed (default:
--                       the run's seed + task)
local core = require("engram.core")
local cl = require("engram.cl")
local strategies = require("engram.strategies")
local quadratic = require("engram.strategies.quadratic")
local importance = require("engram.strategies.importance")

local EWC = quadratic.class()

local KINDS = { empirical = true, sampled = true, expected = true }
local PATHS = { auto = true, batched = true, loop = true }

local function check_kind_path(fisher, path, level)
  if not KINDS[fisher] then
    error("ewc: fisher must be 'empirical', 'sampled' or 'expected', got " .. tostring(fisher), level + 1)
  end
  if not PATHS[path] then
    error("ewc: path must be 'auto', 'batched' or 'loop', got " .. tostring(path), level + 1)
  end
end

local function new(opts)
  local o = strategies.options("ewc", opts, { lambda = 1000, online = false, gamma = 1, samples = 1000,
    fisher = "empirical", path = "auto", seed = false }, 3)
  quadratic.check_strength("ewc", "lambda", o.lambda, 3)
  quadratic.check_gamma("ewc", o.gamma, 3)
  if o.samples ~= "all" and (math.type(o.samples) ~= "integer" or o.samples < 1) then
    error("ewc: samples must be a positive integer or \"all\", got " .. tostring(o.samples), 3)
  end
  check_kind_path(o.fisher, o.path, 3)
  local s = setmetatable({ name = o.online and "online-ewc" or "ewc", options = o }, EWC)
  s:_init(o.lambda, 1, o.online, o.gamma)
  if opts == nil or opts.lambda == nil then s:_strength_by_kind("lambda") end
  return s
end

function EWC:describe()
  local o = self.options
  return { name = self.name, options = { lambda = self._strength, default_for = self._default_for and
    (self._default_for .. "-IL") or nil, online = o.online, gamma = o.online and o.gamma or nil,
    fisher = o.fisher, samples = o.samples, path = self.path_used or o.path } }
end

--- Estimates the Fisher of `task` for the model: a new array of flat
-- tensors, one per parameter group (zeros for frozen groups), and the path
-- taken ("batched" or "loop"). opts: fisher ["empirical"], samples [1000] or
-- "all", path ["auto"], seed [1] (the subset and the sampled labels), active
-- (class ids the softmax is over; default task.active, false for all),
-- targets (function(task, y) -> labels; default the task's label map),
-- quiet (no note when "auto" falls back to the loop).
function EWC.fisher(model, task, opts)
  opts = opts or {}
  local kind, path = opts.fisher or "empirical", opts.path or "auto"
  check_kind_path(kind, path, 2)
  local active = task.active
  if opts.active ~= nil then active = opts.active or nil end
  local crit = require("engram.loss").CrossEntropy { active = active }
  local seed = opts.seed or 1
  local classes, mask, gen, yk = nil, nil, nil, core.zeros(0)
  local passes = 1
  if kind == "expected" then
    passes = function(logits) -- one per class the softmax is over
      if not classes then
        classes = active
        if not classes then
          classes = {}
          for c = 0, logits:size(2) - 1 do classes[#classes + 1] = c end
        end
      end
      return #classes
    end
  elseif kind == "sampled" then
    gen = core.generator(seed * 7919 + 17)
  end
  -- each sample's own gradient of -log p(label): the criterion's is of the batch mean
  local function grad_for(logits, labels)
    local _, g = crit:forward_backward(logits, labels)
    return g:mul_(logits:size(1))
  end
  local output_grad
  if kind == "empirical" then
    output_grad = function(logits, y) return grad_for(logits, y) end
  elseif kind == "sampled" then
    output_grad = function(logits)
      local B = logits:size(1)
      if yk:numel() ~= B then yk = core.zeros(B) end
      mask = mask or importance.class_mask(active, logits:size(2))
      cl.sample_labels(yk, logits, mask, gen)
      return grad_for(logits, yk)
    end
  else -- expected: pass k is class c = classes[k], rows weighted by sqrt p(c|x)
    output_grad = function(logits, _, k)
      local B, c = logits:size(1), classes[k]
      if yk:numel() ~= B then yk = core.zeros(B) end
      yk:fill_(c)
      local g = grad_for(logits, yk) -- p - e_c
      local w = g:narrow(2, c + 1, 1):add(1):clamp_(0, 1):sqrt_() -- sqrt p(c|x), [B, 1]
      return g:mul_(w)
    end
  end
  local ok, F, used = pcall(importance.per_sample, model, task, {
    who = "ewc", power = "sq", samples = opts.samples, seed = seed, path = path, targets = opts.targets,
    passes = passes, output_grad = output_grad, quiet = opts.quiet })
  if not ok then error(F, 2) end
  return F, used
end

function EWC:importance(ctx)
  local o = self.options
  local L = ctx.learner
  local F, used = EWC.fisher(ctx.model, ctx.task, { fisher = o.fisher, samples = o.samples, path = o.path,
    seed = o.seed or (ctx.opts.seed * 1009 + ctx.t), active = L:active(ctx.task) or false,
    targets = function(task, y) return L:targets(task, y) end, quiet = ctx.opts.quiet })
  self.path_used = used
  return F
end

-- not a tail call: new's errors point two levels up, at the recipe's line
return setmetatable({ fisher = EWC.fisher, EWC = EWC }, { __call = function(_, opts)
  local s = new(opts)
  return s
end })
