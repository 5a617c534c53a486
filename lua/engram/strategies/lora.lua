--- LoRA per task (Hu et al. 2021): the chosen Linear layers are wrapped in
-- nn.LoRA once; every task the strategy acts in gets a set of factors of
-- its own, in one parameter group "lora.task<t>" over all wrapped layers,
-- while the wrapped layers' base weights (freeze = "wrapped", the default),
-- the whole base group (freeze = "base") or nothing (freeze = false) and
-- the other tasks' sets are frozen. before_eval activates the evaluated
-- task's set (none: the base model alone), so a task's outputs after later
-- tasks are those right after it was learnt, bit for bit.
--
--   -- task 1 trains the model, tasks 2.. a rank-8 set each on the hidden layers
--   L:use(S.lora{rank = 8, layers = {"1", "3"}}, {tasks = "2-"})
--
-- Options: rank [8], alpha [rank] (scale alpha/rank), layers ["Linear"]
-- (a selector, as in model:wrap), freeze ["wrapped"], fold [false]: after
-- each task its set is added into the base weights for good (each task still
-- changes the wrapped layers by rank-r factors only), and evaluation uses the
-- base alone — no task identity needed, for class- and domain-IL; without
-- fold, evaluating task j activates task j's set, which needs task identity
-- at test time (task-IL, or domain-IL with the task known).
-- Methods: s:activate(t), s:fold(t) (fold task t's set now: below),
-- s:merge(t) / s:unmerge(), s:combine(name, tasks,
-- weights) (a new set "lora.<name>", the exact weighted sum of the tasks'
-- sets), s:state() (name -> tensor: "lora.task2.1.2.A"), s:state_bytes().
local nn = require("engram.nn")
local strategies = require("engram.strategies")
local iso = require("engram.strategies.isolation")

local Lora = iso.resumable(iso.class("lora"))

local FREEZE = { wrapped = true, base = true }

local function new(opts)
  local o = strategies.options("lora", opts, { rank = 8, alpha = false, layers = "Linear", freeze = "wrapped",
    fold = false }, 3)
  if type(o.fold) ~= "boolean" then error("lora: fold must be true or false, got " .. tostring(o.fold), 3) end
  if math.type(o.rank) ~= "integer" or o.rank < 1 then
    error("lora: rank must be a positive integer, got " .. tostring(o.rank), 3)
  end
  if o.alpha and (type(o.alpha) ~= "number" or o.alpha <= 0) then
    error("lora: alpha must be a positive number, got " .. tostring(o.alpha), 3)
  end
  if o.freeze and not FREEZE[o.freeze] then
    error("lora: freeze must be 'wrapped', 'base' or false, got " .. tostring(o.freeze), 3)
  end
  local s = setmetatable({ options = { rank = o.rank, alpha = o.alpha or o.rank, freeze = o.freeze or "none",
    layers = type(o.layers) == "string" and o.layers or nil, fold = o.fold or nil }, o = o, sets = {}, order = {} },
    Lora)
  return s
end

function Lora:before_run(ctx)
  self.model, self.ws, self.sets, self.order, self._folded = ctx.model, nil, {}, {}, {}
end

function Lora:_wrap(model)
  if self.ws then return end
  local o = self.o
  local ok, ws = pcall(model.wrap, model, o.layers, function(l)
    return nn.LoRA(l, { rank = o.rank, alpha = o.alpha })
  end)
  if not ok then error("lora: " .. tostring(ws), 0) end
  self.ws, self.model = ws, model
  self._inner = {}
  for _, w in ipairs(ws) do self._inner[w.modules[1]] = true end
end

--- Adds a set for key across the wrapped layers in a group "lora.<key>"
-- (tasks: "lora.task<t>"); returns the group's name.
function Lora:_add(key, gname, set_opts, gen)
  local fs = {}
  for i, w in ipairs(self.ws) do fs[i] = w:add_set(key, set_opts) end
  self.model:new_group(gname, fs, { generator = gen })
  self.sets[key] = gname
  self.order[#self.order + 1] = key
  return gname
end

function Lora:before_task(ctx)
  local model, t = ctx.model, ctx.t
  self:_wrap(model)
  if not self.sets[t] then
    self:_add(t, "lora.task" .. t, nil, ctx.rng)
    iso.note(ctx, t, "lora.task" .. t)
  end
  for _, k in ipairs(self.order) do
    if k == t then model:unfreeze(self.sets[k]) else model:freeze(self.sets[k]) end
  end
  if self.o.freeze == "wrapped" then
    local inner = self._inner
    model:freeze_layers(function(m) return inner[m] end)
  elseif self.o.freeze == "base" then
    model:freeze("base")
  end
  self:activate(t)
end

--- Activates the set of key in every wrapped layer (nil: the base alone).
function Lora:activate(key)
  if not self.ws then error("lora: no layers wrapped yet (the strategy acts from its first task)", 2) end
  if key ~= nil and not self.sets[key] then
    local ks = {}
    for i, k in ipairs(self.order) do ks[i] = tostring(k) end
    error(string.format("lora: no set for %s (sets: %s)", tostring(key), #ks > 0 and table.concat(ks, ", ") or "none"),
      2)
  end
  for _, w in ipairs(self.ws) do w:activate(key) end
  return self
end

function Lora:before_eval(ctx)
  if not self.ws then return end
  if self.o.fold then return self:activate(nil) end -- the base holds every folded set
  local j = ctx.eval_task
  self:activate(self.sets[j] and j or nil)
end

--- s:fold(t): task t's set goes into the base weights now (nn.LoRA:fold),
-- its factors are frozen and the wrapped layers' base weights trainable
-- again, so a later phase of the task (a consolidation, say) trains the
-- whole layers; after_task then has nothing left to fold. From a plan:
--   hooks = { before_phase = function(ctx) if ctx.phase.name == "sleep" then lora:fold(ctx.t) end end }
function Lora:fold(t)
  if not self.ws or not self.sets[t] then
    error(string.format("lora: fold: no set for task %s", tostring(t)), 2)
  end
  if self._folded[t] then return self end
  for _, w in ipairs(self.ws) do w:fold(t) end
  self._folded[t] = true
  self:activate(nil)
  self.model:freeze(self.sets[t])
  if self.o.freeze == "wrapped" then
    local inner = self._inner
    self.model:unfreeze_layers(function(m) return inner[m] end)
  elseif self.o.freeze == "base" then
    self.model:unfreeze("base")
  end
  return self
end

-- fold = true: the set of the task just learnt goes into the base weights
-- (nn.LoRA:fold), so the model needs no task identity at test time.
function Lora:after_task(ctx)
  iso.measure(ctx)
  local t = ctx.t
  if self.o.fold and self.ws and self.sets[t] and not self._folded[t] then
    for _, w in ipairs(self.ws) do w:fold(t) end
    self._folded[t] = true
    self:activate(nil)
  end
end

--- Merges key's set into the base weights of every wrapped layer / undoes it (bit-identical).
function Lora:merge(key)
  self:activate(key)
  for _, w in ipairs(self.ws) do w:merge(key) end
  return self
end
function Lora:unmerge()
  for _, w in ipairs(self.ws or {}) do w:unmerge() end
  return self
end

--- A new set "lora.<name>" = sum_i weights[i] * (task keys[i]'s set), exactly
-- (rank: the sum of theirs). Returns the group's name; activate it with s:activate(name).
function Lora:combine(name, keys, weights)
  if type(name) ~= "string" or name == "" then error("lora:combine: the set needs a name", 2) end
  if not self.ws then error("lora:combine: no sets yet", 2) end
  if type(keys) ~= "table" or type(weights) ~= "table" or #keys == 0 or #keys ~= #weights then
    error("lora:combine: expected a list of tasks and a list of as many weights", 2)
  end
  for _, k in ipairs(keys) do
    if not self.sets[k] then error(string.format("lora:combine: no set for %s", tostring(k)), 2) end
  end
  local rank = 0
  for _, k in ipairs(keys) do rank = rank + self.ws[1].sets[k].rank end
  local gname = self:_add(name, "lora." .. name, { rank = rank, scale = 1 })
  for _, w in ipairs(self.ws) do w:fill_weighted(name, keys, weights) end
  self.model:freeze(gname)
  return gname
end

--- name -> tensor for every set: "lora.task2.1.2.A" [rank, in], "...B" [out, rank].
function Lora:state()
  local names = {}
  for i, k in ipairs(self.order) do names[i] = self.sets[k] end
  return iso.group_state(self.model, names)
end

return new
