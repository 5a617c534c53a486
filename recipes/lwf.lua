-- lwf.lua — learning without forgetting (Li & Hoiem 2017) against naive
-- fine-tuning and joint training, in Split Fashion-MNIST task-IL (5 tasks of
-- 2 classes, logits masked to the task's: LwF's home ground, one distillation
-- term per old task) and Permuted Fashion-MNIST (domain-IL, 5 tasks), where
-- it does not help: the new task's images, pushed through the old model, say
-- little about what the old permutations needed. No stored data: every batch
-- also goes through the model as it was before the task, and α · T² · KL of
-- the softened outputs is added to the loss.
--
-- Runs (select with --only): naive-task, lwf-task, joint-task,
-- naive-domain, lwf-domain, joint-domain.
--
--   build/engram recipes/lwf.lua [--alpha A] [--temperature 2] [--scenario all|task|domain]
--       [--epochs 2] [--samples 60000] [--seed 1] [--only lwf-task,naive-task]
--       [--out results.json] [--log run.jsonl]
--
-- mlp{784, 400, 400, 10}, Adam lr 0.001, batch 128, 2 epochs per task; α is
-- --alpha or, by default, engram.strategies.defaults.lwf for the scenario's kind
-- (chosen on validation splits: docs/defaults.md).
-- Takes about 2 minutes on 2 cores (--scenario task: 30 s). Expect (seed 1,
-- measured; ACC, forgetting in points): task-IL (α 1) naive 91.6% (9.3), LwF
-- 99.0% (0.2), joint 98.8%; domain-IL (α 0.5) naive 63.8% (29.0), LwF 55.8%
-- (38.8): worse than fine-tuning, at every α tried on validation
-- (docs/defaults.md). Over seeds 1-3 see recipes/regularisation.lua.
local engram = require("engram")

require("engram.recipe").versus {
  name = "lwf", label = "LwF", strength = "alpha", kinds = { "task", "domain" },
  options = {
    { "alpha", nil, "LwF's weight (default: engram.strategies.defaults.lwf for the scenario's kind)",
      type = "number" },
    { "temperature", 2.0, "LwF's distillation temperature T" },
  },
  make = function(opts) return engram.strategies.lwf { alpha = opts.alpha, T = opts.temperature } end,
}
