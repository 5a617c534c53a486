--- engram.strategies: continual-learning strategies as objects of hooks.
--
--   local S = engram.strategies
--   learner:use(S.replay{memory = 1000})
--   learner:use(S.ewc{lambda = 1000})
--   learner:use(S.new("my-strategy", {after_task = function(self, ctx) ... end}))
--
-- A strategy is any table with some of the learner's hook methods
-- (before_run, before_task, before_phase, before_epoch, before_batch, loss, after_backward,
-- after_step, after_epoch, after_phase, after_task, before_eval, after_eval, after_run),
-- each called as s:hook(ctx); optional fields: name, options (for results),
-- needs_old_model (the learner keeps ctx.old_model), describe(). See
-- docs/strategies.md for the protocol and the composition order.
--
-- Built in: naive, joint, cumulative (baselines), replay (experience replay
-- with a reservoir memory in C), ewc (elastic weight consolidation, separate
-- or online), si (synaptic intelligence), mas (memory aware synapses), lwf
-- (learning without forgetting: distillation from the previous model),
-- quadratic (the importance-weighted penalty EWC, SI and MAS share, with an
-- importance of your own); agem (A-GEM's gradient projection), der (DER and
-- DER++: replay of stored logits), generative_replay (a VAE or GAN replays
-- the inputs of past tasks), self_replay (a language model replays text it
-- writes itself, with its own next-token distributions) and icarl;
-- parameter isolation (docs/isolation.md): lora, adapters, freeze, heads (per-task output heads)
-- and progressive; federated (FedAvg across simulated clients with non-IID
-- shares of each task, composing with the others). Each loads on first use: S.replay is
-- engram.strategies.replay. S.defaults holds the regularisers' strengths per
-- scenario kind (used when none is given; docs/defaults.md).
local util = require("engram.util")

local strategies = {}

local BUILTIN = { naive = true, joint = true, cumulative = true, replay = true, ewc = true, si = true, mas = true,
  lwf = true, quadratic = true, icarl = true, agem = true, der = true, generative_replay = true, self_replay = true,
  lora = true, adapters = true, freeze = true, heads = true, progressive = true, federated = true }
strategies.names = { "naive", "joint", "cumulative", "replay", "ewc", "si", "mas", "lwf", "quadratic", "icarl",
  "agem", "der", "generative_replay", "self_replay", "lora", "adapters", "freeze", "heads", "progressive",
  "federated" }

--- Checks opts against defaults (an unknown key is an error naming the known
-- ones); returns a new table with the defaults filled in.
function strategies.options(who, opts, defaults, level)
  if type(who) ~= "string" or type(defaults) ~= "table" or (level ~= nil and math.type(level) ~= "integer") then
    error("strategies.options: expected (name, opts, defaults [, level]): a string, a table or nil, a table" ..
      " and an integer level", 2)
  end
  local o = util.with_defaults(util.check_options(who, opts, defaults, (level or 1) + 1), defaults)
  return o
end

--- A strategy from a name and a table of hooks (the table is used as is).
function strategies.new(name, hooks)
  if type(name) ~= "string" then error("strategies.new: the strategy needs a name", 2) end
  hooks = hooks or {}
  if type(hooks) ~= "table" then error("strategies.new: hooks must be a table", 2) end
  hooks.name = name
  local learner = require("engram.learner")
  local ok, err = pcall(learner.check_strategy, hooks, 1)
  if not ok then error("strategies.new: " .. tostring(err):gsub("^.-use: ", ""), 2) end
  return hooks
end

--- A built-in strategy by name with options: strategies.make("ewc", {lambda = 100}).
function strategies.make(name, opts)
  if not BUILTIN[name] then
    error(string.format("strategies: unknown strategy '%s' (known: %s)", tostring(name),
      table.concat(strategies.names, ", ")), 2)
  end
  local ok, s = pcall(strategies[name], opts)
  if not ok then error(s, 2) end
  return s
end

return setmetatable(strategies, {
  __index = function(t, k)
    if BUILTIN[k] or k == "defaults" then
      local m = require("engram.strategies." .. k)
      rawset(t, k, m)
      return m
    end
  end,
})
