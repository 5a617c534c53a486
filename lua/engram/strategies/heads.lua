--- Per-task output heads (task-IL): the output layer (default: the last
-- Linear of the model) is put in an nn.Switch once, as task 1's head; every
-- later task the strategy acts in gets a head of its own, a Linear of the
-- same shape in a group "heads.task<t>" (init = "fresh": initialised like
-- a Linear; "copy": a copy of head 1), while the other heads are frozen.
-- before_task and before_eval select the task's head (a task without one
-- uses head 1). Output units stay the scenario's, so the learner's task-IL
-- masks apply as usual.
--
--   L:use(S.heads{}):use(S.lora{layers = {"1", "3"}}, {tasks = "2-"})
--
-- Options: layer [the last Linear] (a path), init ["fresh"].
-- s:state(): name -> tensor ("heads.task2.5.2.weight", ...).
local engram_core = require("engram.core")
local nn = require("engram.nn")
local strategies = require("engram.strategies")
local iso = require("engram.strategies.isolation")

local Heads = iso.resumable(iso.class("heads"))

local function new(opts)
  local o = strategies.options("heads", opts, { layer = false, init = "fresh" }, 3)
  if o.init ~= "fresh" and o.init ~= "copy" then
    error("heads: init must be 'fresh' or 'copy', got " .. tostring(o.init), 3)
  end
  if o.layer and type(o.layer) ~= "string" then error("heads: layer must be a path like \"5\"", 3) end
  return setmetatable({ o = o, options = { init = o.init, layer = o.layer or nil }, sets = {}, order = {} }, Heads)
end

function Heads:before_run(ctx)
  self.model, self.switch, self.sets, self.order = ctx.model, nil, {}, {}
end

function Heads:_install(model)
  local sel = self.o.layer
  if not sel then
    local lin = model:find("Linear")
    sel = lin[#lin].path
  end
  local ok, ws = pcall(model.wrap, model, sel, function(l)
    if l.__name ~= "Linear" then error("heads: the output layer must be a Linear, got " .. tostring(l), 0) end
    local sw = nn.Switch { passthrough = false }
    sw:add(1, l)
    return sw
  end, { again = true })
  if not ok then error("heads: " .. tostring(ws), 0) end
  self.switch = ws[1]
  self.head1 = self.switch.modules[1]
  self.switch:route(function() return self:_route_keys() end)
  self.sets[1], self.order[1] = false, 1 -- head 1 lives in its original group
end

function Heads:before_task(ctx)
  self._ctx = ctx
  local model, t = ctx.model, ctx.t
  if not self.switch then self:_install(model) end
  if self.sets[t] == nil then
    local h1 = self.head1
    local h = self.switch:add(t, nn.Linear(h1.in_features, h1.out_features, { bias = h1.bias ~= nil }))
    local gname = "heads.task" .. t
    model:new_group(gname, { h }, { generator = ctx.rng })
    if self.o.init == "copy" then
      h.weight:copy_(h1.weight)
      if h.bias then h.bias:copy_(h1.bias) end
    end
    self.sets[t], self.order[#self.order + 1] = gname, t
    iso.note(ctx, t, gname)
  end
  for _, k in ipairs(self.order) do
    local g = self.sets[k]
    if g then
      if k == t then model:unfreeze(g) else model:freeze(g) end
    end
  end
  -- task k (0-based k-1) -> its head's key, head 1 for a task without one
  local map = self._keymap
  if not map or map:numel() < ctx.T then map = engram_core.zeros(ctx.T); self._keymap = map end
  for k = 1, map:numel() do map:set(k, self.sets[k] ~= nil and k or 1) end
  local h1 = self.head1
  if t == 1 then model:unfreeze_layers(function(m) return m == h1 end)
  else model:freeze_layers(function(m) return m == h1 end) end
  self.switch:select(t)
end

-- A batch of several tasks (replay's ctx.sample_tasks, whatever the order
-- the strategies were added in): in training, each sample goes through its
-- own task's head (a task without one through head 1).
function Heads:_route_keys()
  local ctx = self._ctx
  local st = ctx and ctx.sample_tasks
  if not st then return nil end
  local keys = self._keys
  if not keys or keys:numel() ~= st:numel() then
    keys = st:clone()
    self._keys = keys
  end
  -- 0-based task -> its head's key, in one C call (the map changes only when
  -- a head is added: before_task)
  return keys:copy_(st):relabel_(self._keymap)
end

function Heads:select(key)
  if not self.switch then error("heads: no heads yet (the strategy acts from its first task)", 2) end
  self.switch:select(self.sets[key] ~= nil and key or 1)
  return self
end

function Heads:before_eval(ctx)
  if self.switch then self:select(ctx.eval_task) end
end

function Heads:state()
  local names = {}
  for _, k in ipairs(self.order) do
    if self.sets[k] then names[#names + 1] = self.sets[k] end
  end
  return iso.group_state(self.model, names)
end

return new
