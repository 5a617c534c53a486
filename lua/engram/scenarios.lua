--- engram.scenarios: continual-learning task sequences from labelled datasets.
--
--   local train, test = engram.data.fashion_mnist()
--   local s = engram.scenarios.split(train, test, {tasks = 5, scenario = "class"})
--   local p = engram.scenarios.permuted(train, test, {tasks = 5})       -- domain-IL
--   local r = engram.scenarios.rotated(train, test, {angles = {0, 45, 90}})
--   for t, task in s:each() do print(t, task.name, #task.train, #task.test) end
--
-- A scenario is a list of tasks plus what the learner needs to train and test
-- them: s.kind ("class", "task" or "domain", van de Ven & Tolias 2019),
-- s.num_classes (the width the model's output must have), s.mixable (samples
-- of different tasks may share one batch, so joint/cumulative may concatenate
-- them), s:describe() (a plain table for results documents).
--
-- A task is a table:
--   index, name, classes   position, "task 2 {2,3}", the dataset class ids it holds
--   train, test, val       datasets (val only with the validation option)
--   targets                the class ids the model is trained/tested on (after label_map)
--   active                 task-IL only: the output units the loss and the
--                          accuracy are restricted to (masked logits)
--   label_map              nil, or a tensor [C]: dataset class c becomes
--                          label_map[c+1] (domain-IL split: the position in
--                          the task; class-IL permuted: c + C*(t-1))
--   shuffle                false for ordered (non-IID) streams
--
-- Options common to split, permuted and rotated (defaults in brackets):
--   tasks [5]           number of tasks
--   scenario            "class" | "task" | "domain" [split: class; permuted/rotated: domain]
--   seed [1]            seeds every random choice (class order, permutations,
--                       subsamples, validation split)
--   samples, test_samples  at most this many training / test samples per task
--                       (a seeded random subset; default all)
--   validation [0]      share of each task's training part held out as task.val
--   order ["iid"]       "class": each task's stream is sorted by class and not
--                       shuffled (non-IID batches)
--   long_tail [nil]     Zipf exponent: class c keeps (c+1)^-e of its training samples
--   fractions [nil]     {[c] = f}: keep about f of class c's training samples (imbalance)
--   blurry [0]          share of each task's training samples drawn from its
--                       neighbouring tasks (blurry boundaries)
--   drift [nil]         rotated only: each task's stream is `drift` segments
--                       whose angle moves linearly towards the next task's
--                       (gradual concept drift; the stream is not shuffled)
-- Split also takes classes_per_task [C/tasks], classes (an explicit list of
-- lists of class ids) and shuffle_classes [false] (seeded class order).
-- Permuted takes identity_first [true] (task 1 sees the original images).
-- Rotated takes angles [evenly spaced from 0 to 180 degrees].
local scenarios = {}

local COMMON = {
  tasks = true, scenario = true, seed = true, samples = true, test_samples = true, validation = true,
  order = true, long_tail = true, fractions = true, blurry = true, drift = true,
}

local function check_opts(who, opts, extra, level)
  local o = require("engram.util").check_options(who, opts, { COMMON, extra or {} }, level + 1)
  return o
end

local function posint(who, name, v, level)
  if math.type(v) ~= "integer" or v < 1 then
    error(string.format("%s: %s must be a positive integer, got %s", who, name, tostring(v)), level + 1)
  end
  return v
end

local function share(who, name, v, level)
  if v == nil then return 0 end
  if type(v) ~= "number" or v < 0 or v >= 1 then
    error(string.format("%s: %s must be a number in [0, 1), got %s", who, name, tostring(v)), level + 1)
  end
  return v
end

-- Under `engram search` (ENGRAM_EVAL_ON=val) a scenario whose recipe holds out
-- no validation share gets one (ENGRAM_VALIDATION, default 0.1): the learner
-- then scores on it, never on the test parts.
local function search_validation(v)
  if (v ~= nil and v ~= 0) or os.getenv("ENGRAM_EVAL_ON") ~= "val" then return v end
  return tonumber(os.getenv("ENGRAM_VALIDATION")) or 0.1
end

local function is_dataset(v) return require("engram.data").is_dataset(v) end

local function list_str(t)
  local s = {}
  for i, v in ipairs(t) do s[i] = tostring(v) end
  return "{" .. table.concat(s, ",") .. "}"
end

-- A seeded random subset of at most n samples (the whole set when smaller).
local function at_most(ds, n, seed)
  if not n or #ds <= n then return ds end
  return (ds:split(n / #ds, seed))
end

local Scenario = {}
Scenario.__index = Scenario
Scenario.__len = function(s) return #s.tasks end
function Scenario:__tostring()
  return string.format("%s scenario (%s-IL): %d tasks, %d output classes", self.name, self.kind, #self.tasks,
    self.num_classes)
end

--- Iterates (t, task).
function Scenario:each() return ipairs(self.tasks) end

--- Task t (1-based).
function Scenario:task(t)
  local task = self.tasks[t]
  if not task then error(string.format("task: no task %s (the scenario has %d)", tostring(t), #self.tasks), 2) end
  return task
end

--- A plain description for results documents.
function Scenario:describe()
  local tasks = {}
  for i, t in ipairs(self.tasks) do
    tasks[i] = { name = t.name, classes = t.classes, train = #t.train, test = #t.test, val = t.val and #t.val or nil,
      angle = t.angle, source = self.sources and self.sources[i] or nil }
  end
  local opts = {}
  local json = require("engram.json")
  for k, v in pairs(self.options) do
    -- keep what a results file can hold (e.g. not {[0] = f} fraction tables)
    if type(v) ~= "userdata" and type(v) ~= "function" and pcall(json.encode, v) then opts[k] = v end
  end
  return { name = self.name, kind = self.kind, num_classes = self.num_classes, tasks = tasks, options = opts,
    dataset = self.dataset }
end

-- Applies the stream options (imbalance, order, blurry, validation, sizes) and
-- checks that no task is empty. raw[t] = {train=, test=, ...}.
local function finish(who, name, kind, raw, opts, num_classes, mixable, level)
  local seed = opts.seed or 1
  local v = share(who, "validation", search_validation(opts.validation), level + 1)
  local blurry = share(who, "blurry", opts.blurry, level + 1)
  if opts.order ~= nil and opts.order ~= "iid" and opts.order ~= "class" then
    error(who .. ": order must be 'iid' or 'class', got " .. tostring(opts.order), level + 1)
  end
  if opts.samples ~= nil then posint(who, "samples", opts.samples, level + 1) end
  if opts.test_samples ~= nil then posint(who, "test_samples", opts.test_samples, level + 1) end
  for t, task in ipairs(raw) do
    task.train = at_most(task.train, opts.samples, seed * 7919)
    task.test = at_most(task.test, opts.test_samples, seed * 7919 + 100)
    if #task.train == 0 then
      error(string.format("%s: task %d (%s) has no training samples", who, t, list_str(task.classes)), level + 1)
    end
    if #task.test == 0 then
      error(string.format("%s: task %d (%s) has no test samples", who, t, list_str(task.classes)), level + 1)
    end
  end
  if blurry > 0 then
    if not mixable then
      error(who .. ": blurry boundaries need tasks whose samples can share a batch (not with per-task labels)",
        level + 1)
    end
    local own = {}
    for t, task in ipairs(raw) do own[t] = task.train end
    for t, task in ipairs(raw) do
      local nb = {}
      if t > 1 then nb[#nb + 1] = own[t - 1] end
      if t < #raw then nb[#nb + 1] = own[t + 1] end
      if #nb > 0 then
        local n = #own[t]
        local keep = own[t]:split(1 - blurry, seed * 31 + t)
        local ds = keep
        for k, other in ipairs(nb) do
          local want = math.min(#other, math.floor(blurry * n / #nb + 0.5))
          if want > 0 then ds = ds:concat((other:split(want / #other, seed * 37 + t * 3 + k))) end
        end
        task.train = ds
      end
    end
  end
  local tasks = {}
  for t, task in ipairs(raw) do
    local train = task.train
    if opts.order == "class" then
      local parts
      for _, c in ipairs(train:classes()) do
        local sub = train:subset { labels = { c } }
        parts = parts and parts:concat(sub) or sub
      end
      train = parts
      task.shuffle = false
    end
    if v > 0 then
      local tr, val = train:split(1 - v, seed * 101 + t)
      if #tr == 0 or #val == 0 then
        error(string.format("%s: task %d has too few samples (%d) for a validation share of %g", who, t, #train, v),
          level + 1)
      end
      train, task.val = tr, val
    end
    task.train = train
    task.index = t
    task.shuffle = task.shuffle ~= false
    tasks[t] = task
  end
  local s = setmetatable({ name = name, kind = kind, tasks = tasks, num_classes = num_classes, mixable = mixable,
    options = opts }, Scenario)
  return s
end

local function check_kind(who, kind, level)
  if kind ~= "class" and kind ~= "task" and kind ~= "domain" then
    error(who .. ": scenario must be 'class', 'task' or 'domain', got " .. tostring(kind), level + 1)
  end
  return kind
end

local function check_sets(who, train, test, level)
  if not is_dataset(train) then error(who .. ": expected a training dataset as argument 1", level + 1) end
  if not is_dataset(test) then error(who .. ": expected a test dataset as argument 2", level + 1) end
end

-- The long-tail / fraction imbalance, applied before the tasks are formed.
local function imbalance(who, train, opts, level)
  if opts.long_tail ~= nil then
    if type(opts.long_tail) ~= "number" or opts.long_tail < 0 then
      error(who .. ": long_tail must be a Zipf exponent >= 0, got " .. tostring(opts.long_tail), level + 1)
    end
    train = train:long_tail { exponent = opts.long_tail, seed = (opts.seed or 1) * 13 }
  end
  if opts.fractions ~= nil then
    if type(opts.fractions) ~= "table" then error(who .. ": fractions must be a table {[class] = f}", level + 1) end
    train = train:subset { fractions = opts.fractions, seed = (opts.seed or 1) * 17 }
  end
  return train
end

local function label_map_tensor(C, f)
  local engram_core = require("engram.core")
  local m = engram_core.zeros(C)
  for c = 0, C - 1 do m:set(c + 1, f(c)) end
  return m
end

--- Split: the dataset's classes divided into tasks ({0,1}, {2,3}, ... by default).
function scenarios.split(train, test, opts)
  local who = "split"
  opts = check_opts(who, opts, { classes_per_task = true, classes = true, shuffle_classes = true }, 2)
  check_sets(who, train, test, 2)
  local kind = check_kind(who, opts.scenario or "class", 2)
  if opts.drift ~= nil then error("split: drift applies to rotated scenarios only (use blurry for split)", 2) end
  local seed = opts.seed or 1
  local present, C = train:classes()
  local groups = {}
  if opts.classes ~= nil then
    if type(opts.classes) ~= "table" or #opts.classes == 0 then
      error("split: classes must be a list of lists of class ids, e.g. {{0,1},{2,3}}", 2)
    end
    local used = {}
    for t, g in ipairs(opts.classes) do
      if type(g) ~= "table" or #g == 0 then
        error(string.format("split: classes[%d] must be a non-empty list", t), 2)
      end
      for _, c in ipairs(g) do
        if math.type(c) ~= "integer" or c < 0 or c >= C then
          error(string.format("split: class %s in task %d is not a class id in 0..%d", tostring(c), t, C - 1), 2)
        end
        if used[c] then error(string.format("split: class %d appears in more than one task", c), 2) end
        used[c] = true
      end
      groups[t] = g
    end
    if opts.tasks ~= nil and opts.tasks ~= #groups then
      error(string.format("split: tasks = %s but %d class groups were given", tostring(opts.tasks), #groups), 2)
    end
  else
    local ntasks = posint(who, "tasks", opts.tasks or 5, 2)
    local per = opts.classes_per_task
    local order = {}
    for i, c in ipairs(present) do order[i] = c end
    if opts.shuffle_classes then
      local engram_core = require("engram.core")
      local perm = engram_core.generator(seed):permutation(#order)
      local shuffled = {}
      for i = 1, #order do shuffled[i] = order[math.tointeger(perm:get(i))] end
      order = shuffled
    end
    if per == nil then
      if #order % ntasks ~= 0 then
        error(string.format("split: %d classes do not divide into %d tasks (give classes_per_task or classes)",
          #order, ntasks), 2)
      end
      per = #order // ntasks
    end
    posint(who, "classes_per_task", per, 2)
    if per * ntasks > #order then
      error(string.format("split: %d tasks of %d classes need %d classes, the dataset has %d", ntasks, per,
        per * ntasks, #order), 2)
    end
    for t = 1, ntasks do
      local g = {}
      for k = 1, per do g[k] = order[(t - 1) * per + k] end
      groups[t] = g
    end
  end
  local mixable = kind ~= "task"
  local label_map, num_classes = nil, C
  if kind == "domain" then
    local per = #groups[1]
    for t, g in ipairs(groups) do
      if #g ~= per then
        error(string.format("split: domain-IL needs the same number of classes per task (task %d has %d, task 1 %d)",
          t, #g, per), 2)
      end
    end
    local pos = {}
    for _, g in ipairs(groups) do
      for k, c in ipairs(g) do pos[c] = k - 1 end
    end
    label_map = label_map_tensor(C, function(c) return pos[c] or 0 end)
    num_classes = per
  end
  train = imbalance(who, train, opts, 2)
  local raw = {}
  for t, g in ipairs(groups) do
    local sorted = {}
    for i, c in ipairs(g) do sorted[i] = c end
    table.sort(sorted)
    local targets = {}
    if kind == "domain" then
      for k = 1, #g do targets[k] = k - 1 end
    else
      targets = sorted
    end
    raw[t] = {
      name = "task " .. t .. " " .. list_str(sorted), classes = sorted, targets = targets,
      train = train:subset { labels = sorted }, test = test:subset { labels = sorted },
      active = kind == "task" and sorted or nil, label_map = label_map,
    }
  end
  local s = finish(who, "split", kind, raw, opts, num_classes, mixable, 2)
  s.groups = groups
  return s
end

-- Shared by permuted and rotated: the same label space in every task.
local function domain_tasks(who, train, test, opts, make, level)
  local kind = check_kind(who, opts.scenario or "domain", level + 1)
  local ntasks = posint(who, "tasks", opts.tasks or 5, level + 1)
  local present, C = train:classes()
  train = imbalance(who, train, opts, level + 1)
  local raw = {}
  for t = 1, ntasks do
    local tr, te, extra = make(t, train, test)
    local targets, map = {}, nil
    if kind == "class" then
      local off = C * (t - 1)
      map = label_map_tensor(C, function(c) return c + off end)
      for i, c in ipairs(present) do targets[i] = c + off end
    else
      for i, c in ipairs(present) do targets[i] = c end
    end
    raw[t] = { name = "task " .. t .. (extra and (" " .. extra) or ""), classes = present, targets = targets,
      train = tr, test = te, label_map = map }
  end
  local num = kind == "class" and C * ntasks or C
  return raw, kind, num, kind ~= "class"
end

--- Permuted: every task applies its own fixed pixel permutation (task-IL
-- needs a model with one head per task, see learner option heads).
function scenarios.permuted(train, test, opts)
  local who = "permuted"
  opts = check_opts(who, opts, { identity_first = true }, 2)
  check_sets(who, train, test, 2)
  if opts.drift ~= nil then error("permuted: drift applies to rotated scenarios only", 2) end
  local seed = opts.seed or 1
  local identity_first = opts.identity_first ~= false
  local raw, kind, num, mixable = domain_tasks(who, train, test, opts, function(t, tr, te)
    if t == 1 and identity_first then return tr, te, "(identity)" end
    local s = seed * 1000 + t
    return tr:permuted(s), te:permuted(s), "(permutation " .. s .. ")"
  end, 2)
  return finish(who, "permuted", kind, raw, opts, num, mixable, 2)
end

--- Rotated: every task rotates the images by its angle (degrees).
function scenarios.rotated(train, test, opts)
  local who = "rotated"
  opts = check_opts(who, opts, { angles = true }, 2)
  check_sets(who, train, test, 2)
  local angles = opts.angles
  if angles ~= nil then
    if type(angles) ~= "table" or #angles == 0 then error("rotated: angles must be a list of degrees", 2) end
    for i, a in ipairs(angles) do
      if type(a) ~= "number" then error(string.format("rotated: angles[%d] is not a number", i), 2) end
    end
    if opts.tasks ~= nil and opts.tasks ~= #angles then
      error(string.format("rotated: tasks = %s but %d angles were given", tostring(opts.tasks), #angles), 2)
    end
  else
    local n = opts.tasks or 5
    posint(who, "tasks", n, 2)
    angles = {}
    for t = 1, n do angles[t] = n == 1 and 0 or 180 * (t - 1) / (n - 1) end
  end
  local drift = opts.drift
  if drift ~= nil then posint(who, "drift", drift, 2) end
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  o.tasks = #angles
  local seed = opts.seed or 1
  -- Subsample before rotating: rotation materialises the images.
  local raw, kind, num, mixable = domain_tasks(who, train, test, o, function(t, tr, te)
    tr = at_most(tr, opts.samples, seed * 7919)
    te = at_most(te, opts.test_samples, seed * 7919 + 100)
    local a = angles[t]
    if drift and drift > 1 then
      local nexta = angles[t + 1] or a
      local order = require("engram.core").generator(seed * 53 + t):permutation(#tr)
      local shuffled = tr:subset { indices = order }
      local parts
      local n, start = #shuffled, 1
      for s = 1, drift do
        local stop = (n * s) // drift
        if stop >= start then
          local idx = {}
          for i = start, stop do idx[#idx + 1] = i end
          local seg = shuffled:subset { indices = idx }:rotated(a + (nexta - a) * (s - 1) / drift)
          parts = parts and parts:concat(seg) or seg
        end
        start = stop + 1
      end
      return parts, te:rotated(a), string.format("(%g deg, drifting to %g)", a, nexta)
    end
    return tr:rotated(a), te:rotated(a), string.format("(%g deg)", a)
  end, 2)
  if drift and drift > 1 then
    for _, task in ipairs(raw) do task.shuffle = false end
  end
  local s = finish(who, "rotated", kind, raw, opts, num, mixable, 2)
  for t, task in ipairs(s.tasks) do task.angle = angles[t] end
  return s
end

--- A scenario from explicit tasks: {{train=, test=, val=?, classes=?, name=?}, ...}.
-- opts: scenario ["class"] ("task" masks to each task's classes), num_classes
-- [the datasets' class count].
function scenarios.from_tasks(list, opts)
  local who = "from_tasks"
  if type(list) ~= "table" or #list == 0 then error("from_tasks: expected a non-empty list of tasks", 2) end
  opts = opts or {}
  for k in pairs(opts) do
    if k ~= "scenario" and k ~= "num_classes" then
      error("from_tasks: unknown option '" .. tostring(k) .. "' (known: num_classes, scenario)", 2)
    end
  end
  local kind = check_kind(who, opts.scenario or "class", 2)
  local raw, C = {}, opts.num_classes
  for t, spec in ipairs(list) do
    if type(spec) ~= "table" or not is_dataset(spec.train) or not is_dataset(spec.test) then
      error(string.format("from_tasks: task %d needs train and test datasets", t), 2)
    end
    local present, nc = spec.train:classes()
    C = C or nc
    local classes = spec.classes or present
    raw[t] = { name = spec.name or ("task " .. t .. " " .. list_str(classes)), classes = classes, targets = classes,
      train = spec.train, test = spec.test, val = spec.val, active = kind == "task" and classes or nil }
  end
  local s = finish(who, "custom", kind, raw, {}, C, kind ~= "task", 2)
  for t, spec in ipairs(list) do
    if spec.val then s.tasks[t].val = spec.val end
  end
  return s
end

local TEXT_KNOWN = {
  domains = true, ctx = true, stride = true, bytes = true, file_bytes = true, holdout = true, block = true,
  tokenizer = true, seed = true, samples = true, test_samples = true, separator = true, quiet = true,
}

--- Text domains: continual language modelling, one task per domain of text
-- read from this machine at run time (docs/text.md).
--   engram.scenarios.text_domains{domains = {"prose", "c", "lua", "shell"}, ctx = 128}
-- Options (defaults in brackets):
--   domains [{"prose","c","lua","shell"}]  names of engram.text.DOMAINS, or
--                       {name =, paths = {...}, glob =?, accept =?} tables
--   ctx [128]           window length T; stride [ctx] between windows
--   bytes [262144]      bytes read per domain; file_bytes [32768] per file
--   holdout [0.1]       share of each block of the token stream held out as
--                       the task's test part; block [64 * (ctx + 1)] tokens
--   tokenizer ["byte"]  "byte", "char" (vocabulary from every domain's text,
--                       read as UTF-8) or a tokenizer
--   samples, test_samples  at most this many training / held-out windows per
--                       task (a seeded random subset; default all)
--   seed [1]            which files a byte cap keeps, and the subsets
--   separator ["\n"]    between files; quiet [false]: no summary lines
-- Tasks are domains (domain-IL: one output space, the vocabulary);
-- task.train / task.test are window datasets (x, y [B, ctx]). The learner
-- fills the accuracy matrix with next-token accuracy and adds a perplexity
-- matrix. s.tokenizer is the tokenizer, s.sources what was read per domain.
function scenarios.text_domains(opts)
  local who = "text_domains"
  opts = require("engram.util").check_options(who, opts, TEXT_KNOWN, 2)
  local text = require("engram.text")
  local domains = opts.domains or { "prose", "c", "lua", "shell" }
  if type(domains) ~= "table" or #domains == 0 then error(who .. ": domains must be a non-empty list", 2) end
  local ctx = opts.ctx or 128
  if math.type(ctx) ~= "integer" or ctx < 1 then
    error(who .. ": ctx must be a positive integer, got " .. tostring(ctx), 2)
  end
  local seed = opts.seed or 1
  if opts.samples ~= nil then posint(who, "samples", opts.samples, 2) end
  if opts.test_samples ~= nil then posint(who, "test_samples", opts.test_samples, 2) end
  local specs, texts, infos = {}, {}, {}
  for i, d in ipairs(domains) do
    local spec
    if type(d) == "string" then
      local def = text.DOMAINS[d]
      if not def then
        local names = {}
        for k in pairs(text.DOMAINS) do names[#names + 1] = k end
        table.sort(names)
        error(string.format("%s: unknown domain '%s' (built in: %s; or give {name =, paths = {...}})", who, d,
          table.concat(names, ", ")), 2)
      end
      spec = { name = d, paths = def.paths, glob = def.glob, accept = def.accept }
    elseif type(d) == "table" then
      if type(d.name) ~= "string" or d.paths == nil then
        error(string.format("%s: domains[%d] must be a name or {name = string, paths = {...}}", who, i), 2)
      end
      for k in pairs(d) do
        if k ~= "name" and k ~= "paths" and k ~= "glob" and k ~= "accept" then
          error(string.format("%s: domains[%d]: unknown key '%s' (known: accept, glob, name, paths)", who, i,
            tostring(k)), 2)
        end
      end
      spec = d
    else
      error(string.format("%s: domains[%d] must be a name or a table, got %s", who, i, type(d)), 2)
    end
    for j = 1, i - 1 do
      if specs[j].name == spec.name then error(string.format("%s: domain '%s' appears twice", who, spec.name), 2) end
    end
    specs[i] = spec
    local ok, str, info = pcall(text.read, { who = who .. ": domain '" .. spec.name .. "'", paths = spec.paths,
      glob = spec.glob, accept = spec.accept, bytes = opts.bytes or 262144, file_bytes = opts.file_bytes or 32768,
      separator = opts.separator, seed = seed * 131 + i })
    if not ok then error(str, 2) end
    texts[i], infos[i] = str, info
  end
  local tok = opts.tokenizer or "byte"
  if tok == "byte" then
    tok = text.byte()
  elseif tok == "char" then
    tok = text.char(table.concat(texts))
  elseif not text.is_tokenizer(tok) then
    error(who .. ": tokenizer must be 'byte', 'char' or a tokenizer, got " .. tostring(tok), 2)
  end
  -- every task predicts over the whole vocabulary (what LwF and the like read as its targets)
  local vocab_ids = {}
  for id = 1, tok:vocab() do vocab_ids[id] = id - 1 end
  local tasks, sources = {}, {}
  for i, spec in ipairs(specs) do
    local ok, train, held, w = pcall(text.windows, texts[i], { tokenizer = tok, ctx = ctx, stride = opts.stride,
      holdout = opts.holdout, block = opts.block })
    if not ok then
      error(who .. ": domain '" .. spec.name .. "': " .. tostring(train):gsub("^text%.windows: ", ""), 2)
    end
    texts[i] = nil
    if #train == 0 or #held == 0 then
      error(string.format("%s: domain '%s' gives %d training and %d held-out windows of %d tokens from %d bytes " ..
        "(read more bytes, or lower ctx or block)", who, spec.name, #train, #held, ctx, infos[i].bytes), 2)
    end
    train = at_most(train, opts.samples, seed * 7919 + i)
    held = at_most(held, opts.test_samples, seed * 7919 + 100 + i)
    local info = infos[i]
    sources[i] = { name = spec.name, paths = spec.paths, glob = spec.glob, files = info.files, bytes = info.bytes,
      tokens = w.tokens, train = #train, test = #held, truncated = info.truncated,
      skipped = info.skipped_binary + info.skipped_empty + info.skipped_unreadable }
    if not opts.quiet then
      local skipped = info.skipped_binary + info.skipped_empty + info.skipped_unreadable
      print(string.format("%s: %-6s %4d files, %8d bytes, %7d tokens -> %5d train / %4d held-out windows of %d" ..
        "%s%s", who, spec.name, info.files, info.bytes, w.tokens, #train, #held, ctx,
        info.truncated > 0 and string.format(", %d files cut at %d bytes", info.truncated, opts.file_bytes or 32768)
          or "",
        skipped > 0 and string.format(", skipped %d (%d binary, %d empty, %d unreadable)", skipped,
          info.skipped_binary, info.skipped_empty, info.skipped_unreadable) or ""))
    end
    tasks[i] = { index = i, name = spec.name, train = train, test = held, shuffle = true, domain = spec.name,
      targets = vocab_ids }
  end
  local o = {}
  for k, v in pairs(opts) do
    if k ~= "tokenizer" and k ~= "domains" then o[k] = v end
  end
  o.tokenizer = tok:kind()
  o.domains = {}
  for i, spec in ipairs(specs) do o.domains[i] = spec.name end
  local s = setmetatable({ name = "text_domains", kind = "domain", tasks = tasks, num_classes = tok:vocab(),
    mixable = true, options = o, language = true }, Scenario)
  s.tokenizer, s.sources, s.ctx = tok, sources, ctx
  return s
end

--- Builds a scenario by name: "split" | "permuted" | "rotated".
function scenarios.make(name, train, test, opts)
  local f = ({ split = scenarios.split, permuted = scenarios.permuted, rotated = scenarios.rotated })[name]
  if not f then error("scenarios: unknown scenario '" .. tostring(name) .. "' (split, permuted, rotated)", 2) end
  return f(train, test, opts)
end

--- True when v is a scenario.
function scenarios.is_scenario(v) return getmetatable(v) == Scenario end

return scenarios
