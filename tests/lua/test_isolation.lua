-- The parameter-isolation strategies (lora, adapters, freeze, heads,
-- progressive) in the learner: after all tasks, switching to task j's set
-- gives outputs bit-identical to those right after task j was learnt (zero
-- forgetting, tested with equal, not a tolerance); composition with each
-- other and with EWC; the per-task figures in the results; state as named
-- tensors; errors naming the option or the path.
local lu = require("luaunit")
local engram = require("engram")
local S = engram.strategies

local function fails(f, ...)
  local ok, err = pcall(f, ...)
  lu.assertFalse(ok)
  return tostring(err)
end

local function blobs(kind)
  local all = engram.data.blobs { n = 900, classes = 6, dim = 8, std = 1.0, seed = 3 }
  local train, test = all:split(0.8, 1)
  return engram.scenarios.split(train, test, { tasks = 3, scenario = kind or "task" })
end

-- A strategy that keeps, right after task j was learnt and evaluated, the
-- model's outputs on task j's test inputs, and at the end of the run the
-- outputs after the last task with task j's set selected (the strategies
-- before it select it in before_eval).
local function witness()
  local w = { name = "witness", first = {}, last = {} }
  function w.after_eval(_, ctx)
    local j = ctx.eval_task
    if j > ctx.t then return end
    local x = ctx.tasks[j].test:range(1, 50, nil, nil, true)
    local y = ctx.model:forward(x):clone()
    if j == ctx.t then w.first[j] = y end
    if ctx.t == ctx.T then w.last[j] = y end
  end
  return w
end

local function run(model, strategies, scen, opts)
  local o = { epochs = 2, batch = 32, lr = 0.01, quiet = true }
  for k, v in pairs(opts or {}) do o[k] = v end
  local L = engram.learner(model, o)
  for _, s in ipairs(strategies) do
    if s[1] then L:use(s[1], s[2]) else L:use(s) end
  end
  local w = witness()
  L:use(w)
  local doc = L:run(scen or blobs())
  return doc, w, L
end

local function assert_zero_forgetting(doc, w)
  for j = 1, #doc.acc do
    lu.assertTrue(w.last[j]:equal(w.first[j]), "task " .. j .. "'s outputs changed")
    lu.assertEquals(doc.acc[#doc.acc][j], doc.acc[j][j])
  end
  lu.assertEquals(doc.forgetting, 0)
end

TestIsolation = {}

function TestIsolation.test_lora_with_heads_switches_back_to_each_task_bit_for_bit()
  local model = engram.nn.mlp { 8, 32, 32, 6 }:build { seed = 1 }
  local lora = S.lora { rank = 4, layers = { "1", "3" } }
  local heads = S.heads {}
  local doc, w = run(model, { heads, { lora, { tasks = "2-" } } })
  assert_zero_forgetting(doc, w)
  lu.assertTrue(doc.acc[3][3] > 0.7)
  local iso = doc.extra.isolation
  lu.assertEquals(#iso.per_task, 3)
  lu.assertEquals(iso.per_task[1].share, 1) -- task 1 trains the whole model
  local p2 = iso.per_task[2]
  lu.assertEquals(p2.groups, { "heads.task2", "lora.task2" })
  lu.assertEquals(p2.trainable, 4 * (8 + 32) + 4 * (32 + 32) + (32 * 6 + 6))
  lu.assertEquals(p2.bytes, 4 * p2.trainable)
  lu.assertEquals(p2.full_bytes, 4 * p2.total)
  lu.assertAlmostEquals(p2.share, p2.trainable / p2.total, 1e-12)
  local st = lora:state()
  lu.assertEquals(st["lora.task2.1.2.A"]:size(), { 4, 8 })
  lu.assertEquals(st["lora.task3.3.3.B"]:size(), { 32, 4 })
  lu.assertEquals(lora:state_bytes(), 4 * 2 * (4 * (8 + 32) + 4 * (32 + 32)))
  lu.assertEquals(heads:state()["heads.task3.5.3.weight"]:size(), { 6, 32 })
  lu.assertTrue(engram.results.validate(doc))
  lu.assertStrContains(fails(lora.activate, lora, 7), "lora: no set for 7 (sets: 2, 3)")
end

function TestIsolation.test_adapters_with_heads_switch_back_bit_for_bit()
  local model = engram.nn.mlp { 8, 32, 32, 6 }:build { seed = 2 }
  local ad = S.adapters { bottleneck = 4 }
  local doc, w = run(model, { S.heads {}, { ad, { tasks = "2-" } } })
  assert_zero_forgetting(doc, w)
  lu.assertEquals(doc.extra.isolation.per_task[3].groups, { "heads.task3", "adapters.task3" })
  lu.assertEquals(ad:state()["adapters.task2.6.1.down_weight"]:size(), { 4, 32 })
end

function TestIsolation.test_progressive_columns_keep_earlier_tasks_bit_for_bit()
  local model = engram.nn.Sequential(engram.nn.Progressive { 8, 16, 16, 6 }):build { seed = 3 }
  local pr = S.progressive {}
  local doc, w = run(model, { pr })
  assert_zero_forgetting(doc, w)
  lu.assertTrue(doc.acc[3][3] > 0.7)
  lu.assertEquals(#model:groups(), 3)
  lu.assertNotNil(pr:state()["column3.1.3.5.weight"]) -- column 3's lateral from column 1 into layer 2
  lu.assertStrContains(fails(run, engram.nn.mlp { 8, 6 }:build { seed = 1 }, { S.progressive {} }),
    "progressive: the model must hold one nn.Progressive, it holds 0")
end

function TestIsolation.test_lora_on_every_layer_in_domain_il_switches_back_bit_for_bit()
  local model = engram.nn.mlp { 8, 32, 2 }:build { seed = 4 }
  local doc, w = run(model, { { S.lora { rank = 2 }, { tasks = "2-" } } }, blobs("domain"))
  assert_zero_forgetting(doc, w)
  lu.assertEquals(doc.extra.isolation.per_task[2].trainable, 2 * (8 + 32) + 2 * (32 + 2))
end

function TestIsolation.test_lora_on_the_hidden_layer_composes_with_ewc_on_the_shared_head()
  local model = engram.nn.mlp { 8, 32, 6 }:build { seed = 5 }
  local ewc = S.ewc { lambda = 100, samples = 100 }
  local L = engram.learner(model, { epochs = 2, batch = 32, lr = 0.01, quiet = true })
  L:use(S.lora { rank = 2, layers = "1" }, { tasks = "2-" }):use(ewc, { tasks = "2-" })
  local w1
  local probe = { name = "probe", after_task = function(_, ctx)
    if ctx.t == 1 then w1 = ctx.model:get("1").weight:clone() end
  end }
  L:use(probe)
  local doc = L:run(blobs())
  lu.assertTrue(model:get("1.1").weight:equal(w1)) -- the wrapped layer's base weights stay
  lu.assertEquals(#doc.acc, 3)
  local names = {}
  for k in pairs(ewc:state()) do names[#names + 1] = k end
  table.sort(names)
  lu.assertTrue(#names > 0)
  -- the head is shared and trained (masked task-IL), EWC holds it near task 1's
  lu.assertTrue(doc.extra.isolation.per_task[2].trainable == 2 * (8 + 32) + (32 * 6 + 6))
end

function TestIsolation.test_freeze_keeps_the_layers_it_names_from_its_first_task()
  local model = engram.nn.mlp { 8, 32, 6 }:build { seed = 6 }
  local w1
  local probe = { name = "probe", after_task = function(_, ctx)
    if ctx.t == 1 then w1 = ctx.model:get("1").weight:clone() end
  end }
  local fr = S.freeze { layers = "1", params = "3%.bias" }
  local doc = run(model, { { fr, { tasks = "2-" } }, probe })
  lu.assertTrue(model:get("1").weight:equal(w1))
  lu.assertEquals(doc.extra.isolation.per_task[2].trainable, 32 * 6)
  lu.assertEquals(fr:state()["mask.base"]:numel(), model:numel())
  lu.assertStrContains(fails(S.freeze, {}), "freeze: give layers")
end

function TestIsolation.test_bad_options_and_paths_are_errors_naming_them()
  lu.assertStrContains(fails(S.lora, { rank = 0 }), "lora: rank must be a positive integer, got 0")
  lu.assertStrContains(fails(S.lora, { ranks = 2 }), "unknown option 'ranks'")
  lu.assertStrContains(fails(S.lora, { freeze = "all" }), "freeze must be 'wrapped', 'base' or false")
  lu.assertStrContains(fails(S.adapters, { activation = "swish" }), "unknown activation 'swish'")
  lu.assertStrContains(fails(S.heads, { init = "zeros" }), "heads: init must be 'fresh' or 'copy'")
  local err = fails(run, engram.nn.mlp { 8, 32, 6 }:build { seed = 1 }, { S.lora { layers = "4" } })
  lu.assertStrContains(err, "lora: wrap: no module at path '4'")
  err = fails(run, engram.nn.mlp { 8, 32, 6 }:build { seed = 1 }, { S.lora { rank = 7, layers = "3" } })
  lu.assertStrContains(err, "LoRA: rank 7 is larger than the layer (Linear(32->6): at most 6)")
end

function TestIsolation.test_results_text_and_report_show_the_per_task_figures()
  local model = engram.nn.mlp { 8, 32, 6 }:build { seed = 7 }
  local doc = run(model, { S.heads {}, { S.lora { rank = 2, layers = "1" }, { tasks = "2-" } } })
  local text = engram.results.format(doc)
  lu.assertStrContains(text, "parameter isolation: per task")
  local p = doc.extra.isolation.per_task[2]
  lu.assertStrContains(text, string.format("task 2   trained %d of %s params", p.trainable,
    engram.results.thousands(p.total)))
  lu.assertStrContains(text, "[heads.task2, lora.task2]")
  -- the document survives a JSON round trip with its figures
  local back = engram.json.decode(engram.json.encode(doc))
  lu.assertEquals(back.extra.isolation.per_task[3].trainable, doc.extra.isolation.per_task[3].trainable)
  local html = engram.report.html({ doc }, { created = "now" })
  lu.assertStrContains(html, "<h2>Parameter isolation</h2>")
  lu.assertStrContains(html, "<td>" .. engram.results.thousands(p.bytes) .. "</td>")
end

function TestIsolation.test_isolation_vs_compares_each_task_with_full_fine_tuning()
  local scen = blobs()
  local full = run(engram.nn.mlp { 8, 32, 6 }:build { seed = 8 }, { S.naive() }, scen)
  local doc = run(engram.nn.mlp { 8, 32, 6 }:build { seed = 8 },
    { S.heads {}, { S.lora { rank = 2, layers = "1" }, { tasks = "2-" } } }, scen)
  local lines, worst = engram.results.isolation_vs(doc, full, 8 * 32 + 32 + 32 * 6 + 6)
  lu.assertStrContains(lines[1], "equals the one right after learning it: yes")
  local want = math.huge
  for j = 2, 3 do want = math.min(want, doc.acc[j][j] / full.acc[j][j]) end
  lu.assertEquals(worst, want)
  lu.assertStrContains(lines[#lines], string.format("the worst task reaches %.1f%%", 100 * want))
  lu.assertStrContains(fails(engram.results.isolation_vs, full, nil, 10), "the document has no extra.isolation")
end

function TestIsolation.test_models_after_isolation_runs_clone_and_compute_the_same()
  local x = engram.randn(5, 8)
  local models = {
    { engram.nn.mlp { 8, 32, 32, 6 }:build { seed = 9 },
      { S.heads {}, { S.adapters { bottleneck = 3 }, { tasks = "2-" } } } },
    { engram.nn.mlp { 8, 32, 6 }:build { seed = 9 },
      { S.heads {}, { S.lora { rank = 2, layers = "1" }, { tasks = "2-" } } } },
    { engram.nn.Sequential(engram.nn.Progressive { 8, 16, 6 }):build { seed = 9 }, { S.progressive {} } },
  }
  for i, mc in ipairs(models) do
    local model = mc[1]
    run(model, mc[2])
    local c = model:clone()
    lu.assertTrue(c:forward(x):equal(model:forward(x)), "model " .. i)
    lu.assertEquals(#c:groups(), #model:groups())
  end
end

function TestIsolation.test_state_tensors_are_views_of_the_sets()
  local model = engram.nn.mlp { 8, 32, 6 }:build { seed = 10 }
  local lora = S.lora { rank = 2, layers = "1" }
  run(model, { S.heads {}, { lora, { tasks = "2-" } } })
  local st = lora:state()
  st["lora.task2.1.2.B"]:fill_(0.5)
  lu.assertEquals(model:get("1").sets[2].B:sum(), 0.5 * 32 * 2)
end

function TestIsolation.test_adapters_compose_with_replay_for_a_trained_shared_model()
  local model = engram.nn.mlp { 8, 32, 6 }:build { seed = 11 }
  local replay = S.replay { memory = 60 }
  local doc = run(model, { { S.adapters { bottleneck = 4, freeze = false }, { tasks = "2-" } }, replay },
    blobs("class"))
  lu.assertEquals(#doc.acc, 3)
  -- nothing frozen: every parameter trains in every task
  lu.assertEquals(doc.extra.isolation.per_task[3].trainable, doc.extra.isolation.per_task[3].total -
    (2 * 32 * 4 + 4 + 32)) -- all but task 2's adapter (one ReLU, one place)
  lu.assertEquals(doc.extra.isolation.per_task[3].groups, { "adapters.task3" })
end

function TestIsolation.test_lora_strategy_merges_unmerges_and_combines_task_sets()
  local model = engram.nn.mlp { 8, 32, 2 }:build { seed = 12 }
  local lora = S.lora { rank = 2 }
  run(model, { { lora, { tasks = "2-" } } }, blobs("domain"))
  local x = engram.randn(7, 8)
  lora:activate(nil)
  local y0 = model:forward(x):clone()
  local d = {}
  for _, t in ipairs { 2, 3 } do
    lora:activate(t)
    d[t] = model:forward(x) - y0
  end
  local W = { model:get("1.1").weight:clone(), model:get("3.1").weight:clone() }
  local dW = {}
  for _, t in ipairs { 2, 3 } do
    lora:merge(t)
    if t == 2 then lu.assertTrue((model:forward(x) - y0):allclose(d[2], 1e-4, 1e-5)) end
    dW[t] = { model:get("1.1").weight - W[1], model:get("3.1").weight - W[2] }
    lora:unmerge()
    lu.assertTrue(model:get("1.1").weight:equal(W[1]))
    lu.assertTrue(model:get("3.1").weight:equal(W[2]))
  end
  -- the combination's weight change in every layer is the weighted sum of the tasks'
  lu.assertEquals(lora:combine("mix", { 2, 3 }, { 0.25, 0.75 }), "lora.mix")
  lora:merge("mix")
  lu.assertTrue((model:get("1.1").weight - W[1]):allclose(dW[2][1] * 0.25 + dW[3][1] * 0.75, 1e-4, 1e-6))
  lu.assertTrue((model:get("3.1").weight - W[2]):allclose(dW[2][2] * 0.25 + dW[3][2] * 0.75, 1e-4, 1e-6))
  lora:unmerge()
  lu.assertTrue(model:groups()[#model:groups()].frozen)
  lu.assertStrContains(fails(lora.combine, lora, "bad", { 2, 9 }, { 1, 1 }), "lora:combine: no set for 9")
  lu.assertStrContains(fails(lora.merge, lora, 8), "lora: no set for 8")
end
