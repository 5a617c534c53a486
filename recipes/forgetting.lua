-- forgetting.lua — catastrophic forgetting, measured: train on task 1 of
-- Split Fashion-MNIST, then on the other tasks with plain fine-tuning, and
-- follow task 1's test accuracy and the drift of a hidden layer's activations
-- on a fixed probe set of task-1 images (mean ||h_now - h_after_task1|| / mean
-- ||h_after_task1||), in the three scenarios (class-, task- and domain-IL).
-- Prints what engram measures beside the seed article's claims: "old-task
-- accuracy falls sharply (e.g. 0.92 -> 0.57)" and "hidden activations drift by
-- more than 300%".
--
--   build/engram recipes/forgetting.lua [--scenario all|class|task|domain]
--       [--epochs 1] [--layer 0] [--probe 256] [--seed 1] [--out results.json]
--
-- Takes about 15-25 s on 2 cores (three naive runs of 5 tasks, 1 epoch each).
-- Expect (seed 1, measured): task 1 falls from 98.7% to 0.0% in class-IL and
-- from 98.8% to 50.0% (chance) in domain-IL, but only from 98.9% to 94.2% in
-- task-IL. The last hidden layer (module 4) drifts by 109% (class-IL), 230%
-- (task-IL, 246% at its peak) and 188% (domain-IL) after task 5: large, but
-- below the article's "more than 300%" at this budget; the sharp fall of the
-- old task's accuracy holds in class- and domain-IL.
local engram = require("engram")
local S = engram.strategies

local opts = engram.options.parse(arg or {}, {
  name = "forgetting",
  description = "Task 1's accuracy and hidden-layer drift under naive fine-tuning on Split Fashion-MNIST.",
  options = {
    { "layer", 0, "module index of the tracked hidden layer (0: the last hidden activation)" },
    { "probe", 256, "task-1 test images in the probe set" },
  },
  defaults = { batch = 128, lr = 0.001, scenario = "all", threads = 2 },
})
if opts.threads then engram.core.set_threads(math.tointeger(opts.threads)) end
engram.seed(opts.seed)
local kinds = opts.scenario == "all" and { "class", "task", "domain" } or { opts.scenario }

local train, test = engram.data.fashion_mnist { normalize = true }

local docs = {}
for _, kind in ipairs(kinds) do
  local ok, scen = pcall(engram.scenarios.split, train, test, { tasks = opts.tasks or 5, scenario = kind,
    seed = opts.seed })
  if not ok then opts.fail(scen) end
  local model = engram.nn.mlp { 784, 400, 400, scen.num_classes }:build { seed = opts.seed }
  local L = engram.learner(model, { name = "naive-" .. kind, epochs = opts.epochs, batch = opts.batch, lr = opts.lr,
    seed = opts.seed, quiet = opts.quiet, probe = opts.probe, drift_layer = opts.layer > 0 and opts.layer or "auto",
    log = opts.log and (opts.log:gsub("%.jsonl$", "") .. "-" .. kind .. ".jsonl") or false })
  L:use(S.naive())
  docs[#docs + 1] = L:run(scen)
end

local T = #docs[1].acc
print(string.format("\nTask 1's test accuracy after training task i (naive fine-tuning), and the drift of hidden " ..
  "layer %d's activations on %d task-1 test images relative to right after task 1:", docs[1].extra.drift_layer or 0,
  opts.probe))
local head = { string.format("%-10s", "scenario") }
for i = 1, T do head[#head + 1] = string.format("%7s", "T" .. i) end
head[#head + 1] = "   drift after T2..T" .. T
print(table.concat(head))
for _, d in ipairs(docs) do
  local row = { string.format("%-10s", d.scenario.kind) }
  for i = 1, T do row[#row + 1] = string.format("%7.1f", 100 * d.acc[i][1]) end
  local dr = {}
  for i = 2, T do dr[#dr + 1] = string.format("%.0f%%", 100 * ((d.extra.drift or {})[i] or 0)) end
  row[#row + 1] = "   " .. table.concat(dr, " ")
  print(table.concat(row))
end
print("\nSeed article vs engram:")
for _, d in ipairs(docs) do
  local R = d.acc
  local drift = (d.extra.drift or {})[T] or 0
  print(string.format("  %-9s old-task accuracy %.2f -> %.2f (claim: falls sharply, e.g. 0.92 -> 0.57: %s); " ..
    "hidden drift %.0f%% (claim: > 300%%: %s)", d.scenario.kind, R[1][1], R[T][1],
    R[T][1] < R[1][1] - 0.2 and "holds" or "does not hold", 100 * drift, drift > 3 and "holds" or "does not hold"))
end
print()
io.write(engram.results.compare_table(docs))
if opts.out then engram.results.save(opts.out, #docs == 1 and docs[1] or docs) end
