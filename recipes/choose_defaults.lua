-- choose_defaults.lua — how engram.strategies.defaults was chosen: for each
-- scenario kind and each regularisation strategy, the strength (EWC's and
-- online EWC's λ, SI's c, MAS's λ, LwF's α) with the best average accuracy
-- after the last task on VALIDATION data (10% of each task's training part
-- held out, engram.learner.select); the test sets are never looked at.
--
--   domain  Permuted Fashion-MNIST, 5 tasks (same 10 labels, a pixel permutation each)
--   task    Split Fashion-MNIST task-IL, 5 tasks of 2 classes (logits masked to the task's)
--   class   Split Fashion-MNIST class-IL, 5 tasks of 2 classes
--
-- mlp{784, 400, 400, 10}, Adam lr 0.001, batch 128, 2 epochs per task, seed 1,
-- and the strategies' other options at their defaults (EWC: empirical Fisher
-- over 1000 samples, online γ = 1; SI ξ = 0.1; MAS 1000 samples; LwF T = 2).
--
--   build/engram recipes/choose_defaults.lua [--scenario all|domain|task|class]
--       [--only ewc,online-ewc,si,mas,lwf] [--ewc 1,10,100,1000,10000,100000,1000000]
--       [--si 0.01,0.1,1,10,100,1000,10000] [--mas 0.001,0.01,0.1,1,10,100,1000]
--       [--lwf 0.1,0.25,0.5,1,2,4,8]
--       [--epochs 2] [--samples 60000] [--validation 0.1] [--out choice.json]
--
-- Takes about 17 minutes on 2 cores (108 runs: the 36 permuted ones ~20 s
-- each, the split ones ~5 s; --scenario task alone about 3 minutes). The
-- grids go one step past every value chosen on the first, narrower grid
-- (ties go to the first, smallest value). It prints, per kind, every candidate's
-- validation ACC and forgetting, the choice, and the Lua table that
-- lua/engram/strategies/defaults.lua ships; docs/defaults.md records the
-- output of the run that chose the shipped values. --out writes every
-- candidate's (validation) results document into one file.
local engram = require("engram")
local S = engram.strategies

local opts = engram.options.parse(arg or {}, {
  name = "choose_defaults",
  description = "Choose each regularisation strategy's strength per scenario kind on validation splits.",
  options = {
    { "ewc", { "1", "10", "100", "1000", "10000", "100000", "1000000" }, "EWC's and online EWC's lambda grid" },
    { "si", { "0.01", "0.1", "1", "10", "100", "1000", "10000" }, "SI's c grid" },
    { "mas", { "0.001", "0.01", "0.1", "1", "10", "100", "1000" }, "MAS's lambda grid" },
    { "lwf", { "0.1", "0.25", "0.5", "1", "2", "4", "8" }, "LwF's alpha grid" },
    { "validation", 0.1, "share of each task's training data held out to choose on" },
    { "samples", 60000, "permuted: training images per task" },
  },
  defaults = { batch = 128, epochs = 2, lr = 0.001, threads = 2, scenario = "all" },
  runs = { "ewc", "online-ewc", "si", "mas", "lwf" },
})
if opts.threads then engram.core.set_threads(math.tointeger(opts.threads)) end
engram.seed(opts.seed)
local kinds = opts.scenario == "all" and { "domain", "task", "class" } or { opts.scenario }
for _, k in ipairs(kinds) do
  if k ~= "domain" and k ~= "task" and k ~= "class" then
    opts.fail("--scenario must be all, domain, task or class, got " .. tostring(k))
  end
end
if opts.validation <= 0 or opts.validation >= 1 then
  opts.fail("--validation must be a share between 0 and 1, got " .. opts.validation)
end

local function grid(key)
  local out = {}
  for i, v in ipairs(opts[key]) do
    out[i] = tonumber(v)
    if not out[i] or out[i] < 0 then opts.fail("--" .. key .. " takes numbers >= 0, got '" .. v .. "'") end
  end
  return out
end

-- strategy name -> the option that holds its strength, its grid, a maker
local STRATEGIES = {
  { name = "ewc", key = "lambda", grid = grid("ewc"), make = function(v) return S.ewc { lambda = v } end },
  { name = "online-ewc", key = "lambda", grid = grid("ewc"),
    make = function(v) return S.ewc { lambda = v, online = true } end },
  { name = "si", key = "c", grid = grid("si"), make = function(v) return S.si { c = v } end },
  { name = "mas", key = "lambda", grid = grid("mas"), make = function(v) return S.mas { lambda = v } end },
  { name = "lwf", key = "alpha", grid = grid("lwf"), make = function(v) return S.lwf { alpha = v } end },
}

local train, test = engram.data.fashion_mnist { normalize = true }
local T = opts.tasks or 5
local function scenario(kind)
  if kind == "domain" then
    return engram.scenarios.permuted(train, test, { tasks = T, samples = opts.samples, seed = opts.seed,
      validation = opts.validation })
  end
  return engram.scenarios.split(train, test, { tasks = T, scenario = kind, seed = opts.seed,
    validation = opts.validation })
end

local common = {
  model = function() return engram.nn.mlp { 784, 400, 400, 10 }:build { seed = opts.seed } end,
  opts = { epochs = opts.epochs, batch = opts.batch, lr = opts.lr, seed = opts.seed, quiet = opts.quiet,
    drift_layer = false },
}

local t0 = engram.core.clock()
local chosen, docs, lines = {}, {}, {}
local function say(s) print(s); lines[#lines + 1] = s end
for _, kind in ipairs(kinds) do
  local scen = scenario(kind)
  for _, st in ipairs(STRATEGIES) do
    if opts.selected(st.name) then
      local cands = {}
      for i, v in ipairs(st.grid) do
        cands[i] = { name = string.format("%s-%s-%s%g", st.name, kind, st.key, v), value = v,
          strategies = function() return { st.make(v) } end }
      end
      local best, scores, these = engram.learner.select(scen, cands, common)
      for _, d in ipairs(these) do docs[#docs + 1] = d end
      chosen[st.name] = chosen[st.name] or {}
      chosen[st.name][kind] = { key = st.key, value = best.value, val_acc = nil }
      say(string.format("%s-IL, %s: %s chosen on validation (ACC / forgetting after the last task, %%):",
        kind, st.name, st.key))
      for i, sc in ipairs(scores) do
        if cands[i] == best then chosen[st.name][kind].val_acc = sc.avg_acc end
        say(string.format("  %s %-8g ACC %5.1f  forgetting %5.1f%s", st.key, st.grid[i], 100 * sc.avg_acc,
          100 * sc.forgetting, cands[i] == best and "   <- chosen" or ""))
      end
    end
  end
end

say("")
say("-- the table for lua/engram/strategies/defaults.lua (validation ACC in comments)")
for _, st in ipairs(STRATEGIES) do
  local c = chosen[st.name]
  if c then
    local parts = {}
    for _, kind in ipairs(kinds) do
      if c[kind] then
        parts[#parts + 1] = string.format("%s = { %s = %g }, -- %.1f%%", kind, c[kind].key, c[kind].value,
          100 * c[kind].val_acc)
      end
    end
    say(string.format('["%s"] = {', st.name))
    for _, p in ipairs(parts) do say("  " .. p) end
    say("},")
  end
end
say(string.format("(%d runs, %.0f s)", #docs, engram.core.clock() - t0))
if opts.out then engram.results.save(opts.out, docs) end
