--- Bottleneck adapters per task (Houlsby et al. 2019): an nn.Switch is
-- inserted once after each chosen layer (default: every ReLU, the hidden
-- activations of an mlp); every task the strategy acts in gets an
-- nn.Adapter in each Switch, all in one group "adapters.task<t>", while
-- the base group (freeze = "base", the default; false: nothing) and the
-- other tasks' adapters are frozen. before_eval selects the evaluated
-- task's adapters (none: the input passes through), so a task's outputs
-- after later tasks are those right after it was learnt, bit for bit.
--
--   L:use(S.adapters{bottleneck = 16}, {tasks = "2-"})
--
-- Options: after ["ReLU"] (a selector, as in model:insert_after),
-- bottleneck [64], activation ["relu"], init [1e-3] (the up-projection's
-- initial range: near identity), freeze ["base"].
-- s:state(): name -> tensor ("adapters.task2.3.1.down_weight", ...).
local nn = require("engram.nn")
local strategies = require("engram.strategies")
local iso = require("engram.strategies.isolation")

local Adapters = iso.resumable(iso.class("adapters"))

local function new(opts)
  local o = strategies.options("adapters", opts, { after = "ReLU", bottleneck = 64, activation = "relu", init = 1e-3,
    freeze = "base" }, 3)
  if math.type(o.bottleneck) ~= "integer" or o.bottleneck < 1 then
    error("adapters: bottleneck must be a positive integer, got " .. tostring(o.bottleneck), 3)
  end
  if o.freeze and o.freeze ~= "base" then
    error("adapters: freeze must be 'base' or false, got " .. tostring(o.freeze), 3)
  end
  nn.Adapter(1, { bottleneck = 1, activation = o.activation, init = o.init }) -- checks them
  return setmetatable({ o = o, options = { bottleneck = o.bottleneck, activation = o.activation, init = o.init,
    freeze = o.freeze or "none", after = type(o.after) == "string" and o.after or nil }, sets = {}, order = {} },
    Adapters)
end

function Adapters:before_run(ctx)
  self.model, self.switches, self.sets, self.order = ctx.model, nil, {}, {}
end

-- The output width of each place, from one forward on two samples of the task.
local function widths(model, places, task)
  local x = task.test:chunks { batch = 2, flat = true }:next()
  local was = model.training
  model:evaluate()
  model:forward(x)
  if was ~= false then model:train() end
  local out = {}
  for i, p in ipairs(places) do
    local y = p.module.output
    out[i] = y:size(y:dim())
  end
  return out
end

function Adapters:before_task(ctx)
  local model, t, o = ctx.model, ctx.t, self.o
  if not self.switches then
    local ok, places = pcall(model.find, model, o.after)
    if not ok then error("adapters: " .. tostring(places), 0) end
    self.dims = widths(model, places, ctx.task)
    local at = {}
    for _, p in ipairs(places) do at[p.module] = true end
    self.switches = model:insert_after(function(m) return at[m] end, function() return nn.Switch() end)
  end
  if not self.sets[t] then
    local ads = {}
    for i, sw in ipairs(self.switches) do
      ads[i] = sw:add(t, nn.Adapter(self.dims[i], { bottleneck = o.bottleneck, activation = o.activation,
        init = o.init }))
    end
    local gname = "adapters.task" .. t
    model:new_group(gname, ads, { generator = ctx.rng })
    self.sets[t], self.order[#self.order + 1] = gname, t
    iso.note(ctx, t, gname)
  end
  for _, k in ipairs(self.order) do
    if k == t then model:unfreeze(self.sets[k]) else model:freeze(self.sets[k]) end
  end
  if o.freeze == "base" then model:freeze("base") end
  self:select(t)
end

--- Selects task key's adapters in every place (nil: none).
function Adapters:select(key)
  if key ~= nil and not self.sets[key] then
    error(string.format("adapters: no adapters for task %s", tostring(key)), 2)
  end
  for _, sw in ipairs(self.switches or {}) do sw:select(key) end
  return self
end

function Adapters:before_eval(ctx)
  if not self.switches then return end
  local j = ctx.eval_task
  self:select(self.sets[j] and j or nil)
end

function Adapters:state()
  local names = {}
  for i, k in ipairs(self.order) do names[i] = self.sets[k] end
  return iso.group_state(self.model, names)
end

return new
