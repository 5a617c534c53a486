--- Progressive networks (Rusu et al. 2016) on a model holding an
-- nn.Progressive: every task the strategy acts in after the first gets a
-- new column (its layers and its laterals from every earlier column) in a
-- group "column<t>", all other columns frozen; task 1 uses column 1 (in the
-- base group). before_task and before_eval select the task's column (a
-- task without one: that of the latest task before it), so earlier tasks'
-- outputs never change.
--
--   local model = engram.nn.Sequential(engram.nn.Progressive{784, 100, 100, 10})
--   L:use(S.progressive{})
--
-- s:state(): name -> tensor of every column ("column2.1.2.1.weight", ...; column 1 is "base").
local strategies = require("engram.strategies")
local iso = require("engram.strategies.isolation")

-- Resumable (engram.checkpoint): a resumed run re-creates the columns task
-- by task (rebuild_task), their values come with the model's parameters and
-- which columns are frozen with the model's freezing.
local Prog = iso.resumable(iso.class("progressive"))

local function new(opts)
  strategies.options("progressive", opts, {}, 3)
  return setmetatable({ options = {}, cols = {} }, Prog)
end

function Prog:before_run(ctx)
  self.model, self.cols, self.names, self.order = ctx.model, { 1 }, {}, {}
  local ok, found = pcall(ctx.model.find, ctx.model, function(m) return m.__name == "Progressive" end)
  if not ok then found = {} end
  if #found ~= 1 then
    error(string.format("progressive: the model must hold one nn.Progressive, it holds %d", #found), 0)
  end
  self.p = found[1].module
end

-- The column of task t (task 1: column 1): its own, else that of the latest task before it.
local function column_for(self, t)
  for k = t, 1, -1 do
    if self.cols[k] then return self.cols[k] end
  end
  return 1
end

function Prog:before_task(ctx)
  local model, t, p = ctx.model, ctx.t, self.p
  if not self.cols[t] then
    local c = p:add_column()
    local gname = "column" .. t
    model:new_group(gname, { c }, { generator = ctx.rng })
    self.cols[t] = p:columns()
    self.names[#self.names + 1] = gname
    self.order[#self.order + 1] = t
    iso.note(ctx, t, gname)
  end
  local mine = p.modules[self.cols[t]]
  for k = 1, p:columns() do
    local c = p.modules[k]
    if c ~= mine then model:freeze_layers(function(m) return m == c end) end
  end
  model:unfreeze_layers(function(m) return m == mine end)
  p:select(self.cols[t])
end

function Prog:before_eval(ctx)
  self.p:select(column_for(self, ctx.eval_task))
end

function Prog:state()
  local names = { "base" }
  for _, n in ipairs(self.names) do names[#names + 1] = n end
  return iso.group_state(self.model, names)
end

return new
