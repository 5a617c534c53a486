-- Bad input never crashes: wrong shapes, types, options, files and values give
-- a Lua error naming the operation and what was wrong; corrupt files are
-- rejected whole. Each test here pins a defect the API fuzzer (fuzz_api.lua)
-- or a probe found, plus a short seeded run of the fuzzer itself.
local lu = require("luaunit")
local engram = require("engram")
local core = require("engram.core")
local data = require("engram.data")

local BIN = os.getenv("ENGRAM_BIN") or "build/engram"

local helpers = require("helpers")
local q = helpers.q
local tmpname = helpers.tmpname
local write = helpers.write_file
local be32 = helpers.be32

-- An IDX file: type byte, dimensions, raw payload.
local function idx_bytes(typ, dims, payload)
  local h = { "\0\0", string.char(typ), string.char(#dims) }
  for _, d in ipairs(dims) do h[#h + 1] = be32(d) end
  return table.concat(h) .. payload
end

local IMG = idx_bytes(8, { 3, 2, 2 }, string.rep("\7", 12))
local LAB = idx_bytes(8, { 3 }, "\0\1\2")

-- Asserts that f(...) raises an error whose message contains every string given.
local function assert_error(parts, f, ...)
  local ok, err = pcall(f, ...)
  lu.assertFalse(ok, "expected an error containing " .. table.concat(parts, ", "))
  lu.assertIsString(err)
  for _, p in ipairs(parts) do lu.assertStrContains(err, p) end
  return err
end

local function released_tensor()
  local t = engram.ones(2, 2)
  getmetatable(t).__close(t)
  return t
end

-- ------------------------------------------------------------------ tensors
TestBadInputTensor = {}

function TestBadInputTensor.test_narrow_with_a_huge_length_is_a_range_error_without_overflow()
  -- start + len overflowed int64 while formatting the message (UBSan).
  assert_error({ "narrow:", "out of range" }, function() return engram.zeros(3):narrow(1, 2, math.maxinteger) end)
end

function TestBadInputTensor.test_sub_with_alpha_names_sub_when_shapes_do_not_broadcast()
  local err = assert_error({ "sub:" }, function() return engram.ones(2, 2):sub(engram.ones(3, 1), 2) end)
  lu.assertStrContains(err, "broadcast")
end

function TestBadInputTensor.test_add_with_alpha_rejects_a_non_number_operand_by_name()
  assert_error({ "add:", "string" }, function() return engram.ones(2):add("x", 2) end)
  assert_error({ "released" }, function() return engram.ones(2):add(released_tensor(), 2) end)
end

function TestBadInputTensor.test_totable_refuses_a_huge_expanded_view_by_name()
  local big = engram.ones(1, 1):expand(65536, 65536) -- 2^32 elements over one float
  assert_error({ "totable:", "too many" }, function() return big:totable() end)
end

function TestBadInputTensor.test_cat_says_when_an_element_is_released_or_not_a_tensor()
  assert_error({ "cat:", "element 2", "released" }, engram.cat, { engram.ones(2), released_tensor() })
  assert_error({ "cat:", "element 1", "not an engram.Tensor (got string)" }, engram.cat, { "x" })
end

function TestBadInputTensor.test_mm_option_of_the_wrong_type_names_the_option()
  local a = engram.ones(2, 2)
  assert_error({ "mm:", "alpha", "string" }, function() return a:mm(a, { alpha = "x" }) end)
  assert_error({ "mm:", "beta", "table" }, function() return a:mm(a, { beta = {} }) end)
end

function TestBadInputTensor.test_a_shape_table_is_read_by_its_raw_length()
  -- A __len returning a non-integer made Lua raise "object length is not an integer".
  local shape = setmetatable({ 2, 3 }, { __len = function() return 0.5 end })
  lu.assertEquals(engram.zeros(shape):shape(), { 2, 3 })
end

function TestBadInputTensor.test_nine_dimensions_are_refused_everywhere_by_name()
  local t8 = engram.zeros(1, 1, 1, 1, 1, 1, 1, 1)
  assert_error({ "zeros:", "9 dimensions" }, engram.zeros, 1, 1, 1, 1, 1, 1, 1, 1, 1)
  assert_error({ "view:" }, function() return t8:view(1, 1, 1, 1, 1, 1, 1, 1, 1) end)
  assert_error({ "expand:" }, function() return t8:expand(1, 1, 1, 1, 1, 1, 1, 1, 1) end)
  assert_error({ "unsqueeze:" }, function() return t8:unsqueeze(1) end)
  assert_error({ "tensor:" }, engram.tensor, { { { { { { { { { 1 } } } } } } } } })
end

function TestBadInputTensor.test_writing_into_an_expanded_view_is_an_error_naming_the_operation()
  -- Its elements share memory: an element-wise write would keep one result.
  local function ex() return engram.zeros(1, 3):expand(2, 3) end
  assert_error({ "add:", "expanded" }, function() return ex():add_(engram.ones(2, 3)) end)
  assert_error({ "mul:", "expanded" }, function() return ex():mul_(2) end)
  assert_error({ "fill:", "expanded" }, function() return ex():fill_(1) end)
  assert_error({ "copy:", "expanded" }, function() return ex():copy(engram.ones(6)) end)
  assert_error({ "exp:", "expanded" }, function() return ex():exp_() end)
  assert_error({ "mm:", "expanded" }, function() return ex():t():mm_(engram.ones(3, 2), engram.ones(2, 2)) end)
  -- reading from one is fine, and so is writing into a broadcast-free clone
  lu.assertEquals(ex():sum(), 0)
  lu.assertEquals(ex():clone():add_(1):sum(), 6)
end

function TestBadInputTensor.test_copying_a_released_tensor_says_it_is_released()
  assert_error({ "released" }, engram.tensor, released_tensor())
end

function TestBadInputTensor.test_a_view_outlives_its_collected_parent()
  local v = engram.arange(20):view(4, 5):narrow(1, 2, 2):select(2, 3)
  collectgarbage()
  collectgarbage()
  lu.assertEquals(v:totable(), { 7, 12 })
end

function TestBadInputTensor.test_every_method_refuses_a_released_tensor()
  for name, f in pairs(core.Tensor) do
    local ok, err = pcall(f, released_tensor(), engram.ones(2, 2))
    if not ok then
      lu.assertIsString(err, name)
      lu.assertStrContains(err, "released", false, name)
    else
      lu.fail(name .. " accepted a released tensor")
    end
  end
end

-- --------------------------------------------------------------- generators
TestBadInputGenerator = {}

function TestBadInputGenerator.test_uniform_rejects_non_finite_bounds()
  local g = engram.generator(1)
  assert_error({ "uniform:", "finite" }, function() return g:uniform(0 / 0, 1) end)
  assert_error({ "uniform:", "finite" }, function() return g:uniform(-math.huge, 0) end)
  assert_error({ "uniform:", "finite" }, function() return g:uniform(-1e308, 1e308) end)
end

function TestBadInputGenerator.test_normal_rejects_non_finite_mean_and_std()
  local g = engram.generator(1)
  assert_error({ "normal:", "mean" }, function() return g:normal(math.huge, 1) end)
  assert_error({ "normal:", "standard deviation" }, function() return g:normal(0, math.huge) end)
  assert_error({ "normal:", "standard deviation" }, function() return g:normal(0, 0 / 0) end)
end

function TestBadInputGenerator.test_randperm_errors_name_randperm()
  assert_error({ "randperm:", "negative" }, engram.randperm, -1)
  assert_error({ "randperm:", "2^24" }, engram.randperm, 2 ^ 40 // 1)
  assert_error({ "permutation:" }, function() return engram.generator(1):permutation(-1) end)
end

-- ----------------------------------------------------------------- datasets
TestBadInputData = {}

function TestBadInputData.test_from_tensors_errors_name_from_tensors()
  assert_error({ "from_tensors", "engram.Tensor expected" }, data.from_tensors, nil, engram.zeros(2))
  assert_error({ "from_tensors", "released" }, data.from_tensors, released_tensor(), engram.zeros(2))
  assert_error({ "from_tensors:", "[n, ...]" }, data.from_tensors, engram.zeros(3), engram.zeros(2, 2))
end

function TestBadInputData.test_lua_methods_reject_a_wrong_self_by_name()
  local Dataset = core.Dataset
  assert_error({ "batches:", "expected a dataset", "number" }, Dataset.batches, 5, { batch = 2 })
  assert_error({ "chunks:", "expected a dataset", "nil" }, Dataset.chunks, nil)
  assert_error({ "subset:", "expected a dataset", "Tensor" }, Dataset.subset, engram.ones(2), { labels = { 0 } })
  local ds = data.blobs { n = 6, seed = 1 }
  ds:release()
  assert_error({ "long_tail:", "released" }, function() return ds:long_tail() end)
end

function TestBadInputData.test_zipf_fractions_rejects_absurd_class_counts()
  -- 2^63 classes used to loop (practically) forever.
  assert_error({ "zipf_fractions:", "classes" }, data.zipf_fractions, 2 ^ 63)
  assert_error({ "zipf_fractions:", "classes" }, data.zipf_fractions, 0)
  assert_error({ "zipf_fractions:", "exponent" }, data.zipf_fractions, 3, "x")
  lu.assertEquals(data.zipf_fractions(2, 1), { [0] = 1, [1] = 0.5 })
end

function TestBadInputData.test_subset_fractions_rejects_keys_that_are_not_class_ids()
  local ds = data.blobs { n = 30, classes = 3, seed = 1 }
  assert_error({ "subset:", "fractions key 3" }, function() return ds:subset { fractions = { [3] = 0.5 } } end)
  assert_error({ "subset:", "fractions key -1" }, function() return ds:subset { fractions = { [-1] = 0.5 } } end)
  assert_error({ "subset:", "fractions key a" }, function() return ds:subset { fractions = { a = 0.5 } } end)
  lu.assertEquals(#ds:subset { fractions = { [2] = 0 } }, 20)
end

function TestBadInputData.test_index_lists_are_read_by_their_raw_length()
  local ds = data.blobs { n = 10, seed = 1 }
  local idx = setmetatable({ 1, 2, 3 }, { __len = function() return -5 end })
  lu.assertEquals(#ds:subset { indices = idx }, 3)
end

function TestBadInputData.test_csv_label_column_out_of_range_is_counted_from_one()
  local p = write(tmpname(".csv"), "1,2,0\n3,4,1\n")
  assert_error({ "csv:", "label column 5", "3 columns" }, data.csv, p, { label_column = 5 })
  os.remove(p)
end

function TestBadInputData.test_csv_separator_cannot_be_nul_or_a_line_end()
  local p = write(tmpname(".csv"), "1;2;0\n")
  assert_error({ "csv:", "sep" }, data.csv, p, { sep = "\0" })
  assert_error({ "csv:", "sep" }, data.csv, p, { sep = "\n" })
  lu.assertEquals(#data.csv(p, { sep = ";" }), 1)
  os.remove(p)
end

-- -------------------------------------------------------------------- files
TestBadInputFiles = {}

-- Every corrupt image file is rejected with an error naming the file and the problem.
function TestBadInputFiles.test_corrupt_idx_image_files_are_rejected_naming_file_and_problem()
  local lab = write(tmpname(".idx1"), LAB)
  local cases = {
    { "truncated data", IMG:sub(1, -4), "truncated" },
    { "truncated header", IMG:sub(1, 9), "truncated" },
    { "empty", "", "truncated" },
    { "overlong", IMG .. "\0", "too long" },
    { "bad magic", "\1\2" .. IMG:sub(3), "magic" },
    { "unknown type", idx_bytes(7, { 3, 2, 2 }, string.rep("\0", 12)), "magic" },
    { "zero dimension", idx_bytes(8, { 3, 0, 2 }, ""), "size 0" },
    { "dimensions overflow", idx_bytes(8, { 0xffffffff, 0xffffffff, 0xffffffff }, string.rep("\0", 16)), "impossible" },
    { "no dimensions", "\0\0\8\0", "0 dimensions" },
    { "255 dimensions", "\0\0\8\255" .. string.rep("\0", 64), "255 dimensions" },
    { "float images", idx_bytes(0x0D, { 3, 2, 2 }, string.rep("\0", 48)), "unsigned bytes" },
  }
  for _, c in ipairs(cases) do
    local img = write(tmpname(".idx3"), c[2])
    local ok, err = pcall(data.idx, img, lab)
    lu.assertFalse(ok, c[1])
    lu.assertStrContains(err, "idx:", false, c[1])
    lu.assertStrContains(err, img, false, c[1])
    lu.assertStrContains(err, c[3], false, c[1])
    os.remove(img)
  end
  os.remove(lab)
end

function TestBadInputFiles.test_corrupt_idx_label_files_are_rejected_naming_the_label_file()
  local img = write(tmpname(".idx3"), IMG)
  local cases = {
    { "count mismatch", idx_bytes(8, { 4 }, "\0\1\2\0"), "4 labels" },
    { "two-dimensional", idx_bytes(8, { 3, 1 }, "\0\1\2"), "integer labels" },
    { "negative int32 label", idx_bytes(0x0C, { 3 }, be32(0) .. be32(0xffffffff) .. be32(2)), "label -1" },
    { "huge int32 label", idx_bytes(0x0C, { 3 }, be32(0) .. be32(0x7fffffff) .. be32(2)), "label 2147483647" },
  }
  for _, c in ipairs(cases) do
    local lab = write(tmpname(".idx1"), c[2])
    local ok, err = pcall(data.idx, img, lab)
    lu.assertFalse(ok, c[1])
    lu.assertStrContains(err, lab, false, c[1])
    lu.assertStrContains(err, c[3], false, c[1])
    os.remove(lab)
  end
  os.remove(img)
end

function TestBadInputFiles.test_corrupt_gzip_idx_files_are_rejected()
  local raw = write(tmpname(".idx3"), IMG)
  if not os.execute("gzip -n -c " .. q(raw) .. " > " .. q(raw .. ".gz") .. " 2>/dev/null") then
    os.remove(raw)
    lu.skip("gzip is not available")
  end
  local f = assert(io.open(raw .. ".gz", "rb"))
  local gz = f:read("a")
  f:close()
  local lab = write(tmpname(".idx1"), LAB)
  lu.assertEquals(#data.idx(raw .. ".gz", lab), 3)
  local flipped = gz:sub(1, -9) .. string.char(gz:byte(-8) ~ 0xff) .. gz:sub(-7)
  local cases = { { "truncated", gz:sub(1, -7), "truncated" }, { "bad checksum", flipped, "corrupt" } }
  for _, c in ipairs(cases) do
    local p = write(tmpname(".idx3.gz"), c[2])
    local ok, err = pcall(data.idx, p, lab)
    lu.assertFalse(ok, c[1])
    lu.assertStrContains(err, p, false, c[1])
    lu.assertStrContains(err, c[3], false, c[1])
    os.remove(p)
  end
  os.remove(raw); os.remove(raw .. ".gz"); os.remove(lab)
end

function TestBadInputFiles.test_bad_csv_files_are_rejected_naming_file_line_and_problem()
  local cases = {
    { "ragged", "1,2,0\n3,1\n", "line 2 has 2 fields" },
    { "text field", "1,2,0\n3,x,1\n", "line 2 column 2" },
    { "nan field", "1,nan,0\n", "not a finite number" },
    { "fractional label", "1,2,0.5\n", "label 0.5" },
    { "negative label", "1,2,-1\n", "label -1" },
    { "empty", "", "no data rows" },
    { "blank lines only", "\n\n", "no data rows" },
    { "one column", "1\n2\n", "no feature columns" },
    { "header without option", "a,b,label\n1,2,0\n", "line 1 column 1" },
  }
  for _, c in ipairs(cases) do
    local p = write(tmpname(".csv"), c[2])
    local ok, err = pcall(data.csv, p)
    lu.assertFalse(ok, c[1])
    lu.assertStrContains(err, "csv:", false, c[1])
    lu.assertStrContains(err, p, false, c[1])
    lu.assertStrContains(err, c[3], false, c[1])
    os.remove(p)
  end
end

function TestBadInputFiles.test_missing_files_and_directories_name_the_path()
  local missing = tmpname(".idx3")
  local lab = write(tmpname(".idx1"), LAB)
  assert_error({ "idx:", missing }, data.idx, missing, lab)
  assert_error({ "idx:", missing }, data.idx, write(tmpname(".idx3"), IMG), missing)
  assert_error({ "csv:", missing .. ".csv" }, data.csv, missing .. ".csv")
  local dir = os.getenv("TMPDIR") or "/tmp"
  assert_error({ "idx:", dir }, data.idx, dir, lab)
  assert_error({ "csv:", dir }, data.csv, dir)
  os.remove(lab)
end

-- ------------------------------------------------------------------ command
TestBadInputCommand = {}

local function run(args)
  local out, err = os.tmpname(), os.tmpname()
  local _, how, code = os.execute(string.format("%s %s </dev/null >%s 2>%s", q(BIN), args, q(out), q(err)))
  local f = assert(io.open(out, "rb")); local o = f:read("a"); f:close()
  f = assert(io.open(err, "rb")); local e = f:read("a"); f:close()
  os.remove(out); os.remove(err)
  if how == "signal" then code = 128 + code end
  return o, e, code
end

function TestBadInputCommand.test_a_script_gets_more_than_32767_arguments()
  -- lua_pcall(L, 1, argc, 0) kept argc in a short: 32768 arguments crashed.
  local s = write(tmpname(".lua"), "print(#arg, select('#', ...), arg[40000])\n")
  local out, _, code = run(q(s) .. " $(seq 1 40000)")
  lu.assertEquals(code, 0)
  lu.assertEquals(out, "40000\t40000\t40000\n")
  os.remove(s)
end

function TestBadInputCommand.test_a_directory_as_the_script_is_a_clean_error()
  local dir = os.getenv("TMPDIR") or "/tmp"
  local out, err, code = run(q(dir))
  lu.assertEquals(code, 1)
  lu.assertEquals(out, "")
  lu.assertStrContains(err, dir)
end

function TestBadInputCommand.test_an_error_inside_a_coroutine_exits_1_with_its_message()
  local s = write(tmpname(".lua"), [[
local co = coroutine.wrap(function() return engram.zeros(2):mm(engram.zeros(3)) end)
co()
]])
  local _, err, code = run(q(s))
  lu.assertEquals(code, 1)
  lu.assertStrContains(err, "mm: expected 2-D tensors")
  os.remove(s)
end

function TestBadInputCommand.test_a_runtime_error_in_e_exits_1_with_a_traceback()
  local _, err, code = run("-e " .. q("local t = engram.ones(2); return t:view(3)"))
  lu.assertEquals(code, 1)
  lu.assertStrContains(err, "view: cannot view")
  lu.assertStrContains(err, "stack traceback")
end

function TestBadInputCommand.test_error_values_that_are_not_strings_exit_1()
  local _, err, code = run("-e " .. q("error({})"))
  lu.assertEquals(code, 1)
  lu.assertStrContains(err, "table value")
  _, err, code = run("-e " .. q("error(setmetatable({}, {__tostring = function() error('x') end}))"))
  lu.assertEquals(code, 1)
  lu.assertStrContains(err, "engram: ")
end

-- -------------------------------------------------------------------- fuzz
TestBadInputFuzz = {}

function TestBadInputFuzz.test_a_short_seeded_api_fuzz_finds_no_crash_or_bad_message()
  local fuzz = require("fuzz_api")
  local problems, st = fuzz.run { seed = 20261129, iterations = 4000, seconds = 5, safe = true }
  engram.seed(0) -- the fuzzer reseeds the default generator: leave it as a fresh state has it
  lu.assertTrue(st.calls > 0)
  lu.assertEquals(problems, {})
end

function TestBadInputFuzz.test_a_short_seeded_fuzz_of_layers_losses_optimisers_finds_no_crash()
  -- kernels, criteria, optimisers, parameter groups, memories and modules
  -- (built, unbuilt, inside a model) with wrong and odd arguments
  local fuzz = require("fuzz_api")
  local threads = engram.core.get_threads()
  local problems, st = fuzz.run { seed = 20261129, iterations = 6000, seconds = 5, safe = true, part = "nn" }
  engram.seed(0)
  engram.core.set_threads(threads)
  lu.assertTrue(st.calls > 0)
  lu.assertEquals(problems, {})
end

function TestBadInputFuzz.test_a_short_seeded_fuzz_of_the_continual_learning_layers_finds_no_crash()
  -- scenarios, metrics, results, strategies, the learner (not its runs),
  -- schedules, JSON texts, reports and option helpers
  local fuzz = require("fuzz_api")
  local problems, st = fuzz.run { seed = 20261129, iterations = 6000, seconds = 5, safe = true, part = "cl" }
  engram.seed(0)
  lu.assertTrue(st.calls > 0)
  lu.assertEquals(problems, {})
end

function TestBadInputFuzz.test_what_the_cl_fuzz_found_is_a_named_error()
  local L = engram.learner(engram.nn.mlp { 2, 2 }, { quiet = true })
  lu.assertErrorMsgContains("evaluate: expected a task of a scenario, got number", function() L:evaluate(3) end)
  lu.assertErrorMsgContains("targets: expected a task of a scenario, got nil", function() L:targets() end)
  lu.assertErrorMsgContains("with_naive: document 1 is a number", engram.learner.with_naive, { 4 })
  lu.assertErrorMsgContains("schedule.only: the strategy must be a table of hooks, got number",
    engram.schedule.only, 0.5, 4)
  lu.assertErrorMsgContains("schedule: options must be a table, got boolean", engram.schedule.new,
    { { use = { engram.strategies.naive() } } }, true)
  lu.assertErrorMsgContains("metrics.cer: argument 2 must be a number, got boolean", engram.metrics.cer,
    0.5, false, 1, 1)
  lu.assertErrorMsgContains("metrics.drift: sample 1 is not two arrays of numbers", engram.metrics.drift,
    { { 1, 2 } }, { { 1 } })
  lu.assertErrorMsgContains("metrics.drift: options must be a table", engram.metrics.drift, { { 1 } }, { { 1 } }, 3)
  lu.assertErrorMsgContains("report.heatmap_svg: field 'acc'", engram.report.heatmap_svg, {})
  lu.assertErrorMsgContains("report.color: expected a number", engram.report.color, true)
  lu.assertErrorMsgContains("progress.duration: expected seconds, got table", engram.progress.duration, {})
  lu.assertErrorMsgContains("json.decode: options must be a table, got function", engram.json.decode, "[]", print)
  lu.assertErrorMsgContains("options.help: expected a spec table, got number", engram.options.help, 0)
  lu.assertErrorMsgContains("strategies.options: expected (name, opts, defaults", engram.strategies.options, 0, {})
  -- a curve chart without labels names its runs
  local doc = engram.results.new { acc = { { 0.9 } }, name = "solo" }
  lu.assertStrContains(engram.report.curves_svg({ doc }), "solo")
end

function TestBadInputFuzz.test_mutated_idx_and_csv_files_load_whole_or_fail_naming_the_file()
  local fuzz = require("fuzz_api")
  local problems, st = fuzz.files { seed = 7, iterations = 300 }
  lu.assertTrue(st.rejected > 0)
  lu.assertTrue(st.loaded > 0)
  lu.assertEquals(problems, {})
end
