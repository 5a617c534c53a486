-- si.lua — synaptic intelligence (Zenke, Poole & Ganguli 2017) against naive
-- fine-tuning and joint training where SI is meant to work: Permuted
-- Fashion-MNIST (domain-IL, 5 tasks) and Split Fashion-MNIST task-IL (5 tasks
-- of 2 classes, logits masked to the task's). SI integrates each weight's
-- contribution to the fall of the task loss along the training path (in C,
-- every step) and pays c Σ Ω (θ − θ*)² for moving it later.
--
-- Runs (select with --only): naive-domain, si-domain, joint-domain,
-- naive-task, si-task, joint-task.
--
--   build/engram recipes/si.lua [--c C] [--xi 0.1] [--scenario all|domain|task]
--       [--epochs 2] [--samples 60000] [--seed 1] [--only si-task,naive-task]
--       [--out results.json] [--log run.jsonl]
--
-- mlp{784, 400, 400, 10}, Adam lr 0.001, batch 128, 2 epochs per task; c is
-- --c or, by default, engram.strategies.defaults.si for the scenario's kind
-- (chosen on validation splits: docs/defaults.md).
-- Takes about 2 minutes on 2 cores (--scenario task: 30 s). Expect (seed 1,
-- measured; ACC, forgetting in points): domain-IL (c 1) naive 63.8% (29.0),
-- SI 82.8% (3.4), joint 86.1%; task-IL (c 1000) naive 91.6% (9.3), SI 99.0%
-- (0.1), joint 98.8%. Over seeds 1-3 see recipes/regularisation.lua.
local engram = require("engram")

require("engram.recipe").versus {
  name = "si", label = "SI", strength = "c",
  options = {
    { "c", nil, "SI's strength c (default: engram.strategies.defaults.si for the scenario's kind)", type = "number" },
    { "xi", 0.1, "SI's damping xi" },
  },
  make = function(opts) return engram.strategies.si { c = opts.c, xi = opts.xi } end,
}
