-- regularisation.lua — the regularisation family side by side in the three
-- scenarios: naive fine-tuning (lower bound), EWC, online EWC, SI, MAS, LwF
-- and joint training (upper bound), on
--   domain  Permuted Fashion-MNIST, 5 tasks (one pixel permutation each)
--   task    Split Fashion-MNIST task-IL, 5 tasks of 2 classes (logits masked)
--   class   Split Fashion-MNIST class-IL, 5 tasks of 2 classes
-- with mlp{784, 400, 400, 10}, Adam lr 0.001 (reset every task), batch 128,
-- 2 epochs per task, and every strategy at its shipped default for the
-- scenario's kind (engram.strategies.defaults, chosen on validation splits by
-- recipes/choose_defaults.lua; docs/defaults.md): EWC empirical Fisher over
-- 1000 samples, online EWC γ = 1, SI ξ = 0.1, MAS 1000 samples, LwF T = 2.
--
--   build/engram recipes/regularisation.lua [--seeds 1,2,3] [--epochs 2]
--       [--samples 60000] [--scenario all|domain|task|class]
--       [--only naive,joint,ewc,online-ewc,si,mas,lwf]
--       [--out regularisation.json] [--report regularisation.html]
--
-- One results file holds every run ({"runs": [...]}, named
-- <strategy>-<kind>-seed<n>), the HTML report (engram report) shows them, and
-- the printed table gives each strategy's ACC per scenario as the mean ± the
-- standard deviation over the seeds (forgetting in a second table), then
-- checks the figures the project aims at (issue 11) against the means.
--
-- Takes about 5 minutes per seed on 2 cores (21 runs; the 7 permuted ones
-- take most of it): --seeds 1,2,3 took 14 minutes. Quicker: --epochs 1,
-- --samples 10000 (permuted images per task), --scenario task (under a minute).
--
-- Expect (--seeds 1,2,3, measured; ACC in %, mean ± standard deviation):
--
--   ACC           domain-IL     task-IL       class-IL
--   naive         63.5 ± 1.3    92.7 ± 4.7    19.9 ± 0.0
--   joint         86.0 ± 0.3    98.8 ± 0.3    86.9 ± 0.2
--   ewc           79.1 ± 2.3    99.0 ± 0.0    26.9 ± 3.7
--   online-ewc    80.1 ± 1.5    99.0 ± 0.1    20.0 ± 0.1
--   si            81.4 ± 1.3    99.0 ± 0.0    23.1 ± 5.0
--   mas           81.6 ± 1.0    98.9 ± 0.3    20.4 ± 0.2
--   lwf           58.5 ± 6.6    99.0 ± 0.1    19.9 ± 0.0
--
-- with the defaults: domain EWC λ 100, online EWC λ 10, SI c 1, MAS λ 0.01,
-- LwF α 0.5; task EWC λ 1000, online EWC λ 1e5, SI c 1000, MAS λ 100, LwF
-- α 1; class EWC λ 1e4, online EWC λ 1e5, SI c 1e4, MAS λ 0.1, LwF α 0.1.
-- Domain-IL: EWC, online EWC, SI and MAS gain 15.6 to 18.1 points on naive
-- (the aim: 10); LwF loses 5 (distilling on the new permutation's images does
-- not protect the old ones). Task-IL: all five end within 0.3 points of joint
-- (the aim: 1.5) but only 6.1-6.3 points above naive (the aim, 8, is missed:
-- naive fine-tuning keeps 92.7% here, 88.7-97.8% by seed, and joint, the
-- upper bound, is itself only 6.1 points above it). Class-IL: every method stays
-- within 7 points of naive's 19.9% — these methods alone do not solve
-- class-IL (van de Ven & Tolias 2019); replay does (recipes/replay.lua).
local engram = require("engram")
local S = engram.strategies

local RUNS = { "naive", "joint", "ewc", "online-ewc", "si", "mas", "lwf" }
local opts = engram.options.parse(arg or {}, {
  name = "regularisation",
  description = "Naive, EWC, online EWC, SI, MAS, LwF and joint in domain-, task- and class-IL (Fashion-MNIST).",
  options = {
    { "seeds", {}, "run every seed of this list and average (default: --seed)" },
    { "samples", 60000, "permuted: training images per task" },
    { "report", "regularisation.html", "write the HTML report here ('' for none)" },
  },
  defaults = { batch = 128, epochs = 2, lr = 0.001, threads = 2, scenario = "all", out = "regularisation.json" },
  runs = RUNS,
})
if opts.threads then engram.core.set_threads(math.tointeger(opts.threads)) end
local kinds = opts.scenario == "all" and { "domain", "task", "class" } or { opts.scenario }
for _, k in ipairs(kinds) do
  if k ~= "domain" and k ~= "task" and k ~= "class" then
    opts.fail("--scenario must be all, domain, task or class, got " .. tostring(k))
  end
end
local seeds = {}
for i, v in ipairs(opts.seeds) do
  seeds[i] = math.tointeger(tonumber(v))
  if not seeds[i] then opts.fail("--seeds takes integers, got '" .. v .. "'") end
end
if #seeds == 0 then seeds = { opts.seed } end

local MAKE = {
  naive = function() return S.naive() end,
  joint = function() return S.joint() end,
  ewc = function() return S.ewc() end,
  ["online-ewc"] = function() return S.ewc { online = true } end,
  si = function() return S.si() end,
  mas = function() return S.mas() end,
  lwf = function() return S.lwf() end,
}

local train, test = engram.data.fashion_mnist { normalize = true }
local T = opts.tasks or 5
local function scenario(kind, seed)
  if kind == "domain" then
    return engram.scenarios.permuted(train, test, { tasks = T, samples = opts.samples, seed = seed })
  end
  return engram.scenarios.split(train, test, { tasks = T, scenario = kind, seed = seed })
end

local t0 = engram.core.clock()
local docs = {}
local by = {} -- by[kind][run] = {doc per seed}
for _, seed in ipairs(seeds) do
  engram.seed(seed)
  for _, kind in ipairs(kinds) do
    local runs = {}
    for _, name in ipairs(RUNS) do
      runs[#runs + 1] = { name = name, strategies = function() return { MAKE[name]() } end }
    end
    local these = engram.learner.compare(scenario(kind, seed), runs, {
      model = function() return engram.nn.mlp { 784, 400, 400, 10 }:build { seed = seed } end,
      opts = { epochs = opts.epochs, batch = opts.batch, lr = opts.lr, seed = seed, quiet = opts.quiet },
      only = opts.only_set,
    })
    by[kind] = by[kind] or {}
    for _, d in ipairs(these) do
      by[kind][d.name] = by[kind][d.name] or {}
      table.insert(by[kind][d.name], d)
      d.name = string.format("%s-%s-seed%d", d.name, kind, seed)
      docs[#docs + 1] = d
    end
  end
end
local seconds = engram.core.clock() - t0

-- mean and (sample) standard deviation of f(doc) over a run's seeds
local function stats(list, f)
  if not list or #list == 0 then return nil end
  local s, n = 0, #list
  for _, d in ipairs(list) do s = s + f(d) end
  local mean, v = s / n, 0
  for _, d in ipairs(list) do v = v + (f(d) - mean) ^ 2 end
  return mean, n > 1 and math.sqrt(v / (n - 1)) or 0
end
local function acc(d) return d.avg_acc end
local function forgetting(d) return d.forgetting or 0 end

local function table_of(title, f)
  local head = { string.format("%-11s", title) }
  for _, kind in ipairs(kinds) do head[#head + 1] = string.format("%16s", kind .. "-IL") end
  local lines = { table.concat(head, " ") }
  for _, name in ipairs(RUNS) do
    local row, any = { string.format("%-11s", name) }, false
    for _, kind in ipairs(kinds) do
      local m, sd = stats(by[kind][name], f)
      any = any or m ~= nil
      row[#row + 1] = m and string.format("%16s", string.format("%.1f ± %.1f", 100 * m, 100 * sd)) or
        string.format("%16s", "-")
    end
    if any then lines[#lines + 1] = table.concat(row, " ") end
  end
  return table.concat(lines, "\n") .. "\n"
end

print()
print(string.format("%d seed(s): %s; %d epochs per task; mean ± standard deviation over the seeds, in %%",
  #seeds, table.concat(seeds, ","), opts.epochs))
print()
io.write(table_of("ACC", acc))
print()
io.write(table_of("forgetting", forgetting))
print()
for _, kind in ipairs(kinds) do
  local list = by[kind].ewc or by[kind].lwf or by[kind].si
  local d = list and list[1]
  if d then
    local used = {}
    for _, name in ipairs(RUNS) do
      local l = by[kind][name]
      local st = l and l[1].strategies[1]
      local o = st and st.options or {}
      local v = o.lambda or o.c or o.alpha
      if v and name ~= "naive" and name ~= "joint" then
        used[#used + 1] = string.format("%s %s=%g", name, o.c and "c" or (o.alpha and "alpha" or "lambda"), v)
      end
    end
    print(string.format("%s-IL strengths used: %s", kind, table.concat(used, ", ")))
  end
end

-- The project's figures (issue 11), checked against the means.
local function mean_of(kind, name)
  local m = stats(by[kind] and by[kind][name], acc)
  return m
end
local checks = {}
local function check(kind, name, what, ok, text)
  checks[#checks + 1] = string.format("  %-4s %s-IL %-10s %s: %s", ok and "met" or "MISS", kind, name, what, text)
end
if by.task then
  local joint, naive = mean_of("task", "joint"), mean_of("task", "naive")
  for _, name in ipairs { "ewc", "online-ewc", "si", "mas", "lwf" } do
    local m = mean_of("task", name)
    if m and joint then
      check("task", name, "within 1.5 of joint", joint - m <= 0.015,
        string.format("%.1f vs joint %.1f (%+.1f)", 100 * m, 100 * joint, 100 * (m - joint)))
    end
    if m and naive then
      check("task", name, ">= naive + 8", m - naive >= 0.08,
        string.format("%.1f vs naive %.1f (%+.1f)", 100 * m, 100 * naive, 100 * (m - naive)))
    end
  end
end
if by.domain then
  local naive = mean_of("domain", "naive")
  for _, name in ipairs { "ewc", "online-ewc", "si", "mas" } do
    local m = mean_of("domain", name)
    if m and naive then
      check("domain", name, ">= naive + 10", m - naive >= 0.10,
        string.format("%.1f vs naive %.1f (%+.1f)", 100 * m, 100 * naive, 100 * (m - naive)))
    end
  end
end
if #checks > 0 then
  print()
  print("targets (means over the seeds):")
  for _, c in ipairs(checks) do print(c) end
end
if by.class then
  print()
  print("class-IL: EWC, SI, MAS and LwF alone stay near naive fine-tuning (van de Ven & Tolias 2019); " ..
    "they do not solve it: use replay (recipes/replay.lua).")
end
print(string.format("\n%d runs in %.0f s", #docs, seconds))

if opts.out and opts.out ~= "" then
  engram.results.save(opts.out, docs)
  print("results: " .. opts.out)
end
if opts.report and opts.report ~= "" then
  engram.report.write(opts.report, docs, { title = "Regularisation on Fashion-MNIST (seeds " ..
    table.concat(seeds, ",") .. ")" })
  print("report: " .. opts.report)
end
