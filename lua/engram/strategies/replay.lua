--- Experience replay (Chaudhry et al. 2019, "On tiny episodic memories"):
-- a memory of past samples held in C (engram.cl.memory); every training
-- batch becomes the current batch plus a memory batch of the same size (one
-- combined forward/backward, so both halves weigh the same).
--
--   learner:use(engram.strategies.replay{memory = 1000})
--   learner:use(engram.strategies.replay{per_class = 100, insert = "herding", storage = "auto"})
--
-- Options (defaults in brackets):
--   memory [1000]        capacity in samples, in all
--   per_class [nil]      instead: samples per class seen (the capacity grows
--                        as classes arrive: per_class x classes; its bytes are
--                        reported); insertion then defaults to "balanced"
--   insert ["reservoir"] how samples get in:
--                        "reservoir"  each sample offered is held with
--                                     probability capacity/offered
--                        "balanced"   class-balanced reservoir (about
--                                     capacity/C per class); balanced = true
--                                     is the same
--                        "herding"    at each task's end, each new class's
--                                     exemplars chosen by herding in the
--                                     model's feature space (iCaRL's), old
--                                     classes cut to the new quota (the tail
--                                     of their herding order dropped)
--                        "score"      keeps the samples with the highest
--                                     score (in all, or per class with
--                                     per_class); ties decided by the seed
--   score ["loss"]       insert = "score": "loss" (each sample's cross-entropy
--                        under the model when offered: at the task's end, or
--                        the step's own logits with update = "stream": the
--                        samples the model finds hard) or
--                        function(x, y, task, ctx) -> tensor [B] of scores
--   weight [nil]         each stored sample's sampling weight:
--                        function(x, y, task, ctx) -> tensor [B] (>= 0), or
--                        "batch": ctx.sample_weights [B], set with the batch by
--                        an earlier strategy or hook (update = "stream"). With
--                        weights, memory batches are drawn in proportion to
--                        them (with replacement)
--   storage ["float"]    "uint8": inputs stored as uint8 codes through the
--                        dataset's affine map (ds:quantization(), or levels =
--                        ...): a quarter of the bytes, replayed bit-identical;
--                        "auto": uint8 when every value of the first batch is
--                        on the map, float otherwise
--   levels [nil]         the map for storage = "uint8" when the dataset has
--                        none: {scale =, offset =} or a tensor of 256 levels
--   batch [nil]          memory samples per batch (default: the current batch's size)
--   update ["task_end"]  "task_end": after each task its training samples are
--                        offered to the memory (the memory holds past tasks
--                        only while a task trains); "stream": every batch is
--                        offered after its step (memory includes the current task;
--                        scheduled with tasks = ..., it fills only while it acts:
--                        after_step is a training hook, after_task observes every task)
--   seed [nil]           the sampling generator's seed (default: the run's ctx.rng)
--   grid [nil]           after each task, a grid of the first n stored samples in
--                        the results (extra.grids; engram report shows it)
--   grid_file [nil]      ... and as a PNG file: a pattern with %d for the task
--
-- Token windows (engram.text: x, y [B, T], y = x shifted by one): each
-- window is stored as its T + 1 tokens (one row, label 0) and replayed as
-- x, y [k, T] again; insert "reservoir" (or "balanced", which is the same
-- with one label) only.
--
-- Hooks: before_batch (append a memory batch), after_step (stream) or
-- after_task (task_end). Per batch: one sample call and four copies in C.
-- Every scenario: each sample of the combined batch carries its task
-- (ctx.sample_tasks), so in task-IL with masked logits a stored sample is
-- judged under its own task's classes. s:state() gives the memory as named tensors
-- (memory.x or memory.codes and memory.levels, .y, .task, .weights,
-- .order, .seen, .scores) and s:load_state(t) restores it: the same draws
-- from the same generator. s:state_bytes() is the memory's real size.
local core = require("engram.core")
local cl = require("engram.cl")
local strategies = require("engram.strategies")

local Replay = {}
Replay.__index = Replay
-- Checkpoints inside a task resume exactly: the memory, its draws and the
-- stream's insertions are all in state() (engram.checkpoint).
Replay.midtask = true

local INSERT = { reservoir = true, balanced = true, herding = true, score = true }
local STORAGE = { float = true, uint8 = true, auto = true }

local function positive(name, v)
  if v and (math.type(v) ~= "integer" or v < 1) then
    error("replay: " .. name .. " must be a positive integer, got " .. tostring(v), 4)
  end
end

local function new(opts)
  local given = opts or {}
  local o = strategies.options("replay", opts,
    { memory = 1000, per_class = false, insert = false, score = false, weight = false, storage = "float",
      levels = false, batch = false, update = "task_end", balanced = false, seed = false, grid = false,
      grid_file = false }, 3)
  if o.per_class then
    if given.memory ~= nil then error("replay: give memory (in all) or per_class, not both", 3) end
    o.memory = false
  elseif math.type(o.memory) ~= "integer" or o.memory < 1 then
    error("replay: memory must be a positive integer, got " .. tostring(o.memory), 3)
  end
  positive("per_class", o.per_class)
  positive("batch", o.batch)
  if o.grid and (math.type(o.grid) ~= "integer" or o.grid < 1) then
    error("replay: grid must be a number of samples to show, got " .. tostring(o.grid), 3)
  end
  if o.grid_file and (type(o.grid_file) ~= "string" or not o.grid_file:find("%d", 1, true)) then
    error("replay: grid_file must be a file name pattern with %d for the task, got " .. tostring(o.grid_file), 3)
  end
  if o.update ~= "task_end" and o.update ~= "stream" then
    error("replay: update must be 'task_end' or 'stream', got " .. tostring(o.update), 3)
  end
  if o.balanced and o.insert and o.insert ~= "balanced" then
    error("replay: balanced = true is insert = 'balanced', not '" .. tostring(o.insert) .. "'", 3)
  end
  o.insert = o.insert or ((o.balanced or o.per_class) and "balanced" or "reservoir")
  if not INSERT[o.insert] then
    error("replay: insert must be 'reservoir', 'balanced', 'herding' or 'score', got " .. tostring(o.insert), 3)
  end
  if o.insert == "herding" and o.update == "stream" then
    error("replay: insert = 'herding' chooses exemplars at each task's end; it needs update = 'task_end'", 3)
  end
  if o.score and o.insert ~= "score" then error("replay: score is for insert = 'score'", 3) end
  if o.insert == "score" then
    o.score = o.score or "loss"
    if o.score ~= "loss" and type(o.score) ~= "function" then
      error("replay: score must be 'loss' or a function(x, y, task, ctx) -> scores, got " .. tostring(o.score), 3)
    end
  end
  if o.weight and o.weight ~= "batch" and type(o.weight) ~= "function" then
    error("replay: weight must be a function(x, y, task, ctx) -> weights or 'batch', got " .. tostring(o.weight), 3)
  end
  if not STORAGE[o.storage] then
    error("replay: storage must be 'float', 'uint8' or 'auto', got " .. tostring(o.storage), 3)
  end
  if o.levels then
    local ok, err = pcall(cl.levels, o.levels)
    if not ok then error("replay: " .. tostring(err):gsub("^.-levels: ", "levels: "), 3) end
  end
  local s = setmetatable({ name = "replay", options = o, _px = {}, _py = {}, _bx = core.zeros(0), _by = core.zeros(0),
    _bt = core.zeros(0) }, Replay)
  if o.update == "stream" then
    s.after_step = Replay._stream_add
  else
    s.after_task = o.insert == "herding" and Replay._herd or Replay._task_add
  end
  return s
end

function Replay:describe()
  local o = self.options
  return { name = "replay", options = { memory = o.memory or nil, per_class = o.per_class or nil,
    batch = o.batch or nil, update = o.update, insert = o.insert,
    storage = self.mem and (self.mem:uint8() and "uint8" or "float") or o.storage,
    score = type(o.score) == "function" and "function" or o.score or nil,
    weight = type(o.weight) == "function" and "function" or o.weight or nil } }
end

-- The map for uint8 storage: the option's, or the dataset's (nil when none).
local function levels_of(o, ds)
  if o.levels then return cl.levels(o.levels) end
  local q = ds and ds.quantization and ds:quantization()
  return q and q.levels or nil
end

--- The memory, made at the first offer of x [B, D] from dataset ds:
-- uint8 storage when asked (or, with "auto", when x is on the dataset's map).
function Replay:_memory(x, ds)
  if self.mem then return self.mem end
  local o = self.options
  local levels
  if o.storage ~= "float" then
    levels = levels_of(o, ds)
    if o.storage == "uint8" and not levels then
      error("replay: storage = 'uint8' needs a dataset with a uint8 map (ds:quantization()) or levels = " ..
        "{scale =, offset =}", 0)
    end
    if o.storage == "auto" and levels and not cl.on_levels(x, levels) then levels = nil end
  end
  local insert = o.insert == "herding" and "reservoir" or o.insert -- herding loads what it chose
  self.mem = cl.memory(o.memory or nil, { dim = x:size(2), insert = insert, per_class = o.per_class or nil,
    levels = levels })
  return self.mem
end

function Replay:before_run(ctx)
  self.mem, self.sets, self.order = nil, {}, {}
  self.gen = self.options.seed and core.generator(self.options.seed) or ctx.rng
end

-- Appends k memory samples to the batch: ctx.x, ctx.y become [B+k, ...].
function Replay:before_batch(ctx)
  local mem = self.mem
  if not mem or #mem == 0 then return end
  local B = ctx.x:size(1)
  if B == 0 then B = ctx.batch_size or 1 end -- a phase with data = "none": the batch is the memory's
  local k = math.min(self.options.batch or B, #mem)
  if ctx.y:dim() == 2 then -- token windows: rows of T + 1 tokens, x = the first T, y = the last T
    local rows, _, mt = mem:sample(k, self.gen)
    local T = ctx.y:size(2)
    if rows:size(2) ~= T + 1 then
      error(string.format("replay: the memory holds rows of %d values, not windows of %d tokens + 1",
        rows:size(2), T), 0)
    end
    Replay.append(self, ctx, rows:narrow(2, 1, T), rows:narrow(2, 2, T), mt)
    return
  end
  Replay.append(self, ctx, mem:sample(k, self.gen)) -- [k, D], [k], [k]: the memory holds flat rows
end

-- A batch of token windows (x, y [B, T]) as the rows the memory stores:
-- [B, T + 1] (x and the last target) and labels 0 [B]; x, y unchanged otherwise.
function Replay:_rows(x, y)
  if y:dim() ~= 2 then return x, y end
  local o = self.options
  if o.insert ~= "reservoir" and o.insert ~= "balanced" then
    error("replay: insert = '" .. o.insert .. "' is for labelled samples; token windows take 'reservoir'", 0)
  end
  return Replay.window_rows(self, x, y)
end

--- Token windows x, y [B, T] as memory rows [B, T + 1] (x and the last
-- target) with labels 0 [B]; buffers kept in self (_rows_*). Shared with A-GEM.
function Replay.window_rows(self, x, y)
  local B, T = x:size(1), x:size(2)
  self._rows_y = self._rows_y and self._rows_y:numel() == B and self._rows_y or core.zeros(B)
  self._rows_buf = self._rows_buf or core.zeros(0)
  self._rows_list = self._rows_list or {}
  self._rows_list[1], self._rows_list[2] = x, y:narrow(2, T, 1)
  return core.cat(self._rows_list, 2, self._rows_buf), self._rows_y
end

--- Appends stored samples mx [k, D], my [k] of tasks mt [k] (0-based) to
-- the batch: ctx.x, ctx.y become [B+k, ...], and ctx.sample_tasks says each
-- sample's task (kept for the rows an earlier append added), so that in
-- task-IL a stored sample is judged under its own task's classes. Buffers
-- reused (fields _px, _py, _bx, _by, _bt, _ct of self): no allocation once
-- warm. Shared with iCaRL and federated's client memories.
function Replay.append(self, ctx, mx, my, mt)
  local x, y = ctx.x, ctx.y
  local B = x:size(1)
  local px, py = self._px, self._py -- the lists cat joins, reused
  px[1], px[2], py[1], py[2] = x, mx, y, my
  ctx.x, ctx.y = core.cat(px, 1, self._bx), core.cat(py, 1, self._by)
  local ct = ctx.sample_tasks -- set by an earlier append (another strategy's samples)
  if not ct then
    local store = self._ct -- grows to the largest batch; a smaller one is a view of it
    if not store or store:numel() < B then
      store = core.zeros(B)
      self._ct = store
    end
    ct = store:numel() == B and store or store:narrow(1, 1, B)
    ct:fill_((ctx.batch_task and ctx.batch_task.index or ctx.t) - 1)
  end
  px[1], px[2] = ct, mt
  ctx.sample_tasks = core.cat(px, 1, self._bt)
end

--- Bytes the memory holds in C, at its current capacity (uint8 inputs count one byte each).
function Replay:state_bytes()
  return self.mem and self.mem:bytes() or 0
end

-- A user function's per-sample values for a batch of B: a tensor of B numbers.
local function per_sample(what, f, x, y, task, ctx)
  local v = f(x, y, task, ctx)
  local B = x:size(1)
  if not core.istensor(v) or v:numel() ~= B then
    local got = core.istensor(v) and ("a tensor of " .. v:numel() .. " values") or type(v)
    error(string.format("replay: the %s function must return a tensor of %d values (one per sample), got %s", what,
      B, got), 0)
  end
  return v:contiguous():view(B)
end

-- Weights and scores of a batch offered to the memory (nil when not used).
-- logits: the model's output for x when already computed (the stream's step).
function Replay:_extras(ctx, x, y, task, logits)
  local o, w, sc = self.options, nil, nil
  if type(o.weight) == "function" then
    w = per_sample("weight", o.weight, x, y, task, ctx)
  elseif o.weight == "batch" then
    w = ctx.sample_weights
    if not core.istensor(w) or w:numel() ~= x:size(1) then
      error(string.format("replay: weight = 'batch' needs ctx.sample_weights, a tensor of %d weights, got %s",
        x:size(1), core.istensor(w) and ("a tensor of " .. w:numel() .. " values") or type(w)), 0)
    end
  end
  if o.score == "loss" then
    sc = cl.sample_losses(logits or ctx.model:forward(x), y)
  elseif o.score then
    sc = per_sample("score", o.score, x, y, task, ctx)
  end
  return w, sc
end

function Replay:_stream_add(ctx)
  local x, y = ctx.task_x, ctx.task_y
  x = x:contiguous():view(x:size(1), -1)
  x, y = self:_rows(x, y)
  local logits = self.options.score == "loss" and ctx.logits:narrow(1, 1, x:size(1)) or nil
  local w, sc = self:_extras(ctx, x, y, ctx.t - 1, logits)
  self:_memory(x, ctx.task.train):add(x, y, ctx.t - 1, nil, self.gen, w, sc)
end

-- The finished task's summary in the results, and the optional grid.
function Replay:_report(ctx)
  local mem, o = self.mem, self.options
  ctx.extra.replay_memory = { size = mem and #mem or 0, capacity = mem and mem:capacity() or o.memory,
    seen = mem and mem:seen() or 0, bytes = mem and mem:bytes() or 0, storage = mem and (mem:uint8() and "uint8" or
    "float") or nil }
  if (o.grid or o.grid_file) and mem and #mem > 0 then
    local x = mem:tensors()
    require("engram.image").record(ctx, "replay memory", x, { max = o.grid or 64, file = o.grid_file or nil })
  end
end

-- Offers every training sample of the finished task to the memory.
function Replay:_task_add(ctx)
  local task, model = ctx.task, ctx.model
  local was_training = model.training
  if self.options.score == "loss" then model:evaluate() end
  for x, y in task.train:chunks { batch = 1000, flat = true } do
    y = ctx.learner:targets(task, y)
    x, y = self:_rows(x, y)
    local w, sc = self:_extras(ctx, x, y, ctx.t - 1)
    self:_memory(x, task.train):add(x, y, ctx.t - 1, nil, self.gen, w, sc)
  end
  if self.options.score == "loss" and was_training ~= false then model:train() end
  self:_report(ctx)
end

-- ---- herding (shared with iCaRL) ----

--- The module whose output is the feature: `layer`, or with "auto" the one
-- before the last of a Sequential.
function Replay.feature_layer(model, layer, who)
  if layer ~= "auto" then return layer end
  local mods = rawget(model, "modules")
  if type(mods) ~= "table" or #mods < 2 then
    error(who .. ": layer = 'auto' needs a Sequential model (give layer = the feature module's index)", 0)
  end
  return #mods - 1
end

--- Features of x: the feature module's output, L2-normalised rows (a new tensor).
function Replay.features(model, x, layer, who)
  local f = model:forward_to(x, Replay.feature_layer(model, layer, who))
  f = f:contiguous():view(f:size(1), -1):clone()
  local norm = f:norm(2, 2):clamp_(1e-12, math.huge)
  return f:div_(norm:view(-1, 1))
end

--- Herding selection at a task's end (iCaRL's exemplars). sets[c] = {x =
-- rows in herding order, task = 0-based}, order = classes in arrival order
-- (both updated); quota(classes) -> exemplars per class. Every old class
-- keeps the first quota of its own; each new class of the task gets quota
-- by herding (engram.cl.herding) over the L2-normalised features of its
-- training samples. Returns the quota and the number of classes; the model
-- is left in evaluation mode.
function Replay.herd(ctx, sets, order, quota, layer, who)
  local model, task = ctx.model, ctx.task
  model:evaluate()
  local xs, fs, ys = {}, {}, {}
  for x, y in task.train:chunks { batch = 1000, flat = true } do
    y = ctx.learner:targets(task, y)
    xs[#xs + 1], fs[#fs + 1], ys[#ys + 1] = x:clone(), Replay.features(model, x, layer, who), y:clone()
  end
  local X, Fe, Y = core.cat(xs, 1), core.cat(fs, 1), core.cat(ys, 1)
  -- the new classes of this task, in label order
  local new_classes, seen = {}, {}
  for _, c in ipairs(order) do seen[c] = true end
  for _, c in ipairs(task.targets or task.classes) do
    if not seen[c] then new_classes[#new_classes + 1] = c; seen[c] = true end
  end
  table.sort(new_classes)
  local classes = #order + #new_classes
  local m = quota(classes)
  for _, c in ipairs(order) do
    local s = sets[c]
    if s.x:size(1) > m then s.x = s.x:narrow(1, 1, m):clone() end
  end
  for _, c in ipairs(new_classes) do
    local rows = Y:eq(c):totable()
    local pick = {}
    for i, v in ipairs(rows) do if v == 1 then pick[#pick + 1] = i end end
    if #pick == 0 then error(string.format("%s: task %d has no training sample of class %d", who, ctx.t, c), 0) end
    local chosen = cl.herding(Fe:index(pick), math.min(m, #pick))
    sets[c] = { x = X:index(pick):index(chosen), task = ctx.t - 1 }
    order[#order + 1] = c
  end
  return m, classes
end

--- Every exemplar of sets, class by class in order: X [n, D], Y [n], T [n].
function Replay.exemplars(sets, order)
  local xs, ys, ts = {}, {}, {}
  for _, c in ipairs(order) do
    local s = sets[c]
    local n = s.x:size(1)
    xs[#xs + 1], ys[#ys + 1], ts[#ts + 1] = s.x, core.zeros(n):fill_(c), core.zeros(n):fill_(s.task)
  end
  return core.cat(xs, 1), core.cat(ys, 1), core.cat(ts, 1)
end

-- insert = "herding": the exemplars of every class seen, per class memory / C (or per_class).
function Replay:_herd(ctx)
  local o, model = self.options, ctx.model
  local was_training = model.training
  local m, classes = Replay.herd(ctx, self.sets, self.order, function(C)
    local q = o.per_class or o.memory // C
    if q < 1 then error(string.format("replay: %d samples cannot hold %d classes", o.memory, C), 0) end
    return q
  end, "auto", "replay")
  local X, Y, T = Replay.exemplars(self.sets, self.order)
  local mem = self:_memory(X, ctx.task.train)
  local w = type(o.weight) == "function" and per_sample("weight", o.weight, X, Y, T, ctx) or nil
  mem:load(X, Y, T, nil, mem:seen() + ctx.task.train:size(), w)
  ctx.extra.replay_herding = { per_class = m, classes = classes }
  if was_training ~= false then model:train() end
  self:_report(ctx)
end

-- ---- state ----

--- A memory's state as named tensors (prefix .. "x" or "codes" and
-- "levels", "y", "task", "weights", "order", "seen", "scores", "logits").
function Replay.memory_state(mem, prefix)
  if not mem then return {} end
  prefix = prefix or "memory."
  local x, y, t, z = mem:tensors()
  local order, scores = mem:state_extra()
  local out = { [prefix .. "y"] = y, [prefix .. "task"] = t, [prefix .. "weights"] = mem:weights(),
    [prefix .. "order"] = order, [prefix .. "seen"] = core.tensor { mem:seen() }, [prefix .. "logits"] = z,
    [prefix .. "scores"] = scores }
  if mem:uint8() then
    out[prefix .. "codes"], out[prefix .. "levels"] = mem:codes()
  else
    out[prefix .. "x"] = x
  end
  return out
end

--- Restores a memory from memory_state's tensors; make(dim, levels) makes
-- the memory when there is none yet. Returns the memory.
function Replay.load_memory(mem, t, make, prefix, who)
  prefix = prefix or "memory."
  local function get(k, required)
    local v = t[prefix .. k]
    if required and not core.istensor(v) then
      error(string.format("%s: load_state needs the tensor '%s%s'", who, prefix, k), 3)
    end
    return v
  end
  local y, levels, x = get("y", true), get("levels"), get("x")
  if levels then
    local codes = get("codes", true)
    local n, D = codes:size(1), codes:numel() // math.max(codes:size(1), 1)
    x = codes:contiguous():clone():view(-1):relabel_(levels):view(n, D)
  elseif not x then
    get("x", true)
  end
  x = x:contiguous()
  mem = mem or make(x:numel() // math.max(x:size(1), 1), levels)
  local seen = get("seen")
  mem:load(x, y, get("task"), get("logits"), seen and math.tointeger(seen:get(1)) or nil, get("weights"),
    get("scores"))
  if get("order") then mem:set_order(get("order")) end
  return mem
end

--- The memory (and herding's exemplar sets) as named tensors.
function Replay:state()
  return Replay.memory_state(self.mem)
end

--- The state of its own generator (with the seed option; otherwise it draws from ctx.rng, saved by the learner).
function Replay:state_meta()
  return { gen = self.options.seed and self.gen and self.gen:state() or nil }
end

--- Restores what state() gave: the memory draws the same samples from the same generator.
function Replay:load_state(t, _, meta)
  local o = self.options
  if o.seed and type(meta) == "table" and type(meta.gen) == "string" and self.gen then self.gen:set_state(meta.gen) end
  -- saved before the memory was made (inside the first task it observes): none yet
  if next(t) == nil then
    self.mem, self.sets, self.order = nil, {}, {}
    return self
  end
  self.mem = Replay.load_memory(self.mem, t, function(dim, levels)
    local insert = o.insert == "herding" and "reservoir" or o.insert
    return cl.memory(o.memory or nil, { dim = dim, insert = insert, per_class = o.per_class or nil,
      levels = levels })
  end, "memory.", "replay")
  if o.insert == "herding" then -- the exemplar sets, class by class in stored order
    self.sets, self.order = {}, {}
    local x, y, tk = self.mem:tensors()
    local rows = {}
    for i, c in ipairs(y:totable()) do
      c = math.tointeger(c)
      if not rows[c] then rows[c] = {}; self.order[#self.order + 1] = c end
      rows[c][#rows[c] + 1] = i
    end
    for _, c in ipairs(self.order) do
      self.sets[c] = { x = x:index(rows[c]):clone(), task = math.tointeger(tk:get(rows[c][1])) }
    end
  end
  return self
end

return setmetatable({ Replay = Replay, append = Replay.append, herd = Replay.herd, exemplars = Replay.exemplars,
  features = Replay.features, feature_layer = Replay.feature_layer, memory_state = Replay.memory_state,
  window_rows = Replay.window_rows,
  load_memory = Replay.load_memory }, { __call = function(_, opts)
  local s = new(opts)
  return s
end })
