-- engram.results: building a run's document (derived metrics), validation,
-- the printed tables, atomic save and load of one run and of {"runs": [...]}.
local lu = require("luaunit")
local results = require("engram.results")
local json = require("engram.json")

local R = {
  { 0.90, 0.10, 0.20 },
  { 0.95, 0.80, 0.30 },
  { 0.50, 0.70, 0.90 },
}

local function sample(extra)
  local o = {
    name = "ewc", seed = 3, acc = R, baseline_acc = { 0.1, 0.2, 0.1 },
    scenario = { name = "split-mnist", kind = "class-IL", details = { classes_per_task = 2 } },
    strategies = { { name = "ewc", options = { lambda = 100 } }, "replay" },
    train_seconds = 20, eval_seconds = 1.5, trainable_params = 478410,
    naive = { acc = 0.4, train_seconds = 10 },
    created = "2026-11-29T05:00:00Z",
  }
  for k, v in pairs(extra or {}) do o[k] = v end
  return results.new(o)
end

local helpers = require("helpers")
local write = helpers.write_file

TestResults = {}

function TestResults.test_new_computes_the_derived_metrics()
  local d = sample()
  lu.assertEquals(d.schema, "engram.results/1")
  lu.assertEquals(d.tasks, 3)
  lu.assertEquals(d.scenario.tasks, 3)
  lu.assertEquals(d.scenario.kind, "class-IL")
  lu.assertAlmostEquals(d.avg_acc, 0.7, 1e-12)
  lu.assertAlmostEquals(d.avg_acc_per_task[2], 0.875, 1e-12)
  lu.assertAlmostEquals(d.bwt, -0.25, 1e-12)
  lu.assertAlmostEquals(d.fwt, 0.05, 1e-12)
  lu.assertAlmostEquals(d.forgetting, 0.275, 1e-12)
  lu.assertAlmostEquals(d.cer, 0.15, 1e-12)
  lu.assertNil(d.nar)
  lu.assertStrContains(d.undefined.nar, "reference")
  lu.assertEquals(d.strategies[1], { name = "ewc", options = { lambda = 100 } })
  lu.assertEquals(d.strategies[2].name, "replay")
  lu.assertEquals(d.created, "2026-11-29T05:00:00Z")
  lu.assertEquals(type(d.engram_version), "string")
end

function TestResults.test_new_copies_the_matrix()
  local m = { { 0.5, 0.1 }, { 0.4, 0.6 } }
  local d = results.new{ acc = m }
  m[1][1] = 0
  lu.assertEquals(d.acc[1][1], 0.5)
end

function TestResults.test_peak_rss_is_read_from_proc()
  local mb = results.peak_rss_mb()
  if io.open("/proc/self/status") then
    lu.assertTrue(mb > 0 and mb < 1e6)
    lu.assertTrue(results.new{ acc = { { 1 } } }.peak_rss_mb > 0)
  end
end

function TestResults.test_new_rejects_unknown_fields_and_bad_matrices()
  local ok, err = pcall(results.new, { acc = R, seeds = 1 })
  lu.assertFalse(ok)
  lu.assertStrContains(err, "unknown field 'seeds'")
  lu.assertStrContains(err, "known: acc, baseline_acc")
  ok, err = pcall(results.new, { name = "x" })
  lu.assertFalse(ok)
  lu.assertStrContains(err, "'acc' is required")
  ok, err = pcall(results.new, { acc = { { 1, 2 } } })
  lu.assertFalse(ok)
  lu.assertStrContains(err, "row 1")
  ok, err = pcall(results.new, { acc = R, baseline_acc = { 1 } })
  lu.assertFalse(ok)
  lu.assertStrContains(err, "baseline accuracies")
end

function TestResults.test_format_shows_the_matrix_and_metrics_line()
  local s = results.format(sample())
  lu.assertStrContains(s, "run ewc (split-mnist, class-IL, 3 tasks, seed 3)  strategies: ewc+replay")
  lu.assertStrMatches(s, ".*after%s+T1%s+T2%s+T3%s+avg\n.*")
  lu.assertStrMatches(s, ".*task 2%s+95%.0%s+80%.0%s+30%.0%s+87%.5\n.*")
  lu.assertStrContains(s, "ACC 70.0%  BWT -25.0  FWT +5.0  forgetting 27.5  RKR 0.72  NAR n/a  CER +15.0")
  lu.assertStrContains(s, "params 478,410")
  local out = { text = "" }
  function out:write(...) for _, v in ipairs({ ... }) do self.text = self.text .. v end end
  results.print(sample(), out)
  lu.assertEquals(out.text, s)
end

function TestResults.test_compare_table_has_one_row_per_run()
  local a = sample()
  local b = sample({ name = "replay", acc = { { 1, 0, 0 }, { 0.9, 1, 0 }, { 0.9, 0.9, 1 } } })
  local t = results.compare_table({ a, b })
  local lines = {}
  for l in t:gmatch("[^\n]+") do lines[#lines + 1] = l end
  lu.assertEquals(#lines, 3)
  lu.assertStrMatches(lines[1], "run%s+ACC%s+BWT%s+FWT%s+forget%s+RKR%s+NAR%s+train s%s+params")
  lu.assertStrMatches(lines[2], "ewc%s+70%.0%%%s+%-25%.0%s+%+5%.0%s+27%.5%s+0%.72%s+n/a%s+20%.0%s+478,410")
  lu.assertStrMatches(lines[3], "replay%s+93%.3%%%s+%-10%.0.*")
end

function TestResults.test_versus_lines_compare_runs_with_a_base_run()
  local a = sample()
  local b = sample({ name = "replay", acc = { { 1, 0, 0 }, { 0.9, 1, 0 }, { 0.9, 0.9, 1 } } })
  local lines = results.versus_lines({ a, b }, "ewc", { "replay", "missing" })
  lu.assertEquals(#lines, 1)
  -- ACC 93.3% against 70.0%; forgetting 27.5 -> 10.0 points
  lu.assertEquals(lines[1], "replay vs ewc: +23.3 points of ACC, forgetting 27.5 -> 10.0 points")
  lu.assertEquals(results.versus_lines({ b }, "ewc", { "replay" }), {})
  lu.assertErrorMsgContains("expected (documents, base run name", results.versus_lines, { a }, nil, {})
end

function TestResults.test_save_and_load_one_run()
  local path = os.tmpname()
  local d = sample()
  results.save(path, d)
  local docs = results.load(path)
  lu.assertEquals(#docs, 1)
  lu.assertEquals(docs[1].name, "ewc")
  lu.assertEquals(docs[1].acc, d.acc)
  lu.assertEquals(docs[1].bwt, d.bwt)
  lu.assertEquals(docs[1].scenario.details.classes_per_task, 2)
  lu.assertNil(docs[1].nar)
  -- the file is pretty, sorted and has no leftover temporary file beside it
  local f = assert(io.open(path))
  local text = f:read("a")
  f:close()
  lu.assertStrContains(text, '"acc": [\n    [0.9, 0.1, 0.2],')
  lu.assertTrue(text:find('"avg_acc"', 1, true) < text:find('"bwt"', 1, true))
  local ls = io.popen("ls " .. path .. ".tmp* 2>/dev/null")
  lu.assertEquals(ls:read("a"), "")
  ls:close()
  os.remove(path)
end

function TestResults.test_save_and_load_several_runs()
  local path = os.tmpname()
  local a, b = sample(), sample({ name = "second" })
  results.save(path, { a, b })
  local v = json.read_file(path)
  lu.assertEquals(#v.runs, 2)
  local docs = results.load(path)
  lu.assertEquals(#docs, 2)
  lu.assertEquals(docs[2].name, "second")
  os.remove(path)
end

function TestResults.test_load_gives_clear_errors()
  local path = os.tmpname()
  write(path, '{"name": "x"}')
  local ok, err = pcall(results.load, path)
  lu.assertFalse(ok)
  lu.assertStrContains(err, path .. ": field 'acc' (the accuracy matrix) is missing")
  write(path, '{"runs": [{"acc": [[1]]}, {"acc": [[1, 0], [1]]}]}')
  err = select(2, pcall(results.load, path))
  lu.assertStrContains(err, "runs[2]: acc[2] must be an array of 2 numbers")
  write(path, '{"acc": [[1]], "tasks": 2}')
  err = select(2, pcall(results.load, path))
  lu.assertStrContains(err, "field 'tasks' is 2 but acc is 1x1")
  write(path, '{"acc": [[1]], "name": 5}')
  err = select(2, pcall(results.load, path))
  lu.assertStrContains(err, "field 'name' must be a string")
  write(path, '{"acc": [[1]],')
  err = select(2, pcall(results.load, path))
  lu.assertStrContains(err, "invalid JSON")
  lu.assertStrContains(err, "line 1")
  write(path, '{"runs": []}')
  err = select(2, pcall(results.load, path))
  lu.assertStrContains(err, "non-empty array")
  os.remove(path)
  err = select(2, pcall(results.load, path))
  lu.assertStrContains(err, "No such file")
end

function TestResults.test_null_metrics_load_as_nil()
  local path = os.tmpname()
  write(path, '{"acc": [[0.5, 0], [0.4, 0.6]], "bwt": -0.1, "fwt": null, "undefined": {"fwt": "no baseline"}}')
  local d = results.load(path)[1]
  lu.assertNil(d.fwt)
  lu.assertEquals(d.bwt, -0.1)
  os.remove(path)
end

function TestResults.test_save_validates_first()
  local ok, err = pcall(results.save, os.tmpname(), { name = "no acc" })
  lu.assertFalse(ok)
  lu.assertStrContains(err, "'acc'")
end

function TestResults.test_sample_files_are_valid()
  local docs = results.load("tests/lua/data/naive_vs_replay.json")
  lu.assertEquals(#docs, 2)
  lu.assertEquals(docs[1].name, "naive")
  lu.assertAlmostEquals(docs[1].avg_acc, (0.9904) / 5, 1e-9)
  local one = results.load("tests/lua/data/ewc_permuted.json")
  lu.assertEquals(#one, 1)
  lu.assertEquals(one[1].scenario.kind, "domain-IL")
end

function TestResults.test_columns_aligns_left_and_right_by_utf8_width()
  lu.assertEquals(results.columns({ { "run", "λ", "ACC" }, { "ewc-perm", "10", "9.5%" } }, { true, true }),
    "run       λ    ACC\newc-perm  10  9.5%\n")
  lu.assertErrorMsgContains("results.columns: row 2, column 1 is a number, not a string", results.columns,
    { { "a" }, { 1 } })
end
