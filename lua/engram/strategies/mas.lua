--- Memory aware synapses (Aljundi et al. 2018).
--
--   learner:use(engram.strategies.mas{lambda = 1})
--
-- After each task the importance of every parameter is the mean over N
-- samples of |∂‖f(x)‖²₂ / ∂θ|, f the model's output: how much the output
-- moves when the parameter does. It needs no labels, so it can be measured
-- on unlabelled data (opts.data). Each sample's gradient is taken on its own
-- (∂‖f‖²/∂f = 2f per sample, then |.| per sample: for a chain of Linear,
-- Conv2d, LayerNorm, Embedding and layers without parameters one C call per
-- layer and chunk, for a Linear one product |δ|ᵀ|x|; any other model one
-- backward pass per sample; engram.strategies.importance). In task-IL the norm is over
-- the task's own output units. The importances of the tasks add up; later
-- tasks pay λ Σ Ω (θ − θ*)², θ* the last task's parameters, through the
-- penalty every quadratic strategy shares (engram.strategies.quadratic).
--
-- Options (defaults in brackets):
--   lambda [1]        strength λ of λ Σ Ω (θ − θ*)²; when not given, the default for
--                     the scenario's kind (engram.strategies.defaults), 1 for others
--   samples [1000]    samples N of the task's training data (seeded subset), or "all"
--   path ["auto"]     "batched" | "loop" | "auto" (as EWC's fisher option)
--   seed [nil]        the subset's seed (default: the run's seed + task)
--   data [nil]        function(task) -> a dataset to measure on instead of the
--                     task's training data (e.g. unlabelled samples; labels unused)
local core = require("engram.core")
local strategies = require("engram.strategies")
local quadratic = require("engram.strategies.quadratic")
local importance = require("engram.strategies.importance")

local MAS = quadratic.class()

local function new(opts)
  local o = strategies.options("mas", opts, { lambda = 1, samples = 1000, path = "auto", seed = false, data = false },
    3)
  quadratic.check_strength("mas", "lambda", o.lambda, 3)
  if o.samples ~= "all" and (math.type(o.samples) ~= "integer" or o.samples < 1) then
    error("mas: samples must be a positive integer or \"all\", got " .. tostring(o.samples), 3)
  end
  if o.path ~= "auto" and o.path ~= "batched" and o.path ~= "loop" then
    error("mas: path must be 'auto', 'batched' or 'loop', got " .. tostring(o.path), 3)
  end
  if o.data and type(o.data) ~= "function" then error("mas: data must be a function(task) -> dataset", 3) end
  local s = setmetatable({ name = "mas", options = o }, MAS)
  -- λ Σ Ω (θ − θ*)² is (λ'/2) Σ Ω (θ − θ*)² with λ' = 2λ; Ω is a running sum
  s:_init(o.lambda, 2, true, 1)
  if opts == nil or opts.lambda == nil then s:_strength_by_kind("lambda") end
  return s
end

function MAS:describe()
  local o = self.options
  return { name = "mas", options = { lambda = self._strength, default_for = self._default_for and
    (self._default_for .. "-IL") or nil, samples = o.samples, path = self.path_used or o.path } }
end

--- The MAS importance of `model` on `task`: a new array of flat tensors per
-- parameter group, and the path taken. opts: samples, seed, path, active
-- (class ids whose outputs count; default all), data (a dataset), quiet (no
-- note when "auto" falls back to the loop).
function MAS.importance_of(model, task, opts)
  opts = opts or {}
  local g, mask = core.zeros(0), nil
  local src = task
  if opts.data then src = { train = opts.data, index = task.index } end
  local ok, F, used = pcall(importance.per_sample, model, src, {
    who = "mas", power = "abs", samples = opts.samples, seed = opts.seed, path = opts.path, quiet = opts.quiet,
    targets = function(_, y) return y end, -- labels are not used
    output_grad = function(logits)
      if g:numel() ~= logits:numel() then g = core.zeros(table.unpack(logits:size())) end
      g:copy_(logits):mul_(2)
      if opts.active then
        mask = mask or importance.class_mask(opts.active, logits:size(2))
        g:mul_(mask)
      end
      return g
    end,
  })
  if not ok then error(F, 2) end
  return F, used
end

function MAS:importance(ctx)
  local o = self.options
  local data = o.data and o.data(ctx.task) or nil
  local F, used = MAS.importance_of(ctx.model, ctx.task, { samples = o.samples, path = o.path, data = data,
    seed = o.seed or (ctx.opts.seed * 1009 + ctx.t), active = ctx.learner:active(ctx.task), quiet = ctx.opts.quiet })
  self.path_used = used
  return F
end

return setmetatable({ importance = MAS.importance_of, MAS = MAS }, { __call = function(_, opts)
  local s = new(opts)
  return s
end })
