-- Checkpoints of the strategies that carry more than tensors between tasks
-- (tests/lua/recipes/checkpoint_more.lua, one run at a time): generative
-- replay with a VAE and with a conditional GAN (generators, their Adams and
-- noise, the GAN's moving average, the frozen copy that replays), freeze
-- (what it froze in task 2 stays frozen after a resume in task 3),
-- progressive networks (the model grows a column per task: resume rebuilds
-- it) and a plan (its rules' counts, the firings, the references of
-- val_drop, the optimiser of its own phase). Each run is killed with
-- SIGKILL after some tasks and resumed; its results and final parameters
-- are bit-identical to a run never stopped.
local lu = require("luaunit")
local ck = require("checkpoint_helpers")

local RECIPE = "tests/lua/recipes/checkpoint_more.lua"

-- Runs `name` (with enough steps per task that a task lasts long enough
-- for the kill to land in the next one) killed once its log shows each count
-- of finished tasks in kills (counted in each process), resumed in between
-- and at the end.
local function killed_and_resumed(name, kills, iterations)
  local r = ck.runner(RECIPE, string.format("--iterations %d --only %s", iterations or 1500, name))
  local d = ck.tmpdir()
  for i, n in ipairs(kills) do
    local args = i == 1 and "--checkpoint ck" or "--resume ck"
    lu.assertEquals(r.killed_after(d, args, n), 137, "the run was killed, not finished")
    lu.assertFalse(ck.exists(d .. "/out.json"))
    os.remove(d .. "/events.jsonl")
  end
  r.finishes_like_the_reference(d)
end

TestCheckpointMore = {}

function TestCheckpointMore.test_generative_replay_with_a_vae_resumes_bit_identically()
  killed_and_resumed("gr-vae", { 2 }, 500)
end

function TestCheckpointMore.test_generative_replay_with_a_conditional_gan_resumes_bit_identically()
  killed_and_resumed("gr-gan", { 1, 2 }, 500)
end

function TestCheckpointMore.test_freeze_keeps_what_it_froze_across_a_resume()
  killed_and_resumed("freeze", { 2 })
end

function TestCheckpointMore.test_progressive_networks_rebuild_their_columns_on_resume()
  killed_and_resumed("progressive", { 1, 2 })
end

function TestCheckpointMore.test_a_plan_resumes_with_its_rules_counts_and_phase_optimiser()
  killed_and_resumed("plan", { 2 })
end
