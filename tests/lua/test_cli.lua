-- The `engram` command: options, scripts and their arguments, standard input,
-- subcommands, error reporting, and the REPL driven through a pipe.
-- Runs build/engram (ENGRAM_BIN overrides) from the project root.
local lu = require("luaunit")

local BIN = os.getenv("ENGRAM_BIN") or "build/engram"

local helpers = require("helpers")
local q = helpers.q
local write_file = helpers.write_file
local read_file = helpers.read_file

-- Runs `[env] BIN args` with stdin (a string, or nothing) and returns its
-- stdout, stderr and exit status.
local function run(args, stdin, env) return helpers.run(BIN, args, stdin, env) end

-- The REPL with the lines on a pipe (no terminal: no prompts, no readline).
local function repl(lines)
  return run("", lines, "ENGRAM_HISTORY=")
end

local function tmpdir()
  local p = os.tmpname()
  os.remove(p)
  assert(os.execute("mkdir -p " .. q(p .. "/engram/cmd")))
  return p
end

local function rmdir(p)
  os.execute("rm -rf " .. q(p))
end

TestCliOptions = {}

function TestCliOptions.test_version_names_engram_lua_and_openblas_kernels()
  for _, flag in ipairs({ "--version", "-v" }) do
    local out, _, code = run(flag)
    lu.assertEquals(code, 0)
    local version = require("engram.core").version
    lu.assertStrContains(out, "engram " .. version)
    lu.assertStrContains(out, "Lua 5.4")
    lu.assertStrMatches(out, ".*OpenBLAS kernels: %w+.*")
  end
end

function TestCliOptions.test_help_lists_usage_options_and_commands()
  for _, flag in ipairs({ "--help", "-h", "help" }) do
    local out, _, code = run(flag)
    lu.assertEquals(code, 0, flag)
    lu.assertStrContains(out, "usage: engram")
    lu.assertStrContains(out, "-e chunk")
    lu.assertStrContains(out, "Commands")
  end
end

function TestCliOptions.test_help_lists_command_modules_with_their_summary()
  local dir = tmpdir()
  write_file(dir .. "/engram/cmd/hello.lua", 'return { summary = "greets the user", main = function() end }\n')
  local out, _, code = run("--help", nil, "LUA_PATH=" .. q(dir .. "/?.lua;;"))
  rmdir(dir)
  lu.assertEquals(code, 0)
  lu.assertStrMatches(out, ".*\n  hello +greets the user\n.*")
end

function TestCliOptions.test_e_runs_the_chunk()
  local out, err, code = run("-e " .. q("print(6 * 7)"))
  lu.assertEquals(err, "")
  lu.assertEquals(code, 0)
  lu.assertEquals(out, "42\n")
end

function TestCliOptions.test_several_e_chunks_run_in_order()
  local out, _, code = run("-e " .. q("x = 2") .. " -e " .. q("print(x * 3)"))
  lu.assertEquals(code, 0)
  lu.assertEquals(out, "6\n")
end

function TestCliOptions.test_l_requires_a_library_into_a_global()
  local out, _, code = run("-l s=string -e " .. q("print(s.rep('ab', 2))"))
  lu.assertEquals(code, 0)
  lu.assertEquals(out, "abab\n")
end

function TestCliOptions.test_engram_core_is_preloaded_and_engram_is_a_global()
  local out, _, code = run("-e " .. q([[print(package.preload["engram.core"] ~= nil,
    type(engram), engram == require("engram"))]]))
  lu.assertEquals(code, 0)
  lu.assertEquals(out, "true\ttable\ttrue\n")
end

function TestCliOptions.test_unknown_option_is_a_usage_error()
  local out, err, code = run("-z")
  lu.assertEquals(code, 1)
  lu.assertEquals(out, "")
  lu.assertStrContains(err, "unrecognized option '-z'")
  lu.assertStrContains(err, "usage: engram")
end

function TestCliOptions.test_unknown_long_option_is_a_usage_error()
  local _, err, code = run("--frobnicate")
  lu.assertEquals(code, 1)
  lu.assertStrContains(err, "unrecognized option '--frobnicate'")
end

function TestCliOptions.test_e_without_its_chunk_is_a_usage_error()
  local _, err, code = run("-e")
  lu.assertEquals(code, 1)
  lu.assertStrContains(err, "'-e' needs an argument")
end

function TestCliOptions.test_syntax_error_in_e_exits_nonzero()
  local _, err, code = run("-e " .. q("x = = 1"))
  lu.assertEquals(code, 1)
  lu.assertStrContains(err, "engram: (command line):1:")
end

TestCliScripts = {}

function TestCliScripts.test_script_gets_its_arguments_in_arg_and_varargs()
  local s = write_file(os.tmpname(), "print(#arg, arg[0] == ..., select('#', ...), ...)\n")
  local out, err, code = run(q(s) .. " a 'b c' d")
  lu.assertEquals(err, "")
  lu.assertEquals(code, 0)
  -- arg[0] is the script, not one of its arguments: `...` starts at "a".
  lu.assertEquals(out, "3\tfalse\t3\ta\tb c\td\n")
  out = run(q(s) .. " x")
  lu.assertEquals(out, "1\tfalse\t1\tx\n")
  out = select(1, run("-e " .. q("print(arg[0])") .. " " .. q(s)))
  lu.assertStrContains(out, s)
  os.remove(s)
end

function TestCliScripts.test_script_sees_arg0_as_its_own_path()
  local s = write_file(os.tmpname(), "io.write(arg[0])\n")
  local out = run(q(s))
  os.remove(s)
  lu.assertEquals(out, s)
end

function TestCliScripts.test_engram_global_is_available_to_scripts()
  local s = write_file(os.tmpname(), "print(engram == require('engram'))\n")
  local out, _, code = run(q(s))
  os.remove(s)
  lu.assertEquals(code, 0)
  lu.assertEquals(out, "true\n")
end

function TestCliScripts.test_dash_runs_standard_input_as_a_script()
  local out, err, code = run("- one two", "print('from stdin', ...)\nprint(arg[0])\n")
  lu.assertEquals(err, "")
  lu.assertEquals(code, 0)
  lu.assertEquals(out, "from stdin\tone\ttwo\n-\n")
end

function TestCliScripts.test_error_in_script_prints_message_and_traceback_and_exits_1()
  local s = write_file(os.tmpname(), "local function deep() error('kaboom') end\ndeep()\n")
  local out, err, code = run(q(s))
  os.remove(s)
  lu.assertEquals(code, 1)
  lu.assertEquals(out, "")
  lu.assertStrMatches(err, "^engram: [^\n]*:1: kaboom\nstack traceback:\n.*")
  lu.assertStrContains(err, "in local 'deep'")
end

function TestCliScripts.test_missing_script_file_is_an_error()
  local _, err, code = run(q("/nonexistent/recipe.lua"))
  lu.assertEquals(code, 1)
  lu.assertStrContains(err, "cannot open /nonexistent/recipe.lua")
end

function TestCliScripts.test_os_exit_status_is_the_command_status()
  local _, _, code = run("-e " .. q("os.exit(3)"))
  lu.assertEquals(code, 3)
end

function TestCliScripts.test_i_runs_the_script_then_the_repl()
  local s = write_file(os.tmpname(), "y = 5\n")
  local out, _, code = run("-i " .. q(s), "y * 2\n")
  os.remove(s)
  lu.assertEquals(code, 0)
  lu.assertEquals(out, "10\n")
end

TestCliCommands = {}

function TestCliCommands.test_word_runs_main_of_the_engram_cmd_module()
  local dir = tmpdir()
  write_file(dir .. "/engram/cmd/hello.lua", [[
return { main = function(args)
  print("hello", #args, args[1], args[2], arg[0])
  return tonumber(args[2])
end }
]])
  local out, err, code = run("hello world 7", nil, "LUA_PATH=" .. q(dir .. "/?.lua;;"))
  rmdir(dir)
  lu.assertEquals(err, "")
  lu.assertEquals(out, "hello\t2\tworld\t7\thello\n")
  lu.assertEquals(code, 7)
end

function TestCliCommands.test_command_returning_false_exits_1_and_errors_are_reported()
  local dir = tmpdir()
  write_file(dir .. "/engram/cmd/nope.lua", "return { main = function() return false end }\n")
  write_file(dir .. "/engram/cmd/oops.lua", "return { main = function() error('bad input') end }\n")
  local env = "LUA_PATH=" .. q(dir .. "/?.lua;;")
  local _, _, code = run("nope", nil, env)
  lu.assertEquals(code, 1)
  local _, err
  _, err, code = run("oops", nil, env)
  rmdir(dir)
  lu.assertEquals(code, 1)
  lu.assertStrContains(err, "engram: ")
  lu.assertStrContains(err, "bad input")
end

function TestCliCommands.test_unknown_word_says_no_file_and_no_command()
  local _, err, code = run("frobnicate")
  lu.assertEquals(code, 1)
  lu.assertStrContains(err, "cannot open frobnicate")
  lu.assertStrContains(err, "no command 'frobnicate'")
end

TestCliRepl = {}

function TestCliRepl.test_expressions_print_their_value()
  local out, err, code = repl("1 + 1\n'text'\nnil\ntrue\n")
  lu.assertEquals(err, "")
  lu.assertEquals(code, 0)
  lu.assertEquals(out, "2\ntext\nnil\ntrue\n")
end

function TestCliRepl.test_statements_print_nothing_and_keep_state()
  local out = repl("x = 40\nlocal unused = 1\nx + 2\n")
  lu.assertEquals(out, "42\n")
end

function TestCliRepl.test_multiple_values_are_separated_by_tabs()
  local out = repl("1, 'a', nil, false\n")
  lu.assertEquals(out, "1\ta\tnil\tfalse\n")
end

function TestCliRepl.test_tables_print_readably_with_sorted_keys()
  local out = repl("x = {b = 2, a = 1, [10] = 'z', ['k y'] = true, 'first', 'second'}\nx\n")
  lu.assertEquals(out, '{"first", "second", [10] = "z", a = 1, b = 2, ["k y"] = true}\n')
end

function TestCliRepl.test_empty_and_nested_tables()
  local out = repl("{}\n{1, {2, {3}}}\n")
  lu.assertEquals(out, "{}\n{1, {2, {3}}}\n")
end

function TestCliRepl.test_deep_tables_are_cut_at_the_depth_limit()
  local out = repl("{1, {2, {3, {4, 5}}}}\n")
  lu.assertEquals(out, "{1, {2, {3, {...2 items}}}}\n")
end

function TestCliRepl.test_long_tables_are_summarised()
  local out = repl("t = {} for i = 1, 100 do t[i] = i end\nt\n")
  lu.assertStrContains(out, "... (70 more)")
  lu.assertNotStrContains(out, "31")
  -- Too wide for one line: one item per line, indented.
  lu.assertStrMatches(out, "^{\n  1,\n  2,\n.*\n}\n$")
end

function TestCliRepl.test_cycles_do_not_loop()
  local out, _, code = repl("c = {} c.self = c\nc\n")
  lu.assertEquals(code, 0)
  lu.assertStrMatches(out, "^{self = <cycle: table: [^>]+>}\n$")
end

function TestCliRepl.test_values_with_tostring_print_through_it()
  local out = repl("setmetatable({}, {__tostring = function() return 'custom!' end})\n")
  lu.assertEquals(out, "custom!\n")
end

function TestCliRepl.test_tensors_print_through_their_tostring()
  local out = repl("t = engram.ones(2, 2)\nt\nprint(tostring(t))\n")
  local n = #out // 2
  lu.assertTrue(n > 0)
  lu.assertEquals(out:sub(1, n), out:sub(n + 1))
end

function TestCliRepl.test_trailing_semicolon_suppresses_printing()
  local out = repl("1 + 1;\ny = 3;\ny\n")
  lu.assertEquals(out, "3\n")
end

function TestCliRepl.test_multiline_input_continues_until_the_chunk_is_complete()
  local out, err = repl("function f()\n  return 42\nend\nf()\n{\n  a = 1,\n}\n")
  lu.assertEquals(err, "")
  lu.assertEquals(out, "42\n{a = 1}\n")
end

function TestCliRepl.test_errors_are_reported_and_the_repl_goes_on()
  local out, err, code = repl("error('first')\nx = = 1\n7\n")
  lu.assertEquals(code, 0)
  lu.assertEquals(out, "7\n")
  lu.assertStrContains(err, "engram: stdin:1: first")
  lu.assertStrContains(err, "stack traceback:")
  lu.assertStrContains(err, "engram: stdin:1: unexpected symbol near '='")
end

function TestCliRepl.test_incomplete_chunk_at_end_of_input_is_a_syntax_error()
  local out, err, code = repl("function g()\n")
  lu.assertEquals(code, 0)
  lu.assertEquals(out, "")
  lu.assertStrContains(err, "<eof>")
end

function TestCliRepl.test_engram_is_a_global_in_the_repl()
  local out = repl("engram == require('engram')\n")
  lu.assertEquals(out, "true\n")
end

-- The REPL on a terminal: `script` (util-linux) gives it a pseudo-terminal,
-- so readline, completion and the history file are exercised for real.
-- Keys: \t completes, \016 is Ctrl-P (previous history line), \004 Ctrl-D.
TestCliTerminal = {}

local function has_script()
  local ok = os.execute("command -v script >/dev/null 2>&1 && command -v timeout >/dev/null 2>&1")
  return ok == true
end

local function on_terminal(keys, history)
  local inp, out = os.tmpname(), os.tmpname()
  write_file(inp, keys)
  local cmd = string.format("TERM=dumb ENGRAM_HISTORY=%s timeout 20 script -qec %s /dev/null <%s >%s 2>&1",
    q(history), q(q(BIN)), q(inp), q(out))
  local _, _, code = os.execute(cmd)
  local o = read_file(out):gsub("\r", "")
  os.remove(inp); os.remove(out)
  return o, code
end

function TestCliTerminal.test_readline_completes_globals_fields_and_methods()
  lu.skipIf(not has_script(), "needs script(1) and timeout(1)")
  local hist = os.tmpname()
  -- (Typeahead may reach the terminal before readline switches it to raw
  -- mode, so only keys that mean the same in both modes: no Ctrl-U.)
  local out, code = on_terminal("x = {alpha = 1}\nx.al\t\nstring.fo\t('%d', 5)\nt = engram.ones(2)\nt:su\t\tm()\n\004",
    hist)
  os.remove(hist)
  lu.assertEquals(code, 0)
  lu.assertStrContains(out, "> x.alpha\n1\n")
  lu.assertStrContains(out, "> string.format('%d', 5)\n5\n")
  -- Two tabs list the candidates: the tensor's methods behind its __index.
  lu.assertStrMatches(out, ".*t:sub +t:sub_ +t:sum.*")
  lu.assertStrContains(out, "> t:sum()\n2")
end

function TestCliTerminal.test_history_is_kept_across_sessions()
  lu.skipIf(not has_script(), "needs script(1) and timeout(1)")
  local hist = os.tmpname()
  os.remove(hist)
  local _, code = on_terminal("6 * 7\n\004", hist)
  lu.assertEquals(code, 0)
  lu.assertStrContains(read_file(hist), "6 * 7\n")
  local out = on_terminal("\016\n\004", hist)
  os.remove(hist)
  lu.assertStrContains(out, "> 6 * 7\n42\n")
end

function TestCliTerminal.test_unwritable_history_file_is_ignored()
  lu.skipIf(not has_script(), "needs script(1) and timeout(1)")
  local out, code = on_terminal("1 + 2\n\004", "/nonexistent/dir/history")
  lu.assertEquals(code, 0)
  lu.assertStrContains(out, "> 1 + 2\n3\n")
end
