-- engram.options: the recipes' option parser: forms, types, defaults, --only,
-- generated help, and errors with an injectable exit.
local lu = require("luaunit")
local options = require("engram.options")

local function spec(extra)
  local s = {
    name = "split_mnist",
    description = "Compare strategies on Split MNIST.",
    options = {
      { "memory", 1000, "replay memory size" },
      { "strategies", "naive,ewc", "strategies to compare" },
      { "lambda", 100.0, "EWC strength" },
      { "online", false, "online EWC" },
      { "probe-size", 256, "samples in the drift probe" },
    },
    defaults = { epochs = 2 },
    exit = false,
  }
  for k, v in pairs(extra or {}) do s[k] = v end
  return s
end

-- A file-like sink that records what is written.
local helpers = require("helpers")
local sink = helpers.sink

TestOptions = {}

function TestOptions.test_defaults_common_and_recipe_specific()
  local o = options.parse({}, spec())
  lu.assertEquals(o.epochs, 2) -- recipe's default overrides the common one
  lu.assertEquals(o.seed, 1)
  lu.assertEquals(o.batch, 64)
  lu.assertEquals(o.memory, 1000)
  lu.assertEquals(o.strategies, "naive,ewc")
  lu.assertFalse(o.online)
  lu.assertFalse(o.quiet)
  lu.assertNil(o.out)
  lu.assertEquals(o.probe_size, 256)
  lu.assertEquals(o.only, {})
  lu.assertEquals(o.args, {})
end

function TestOptions.test_all_value_forms_and_types()
  local o = options.parse({ "--seed", "7", "--lr=0.05", "--memory", "200", "--online", "--quiet=false",
    "--strategies", "replay", "--probe-size=32", "--out", "r.json", "--threads", "2", "--tasks", "5" }, spec())
  lu.assertEquals(o.seed, 7)
  lu.assertEquals(math.type(o.seed), "integer")
  lu.assertEquals(o.lr, 0.05)
  lu.assertEquals(o.memory, 200)
  lu.assertTrue(o.online)
  lu.assertFalse(o.quiet)
  lu.assertEquals(o.strategies, "replay")
  lu.assertEquals(o.probe_size, 32)
  lu.assertEquals(o.out, "r.json")
  lu.assertEquals(o.threads, 2)
  lu.assertEquals(o.tasks, 5)
  o = options.parse({ "--no-online", "--lambda", "5e3", "--probe_size", "8" }, spec({ defaults = { online = true } }))
  lu.assertFalse(o.online)
  lu.assertEquals(o.lambda, 5000.0)
  lu.assertEquals(o.probe_size, 8)
end

function TestOptions.test_positional_words_and_double_dash()
  local o = options.parse({ "a.json", "--seed", "3", "--", "--not-an-option" }, spec())
  lu.assertEquals(o.args, { "a.json", "--not-an-option" })
  lu.assertEquals(o.seed, 3)
end

function TestOptions.test_only_is_a_set_with_selected()
  local o = options.parse({ "--only", "ewc, replay" }, spec())
  lu.assertEquals(o.only, { "ewc", "replay" })
  lu.assertTrue(o.selected("ewc"))
  lu.assertTrue(o.selected("replay"))
  lu.assertFalse(o.selected("naive"))
  local all = options.parse({}, spec())
  lu.assertTrue(all.selected("naive"))
  local o2, err, status = options.parse({ "--only", "ewc,typo" }, spec({ runs = { "naive", "ewc" } }))
  lu.assertNil(o2)
  lu.assertEquals(status, 2)
  lu.assertStrContains(err, "unknown run 'typo' (known: naive, ewc)")
end

function TestOptions.test_unknown_option_lists_the_known_ones()
  local o, err, status = options.parse({ "--foo" }, spec())
  lu.assertNil(o)
  lu.assertEquals(status, 2)
  lu.assertStrContains(err, "unknown option --foo (known: --batch, --checkpoint, --checkpoint-every, --epochs, " ..
    "--help, --lambda, --log, --lr, --memory, --online, --only, --out, --probe-size, --quiet, --resume, " ..
    "--scenario, --seed, --start-task, " ..
    "--stop-task, --strategies, --tasks, --threads)")
  err = select(2, options.parse({ "-x" }, spec()))
  lu.assertStrContains(err, "unknown option -x")
end

function TestOptions.test_bad_values_are_errors()
  local o, err, status = options.parse({ "--epochs", "abc" }, spec())
  lu.assertNil(o)
  lu.assertEquals(status, 2)
  lu.assertStrContains(err, "bad value for --epochs: 'abc' is not a number")
  err = select(2, options.parse({ "--epochs", "1.5" }, spec()))
  lu.assertStrContains(err, "not an integer")
  err = select(2, options.parse({ "--online=maybe" }, spec()))
  lu.assertStrContains(err, "not a boolean")
  err = select(2, options.parse({ "--seed" }, spec()))
  lu.assertStrContains(err, "--seed needs a value")
  err = select(2, options.parse({ "--no-online=1" }, spec()))
  lu.assertStrContains(err, "takes no value")
end

function TestOptions.test_out_and_log_files_are_checked_before_any_work()
  local o, err, status = options.parse({ "--out", "/nonexistent-dir/r.json" }, spec())
  lu.assertNil(o)
  lu.assertEquals(status, 2)
  lu.assertStrContains(err, "--out: cannot write /nonexistent-dir/r.json")
  err = select(2, options.parse({ "--log", os.getenv("TMPDIR") or "/tmp" }, spec()))
  lu.assertStrContains(err, "--log: cannot write")
  -- a writable path passes, and the check leaves no empty file behind
  local path = helpers.tmpname()
  os.remove(path)
  o = options.parse({ "--out", path }, spec())
  lu.assertEquals(o.out, path)
  lu.assertNil(io.open(path, "r"))
  -- an existing file is kept as it is (a log is appended to)
  helpers.write_file(path, "kept\n")
  options.parse({ "--log", path }, spec())
  lu.assertEquals(helpers.read_file(path), "kept\n")
  os.remove(path)
end

function TestOptions.test_errors_print_and_call_the_injected_exit()
  local err, code = sink(), nil
  local o = options.parse({ "--bogus" }, spec({ exit = function(c) code = c end, err = err }))
  lu.assertNil(o)
  lu.assertEquals(code, 2)
  lu.assertStrContains(err.text, "split_mnist: unknown option --bogus (known: --batch")
end

function TestOptions.test_help_prints_every_option_with_default_and_exits_0()
  local out, code = sink(), nil
  options.parse({ "--help" }, spec({ exit = function(c) code = c end, out = out }))
  lu.assertEquals(code, 0)
  local h = out.text
  lu.assertStrContains(h, "usage: split_mnist [options]")
  lu.assertStrContains(h, "Compare strategies on Split MNIST.")
  lu.assertStrMatches(h, ".*%-%-memory N%s+replay memory size %(default: 1000%).*")
  lu.assertStrMatches(h, ".*%-%-epochs N%s+epochs per task %(default: 2%).*")
  lu.assertStrContains(h, "--strategies S")
  lu.assertStrContains(h, "(default: naive,ewc)")
  lu.assertStrContains(h, "--[no-]online")
  lu.assertStrContains(h, "--only A,B")
  lu.assertStrContains(h, "--threads N")
  local o, text, status = options.parse({ "-h" }, spec())
  lu.assertNil(o)
  lu.assertEquals(status, 0)
  lu.assertEquals(text, h)
end

function TestOptions.test_list_typed_options_split_on_commas()
  local o = options.parse({ "--sizes", "1, 2,3" }, spec({ options = { { "sizes", { "4" }, "sizes" } } }))
  lu.assertEquals(o.sizes, { "1", "2", "3" })
  local d = options.parse({}, spec({ options = { { "sizes", { "4" }, "sizes" } } }))
  lu.assertEquals(d.sizes, { "4" })
  lu.assertEquals(options.split(" a, ,b "), { "a", "b" })
end

function TestOptions.test_spec_mistakes_are_errors()
  local ok, err = pcall(options.parse, {}, { defaults = { epoch = 1 } })
  lu.assertFalse(ok)
  lu.assertStrContains(err, "unknown option 'epoch'")
  ok, err = pcall(options.parse, {}, { option = {} })
  lu.assertFalse(ok)
  lu.assertStrContains(err, "unknown spec key 'option'")
  ok, err = pcall(options.parse, "--seed 1", {})
  lu.assertFalse(ok)
  lu.assertStrContains(err, "argument array")
end

function TestOptions.test_common_limits_the_common_options_a_recipe_takes()
  local s = spec({ common = { "seed", "epochs", "out" } })
  local o = options.parse({ "--seed", "3", "--out", "r.json" }, s)
  lu.assertEquals(o.seed, 3)
  lu.assertEquals(o.out, "r.json")
  lu.assertEquals(o.epochs, 2)
  lu.assertNil(o.scenario)
  local o2, msg, status = options.parse({ "--scenario", "class" }, s)
  lu.assertNil(o2)
  lu.assertEquals(status, 2)
  lu.assertStrContains(msg, "unknown option --scenario")
  lu.assertStrContains(msg, "--memory")
  lu.assertNotStrContains(msg, "--tasks")
  local help = options.help(s)
  lu.assertStrContains(help, "--seed")
  lu.assertStrContains(help, "--help")
  lu.assertNotStrContains(help, "--only")
  lu.assertErrorMsgContains("unknown common option 'sede'", options.parse, {}, spec({ common = { "sede" } }))
  lu.assertErrorMsgContains("'common' is a list", options.parse, {}, spec({ common = "seed" }))
end

-- Every shipped recipe answers --help (exit 0, its options listed) and
-- rejects an unknown option before loading any data (exit 2, known ones listed).
TestRecipeCommandLines = {}

function TestRecipeCommandLines.test_help_and_unknown_options()
  local bin = os.getenv("ENGRAM_BIN") or "build/engram"
  local p = io.popen("ls recipes/*.lua")
  local recipes = {}
  for line in p:lines() do recipes[#recipes + 1] = line end
  p:close()
  lu.assertTrue(#recipes >= 6)
  for _, r in ipairs(recipes) do
    local f = io.popen(bin .. " " .. r .. " --help 2>&1; echo \"rc=$?\"")
    local out = f:read("a")
    f:close()
    lu.assertStrContains(out, "usage:", false, r .. " --help")
    lu.assertStrContains(out, "--seed", false, r .. " --help")
    lu.assertStrContains(out, "rc=0", false, r .. " --help")
    f = io.popen(bin .. " " .. r .. " --no-such-option 2>&1; echo \"rc=$?\"")
    out = f:read("a")
    f:close()
    lu.assertStrContains(out, "unknown option --no-such-option", false, r)
    lu.assertStrContains(out, "known:", false, r)
    lu.assertStrContains(out, "rc=2", false, r)
  end
end

function TestOptions.test_fail_reports_a_recipe_checked_value_like_a_parse_error()
  local err, status = sink(), nil
  local s = spec({ exit = function(code) status = code end, err = err })
  local o = options.parse({}, s)
  o.fail("--memory must be positive")
  lu.assertEquals(status, 2)
  lu.assertEquals(err.text, "split_mnist: --memory must be positive\n")
  local o2 = options.parse({}, spec())
  lu.assertErrorMsgContains("split_mnist: bad value", o2.fail, "bad value")
end
