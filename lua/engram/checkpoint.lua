--- engram.checkpoint: a learner's whole state at a task boundary in one
-- safetensors file, and exact resume (docs/checkpoints.md).
--
--   local L = engram.learner(model, {checkpoint = "ckpt", resume = true})
--   L:use(engram.strategies.ewc{})
--   local doc = L:run(scenario)  -- saves ckpt/checkpoint.safetensors after
--                                -- every task; with resume = true a run that
--                                -- finds one there continues after its last task
--
-- Recipes get it from the common options (engram.options): --checkpoint DIR,
-- --resume DIR, --start-task N, --stop-task N; every run of the recipe keeps
-- its file in DIR/<run name>/.
--
-- The unit is the task: the file is written after each task's evaluation,
-- and a resumed run redoes the task that was interrupted, from the same state
-- and the same random numbers, so its results are bit-identical to a run
-- that was never stopped (same seed and BLAS threads). A task is never
-- saved half-way.
--
-- The file (engram.io: the safetensors layout, numpy and PyTorch read it):
--   model.<group>.<param>        every parameter of every group (heads, LoRA
--                                factors, adapters: the groups surgery added)
--   optimizer.<group>.<buf|m|v>  the optimiser's buffers
--   strategy.<i>.<name>          strategy i's s:state() (i_j: member j of a
--                                schedule or plan i)
--   probe.reference              the drift probe's activations after task 1
--   __metadata__  engram.checkpoint = "engram.checkpoint/1";
--                 engram.run = JSON: the position (tasks done, T, steps), the
--                 accuracy matrix so far and the untrained row (and the
--                 perplexity matrix and row of a language-modelling run), drift, the
--                 per-task records, timings, ctx.extra, the optimiser's
--                 scalars, the generators' states (the run's ctx.rng and the
--                 default generator), the strategies' state_meta(), and the
--                 fingerprint of the run (recipe options, learner options,
--                 scenario, strategies, model) a resume must match;
--                 engram.checksum = a 64-bit checksum of the tensors (in name
--                 order) and engram.run: a changed byte rejects the file.
--
-- THE STRATEGY PROTOCOL. A strategy with state implements
--   s:state()                    -> name -> tensor (what it keeps)
--   s:load_state(tensors, ctx, meta)  puts it back: called on resume after
--                                before_run, with ctx.t the tasks done, before
--                                the model's parameters are loaded (so that it
--                                can re-create the groups and modules it added:
--                                the model is then filled in)
--   s:rebuild_task(ctx, meta, t) optional: re-creates the modules and groups
--                                it added in task t (called for t = 1.. the
--                                tasks done, strategy by strategy, before any
--                                load_state; engram.strategies.isolation)
--   s:state_meta()               optional: a JSON value (numbers, strings) it
--                                keeps beside its tensors, given back as meta
-- A strategy that keeps nothing between tasks says so with stateless = true.
-- Any other strategy makes saving fail with an error naming it: a
-- checkpoint is never silently partial.
local core = require("engram.core")
local json = require("engram.json")

local M = {}

M.FILE = "checkpoint.safetensors"
M.FORMAT = "engram.checkpoint/1"

-- ------------------------------------------------------------- session

-- The recipe's checkpoint options (engram.options.parse sets them): every
-- learner created without a checkpoint option of its own follows them.
local session = nil

--- Sets (or with nil clears) the session: {dir =, resume = bool, start_task =,
-- stop_task =, recipe = name, options = {the recipe's options}}.
function M.configure(s)
  if s ~= nil and (type(s) ~= "table" or type(s.dir) ~= "string") then
    error("checkpoint.configure: expected {dir = path, ...} or nil", 2)
  end
  session = s
end

function M.session() return session end

-- A run's directory name: its name, safe as one path component.
local function subdir(name, eval_on)
  local s = tostring(name or "run"):gsub("[^%w%._%-]", "_")
  if s == "" or s == "." or s == ".." then s = "run" end
  return eval_on == "val" and (s .. ".val") or s
end

--- The learner options with the session's filled in (a new table), unless
-- they name a checkpoint themselves (checkpoint = false: none).
function M.learner_options(opts)
  if not session or type(opts) ~= "table" and opts ~= nil then return opts end
  opts = opts or {}
  if opts.checkpoint ~= nil then return opts end
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  o.checkpoint = session.dir .. "/" .. subdir(opts.name, opts.eval_on)
  o.resume, o.stop_task = session.resume or false, session.stop_task or false
  -- --start-task checks the runs that were saved; a run not begun yet starts at task 1
  o.start_task = session.resume and M.exists(o.checkpoint) and session.start_task or false
  return o
end

--- Checks the learner's checkpoint options (learner.new); raises naming the bad one.
function M.check_options(o, level)
  if o.checkpoint and (type(o.checkpoint) ~= "string" or o.checkpoint == "") then
    error("learner: checkpoint must be a directory path, got " .. tostring(o.checkpoint), level + 1)
  end
  for _, k in ipairs { "start_task", "stop_task" } do
    local v = o[k]
    if v and (math.type(v) ~= "integer" or v < 1) then
      error(string.format("learner: %s must be a positive integer, got %s", k, tostring(v)), level + 1)
    end
  end
  if (o.resume or o.start_task or o.stop_task) and not o.checkpoint then
    error("learner: resume, start_task and stop_task need checkpoint = directory", level + 1)
  end
  if o.start_task and o.start_task > 1 and not o.resume then
    error("learner: start_task " .. o.start_task .. " needs resume = true (the tasks before it come from the " ..
      "checkpoint)", level + 1)
  end
end

-- ------------------------------------------------------------- strategies

-- Calls f(key, s) for every strategy and, depth first, the members of
-- schedules and plans ("2_1": member 1 of strategy 2).
local function each_strategy(list, prefix, f)
  for i, s in ipairs(list) do
    local key = prefix .. i
    f(key, s)
    if type(s.members) == "table" then each_strategy(s.members, key .. "_", f) end
  end
end

local function label(key, s) return string.format("strategy %s ('%s')", key, tostring(s.name or "custom")) end

-- What kind of state s has: "protocol", "none" or nil (it cannot be saved).
local function kind_of(s)
  if type(s.state) == "function" and type(s.load_state) == "function" then return "protocol" end
  if s.stateless then return "none" end
  if type(s.members) == "table" and not s.is_plan and type(s.state) ~= "function" then return "none" end
  return nil
end

-- ------------------------------------------------------------- fingerprint

local LEARNER_KEYS = { "optimizer", "lr", "momentum", "reset_optimizer", "epochs", "iterations", "batch",
  "eval_batch", "seed", "heads", "validate", "patience", "eval_on", "reference", "drift_layer", "probe", "nonfinite" }
-- Recipe options that do not change what a run computes.
local FREE = { checkpoint = true, resume = true, start_task = true, stop_task = true, out = true, log = true,
  quiet = true, threads = true, only = true, help = true, args = true, only_set = true }

local function text(v)
  if type(v) == "function" then return "function" end
  local ok, s = pcall(json.encode, v)
  return ok and s or tostring(v)
end

-- What a resumed run must share with the run that saved: name -> text.
local function fingerprint(L)
  local o, ctx, fp = L.opts, L.ctx, {}
  fp["learner.name"] = text(o.name)
  for _, k in ipairs(LEARNER_KEYS) do fp["learner." .. k] = text(o[k]) end
  local sc = ctx.scenario
  local sd = type(sc.describe) == "function" and sc:describe() or { name = sc.name, kind = sc.kind }
  fp["scenario"] = text { name = sd.name, kind = sd.kind, tasks = ctx.T, num_classes = sd.num_classes,
    options = sd.options }
  each_strategy(L.strategies, "", function(key, s)
    local d = type(s.describe) == "function" and s:describe() or { name = s.name, options = s.options }
    if type(d) == "table" then
      local c = {}
      for k, v in pairs(d) do if k ~= "state_bytes" then c[k] = v end end
      d = c
    end
    fp["strategy." .. key] = text(d)
  end)
  for i, g in ipairs(L.model:groups()) do fp["model.group" .. i] = g.name .. ":" .. g.numel end
  if session and session.options then
    for k, v in pairs(session.options) do
      if not FREE[k] and type(v) ~= "function" then fp["recipe.--" .. k:gsub("_", "-")] = text(v) end
    end
    fp["recipe"] = text(session.recipe)
  end
  return fp
end

-- The first difference between two fingerprints, as a sentence; nil if none.
local function difference(saved, now)
  local keys, seen = {}, {}
  for k in pairs(saved) do keys[#keys + 1], seen[k] = k, true end
  for k in pairs(now) do if not seen[k] then keys[#keys + 1] = k end end
  table.sort(keys)
  for _, k in ipairs(keys) do
    if saved[k] ~= now[k] then
      return string.format("%s was %s when it was saved, now %s", k, saved[k] or "absent", now[k] or "absent")
    end
  end
end

-- ------------------------------------------------------------- saving

local function sorted_keys(t)
  local names = {}
  for k in pairs(t) do names[#names + 1] = k end
  table.sort(names)
  return names
end

-- A table keyed by task numbers, perhaps with holes, as a JSON object ("2": ...) and back.
local function by_task(t)
  if t == nil then return nil end
  local o = json.object()
  for k, v in pairs(t) do o[tostring(k)] = v end
  return o
end
local function from_by_task(o)
  if o == nil then return nil end
  local t = {}
  for k, v in pairs(o) do t[math.tointeger(tonumber(k)) or k] = v end
  return t
end

local function checksum(tensors, run_text)
  local list = {}
  for i, k in ipairs(sorted_keys(tensors)) do
    local t = tensors[k]
    list[i] = t:is_contiguous() and t or t:contiguous()
  end
  return core.checksum(list, run_text)
end

-- An optimiser's buffers into tensors (prefix .. "<group>.<buf|m|v>") and
-- its scalars as a JSON value; what names it in errors.
local function optimizer_state(opt, prefix, tensors, what)
  if type(opt.state_dict) ~= "function" then
    error("checkpoint.save: " .. what .. " has no state_dict(); a custom optimiser cannot be checkpointed", 0)
  end
  local sd = opt:state_dict()
  local ostate = { kind = sd.kind, step = sd.step, lr = sd.lr, groups = {} }
  for g, e in pairs(sd.groups) do
    ostate.groups[g] = e.t
    for _, k in ipairs { "buf", "m", "v" } do
      if e[k] then tensors[prefix .. g .. "." .. k] = e[k] end
    end
  end
  return ostate
end

-- The last checkpoint written or read in this process: what an interrupted
-- run reports (M.note).
local last = nil

--- Writes the state of L's run (between two tasks: after learner:step())
-- to dir/checkpoint.safetensors, atomically: the previous file stays whole
-- until the new one is complete. Returns the path.
function M.save(L, dir)
  local ctx, r = L.ctx, L._r
  if not r then error("checkpoint.save: no run in progress (learner:start(scenario) first)", 2) end
  if type(dir) ~= "string" or dir == "" then
    error("checkpoint.save: expected a directory, got " .. tostring(dir), 2)
  end
  local tensors, metas = {}, {}
  for _, p in ipairs(L.model:parameters()) do tensors["model." .. p.group .. "." .. p.name] = p.value end
  local ostate = optimizer_state(ctx.optimizer, "optimizer.", tensors, "the optimiser")
  -- the optimisers of a plan's phases that have their own (kept across tasks)
  local phase_opts
  if L._plan and L._phase_opts then
    for name, ph in pairs(L._plan.phase_list) do
      local opt = L._phase_opts[ph]
      if opt then
        phase_opts = phase_opts or {}
        phase_opts[name] = optimizer_state(opt, "phaseopt." .. name .. ".", tensors,
          "the optimiser of phase '" .. name .. "'")
      end
    end
  end
  -- how every group is frozen (freeze, progressive, ...: strategies freeze as they go)
  local freezing = {}
  for name, e in pairs(L.model:freezing()) do
    freezing[name] = e.frozen
    if e.mask then tensors["freeze." .. name] = e.mask end
  end
  each_strategy(L.strategies, "", function(key, s)
    local kind = kind_of(s)
    if not kind then
      error(string.format("checkpoint.save: %s cannot be checkpointed: it has no state()/load_state() " ..
        "(docs/checkpoints.md; a strategy that keeps nothing between tasks sets stateless = true)", label(key, s)), 0)
    end
    if kind == "protocol" then
      for name, t in pairs(s:state()) do
        if not core.istensor(t) then
          error(string.format("checkpoint.save: %s: state '%s' is a %s, not a tensor", label(key, s), tostring(name),
            type(t)), 0)
        end
        tensors["strategy." .. key .. "." .. name] = t
      end
      if type(s.state_meta) == "function" then metas[key] = s:state_meta() end
    end
  end)
  if r.h1 then tensors["probe.reference"] = r.h1 end
  local run = {
    done = r.next - 1, T = r.T, global_step = ctx.global_step, acc = ctx.acc, untrained = ctx.untrained,
    drift = by_task(r.drift), per_task = r.per_task, train_seconds = ctx.train_seconds, eval_seconds = ctx.eval_seconds,
    skipped = ctx.skipped, extra = ctx.extra, isolation_groups = by_task(ctx._isolation_groups), optimizer = ostate,
    phase_optimizers = phase_opts, freezing = freezing,
    rng = { run = ctx.rng:state(), default = core.default_generator():state() }, strategies = metas,
    fingerprint = r.fingerprint, version = core.version, threads = core.get_threads(),
    perplexity = ctx.perplexity, untrained_perplexity = ctx.untrained_perplexity,
  }
  local ok, run_text = pcall(json.encode, run)
  if not ok then error("checkpoint.save: the run's records cannot be written as JSON: " .. tostring(run_text), 2) end
  core.mkdir_p(dir)
  local path = dir .. "/" .. M.FILE
  require("engram.io").save(path, tensors, { ["engram.checkpoint"] = M.FORMAT, ["engram.run"] = run_text,
    ["engram.checksum"] = checksum(tensors, run_text) })
  last = { dir = dir, done = run.done, T = r.T }
  return path
end

-- ------------------------------------------------------------- reading

--- Reads and checks dir/checkpoint.safetensors: the file whole (layout,
-- format, checksum, the run's JSON) before anything is used. Returns the
-- tensors (name -> tensor) and the run's records; raises naming the file
-- and the problem.
function M.read(dir)
  local path = dir .. "/" .. M.FILE
  local ok, tensors, meta = pcall(require("engram.io").load, path)
  if not ok then error("checkpoint: " .. tostring(tensors):gsub("^io%.load: ", ""), 0) end
  if meta["engram.checkpoint"] ~= M.FORMAT then
    error(string.format("checkpoint: %s is not an engram checkpoint (format %s, expected %s)", path,
      tostring(meta["engram.checkpoint"]), M.FORMAT), 0)
  end
  local run_text = meta["engram.run"] or ""
  if checksum(tensors, run_text) ~= meta["engram.checksum"] then
    error(string.format("checkpoint: %s is damaged: its checksum does not match its contents", path), 0)
  end
  local run, err = json.try_decode(run_text)
  if not run then error(string.format("checkpoint: %s: the run's records are not JSON: %s", path, tostring(err)), 0) end
  local function bad(what) error(string.format("checkpoint: %s: %s", path, what), 0) end
  if math.type(run.done) ~= "integer" or math.type(run.T) ~= "integer" or run.done < 0 or run.done > run.T then
    bad("the position (tasks done) is missing or out of range")
  end
  if type(run.acc) ~= "table" or #run.acc ~= run.done then bad("the accuracy matrix does not match the position") end
  if type(run.rng) ~= "table" or type(run.rng.run) ~= "string" or type(run.rng.default) ~= "string" then
    bad("the generators' states are missing")
  end
  if type(run.fingerprint) ~= "table" or type(run.optimizer) ~= "table" then bad("the run's fingerprint is missing") end
  return tensors, run, path
end

--- Whether dir holds a checkpoint file.
function M.exists(dir)
  local f = io.open(dir .. "/" .. M.FILE, "rb")
  if f then f:close() end
  return f ~= nil
end

-- Splits the file's tensors by owner; raises on a name no part owns.
local function partition(tensors, path)
  local parts = { model = {}, optimizer = {}, strategy = {}, freeze = {}, phaseopt = {} }
  for name, t in pairs(tensors) do
    local head, rest = name:match("^(%a+)%.(.+)$")
    if head == "strategy" then
      local key, sub = rest:match("^([%d_]+)%.(.+)$")
      if not key then error(string.format("checkpoint: %s: tensor '%s' names no strategy", path, name), 0) end
      parts.strategy[key] = parts.strategy[key] or {}
      parts.strategy[key][sub] = t
    elseif parts[head] then
      parts[head][rest] = t
    elseif name ~= "probe.reference" then
      error(string.format("checkpoint: %s: unknown tensor '%s'", path, name), 0)
    end
  end
  return parts
end

local function same_shape(t, shape)
  if t:dim() ~= #shape then return false end
  for i, d in ipairs(shape) do if t:size(i) ~= d then return false end end
  return true
end

-- Copies the file's model tensors into the model: every parameter, nothing else.
local function load_model(model, mt, path)
  local params = model:parameters()
  local seen = 0
  for _, p in ipairs(params) do
    local key = p.group .. "." .. p.name
    local t = mt[key]
    if not t then error(string.format("checkpoint: %s has no tensor for parameter %s", path, key), 0) end
    if not same_shape(t, p.shape) then
      error(string.format("checkpoint: %s: parameter %s is %s in the file, %s in the model", path, key,
        table.concat(t:size(), "x"), table.concat(p.shape, "x")), 0)
    end
    seen = seen + 1
  end
  local n = 0
  for key in pairs(mt) do
    n = n + 1
    if n > seen then error(string.format("checkpoint: %s holds parameter %s, which the model does not have", path,
      key), 0) end
  end
  for _, p in ipairs(params) do p.value:copy_(mt[p.group .. "." .. p.name]) end
end

-- An optimiser's state from its scalars (optimizer_state) and its tensors by
-- "<group>.<buf|m|v>".
local function load_optimizer(opt, meta, tensors, path, what)
  what = what or "optimiser"
  local sd = { kind = meta.kind, step = meta.step, lr = meta.lr, groups = {} }
  for g, t in pairs(meta.groups) do sd.groups[g] = { t = t } end
  for name, t in pairs(tensors) do
    local g, k = name:match("^(.+)%.(%a+)$")
    if not g or not sd.groups[g] then
      error(string.format("checkpoint: %s: %s tensor '%s' has no group", path, what, name), 0)
    end
    sd.groups[g][k] = t
  end
  opt:load_state_dict(sd)
end

-- The optimisers of a plan's phases (made as the phase would make them).
local function load_phase_optimizers(L, metas, tensors, path)
  local by = {}
  for name, t in pairs(tensors) do
    local hit
    for pname in pairs(metas or {}) do
      if name:sub(1, #pname + 1) == pname .. "." then hit = pname end
    end
    if not hit then error(string.format("checkpoint: %s: tensor 'phaseopt.%s' names no phase", path, name), 0) end
    by[hit] = by[hit] or {}
    by[hit][name:sub(#hit + 2)] = t
  end
  for pname, meta in pairs(metas or {}) do
    local ph = L._plan and L._plan.phase_list[pname]
    if not ph or not ph.optimizer then
      error(string.format("checkpoint: %s holds an optimiser of phase '%s', which this run's plan does not have",
        path, pname), 0)
    end
    load_optimizer(L:_phase_optimizer(ph), meta, by[pname] or {}, path, "phase '" .. pname .. "' optimiser")
  end
end

-- How the groups are frozen: names -> frozen, masks as tensors by group name.
local function load_freezing(model, frozen, masks, path)
  local st = {}
  for name, f in pairs(frozen) do st[name] = { frozen = f == true, mask = masks[name] } end
  for name in pairs(masks) do
    if not st[name] then error(string.format("checkpoint: %s: freeze mask '%s' names no group", path, name), 0) end
  end
  local ok, err = pcall(model.set_freezing, model, st)
  if not ok then error(string.format("checkpoint: %s: %s", path, tostring(err)), 0) end
end

--- Puts the run saved in dir into L, whose run has just started
-- (learner:start): the strategies' state, the model, the optimiser, the
-- records and the generators; the run then continues after the last task
-- saved. The file is checked whole, and against this run's fingerprint,
-- before anything changes; should a strategy still reject its state the run
-- is ended (no half-restored run goes on).
function M.restore(L, dir)
  local tensors, run, path = M.read(dir)
  local ctx, r, model = L.ctx, L._r, L.model
  if run.T ~= r.T then
    error(string.format("checkpoint: %s is a run of %d tasks, this scenario has %d", path, run.T, r.T), 0)
  end
  local diff = difference(run.fingerprint, r.fingerprint)
  if diff then
    error(string.format("checkpoint: %s was saved by another configuration: %s (resume with the options it was " ..
      "made with, or start afresh with another directory)", path, diff), 0)
  end
  local parts = partition(tensors, path)
  local ok, err = pcall(function()
    -- the groups and modules strategies added, task by task in the order they were made
    for t = 1, run.done do
      each_strategy(L.strategies, "", function(key, s)
        if type(s.rebuild_task) == "function" then s:rebuild_task(ctx, run.strategies[key], t) end
      end)
    end
    if run.freezing then load_freezing(model, run.freezing, parts.freeze, path) end
    ctx.t = run.done
    ctx.task = r.scenario.tasks[run.done]
    -- the records before the strategies' state: a plan links its records into ctx.extra
    ctx.extra, ctx._isolation_groups = run.extra, from_by_task(run.isolation_groups)
    each_strategy(L.strategies, "", function(key, s)
      local kind, st = kind_of(s), parts.strategy[key]
      if kind == "protocol" then
        s:load_state(st or {}, ctx, run.strategies[key])
      elseif st then
        error(string.format("checkpoint: %s holds state for %s, which keeps none", path, label(key, s)), 0)
      end
      parts.strategy[key] = nil
    end)
    local extra_key = next(parts.strategy)
    if extra_key then error(string.format("checkpoint: %s holds state for strategy %s, which this run does not have",
      path, extra_key), 0) end
    load_model(model, parts.model, path)
    load_optimizer(ctx.optimizer, run.optimizer, parts.optimizer, path)
    load_phase_optimizers(L, run.phase_optimizers, parts.phaseopt, path)
    ctx.acc, ctx.untrained, ctx.global_step = run.acc, run.untrained, run.global_step
    ctx.perplexity, ctx.untrained_perplexity = run.perplexity, run.untrained_perplexity
    ctx.train_seconds, ctx.eval_seconds, ctx.skipped = run.train_seconds, run.eval_seconds, run.skipped
    r.drift, r.per_task, r.h1 = from_by_task(run.drift), run.per_task, tensors["probe.reference"]
    ctx.rng:set_state(run.rng.run)
    core.default_generator():set_state(run.rng.default)
    if r.need_old and run.done > 0 then
      ctx.old_model = model:clone()
      if ctx.old_model.evaluate then ctx.old_model:evaluate() end
    end
    r.next = run.done + 1
  end)
  if not ok then
    L._r = nil
    error(tostring(err):gsub("^checkpoint: ", "checkpoint: resume: "), 0)
  end
  last = { dir = dir, done = run.done, T = run.T }
  if run.threads ~= core.get_threads() then
    ctx.log("resume_threads", { saved = run.threads, now = core.get_threads() })
  end
  ctx.log("resume", { task = run.done, dir = dir })
  return run.done
end

-- ------------------------------------------------------------- the learner's calls

--- learner:start: records the run's fingerprint, and with resume continues
-- from the checkpoint in the learner's directory when there is one.
function M.begin(L)
  local o, r = L.opts, L._r
  r.fingerprint = fingerprint(L)
  local dir = o.checkpoint
  local ok, done = pcall(function() return o.resume and M.exists(dir) and M.restore(L, dir) or 0 end)
  if not ok then
    L._r = nil -- a run that failed to resume does not go on
    error(done, 0)
  end
  if o.start_task and o.start_task ~= done + 1 then
    L._r = nil
    error(string.format("learner: start_task is %d but %s holds %s: the run can start at task %d", o.start_task,
      dir, done == 0 and "no checkpoint" or string.format("tasks 1-%d", done), done + 1), 0)
  end
  if not o.quiet and done > 0 then
    r.prog:message(string.format("%s  resumed from %s after task %d/%d", o.name, dir, done, r.T))
  end
end

--- learner:step, after task t: saves; stops the run when t is stop_task.
function M.after_task(L, t)
  local o, r = L.opts, L._r
  M.save(L, o.checkpoint)
  if o.stop_task and t == o.stop_task and t < r.T then
    L._r = nil
    error(string.format("stopped after task %d of %d (stop_task): the checkpoint is in %s; continue with %s", t, r.T,
      o.checkpoint, M.how_to_resume()), 0)
  end
end

--- How to continue: the recipe's option, or the learner's.
function M.how_to_resume()
  return session and ("--resume " .. session.dir) or "resume = true"
end

--- What an interrupted process reports about its last checkpoint, or nil.
function M.note()
  if not last then return nil end
  return string.format("the checkpoint in %s holds tasks 1-%d of %d (the task under way is discarded); " ..
    "continue with %s", last.dir, last.done, last.T, M.how_to_resume())
end

return M
