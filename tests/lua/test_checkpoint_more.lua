-- Checkpoints of the strategies that carry more than tensors between tasks
-- (tests/lua/recipes/checkpoint_more.lua, one run at a time): generative
-- replay with a VAE and with a conditional GAN (generators, their Adams and
-- noise, the GAN's moving average, the frozen copy that replays), freeze
-- (what it froze in task 2 stays frozen after a resume in task 3),
-- progressive networks (the model grows a column per task: resume rebuilds
-- it) and a plan (its rules' counts, the firings, the references of
-- val_drop, the optimiser of its own phase). Each run is killed with
-- SIGKILL after some tasks and resumed; its results and final parameters
-- are bit-identical to a run never stopped; with --checkpoint-every N (EWC
-- and SI, LwF and replay, generative replay) it is killed inside tasks too.
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

-- ------------------------------------------------------------- inside a task

-- Runs the recipe with runner r, killed with SIGKILL right after the k-th
-- save of each process for k in kills (ENGRAM_TEST_KILL_AFTER_SAVE: an exact
-- point, inside a task or a phase), resumed in between and at the end.
local function killed_at_saves(r, kills)
  local d = ck.tmpdir()
  for i, n in ipairs(kills) do
    local args = i == 1 and "--checkpoint ck" or "--resume ck"
    lu.assertEquals(r.run(d, args, "ENGRAM_TEST_KILL_AFTER_SAVE=" .. n), 137, "the run was killed, not finished")
    lu.assertFalse(ck.exists(d .. "/out.json"))
  end
  r.finishes_like_the_reference(d)
end

-- Runs `name` saving every 25 steps as well (5 saves a task: 4 inside it,
-- one at its end), killed after the given saves.
local function killed_inside_and_resumed(name, kills)
  killed_at_saves(ck.runner(RECIPE, "--iterations 120 --only " .. name, "--checkpoint-every 25"), kills)
end

function TestCheckpointMore.test_checkpoints_inside_tasks_resume_ewc_and_si_bit_identically()
  -- the 3rd save is at step 75 of task 1; then 7 more: inside task 3 (SI's running path integral)
  killed_inside_and_resumed("ewc-si", { 3, 7 })
end

function TestCheckpointMore.test_checkpoints_inside_tasks_resume_lwf_and_replay_bit_identically()
  -- inside task 1 (replay has no memory yet), then inside task 2 (the teacher, the memory's draws)
  killed_inside_and_resumed("lwf-replay", { 2, 4 })
end

function TestCheckpointMore.test_checkpoints_inside_tasks_resume_generative_replay_bit_identically()
  killed_inside_and_resumed("gr-vae", { 7, 3 })
end

function TestCheckpointMore.test_checkpoints_inside_tasks_resume_der_with_lora_bit_identically()
  -- inside task 1; then inside task 2, where the LoRA set of the task under way is re-created
  killed_inside_and_resumed("der-lora", { 3, 8 })
end

function TestCheckpointMore.test_checkpoints_inside_tasks_resume_agem_and_its_counts_bit_identically()
  -- save 5 is task 1's end (A-GEM's projection counts in the results carry on), then inside task 3
  killed_inside_and_resumed("agem", { 5, 9 })
end

function TestCheckpointMore.test_checkpoints_inside_tasks_resume_icarl_and_progressive_bit_identically()
  killed_inside_and_resumed("icarl", { 2, 11 })
  killed_inside_and_resumed("progressive", { 8 })
end

function TestCheckpointMore.test_checkpoints_inside_tasks_resume_cumulative_training_bit_identically()
  -- task-IL: the batches of tasks 1..t interleave in a shuffled order, saved with the position
  killed_inside_and_resumed("cumulative-task", { 12 })
end

function TestCheckpointMore.test_checkpoints_inside_a_plans_phases_resume_bit_identically()
  -- saves every 7 steps: inside learn and inside consolidate (its own SGD and
  -- lr; also when a rule added it), the plan's rule counts and firings
  local r = ck.runner(RECIPE, "--iterations 60 --only plan", "--checkpoint-every 7")
  -- save 19: inside task 2's consolidate phase; 5 then 15 more (save 20): inside the
  -- consolidate phase a rule added; 28: inside task 3's learn phase
  for _, kills in ipairs { { 19 }, { 5, 15 }, { 28 } } do killed_at_saves(r, kills) end
end

function TestCheckpointMore.test_a_strategy_that_cannot_resume_inside_a_task_is_named_before_any_work()
  local engram = require("engram")
  local S = engram.strategies
  local all = engram.data.blobs { n = 120, classes = 4, dim = 4, seed = 3 }
  local train, test = all:split(0.8, 1)
  local scenario = engram.scenarios.split(train, test, { tasks = 2 })
  local helpers = require("helpers")
  local dir = helpers.tmpname("-ckpt")
  local function run(strategy, extra)
    local o = { iterations = 5, quiet = true, checkpoint = dir, checkpoint_every = 2 }
    for k, v in pairs(extra or {}) do o[k] = v end
    local L = engram.learner(engram.nn.mlp { 4, 8, 4 }:build { seed = 1 }, o)
    L:use(strategy)
    return L:run(scenario)
  end
  lu.assertErrorMsgContains("checkpoint_every: strategy 1 ('custom') cannot be resumed inside a task exactly",
    run, { after_task = function() end })
  lu.assertErrorMsgContains("strategy 1_2 ('mine') cannot be resumed inside a task exactly",
    run, engram.plan { strategies = { S.naive(), { name = "mine", after_task = function() end } } })
  lu.assertErrorMsgContains("strategy 1_2 ('plan-hooks') cannot be resumed",
    run, engram.plan { strategies = { S.naive() }, hooks = { after_task = function() end } })
  lu.assertErrorMsgContains("strategy 1_1 ('federated') cannot be resumed",
    run, engram.schedule.only(S.federated { clients = 2, rounds = 1 }, "2-"))
  lu.assertErrorMsgContains("patience cannot be resumed inside a task exactly", run, S.naive(), { patience = 2 })
  lu.assertFalse(ck.exists(dir .. "/checkpoint.safetensors"), "refused before any work")
  -- the strategies that can, can: a run saving every 2 steps ends as one that does not
  local plain = engram.learner(engram.nn.mlp { 4, 8, 4 }:build { seed = 1 }, { iterations = 5, quiet = true })
    :use(S.ewc { lambda = 5, samples = 20 }):run(scenario)
  lu.assertEquals(run(S.ewc { lambda = 5, samples = 20 }).acc, plain.acc)
  os.execute("rm -rf " .. helpers.q(dir))
end
