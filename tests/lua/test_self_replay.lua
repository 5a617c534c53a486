-- engram.strategies.self_replay: a language model's replay of text it writes
-- itself. The batched sampler draws what one-row sampling draws; the pool
-- holds what the options say (ids, the writer's logits); on three disjoint
-- Markov domains it keeps the first domain better than plain fine-tuning; a
-- run stopped after task 2 resumes to the same figures; bad input is refused
-- by name.
local lu = require("luaunit")
local engram = require("engram")
local core = require("engram.core")
local helpers = require("helpers")

local S = engram.strategies

local function assertError(pattern, f, ...)
  local ok, err = pcall(f, ...)
  lu.assertFalse(ok, "expected an error matching " .. pattern)
  lu.assertStrContains(tostring(err), pattern)
end


local function tiny_gpt(seed)
  return engram.nn.gpt { vocab = 256, ctx = 12, dim = 16, heads = 2, layers = 2 }:build { seed = seed }
end

TestSampleRows = {}

function TestSampleRows.test_rows_are_drawn_as_one_row_at_a_time_from_the_same_generator()
  local g = core.generator(4)
  local logits = core.randn({ 6, 10 }, g)
  local out = core.zeros(6)
  local a, b = core.generator(9), core.generator(9)
  core._text.sample_rows(logits, 0.8, 4, a, out)
  for i = 1, 6 do
    lu.assertEquals(out:get(i), core._text.sample(logits:narrow(1, i, 1), 0.8, 4, b))
  end
  -- a strided view (the last position of each of 3 sequences of 2)
  local last = logits:view(3, 2, 10):select(2, 2)
  local o3 = core.zeros(3)
  core._text.sample_rows(last, 0, nil, a, o3)
  for i = 1, 3 do
    local _, idx = logits:narrow(1, 2 * i, 1):max(2)
    lu.assertEquals(o3:get(i), idx:get(1) - 1)
  end
  assertError("out must be a contiguous tensor of 6 ids", core._text.sample_rows, logits, 1, 0, a, core.zeros(5))
  assertError("logits must be [N, V]", core._text.sample_rows, core.zeros(6), 1, 0, a, out)
  assertError("temperature", core._text.sample_rows, logits, -1, 0, a, out)
end

TestSelfReplay = {}

function TestSelfReplay:setUp() self.dir = helpers.markov_domains() end

function TestSelfReplay:tearDown() os.execute("rm -rf " .. helpers.q(self.dir)) end

function TestSelfReplay:scenario(n) return helpers.markov_scenario(self.dir, n, 64, 16) end

local function run(s, st, extra)
  local o = { batch = 8, lr = 0.01, iterations = 60, quiet = true, seed = 2, name = "r" }
  for k, v in pairs(extra or {}) do o[k] = v end
  local L = engram.learner(tiny_gpt(3), o)
  if st then L:use(st) end
  return L:run(s), L
end

function TestSelfReplay:test_it_keeps_the_first_domain_better_than_fine_tuning_and_fills_its_pool()
  local s = self:scenario(3)
  local naive = run(s)
  local sr = S.self_replay { share = 0.25, seed = 5 }
  local doc = run(s, sr)
  local rise_naive = naive.perplexity[3][1] - naive.perplexity[1][1]
  local rise = doc.perplexity[3][1] - doc.perplexity[1][1]
  lu.assertEquals(doc.perplexity[1][1], naive.perplexity[1][1]) -- task 1 trains the same way
  lu.assertTrue(rise_naive > 1, "naive fine-tuning forgets: rise " .. rise_naive)
  lu.assertTrue(rise < 0.5 * rise_naive, string.format("rise %.3f with self_replay, %.3f naive", rise, rise_naive))
  -- the pool: 16 windows of 12 ids per earlier task (ceil(0.25 * 64)), the writer's logits, none after the last task
  local st = sr:state()
  lu.assertEquals(st["pool.x"]:size(1), 32)
  lu.assertEquals(st["pool.x"]:size(2), 12)
  lu.assertEquals(st["pool.logits"]:size(1), 32 * 12)
  lu.assertEquals(st["pool.logits"]:size(2), 256)
  lu.assertEquals(st["pool.task"]:get(1), 0)
  lu.assertEquals(st["pool.task"]:get(32), 1)
  lu.assertEquals(sr:state_bytes(), 4 * (32 * 12 + 32 * 12 * 256 + 32))
  local e = doc.extra.self_replay
  lu.assertEquals(e.windows, { 16, 16 })
  lu.assertEquals(#e.sample[1], 12)
  lu.assertEquals(e.sample[1]:sub(1, 1), "\n")
  -- what the first domain's writer wrote is mostly its own alphabet
  local own = select(2, e.sample[1]:gsub("[a-m]", ""))
  lu.assertTrue(own >= 8, "pseudo-text of d1: " .. e.sample[1])
  lu.assertEquals(doc.strategies[1].name, "self_replay")
end

function TestSelfReplay.test_generate_keeps_the_writers_own_logits_and_is_seeded()
  local model = tiny_gpt(7)
  model:train()
  local sr = S.self_replay { seed = 1, top_k = 3, chunk = 2 } -- 5 windows in chunks of 2, 2 and 1
  sr.gen = core.generator(1)
  local X, Z = sr:generate(model, 5, 12, 10)
  lu.assertTrue(model.training, "the model is back in training mode")
  lu.assertEquals(X:size(1), 5)
  lu.assertEquals(Z:size(1), 5 * 12)
  for i = 1, 5 do lu.assertEquals(X:get(i, 1), 10) end
  model:evaluate()
  lu.assertEquals((model:forward(X) - Z):abs():max(), 0)
  -- each sampled token is among the 3 most likely after its prefix
  for i = 1, 5 do
    for t = 1, 11 do
      local row = Z:narrow(1, (i - 1) * 12 + t, 1)
      local next_logit = row:get(1, X:get(i, t + 1) + 1)
      local above = 0
      for v = 1, 256 do if row:get(1, v) > next_logit then above = above + 1 end end
      lu.assertTrue(above < 3)
    end
  end
  sr.gen = core.generator(1)
  local X2 = sr:generate(model, 5, 12, 10)
  lu.assertTrue(X2:equal(X))
end

function TestSelfReplay:test_a_run_stopped_after_task_2_resumes_to_the_same_figures()
  local s = self:scenario(3)
  local whole = run(s, S.self_replay { share = 0.2 }, { iterations = 20 })
  local dir = helpers.tmpname(".ck")
  lu.assertErrorMsgContains("stopped after task 2 of 3", function()
    run(s, S.self_replay { share = 0.2 }, { iterations = 20, checkpoint = dir, stop_task = 2 })
  end)
  local resumed = run(s, S.self_replay { share = 0.2 }, { iterations = 20, checkpoint = dir, resume = true })
  os.execute("rm -rf " .. helpers.q(dir))
  lu.assertEquals(resumed.perplexity, whole.perplexity)
  lu.assertEquals(resumed.acc, whole.acc)
end

function TestSelfReplay:test_bad_input_is_refused_by_name()
  assertError("share must be a number > 0", S.self_replay, { share = 0 })
  assertError("weight must be a number in (0, 1)", S.self_replay, { weight = 1 })
  assertError("temperature T must be a finite number > 0", S.self_replay, { T = 0 })
  assertError("temperature (sampling) must be a finite number >= 0", S.self_replay, { temperature = -1 })
  assertError("top_k must be a positive integer", S.self_replay, { top_k = 0 })
  assertError("prompt must be a non-empty string", S.self_replay, { prompt = "" })
  assertError("windows must be a positive integer", S.self_replay, { windows = 2.5 })
  assertError("unknown option", S.self_replay, { sharre = 0.1 })
  assertError("language models only", function()
    local all = engram.data.blobs { n = 120, classes = 4, dim = 8, std = 1.0, seed = 3 }
    local train, test = all:split(0.8, 1)
    local L = engram.learner(engram.nn.mlp { 8, 4 }, { quiet = true, iterations = 1 })
    L:use(S.self_replay {})
    L:run(engram.scenarios.split(train, test, { tasks = 2 }))
  end)
end
