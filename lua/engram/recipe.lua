--- engram.recipe: the body recipes share. versus() runs one strategy against
-- naive fine-tuning and joint training on Permuted Fashion-MNIST (domain-IL)
-- and Split Fashion-MNIST task-IL, prints the runs, the comparison table and
-- one line per scenario, and saves the results (--out).
--
--   require("engram.recipe").versus {
--     name = "mas", label = "MAS",
--     strength = "lambda",                       -- the option printed with the result
--     options = { {"lambda", nil, "MAS's strength", type = "number"}, ... },
--     make = function(opts) return engram.strategies.mas{lambda = opts.lambda} end,
--     kinds = {"domain", "task"},                -- the scenarios, in order
--   }
--
-- The command line takes engram.options' common options (--seed --epochs
-- --batch --lr --tasks --out --log --quiet --only --threads), --scenario
-- all|domain|task, --samples (permuted: training images per task) and the
-- recipe's own options. mlp{784, 400, 400, 10}, Adam, batch 128, 2 epochs
-- per task by default. Returns the results documents.
local recipe = {}

function recipe.versus(spec)
  local engram = require("engram")
  local S = engram.strategies
  local name, kinds_all = spec.name, spec.kinds or { "domain", "task" }
  local options = {}
  for _, o in ipairs(spec.options or {}) do options[#options + 1] = o end
  options[#options + 1] = { "samples", 60000, "permuted: training images per task" }
  local runs = {}
  for _, kind in ipairs(kinds_all) do
    for _, r in ipairs({ "naive", name, "joint" }) do runs[#runs + 1] = r .. "-" .. kind end
  end
  local opts = engram.options.parse(spec.arg or arg or {}, {
    name = name,
    description = string.format("%s vs naive and joint on %s.", spec.label or name,
      table.concat((function()
        local t = {}
        for i, k in ipairs(kinds_all) do
          t[i] = k == "domain" and "Permuted Fashion-MNIST (domain-IL)" or "Split Fashion-MNIST (task-IL)"
        end
        return t
      end)(), " and ")),
    options = options,
    defaults = { batch = 128, epochs = 2, lr = 0.001, threads = 2, scenario = "all" },
    runs = runs,
  })
  if opts.threads then engram.core.set_threads(math.tointeger(opts.threads)) end
  engram.seed(opts.seed)
  local kinds = opts.scenario == "all" and kinds_all or ({ domain = { "domain" }, task = { "task" } })[opts.scenario]
  if not kinds then opts.fail("--scenario must be all, domain or task, got " .. tostring(opts.scenario)) end

  local train, test = engram.data.fashion_mnist { normalize = true }
  local T = opts.tasks or 5
  local function scenario(kind)
    if kind == "domain" then
      return engram.scenarios.permuted(train, test, { tasks = T, samples = opts.samples, seed = opts.seed })
    end
    return engram.scenarios.split(train, test, { tasks = T, scenario = kind, seed = opts.seed })
  end

  local log = opts.log and engram.json.lines(opts.log, { mode = "w" }) or false
  local docs = {}
  for _, kind in ipairs(kinds) do
    local these = engram.learner.compare(scenario(kind), {
      { name = "naive-" .. kind, strategies = function() return { S.naive() } end },
      { name = name .. "-" .. kind, strategies = function() return { spec.make(opts, kind) } end },
      { name = "joint-" .. kind, strategies = function() return { S.joint() } end },
    }, {
      model = function() return engram.nn.mlp { 784, 400, 400, 10 }:build { seed = opts.seed } end,
      opts = { epochs = opts.epochs, batch = opts.batch, lr = opts.lr, seed = opts.seed, quiet = opts.quiet,
        log = log },
      only = opts.only_set,
    })
    engram.learner.with_naive(these, "naive-" .. kind)
    for _, d in ipairs(these) do docs[#docs + 1] = d end
  end
  if log then log:close() end

  if not opts.quiet then
    for _, d in ipairs(docs) do engram.results.print(d); print() end
  end
  io.write(engram.results.compare_table(docs))
  local by = {}
  for _, d in ipairs(docs) do by[d.name] = d end
  for _, kind in ipairs(kinds) do
    local a, b = by[name .. "-" .. kind], by["naive-" .. kind]
    if a and b then
      local key = spec.strength
      local used = key and a.strategies[1].options[key]
      print(string.format("%s-%s%s: ACC %+.1f points over naive, forgetting %.1f -> %.1f points", name, kind,
        used and string.format(" (%s %g)", key, used) or "", 100 * (a.avg_acc - b.avg_acc), 100 * b.forgetting,
        100 * a.forgetting))
    end
  end
  if opts.out then engram.results.save(opts.out, #docs == 1 and docs[1] or docs) end
  return docs
end

--- The body of a replay-family recipe: runs on Split Fashion-MNIST
-- (class-IL by default; --scenario), mlp{784,400,400,C}, Adam, batch 128,
-- --iterations steps per task (2,000; 0: --epochs instead), prints each run
-- and the comparison table, saves --out. spec: name, description, options
-- (the recipe's own, beside iterations), runs = {{name, make = function(opts)
-- -> {strategies}}, ...}. Returns the documents and the options.
function recipe.split_class(spec)
  local engram = require("engram")
  local options, names = {}, {}
  for _, o in ipairs(spec.options or {}) do options[#options + 1] = o end
  options[#options + 1] = { "iterations", 2000, "steps per task (0: --epochs instead)" }
  for i, r in ipairs(spec.runs) do names[i] = r[1] end
  local opts = engram.options.parse(spec.arg or arg or {}, {
    name = spec.name, description = spec.description, options = options,
    defaults = { batch = 128, lr = 0.001, scenario = "class", threads = 2 },
    runs = names,
  })
  if opts.threads then engram.core.set_threads(math.tointeger(opts.threads)) end
  engram.seed(opts.seed)
  local train, test = engram.data.fashion_mnist { normalize = true }
  local ok, scenario = pcall(engram.scenarios.split, train, test,
    { tasks = opts.tasks or 5, scenario = opts.scenario, seed = opts.seed })
  if not ok then opts.fail(scenario) end
  local iterations = opts.iterations > 0 and math.tointeger(opts.iterations) or nil
  local log = opts.log and engram.json.lines(opts.log, { mode = "w" }) or false
  local runs = {}
  for i, r in ipairs(spec.runs) do runs[i] = { name = r[1], strategies = function() return r.make(opts) end } end
  local docs = engram.learner.compare(scenario, runs, {
    model = function() return engram.nn.mlp { 784, 400, 400, scenario.num_classes }:build { seed = opts.seed } end,
    opts = { epochs = opts.epochs, iterations = iterations, batch = opts.batch, lr = opts.lr, seed = opts.seed,
      quiet = opts.quiet, log = log },
    only = opts.only_set,
  })
  if log then log:close() end
  if not opts.quiet then
    for _, d in ipairs(docs) do engram.results.print(d); print() end
  end
  io.write(engram.results.compare_table(docs))
  if opts.out then engram.results.save(opts.out, #docs == 1 and docs[1] or docs) end
  return docs, opts
end

--- A runner for recipes that build their own learners: run(name, model,
-- scenario, strategies) trains a learner with the recipe's common options
-- (epochs, batch, lr, seed, quiet and the --log writer) on a model (a module,
-- or a function returning one), using strategies = {strategy, or {strategy,
-- use_opts}, ...}; a run --only leaves out returns nil. Also returns the log
-- writer (close it at the end).
--- The class-IL runs the demo and recipes/combined.lua compare, by name:
-- naive, ewc, replay (experience replay), gr (generative replay: a
-- class-conditional VAE, distillation), lora (per-task LoRA folded into the
-- base after each task) and combined (the plan: generative replay + per-task
-- LoRA + EWC, then a consolidation phase of generative replay alone) with
-- its ablations combined-no-lora, combined-no-ewc and gr-sleep (neither).
-- o: seed, memory [1000], lambda [nil: EWC's class-IL default], rank [16],
-- lora_layers [{"1"}: the first hidden layer],
-- sleep [100] (consolidation steps), sleep_lr [1e-4], learn_lr [the learner's]
-- (the learning rate of the LoRA phases), grid [nil]: after each
-- task, a grid of this many replayed samples (stored, or generated for the
-- classes seen) in the results (extra.grids, shown by engram report). Each
-- entry: {name =, strategies = function() -> list} for engram.learner.compare.
function recipe.class_il_runs(o)
  local engram = require("engram")
  local S = engram.strategies
  -- generated samples after each task, two per class seen so far, in class order
  local function gr_grid(g)
    return { name = "gr-grid", after_task = function(_, ctx)
      if not g.gen or g.gen.trained == 0 then return end
      local seen = {}
      for s = 1, ctx.t do
        for _, c in ipairs(ctx.tasks[s].classes) do seen[#seen + 1] = c end
      end
      table.sort(seen)
      local n = o.grid
      local lab = engram.zeros(n)
      for i = 1, n do lab:set(i, seen[(i - 1) % #seen + 1]) end
      engram.image.record(ctx, "generated", g.gen:sample(n, lab), { cols = #seen })
    end }
  end
  local function gr_list(plan_extra)
    local g = S.generative_replay { distill = true, conditional = true, hidden = { 256, 256 }, gen_batch = 32,
      batch = 64, seed = o.seed }
    local list = { g }
    if o.grid then list[2] = gr_grid(g) end
    if plan_extra then return g, list[2] end
    return list
  end
  local function lora() return S.lora { rank = o.rank or 16, layers = o.lora_layers or { "1" }, fold = true } end
  local function ewc() return S.ewc { lambda = o.lambda } end
  local runs = {
    naive = function() return { S.naive() } end,
    ewc = function() return { ewc() } end,
    replay = function() return { S.replay { memory = o.memory or 1000, grid = o.grid } } end,
    gr = function() return gr_list() end,
    lora = function() return { engram.schedule.only(lora(), "2-") } end,
  }
  -- the plan, and its ablations: without LoRA, without EWC, without either
  -- (generative replay + the consolidation phase)
  local function combined(name, with_lora, with_ewc)
    runs[name] = function()
      local g, grid = gr_list(true)
      local sleep = o.sleep or 100
      local st, first, learn = { gr = g }, { "gr" }, {}
      if with_lora then st.lora = lora(); learn[1] = "lora" end
      learn[#learn + 1] = "gr"
      if with_ewc then
        st.ewc = ewc(); first[#first + 1] = "ewc"; learn[#learn + 1] = "ewc"
      end
      return { engram.plan {
        name = name,
        strategies = st,
        hooks = grid and { after_task = function(ctx) grid:after_task(ctx) end } or nil,
        phases = {
          first = { use = first }, -- task 1: the whole model learns
          learn = { use = learn, lr = o.learn_lr }, -- then rank-r changes of the hidden layers
          consolidate = { use = { "gr" }, data = "none", iterations = sleep > 0 and sleep or 1,
            lr = o.sleep_lr or 1e-4 },
        },
        tasks = { { tasks = "1", run = { "first" } },
          { tasks = "2-", run = sleep > 0 and { "learn", "consolidate" } or { "learn" } } },
      } }
    end
  end
  combined("combined", true, true)
  combined("combined-no-lora", false, true)
  combined("combined-no-ewc", true, false)
  combined("gr-sleep", false, false)
  local out = {}
  for name, f in pairs(runs) do out[name] = { name = name, strategies = f } end
  return out
end

--- Runs the named runs of class_il_runs on the scenario, in the order of
-- names, with mlp{784, 400, 400, classes}, opts.iterations steps per task and
-- the recipe's common options (batch, lr, seed, quiet, log, only); returns the
-- results documents. Shared by the demo and recipes/combined.lua.
function recipe.class_il_compare(scenario, runs, names, opts)
  local engram = require("engram")
  local list = {}
  for _, n in ipairs(names) do list[#list + 1] = runs[n] end
  local log = opts.log and engram.json.lines(opts.log, { mode = "w" }) or false
  local docs = engram.learner.compare(scenario, list, {
    model = function() return engram.nn.mlp { 784, 400, 400, scenario.num_classes }:build { seed = opts.seed } end,
    opts = { iterations = math.tointeger(opts.iterations), batch = opts.batch, lr = opts.lr, seed = opts.seed,
      quiet = opts.quiet, log = log },
    only = opts.only_set,
  })
  if log then log:close() end
  return docs
end

function recipe.runner(opts)
  local engram = require("engram")
  local log = opts.log and engram.json.lines(opts.log, { mode = "w" }) or false
  local common = { epochs = opts.epochs, batch = opts.batch, lr = opts.lr, seed = opts.seed, quiet = opts.quiet,
    log = log }
  local function run(name, model, scenario, strategies)
    if not opts.selected(name) then return nil end
    local o = { name = name }
    for k, v in pairs(common) do o[k] = v end
    local L = engram.learner(type(model) == "function" and model() or model, o)
    for _, s in ipairs(strategies) do
      if s[1] then L:use(s[1], s[2]) else L:use(s) end
    end
    return L:run(scenario)
  end
  return run, log
end

--- A two-line strategy: the learning rate is `first` in task 1 and `later`
-- from task 2 on (the optimiser is the learner's).
function recipe.lr_after_first(first, later)
  return { name = "lr", options = { lr = later }, stateless = true, before_task = function(_, ctx)
    ctx.optimizer:set_lr(ctx.t == 1 and first or later)
  end }
end

return recipe
