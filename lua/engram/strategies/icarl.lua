--- iCaRL (Rebuffi et al. 2017): exemplars chosen by herding, a classifier by
-- the nearest mean of exemplars, and distillation on the old classes.
--
--   learner:use(engram.strategies.icarl{memory = 1000})
--
-- After each task (after_task), the features of the task's training samples
-- (the output of the module before the last, L2-normalised) choose each new
-- class's exemplars by herding in C (engram.cl.herding: the running mean of
-- the chosen stays closest to the class mean), and every class keeps the
-- first memory / classes-seen of its own (herding's order makes a prefix the
-- best smaller set). The exemplars live in a C memory (engram.cl.memory) and
-- are replayed with every batch (as replay does, each with its task in
-- ctx.sample_tasks); from task 2 on the loss adds α · T² · KL(old ‖ new) over
-- the old classes on the whole batch, the previous model as the teacher
-- (needs_old_model). At evaluation (the learner's prediction hook) a sample
-- is given the class whose mean exemplar feature, computed with the model of
-- the end of the last task, is nearest to its own (cosine), among the
-- classes seen (in task-IL, the task's classes).
--
-- Options (defaults in brackets):
--   memory [1000]   exemplars in all
--   alpha [1]       weight of the distillation
--   T [2]           its temperature
--   nme [true]      predict by the nearest mean of exemplars (false: the logits)
--   layer [auto]    the module whose output is the feature (auto: the one
--                   before the last of a Sequential)
local core = require("engram.core")
local cl = require("engram.cl")
local loss = require("engram.loss")
local strategies = require("engram.strategies")
local replay = require("engram.strategies.replay")

local ICaRL = {}
ICaRL.__index = ICaRL
ICaRL.needs_old_model = true

local function new(opts)
  local o = strategies.options("icarl", opts, { memory = 1000, alpha = 1, T = 2, nme = true, layer = "auto" }, 3)
  if math.type(o.memory) ~= "integer" or o.memory < 1 then
    error("icarl: memory must be a positive integer, got " .. tostring(o.memory), 3)
  end
  if type(o.alpha) ~= "number" or o.alpha ~= o.alpha or o.alpha < 0 or o.alpha == math.huge then
    error("icarl: alpha must be a finite number >= 0, got " .. tostring(o.alpha), 3)
  end
  if type(o.T) ~= "number" or o.T ~= o.T or o.T <= 0 or o.T == math.huge then
    error("icarl: temperature T must be a finite number > 0, got " .. tostring(o.T), 3)
  end
  if o.layer ~= "auto" and math.type(o.layer) ~= "integer" then
    error("icarl: layer must be 'auto' or a module index, got " .. tostring(o.layer), 3)
  end
  return setmetatable({ name = "icarl", options = o, _px = {}, _py = {}, _bx = core.zeros(0), _by = core.zeros(0),
    _bt = core.zeros(0) }, ICaRL)
end

function ICaRL:describe()
  local o = self.options
  return { name = "icarl", options = { memory = o.memory, alpha = o.alpha, T = o.T, nme = o.nme } }
end

function ICaRL:before_run(ctx)
  self.sets, self.order, self.mem, self.means, self.mean_classes = {}, {}, nil, nil, nil
  self._for, self._kd = nil, nil
  self.gen = ctx.rng
end

local function feature_layer(self, model)
  return replay.feature_layer(model, self.options.layer, "icarl")
end

-- Features of x, L2-normalised rows (a new tensor).
local function features(self, model, x)
  return replay.features(model, x, self.options.layer, "icarl")
end

-- Replays exemplars with every batch (as replay does).
function ICaRL:before_batch(ctx)
  local mem = self.mem
  if not mem or #mem == 0 then return end
  replay.append(self, ctx, mem:sample(math.min(ctx.x:size(1), #mem), self.gen))
end

-- Distillation on the old classes from the model before the task.
function ICaRL:loss(ctx)
  if ctx.t == 1 or not ctx.old_model or self.options.alpha == 0 then return end
  if self._for ~= ctx.t then
    local old = {}
    for _, c in ipairs(self.order) do old[#old + 1] = c end
    table.sort(old)
    self._for, self._kd = ctx.t, #old > 0 and loss.KLDistill { T = self.options.T, active = old } or nil
  end
  if not self._kd then return end
  local v, g = self._kd:forward_backward(ctx.logits, ctx.old_model:forward(ctx.x))
  ctx.grad_logits:add_(g, self.options.alpha)
  ctx.loss = ctx.loss + self.options.alpha * v
  ctx.penalty = ctx.penalty + self.options.alpha * v
end

-- The class means (cosine geometry) of the exemplars, with the model of now.
local function take_means(self, model)
  local sorted = {}
  for _, c in ipairs(self.order) do sorted[#sorted + 1] = c end
  table.sort(sorted)
  local means = {}
  for i, c in ipairs(sorted) do
    local f = features(self, model, self.sets[c].x):mean(1):view(1, -1)
    means[i] = f:div_(f:norm(2):clamp_(1e-12, math.huge))
  end
  self.means, self.mean_classes = core.cat(means, 1), sorted
  self._mean_ids = core.tensor(sorted)
end

function ICaRL:after_task(ctx)
  local model = ctx.model
  local was_training = model.training
  -- old classes keep the first m of theirs; new ones get m by herding
  local m, classes = replay.herd(ctx, self.sets, self.order, function(C)
    local q = self.options.memory // C
    if q < 1 then error(string.format("icarl: %d exemplars cannot hold %d classes", self.options.memory, C), 0) end
    return q
  end, self.options.layer, "icarl")
  -- the memory holds every exemplar, and the class means are taken now
  local EX, EY, ET = replay.exemplars(self.sets, self.order)
  if not self.mem then self.mem = cl.memory(self.options.memory, { dim = EX:size(2) }) end
  self.mem:load(EX, EY, ET)
  self._C = model:forward(EX:narrow(1, 1, 1)):size(2)
  take_means(self, model)
  ctx.extra.icarl = { exemplars = EX:size(1), per_class = m, classes = classes }
  if was_training ~= false then model:train() end
end

--- The prediction hook: the class of the nearest mean exemplar feature.
function ICaRL:predict(_, logits, _, active)
  if not self.options.nme or not self.means then
    local masked = logits:clone()
    if active then
      local keep = core.zeros(logits:size(2))
      for _, c in ipairs(active) do keep:set(c + 1, 1) end
      masked:add_(keep:sub(1):mul(1e30))
    end
    return masked:argmax(2):view(-1):sub(1)
  end
  -- the learner ran model:forward(x): the feature module holds x's features
  local mods = rawget(self._model or {}, "modules")
  local f
  if mods then
    local out = mods[feature_layer(self, self._model)].output
    f = out:contiguous():view(out:size(1), -1):clone()
    f:div_(f:norm(2, 2):clamp_(1e-12, math.huge):view(-1, 1))
  end
  local sim = f:mm(self.means:t()) -- cosine similarity to each class mean [B, k]
  local allowed = {}
  for i, c in ipairs(self.mean_classes) do
    allowed[i] = true
    if active then
      allowed[i] = false
      for _, a in ipairs(active) do if a == c then allowed[i] = true end end
    end
  end
  for i, ok in ipairs(allowed) do
    if not ok then sim:narrow(2, i, 1):fill_(-math.huge) end
  end
  -- the nearest mean's position (1-based) -> its class id, in one C call
  return sim:argmax(2):view(-1):sub_(1):relabel_(self._mean_ids)
end

-- The model the prediction hook reads features from (the run's).
function ICaRL:before_task(ctx)
  self._model = ctx.model
end
ICaRL.observe_hooks = { before_task = true }
-- resuming inside a task (engram.checkpoint): exemplars, means and memory are in state()
ICaRL.resume_task = ICaRL.before_task

--- The state as named tensors: each class's exemplars (in herding order),
-- the class means, and the memory (memory.x, .y, .task, .weights, .order,
-- .seen) they are replayed from.
function ICaRL:state()
  local out = replay.memory_state(self.mem)
  for _, c in ipairs(self.order or {}) do out["exemplars.class" .. c] = self.sets[c].x end
  if self.means then
    out.class_means = self.means
    out.class_ids = self._mean_ids
  end
  return out
end

--- Restores what state() gave: the exemplar sets, the class means and the
-- memory (the same draws from the same generator).
function ICaRL:load_state(t)
  if next(t) == nil then -- saved inside the first task: no exemplars yet
    self.mem, self.sets, self.order, self.means, self.mean_classes = nil, {}, {}, nil, nil
    return self
  end
  self.mem = replay.load_memory(self.mem, t, function(dim)
    return cl.memory(self.options.memory, { dim = dim })
  end, "memory.", "icarl")
  self.sets, self.order = {}, {}
  local _, y, tk = self.mem:tensors()
  local task_of = {}
  for i, c in ipairs(y:totable()) do
    c = math.tointeger(c)
    if not task_of[c] then task_of[c] = math.tointeger(tk:get(i)); self.order[#self.order + 1] = c end
  end
  for _, c in ipairs(self.order) do
    local x = t["exemplars.class" .. c]
    if not x then error("icarl: load_state needs the tensor 'exemplars.class" .. c .. "'", 2) end
    self.sets[c] = { x = x:clone(), task = task_of[c] }
  end
  if t.class_means then
    self.means, self._mean_ids = t.class_means:clone(), t.class_ids:clone()
    self.mean_classes = {}
    for i, c in ipairs(self._mean_ids:totable()) do self.mean_classes[i] = math.tointeger(c) end
  end
  return self
end

return setmetatable({ ICaRL = ICaRL }, { __call = function(_, opts)
  local s = new(opts)
  return s
end })
