--- engram: continual learning with a C core and Lua recipes.
--
--   local engram = require "engram"
--   local x = engram.randn(4, 3)
--   local model = engram.nn.mlp{784, 400, 400, 10}
--
-- The tensor functions of the C module (engram.core) are re-exported here.
-- Submodules (nn, loss, optim, data, cl, scenarios, learner, strategies,
-- metrics, results, options, report, json, ...) load on first use, so a
-- recipe pays only for what it touches.
local core = require("engram.core")

local engram = {
  core = core,
  _VERSION = "engram " .. (core.version or "?"),
}

for k, v in pairs(core) do
  if engram[k] == nil then engram[k] = v end
end

-- Submodules that `engram.<name>` loads on first access.
local lazy = {
  nn = "engram.nn", loss = "engram.loss", optim = "engram.optim", data = "engram.data",
  cl = "engram.cl", scenarios = "engram.scenarios", strategies = "engram.strategies",
  schedule = "engram.schedule", metrics = "engram.metrics", results = "engram.results",
  options = "engram.options", report = "engram.report", json = "engram.json",
  progress = "engram.progress", io = "engram.io", image = "engram.image", recipe = "engram.recipe",
  plan = "engram.plan", text = "engram.text", lm = "engram.lm",
}

setmetatable(engram, {
  __index = function(t, k)
    local name = lazy[k]
    if name then
      local m = require(name)
      rawset(t, k, m)
      return m
    end
    if k == "learner" then
      -- engram.learner(model, opts) and engram.learner.new(model, opts)
      local m = require("engram.learner")
      rawset(t, k, m)
      return m
    end
    return nil
  end,
})

return engram
