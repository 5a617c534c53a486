--- `engram search RECIPE [--grid 'key=v1,v2']... [--random N] [--jobs J]
-- [--dir DIR] [--metric M] [-- recipe args]`: runs a recipe over option
-- values, in parallel processes, scores every run on validation splits only
-- (never the test split) and writes each point's results, a summary and a
-- report into DIR. docs/search.md has the whole story.
--
-- How validation-only scoring works: every point runs with ENGRAM_EVAL_ON=val
-- in its environment, which makes engram.learner fill the accuracy matrix
-- from each task's validation part (eval_on = "val", whatever the recipe
-- asked) and makes the scenario constructors hold out a validation share
-- (ENGRAM_VALIDATION, --validation) when the recipe holds out none. A results
-- document whose extra.options.eval_on is not "val" is not scored: the point
-- fails.
local json = require("engram.json")
local results = require("engram.results")

local cmd = { summary = "run a recipe over option values in parallel, scored on validation splits" }

local USAGE = [[
usage: engram search RECIPE [options] [-- recipe options]

Runs RECIPE once per point (a set of option values), several at a time, each
with its accuracies measured on validation splits held out of the training
data (never on the test split), and writes into DIR every point's results
(point-NNN.json) and output (point-NNN.log), summary.json and summary.txt (the
runs ranked by score, best first) and report.html (the best runs).

options:
  --grid 'key=v1,v2,...'  values of the recipe's --key; repeat for more keys.
                          The points are every combination (first key slowest)
  --random N              instead, N points drawn at random: for each key a
                          value of its list, or from a range 'key=lo:hi[:kind]'
                          with kind lin (default), log, int or logint
  --seed S                seed of --random's draws (default 1)
  --jobs J                points run at once (default: the CPUs, here %d)
  --threads T             BLAS threads of each point (default 1), unless the
                          recipe options give --threads
  --dir DIR               where to write (default search-<recipe>-<time>)
  --force                 write into a DIR that is not empty
  --metric M              the score: avg_acc (default), bwt, fwt, forgetting
                          (lower is better), rkr, nar or cer
  --validation S          share of each task's training data held out when the
                          recipe holds out none (default 0.1)
  --top K                 runs in report.html, best first (default 10; 0: all)
  --dry-run               check the recipe's options and list the points; run nothing
  --quiet                 no progress lines
  -h, --help              show this help and exit
Options after "--" go to every point unchanged. A grid value cannot hold a
comma: give such an option after "--".
]]

local METRICS = { avg_acc = 1, bwt = 1, fwt = 1, forgetting = -1, rkr = 1, nar = 1, cer = 1 }
local RANGE_KINDS = { lin = true, log = true, int = true, logint = true }

local function key_of(name) return (name:gsub("-", "_")) end
local function flag_of(key) return "--" .. key:gsub("_", "-") end

-- A metric's value as text: accuracies in %, differences in points, ratios as is.
local function score_text(metric, v)
  if v == nil then return "n/a" end
  if metric == "avg_acc" then return string.format("%.2f%%", 100 * v) end
  if metric == "rkr" or metric == "nar" then return string.format("%.3f", v) end
  return string.format("%+.2f", 100 * v)
end

-- A number drawn for --random as the text given to the recipe.
local function number_text(v, int)
  if int then return string.format("%d", math.floor(v + 0.5)) end
  return string.format("%.4g", v)
end

-- Parses one --grid text into {key=, flag=, values=} or {key=, flag=, range={lo=, hi=, kind=}}.
local function parse_grid(text)
  local name, rest = text:match("^%s*([%a][%w_-]*)%s*=(.*)$")
  if not name then
    return nil, string.format("--grid '%s': expected key=v1,v2,... (or key=lo:hi[:kind] with --random)", text)
  end
  local g = { key = key_of(name), flag = flag_of(key_of(name)), text = text }
  local lo, hi, kind = rest:match("^%s*([^:,]+):([^:,]+):?(%a*)%s*$")
  if lo and tonumber(lo) and tonumber(hi) then
    kind = kind ~= "" and kind or "lin"
    lo, hi = tonumber(lo), tonumber(hi)
    if not RANGE_KINDS[kind] then
      return nil, string.format("--grid '%s': unknown range kind '%s' (known: lin, log, int, logint)", text, kind)
    end
    if math.abs(lo) == math.huge or math.abs(hi) == math.huge then
      return nil, string.format("--grid '%s': a range needs finite ends", text)
    end
    if lo >= hi then
      return nil, string.format("--grid '%s': the range's low end must be below its high end", text)
    end
    if kind:find("log") and lo <= 0 then
      return nil, string.format("--grid '%s': a log range needs a positive low end", text)
    end
    if kind:find("int") and (math.tointeger(lo) == nil or math.tointeger(hi) == nil) then
      return nil, string.format("--grid '%s': an int range needs integer ends", text)
    end
    g.range = { lo = lo, hi = hi, kind = kind }
    return g
  end
  g.values = {}
  for item in (rest .. ","):gmatch("([^,]*),") do
    item = item:match("^%s*(.-)%s*$")
    if item == "" then return nil, string.format("--grid '%s': an empty value", text) end
    g.values[#g.values + 1] = item
  end
  return g
end

-- Options with an integer value: the config field and the least value.
local COUNTS = { ["--random"] = { "random", 1 }, ["--seed"] = { "seed", 0 }, ["--jobs"] = { "jobs", 1 },
  ["--threads"] = { "threads", 1 }, ["--top"] = { "top", 0 } }
-- Options without a value: the config field they set.
local FLAGS = { ["-h"] = "help", ["--help"] = "help", ["--force"] = "force", ["--dry-run"] = "dry",
  ["--quiet"] = "quiet" }
local TAKES_VALUE = { ["--grid"] = true, ["--dir"] = true, ["--metric"] = true, ["--validation"] = true }
for k in pairs(COUNTS) do TAKES_VALUE[k] = true end

-- One option's value checked into c; returns an error message or nil.
local function set_option(c, opt, v, seen)
  if COUNTS[opt] then
    local field, min = COUNTS[opt][1], COUNTS[opt][2]
    local n = math.tointeger(tonumber(v))
    if not n or n < min then return string.format("%s must be an integer >= %d, got '%s'", opt, min, v) end
    c[field] = n
  elseif opt == "--grid" then
    local g, gerr = parse_grid(v)
    if not g then return gerr end
    if seen[g.key] then return string.format("--grid: key '%s' is given twice", g.key) end
    seen[g.key] = true
    c.grids[#c.grids + 1] = g
  elseif opt == "--dir" then
    if v == "" then return "--dir needs a directory" end
    c.dir = v
  elseif opt == "--metric" then
    if not METRICS[v] then
      return "--metric must be one of avg_acc, bwt, fwt, forgetting, rkr, nar, cer; got '" .. v .. "'"
    end
    c.metric = v
  elseif opt == "--validation" then
    c.validation = tonumber(v)
    if not c.validation or c.validation <= 0 or c.validation >= 1 then
      return "--validation must be a share between 0 and 1, got '" .. v .. "'"
    end
  end
end

-- The command line: returns a config table, or nil, message, exit status.
local function parse_args(args)
  local c = { grids = {}, extra = {}, seed = 1, jobs = nil, threads = 1, metric = "avg_acc", validation = 0.1,
    top = 10, force = false, dry = false, quiet = false }
  local i, seen = 1, {}
  while i <= #args do
    local a = args[i]
    local opt, inline = a:match("^(%-%-[%w-]+)=(.*)$")
    opt = opt or a
    if a == "--" then
      for k = i + 1, #args do c.extra[#c.extra + 1] = args[k] end
      break
    elseif FLAGS[opt] then
      if inline then return nil, "option " .. opt .. " takes no value", 2 end
      c[FLAGS[opt]] = true
    elseif TAKES_VALUE[opt] then
      local v = inline
      if not v then
        i = i + 1
        v = args[i]
        if v == nil then return nil, "option " .. opt .. " needs a value", 2 end
      end
      local err = set_option(c, opt, v, seen)
      if err then return nil, err, 2 end
    elseif a:sub(1, 1) == "-" then
      return nil, "unknown option " .. a .. " (engram search --help lists them; recipe options go after --)", 2
    elseif c.recipe then
      return nil, "one recipe only: got " .. c.recipe .. " and " .. a .. " (recipe options go after --)", 2
    else
      c.recipe = a
    end
    i = i + 1
  end
  if c.help then return c end
  if not c.recipe then return nil, "no recipe given (engram search --help for usage)", 2 end
  if #c.grids == 0 then return nil, "no --grid given: nothing to search over", 2 end
  for _, g in ipairs(c.grids) do
    if g.range and not c.random then
      return nil, string.format("--grid '%s' is a range: ranges need --random N", g.text), 2
    end
    if g.key == "out" or g.key == "help" then
      return nil, string.format("--grid %s: the search sets --%s itself", g.key, g.key), 2
    end
  end
  return c
end

-- The points: arrays of {key=, flag=, value=} in --grid order.
local function grid_points(grids)
  local points = { {} }
  for _, g in ipairs(grids) do
    local next_points = {}
    for _, p in ipairs(points) do
      for _, v in ipairs(g.values) do
        local q = { table.unpack(p) }
        q[#q + 1] = { key = g.key, flag = g.flag, value = v }
        next_points[#next_points + 1] = q
      end
    end
    points = next_points
  end
  return points
end

local function draw(gen, g)
  if g.values then return g.values[gen:randint(1, #g.values)] end
  local r = g.range
  if r.kind == "int" then return number_text(gen:randint(r.lo, r.hi), true) end
  if r.kind == "lin" then return number_text(gen:uniform(r.lo, r.hi)) end
  local v = math.exp(gen:uniform(math.log(r.lo), math.log(r.hi + (r.kind == "logint" and 1 or 0))))
  if r.kind == "logint" then return number_text(math.min(math.floor(v), r.hi), true) end
  return number_text(v)
end

local function label(point)
  local parts = {}
  for _, o in ipairs(point) do parts[#parts + 1] = o.key .. "=" .. o.value end
  return table.concat(parts, " ")
end

-- N distinct points drawn with a generator seeded from seed.
local function random_points(grids, n, seed)
  local gen = require("engram.core").generator(seed)
  local points, seen = {}, {}
  local tries = 0
  while #points < n do
    local p = {}
    for _, g in ipairs(grids) do p[#p + 1] = { key = g.key, flag = g.flag, value = draw(gen, g) } end
    local id = label(p)
    if not seen[id] then
      seen[id] = true
      points[#points + 1] = p
      tries = 0
    else
      tries = tries + 1
      if tries > 1000 then
        return nil, string.format("--random %d: only %d distinct points could be drawn from the grid", n, #points)
      end
    end
  end
  return points
end

-- Runs argv to completion with its output in a temporary file; returns the
-- exit status (or 128 + signal) and the output.
local function run_captured(process, argv)
  local tmp = os.tmpname()
  local p <close> = process.spawn(argv, { output = tmp })
  local how, code = p:wait()
  local f = io.open(tmp, "rb")
  local text = f and f:read("a") or ""
  if f then f:close() end
  os.remove(tmp)
  return how == "exit" and code or 128 + (code or 0), text
end

local function tail(text, n)
  local lines = {}
  for line in text:gmatch("[^\n]+") do lines[#lines + 1] = line end
  return table.concat(lines, "\n", math.max(1, #lines - n + 1))
end

-- Checks the recipe before any run: its --help must list --out (and says
-- whether it takes --threads), and the recipe's own parser must accept every
-- key and value of the points (run with --help, which parses everything and
-- exits). Returns the recipe's option keys, or nil and a message.
local function check_recipe(process, exe, c, points)
  local f = io.open(c.recipe, "r")
  if not f then return nil, "cannot open recipe " .. c.recipe end
  f:close()
  local status, text = run_captured(process, { exe, c.recipe, "--help" })
  if status ~= 0 then
    return nil, string.format("%s --help failed (exit %d):\n%s", c.recipe, status, tail(text, 5))
  end
  local known, names = {}, {}
  for line in text:gmatch("[^\n]+") do -- "  --key N  help" or "  --[no-]flag  help"
    local flag = line:match("^%s+%-%-%[no%-%]([%w][%w_-]*)") or line:match("^%s+%-%-([%w][%w_-]*)")
    if flag then
      known[key_of(flag)] = true
      names[#names + 1] = "--" .. flag
    end
  end
  if not known.out then
    return nil, string.format("%s --help lists no --out option: the search needs the recipe to write its results " ..
      "with --out (engram.options.parse gives every recipe one)", c.recipe)
  end
  for _, g in ipairs(c.grids) do
    if not known[g.key] then
      return nil, string.format("--grid %s: %s has no option %s (it has: %s)", g.text, c.recipe, g.flag,
        table.concat(names, ", "))
    end
  end
  -- Each distinct value of each key once: k runs of the parser, k the most values of a key.
  local distinct, most = {}, 0
  for gi in ipairs(c.grids) do
    local list, seen = {}, {}
    for _, p in ipairs(points) do
      local v = p[gi].value
      if not seen[v] then seen[v], list[#list + 1] = true, v end
    end
    distinct[gi] = list
    most = math.max(most, #list)
  end
  for k = 1, most do
    local argv = { exe, c.recipe }
    for _, a in ipairs(c.extra) do argv[#argv + 1] = a end
    for gi, g in ipairs(c.grids) do
      local list = distinct[gi]
      argv[#argv + 1] = g.flag
      argv[#argv + 1] = list[(k - 1) % #list + 1]
    end
    argv[#argv + 1] = "--help"
    local st, out = run_captured(process, argv)
    if st ~= 0 then
      return nil, string.format("the recipe refuses the options %s (exit %d):\n%s",
        table.concat(argv, " ", 3, #argv - 1), st, tail(out, 3))
    end
  end
  return known
end

-- The output directory: made, and empty unless --force (which then removes
-- what an earlier search wrote there). Returns true or nil, message.
local function prepare_dir(process, dir, force)
  local ok, err = process.mkdir(dir)
  if not ok then return nil, err end
  local names = process.list(dir) or {}
  if #names == 0 then return true end
  if not force then
    return nil, string.format("%s is not empty (%d entries): choose another --dir, or --force to write into it",
      dir, #names)
  end
  for _, n in ipairs(names) do
    if n:match("^point%-%d+%.json$") or n:match("^point%-%d+%.log$") or n == "summary.json" or n == "summary.txt"
      or n == "report.html" then
      os.remove(dir .. "/" .. n)
    end
  end
  return true
end

-- Reads and scores a finished point's results; sets point.status, .runs or .reason.
local function score_point(c, point)
  local docs, err = results.read(point.results_path)
  if not docs then
    point.status, point.reason = "failed", "no results: " .. tostring(err)
    return
  end
  point.docs, point.runs = docs, {}
  for _, d in ipairs(docs) do
    local eo = type(d.extra) == "table" and type(d.extra.options) == "table" and d.extra.options.eval_on
    if eo ~= "val" then
      point.status = "failed"
      point.reason = string.format("run '%s' was not evaluated on validation splits (extra.options.eval_on is %s): " ..
        "the recipe measures accuracies outside engram.learner", tostring(d.name), tostring(eo))
      point.runs = nil
      return
    end
    local v = d[c.metric]
    point.runs[#point.runs + 1] = { name = tostring(d.name), score = type(v) == "number" and v or nil, doc = d }
  end
  point.status = "ok"
end

local function fmt_seconds(s)
  if s < 60 then return string.format("%.1fs", s) end
  return require("engram.progress").duration(s)
end

-- Runs the points, c.jobs at a time. Ctrl-C (or any error) kills the running
-- children before the error goes on.
local function run_points(process, exe, c, points, err)
  local clock = require("engram.core").clock
  local t0 = clock()
  local running = {}
  local pool <close> = setmetatable({}, { __close = function() -- luacheck: ignore 211 (closed on leaving)
    for _, r in ipairs(running) do r.proc:kill("TERM") end
    local deadline = clock() + 2
    for _, r in ipairs(running) do
      while not r.proc:poll() and clock() < deadline do process.sleep(0.02) end
      r.proc:close() -- SIGKILL if TERM was not enough, and reaped
      r.point.status, r.point.reason = "interrupted", "stopped by the search"
    end
  end })
  local done, failed, best, busy = 0, 0, nil, 0
  local function start(point)
    local argv = { exe, c.recipe }
    for _, a in ipairs(c.extra) do argv[#argv + 1] = a end
    for _, o in ipairs(point.options) do argv[#argv + 1] = o.flag; argv[#argv + 1] = o.value end
    if c.pass_threads then argv[#argv + 1] = "--threads"; argv[#argv + 1] = tostring(c.threads) end
    argv[#argv + 1] = "--out"
    argv[#argv + 1] = point.results_path
    point.argv = argv
    point.started = clock() - t0
    running[#running + 1] = { point = point, proc = process.spawn(argv, { output = point.log_path, env = c.env }) }
  end
  local function finish(point, how, code)
    point.finished = clock() - t0
    point.seconds = point.finished - point.started
    busy = busy + point.seconds
    if how == "exit" and code == 0 then
      score_point(c, point)
    else
      point.status = "failed"
      if how == "exit" then point.exit, point.reason = code, "exit status " .. code
      else point.signal, point.reason = code, "killed by signal " .. tostring(code) end
    end
    done = done + 1
    local line = string.format("engram search: [%d/%d] point %d (%s)", done, #points, point.index, point.label)
    if point.status == "ok" then
      local top
      for _, r in ipairs(point.runs) do
        if r.score and (not top or c.better(r.score, top.score)) then top = r end
        if r.score and (not best or c.better(r.score, best.score)) then
          best = { score = r.score, run = r, point = point }
        end
      end
      line = line .. string.format(": %s in %s%s", "done", fmt_seconds(point.seconds),
        top and string.format(", best run %s %s %s", top.name, c.metric, score_text(c.metric, top.score)) or "")
    else
      failed = failed + 1
      line = line .. string.format(": FAILED (%s) after %s", point.reason, fmt_seconds(point.seconds))
    end
    local left = #points - done
    if left > 0 then
      line = line .. string.format("; ETA %s", fmt_seconds(busy / done * left / c.jobs))
    end
    if best then
      line = line .. string.format("; best so far: %s %s (point %d, %s)", c.metric, score_text(c.metric, best.score),
        best.point.index, best.run.name)
    end
    if not c.quiet or point.status ~= "ok" then err:write(line, "\n") end
    if point.status ~= "ok" then
      local f = io.open(point.log_path, "rb")
      local text = f and f:read("a") or ""
      if f then f:close() end
      text = text:match("^(.-)\nstack traceback:") or text -- the error, not where it came from
      if text ~= "" then err:write("  | ", (tail(text, 4):gsub("\n", "\n  | ")), "\n") end
      err:write("  (whole output: ", point.log_path, ")\n")
    end
  end
  local next_i = 1
  while next_i <= #points or #running > 0 do
    while #running < c.jobs and next_i <= #points do
      start(points[next_i])
      next_i = next_i + 1
    end
    local any = false
    for k = #running, 1, -1 do
      local r = running[k]
      local how, code = r.proc:poll()
      if how then
        table.remove(running, k)
        r.proc:close()
        finish(r.point, how, code)
        any = true
      end
    end
    if not any then process.sleep(0.02) end
  end
  return clock() - t0, failed
end

-- Every scored run, best first (runs without a score last, in point order).
local function ranking(c, points)
  local rows = {}
  for _, p in ipairs(points) do
    for _, r in ipairs(p.runs or {}) do rows[#rows + 1] = { point = p, run = r } end
  end
  table.sort(rows, function(a, b)
    local x, y = a.run.score, b.run.score
    if x and y and x ~= y then return c.better(x, y) end
    if (x == nil) ~= (y == nil) then return x ~= nil end
    if a.point.index ~= b.point.index then return a.point.index < b.point.index end
    return a.run.name < b.run.name
  end)
  for k, row in ipairs(rows) do row.rank = k; row.run.rank = k end
  return rows
end

-- The summary table (a new string): the runs ranked, then the failed points.
local function summary_table(c, rows, points)
  local head = { "rank", "point", "run" }
  for _, g in ipairs(c.grids) do head[#head + 1] = g.key end
  head[#head + 1] = c.metric .. " (val)"
  if c.metric ~= "avg_acc" then head[#head + 1] = "ACC (val)" end
  head[#head + 1] = "forget"
  head[#head + 1] = "s"
  local t = { head }
  for _, row in ipairs(rows) do
    local d = row.run.doc
    local line = { tostring(row.rank), tostring(row.point.index), row.run.name }
    for _, o in ipairs(row.point.options) do line[#line + 1] = o.value end
    line[#line + 1] = score_text(c.metric, row.run.score)
    if c.metric ~= "avg_acc" then line[#line + 1] = score_text("avg_acc", d.avg_acc) end
    line[#line + 1] = d.forgetting and string.format("%.2f", 100 * d.forgetting) or "n/a"
    line[#line + 1] = string.format("%.1f", row.point.seconds or 0)
    t[#t + 1] = line
  end
  local left = { [3] = true } -- the run's name and the options' values
  for k = 1, #c.grids do left[3 + k] = true end
  local out = { results.columns(t, left) }
  for _, p in ipairs(points) do
    if p.status ~= "ok" then
      out[#out + 1] = string.format("point %d (%s): %s%s\n", p.index, p.label, p.status or "not run",
        p.reason and (", " .. p.reason) or "")
    end
  end
  return table.concat(out)
end

local function summary_doc(c, points, rows, wall)
  local doc = json.object {
    schema = "engram.search/1", recipe = c.recipe, recipe_args = json.array(c.extra), metric = c.metric,
    higher_is_better = METRICS[c.metric] > 0, eval_on = "val", validation = c.validation,
    mode = c.random and "random" or "grid", seed = c.random and c.seed or nil, jobs = c.jobs,
    threads = c.pass_threads and c.threads or nil, env = json.object(c.env), seconds = wall,
    created = os.date("!%Y-%m-%dT%H:%M:%SZ"),
    grid = json.array(), points = json.array(), ranking = json.array(),
  }
  for _, g in ipairs(c.grids) do
    doc.grid[#doc.grid + 1] = { key = g.key, values = g.values and json.array(g.values) or nil, range = g.range }
  end
  for _, p in ipairs(points) do
    local opts = json.object()
    for _, o in ipairs(p.options) do opts[o.key] = tonumber(o.value) or o.value end
    local runs = json.array()
    for _, r in ipairs(p.runs or {}) do runs[#runs + 1] = { name = r.name, score = r.score, rank = r.rank } end
    doc.points[#doc.points + 1] = {
      point = p.index, options = opts, args = json.array(p.argv and { table.unpack(p.argv, 2) } or {}),
      status = p.status or "not run", reason = p.reason, exit = p.exit, signal = p.signal, seconds = p.seconds,
      started = p.started, finished = p.finished, results = p.status == "ok" and p.results_name or nil,
      log = p.log_name, runs = runs,
    }
  end
  for _, row in ipairs(rows) do
    local opts = json.object()
    for _, o in ipairs(row.point.options) do opts[o.key] = tonumber(o.value) or o.value end
    doc.ranking[#doc.ranking + 1] = { rank = row.rank, point = row.point.index, run = row.run.name,
      score = row.run.score, options = opts }
  end
  doc.best = doc.ranking[1]
  return doc
end

--- Runs the command; args is the array of words after `search`. io_
-- (optional) = {out=, err=} for tests. Returns the exit status: 0 when every
-- point ran and was scored, 1 when some failed (the rest are still written),
-- 2 for a usage error (nothing run), 130 when interrupted.
function cmd.main(args, io_)
  local out = io_ and io_.out or io.stdout
  local err = io_ and io_.err or io.stderr
  local function fail(status, msg)
    err:write("engram search: ", msg, "\n")
    return status
  end
  local process = require("engram.process")
  local c, perr, pstatus = parse_args(args or {})
  if not c then return fail(pstatus, perr) end
  if c.help then
    out:write((USAGE:gsub("%%d", tostring(process.cpus()))))
    return 0
  end
  c.better = METRICS[c.metric] > 0 and function(x, y) return x > y end or function(x, y) return x < y end
  local points, rerr
  if c.random then points, rerr = random_points(c.grids, c.random, c.seed) else points = grid_points(c.grids) end
  if not points then return fail(2, rerr) end
  local exe, xerr = process.self()
  if not exe then return fail(1, xerr) end
  local known, cerr = check_recipe(process, exe, c, points)
  if not known then return fail(2, cerr) end
  local given_threads = false
  for _, g in ipairs(c.grids) do given_threads = given_threads or g.key == "threads" end
  for _, a in ipairs(c.extra) do given_threads = given_threads or a == "--threads" or a:match("^%-%-threads=") end
  c.pass_threads = known.threads and not given_threads
  c.jobs = math.min(c.jobs or process.cpus(), #points)
  c.env = { ENGRAM_EVAL_ON = "val", ENGRAM_VALIDATION = tostring(c.validation) } -- what every point adds
  if c.pass_threads then c.env.OPENBLAS_NUM_THREADS = tostring(c.threads) end
  if c.dry then
    out:write(string.format("%d point%s of %s (checked with the recipe's own option parser):\n", #points,
      #points == 1 and "" or "s", c.recipe))
    for k, p in ipairs(points) do out:write(string.format("  %3d  %s\n", k, label(p))) end
    return 0
  end
  if not c.dir then
    c.dir = string.format("search-%s-%s", (c.recipe:match("([^/]+)$"):gsub("%.lua$", "")), os.date("%Y%m%d-%H%M%S"))
  end
  local ok, derr = prepare_dir(process, c.dir, c.force)
  if not ok then return fail(2, derr) end
  local list = {}
  for k, p in ipairs(points) do
    local name = string.format("point-%03d", k)
    list[k] = { index = k, options = p, label = label(p), results_name = name .. ".json", log_name = name .. ".log",
      results_path = c.dir .. "/" .. name .. ".json", log_path = c.dir .. "/" .. name .. ".log" }
  end
  if not c.quiet then
    err:write(string.format("engram search: %d points of %s, %d at a time (%s BLAS thread%s each), scored on %s " ..
      "over validation splits; writing to %s\n", #list, c.recipe, c.jobs, c.pass_threads and tostring(c.threads) or
      "the recipe's", c.threads == 1 and "" or "s", c.metric, c.dir))
  end
  local rok, wall, failed = pcall(run_points, process, exe, c, list, err)
  local interrupted = not rok
  if interrupted and not tostring(wall):find("interrupted!", 1, true) then error(wall, 0) end
  local rows = ranking(c, list)
  local table_text = summary_table(c, rows, list)
  json.write_file(c.dir .. "/summary.json", summary_doc(c, list, rows, not interrupted and wall or nil))
  assert(json.write_atomic(c.dir .. "/summary.txt", table_text))
  out:write(table_text)
  if interrupted then
    return fail(130, "interrupted: the running points were stopped; what finished is in " .. c.dir)
  end
  local docs = {}
  for k, row in ipairs(rows) do
    if c.top > 0 and k > c.top then break end
    local d = row.run.doc
    d.name = string.format("#%d %s (point %d: %s)", row.rank, row.run.name, row.point.index, row.point.label)
    docs[#docs + 1] = d
  end
  if #docs > 0 then
    local title = string.format("engram search: %s, ranked by %s on validation splits", c.recipe, c.metric)
    require("engram.report").write(c.dir .. "/report.html", docs, { title = title })
  end
  err:write(string.format("engram search: %d of %d points scored in %s (%d failed); wrote %s/summary.json, " ..
    "summary.txt%s and %d results files\n", #list - failed, #list, fmt_seconds(wall), failed, c.dir,
    #docs > 0 and ", report.html" or "", #list - failed))
  return failed > 0 and 1 or 0
end

return cmd
