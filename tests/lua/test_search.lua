-- `engram search` (lua/engram/cmd/search.lua) over the tiny recipe
-- tests/recipes/blobs.lua. Runs build/engram (ENGRAM_BIN overrides) from the
-- project root.
local lu = require("luaunit")
local helpers = require("helpers")
local json = require("engram.json")

local BIN = os.getenv("ENGRAM_BIN") or "build/engram"
local RECIPE = "tests/recipes/blobs.lua"
local q, read_file, write_file = helpers.q, helpers.read_file, helpers.write_file

-- Runs `[env] BIN args`; returns stdout, stderr, exit status.
local function run(args, env) return helpers.run(BIN, args, nil, env) end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

local dirs = {}
local function tmpdir()
  local d = helpers.tmpname("-search")
  dirs[#dirs + 1] = d
  return d
end
local function cleanup()
  for _, d in ipairs(dirs) do os.execute("rm -rf " .. q(d)) end
  dirs = {}
end

-- engram search RECIPE <args> --dir DIR --quiet; returns dir, stdout, stderr, status.
local function search(args, dir)
  dir = dir or tmpdir()
  local o, e, code = run(string.format("search %s --dir %s --quiet %s", RECIPE, q(dir), args))
  return dir, o, e, code
end

local function summary(dir) return json.read_file(dir .. "/summary.json") end

TestSearch = { tearDown = cleanup }

function TestSearch.test_grid_runs_every_point_and_ranks_every_run_best_first()
  local dir, out, err, code = search("--grid 'lambda=1,10' --grid hidden=8,16 --jobs 2")
  lu.assertEquals(code, 0, err)
  local s = summary(dir)
  lu.assertEquals(#s.points, 4)
  -- the first key varies slowest; each point's results file holds both runs of the recipe
  local want = { { 1, 8 }, { 1, 16 }, { 10, 8 }, { 10, 16 } }
  local scores = {}
  for k, p in ipairs(s.points) do
    lu.assertEquals(p.status, "ok")
    lu.assertEquals({ p.options.lambda, p.options.hidden }, want[k])
    lu.assertEquals(p.results, string.format("point-%03d.json", k))
    local docs = require("engram.results").load(dir .. "/" .. p.results)
    lu.assertEquals(#docs, 2)
    lu.assertEquals(docs[2].strategies[1].options.lambda, want[k][1])
    lu.assertEquals(#p.runs, 2)
    for j, r in ipairs(p.runs) do
      lu.assertEquals(r.name, docs[j].name)
      lu.assertEquals(r.score, docs[j].avg_acc) -- the score is the run's ACC, as written
      scores[#scores + 1] = r.score
    end
    lu.assertTrue(exists(dir .. "/" .. p.log))
  end
  -- 8 runs ranked, scores never increasing, ranks 1..8, best = rank 1
  lu.assertEquals(#s.ranking, 8)
  table.sort(scores, function(a, b) return a > b end)
  for k, r in ipairs(s.ranking) do
    lu.assertEquals(r.rank, k)
    lu.assertEquals(r.score, scores[k])
    lu.assertEquals(s.points[r.point].runs[r.run == "naive" and 1 or 2].rank, k)
  end
  lu.assertEquals(s.best, s.ranking[1])
  lu.assertEquals(s.metric, "avg_acc")
  lu.assertEquals(s.eval_on, "val")
  lu.assertEquals(s.env, { ENGRAM_EVAL_ON = "val", ENGRAM_VALIDATION = "0.1", OPENBLAS_NUM_THREADS = "1" })
  lu.assertEquals(s.points[1].args, { RECIPE, "--lambda", "1", "--hidden", "8", "--threads", "1", "--out",
    dir .. "/point-001.json" })
  -- the printed table is summary.txt, best first
  lu.assertEquals(out, read_file(dir .. "/summary.txt"))
  local first = out:match("\n%s*1%s+(%d+)%s+(%a+)")
  lu.assertEquals(first, tostring(s.ranking[1].point))
  local html = read_file(dir .. "/report.html")
  lu.assertStrContains(html, "ranked by avg_acc on validation splits")
  lu.assertStrContains(html, "#1 " .. s.ranking[1].run)
end

function TestSearch.test_points_are_scored_on_validation_splits_and_never_read_the_test_split()
  -- the recipe's spy counts every dataset method called on a test set; run
  -- alone, the recipe reads its test sets (so the spy sees reads)
  local alone = tmpdir() .. ".json"
  local _, err, code = run(RECIPE .. " --reference --out " .. q(alone))
  lu.assertEquals(code, 0, err)
  local plain = require("engram.results").load(alone)
  os.remove(alone)
  lu.assertTrue(plain[1].extra.test_touches > 0)
  lu.assertNil(plain[1].extra.options.eval_on)
  -- in a search (with the NAR references too) it never does
  local dir
  dir, _, err, code = search("--grid 'lambda=1,100' --validation 0.2 -- --reference")
  lu.assertEquals(code, 0, err)
  for _, p in ipairs(summary(dir).points) do
    for _, d in ipairs(require("engram.results").load(dir .. "/" .. p.results)) do
      lu.assertEquals(d.extra.test_touches, 0)
      lu.assertEquals(d.extra.options.eval_on, "val")
      lu.assertNotNil(d.nar)
      -- 20% of each task's 450 training samples held out
      for t, task in ipairs(d.scenario.details.tasks) do
        lu.assertEquals(task.val + task.train, plain[1].scenario.details.tasks[t].train)
        lu.assertAlmostEquals(task.val / (task.val + task.train), 0.2, 0.01)
      end
    end
  end
end

function TestSearch.test_a_run_not_evaluated_on_validation_is_not_scored()
  -- a "recipe" that makes its own accuracy matrix, outside engram.learner
  local recipe = tmpdir() .. ".lua"
  write_file(recipe, [[
local engram = require("engram")
local opts = engram.options.parse(arg, { options = { { "x", 1, "a setting" } } })
engram.results.save(opts.out, engram.results.new { name = "own", acc = { { 0.5 } } })
]])
  local dir = tmpdir()
  local _, err, code = run(string.format("search %s --grid x=1,2 --dir %s --quiet", q(recipe), q(dir)))
  os.remove(recipe)
  lu.assertEquals(code, 1)
  lu.assertStrContains(err, "was not evaluated on validation splits")
  local s = summary(dir)
  lu.assertEquals(#s.ranking, 0)
  for _, p in ipairs(s.points) do lu.assertEquals(p.status, "failed") end
  lu.assertFalse(exists(dir .. "/report.html"))
end

function TestSearch.test_a_failing_point_is_reported_and_the_others_still_run()
  local dir, out, err, code = search("--grid 'lambda=10,-1,1' --jobs 2")
  lu.assertEquals(code, 1)
  lu.assertStrContains(err, "point 2 (lambda=-1): FAILED (exit status 1)")
  lu.assertStrContains(err, "ewc: lambda must be a finite number >= 0, got -1") -- the log's last lines
  local s = summary(dir)
  lu.assertEquals(s.points[2].status, "failed")
  lu.assertEquals(s.points[2].exit, 1)
  lu.assertEquals(s.points[1].status, "ok")
  lu.assertEquals(s.points[3].status, "ok")
  lu.assertEquals(#s.ranking, 4)
  lu.assertStrContains(out, "point 2 (lambda=-1): failed, exit status 1")
  lu.assertTrue(exists(dir .. "/report.html"))
end

function TestSearch.test_bad_grids_and_unknown_options_are_refused_before_any_run()
  local cases = {
    { "--grid lambda", "expected key=v1,v2" },
    { "--grid 'lambda=1,,2'", "an empty value" },
    { "--grid lamda=1,10", "has no option --lamda (it has: --batch," },
    { "--grid lambda=1,abc", "bad value for --lambda: 'abc' is not a number" },
    { "--grid hidden=1.5", "'1.5' is not an integer" },
    { "--grid lambda=1 -- --bogus 3", "unknown option --bogus" },
    { "--grid lambda=1:100:log", "ranges need --random N" },
    { "--grid lambda=1:100:cubic --random 2", "unknown range kind 'cubic'" },
    { "--grid lambda=0:100:log --random 2", "a log range needs a positive low end" },
    { "--grid lambda=1,2 --grid lambda=3", "key 'lambda' is given twice" },
    { "--grid out=x.json", "the search sets --out itself" },
    { "--grid lambda=1 --metric acc", "--metric must be one of" },
    { "--grid lambda=1 --jobs 0", "--jobs must be an integer >= 1" },
    { "--grid lambda=1 --validation 1", "--validation must be a share" },
    { "--grid lambda=1 --bogus", "unknown option --bogus" },
    { "", "no --grid given" },
  }
  for _, case in ipairs(cases) do
    local dir, _, err, code = search(case[1])
    lu.assertEquals(code, 2, case[1])
    lu.assertStrContains(err, case[2])
    lu.assertFalse(exists(dir), case[1]) -- nothing made, nothing run
  end
  local _, err, code = run("search no/such/recipe.lua --grid lambda=1")
  lu.assertEquals(code, 2)
  lu.assertStrContains(err, "cannot open recipe no/such/recipe.lua")
end

function TestSearch.test_random_points_are_drawn_from_lists_and_ranges_reproducibly()
  local args = "--grid 'lambda=1:100:log' --grid 'hidden=4:64:logint' --grid 'lr=0.01,0.02' --random 6 --dry-run"
  local _, a, _, code = search(args .. " --seed 3")
  lu.assertEquals(code, 0)
  local _, b = search(args .. " --seed 3")
  local _, c = search(args .. " --seed 4")
  lu.assertEquals(a, b)
  lu.assertNotEquals(a, c)
  local n = 0
  for lambda, hidden, lr in a:gmatch("lambda=(%S+) hidden=(%S+) lr=(%S+)") do
    n = n + 1
    lambda, hidden = tonumber(lambda), math.tointeger(tonumber(hidden))
    lu.assertTrue(lambda >= 1 and lambda <= 100, tostring(lambda))
    lu.assertNotNil(hidden)
    lu.assertTrue(hidden >= 4 and hidden <= 64)
    lu.assertTrue(lr == "0.01" or lr == "0.02")
  end
  lu.assertEquals(n, 6)
end

-- The recipe records when it started and finished on CLOCK_MONOTONIC, the
-- same clock in every process: with two jobs the two runs overlap, with one
-- the second starts after the first has ended. The scores do not depend on it.
function TestSearch.test_two_jobs_run_two_recipes_at_once_with_the_same_results()
  local function spans(jobs)
    local dir, _, err, code = search("--grid 'lambda=1,10' --jobs " .. jobs .. " -- --epochs 10")
    lu.assertEquals(code, 0, err)
    local s, out = summary(dir), {}
    lu.assertEquals(s.jobs, jobs)
    for k, p in ipairs(s.points) do
      local d = require("engram.results").load(dir .. "/" .. p.results)[2]
      out[k] = { d.extra.started, d.extra.finished, d.avg_acc }
    end
    return out
  end
  local two, one = spans(2), spans(1)
  lu.assertTrue(two[2][1] < two[1][2] and two[1][1] < two[2][2], "the runs overlap")
  lu.assertTrue(one[2][1] > one[1][2], "one after the other")
  lu.assertEquals(two[1][3], one[1][3])
  lu.assertEquals(two[2][3], one[2][3])
end

function TestSearch.test_a_non_empty_dir_is_refused_unless_forced()
  local dir, _, err, code = search("--grid lambda=1,10")
  lu.assertEquals(code, 0, err)
  local _, _, err2, code2 = search("--grid lambda=1", dir)
  lu.assertEquals(code2, 2)
  lu.assertStrContains(err2, "is not empty")
  local _, _, err3, code3 = search("--grid lambda=5 --force", dir)
  lu.assertEquals(code3, 0, err3)
  lu.assertEquals(#summary(dir).points, 1)
  lu.assertFalse(exists(dir .. "/point-002.json")) -- the earlier search's files are gone
end

function TestSearch.test_ctrl_c_stops_every_running_point()
  local dir, pidfile, errfile = tmpdir(), tmpdir(), tmpdir()
  -- a search whose points would run for minutes, in the background
  os.execute(string.format("(%s search %s --grid 'lambda=1,10,100' --jobs 2 --dir %s --quiet -- --epochs 100000 " ..
    ">/dev/null 2>%s & echo $! >%s; wait $!; echo $? >>%s) &", q(BIN), RECIPE, q(dir), q(errfile), q(pidfile),
    q(pidfile)))
  local function children()
    local p = io.popen("ps -eo args")
    local n = 0
    for line in p:lines() do
      if line:find(dir .. "/point-", 1, true) then n = n + 1 end
    end
    p:close()
    return n
  end
  local process = require("engram.process")
  local tries = 0
  while children() < 2 and tries < 200 do process.sleep(0.05); tries = tries + 1 end
  lu.assertEquals(children(), 2)
  local pid = read_file(pidfile):match("%d+")
  os.execute("kill -INT " .. pid)
  tries = 0
  while not read_file(pidfile):match("%d+%s+%d+") and tries < 200 do process.sleep(0.05); tries = tries + 1 end
  lu.assertEquals(read_file(pidfile):match("%d+%s+(%d+)"), "130")
  lu.assertEquals(children(), 0)
  lu.assertStrContains(read_file(errfile), "interrupted: the running points were stopped")
  local s = summary(dir)
  lu.assertEquals(s.points[1].status, "interrupted")
  lu.assertEquals(s.points[2].status, "interrupted")
  lu.assertEquals(s.points[3].status, "not run")
  os.remove(pidfile); os.remove(errfile)
end

function TestSearch.test_help_and_the_command_list_describe_search()
  local out, _, code = run("search --help")
  lu.assertEquals(code, 0)
  lu.assertStrContains(out, "usage: engram search RECIPE")
  lu.assertStrContains(out, "validation")
  out = run("--help")
  lu.assertStrMatches(out, ".*\n  search +run a recipe over option values.*")
end

function TestSearch.test_a_bad_ENGRAM_EVAL_ON_is_an_error()
  local _, err, code = run(RECIPE, "ENGRAM_EVAL_ON=tset")
  lu.assertEquals(code, 1)
  lu.assertStrContains(err, "learner: ENGRAM_EVAL_ON must be 'val' or 'test', got 'tset'")
end
