--- engram.runs: several learner runs at once, installed into engram.learner
-- as learner.with_naive, learner.compare and learner.select (the learner's
-- own file holds one run).
local M = {}

--- Adds with_naive, compare and select to the learner module table.
function M.install(learner)
  --- CER for runs compared with a naive one: fills doc.cer (and doc.naive) in
  -- every document from the document named `naive_name` (default "naive").
  function learner.with_naive(docs, naive_name)
    if type(docs) ~= "table" then error("with_naive: expected an array of results documents, got " .. type(docs), 2) end
    for i, d in ipairs(docs) do
      if type(d) ~= "table" then error(string.format("with_naive: document %d is a %s, not a table", i, type(d)), 2) end
    end
    naive_name = naive_name or "naive"
    local naive
    for _, d in ipairs(docs) do if d.name == naive_name then naive = d end end
    if not naive then return docs end
    local metrics = require("engram.metrics")
    for _, d in ipairs(docs) do
      d.naive = { acc = naive.avg_acc, train_seconds = naive.train_seconds, name = naive.name }
      local cer, why = metrics.cer(d.avg_acc, naive.avg_acc, d.train_seconds, naive.train_seconds)
      d.cer = cer
      if d.undefined then d.undefined.cer = cer == nil and why or nil end
    end
    return docs
  end

  --- Runs several configurations on one scenario; returns their documents in
  -- order, with CER filled against the run named "naive" when there is one.
  --   runs: { {name = "replay", strategies = function() return {S.replay{}} end,
  --            opts = {...}?, model = function() ... end?}, ... }
  --   common: model (function() -> a fresh model; required unless every run
  --           has one), opts (learner options shared by the runs), only (a set
  --           of run names to keep; nil or empty: all), scenario (per-run
  --           override: a function(run) -> scenario).
  function learner.compare(scenario, runs, common)
    common = common or {}
    if type(runs) ~= "table" or #runs == 0 then error("compare: expected a non-empty list of runs", 2) end
    local docs = {}
    for i, r in ipairs(runs) do
      if type(r) ~= "table" or type(r.name) ~= "string" then
        error(string.format("compare: run %d needs a name", i), 2)
      end
      local only = common.only
      if not (only and next(only) ~= nil and not only[r.name]) then
        local make = r.model or common.model
        if type(make) ~= "function" then error("compare: run '" .. r.name .. "' has no model function", 2) end
        local o = {}
        for k, v in pairs(common.opts or {}) do o[k] = v end
        for k, v in pairs(r.opts or {}) do o[k] = v end
        o.name = r.name
        local L = learner.new(make(), o)
        local list = r.strategies
        if type(list) == "function" then list = list() end
        for _, s in ipairs(list or {}) do L:use(s) end
        local scen = r.scenario or scenario
        if type(scen) == "function" then scen = scen(r) end
        docs[#docs + 1] = L:run(scen)
      end
    end
    return learner.with_naive(docs)
  end

  --- Chooses among candidate settings on validation data, never on the test
  -- sets: runs every candidate (as in compare: {name=, strategies=, opts=,
  -- model=}) with eval_on = "val" and returns the best by average accuracy
  -- after the last task, then the list of {name=, avg_acc=, bwt=, forgetting=}
  -- in the candidates' order, then the documents (whose accuracies are
  -- validation accuracies). Every task of the scenario needs a validation part
  -- (scenario option validation = share).
  function learner.select(scenario, candidates, common)
    if type(candidates) ~= "table" or #candidates == 0 then
      error("select: expected a non-empty list of candidates", 2)
    end
    local c = {}
    for k, v in pairs(common or {}) do c[k] = v end
    c.opts = {}
    for k, v in pairs((common or {}).opts or {}) do c.opts[k] = v end
    c.opts.eval_on = "val"
    c.only = nil
    for t, task in ipairs(type(scenario) == "table" and scenario.tasks or {}) do
      if not task.val or #task.val == 0 then
        error(string.format("select: task %d has no validation part (give the scenario a validation share, " ..
          "e.g. validation = 0.1)", t), 2)
      end
    end
    local ok, docs = pcall(learner.compare, scenario, candidates, c)
    if not ok then error((tostring(docs):gsub("^compare:", "select:")), 2) end
    local best, scores = nil, {}
    for i, d in ipairs(docs) do
      scores[i] = { name = d.name, avg_acc = d.avg_acc, bwt = d.bwt, forgetting = d.forgetting }
      if not best or d.avg_acc > best.doc.avg_acc then best = { candidate = candidates[i], doc = d } end
    end
    return best.candidate, scores, docs
  end
end

return M
