-- The federated strategy (FedAvg across simulated clients in one process):
-- one client and one round is plain training bit for bit; the averager
-- gives the weighted mean exactly and leaves unchanged elements bit for bit;
-- a round ends with the clients' models averaged by their sample counts; the
-- non-IID split is seeded, covers every sample once and skews labels more
-- for smaller alpha; other strategies' training hooks run in the clients;
-- per-task modules (heads + adapters) and per-client replay forget less
-- than federated fine-tuning on a Split Fashion-MNIST subset; bad input
-- gives errors naming the option.
local lu = require("luaunit")
local engram = require("engram")
local S = engram.strategies
local F = S.federated

local function blobs(kind)
  local all = engram.data.blobs { n = 900, classes = 6, dim = 8, std = 1.0, seed = 3 }
  local train, test = all:split(0.8, 1)
  return engram.scenarios.split(train, test, { tasks = 3, scenario = kind or "task" })
end

local function run(strategies, scen, opts, model)
  local o = { epochs = 2, batch = 32, lr = 0.01, quiet = true }
  for k, v in pairs(opts or {}) do o[k] = v end
  model = model or engram.nn.mlp { 8, 32, 32, 6 }:build { seed = 1 }
  local L = engram.learner(model, o)
  for _, s in ipairs(strategies) do
    if s[1] then L:use(s[1], s[2]) else L:use(s) end
  end
  return L:run(scen or blobs()), model
end

-- A dataset of n samples whose one feature is the sample's position (1..n).
local function numbered(n, classes)
  local x, y = engram.zeros(n, 1), engram.zeros(n)
  for i = 1, n do
    x:set(i, 1, i)
    y:set(i, (i * 7) % classes)
  end
  return engram.data.from_tensors(x, y, { classes = classes })
end

TestFederated = {}

function TestFederated.test_one_client_one_round_is_plain_training_bit_for_bit()
  local d1, m1 = run({ S.naive() })
  local d2, m2 = run({ F { clients = 1, rounds = 1, local_epochs = 2 } })
  local g1, g2 = m1:groups(), m2:groups()
  lu.assertEquals(#g1, #g2)
  for i = 1, #g1 do lu.assertTrue(g1[i].params:equal(g2[i].params), "group " .. g1[i].name) end
  lu.assertEquals(d2.acc, d1.acc)
  lu.assertTrue(d1.acc[3][3] > 0.9)
end

function TestFederated.test_same_seed_same_run()
  local a = run({ F { clients = 3, rounds = 2, alpha = 0.3 } })
  local b = run({ F { clients = 3, rounds = 2, alpha = 0.3 } })
  lu.assertEquals(b.acc, a.acc)
  lu.assertEquals(b.extra.federated, a.extra.federated)
end

function TestFederated.test_scheduled_from_task_2_it_leaves_task_1_to_the_learner()
  local doc = run({ S.heads {}, { F { clients = 3, rounds = 2 }, { tasks = "2-" } } })
  local tasks = doc.extra.federated.tasks
  lu.assertEquals(#tasks, 2)
  lu.assertEquals(tasks[1].task, 2)
  lu.assertEquals(#tasks[1].rounds, 2)
  local d = doc.strategies[2]
  lu.assertEquals(d.name, "federated")
  lu.assertEquals(d.options.clients, 3)
  lu.assertEquals(d.options.tasks, "2-")
  lu.assertTrue(doc.acc[3][3] > 0.9)
end

function TestFederated.test_averager_gives_the_weighted_mean_exactly()
  local p1, p2 = engram.tensor { 1, 1, 1, 2 }, engram.tensor { 0.5, -1 }
  local groups = { { params = p1 }, { params = p2 } }
  local avg = F.averager():begin(groups)
  -- client 1
  p1:copy_(engram.tensor { 1, 2, 3, 4 }); p2:copy_(engram.tensor { 0.5, 3 })
  avg:add(groups, 0.25)
  avg:restore(groups)
  lu.assertTrue(p1:equal(engram.tensor { 1, 1, 1, 2 }))
  -- client 2
  p1:copy_(engram.tensor { 5, 6, 7, 8 }); p2:copy_(engram.tensor { 0.5, 7 })
  avg:add(groups, 0.75)
  avg:finish(groups)
  lu.assertTrue(p1:equal(engram.tensor { 4, 5, 6, 7 }), tostring(p1))
  lu.assertTrue(p2:equal(engram.tensor { 0.5, 6 }), tostring(p2))
  -- weights that do not sum to one, divided by their total
  avg:begin(groups)
  p1:copy_(engram.tensor { 4, 5, 6, 15 })
  avg:add(groups, 1)
  avg:restore(groups)
  p1:copy_(engram.tensor { 4, 5, 6, 3 })
  avg:add(groups, 3)
  avg:finish(groups, 4)
  lu.assertTrue(p1:equal(engram.tensor { 4, 5, 6, 6 }), tostring(p1))
end

function TestFederated.test_averager_leaves_an_element_no_client_changed_bit_for_bit()
  local g0 = engram.tensor { 0.1, 0.7, -3.3 }
  local p = g0:clone()
  local groups = { { params = p } }
  local avg = F.averager():begin(groups)
  for k, w in ipairs { 0.3, 0.3, 0.4 } do
    if k > 1 then avg:restore(groups) end
    p:set(3, k * 0.37) -- only element 3 changes
    avg:add(groups, w)
  end
  avg:finish(groups)
  lu.assertEquals(p:get(1), g0:get(1))
  lu.assertEquals(p:get(2), g0:get(2))
  lu.assertAlmostEquals(p:get(3), 0.3 * 0.37 + 0.6 * 0.37 + 1.2 * 0.37, 1e-6)
end

function TestFederated.test_a_round_ends_with_the_clients_models_weighted_by_their_samples()
  -- a witness keeps each client's parameters after its last local step
  local steps, ends = 3, {}
  local w = { name = "witness" }
  function w.after_step(_, ctx)
    local f = ctx.federated
    if f.step == steps then ends[f.client] = ctx.model:groups()[1].params:clone() end
  end
  local fed = F { clients = 3, rounds = 1, local_steps = steps, alpha = 1 }
  local doc, model = run({ w, fed }, blobs("class"), { lr = 0.05 })
  lu.assertEquals(#doc.acc, 3)
  local clients = doc.extra.federated.tasks[3].clients
  local n = 0
  for _, c in ipairs(clients) do n = n + c.samples end
  local expect = engram.zeros(model:groups()[1].numel)
  for k, c in ipairs(clients) do expect:add_(ends[k], c.samples / n) end
  local got = model:groups()[1].params
  lu.assertTrue(got:allclose(expect, 1e-5, 1e-6))
  lu.assertFalse(got:equal(ends[1]))
end

function TestFederated.test_masked_parameters_stay_bit_for_bit_through_the_averaging()
  local model = engram.nn.mlp { 8, 32, 32, 6 }:build { seed = 1 }
  local seen = {}
  local w = { name = "witness", after_task = function(_, ctx)
    seen[ctx.t] = ctx.model:get("1").weight:clone()
  end }
  local doc = run({ { S.freeze { layers = "1" }, { tasks = "2-" } }, w, F { clients = 3, rounds = 2 } }, nil, nil,
    model)
  lu.assertTrue(doc.acc[3][3] > 0.5)
  lu.assertTrue(seen[3]:equal(seen[1]))
  lu.assertFalse(model:get("3").weight:equal(seen[1]:narrow(1, 1, 1))) -- the rest trained
end

function TestFederated.test_training_hooks_run_inside_every_client()
  local counts = { before_batch = 0, loss = 0, after_backward = 0, after_step = 0 }
  local penalised = 0
  local c = { name = "counter" }
  for h in pairs(counts) do c[h] = function() counts[h] = counts[h] + 1 end end
  c.after_backward = function(_, ctx)
    counts.after_backward = counts.after_backward + 1
    if ctx.penalty > 0 then penalised = penalised + 1 end
  end
  run({ S.ewc { lambda = 100 }, c, F { clients = 2, rounds = 3, local_steps = 4 } })
  for h, n in pairs(counts) do lu.assertEquals(n, 3 * 3 * 2 * 4, h) end -- tasks x rounds x clients x steps
  lu.assertEquals(penalised, 2 * 3 * 2 * 4) -- EWC's penalty from task 2 on, in every client's steps
end

-- Two memories append to the batch in task-IL (the clients' own and a shared
-- replay): each stored sample keeps its task (before, the second append
-- marked the first one's samples as the current task's and the loss failed).
function TestFederated.test_client_memories_compose_with_a_shared_replay_in_task_il()
  local seen = 0
  local w = { name = "witness", after_backward = function(_, ctx)
    if ctx.t == 3 then
      local st = ctx.sample_tasks
      lu.assertEquals(st:numel(), ctx.x:size(1))
      lu.assertEquals(st:lt(2):sum(), ctx.x:size(1) - ctx.task_x:size(1)) -- the stored rows: tasks 1 and 2
      seen = seen + 1
    end
  end }
  local doc = run({ S.replay { memory = 60 }, w, F { clients = 3, rounds = 2, memory = 30 } })
  local steps = 0 -- rounds x each client's batches (of 32) in its one local epoch
  for _, c in ipairs(doc.extra.federated.tasks[3].clients) do steps = steps + 2 * math.ceil(c.samples / 32) end
  lu.assertEquals(seen, steps)
  lu.assertTrue(doc.forgetting < 0.05, doc.forgetting)
end

function TestFederated.test_split_is_seeded_and_covers_every_sample_once()
  local ds = numbered(500, 5)
  local a, plan = F.split(ds, 6, { alpha = 0.3, seed = 7 })
  local b = F.split(ds, 6, { alpha = 0.3, seed = 7 })
  local c = F.split(ds, 6, { alpha = 0.3, seed = 8 })
  lu.assertEquals(#a, 6)
  local seen, total, differs = {}, 0, false
  for k = 1, 6 do
    local xa, ya = a[k]:tensors(true)
    local xb = b[k]:tensors(true)
    lu.assertTrue(xa:equal(xb), "client " .. k .. " differs with the same seed")
    if #c[k] ~= #a[k] then differs = true end
    for i, v in ipairs(xa:view(-1):totable()) do
      lu.assertNil(seen[v], "sample " .. v .. " twice")
      seen[v] = true
      lu.assertEquals(ya:get(i), (v * 7) % 5)
    end
    total = total + #a[k]
    -- the plan's class counts are the client's
    local cc = a[k]:class_counts()
    for i, cls in ipairs(plan.classes) do lu.assertEquals(cc[cls] or 0, plan.counts[k][i]) end
  end
  lu.assertEquals(total, 500)
  for i = 1, 500 do lu.assertTrue(seen[i], "sample " .. i .. " lost") end
  lu.assertTrue(differs)
  -- one client: the dataset itself
  local one = F.split(ds, 1, { seed = 1 })
  lu.assertEquals(one[1], ds)
end

-- Mean over clients of the share of their commonest class.
local function skew(clients)
  local s = 0
  for _, d in ipairs(clients) do
    local top = 0
    for _, n in pairs(d:class_counts()) do top = math.max(top, n) end
    s = s + top / #d
  end
  return s / #clients
end

function TestFederated.test_smaller_alpha_skews_the_clients_labels_more()
  local ds = numbered(2000, 5)
  local iid = skew(F.split(ds, 8, { alpha = math.huge, seed = 1 }))
  local mild = skew(F.split(ds, 8, { alpha = 10, seed = 1 }))
  local strong = skew(F.split(ds, 8, { alpha = 0.1, seed = 1 }))
  lu.assertAlmostEquals(iid, 0.2, 0.01)
  lu.assertTrue(mild < 0.35, mild)
  lu.assertTrue(strong > 0.7, strong)
  local two = F.split(ds, 5, { classes = 2, seed = 1 })
  for _, d in ipairs(two) do lu.assertEquals(#d:classes(), 2) end
  local one = F.split(ds, 5, { classes = 1, seed = 1 })
  for _, d in ipairs(one) do lu.assertEquals(#d:classes(), 1) end
end

function TestFederated.test_bad_input_gives_errors_naming_the_option()
  local ds = numbered(100, 4)
  lu.assertErrorMsgContains("clients must be a positive integer, got 0", F, { clients = 0 })
  lu.assertErrorMsgContains("rounds must be a positive integer, got 1.5", F, { rounds = 1.5 })
  lu.assertErrorMsgContains("local_epochs must be a positive integer", F, { local_epochs = -1 })
  lu.assertErrorMsgContains("alpha must be a positive number", F, { alpha = 0 })
  lu.assertErrorMsgContains("alpha must be a positive number", F, { alpha = "x" })
  lu.assertErrorMsgContains("memory must be a non-negative integer", F, { memory = -5 })
  lu.assertErrorMsgContains("unknown option 'client' (known: alpha, classes, clients", F, { client = 3 })
  lu.assertErrorMsgContains("federated.split: expected a dataset", F.split, {}, 2)
  lu.assertErrorMsgContains("number of clients must be a positive integer, got 0", F.split, ds, 0)
  lu.assertErrorMsgContains("alpha must be a positive number", F.split, ds, 2, { alpha = -1 })
  lu.assertErrorMsgContains("unknown option 'alfa'", F.split, ds, 2, { alfa = 1 })
  lu.assertErrorMsgContains("200 clients of at least 1 samples need 200 samples; the dataset has 100", F.split, ds,
    200)
  lu.assertErrorMsgContains("after 100 draws a client still holds fewer than 10 samples", F.split, ds, 10,
    { alpha = 0.01, min_samples = 10, seed = 1 })
  lu.assertErrorMsgContains("classes = 5 per client, but the dataset holds 4 classes", F.split, ds, 2, { classes = 5 })
  lu.assertErrorMsgContains("3 clients of 1 classes each leave some of the 4 classes to no client", F.split, ds, 3,
    { classes = 1 })
  lu.assertErrorMsgContains("begin was called with nil groups", F.averager().add, F.averager(), {}, 1)
  -- compositions that cannot work
  lu.assertErrorMsgContains("si needs the learner's per-step penalty gradients", run, { S.si {}, F {} })
  lu.assertErrorMsgContains("heads is added after federated and has a before_task hook; add federated last", run,
    { F {}, S.heads {} })
  lu.assertErrorMsgContains("task 1: after 100 draws a client still holds fewer than 20 samples", run,
    { F { clients = 10, alpha = 0.05, min_samples = 20 } })
  lu.assertErrorMsgContains("another strategy set ctx.train_parts", run, { S.cumulative {}, F {} })
end

-- On a Split Fashion-MNIST task-IL subset (3 tasks of 6,000 images), four
-- clients with Dirichlet(0.5) label skew, 3 rounds: per-task heads and
-- adapters (the base frozen from task 2) keep every task exactly, and a
-- per-client memory of 100 samples forgets far less than federated
-- fine-tuning (measured: forgetting 12.3 points naive, 0 modular, 0.7 with
-- the memories; seeds 2 and 3: 22.8 / 0 / 0.8 and 1.8 / 0 / 0.3).
function TestFederated.test_modules_and_client_memories_forget_less_than_federated_fine_tuning()
  local train, test = engram.data.fashion_mnist { normalize = true }
  local scen = engram.scenarios.split(train, test, { tasks = 3, scenario = "task", classes_per_task = 2, samples = 6000,
    test_samples = 300, seed = 1 })
  local function fmnist(strategies)
    return run(strategies, scen, { batch = 64, lr = 0.001 }, engram.nn.mlp { 784, 100, 100, 10 }:build { seed = 1 })
  end
  local fed = { clients = 4, alpha = 0.5, rounds = 3 }
  local naive = fmnist({ F(fed) })
  local modular = fmnist({ S.heads {}, { S.adapters { bottleneck = 16 }, { tasks = "2-" } }, F(fed) })
  local memory = fmnist({ F { clients = 4, alpha = 0.5, rounds = 3, memory = 100 } })
  lu.assertTrue(naive.forgetting > 0.05, naive.forgetting)
  lu.assertEquals(modular.forgetting, 0)
  lu.assertTrue(memory.forgetting < naive.forgetting / 2, memory.forgetting .. " vs " .. naive.forgetting)
  for _, d in ipairs { naive, modular, memory } do lu.assertTrue(d.acc[3][3] > 0.85, d.name) end
  lu.assertTrue(modular.trainable_params < naive.trainable_params / 5)
end
