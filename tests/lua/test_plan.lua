-- engram.plan and the stepped learner: phases with their own strategies,
-- budgets, learning rates and data; rules that react to measurements; hooks
-- of one's own; errors before training; learner:start/step/finish.
local lu = require("luaunit")
local engram = require("engram")
local S = engram.strategies

local function blob_scenario(opts)
  local all = engram.data.blobs { n = 1200, classes = 6, dim = 8, std = 1.0, seed = 3 }
  local train, test = all:split(0.8, 1)
  local o = { tasks = 3, validation = 0.1 }
  for k, v in pairs(opts or {}) do o[k] = v end
  return engram.scenarios.split(train, test, o)
end

local function model() return engram.nn.mlp { 8, 32, 6 }:build { seed = 1 } end

local function learner(o)
  local opts = { epochs = 2, batch = 32, lr = 0.01, quiet = true }
  for k, v in pairs(o or {}) do opts[k] = v end
  return engram.learner(model(), opts)
end

local function params(L)
  local out = {}
  for i, g in ipairs(L.model:groups()) do out[i] = g.params:totable() end
  return out
end

TestPlan = {}

function TestPlan.test_step_by_step_equals_run_bit_for_bit()
  local A = learner():use(S.replay { memory = 100 })
  local da = A:run(blob_scenario())
  local B = learner():use(S.replay { memory = 100 })
  B:start(blob_scenario())
  local rows = 0
  while true do
    local t, row = B:step()
    if not t then break end
    rows = rows + 1
    lu.assertEquals(#row, 3)
  end
  lu.assertEquals(rows, 3)
  local db = B:finish()
  lu.assertEquals(db.acc, da.acc)
  lu.assertEquals(params(B), params(A))
  lu.assertErrorMsgContains("no run in progress", B.step, B)
end

function TestPlan.test_finish_before_the_last_task_and_step_without_start_are_errors()
  local L = learner():use(S.naive())
  lu.assertErrorMsgContains("call learner:start(scenario) first", L.step, L)
  L:start(blob_scenario())
  L:step()
  lu.assertErrorMsgContains("task 2 of 3 is not trained yet", L.finish, L)
end

function TestPlan.test_a_plan_with_one_phase_equals_the_strategies_used_directly()
  local A = learner():use(S.replay { memory = 100 }):use(S.ewc { lambda = 10 })
  local da = A:run(blob_scenario())
  local B = learner():use(engram.plan { strategies = { S.replay { memory = 100 }, S.ewc { lambda = 10 } } })
  local db = B:run(blob_scenario())
  lu.assertEquals(db.acc, da.acc)
  lu.assertEquals(params(B), params(A))
end

-- A strategy that records the training hooks it gets as "hook:t:phase".
local function recorder(calls)
  local s = { name = "rec" }
  for _, h in ipairs(engram.learner.HOOKS) do
    s[h] = function(_, ctx)
      if h ~= "before_batch" and h ~= "loss" and h ~= "after_backward" and h ~= "after_step" then
        calls[#calls + 1] = string.format("%s:%d:%s", h, ctx.t, ctx.phase and ctx.phase.name or "-")
      else
        calls[h .. ":" .. ctx.phase.name] = (calls[h .. ":" .. ctx.phase.name] or 0) + 1
      end
    end
  end
  return s
end

function TestPlan.test_phases_run_in_order_with_their_budget_lr_and_acting_strategies()
  local calls, seen = {}, {}
  local P = engram.plan {
    strategies = { rec = recorder(calls), replay = S.replay { memory = 100 } },
    phases = {
      learn = { use = { "replay" } },
      sleep = { use = { "rec", "replay" }, data = "none", iterations = 7, lr = 1e-4, batch = 16 },
    },
    tasks = { { tasks = "1", run = { "learn" } }, { tasks = "2-", run = { "learn", "sleep" } } },
    hooks = { before_phase = function(ctx) seen[#seen + 1] = { ctx.t, ctx.phase.name, ctx.optimizer:lr() } end,
      after_phase = function(ctx) seen[#seen].steps = ctx.step end },
  }
  local L = learner():use(P)
  L:run(blob_scenario())
  -- task 1: learn; tasks 2, 3: learn then sleep at its own lr, 7 steps
  lu.assertEquals(#seen, 5)
  lu.assertEquals({ seen[1][1], seen[1][2], seen[1][3] }, { 1, "learn", 0.01 })
  lu.assertEquals({ seen[3][1], seen[3][2], seen[3][3], seen[3].steps }, { 2, "sleep", 1e-4, 7 })
  lu.assertEquals({ seen[4][2], seen[4][3] }, { "learn", 0.01 }) -- the lr is put back after the phase
  -- the recorder acts in sleep only (14 steps), observes every task
  lu.assertEquals(calls["after_step:sleep"], 14)
  lu.assertNil(calls["after_step:learn"])
  local tasks_observed = 0
  for _, c in ipairs(calls) do if c:match("^after_task:") then tasks_observed = tasks_observed + 1 end end
  lu.assertEquals(tasks_observed, 3)
  lu.assertEquals(calls[1], "before_run:0:-")
  lu.assertEquals(calls[2], "after_task:1:-") -- it observes task 1, where it does not act
  for _, c in ipairs(calls) do lu.assertNotEquals(c, "before_task:1:-") end -- before_task only where it may act
end

function TestPlan.test_a_sleep_on_the_memory_alone_recovers_old_tasks()
  -- naive learning then a sleep of replay alone (data = "none"): the memory's
  -- old tasks come back; learning alone forgets them
  local naive = learner():use(S.naive()):run(blob_scenario())
  local P = engram.plan {
    strategies = { replay = S.replay { memory = 200 } },
    phases = { learn = { use = {} }, sleep = { use = { "replay" }, data = "none", iterations = 30 } },
    tasks = { { tasks = "1", run = { "learn" } }, { tasks = "2-", run = { "learn", "sleep" } } },
  }
  local doc = learner():use(P):run(blob_scenario())
  lu.assertTrue(naive.acc[3][1] < 0.3, "naive forgets task 1: " .. naive.acc[3][1])
  lu.assertTrue(doc.acc[3][1] > naive.acc[3][1] + 0.4, "sleep on replay keeps task 1: " .. doc.acc[3][1])
end

function TestPlan.test_set_reconfigures_a_strategy_for_a_phase_only()
  local ewc = S.ewc { lambda = 10 }
  local during = {}
  local P = engram.plan {
    strategies = { ewc = ewc },
    phases = { learn = {}, hard = { set = { ewc = { lambda = 1000 } }, epochs = 1,
      hooks = { after_step = function() during[#during + 1] = ewc._strength end } } },
    tasks = { { tasks = "2", run = { "learn", "hard" } } },
  }
  learner():use(P):run(blob_scenario())
  lu.assertTrue(#during > 0)
  lu.assertEquals(during[1], 1000)
  lu.assertEquals(ewc._strength, 10)
  lu.assertEquals(ewc:configure { lambda = 5 }, { lambda = 10 })
  lu.assertErrorMsgContains("unknown option 'gamma'", ewc.configure, ewc, { gamma = 1 })
end

function TestPlan.test_a_rule_runs_a_phase_when_a_measurement_crosses_its_threshold_at_most_n_times()
  local P = engram.plan {
    strategies = { replay = S.replay { memory = 200 } },
    phases = { learn = { use = {} }, consolidate = { use = { "replay" }, data = "none", iterations = 10 } },
    rules = { { when = { metric = "val_drop", task = 1, above = 0.10 }, run = "consolidate", at_most = 2 } },
  }
  local L = learner():use(P)
  local doc = L:run(blob_scenario())
  local fired = doc.extra.plan.fired
  lu.assertTrue(#fired >= 1 and #fired <= 2, "fired " .. #fired)
  lu.assertEquals(fired[1].task, 2)
  lu.assertEquals(fired[1].phase, "consolidate")
  lu.assertTrue(fired[1].value > 0.10, "the drop that fired it: " .. fired[1].value)
  -- the rule's phase ran: task 1 kept above where naive leaves it
  lu.assertTrue(doc.acc[3][1] > 0.5, "task 1 after consolidations: " .. doc.acc[3][1])
  -- a function condition reads the same measurements
  local got = {}
  local Q = engram.plan {
    strategies = { S.naive() },
    rules = { { when = function(m, ctx)
      got[#got + 1] = { t = ctx.t, acc = m:val_acc(), loss = m:loss(), drift = m:drift() }
      return false
    end, run = "learn" } },
  }
  learner():use(Q):run(blob_scenario())
  lu.assertEquals(#got, 3)
  lu.assertNil(got[1].acc) -- no earlier task at task 1
  lu.assertTrue(got[2].acc >= 0 and got[2].acc <= 1)
  lu.assertTrue(got[3].loss > 0)
  lu.assertTrue(got[3].drift > 0)
end

function TestPlan.test_unknown_names_fail_when_the_plan_is_built()
  local function err(spec, want)
    local ok, e = pcall(engram.plan, spec)
    lu.assertFalse(ok)
    lu.assertStrContains(tostring(e), want)
  end
  local st = { ewc = S.ewc { lambda = 1 }, replay = S.replay { memory = 10 } }
  err({ strategies = st, phases = { learn = { use = { "ewk" } } } }, "phase 'learn': unknown strategy 'ewk'")
  err({ strategies = st, tasks = { { tasks = "2-", run = { "slepe" } } } }, "unknown phase 'slepe'")
  err({ strategies = st, rules = { { when = { metric = "accuracy", above = 1 }, run = "learn" } } },
    "unknown metric 'accuracy'")
  err({ strategies = st, phases = { learn = { lrr = 1 } } }, "phase 'learn': unknown key 'lrr'")
  err({ strategies = st, phases = { learn = { set = { ewc = { lamda = 1 } } } } }, "unknown option 'lamda'")
  err({ strategies = st, phases = { learn = { set = { replay = { memory = 1 } } } } }, "cannot be re-configured")
  err({ strategies = st, phases = { sleep = { data = "none" } } }, "needs iterations")
  err({ strategies = st, hooks = { after_tsk = function() end } }, "unknown hook 'after_tsk'")
  err({ strategies = st, stratgies = {} }, "unknown option 'stratgies'")
  err({ strategies = st, phases = { learn = { lr = -1 } } }, "lr must be a positive finite number")
  err({ strategies = st, rules = { { when = { metric = "loss" }, run = "learn" } } }, "exactly one of above")
end

function TestPlan.test_a_validation_metric_without_validation_parts_fails_before_training()
  local P = engram.plan {
    strategies = { S.naive() },
    rules = { { when = { metric = "val_acc", below = 0.5 }, run = "learn" } },
  }
  local L = learner():use(P)
  local ok, e = pcall(L.run, L, blob_scenario { validation = 0 })
  lu.assertFalse(ok)
  lu.assertStrContains(tostring(e), "task 1 has no validation part")
  lu.assertNil(L.ctx.acc[1]) -- nothing trained
end

function TestPlan.test_one_plan_per_learner()
  local L = learner():use(engram.plan { strategies = { S.naive() } })
  lu.assertErrorMsgContains("one plan per learner", L.use, L, engram.plan { strategies = { S.naive() } })
end
