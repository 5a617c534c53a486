-- Defects found by trying engram as a new user would (issue 15), each with
-- the test that failed before its fix.
local lu = require("luaunit")
local engram = require("engram")

TestHardening = {}

-- In-place binary operations on overlapping contiguous views read the
-- elements they had already overwritten (a fast path skipped the overlap
-- check that copy_ has): arange(8)[2..8] += arange(8)[1..7] gave 0,1,3,6,10.
function TestHardening.test_in_place_ops_on_overlapping_views_read_the_original_values()
  for _, op in ipairs({ "add_", "sub_", "mul_", "div_", "pow_", "maximum_", "minimum_" }) do
    for _, shift in ipairs({ 1, -1 }) do -- the operand before or after the output
      local a = engram.arange(8) + 1
      local ref = a:clone()
      local out, arg = a:narrow(1, 2, 7), a:narrow(1, 1, 7)
      local rout, rarg = ref:narrow(1, 2, 7), ref:narrow(1, 1, 7):clone()
      if shift < 0 then
        out, arg = a:narrow(1, 1, 7), a:narrow(1, 2, 7)
        rout, rarg = ref:narrow(1, 1, 7), ref:narrow(1, 2, 7):clone()
      end
      out[op](out, arg)
      rout[op](rout, rarg)
      lu.assertEquals(a:totable(), ref:totable(), op .. " shift " .. shift)
    end
  end
  local a = engram.arange(8)
  a:narrow(1, 2, 7):add_(a:narrow(1, 1, 7))
  lu.assertEquals(a:totable(), { 0, 1, 3, 5, 7, 9, 11, 13 })
  -- y += alpha x through the BLAS path
  a = engram.arange(8)
  a:narrow(1, 2, 7):add_(a:narrow(1, 1, 7), 2)
  lu.assertEquals(a:totable(), { 0, 1, 4, 7, 10, 13, 16, 19 })
  a = engram.arange(8)
  a:narrow(1, 2, 7):sub_(a:narrow(1, 1, 7), 0.5)
  lu.assertEquals(a:totable(), { 0, 1, 1.5, 2, 2.5, 3, 3.5, 4 })
end

local helpers = require("helpers")

local function sh(cmd)
  local p = io.popen(cmd)
  local out = p:read("a")
  p:close()
  return out
end

-- Writing results renamed a temporary file over the target: /dev/null
-- became a regular file and a symbolic link was replaced by a file.
function TestHardening.test_results_written_to_dev_null_or_through_a_link_keep_what_the_target_is()
  engram.json.write_file("/dev/null", { a = 1 })
  lu.assertEquals(sh("test -c /dev/null && echo device"), "device\n")
  local dir = sh("mktemp -d"):gsub("%s+$", "")
  helpers.write_file(dir .. "/real.json", "old")
  sh("ln -s real.json " .. dir .. "/link.json")
  local doc = engram.results.new { acc = { { 0.9 } }, name = "x" }
  engram.results.save(dir .. "/link.json", doc)
  lu.assertEquals(sh("test -L " .. dir .. "/link.json && echo link"), "link\n")
  lu.assertEquals(engram.results.load(dir .. "/real.json")[1].name, "x")
  engram.report.write(dir .. "/link.json", { doc })
  lu.assertEquals(sh("test -L " .. dir .. "/link.json && echo link"), "link\n")
  -- and no temporary file is left beside them
  lu.assertEquals(sh("ls -A " .. dir), "link.json\nreal.json\n")
  sh("rm -r " .. dir)
end

-- The up-front --out check opened the target for appending, but the real
-- write makes a new file in its directory: a directory that takes no new
-- file passed the check, and the results were lost after training.
function TestHardening.test_the_out_check_asks_the_directory_for_a_new_file()
  local spec = { name = "t", exit = false, err = { write = function() end } }
  local o, err = engram.options.parse({ "--out", "/proc/version" }, spec)
  lu.assertNil(o)
  lu.assertStrContains(err, "--out: cannot write /proc/version")
  o = engram.options.parse({ "--out", "/dev/null" }, spec)
  lu.assertEquals(o.out, "/dev/null")
end

-- A results file holding a JSON number gave internal Lua text.
function TestHardening.test_a_results_file_that_is_not_an_object_is_a_named_error()
  local path = helpers.tmpname()
  helpers.write_file(path, "2\n")
  local docs, err = engram.results.read(path)
  lu.assertNil(docs)
  lu.assertStrContains(err, "not a results document (the JSON text is a number)")
  os.remove(path)
end

-- Divergence and NaN in the data trained on silently: the loss printed
-- -nan, the exit code was 0 and the results held loss: null.
local function nan_scenario(poison)
  local all = engram.data.blobs { n = 300, classes = 4, dim = 8, std = 1.0, seed = 3 }
  local train, test = all:split(0.8, 1)
  if poison then
    local x, y = train:range(1, #train, nil, nil, true)
    x = x:clone()
    x:narrow(1, 5, 1):fill_(0 / 0)
    train = engram.data.from_tensors(x, y)
  end
  return engram.scenarios.split(train, test, { tasks = 2 })
end

function TestHardening.test_nan_in_the_data_stops_the_run_naming_the_batch()
  local L = engram.learner(engram.nn.mlp { 8, 16, 4 }:build { seed = 1 }, { quiet = true, batch = 16 })
  local ok, err = pcall(L.run, L, nan_scenario(true))
  lu.assertFalse(ok)
  lu.assertStrContains(err, "learner: the batch at task 1, epoch 1, step ")
  lu.assertStrContains(err, "holds 8 NaN or infinite inputs")
  -- or the batch is left out, and counted
  L = engram.learner(engram.nn.mlp { 8, 16, 4 }:build { seed = 1 },
    { quiet = true, batch = 16, lr = 0.01, epochs = 3, nonfinite = "skip" })
  local doc = L:run(nan_scenario(true))
  lu.assertEquals(doc.extra.skipped_batches, 3) -- once per epoch
  lu.assertTrue(doc.acc[1][1] > 0.9, "task 1 learnt without the batch: " .. doc.acc[1][1])
end

function TestHardening.test_a_diverging_run_stops_with_a_message_naming_the_learning_rate()
  local L = engram.learner(engram.nn.mlp { 8, 16, 4 }:build { seed = 1 },
    { quiet = true, optimizer = "sgd", lr = 1e30 })
  local ok, err = pcall(L.run, L, nan_scenario(false))
  lu.assertFalse(ok)
  lu.assertStrContains(err, "training diverged (lr 1e+30)")
  lu.assertErrorMsgContains("learner: lr must be a positive finite number, got ", engram.learner,
    engram.nn.mlp { 8, 4 }, { lr = 0 / 0 })
  lu.assertErrorMsgContains("learner: nonfinite must be 'stop' or 'skip'", engram.learner, engram.nn.mlp { 8, 4 },
    { nonfinite = "ignore" })
end

-- Binary (precompiled) chunks were accepted by the command and by load(...,
-- "b") in any recipe; tampered bytecode crashed the host.
function TestHardening.test_binary_chunks_are_refused_everywhere()
  local bytes = string.dump(function() return 42 end)
  local f, err = load(bytes)
  lu.assertNil(f)
  lu.assertStrContains(err, "attempt to load a binary chunk")
  lu.assertErrorMsgContains("load: binary chunks are not accepted", load, bytes, "x", "b")
  lu.assertEquals(load("return 7", "x", "bt")(), 7)
  local path = helpers.tmpname(".lua")
  helpers.write_file(path, bytes)
  f, err = loadfile(path)
  lu.assertNil(f)
  lu.assertStrContains(err, "attempt to load a binary chunk")
  lu.assertErrorMsgContains("attempt to load a binary chunk", dofile, path)
  local dir, name = path:match("^(.*)/([^/]+)%.lua$")
  local saved = package.path
  package.path = dir .. "/?.lua;" .. saved
  local ok, rerr = pcall(require, name)
  package.path = saved
  lu.assertFalse(ok)
  lu.assertStrContains(rerr, "attempt to load a binary chunk")
  -- the engram command refuses a binary recipe with a message and a failing status
  local bin = os.getenv("ENGRAM_BIN") or "build/engram"
  local p = io.popen(bin .. " " .. helpers.q(path) .. " 2>&1; echo status $?")
  local out = p:read("a")
  p:close()
  lu.assertStrContains(out, "attempt to load a binary chunk")
  lu.assertStrContains(out, "status 1")
  os.remove(path)
end

-- The CSV reader turned 1e39 into inf silently (the text inf/nan is refused).
function TestHardening.test_a_csv_value_beyond_float32_is_an_error()
  local path = helpers.tmpname(".csv")
  helpers.write_file(path, "a,b,label\n1,2,0\n1e39,3,1\n")
  lu.assertErrorMsgContains("line 3 column 1: 1e39 is out of float32 range", engram.data.csv, path,
    { header = true })
  helpers.write_file(path, "a,b,label\n1,2,0\n-3e38,3.4e38,1\n") -- the largest float32 values are fine
  lu.assertEquals(#engram.data.csv(path, { header = true }), 2)
  os.remove(path)
end

-- results.validate accepted inf and accuracies outside [0, 1]; a file with
-- null in an array loaded but could not be saved again; a strategy whose
-- options are not an object made `engram report` fail with internal text.
function TestHardening.test_results_hold_finite_accuracies_and_round_trip_nulls()
  local R = engram.results
  local ok, err = R.validate { acc = { { 1.5 } } }
  lu.assertNil(ok)
  lu.assertStrContains(err, "acc[1][1] is 1.5, not an accuracy in [0, 1]")
  err = select(2, R.validate { acc = { { math.huge } } })
  lu.assertStrContains(err, "acc[1][1] must be a finite number")
  err = select(2, R.validate { acc = { { 0.5 } }, bwt = -math.huge })
  lu.assertStrContains(err, "field 'bwt' must be a finite number")
  err = select(2, R.validate { acc = { { 0.5 } }, baseline_acc = { -0.1 } })
  lu.assertStrContains(err, "baseline_acc[1] must be an accuracy in [0, 1]")
  err = select(2, R.validate { acc = { { 0.5 } }, strategies = { { name = "ewc", options = 3 } } })
  lu.assertStrContains(err, "strategies[1].options must be a JSON object, not a number")
  -- null in an array (NaN was written as null) loads, and saves again
  local path = helpers.tmpname(".json")
  helpers.write_file(path, '{"acc": [[0.9, 0.1], [0.5, 0.8]], "name": "x", "extra": {"drift": [0, null, 0.3],' ..
    ' "note": null}}')
  local doc = R.load(path)[1]
  lu.assertEquals(#doc.extra.drift, 3)
  lu.assertNil(doc.extra.note)
  R.save(path, doc)
  lu.assertStrContains(helpers.read_file(path), "null")
  lu.assertEquals(#R.load(path)[1].extra.drift, 3)
  -- a report of a file whose strategy options are not an object: a named error
  helpers.write_file(path, '{"acc": [[0.9]], "name": "x", "strategies": [{"name": "ewc", "options": "lambda=1"}]}')
  local docs, rerr = R.read(path)
  lu.assertNil(docs)
  lu.assertStrContains(rerr, "strategies[1].options must be a JSON object, not a string")
  os.remove(path)
end
