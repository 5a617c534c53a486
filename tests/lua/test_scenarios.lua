-- engram.scenarios: split / permuted / rotated task sequences, the three
-- scenario kinds, stream options and the errors raised before any training.
local lu = require("luaunit")
local engram = require("engram")
local scenarios = engram.scenarios

-- A small labelled set: n blobs in `classes` classes, split into train and test.
local function blobs(n, classes, dim)
  local all = engram.data.blobs { n = n or 600, classes = classes or 6, dim = dim or 4, seed = 7 }
  return all:split(0.75, 1)
end

local function set_of(list)
  local s = {}
  for _, v in ipairs(list) do s[v] = true end
  return s
end

local function labels_of(ds)
  local out = {}
  for i = 1, #ds do out[i] = ds:label(i) end
  return out
end

TestScenarios = {}

function TestScenarios.test_split_makes_consecutive_class_pairs_with_their_own_samples()
  local train, test = blobs(600, 10)
  local s = scenarios.split(train, test, { tasks = 5 })
  lu.assertEquals(#s, 5)
  lu.assertEquals(s.kind, "class")
  lu.assertEquals(s.num_classes, 10)
  for t, task in s:each() do
    lu.assertEquals(task.classes, { 2 * (t - 1), 2 * t - 1 })
    lu.assertEquals((task.train:classes()), task.classes)
    lu.assertEquals((task.test:classes()), task.classes)
    lu.assertNil(task.active)
    lu.assertTrue(#task.train > 0 and #task.test > 0)
  end
end

function TestScenarios.test_split_class_order_is_seeded()
  local train, test = blobs(600, 10)
  local a = scenarios.split(train, test, { tasks = 5, shuffle_classes = true, seed = 3 })
  local b = scenarios.split(train, test, { tasks = 5, shuffle_classes = true, seed = 3 })
  local c = scenarios.split(train, test, { tasks = 5, shuffle_classes = true, seed = 4 })
  local all, differs = {}, false
  for t = 1, 5 do
    lu.assertEquals(a.tasks[t].classes, b.tasks[t].classes)
    if table.concat(a.tasks[t].classes, ",") ~= table.concat(c.tasks[t].classes, ",") then differs = true end
    for _, k in ipairs(a.tasks[t].classes) do all[#all + 1] = k end
  end
  table.sort(all)
  lu.assertEquals(all, { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 })
  lu.assertTrue(differs)
end

function TestScenarios.test_task_il_masks_each_task_to_its_classes()
  local train, test = blobs(600, 6)
  local s = scenarios.split(train, test, { tasks = 3, scenario = "task" })
  lu.assertEquals(s.kind, "task")
  lu.assertEquals(s.tasks[2].active, { 2, 3 })
  lu.assertFalse(s.mixable)
end

function TestScenarios.test_domain_il_split_maps_labels_to_their_position_in_the_task()
  local train, test = blobs(600, 6)
  local s = scenarios.split(train, test, { tasks = 3, scenario = "domain" })
  lu.assertEquals(s.num_classes, 2)
  local map = s.tasks[1].label_map
  lu.assertEquals(map:totable(), { 0, 1, 0, 1, 0, 1 })
  lu.assertEquals(s.tasks[3].targets, { 0, 1 })
end

function TestScenarios.test_split_that_does_not_divide_is_an_error()
  local train, test = blobs(600, 10)
  lu.assertErrorMsgContains("10 classes do not divide into 3 tasks", scenarios.split, train, test, { tasks = 3 })
  lu.assertErrorMsgContains("need 12 classes", scenarios.split, train, test, { tasks = 4, classes_per_task = 3 })
end

function TestScenarios.test_unknown_option_and_scenario_kind_are_errors()
  local train, test = blobs()
  lu.assertErrorMsgContains("unknown option 'taks'", scenarios.split, train, test, { taks = 3 })
  lu.assertErrorMsgContains("scenario must be 'class', 'task' or 'domain'", scenarios.split, train, test,
    { tasks = 3, scenario = "instance" })
  lu.assertErrorMsgContains("unknown scenario 'spilt'", scenarios.make, "spilt", train, test, {})
  lu.assertErrorMsgContains("expected a training dataset", scenarios.split, {}, test, {})
end

function TestScenarios.test_empty_task_is_an_error()
  local train, test = blobs(600, 4)
  train = train:subset { labels = { 0, 1, 2 } } -- class 3 has no training samples
  lu.assertErrorMsgContains("task 2 ({3}) has no training samples", scenarios.split, train, test,
    { classes = { { 0, 1 }, { 3 } } })
  lu.assertErrorMsgContains("appears in more than one task", scenarios.split, train, test,
    { classes = { { 0, 1 }, { 1, 2 } } })
end

function TestScenarios.test_permuted_tasks_share_labels_and_differ_in_pixels()
  local train, test = blobs(400, 4, 8)
  local s = scenarios.permuted(train, test, { tasks = 3, seed = 2 })
  lu.assertEquals(s.kind, "domain")
  lu.assertEquals(s.num_classes, 4)
  lu.assertNil(s.tasks[1].train:permutation()) -- task 1 sees the original inputs
  local p2, p3 = s.tasks[2].train:permutation(), s.tasks[3].train:permutation()
  lu.assertNotNil(p2)
  lu.assertFalse(p2:equal(p3))
  lu.assertTrue(p2:equal(s.tasks[2].test:permutation()))
  local x1 = s.tasks[1].train:get(1)
  local x2 = s.tasks[2].train:get(1)
  lu.assertFalse(x1:equal(x2))
  lu.assertAlmostEquals(x1:sum(), x2:sum(), 1e-4)
end

function TestScenarios.test_class_il_permuted_offsets_labels_per_task()
  local train, test = blobs(400, 4, 8)
  local s = scenarios.permuted(train, test, { tasks = 3, scenario = "class" })
  lu.assertEquals(s.num_classes, 12)
  lu.assertEquals(s.tasks[3].label_map:totable(), { 8, 9, 10, 11 })
  lu.assertEquals(s.tasks[2].targets, { 4, 5, 6, 7 })
  lu.assertFalse(s.mixable)
end

function TestScenarios.test_rotated_uses_evenly_spaced_angles_and_rotates_images()
  local train, test = engram.data.fashion_mnist()
  local s = scenarios.rotated(train, test, { tasks = 3, samples = 50, test_samples = 20 })
  lu.assertEquals(s.tasks[1].angle, 0)
  lu.assertEquals(s.tasks[2].angle, 90)
  lu.assertEquals(s.tasks[3].angle, 180)
  lu.assertEquals(#s.tasks[2].train, 50)
  lu.assertEquals(#s.tasks[2].test, 20)
  local a = s.tasks[1].test:get(1)
  local b = s.tasks[3].test:get(1)
  lu.assertEquals(s.tasks[1].test:label(1), s.tasks[3].test:label(1))
  lu.assertFalse(a:equal(b))
  lu.assertErrorMsgContains("drift applies to rotated", scenarios.permuted, train, test, { drift = 3 })
end

function TestScenarios.test_rotated_drift_orders_the_stream_in_segments()
  local train, test = engram.data.fashion_mnist()
  local s = scenarios.rotated(train, test, { angles = { 0, 60 }, drift = 3, samples = 60, test_samples = 10 })
  lu.assertFalse(s.tasks[1].shuffle)
  lu.assertEquals(#s.tasks[1].train, 60)
end

function TestScenarios.test_validation_share_is_held_out_of_training()
  local train, test = blobs(800, 4)
  local s = scenarios.split(train, test, { tasks = 2, validation = 0.25 })
  local t1 = s.tasks[1]
  local n = #t1.train + #t1.val
  lu.assertAlmostEquals(#t1.val / n, 0.25, 0.01)
  lu.assertEquals((t1.val:classes()), { 0, 1 })
end

function TestScenarios.test_class_ordered_stream_is_sorted_and_not_shuffled()
  local train, test = blobs(600, 4)
  local s = scenarios.split(train, test, { tasks = 2, order = "class" })
  local task = s.tasks[2]
  lu.assertFalse(task.shuffle)
  local ys = labels_of(task.train)
  for i = 2, #ys do lu.assertTrue(ys[i] >= ys[i - 1]) end
  lu.assertErrorMsgContains("order must be 'iid' or 'class'", scenarios.split, train, test, { tasks = 2, order = "x" })
end

function TestScenarios.test_long_tail_thins_later_classes()
  local train, test = blobs(2000, 4)
  local s = scenarios.split(train, test, { tasks = 1, long_tail = 1.5 })
  local counts = s.tasks[1].train:class_counts()
  lu.assertTrue(counts[0] > counts[1] and counts[1] > counts[2] and counts[2] > counts[3])
end

function TestScenarios.test_blurry_tasks_borrow_samples_from_their_neighbours()
  local train, test = blobs(1200, 6)
  local s = scenarios.split(train, test, { tasks = 3, blurry = 0.2 })
  local cls = set_of((s.tasks[2].train:classes()))
  lu.assertTrue(cls[0] or cls[1])
  lu.assertTrue(cls[4] or cls[5])
  local counts = s.tasks[2].train:class_counts()
  local own = counts[2] + counts[3]
  lu.assertAlmostEquals(own / #s.tasks[2].train, 0.8, 0.05)
  lu.assertErrorMsgContains("blurry must be a number in [0, 1)", scenarios.split, train, test,
    { tasks = 3, blurry = 1.5 })
end

function TestScenarios.test_describe_is_plain_data()
  local train, test = blobs()
  local d = scenarios.split(train, test, { tasks = 3, seed = 9 }):describe()
  lu.assertEquals(d.name, "split")
  lu.assertEquals(d.kind, "class")
  lu.assertEquals(#d.tasks, 3)
  lu.assertEquals(d.options.seed, 9)
  engram.json.encode(d) -- must be serialisable
end

function TestScenarios.test_describe_drops_options_a_results_file_cannot_hold()
  local train, test = blobs(600, 4)
  local s = scenarios.split(train, test, { tasks = 2, fractions = { [0] = 0.5 } })
  local d = s:describe()
  lu.assertNil(d.options.fractions)
  engram.json.encode(d)
end

function TestScenarios.test_from_tasks_builds_a_scenario_the_learner_runs()
  local train, test = blobs(600, 4)
  local s = scenarios.from_tasks({
    { train = train:subset { labels = { 0, 1 } }, test = test:subset { labels = { 0, 1 } } },
    { train = train:subset { labels = { 2, 3 } }, test = test:subset { labels = { 2, 3 } }, name = "second" },
  }, { scenario = "task" })
  lu.assertEquals(#s, 2)
  lu.assertEquals(s.tasks[2].name, "second")
  lu.assertEquals(s.tasks[1].active, { 0, 1 })
  lu.assertFalse(s.mixable)
  local L = engram.learner(engram.nn.mlp { 4, 16, 4 }:build { seed = 1 }, { quiet = true, epochs = 2, batch = 16 })
  local doc = L:run(s)
  lu.assertEquals(#doc.acc, 2)
  lu.assertErrorMsgContains("task 2 needs train and test datasets", scenarios.from_tasks, { { train = train,
    test = test }, { train = train } })
end
