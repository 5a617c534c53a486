--- engram.learner: the continual-learning loop (task -> epoch -> batch) and
-- the hook points strategies plug into (docs/strategies.md).
--
--   local L = engram.learner(model, {epochs = 1, batch = 128, lr = 1e-3})
--   L:use(engram.strategies.replay{memory = 1000})
--   local doc = L:run(scenario)          -- a results document (engram.results)
--   engram.results.print(doc)
--
-- Options (defaults in brackets; an unknown key is an error):
--   name ["run"]           the run's name in results
--   optimizer ["adam"]     "adam" | "sgd" | function(model) -> optimiser
--   lr [0.001]             learning rate; momentum [0] for sgd
--   reset_optimizer [true] drop optimiser state at the start of every task
--   epochs [1]             passes over each task's training data
--   iterations [nil]       steps per task instead of epochs (loops the data)
--   batch [128]            minibatch size; eval_batch [1000] for evaluation
--   seed [1]               shuffling and the strategies' generator (ctx.rng)
--   heads [false]          call model:set_head(t) for task t (a MultiHead model)
--   validate [false]       evaluate task.val after every epoch (logged)
--   patience [nil]         early stopping on task.val: stop after this many
--                          epochs without improvement, keep the best weights
--   eval_on ["test"]       "val": fill the accuracy matrix (and FWT's untrained
--                          row, the drift probe) from each task's validation
--                          part instead of its test part, to choose settings
--                          without looking at the test sets (learner.select);
--                          ENGRAM_EVAL_ON=val (set by engram search) forces it
--   reference [false]      also train a fresh copy of the initial model on each
--                          task alone with the same budget (for NAR)
--   drift_layer [auto]     module index of the hidden layer whose activations
--                          on a probe set of task 1 are tracked (mlp: the last
--                          hidden activation); false to skip
--   probe [256]            probe set size for representation drift (for token
--                          windows, tokens: max(1, probe // T) windows)
--   quiet [false]          no progress lines
--   log [nil]              a path or a json.lines writer: JSON Lines events
--   naive [nil]            {acc=, train_seconds=} of a naive run, for CER
--   nonfinite ["stop"]     a loss that is NaN or infinite (divergence, NaN in the
--                          data) stops the run with an error naming the task,
--                          epoch and step; "skip": the batch is skipped (no
--                          step), counted in the results (extra.skipped_batches)
--   checkpoint [false]     a directory: save the run there after every task
--                          (engram.checkpoint, docs/checkpoints.md)
--   resume [false]         continue from the checkpoint there, if there is one
--   start_task [false]     with resume: the task the run must start at
--   stop_task [false]      end the run (an error saying so) after this task
--   checkpoint_every [false]  also save every this many steps inside a task
--
-- The context passed to every hook (one table per run, fields updated in place):
--   learner, model, optimizer, criterion, scenario, opts
--   tasks, T             the scenario's tasks, their number
--   t, task              the current task's index and table
--   epoch, step          epoch within the task, steps taken in the task
--   global_step          steps since the run started
--   train_set            the dataset the task trains on (before_task may replace it)
--   train_parts          nil, or {{ds=, task=}, ...}: batches interleaved from
--                        several tasks, each batch from one (labels/masks of its task)
--   skip_training        set in before_task to skip the task's training
--   stop                 set during training to end the task now
--   task_x, task_y       the stream's batch (borrowed buffers)
--   x, y                 the batch trained on (before_batch may replace them)
--   batch_task           the task whose batch this is
--   batches              the iterator the stream's batch came from (nil in a
--                        phase with data = "none"): batches:indices() gives the
--                        1-based positions of its samples in batches:dataset(),
--                        the key to per-sample side information (feedback,
--                        costs, weights) a recipe keeps beside the dataset
--   sample_tasks         nil, or a tensor [B] of each sample's 0-based task, set in
--                        before_batch by a strategy that adds samples of other
--                        tasks (replay): in task-IL each sample's loss then uses
--                        its own task's classes
--   logits               the model's output for x (borrowed)
--   loss                 the loss value; the loss hook adds penalties to it
--   grad_logits          d loss / d logits (borrowed; the loss hook may add to it)
--   penalty              what loss hooks added this step (a loss hook that adds
--                        to the parameter gradients adds its value here)
--   penalty_grads        only when a strategy sets needs_task_grads = true: from
--                        after_backward on, per group of model:groups(), what the
--                        loss hooks added to the parameter gradients this step
--                        (the task loss's gradient is grads - penalty_grads[i]),
--                        or nil when they added nothing (ctx.penalty == 0)
--   old_model            a frozen copy of the model at the end of the previous
--                        task (only when a strategy sets needs_old_model = true)
--   rng                  an engram generator seeded from the run seed
--   log(event, fields)   writes an event to the log (and keeps it in ctx.events)
--   eval_task            during before_eval / after_eval: the index evaluated
--   acc                  the accuracy matrix so far
--   extra                a table strategies may fill; saved in the results
local core = require("engram.core")

local learner = {}

local Learner = {}
Learner.__index = Learner

learner.HOOKS = {
  "before_run", "before_task", "before_phase", "before_epoch", "before_batch", "loss", "after_backward",
  "after_step", "after_epoch", "after_phase", "after_task", "before_eval", "after_eval", "after_run",
}
local HOOK_SET = {}
for _, h in ipairs(learner.HOOKS) do HOOK_SET[h] = true end

local DEFAULTS = {
  name = "run", optimizer = "adam", lr = 0.001, momentum = 0, reset_optimizer = true, epochs = 1,
  iterations = false, batch = 128, eval_batch = 1000, seed = 1, heads = false, validate = false,
  patience = false, reference = false, drift_layer = "auto", probe = 256, quiet = false, log = false,
  naive = false, eval_on = "test", nonfinite = "stop", checkpoint = false, resume = false, start_task = false,
  stop_task = false, checkpoint_every = false,
}

local function options(opts, level)
  opts = opts or {}
  if type(opts) ~= "table" then error("learner: options must be a table, got " .. type(opts), level + 1) end
  for k in pairs(opts) do
    if DEFAULTS[k] == nil then
      local names = {}
      for n in pairs(DEFAULTS) do names[#names + 1] = n end
      table.sort(names)
      error(string.format("learner: unknown option '%s' (known: %s)", tostring(k), table.concat(names, ", ")),
        level + 1)
    end
  end
  local o = {}
  for k, v in pairs(DEFAULTS) do
    if opts[k] ~= nil then o[k] = opts[k] else o[k] = v end
  end
  for _, k in ipairs { "epochs", "batch", "eval_batch", "probe" } do
    if math.type(o[k]) ~= "integer" or o[k] < 1 then
      error(string.format("learner: %s must be a positive integer, got %s", k, tostring(o[k])), level + 1)
    end
  end
  if o.iterations and (math.type(o.iterations) ~= "integer" or o.iterations < 1) then
    error("learner: iterations must be a positive integer, got " .. tostring(o.iterations), level + 1)
  end
  if o.patience and (math.type(o.patience) ~= "integer" or o.patience < 1) then
    error("learner: patience must be a positive integer, got " .. tostring(o.patience), level + 1)
  end
  if type(o.lr) ~= "number" or o.lr ~= o.lr or o.lr <= 0 or o.lr == math.huge then
    error("learner: lr must be a positive finite number, got " .. tostring(o.lr), level + 1)
  end
  if o.nonfinite ~= "stop" and o.nonfinite ~= "skip" then
    error("learner: nonfinite must be 'stop' or 'skip', got " .. tostring(o.nonfinite), level + 1)
  end
  -- `engram search` scores on validation parts only, whatever the recipe asked for
  local env = os.getenv("ENGRAM_EVAL_ON")
  if env == "val" then o.eval_on = "val" elseif env and env ~= "" and env ~= "test" then
    error("learner: ENGRAM_EVAL_ON must be 'val' or 'test', got '" .. env .. "'", level + 1)
  end
  if o.eval_on ~= "test" and o.eval_on ~= "val" then
    error("learner: eval_on must be 'test' or 'val', got " .. tostring(o.eval_on), level + 1)
  end
  local opt = o.optimizer
  if opt ~= "adam" and opt ~= "sgd" and type(opt) ~= "function" then
    error("learner: optimizer must be 'adam', 'sgd' or a function(model) -> optimiser, got " .. tostring(opt),
      level + 1)
  end
  require("engram.checkpoint").check_options(o, level + 1)
  return o
end

--- A new learner for model (see the header for opts).
function learner.new(model, opts)
  if type(model) ~= "table" or type(model.forward) ~= "function" or type(model.backward) ~= "function" then
    error("learner: expected a model (forward/backward) as argument 1", 2)
  end
  local o = options(require("engram.checkpoint").learner_options(opts), 2)
  return setmetatable({ model = model, opts = o, strategies = {} }, Learner)
end

setmetatable(learner, { __call = function(_, model, opts)
  local ok, l = pcall(learner.new, model, opts)
  if not ok then error(l, 2) end
  return l
end })

--- Checks that s is a strategy: a table whose function fields named like
-- hooks are hooks; returns s.
function learner.check_strategy(s, level)
  if level ~= nil and math.type(level) ~= "integer" then level = 1 end
  if type(s) ~= "table" then
    error("use: a strategy must be a table of hooks, got " .. type(s), (level or 1) + 1)
  end
  local any = false
  for k, v in pairs(s) do
    if HOOK_SET[k] then
      if type(v) ~= "function" then error("use: hook '" .. k .. "' must be a function", (level or 1) + 1) end
      any = true
    end
  end
  local mt = getmetatable(s)
  if mt and type(mt.__index) == "table" then
    for _, h in ipairs(learner.HOOKS) do
      if type(mt.__index[h]) == "function" then any = true end
    end
  end
  if not any and not s.name then
    error("use: the table has no hook (" .. table.concat(learner.HOOKS, ", ") .. ")", (level or 1) + 1)
  end
  return s
end

--- Adds a strategy; hooks run in the order strategies were added. opts.tasks
-- makes it act only in some tasks (see engram.schedule.tasks) while it
-- observes every task (after_task, evaluation hooks) unless opts.observe is
-- false (engram.schedule: act and observe). Returns self.
function Learner:use(s, opts)
  learner.check_strategy(s, 2)
  if opts ~= nil then
    if type(opts) ~= "table" then error("use: options must be a table", 2) end
    for k in pairs(opts) do
      if k ~= "tasks" and k ~= "observe" then
        error("use: unknown option '" .. tostring(k) .. "' (known: observe, tasks)", 2)
      end
    end
    if opts.observe ~= nil and opts.tasks == nil then error("use: observe needs tasks", 2) end
    if opts.tasks ~= nil then
      local ok, w = pcall(require("engram.schedule").only, s, opts.tasks, { observe = opts.observe })
      if not ok then error(w, 2) end
      s = w
    end
  end
  if s.is_plan then
    for _, x in ipairs(self.strategies) do
      if x.is_plan then error("use: the learner has a plan already (one plan per learner; put phases in it)", 2) end
    end
    self._plan = s
  end
  self.strategies[#self.strategies + 1] = s
  return self
end

-- Calls hook h of every strategy, in order.
local function dispatch(self, h, ctx)
  local list = self._hooks[h]
  for i = 1, #list do
    local s = list[i]
    s[h](s, ctx)
  end
end

-- ------------------------------------------------------------- evaluation

local function count_correct(logits, y, active)
  local loss = require("engram.loss")
  local _, n = loss.accuracy(logits, y, active)
  return n
end

local function check_task(task, who)
  if type(task) ~= "table" or math.type(task.index) ~= "integer" then
    error(string.format("%s: expected a task of a scenario, got %s", who, type(task)), 3)
  end
end

-- targets and active without the argument checks, for the loops below
-- (training steps, evaluation chunks) that call them with known tasks.
local function targets_of(self, task, y)
  local map = (self._head_maps and self._head_maps[task.index]) or task.label_map
  if map then return y:relabel_(map) end
  return y
end
local function active_of(self, task)
  if self._head_maps then return nil end
  return task.active
end

local loop = require("engram.learner_loop") { dispatch = dispatch, targets_of = targets_of, active_of = active_of }
local make_optimizer, train_task, train_phases = loop.make_optimizer, loop.train_task, loop.train_phases
local DEFAULT_PHASE = loop.DEFAULT_PHASE

--- (Internal) The optimiser of a plan's phase that names its own (engram.checkpoint saves it).
function Learner:_phase_optimizer(ph) return loop.phase_optimizer(self, ph) end

--- The labels the model is trained and tested on for a batch y of `task`
-- (the scenario's label map, or with compact per-task heads the class's
-- position in its task). May change y in place; returns the labels.
function Learner:targets(task, y)
  check_task(task, "targets")
  if not core.istensor(y) then error("targets: the labels must be a tensor, got " .. type(y), 2) end
  return targets_of(self, task, y)
end

-- The strategy that turns test batches into predicted classes (the PREDICTION
-- HOOK, docs/strategies.md): the last one added with a predict method, or nil
-- (argmax of the logits over the task's classes).
function Learner:_predictor()
  local found
  for _, s in ipairs(self.strategies) do
    if type(s.predict) == "function" then found = s end
  end
  return found
end

--- The output units the loss and the accuracy are restricted to for `task`
-- (task-IL masks; nil when all count, as with compact per-task heads).
function Learner:active(task)
  check_task(task, "active")
  return active_of(self, task)
end

--- Accuracy of the model on a task's test set (or `ds` with the task's labels and mask).
-- On a dataset of token windows (targets y [N, T], engram.text) the accuracy
-- is next-token accuracy over every position, and a second value is the mean
-- cross-entropy per token in nats (perplexity = exp of it); eval_batch then
-- counts tokens (chunks of max(1, eval_batch // T) windows).
function Learner:evaluate(task, ds)
  check_task(task, "evaluate")
  local model, o = self.model, self.opts
  ds = ds or task.test
  if not require("engram.data").is_dataset(ds) then
    error("evaluate: expected a dataset to evaluate on, got " .. type(ds), 2)
  end
  if o.heads then model:set_head(task.index) end
  local was_training = model.training
  if model.evaluate then model:evaluate() end
  local correct, n, active = 0, 0, active_of(self, task)
  local predictor = self:_predictor()
  local window = require("engram.core")._text.window(ds)
  local ce, nll = nil, window and 0 or nil
  if window then
    self._eval_ce = self._eval_ce or require("engram.loss").CrossEntropy()
    ce = self._eval_ce
    ce:set_active(active)
  end
  local batch = window and math.max(1, o.eval_batch // window) or o.eval_batch
  for x, y in ds:chunks { batch = batch, flat = true } do
    y = targets_of(self, task, y)
    if window then y = y:view(-1) end
    local logits = model:forward(x)
    if predictor then
      local pred = predictor:predict(x, logits, task, active)
      if not core.istensor(pred) or pred:numel() ~= y:size(1) then
        error(string.format("evaluate: %s's predict returned %s, expected a tensor of %d class ids",
          tostring(predictor.name), core.istensor(pred) and (pred:numel() .. " values") or type(pred), y:size(1)), 2)
      end
      correct = correct + math.tointeger(pred:view(-1):eq(y):sum())
    else
      correct = correct + count_correct(logits, y, active)
    end
    if ce then nll = nll + ce:forward(logits, y) * y:size(1) end
    n = n + y:size(1)
  end
  if was_training ~= false and model.train then model:train() end
  return n > 0 and correct / n or 0, nll and n > 0 and nll / n or nil
end

-- ------------------------------------------------------------- helpers

local function default_drift_layer(model)
  local mods = rawget(model, "modules")
  if type(mods) ~= "table" or #mods < 2 then return nil end
  -- the output of the module feeding the last layer: the last hidden activation
  return #mods - 1
end

local function hidden(model, x, k)
  model:forward(x)
  local m = model.modules[k]
  return m and m.output
end

-- Checks the model against the scenario before any training: one forward on
-- a few test samples of task 1 must give num_classes outputs.
local function check_model(self, scenario)
  local model, o = self.model, self.opts
  local task = scenario.tasks[1]
  if o.heads then
    if not pcall(model.set_head, model, 1) then
      error("learner: heads = true needs a model with a MultiHead (model:set_head)", 3)
    end
  end
  local x = (o.eval_on == "val" and task.val or task.test):chunks { batch = 2, flat = true }:next()
  local ok, out = pcall(model.forward, model, x)
  if not ok then error("learner: the model cannot take the scenario's inputs: " .. tostring(out), 3) end
  local width = out:dim() == 2 and out:size(2) or -1
  local need = scenario.num_classes
  self._head_maps = nil
  if o.heads and width ~= need then
    -- compact heads: each task's classes become 0..k-1 on its own head
    local maps = {}
    for t, tk in ipairs(scenario.tasks) do
      local k = #(tk.targets or tk.classes)
      if width ~= k then
        error(string.format("learner: head 1 outputs %d values per sample; per-task heads need %d (all classes) " ..
          "or task %d's %d classes", width, need, t, k), 3)
      end
      local pos = {}
      for i, c in ipairs(tk.targets or tk.classes) do pos[c] = i - 1 end
      local C = 0
      for _, c in ipairs(tk.classes) do C = math.max(C, c + 1) end
      C = math.max(C, need)
      local m = core.zeros(C)
      local src = tk.label_map
      for c = 0, C - 1 do
        local tc = src and (c < src:numel() and src:get(c + 1) or c) or c
        m:set(c + 1, pos[math.tointeger(tc)] or 0)
      end
      maps[t] = m
    end
    self._head_maps = maps
  elseif not o.heads and width ~= need then
    error(string.format("learner: the model outputs %d values per sample but the scenario (%s, %s-IL) has %d classes",
      width, scenario.name, scenario.kind, need), 3)
  end
  -- task-IL with masked logits: each task's classes, for batches that mix tasks
  self._task_masks = nil
  if not o.heads and scenario.kind == "task" then
    local masks = core.zeros(#scenario.tasks, need)
    for t, tk in ipairs(scenario.tasks) do
      for _, c in ipairs(tk.active or {}) do masks:set(t, c + 1, 1) end
    end
    self._task_masks = masks
  end
end

-- Trains a fresh copy of the initial model on task j alone with the same
-- budget and no strategies; returns its test accuracy (NAR's A_j).
local function reference_accuracy(self, init_model, scenario, j)
  local model = init_model:clone()
  local o = {}
  for k, v in pairs(self.opts) do o[k] = v end
  o.quiet, o.log, o.reference, o.drift_layer, o.name = true, false, false, false, "reference"
  o.checkpoint, o.resume, o.start_task, o.stop_task = false, false, false, false
  local ref = learner.new(model, o)
  local sub = { name = scenario.name, kind = scenario.kind, num_classes = scenario.num_classes,
    tasks = { scenario.tasks[j] }, mixable = scenario.mixable }
  ref:_prepare_hooks()
  local ctx = ref:_context(sub)
  ctx.t, ctx.task, ctx.train_set = 1, scenario.tasks[j], scenario.tasks[j].train
  ctx.optimizer = make_optimizer(model, o)
  ctx.phase, ctx.phase_index = DEFAULT_PHASE, 1
  train_task(ref, ctx, require("engram.progress").new { quiet = true }, DEFAULT_PHASE)
  return ref:evaluate(scenario.tasks[j], o.eval_on == "val" and scenario.tasks[j].val or nil)
end

function Learner:_prepare_hooks()
  local hooks = {}
  for _, h in ipairs(learner.HOOKS) do
    local list = {}
    for _, s in ipairs(self.strategies) do
      if type(s[h]) == "function" then list[#list + 1] = s end
    end
    hooks[h] = list
  end
  self._hooks = hooks
end

function Learner:_context(scenario)
  local o = self.opts
  local events, writer = {}, nil
  if o.log then
    if type(o.log) == "string" then
      writer = require("engram.json").lines(o.log)
    else
      writer = o.log
    end
  end
  local ctx = {
    learner = self, model = self.model, scenario = scenario, opts = o, tasks = scenario.tasks, T = #scenario.tasks,
    t = 0, epoch = 0, step = 0, global_step = 0, rng = core.generator(o.seed * 7 + 3), extra = {}, events = events,
    criterion = require("engram.loss").CrossEntropy(), train_seconds = 0, eval_seconds = 0, acc = {},
  }
  local name = o.name
  function ctx.log(event, fields)
    local e = { event = event, run = name, time = os.time() }
    for k, v in pairs(fields or {}) do e[k] = v end
    if e.loss ~= nil and e.loss ~= e.loss then e.loss = nil end
    events[#events + 1] = e
    if writer then writer:write(e) end
  end
  ctx._writer = writer
  return ctx
end

local function describe_strategy(s)
  local d
  if type(s.describe) == "function" then
    d = s:describe()
  else
    local opts = {}
    for k, v in pairs(s.options or {}) do
      local tv = type(v)
      if tv == "number" or tv == "string" or tv == "boolean" then opts[k] = v end
    end
    d = { name = s.name or "custom", options = opts }
  end
  -- what the strategy keeps (importances and anchors, a memory), in bytes
  if type(d) == "table" and type(s.state_bytes) == "function" and d.state_bytes == nil then
    d.state_bytes = s:state_bytes()
  end
  return d
end

-- The accuracies of every task after training task t: acc[t][j], before_eval
-- and after_eval around each; then representation drift on the probe set.
local function evaluate_all(self, ctx, r, t)
  local model, acc = self.model, ctx.acc
  local te = core.clock()
  acc[t] = {}
  for j, tj in ipairs(r.scenario.tasks) do
    ctx.eval_task = j
    dispatch(self, "before_eval", ctx)
    local nll
    acc[t][j], nll = self:evaluate(tj, r.eval_set(tj))
    if nll then
      ctx.perplexity = ctx.perplexity or {}
      ctx.perplexity[t] = ctx.perplexity[t] or {}
      ctx.perplexity[t][j] = math.exp(nll)
    end
    dispatch(self, "after_eval", ctx)
  end
  ctx.eval_task = nil
  if r.probe then
    model:evaluate()
    local h = hidden(model, r.probe, r.layer)
    if h then
      if not r.h1 then
        r.h1 = h:clone()
        r.drift[t] = 0
      else
        r.drift[t] = require("engram.metrics").activation_drift(h, r.h1)
      end
    end
    model:train()
  end
  ctx.eval_seconds = ctx.eval_seconds + (core.clock() - te)
end

--- Starts a run on the scenario without training: checks it, runs before_run
-- and evaluates the untrained model. Then learner:step() trains one task at a
-- time and learner:finish() gives the results document; learner:run(scenario)
-- does all three. Returns self.
function Learner:start(scenario)
  local scen = require("engram.scenarios")
  if not scen.is_scenario(scenario) and not (type(scenario) == "table" and type(scenario.tasks) == "table") then
    error("start: expected a scenario (engram.scenarios.split/permuted/rotated)", 2)
  end
  local T = #scenario.tasks
  if T == 0 then error("start: the scenario has no tasks", 2) end
  for t, task in ipairs(scenario.tasks) do
    if #task.train == 0 then error(string.format("start: task %d has no training samples", t), 2) end
    if #task.test == 0 then error(string.format("start: task %d has no test samples", t), 2) end
    if self.opts.eval_on == "val" and (not task.val or #task.val == 0) then
      error(string.format("start: eval_on = 'val' but task %d has no validation part " ..
        "(give the scenario a validation share, e.g. validation = 0.1)", t), 2)
    end
  end
  check_model(self, scenario)
  local o, model = self.opts, self.model
  if o.checkpoint_every then require("engram.checkpoint").check_inside(self) end
  local r = { scenario = scenario, T = T, next = 1, drift = {}, per_task = {} }
  function r.eval_set(task) return o.eval_on == "val" and task.val or task.test end
  self:_prepare_hooks()
  local ctx = self:_context(scenario)
  self.ctx, self._r = ctx, r
  r.prog = require("engram.progress").new { quiet = o.quiet }
  require("engram.strategies.defaults").class_il_note(ctx, r.prog)
  r.t_start = core.clock()
  r.init_model = o.reference and model:clone() or nil
  dispatch(self, "before_run", ctx)
  ctx.optimizer = make_optimizer(model, o)
  -- the untrained model's accuracies (FWT's b)
  local te = core.clock()
  local untrained, untrained_ppl = {}, nil
  for j, task in ipairs(scenario.tasks) do
    local nll
    untrained[j], nll = self:evaluate(task, r.eval_set(task))
    if nll then
      untrained_ppl = untrained_ppl or {}
      untrained_ppl[j] = math.exp(nll)
    end
  end
  ctx.untrained_perplexity = untrained_ppl
  ctx.eval_seconds = ctx.eval_seconds + (core.clock() - te)
  ctx.untrained = untrained
  -- representation drift on a probe set of task 1
  local layer = o.drift_layer
  if layer == "auto" then layer = default_drift_layer(model) end
  if layer then
    local set = r.eval_set(scenario.tasks[1])
    -- token windows: probe counts tokens, as eval_batch does (max(1, probe // T) windows)
    local win = core._text.window(set)
    local n = win and math.max(1, o.probe // win) or o.probe
    r.layer, r.probe = layer, set:range(1, math.min(n, #set), nil, nil, true)
  end
  for _, s in ipairs(self.strategies) do
    if s.needs_old_model then r.need_old = true end
    if s.needs_task_grads then ctx._task_grads, ctx._penalty_bufs = true, {} end
  end
  if o.checkpoint then require("engram.checkpoint").begin(self) end
  return self
end

--- The representation drift of the probe set now, against the end of task 1
-- (nil before task 1 ended or without a probe): what a plan's rule reads.
function Learner:_drift_now()
  local r = self._r
  if not r or not r.probe or not r.h1 then return nil end
  local model = self.model
  local was = model.training
  model:evaluate()
  local h = hidden(model, r.probe, r.layer)
  if was ~= false then model:train() end
  if not h then return nil end
  return (require("engram.metrics").activation_drift(h, r.h1))
end

local function running(self, who)
  local r = self._r
  if not r then error(who .. ": no run in progress (call learner:start(scenario) first)", 3) end
  return r
end

--- Trains the next task of the run begun by learner:start (before_task,
-- training, after_task), then evaluates every task. Returns the task's index
-- and its row of the accuracy matrix, or nil when every task is done.
function Learner:step()
  local r = running(self, "step")
  local t = r.next
  if t > r.T then return nil end
  local ctx, o, model = self.ctx, self.opts, self.model
  local task = r.scenario.tasks[t]
  ctx.t, ctx.task, ctx.train_set, ctx.train_parts, ctx.skip_training = t, task, task.train, nil, false
  if ctx._task_grads then ctx._task_groups, ctx.penalty_grads = model:groups(), nil end
  ctx.epoch, ctx.step = 0, 0
  ctx.criterion:set_active(self:active(task))
  if o.heads then model:set_head(t) end
  -- resumed from a checkpoint made inside task t (engram.checkpoint): the
  -- strategies' resume_task instead of before_task, whose work is in their state
  local inside = r.resume_at
  if o.reset_optimizer and t > 1 and ctx.optimizer.reset and not inside then ctx.optimizer:reset() end
  ctx.log(inside and "task_resume" or "task_start", { task = t, name = task.name, step = inside and inside.step })
  local t0 = ctx.train_seconds
  if inside then
    for _, s in ipairs(self.strategies) do
      if type(s.resume_task) == "function" then s:resume_task(ctx) end
    end
  else
    dispatch(self, "before_task", ctx)
  end
  if not ctx.skip_training then train_phases(self, ctx, r.prog) end
  local ta = core.clock()
  dispatch(self, "after_task", ctx)
  ctx.train_seconds = ctx.train_seconds + (core.clock() - ta)
  if r.need_old then
    ctx.old_model = model:clone()
    if ctx.old_model.evaluate then ctx.old_model:evaluate() end
  end
  evaluate_all(self, ctx, r, t)
  local acc, T = ctx.acc, r.T
  local avg = 0
  for j = 1, t do avg = avg + acc[t][j] end
  avg = avg / t
  r.per_task[t] = { train_seconds = ctx.train_seconds - t0, avg_acc = avg }
  ctx.log("task_end", { task = t, acc = acc[t], avg_acc = avg, seconds = ctx.train_seconds - t0,
    perplexity = ctx.perplexity and ctx.perplexity[t] or nil,
    drift = r.drift[t] })
  if not o.quiet then
    local row = {}
    for j = 1, T do row[j] = string.format("%.1f", 100 * acc[t][j]) end
    local ppl = ctx.perplexity and ctx.perplexity[t]
    local prow = {}
    for j = 1, ppl and T or 0 do prow[j] = string.format("%.2f", ppl[j]) end
    r.prog:message(string.format("%s  after task %d/%d: avg %.1f%%  [%s]%s", o.name, t, T, 100 * avg,
      table.concat(row, " "), ppl and ("  perplexity [" .. table.concat(prow, " ") .. "]") or ""))
  end
  r.next = t + 1
  if o.checkpoint then require("engram.checkpoint").after_task(self, t) end
  return t, acc[t]
end

--- Ends the run begun by learner:start once every task is trained: runs
-- after_run (and the per-task references with reference = true) and returns
-- the results document (engram.results.new).
function Learner:finish()
  local r = running(self, "finish")
  if r.next <= r.T then
    error(string.format("finish: task %d of %d is not trained yet (call learner:step() until it returns nil)",
      r.next, r.T), 2)
  end
  local ctx, o, model, T, scenario = self.ctx, self.opts, self.model, r.T, r.scenario
  self._r = nil
  dispatch(self, "after_run", ctx)
  -- per-task references for NAR
  local reference_acc, reference
  if r.init_model then
    reference_acc = {}
    local tr = core.clock()
    for j = 1, T do reference_acc[j] = reference_accuracy(self, r.init_model, scenario, j) end
    reference = string.format("scratch: a fresh copy of the initial model trained on each task alone " ..
      "(%s, same budget: %s, batch %d, lr %g, %s), %.1fs", o.name,
      o.iterations and (o.iterations .. " steps") or (o.epochs .. " epochs"), o.batch, o.lr,
      type(o.optimizer) == "string" and o.optimizer or "custom optimiser", core.clock() - tr)
  end
  if ctx._writer and type(o.log) == "string" then ctx._writer:close() end
  local strategies = {}
  for i, s in ipairs(self.strategies) do strategies[i] = describe_strategy(s) end
  local sd = scenario.describe and scenario:describe() or { name = scenario.name, kind = scenario.kind }
  local extra = ctx.extra
  extra.drift = r.drift[2] and r.drift or nil
  extra.drift_layer = r.probe and r.layer or nil
  extra.per_task = r.per_task
  extra.total_seconds = core.clock() - r.t_start
  extra.options = { epochs = o.epochs, iterations = o.iterations or nil, batch = o.batch, lr = o.lr,
    optimizer = type(o.optimizer) == "string" and o.optimizer or "custom", heads = o.heads or nil,
    patience = o.patience or nil, eval_on = o.eval_on == "val" and "val" or nil }
  extra.total_params = model:numel()
  extra.skipped_batches = ctx.skipped
  local results = require("engram.results")
  local doc = results.new {
    name = o.name, seed = o.seed, acc = ctx.acc, baseline_acc = ctx.untrained,
    scenario = { name = sd.name, kind = sd.kind .. "-IL", tasks = T,
      details = { num_classes = sd.num_classes, tasks = sd.tasks, options = sd.options } },
    strategies = strategies, reference_acc = reference_acc, reference = reference,
    naive = o.naive or nil, train_seconds = ctx.train_seconds, eval_seconds = ctx.eval_seconds,
    trainable_params = model:numel { trainable = true }, extra = extra,
    perplexity = ctx.perplexity, baseline_perplexity = ctx.untrained_perplexity,
  }
  return doc
end

--- Runs the scenario: learner:start(scenario), learner:step() for every
-- task, learner:finish(). Returns the run's results document.
function Learner:run(scenario)
  local ok, e = pcall(self.start, self, scenario)
  if not ok then error((tostring(e):gsub("^start: ", "run: ")), 2) end
  while self:step() do end
  return self:finish()
end

-- Several runs at once (with_naive, compare, select): engram.runs.
require("engram.runs").install(learner)

learner.Learner = Learner
return learner
