-- demo.lua — catastrophic forgetting and four cures, side by side.
--
-- Trains mlp{784, 400, 400, 10} on Split Fashion-MNIST (5 tasks of 2 classes,
-- class-incremental: no task identity at test time), the same budget for
-- every run (--iterations steps of batch 128 per task, Adam 1e-3):
--   naive      plain fine-tuning: each task wipes out the previous ones
--   ewc        elastic weight consolidation (its class-IL default strength)
--   replay     experience replay, 1,000 stored samples (a reservoir in C)
--   gr         generative replay: a class-conditional VAE learns the tasks,
--              its samples are replayed with the previous model's soft labels
--   combined   one plan: generative replay + per-task LoRA on the first
--              hidden layer + EWC on the shared layers, then a consolidation
--              phase of generative replay alone (recipes/combined.lua, whose
--              header says why it does not beat generative replay alone)
-- After each task it shows the accuracy on every task as bars; then the
-- accuracy matrices, the comparison table (ACC, BWT, forgetting) and
-- report.html: matrices, curves and the grids of what was replayed.
--
--   build/engram recipes/demo.lua [--iterations 500] [--only naive,replay]
--       [--report report.html] [--seed 1] [--out results.json] [--quiet]
--   (make demo runs it with the defaults)
--
-- Inputs on [0, 1] (normalize = false: the Bernoulli VAE wants them).
-- Measured: see README.md ("make demo").
local engram = require("engram")

local NAMES = { "naive", "ewc", "replay", "gr", "combined" }
local opts = engram.options.parse(arg or {}, {
  name = "demo",
  description = "Naive, EWC, replay, generative replay and a combined plan on Split Fashion-MNIST (class-IL).",
  options = {
    { "iterations", 500, "steps per task for every run" },
    { "memory", 1000, "experience replay's memory (samples)" },
    { "report", "report.html", "write the HTML report here (empty: none)" },
  },
  defaults = { batch = 128, lr = 0.001, threads = 2, scenario = "class" },
  runs = NAMES,
})
if opts.threads then engram.core.set_threads(math.tointeger(opts.threads)) end
engram.seed(opts.seed)
if opts.report ~= "" then
  local ok, err = engram.core.check_writable(opts.report)
  if not ok then opts.fail("--report: " .. tostring(err)) end
end

local train, test = engram.data.fashion_mnist { normalize = false }
local ok, scenario = pcall(engram.scenarios.split, train, test,
  { tasks = opts.tasks or 5, scenario = opts.scenario, seed = opts.seed })
if not ok then opts.fail(scenario) end

local function say(...) if not opts.quiet then print(...) end end
say(string.format("demo: %s; mlp{784, 400, 400, 10}, %d steps per task, batch %d, Adam lr %g", tostring(scenario),
  opts.iterations, opts.batch, opts.lr))

local runs = engram.recipe.class_il_runs { seed = opts.seed, memory = math.tointeger(opts.memory), grid = 40 }
local docs = engram.recipe.class_il_compare(scenario, runs, NAMES, opts)

local function bars(doc)
  local R, T = doc.acc, #doc.acc
  say(string.format("\n%s: accuracy on each task after training task i", doc.name))
  for i = 1, T do
    local cells = {}
    for j = 1, T do
      local n = math.floor(R[i][j] * 10 + 0.5)
      cells[j] = string.rep("#", n) .. string.rep(".", 10 - n)
    end
    say(string.format("  after task %d  %s  avg %5.1f%%", i, table.concat(cells, " "), 100 * doc.avg_acc_per_task[i]))
  end
end

for _, d in ipairs(docs) do bars(d) end
say("")
for _, d in ipairs(docs) do engram.results.print(d); print() end
io.write(engram.results.compare_table(docs))
for _, line in ipairs(engram.results.versus_lines(docs, "naive", { "ewc", "replay", "gr", "combined" })) do
  print(line)
end
if opts.report ~= "" then
  engram.report.write(opts.report, docs, { title = "engram demo: Split Fashion-MNIST, class-IL" })
  print("report: " .. opts.report)
end
if opts.out then engram.results.save(opts.out, #docs == 1 and docs[1] or docs) end
