-- engram.checkpoint: runs saved after every task and resumed exactly. A small
-- recipe (tests/lua/recipes/checkpoint_runs.lua: EWC + LoRA, LwF + SI, and
-- replay + EWC when replay can be checkpointed) is killed with SIGKILL at
-- several points, during a save too, and resumed: its results and final
-- parameters are bit-identical to a run never stopped. Damaged and foreign
-- checkpoints are refused whole; numpy reads the file by the published
-- safetensors layout.
local lu = require("luaunit")
local engram = require("engram")
local helpers = require("helpers")
local S = engram.strategies
local q = helpers.q

local RECIPE = "tests/lua/recipes/checkpoint_runs.lua"
local PY = "/usr/bin/python3"

-- the recipe run, killed, resumed and compared (checkpoint_helpers.lua)
local ck = require("checkpoint_helpers")
local R = ck.runner(RECIPE)
local sh, exists, tmpdir = ck.sh, ck.exists, ck.tmpdir
local recipe, killed_after, finishes_like_the_reference = R.run, R.killed_after, R.finishes_like_the_reference

TestCheckpoint = {}

function TestCheckpoint.test_a_run_killed_at_several_points_and_resumed_is_bit_identical()
  for _, kills in ipairs { { 1 }, { 2, 5 } } do
    local d = tmpdir()
    for i, n in ipairs(kills) do
      local args = i == 1 and "--checkpoint ck" or "--resume ck"
      lu.assertEquals(killed_after(d, args, n), 137, "the run was killed, not finished")
      lu.assertFalse(exists(d .. "/out.json"))
      os.remove(d .. "/events.jsonl")
    end
    finishes_like_the_reference(d)
  end
end

function TestCheckpoint.test_ctrl_c_names_the_checkpoint_and_the_run_resumes_exactly()
  local d = tmpdir()
  lu.assertEquals(killed_after(d, "--checkpoint ck", 3, "INT"), 1)
  lu.assertStrContains(helpers.read_file(d .. "/run.log"), "engram: interrupted: the checkpoint in ck/")
  lu.assertStrContains(helpers.read_file(d .. "/run.log"), "(the task under way is discarded); continue with " ..
    "--resume ck")
  finishes_like_the_reference(d)
end

function TestCheckpoint.test_a_kill_during_a_save_leaves_the_previous_checkpoint()
  local d = tmpdir()
  local code = recipe(d, "--checkpoint ck --stop-task 2")
  lu.assertEquals(code, 1)
  lu.assertStrContains(helpers.read_file(d .. "/run.log"), "stopped after task 2 of 4")
  -- killed between writing the next checkpoint under its temporary name and the rename
  code = recipe(d, "--resume ck", "ENGRAM_TEST_KILL_BEFORE_RENAME=checkpoint.safetensors")
  lu.assertEquals(code, 137)
  lu.assertEquals(sh("ls -a " .. q(d .. "/ck/ewc-lora") .. " | grep -q '^.checkpoint.safetensors.engram-'"), 0,
    "the kill left the new file under its temporary name")
  local _, run = require("engram.checkpoint").read(d .. "/ck/ewc-lora")
  lu.assertEquals(run.done, 2)
  finishes_like_the_reference(d)
end

function TestCheckpoint.test_start_and_stop_task_run_a_range()
  local d = tmpdir()
  lu.assertEquals(recipe(d, "--checkpoint ck --stop-task 1"), 1)
  lu.assertEquals(recipe(d, "--resume ck --start-task 3"), 1)
  lu.assertStrContains(helpers.read_file(d .. "/run.log"), "start_task is 3 but")
  lu.assertStrContains(helpers.read_file(d .. "/run.log"), "holds tasks 1-1: the run can start at task 2")
  lu.assertEquals(recipe(d, "--resume ck --start-task 2 --stop-task 3"), 1)
  finishes_like_the_reference(d, " --start-task 4")
end

function TestCheckpoint.test_resume_with_other_options_is_refused_naming_the_difference()
  local d = tmpdir()
  lu.assertEquals(recipe(d, "--checkpoint ck --stop-task 1"), 1)
  lu.assertEquals(recipe(d, "--resume ck --lr 0.01"), 1)
  local log = helpers.read_file(d .. "/run.log")
  lu.assertStrContains(log, "was saved by another configuration: learner.lr was 0.005 when it was saved, now 0.01")
  lu.assertEquals(recipe(d, "--resume nowhere"), 2)
  lu.assertStrContains(helpers.read_file(d .. "/run.log"), "--resume: no directory nowhere")
  os.execute("rm -rf " .. q(d))
end

function TestCheckpoint.test_numpy_reads_the_checkpoint_by_the_safetensors_layout()
  local d = tmpdir()
  lu.assertEquals(recipe(d, "--checkpoint ck --stop-task 2"), 1)
  local p = io.popen(string.format("%s tests/reference/check_safetensors.py read %s 2>&1", PY,
    q(d .. "/ck/ewc-lora/checkpoint.safetensors")))
  local out = p:read("a")
  p:close()
  lu.assertStrContains(out, "model.base.1.weight 128x16 ")
  lu.assertStrContains(out, "model.lora.task2.1.2.A 4x16 ")
  lu.assertStrContains(out, "optimizer.lora.task2.m 2144 ")
  lu.assertStrContains(out, "strategy.1.task1.importance.base.1.weight 128x16 ")
  lu.assertStrContains(out, "strategy.2_1.lora.task2.1.2.A 4x16 ")
  lu.assertStrContains(out, "meta engram.checkpoint=engram.checkpoint/1")
  lu.assertStrContains(out, "meta engram.checksum=")
  os.execute("rm -rf " .. q(d))
end

-- ------------------------------------------------------------- in process

local function blobs()
  local all = engram.data.blobs { n = 600, classes = 6, dim = 8, std = 1.0, seed = 3 }
  local train, test = all:split(0.8, 1)
  return engram.scenarios.split(train, test, { tasks = 3 })
end

local function learner(dir, opts, strategies)
  local o = { iterations = 20, batch = 32, lr = 0.01, quiet = true, checkpoint = dir }
  for k, v in pairs(opts or {}) do o[k] = v end
  local L = engram.learner(engram.nn.mlp { 8, 16, 6 }:build { seed = 1 }, o)
  for _, s in ipairs(strategies or { S.ewc { lambda = 10, samples = 50 } }) do L:use(s) end
  return L
end

local function params_of(model)
  local out = {}
  for i, g in ipairs(model:groups()) do out[i] = g.params:clone() end
  return out
end

function TestCheckpoint.test_a_damaged_or_truncated_checkpoint_is_refused_and_nothing_is_loaded()
  local dir = helpers.tmpname("-ckpt")
  lu.assertErrorMsgContains("stopped after task 2 of 3", function() learner(dir, { stop_task = 2 }):run(blobs()) end)
  local path = dir .. "/checkpoint.safetensors"
  local good = helpers.read_file(path)
  local cases = {
    { good:sub(1, #good - 3) .. string.char((good:byte(#good - 2) + 1) % 256) .. good:sub(#good - 1),
      "damaged: its checksum does not match" },
    { good:sub(1, #good - 100), "checkpoint.safetensors" },
    { (good:gsub('"engram.checkpoint/1"', '"engram.checkpoint/9"', 1)), "is not an engram checkpoint" },
    { (good:gsub('\\"done\\":2', '\\"done\\":1', 1)), "damaged: its checksum does not match" },
  }
  for _, c in ipairs(cases) do
    lu.assertNotEquals(c[1], good)
    helpers.write_file(path, c[1])
    local L = learner(dir, { resume = true })
    local before = params_of(L.model)
    local ok, err = pcall(L.run, L, blobs())
    lu.assertFalse(ok)
    lu.assertStrContains(tostring(err), c[2])
    for i, g in ipairs(L.model:groups()) do lu.assertEquals(g.params:totable(), before[i]:totable()) end
    lu.assertNil(L._r, "no half-restored run goes on")
  end
  os.execute("rm -rf " .. q(dir))
end

function TestCheckpoint.test_a_strategy_that_cannot_be_checkpointed_is_named()
  local dir = helpers.tmpname("-ckpt")
  local custom = { name = "mine", after_task = function() end }
  lu.assertErrorMsgContains("strategy 2 ('mine') cannot be checkpointed",
    function() learner(dir, nil, { S.naive(), custom }):run(blobs()) end)
  lu.assertFalse(exists(dir .. "/checkpoint.safetensors"), "no partial checkpoint")
  os.execute("rm -rf " .. q(dir))
end

function TestCheckpoint.test_stepping_with_checkpoints_equals_a_plain_run_and_resumes_a_finished_run()
  local plain = learner(false):run(blobs())
  local dir = helpers.tmpname("-ckpt")
  local saved = learner(dir):run(blobs())
  lu.assertEquals(saved.acc, plain.acc)
  -- a finished run resumes straight to its results
  local again = learner(dir, { resume = true }):run(blobs())
  lu.assertEquals(again.acc, plain.acc)
  lu.assertEquals(again.extra.per_task, plain.extra.per_task and saved.extra.per_task)
  os.execute("rm -rf " .. q(dir))
end

function TestCheckpoint.test_learner_checkpoint_options_are_checked()
  lu.assertErrorMsgContains("resume, start_task and stop_task need checkpoint",
    function() learner(false, { resume = true }) end)
  lu.assertErrorMsgContains("stop_task must be a positive integer", function() learner("d", { stop_task = 0 }) end)
  lu.assertErrorMsgContains("start_task 2 needs resume = true", function() learner("d", { start_task = 2 }) end)
end

function TestCheckpoint.test_the_recipe_options_are_checked_before_any_work()
  local function parse(args)
    local o, msg = engram.options.parse(args, { exit = false })
    return o, msg
  end
  local _, msg = parse { "--stop-task", "2" }
  lu.assertEquals(msg, "--start-task and --stop-task need --checkpoint DIR or --resume DIR")
  _, msg = parse { "--checkpoint", "a", "--resume", "b" }
  lu.assertStrContains(msg, "name different directories")
  _, msg = parse { "--checkpoint", "/proc/engram-ckpt", "--start-task", "3" }
  lu.assertStrContains(msg, "--start-task needs --resume DIR")
  _, msg = parse { "--checkpoint", "/proc/engram-ckpt/x" }
  lu.assertStrContains(msg, "--checkpoint: cannot make directory /proc/engram-ckpt")
  local dir = helpers.tmpname("-ckpt")
  lu.assertNotNil(parse { "--checkpoint", dir .. "/sub" })
  lu.assertEquals(require("engram.checkpoint").session().dir, dir .. "/sub")
  lu.assertNotNil(parse {})
  lu.assertNil(require("engram.checkpoint").session(), "a later parse without the options clears the session")
  os.execute("rm -rf " .. q(dir))
end
