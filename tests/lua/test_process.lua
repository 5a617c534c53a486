-- engram.process (bindings/cmd/process.c): the child processes `engram
-- search` runs its points in; preloaded by the engram command, which runs
-- this suite.
local lu = require("luaunit")
local helpers = require("helpers")

local read_file, write_file = helpers.read_file, helpers.write_file

TestProcess = {}

local process = require("engram.process")

function TestProcess.test_spawn_runs_a_program_with_its_output_in_a_file_and_extra_environment()
  local log = helpers.tmpname()
  local p <close> = process.spawn({ "/bin/sh", "-c", "echo out $ENGRAM_X; echo err >&2; exit 3" },
    { output = log, env = { ENGRAM_X = "set", HOME = "/elsewhere" } })
  lu.assertTrue(p:pid() > 0)
  lu.assertEquals({ p:wait() }, { "exit", 3 })
  lu.assertEquals({ p:poll() }, { "exit", 3 }) -- remembered once reaped
  lu.assertEquals(read_file(log), "out set\nerr\n")
  lu.assertStrContains(tostring(p), "exit 3")
  os.remove(log)
end

function TestProcess.test_poll_is_nil_while_running_and_kill_ends_the_child()
  local p = process.spawn({ "/bin/sleep", "30" })
  lu.assertNil(p:poll())
  lu.assertStrContains(tostring(p), "running")
  lu.assertTrue(p:kill())
  lu.assertEquals({ p:wait() }, { "signal", 15 })
  lu.assertFalse(p:kill()) -- already reaped: nothing to signal
end

function TestProcess.test_closing_a_running_handle_kills_and_reaps_the_child()
  local pid
  do
    local p <close> = process.spawn({ "/bin/sleep", "30" })
    pid = p:pid()
  end
  local ok = os.execute("kill -0 " .. pid .. " 2>/dev/null")
  lu.assertFalse(ok == true) -- gone, not a zombie waiting for us
end

function TestProcess.test_bad_arguments_are_errors_naming_what_is_wrong()
  lu.assertErrorMsgContains("cannot run /no/such/program: No such file or directory", process.spawn,
    { "/no/such/program" })
  lu.assertErrorMsgContains("with its output to /no/such/dir/log", process.spawn, { "/bin/true" },
    { output = "/no/such/dir/log" })
  lu.assertErrorMsgContains("argv needs at least the program", process.spawn, {})
  lu.assertErrorMsgContains("spawn: argv[2] must be a string, got number", process.spawn, { "/bin/true", 1 })
  lu.assertErrorMsgContains("spawn: unknown option 'outptu' (known: env, output)", process.spawn, { "/bin/true" },
    { outptu = "x" })
  lu.assertErrorMsgContains("env name 'A=B' is empty or holds '='", process.spawn, { "/bin/true" },
    { env = { ["A=B"] = "1" } })
  lu.assertErrorMsgContains("invalid option 'HUP'", function() process.spawn({ "/bin/true" }):kill("HUP") end)
  lu.assertErrorMsgContains("seconds must be between 0 and 1e6", process.sleep, -1)
end

function TestProcess.test_mkdir_makes_parents_and_list_names_entries()
  local root = helpers.tmpname("-proc")
  lu.assertTrue(process.mkdir(root .. "/a/b/"))
  lu.assertTrue(process.mkdir(root .. "/a/b")) -- already there: fine
  write_file(root .. "/a/f", "")
  local names = process.list(root .. "/a")
  table.sort(names)
  lu.assertEquals(names, { "b", "f" })
  local ok, msg = process.mkdir(root .. "/a/f")
  lu.assertNil(ok)
  lu.assertStrContains(msg, "a file of that name exists")
  ok, msg = process.list(root .. "/none")
  lu.assertNil(ok)
  lu.assertStrContains(msg, "No such file or directory")
  lu.assertTrue(process.cpus() >= 1)
  lu.assertStrContains(process.self(), "engram")
  os.execute("rm -rf " .. helpers.q(root))
end
