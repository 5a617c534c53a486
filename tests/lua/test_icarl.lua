-- iCaRL: exemplars chosen by herding per class (memory // classes each, the
-- prefix kept as classes arrive), the nearest-mean-of-exemplars classifier
-- through the learner's prediction hook, distillation on the old classes;
-- less forgetting than naive fine-tuning in class-IL.
local lu = require("luaunit")
local engram = require("engram")
local S = engram.strategies

local function scenario(kind)
  local all = engram.data.blobs { n = 1200, classes = 6, dim = 8, std = 1.0, seed = 3 }
  local train, test = all:split(0.8, 1)
  return engram.scenarios.split(train, test, { tasks = 3, scenario = kind or "class" })
end

local function run(s, scen)
  local L = engram.learner(engram.nn.mlp { 8, 32, 6 }:build { seed = 1 }, { quiet = true, epochs = 3, lr = 0.01 })
  L:use(s)
  return L:run(scen or scenario())
end

TestICaRL = {}

function TestICaRL.test_icarl_reduces_forgetting_in_class_il()
  local naive, icarl = run(S.naive()), run(S.icarl { memory = 60 })
  lu.assertTrue(icarl.avg_acc > naive.avg_acc + 0.15,
    string.format("ACC: icarl %.3f, naive %.3f", icarl.avg_acc, naive.avg_acc))
  lu.assertTrue(icarl.forgetting < naive.forgetting / 2,
    string.format("forgetting: icarl %.3f, naive %.3f", icarl.forgetting, naive.forgetting))
  lu.assertEquals(icarl.extra.icarl, { exemplars = 60, per_class = 10, classes = 6 })
end

function TestICaRL.test_exemplars_are_the_herding_choice_of_each_class()
  local s = S.icarl { memory = 40 }
  local scen = scenario()
  run(s, scen)
  -- 6 classes: 40 // 6 = 6 each, every exemplar a training sample of its class
  local x, y = scen.tasks[1].train:range(1, #scen.tasks[1].train, nil, nil, true)
  for _, c in ipairs(s.order) do
    lu.assertEquals(s.sets[c].x:size(1), 6, "class " .. c)
  end
  local c0 = s.order[1]
  local first = s.sets[c0].x:narrow(1, 1, 1)
  local found = false
  for i = 1, x:size(1) do
    if y:get(i) == c0 and x:narrow(1, i, 1):equal(first) then found = true end
  end
  lu.assertTrue(found, "an exemplar of class " .. c0 .. " is one of its training samples")
  local _, my = s.mem:tensors()
  lu.assertEquals(#s.mem, 36)
  local per = {}
  for i = 1, my:numel() do per[my:get(i)] = (per[my:get(i)] or 0) + 1 end
  for _, c in ipairs(s.order) do lu.assertEquals(per[c], 6) end
  lu.assertEquals(s:state()["exemplars.class" .. c0]:size(), { 6, 8 })
end

function TestICaRL.test_predictions_come_from_the_nearest_mean_of_exemplars()
  local s = S.icarl { memory = 60 }
  local calls = 0
  local predict = s.predict
  s.predict = function(self, ...)
    local p = predict(self, ...)
    calls = calls + 1
    for _, v in ipairs(p:totable()) do lu.assertTrue(v >= 0 and v < 6 and v == math.floor(v)) end
    return p
  end
  local doc = run(s)
  lu.assertTrue(calls > 0)
  lu.assertEquals(s.means:size(), { 6, 32 }) -- one mean feature per class, of the hidden width
  lu.assertTrue(doc.acc[3][1] > 0.8, "task 1 kept: " .. doc.acc[3][1])
  -- in task-IL the prediction stays within the task's classes
  local t = run(S.icarl { memory = 60 }, scenario("task"))
  lu.assertTrue(t.avg_acc > 0.95)
end

function TestICaRL.test_bad_options_are_named()
  lu.assertErrorMsgContains("icarl: memory must be a positive integer, got 0", S.icarl, { memory = 0 })
  lu.assertErrorMsgContains("icarl: temperature T must be a finite number > 0", S.icarl, { T = -1 })
  lu.assertErrorMsgContains("icarl: unknown option 'memroy'", S.icarl, { memroy = 5 })
  local ok, err = pcall(run, S.icarl { memory = 4 })
  lu.assertFalse(ok)
  lu.assertStrContains(err, "icarl: 4 exemplars cannot hold 6 classes")
end
