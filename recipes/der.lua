-- der.lua — dark experience replay (DER, DER++) against naive fine-tuning and
-- experience replay on Split Fashion-MNIST, class-incremental (5 tasks of 2
-- classes).
--
-- Runs (select with --only):
--   naive     fine-tuning, nothing against forgetting
--   replay    experience replay, a reservoir memory of --memory samples
--   der       DER: a reservoir over the stream with the logits of each stored
--             sample; every step adds alpha * MSE to the stored logits
--   derpp     DER++: the same plus beta * cross-entropy on the labels of a
--             second memory batch
--
--   build/engram recipes/der.lua [--seed 1] [--iterations 2000] [--memory 1000]
--       [--alpha 0.3] [--beta 0.5] [--only derpp] [--out results.json]
--
-- mlp{784,400,400,10}, Adam 1e-3, batch 128, 2,000 steps per task. Takes about
-- 10 minutes on 2 (busy) cores for the four runs (training: naive 85 s,
-- replay 151 s, DER 151 s, DER++ 203 s). Expect (seed 1, measured): naive
-- 20.0%, replay 78.8%, DER 78.3%, DER++ 79.5% (forgetting 99.1, 24.5, 25.2,
-- 23.8 points): DER++ at or above experience replay with the same memory.
local engram = require("engram")
local S = engram.strategies

require("engram.recipe").split_class {
  name = "der",
  description = "DER and DER++ vs experience replay vs naive fine-tuning on Split Fashion-MNIST (class-IL).",
  options = {
    { "memory", 1000, "memory size (samples) of every replay run" },
    { "alpha", 0.3, "weight of the logit matching (MSE)" },
    { "beta", 0.5, "DER++: weight of the replayed labels' cross-entropy" },
  },
  runs = {
    { "naive", make = function() return { S.naive() } end },
    { "replay", make = function(o) return { S.replay { memory = o.memory } } end },
    { "der", make = function(o) return { S.der { memory = o.memory, alpha = o.alpha } } end },
    { "derpp", make = function(o) return { S.der { memory = o.memory, alpha = o.alpha, beta = o.beta } } end },
  },
}
