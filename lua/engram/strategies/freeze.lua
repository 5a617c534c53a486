--- Freezing: in every task it acts in, the strategy freezes the layers
-- matched by `layers` (a selector: "1", "encoder.2", "Linear", a list),
-- the parameters whose names match `params` (a Lua pattern: "bias$",
-- "base%.1%."), and the groups named in `groups`; with unfreeze = true it
-- unfreezes them instead. Freezing is kept after the task.
--
--   L:use(S.freeze{layers = {"1", "3"}}, {tasks = "2-"})   -- from task 2 on, train the head only
--
-- s:state(): the element masks it made, "mask.<group>" -> [numel] (1 train, 0 keep);
-- checkpoints restore them with the model's freezing (load_state checks the names).
local strategies = require("engram.strategies")
local iso = require("engram.strategies.isolation")

local Freeze = iso.class("freeze")

local function new(opts)
  local o = strategies.options("freeze", opts, { layers = false, params = false, groups = false, unfreeze = false }, 3)
  if not o.layers and not o.params and not o.groups then
    error("freeze: give layers (a selector), params (a name pattern) or groups (a list of group names)", 3)
  end
  if o.params and type(o.params) ~= "string" then error("freeze: params must be a Lua pattern string", 3) end
  if o.groups and type(o.groups) ~= "table" then error("freeze: groups must be a list of group names", 3) end
  return setmetatable({ o = o, options = { layers = type(o.layers) == "string" and o.layers or nil,
    params = o.params or nil, unfreeze = o.unfreeze }, }, Freeze)
end

function Freeze:before_run(ctx) self.model = ctx.model end

function Freeze:before_task(ctx)
  local m, o = ctx.model, self.o
  local ok, err = pcall(function()
    if o.layers then
      if o.unfreeze then m:unfreeze_layers(o.layers) else m:freeze_layers(o.layers) end
    end
    if o.params then
      if o.unfreeze then m:unfreeze_params(o.params) else m:freeze_params(o.params) end
    end
    for _, g in ipairs(o.groups or {}) do
      if o.unfreeze then m:unfreeze(g) else m:freeze(g) end
    end
  end)
  if not ok then error("freeze: " .. tostring(err), 0) end
end

function Freeze:state()
  local out = {}
  for _, g in ipairs(self.model and self.model:groups() or {}) do
    if g.mask then out["mask." .. g.name] = g.mask end
  end
  return out
end

-- A checkpoint restores every group's freezing with the model (masks and
-- frozen groups, engram.checkpoint), so that a resumed run keeps what this
-- strategy froze in tasks before it; here only the names are checked.
function Freeze:load_state(st)
  local groups = {}
  for _, g in ipairs(self.model:groups()) do groups[g.name] = true end
  for name in pairs(st) do
    local g = name:match("^mask%.(.+)$")
    if not g or not groups[g] then error("freeze: load_state: unknown tensor '" .. name .. "'", 0) end
  end
end

return new
