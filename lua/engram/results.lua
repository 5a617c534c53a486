--- The results document of a run (docs/results-schema.md): build, validate,
-- print, compare, save and load. Reports and comparisons read only this.
--
--   local doc = results.new{name = "ewc", scenario = {name = "split-mnist", kind = "class-IL"},
--                           strategies = {{name = "ewc", options = {lambda = 100}}},
--                           seed = 1, acc = R, baseline_acc = b, train_seconds = 12.5}
--   results.print(doc)
--   results.save("ewc.json", doc)          -- or results.save(path, {doc1, doc2})
--   local docs = results.load("ewc.json")  -- always an array of documents
--
-- Accuracies are fractions in [0, 1]; printed tables show percentages, and
-- BWT, FWT, forgetting and CER as percentage points.
local json = require("engram.json")
local metrics = require("engram.metrics")

local results = {}

results.SCHEMA = "engram.results/1"

local METRICS = { "bwt", "fwt", "forgetting", "rkr", "nar", "cer" }

--- Peak resident memory of this process in MB (VmHWM from /proc/self/status), or nil.
function results.peak_rss_mb()
  local f = io.open("/proc/self/status", "r")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  local kb = s:match("VmHWM:%s*(%d+)%s*kB")
  return kb and math.floor(tonumber(kb) / 1024 * 10 + 0.5) / 10 or nil
end

local function engram_version()
  local ok, core = pcall(require, "engram.core")
  if ok and type(core) == "table" and core.version then return tostring(core.version) end
  return "unknown"
end

local function copy_matrix(R)
  local c = json.array()
  for i, row in ipairs(R) do
    c[i] = json.array()
    for j, v in ipairs(row) do c[i][j] = v end
  end
  return c
end

local function copy_array(v)
  if v == nil then return nil end
  local c = json.array()
  for i, x in ipairs(v) do c[i] = x end
  return c
end

-- A shallow copy marked as a JSON object, so the caller's table (which may
-- have its own metatable) is left alone.
local function object_copy(t)
  local c = json.object()
  for k, v in pairs(t or {}) do c[k] = v end
  return c
end

local function norm_strategies(s)
  local out = json.array()
  if s == nil then return out end
  if type(s) == "string" then s = { s } end
  for i, e in ipairs(s) do
    if type(e) == "string" then
      out[i] = { name = e, options = json.object() }
    elseif type(e) == "table" and type(e.name) == "string" then
      out[i] = { name = e.name, options = object_copy(e.options) }
      if type(e.state_bytes) == "number" then out[i].state_bytes = e.state_bytes end
    else
      error(string.format("results.new: strategies[%d] must be a name or {name=, options=}", i), 3)
    end
  end
  return out
end

local function norm_scenario(s, T)
  if s == nil then return nil end
  if type(s) == "string" then s = { name = s } end
  if type(s) ~= "table" or type(s.name) ~= "string" then
    error("results.new: scenario must be a name or {name=, kind=, tasks=, details=}", 3)
  end
  return { name = s.name, kind = s.kind, tasks = s.tasks or T, details = s.details and object_copy(s.details) }
end

local new_keys = {
  "acc", "baseline_acc", "baseline_perplexity", "created", "engram_version", "eval_seconds", "extra", "naive",
  "name", "peak_rss_mb", "perplexity", "reference", "reference_acc", "scenario", "seed", "strategies",
  "train_seconds", "trainable_params",
}
local new_known = {}
for _, k in ipairs(new_keys) do new_known[k] = true end

--- A new results document from a run's measurements; the derived metrics
-- (avg_acc, avg_acc_per_task, bwt, fwt, forgetting, rkr, nar, cer) are
-- computed here with engram.metrics. Required: acc. Optional: name, scenario,
-- strategies, seed, baseline_acc (b, for FWT), reference_acc and reference
-- (A and what it is, for NAR), naive = {acc=, train_seconds=} (for CER),
-- train_seconds, eval_seconds, trainable_params, peak_rss_mb (default: read
-- now), created (default: now), engram_version, extra (a table of anything).
function results.new(o)
  if type(o) ~= "table" then error("results.new: expected a table of fields", 2) end
  for k in pairs(o) do
    if not new_known[k] then
      error("results.new: unknown field '" .. tostring(k) .. "' (known: " .. table.concat(new_keys, ", ") .. ")", 2)
    end
  end
  if o.acc == nil then error("results.new: the accuracy matrix 'acc' is required", 2) end
  local ok, T = pcall(metrics.check, o.acc)
  if not ok then error("results.new: " .. tostring(T):gsub("^.-metrics: ", ""), 2) end
  local naive = o.naive
  if naive ~= nil and type(naive) ~= "table" then error("results.new: naive must be {acc=, train_seconds=}", 2) end
  local mok, m = pcall(metrics.all, o.acc, {
    baseline = o.baseline_acc, reference = o.reference_acc,
    naive_acc = naive and naive.acc, naive_cost = naive and naive.train_seconds, cost = o.train_seconds,
  })
  if not mok then error("results.new: " .. tostring(m):gsub("^.-metrics: ", ""), 2) end
  local ppl_ratio
  if o.perplexity ~= nil then
    local pok, perr = metrics.check_perplexity(o.perplexity, T)
    if not pok then error("results.new: perplexity" .. perr, 2) end
    ppl_ratio = metrics.perplexity_ratio(o.perplexity)
  end
  if o.baseline_perplexity ~= nil then
    local pok, perr = metrics.check_perplexities(o.baseline_perplexity, T)
    if not pok then error("results.new: baseline_perplexity" .. perr, 2) end
  end
  local doc = {
    schema = results.SCHEMA,
    name = o.name or "run",
    scenario = norm_scenario(o.scenario, T),
    tasks = T,
    strategies = norm_strategies(o.strategies),
    seed = o.seed,
    acc = copy_matrix(o.acc),
    baseline_acc = copy_array(o.baseline_acc),
    reference_acc = copy_array(o.reference_acc),
    reference = o.reference,
    naive = naive and { acc = naive.acc, train_seconds = naive.train_seconds, name = naive.name },
    avg_acc = m.acc,
    avg_acc_per_task = copy_array(m.avg_acc_per_task),
    train_seconds = o.train_seconds,
    eval_seconds = o.eval_seconds,
    trainable_params = o.trainable_params,
    peak_rss_mb = o.peak_rss_mb or results.peak_rss_mb(),
    engram_version = o.engram_version or engram_version(),
    created = o.created or os.date("!%Y-%m-%dT%H:%M:%SZ"),
    undefined = json.object(m.undefined),
    extra = o.extra,
    perplexity = o.perplexity and copy_matrix(o.perplexity),
    baseline_perplexity = copy_array(o.baseline_perplexity),
    perplexity_ratio = copy_array(ppl_ratio),
  }
  for _, k in ipairs(METRICS) do doc[k] = m[k] end
  return doc
end

-- validation -------------------------------------------------------------

local function is_num(v) return type(v) == "number" and v == v and v ~= math.huge and v ~= -math.huge end
-- An accuracy: a finite number in [0, 1].
local function is_acc(v) return is_num(v) and v >= 0 and v <= 1 end

local typed = {
  name = "string", tasks = "number", seed = "number", avg_acc = "number",
  bwt = "number", fwt = "number", forgetting = "number", rkr = "number", nar = "number", cer = "number",
  train_seconds = "number", eval_seconds = "number", peak_rss_mb = "number", trainable_params = "number",
  engram_version = "string", created = "string", scenario = "table", strategies = "table",
  undefined = "table", reference = "string",
}

--- Checks one document; returns true, or nil and a message naming the field.
function results.validate(doc)
  if type(doc) ~= "table" then return nil, "a run must be a JSON object" end
  local R = doc.acc
  if R == nil then return nil, "field 'acc' (the accuracy matrix) is missing" end
  if type(R) ~= "table" or #R == 0 then return nil, "field 'acc' must be a non-empty array of rows" end
  local T = #R
  for i = 1, T do
    if type(R[i]) ~= "table" or #R[i] ~= T then
      return nil, string.format("acc[%d] must be an array of %d numbers (acc is %dx%d)", i, T, T, T)
    end
    for j = 1, T do
      local v = R[i][j]
      if not is_num(v) then return nil, string.format("acc[%d][%d] must be a finite number", i, j) end
      if not is_acc(v) then return nil, string.format("acc[%d][%d] is %s, not an accuracy in [0, 1]", i, j, v) end
    end
  end
  for k, t in pairs(typed) do
    if doc[k] ~= nil and type(doc[k]) ~= t then
      return nil, string.format("field '%s' must be a %s, not a %s", k, t == "table" and "JSON object or array" or t,
        type(doc[k]))
    end
    if t == "number" and doc[k] ~= nil and not is_num(doc[k]) then
      return nil, string.format("field '%s' must be a finite number, got %s", k, tostring(doc[k]))
    end
  end
  if doc.avg_acc ~= nil and not is_acc(doc.avg_acc) then
    return nil, string.format("field 'avg_acc' is %s, not an accuracy in [0, 1]", tostring(doc.avg_acc))
  end
  if doc.tasks ~= nil and doc.tasks ~= T then
    return nil, string.format("field 'tasks' is %s but acc is %dx%d", tostring(doc.tasks), T, T)
  end
  for _, k in ipairs({ "baseline_acc", "reference_acc", "avg_acc_per_task" }) do
    local v = doc[k]
    if v ~= nil then
      if type(v) ~= "table" or #v ~= T then
        return nil, string.format("field '%s' must be an array of %d numbers", k, T)
      end
      for j = 1, T do
        if not is_acc(v[j]) then
          return nil, string.format("%s[%d] must be an accuracy in [0, 1], got %s", k, j, tostring(v[j]))
        end
      end
    end
  end
  if doc.perplexity ~= nil then
    local ok, err = metrics.check_perplexity(doc.perplexity, T)
    if not ok then return nil, "field 'perplexity'" .. err end
  end
  if doc.baseline_perplexity ~= nil then
    local ok, err = metrics.check_perplexities(doc.baseline_perplexity, T)
    if not ok then return nil, "field 'baseline_perplexity'" .. err end
  end
  if doc.perplexity_ratio ~= nil then
    local v = doc.perplexity_ratio
    if type(v) ~= "table" or #v ~= T - 1 then
      return nil, "field 'perplexity_ratio' must be an array of " .. (T - 1) .. " numbers"
    end
    for j = 1, T - 1 do
      if not is_num(v[j]) or v[j] <= 0 then
        return nil, string.format("perplexity_ratio[%d] must be a positive finite number", j)
      end
    end
  end
  if doc.scenario ~= nil and type(doc.scenario.name) ~= "string" then
    return nil, "field 'scenario.name' must be a string"
  end
  if doc.strategies ~= nil then
    for i, s in ipairs(doc.strategies) do
      if type(s) ~= "table" or type(s.name) ~= "string" then
        return nil, string.format("strategies[%d] must be an object with a string 'name'", i)
      end
      if s.options ~= nil and type(s.options) ~= "table" then
        return nil, string.format("strategies[%d].options must be a JSON object, not a %s", i, type(s.options))
      end
    end
  end
  return true
end

-- printing ---------------------------------------------------------------

local function pct(v) return v == nil and "n/a" or string.format("%.1f%%", 100 * v) end
local function pp(v) return v == nil and "n/a" or string.format("%+.1f", 100 * v) end
local function pts(v) return v == nil and "n/a" or string.format("%.1f", 100 * v) end
local function ratio(v) return v == nil and "n/a" or string.format("%.2f", v) end
-- Seconds with two decimals below 10 s, so short runs do not all read 0.0.
local function seconds(v)
  if v == nil then return "n/a" end
  return string.format(math.abs(v) < 10 and "%.2f" or "%.1f", v)
end
results.seconds = seconds
local function secs(v) return v == nil and "n/a" or seconds(v) .. "s" end

local function thousands(n)
  if n == nil then return "n/a" end
  if type(n) ~= "number" or n ~= n or math.abs(n) >= 2 ^ 53 then
    if type(n) == "number" then return tostring(n) end
    error("results.thousands: expected a number, got " .. type(n), 2)
  end
  local s = string.format("%d", math.floor(n + 0.5))
  local out = s:reverse():gsub("(%d%d%d)", "%1,"):reverse()
  return (out:gsub("^(%-?),", "%1"))
end
results.thousands = thousands

local function strategy_names(doc)
  local names = {}
  for _, s in ipairs(doc.strategies or {}) do names[#names + 1] = s.name end
  return #names > 0 and table.concat(names, "+") or "-"
end

--- A run's document as a readable fixed-width table (a new string).
function results.format(doc)
  local ok, err = results.validate(doc)
  if not ok then error("results.format: " .. err, 2) end
  local R = doc.acc
  local T = #R
  local avg = doc.avg_acc_per_task or metrics.avg_acc_per_task(R)
  local lines = {}
  local sc = doc.scenario
  local head = "run " .. tostring(doc.name or "?")
  local bits = {}
  if sc then bits[#bits + 1] = sc.name .. (sc.kind and (", " .. sc.kind) or "") end
  bits[#bits + 1] = T .. (T == 1 and " task" or " tasks")
  if doc.seed then bits[#bits + 1] = "seed " .. tostring(doc.seed) end
  lines[#lines + 1] = head .. " (" .. table.concat(bits, ", ") .. ")  strategies: " .. strategy_names(doc)
  local hdr = { string.format("%-10s", "after") }
  for j = 1, T do hdr[#hdr + 1] = string.format("%7s", "T" .. j) end
  hdr[#hdr + 1] = string.format("  %7s", "avg")
  lines[#lines + 1] = table.concat(hdr)
  for i = 1, T do
    local row = { string.format("%-10s", "task " .. i) }
    for j = 1, T do row[#row + 1] = string.format("%7.1f", 100 * R[i][j]) end
    row[#row + 1] = string.format("  %7.1f", 100 * avg[i])
    lines[#lines + 1] = table.concat(row)
  end
  if doc.baseline_acc then
    local row = { string.format("%-10s", "untrained") }
    for j = 1, T do row[#row + 1] = string.format("%7.1f", 100 * doc.baseline_acc[j]) end
    lines[#lines + 1] = table.concat(row)
  end
  local acc = doc.avg_acc or metrics.acc(R)
  lines[#lines + 1] = string.format("ACC %s  BWT %s  FWT %s  forgetting %s  RKR %s  NAR %s  CER %s",
    pct(acc), pp(doc.bwt), pp(doc.fwt), pts(doc.forgetting), ratio(doc.rkr), ratio(doc.nar), pp(doc.cer))
  lines[#lines + 1] = string.format("train %s  eval %s  params %s  peak RSS %s",
    secs(doc.train_seconds), secs(doc.eval_seconds), thousands(doc.trainable_params),
    doc.peak_rss_mb and string.format("%.0f MB", doc.peak_rss_mb) or "n/a")
  for _, l in ipairs(results.perplexity_lines(doc)) do lines[#lines + 1] = l end
  for _, l in ipairs(results.isolation_lines(doc)) do lines[#lines + 1] = l end
  return table.concat(lines, "\n") .. "\n"
end

--- The perplexity matrix of a language-modelling run (doc.perplexity) as
-- lines: one row per task trained, one column per task evaluated, then the
-- untrained model's row and each task's rise by the end (P[T][j] / P[j][j]).
-- {} when the document has none.
function results.perplexity_lines(doc)
  local P = type(doc) == "table" and doc.perplexity
  if type(P) ~= "table" or #P == 0 then return {} end
  local T = #P
  local names = {}
  local tasks = type(doc.scenario) == "table" and type(doc.scenario.details) == "table" and doc.scenario.details.tasks
  for j = 1, T do
    local tj = type(tasks) == "table" and tasks[j]
    names[j] = type(tj) == "table" and type(tj.name) == "string" and tj.name or ("T" .. j)
  end
  local lines = { "held-out perplexity (exp of the mean cross-entropy per token; lower is better)" }
  local hdr = { string.format("%-10s", "after") }
  for j = 1, T do hdr[#hdr + 1] = string.format("%9s", names[j]:sub(1, 9)) end
  lines[#lines + 1] = table.concat(hdr)
  for i = 1, T do
    local row = { string.format("%-10s", "task " .. i) }
    for j = 1, T do row[#row + 1] = string.format("%9.2f", P[i][j]) end
    lines[#lines + 1] = table.concat(row)
  end
  if type(doc.baseline_perplexity) == "table" and #doc.baseline_perplexity == T then
    local row = { string.format("%-10s", "untrained") }
    for j = 1, T do row[#row + 1] = string.format("%9.2f", doc.baseline_perplexity[j]) end
    lines[#lines + 1] = table.concat(row)
  end
  if type(doc.perplexity_ratio) == "table" and #doc.perplexity_ratio > 0 then
    local row = { string.format("%-10s", "rise") }
    for j = 1, #doc.perplexity_ratio do row[#row + 1] = string.format("%8.2fx", doc.perplexity_ratio[j]) end
    lines[#lines + 1] = table.concat(row) .. "   (after the last task / right after learning it)"
  end
  return lines
end

--- A run with parameter isolation beside a full fine-tuning run on the same
-- scenario (full may be nil), as lines: whether every task's accuracy after
-- the last task equals the one right after learning it, then per task the
-- accuracy right after learning it, full fine-tuning's, their ratio, the
-- parameters trained and their share of base_params (the model before any
-- set was added), and the bytes stored beside a full copy; last, the worst
-- ratio over the tasks after the first. Returns the lines and that worst ratio.
function results.isolation_vs(doc, full, base_params)
  local ok, err = results.validate(doc)
  if not ok then error("results.isolation_vs: " .. tostring(err), 2) end
  if full ~= nil then
    local okf, errf = results.validate(full)
    if not okf then error("results.isolation_vs: the full fine-tuning run: " .. tostring(errf), 2) end
  end
  local acc, iso = doc.acc, type(doc.extra) == "table" and doc.extra.isolation or nil
  if type(iso) ~= "table" or type(iso.per_task) ~= "table" then
    error("results.isolation_vs: the document has no extra.isolation", 2)
  end
  if type(base_params) ~= "number" or base_params <= 0 then
    error("results.isolation_vs: base_params must be a positive number", 2)
  end
  local exact = true
  for j = 1, #acc do exact = exact and acc[#acc][j] == acc[j][j] end
  local lines = {
    string.format("%s: every task's accuracy after task %d equals the one right after learning it: %s",
      tostring(doc.name), #acc, exact and "yes" or "NO"),
    "  task  its acc    full acc   share of full   trained params   of the base model   bytes stored / full copy",
  }
  local worst = nil
  for j = 1, #acc do
    local f = full and full.acc[j] and full.acc[j][j]
    local share = f and f > 0 and acc[j][j] / f or nil
    if share and j > 1 then worst = math.min(worst or math.huge, share) end
    local it = type(iso.per_task[j]) == "table" and iso.per_task[j] or {}
    if type(it.trainable) ~= "number" then it = {} end
    lines[#lines + 1] = string.format("  %4d  %7.2f%%  %8s  %13s   %14s   %16s   %s / %s", j, 100 * acc[j][j],
      f and string.format("%.2f%%", 100 * f) or "n/a", share and string.format("%.1f%%", 100 * share) or "n/a",
      thousands(it.trainable), it.trainable and string.format("%.2f%%", 100 * it.trainable / base_params) or "n/a",
      thousands(it.bytes), thousands(4 * base_params))
  end
  if worst then
    lines[#lines + 1] = string.format("  tasks 2-%d: the worst task reaches %.1f%% of full fine-tuning's accuracy",
      #acc, 100 * worst)
  end
  return lines, worst
end

--- The per-task figures of parameter isolation (extra.isolation, written by
-- the lora, adapters, heads, freeze and progressive strategies) as lines:
-- per task the parameters it trained and their share of the model then,
-- the bytes stored for it and those of a full copy of the model. {} when
-- the document has none.
function results.isolation_lines(doc)
  local iso = type(doc) == "table" and type(doc.extra) == "table" and doc.extra.isolation
  if type(iso) ~= "table" or type(iso.per_task) ~= "table" or #iso.per_task == 0 then return {} end
  local lines = { "parameter isolation: per task, what it trained and what is stored for it" }
  for t, p in ipairs(iso.per_task) do
    if type(p) == "table" and type(p.trainable) == "number" and type(p.total) == "number" then
      lines[#lines + 1] = string.format("  task %-3d trained %s of %s params (%.2f%%)  stored %s bytes, " ..
        "a full copy %s bytes%s", t, thousands(p.trainable), thousands(p.total), 100 * (p.share or 0),
        thousands(p.bytes), thousands(p.full_bytes),
        (type(p.groups) == "table" and #p.groups > 0) and ("  [" .. table.concat(p.groups, ", ") .. "]") or "")
    end
  end
  return lines
end

--- Prints results.format(doc) to out (default io.stdout).
function results.print(doc, out)
  local ok, s = pcall(results.format, doc)
  if not ok then error(s, 2) end
  ;(out or io.stdout):write(s)
end

--- The runs named in `names` against the run named `base`, one line each:
-- "<name> vs <base>: +N points of ACC, forgetting a -> b points" (runs
-- missing from docs are left out; no lines without the base). A new list.
function results.versus_lines(docs, base, names)
  if type(docs) ~= "table" or type(base) ~= "string" or type(names) ~= "table" then
    error("results.versus_lines: expected (documents, base run name, {run names})", 2)
  end
  local by, width, lines = {}, 0, {}
  for _, d in ipairs(docs) do by[d.name] = d end
  local b = by[base]
  if not b then return lines end
  for _, n in ipairs(names) do
    if by[n] then width = math.max(width, #n) end
  end
  for _, n in ipairs(names) do
    local d = by[n]
    if d then
      lines[#lines + 1] = string.format("%-" .. width .. "s vs %s: %+5.1f points of ACC, forgetting %.1f -> %.1f " ..
        "points", n, base, 100 * (d.avg_acc - b.avg_acc), 100 * b.forgetting, 100 * d.forgetting)
    end
  end
  return lines
end

--- A side-by-side table of several runs, one row per run (a new string).
function results.compare_table(docs)
  if type(docs) ~= "table" then error("results.compare_table: expected an array of documents", 2) end
  local rows = { { "run", "ACC", "BWT", "FWT", "forget", "RKR", "NAR", "train s", "params" } }
  -- language modelling: the mean perplexity after the last task and the mean rise of the earlier tasks'
  local lm = false
  for _, d in ipairs(docs) do lm = lm or (type(d) == "table" and type(d.perplexity) == "table") end
  if lm then
    table.insert(rows[1], 8, "ppl")
    table.insert(rows[1], 9, "ppl rise")
  end
  for i, d in ipairs(docs) do
    local ok, err = results.validate(d)
    if not ok then error(string.format("results.compare_table: run %d: %s", i, err), 2) end
    rows[#rows + 1] = {
      tostring(d.name or ("run " .. i)), pct(d.avg_acc or metrics.acc(d.acc)), pp(d.bwt), pp(d.fwt),
      pts(d.forgetting), ratio(d.rkr), ratio(d.nar),
      seconds(d.train_seconds), thousands(d.trainable_params),
    }
    if lm then
      local P, r = d.perplexity, d.perplexity_ratio
      local mean, rise = nil, nil
      if type(P) == "table" then
        mean = 0
        for _, v in ipairs(P[#P]) do mean = mean + v / #P end
      end
      if type(r) == "table" and #r > 0 then
        rise = 0
        for _, v in ipairs(r) do rise = rise + v / #r end
      end
      table.insert(rows[#rows], 8, mean and string.format("%.2f", mean) or "n/a")
      table.insert(rows[#rows], 9, rise and string.format("%.2fx", rise) or "n/a")
    end
  end
  return results.columns(rows, { true })
end

--- Rows of text cells as aligned columns two spaces apart (a new string, one
-- line per row): column c left-aligned when left[c], right-aligned otherwise;
-- widths count UTF-8 characters.
function results.columns(rows, left)
  if type(rows) ~= "table" then error("results.columns: expected an array of rows, got " .. type(rows), 2) end
  left = left == nil and {} or left
  if type(left) ~= "table" then error("results.columns: left must be a table, got " .. type(left), 2) end
  for i, r in ipairs(rows) do
    if type(r) ~= "table" then error(string.format("results.columns: row %d is a %s, not an array", i, type(r)), 2) end
    for c, v in ipairs(r) do
      if type(v) ~= "string" then
        error(string.format("results.columns: row %d, column %d is a %s, not a string", i, c, type(v)), 2)
      end
    end
  end
  local widths = {}
  for _, r in ipairs(rows) do
    for c, v in ipairs(r) do widths[c] = math.max(widths[c] or 0, utf8.len(v) or #v) end
  end
  local lines = {}
  for _, r in ipairs(rows) do
    local cells = {}
    for c, v in ipairs(r) do
      local pad = (" "):rep(widths[c] - (utf8.len(v) or #v))
      cells[c] = left[c] and (v .. pad) or (pad .. v)
    end
    lines[#lines + 1] = table.concat(cells, "  ")
  end
  return table.concat(lines, "\n") .. "\n"
end

-- files ------------------------------------------------------------------

local function is_doc_list(t)
  return type(t) == "table" and t.acc == nil and t.runs == nil and #t > 0
end

--- Writes one document, or an array of documents as {"runs": [...]}, to path
-- atomically (temporary file, then rename). Validates first; raises on failure.
function results.save(path, doc_or_docs)
  local docs = is_doc_list(doc_or_docs) and doc_or_docs or { doc_or_docs }
  for i, d in ipairs(docs) do
    local ok, err = results.validate(d)
    if not ok then
      error(string.format("results.save: %s%s", #docs > 1 and ("run " .. i .. ": ") or "", err), 2)
    end
  end
  local value = is_doc_list(doc_or_docs) and { runs = json.array(docs) } or doc_or_docs
  local ok, text = pcall(json.encode, value, { pretty = true })
  if not ok then error("results.save: " .. tostring(text), 2) end
  local wok, werr = json.write_atomic(path, text .. "\n")
  if not wok then error("results.save: " .. werr, 2) end
  return true
end

-- JSON null as engram writes it: an object's key with no value (dropped), or
-- NaN in an array (NaN encodes as null): arrays keep their length, so what
-- was read can be saved again.
local function unnull(v)
  if type(v) ~= "table" or v == json.null then return v end
  local n = #v
  for k, x in pairs(v) do
    if x == json.null then
      if math.type(k) == "integer" and k >= 1 and k <= n then v[k] = 0 / 0 else v[k] = nil end
    else
      v[k] = unnull(x)
    end
  end
  return v
end

--- Reads a results file holding one document or {"runs": [...]}; returns an
-- array of documents (nulls dropped) or nil and a message naming the file and
-- the problem.
function results.read(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, tostring(err) end
  local text = f:read("a")
  f:close()
  local v, derr = json.try_decode(text)
  if v == nil then return nil, path .. ": invalid JSON: " .. tostring(derr) end
  v = unnull(v)
  if type(v) ~= "table" then
    return nil, string.format("%s: not a results document (the JSON text is a %s)", path, type(v))
  end
  local docs
  if v.runs ~= nil then
    if type(v.runs) ~= "table" or #v.runs == 0 then
      return nil, path .. ": 'runs' must be a non-empty array of runs"
    end
    docs = v.runs
  else
    docs = { v }
  end
  for i, d in ipairs(docs) do
    local ok, verr = results.validate(d)
    if not ok then
      return nil, string.format("%s: %s%s", path, v.runs and ("runs[" .. i .. "]: ") or "", verr)
    end
  end
  return docs
end

--- Like results.read but raises "results.load: message" on failure.
function results.load(path)
  local docs, err = results.read(path)
  if not docs then error("results.load: " .. err, 2) end
  return docs
end

return results
