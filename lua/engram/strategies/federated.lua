--- Federated averaging (FedAvg, McMahan et al. 2017) in one process: every
-- task's training data is split across K simulated clients with non-IID
-- label skew (federated.split: Dirichlet(alpha) over the task's classes, or
-- a few classes per client), and the task trains for R rounds; in a round
-- every client starts from the global model, trains it on its own share
-- alone for E local epochs (or S local steps) with a fresh optimiser state,
-- and the server replaces the global model by the clients' models averaged
-- with weights n_k / n (their sample counts). The data never pools: only
-- parameters are averaged.
--
--   L:use(S.heads{})
--   L:use(S.adapters{bottleneck = 16}, {tasks = "2-"})
--   L:use(S.federated{clients = 4, alpha = 0.5, rounds = 5})    -- last
--
-- The clients take turns on the one model: before each client the trainable
-- parameter arenas are reset to the global model's, and each client's change
-- is added, weighted, to one accumulator per group (federated.averager):
-- memory is two copies of the trainable parameters whatever K, and nothing
-- is allocated per batch. Only trainable groups are averaged (a frozen base
-- or another task's adapters are identical on every client anyway), and the
-- average is taken over the changes, global + sum_k w_k (theta_k - global),
-- so an element no client changed (a masked one) stays bit for bit. With
-- one client the model keeps the client's parameters: 1 client, 1 round and
-- E local epochs is plain training with E epochs, bit for bit.
--
-- Composition. federated runs the task's training in its before_task and
-- sets ctx.skip_training, so it must be added after every strategy with a
-- before_task (isolation: heads, adapters, lora, freeze, progressive; joint,
-- cumulative), which then shape the model and the training set it splits.
-- The training hooks of the other strategies (before_batch, loss,
-- after_backward, after_step) run inside every client's local steps: EWC's
-- penalty, LwF's distillation, A-GEM's projection, a shared replay memory
-- (a server-side memory of all clients' data). Refused with an error: SI
-- (needs_task_grads: the learner's per-step penalty gradients), strategies
-- with before_epoch/after_epoch hooks, and ctx.train_parts (joint in task-IL).
-- memory = m gives every client a reservoir memory of m samples of its own
-- past tasks, replayed with its batches (data stays on its site).
-- The learner's epochs/iterations, validation and patience apply only to the
-- tasks federated does not act in (rounds and local epochs replace them);
-- the learner's batch size and optimiser are the clients'.
--
-- Options: clients [4], alpha [0.5] (Dirichlet concentration: small = each
-- client holds few classes; math.huge = equal shares), classes [false] (each
-- client holds only this many of the task's classes, instead of alpha),
-- rounds [5], local_epochs [1], local_steps [false] (steps per client and
-- round instead of epochs), memory [0] (per-client replay), min_samples [1]
-- (a client with fewer: the split is drawn again, up to 100 times), seed
-- [the learner's] (the splits: task t's is drawn from seed and t alone).
-- During the local steps ctx.federated = {round =, client =, step =} (the
-- client's step in the round) tells the other hooks where they are.
-- ctx.extra.federated: the options, per task each client's sample count and
-- class counts (in the task's class order), and each round's mean loss.
local core = require("engram.core")
local strategies = require("engram.strategies")

local federated = {}

-- ------------------------------------------------------------- the split

-- A Gamma(a, 1) draw (Marsaglia & Tsang 2000; a < 1 by Gamma(a + 1) U^(1/a)).
local function gamma(gen, a)
  if a < 1 then return gamma(gen, a + 1) * gen:uniform() ^ (1 / a) end
  local d = a - 1 / 3
  local c = 1 / math.sqrt(9 * d)
  while true do
    local x, v
    repeat
      x = gen:normal()
      v = 1 + c * x
    until v > 0
    v = v * v * v
    local u = gen:uniform()
    if u < 1 - 0.0331 * x ^ 4 or math.log(u) < 0.5 * x * x + d * (1 - v + math.log(v)) then return d * v end
  end
end

-- K shares drawn from Dirichlet(alpha, ..., alpha); alpha = math.huge: 1/K each.
local function dirichlet(gen, K, alpha)
  local p, s = {}, 0
  for k = 1, K do
    p[k] = alpha == math.huge and 1 or gamma(gen, alpha)
    s = s + p[k]
  end
  if s == 0 then -- every draw underflowed (tiny alpha): the limit puts all on one client
    p[gen:randint(K)], s = 1, 1
  end
  for k = 1, K do p[k] = p[k] / s end
  return p
end

-- n samples cut by shares p (cumulative rounding: the counts sum to n).
local function cut(n, p)
  local counts, prev, cum = {}, 0, 0
  for k = 1, #p do
    cum = cum + p[k]
    local b = k == #p and n or math.min(n, math.floor(cum * n + 0.5))
    counts[k], prev = b - prev, b
  end
  return counts
end

-- plan[i][k]: how many samples of class classes[i] client k gets.
local function plan_dirichlet(gen, sizes, K, alpha)
  local plan = {}
  for i, n in ipairs(sizes) do plan[i] = cut(n, dirichlet(gen, K, alpha)) end
  return plan
end

-- Each client holds m classes (consecutive in a shuffled order of the
-- classes, wrapping around); a class is shared equally by its holders.
local function plan_classes(gen, sizes, K, m)
  local C = #sizes
  local order = gen:permutation(C):totable()
  local holders = {}
  for i = 1, C do holders[i] = {} end
  for k = 1, K do
    for j = 1, m do
      local i = math.tointeger(order[((k - 1) * m + j - 1) % C + 1])
      holders[i][#holders[i] + 1] = k
    end
  end
  local plan = {}
  for i, n in ipairs(sizes) do
    local h, p = holders[i], {}
    for k = 1, K do p[k] = 0 end
    for _, k in ipairs(h) do p[k] = 1 / #h end
    plan[i] = cut(n, p)
  end
  return plan
end

local SPLIT_OPTS = { alpha = true, classes = true, seed = true, generator = true, min_samples = true }

local function check_split(ds, K, opts)
  if not require("engram.data").is_dataset(ds) then
    error("federated.split: expected a dataset as argument 1, got " .. type(ds), 3)
  end
  if math.type(K) ~= "integer" or K < 1 then
    error("federated.split: the number of clients must be a positive integer, got " .. tostring(K), 3)
  end
  local o = require("engram.util").check_options("federated.split", opts, SPLIT_OPTS, 3)
  local alpha = o.alpha == nil and 0.5 or o.alpha
  if type(alpha) ~= "number" or alpha ~= alpha or alpha <= 0 then
    error("federated.split: alpha must be a positive number (math.huge: equal shares), got " .. tostring(alpha), 3)
  end
  if o.classes and (math.type(o.classes) ~= "integer" or o.classes < 1) then
    error("federated.split: classes must be a positive integer (classes per client), got " .. tostring(o.classes), 3)
  end
  local min = o.min_samples == nil and 1 or o.min_samples
  if math.type(min) ~= "integer" or min < 0 then
    error("federated.split: min_samples must be an integer >= 0, got " .. tostring(min), 3)
  end
  if K * min > #ds then
    error(string.format("federated.split: %d clients of at least %d samples need %d samples; the dataset has %d",
      K, min, K * min, #ds), 3)
  end
  local gen = o.generator
  if gen == nil then
    if o.seed ~= nil and math.type(o.seed) ~= "integer" then
      error("federated.split: seed must be an integer, got " .. tostring(o.seed), 3)
    end
    gen = o.seed and core.generator(o.seed) or core.default_generator()
  end
  return alpha, o.classes, min, gen
end

--- Splits dataset ds across K clients with label skew; returns a list of K
-- datasets (subsets sharing ds's samples) and the plan: plan.classes (the
-- class ids, ascending) and plan.counts[k][i] (client k's samples of class
-- classes[i]). Every sample goes to exactly one client.
--   opts.alpha [0.5]: each class is shared by Dirichlet(alpha) proportions
--     (Hsu et al. 2019); math.huge: equal shares (IID)
--   opts.classes: instead, each client holds only this many classes
--   opts.min_samples [1]: a client with fewer is a bad draw; drawn again,
--     up to 100 times, then an error
--   opts.seed or opts.generator: the draws (default: engram's generator)
-- With K = 1 the one client's dataset is ds itself.
function federated.split(ds, K, opts)
  local alpha, m, min, gen = check_split(ds, K, opts)
  local classes = ds:classes()
  local counts = ds:class_counts()
  local sizes = {}
  for i, c in ipairs(classes) do sizes[i] = counts[c] end
  if m and m > #classes then
    error(string.format("federated.split: classes = %d per client, but the dataset holds %d classes", m, #classes), 2)
  end
  if m and K * m < #classes then
    error(string.format("federated.split: %d clients of %d classes each leave some of the %d classes to no client",
      K, m, #classes), 2)
  end
  local plan, totals
  for _ = 1, 100 do
    plan = m and plan_classes(gen, sizes, K, m) or plan_dirichlet(gen, sizes, K, alpha)
    totals = {}
    local ok = true
    for k = 1, K do
      totals[k] = 0
      for i = 1, #sizes do totals[k] = totals[k] + plan[i][k] end
      if totals[k] < min then ok = false end
    end
    if ok then break end
    totals = nil
  end
  if not totals then
    error(string.format("federated.split: after 100 draws a client still holds fewer than %d samples " ..
      "(%d clients, %d samples, %s); raise alpha or use fewer clients", min, K, #ds,
      m and (m .. " classes each") or ("alpha " .. alpha)), 2)
  end
  local out = { classes = classes, counts = {} }
  for k = 1, K do
    out.counts[k] = {}
    for i = 1, #sizes do out.counts[k][i] = plan[i][k] end
  end
  if K == 1 then return { ds }, out end
  -- each class's samples in a random order, cut into the clients' pieces
  local pieces = {}
  for k = 1, K do pieces[k] = {} end
  for i, c in ipairs(classes) do
    local of_c = ds:subset { labels = { c } }
    local perm, at = gen:permutation(sizes[i]), 0
    for k = 1, K do
      local n = plan[i][k]
      if n > 0 then
        local p = pieces[k]
        p[#p + 1] = of_c:subset { indices = perm:narrow(1, at + 1, n) }
        at = at + n
      end
    end
  end
  local clients = {}
  for k = 1, K do
    local d = pieces[k][1] or ds:subset { indices = {} }
    for j = 2, #pieces[k] do d = d:concat(pieces[k][j]) end
    clients[k] = d
  end
  return clients, out
end

-- ------------------------------------------------------------- averaging

local Averager = {}
Averager.__index = Averager

--- An averager of parameter groups ({params = flat tensor}, ...): begin(groups)
-- keeps the global parameters, add(groups, w) adds a client's weighted change,
-- restore(groups) puts the global parameters back, finish(groups) writes
-- global + sum of the weighted changes. Buffers are kept across calls
-- (reallocated only when a group's size changes).
function federated.averager()
  return setmetatable({ global = {}, acc = {} }, Averager)
end

local function check_groups(groups, who)
  if type(groups) ~= "table" then error(who .. ": expected a list of groups {params = tensor}", 3) end
  for i, g in ipairs(groups) do
    if type(g) ~= "table" or not core.istensor(g.params) then
      error(string.format("%s: group %d has no params tensor", who, i), 3)
    end
  end
end

function Averager:begin(groups)
  check_groups(groups, "averager:begin")
  for i, g in ipairs(groups) do
    local n = g.params:numel()
    if not self.global[i] or self.global[i]:numel() ~= n then
      self.global[i], self.acc[i] = core.zeros(n), core.zeros(n)
    end
    self.global[i]:copy_(g.params)
    self.acc[i]:zero_()
  end
  self.n, self.weight = #groups, 0
  return self
end

local function check_begun(self, groups, who)
  check_groups(groups, who)
  if not self.n or #groups ~= self.n then
    error(string.format("%s: begin was called with %s groups, got %d", who, tostring(self.n), #groups), 3)
  end
end

--- Adds client parameters (in groups' params, left holding the change
-- theta - global) with weight w.
function Averager:add(groups, w)
  check_begun(self, groups, "averager:add")
  if type(w) ~= "number" or w ~= w or w < 0 or w == math.huge then
    error("averager:add: the weight must be a finite number >= 0, got " .. tostring(w), 2)
  end
  for i, g in ipairs(groups) do
    g.params:add_(self.global[i], -1)
    self.acc[i]:add_(g.params, w)
  end
  self.weight = self.weight + w
  return self
end

--- Puts the global parameters (those of begin) back into groups.
function Averager:restore(groups)
  check_begun(self, groups, "averager:restore")
  for i, g in ipairs(groups) do g.params:copy_(self.global[i]) end
  return self
end

--- groups' params = global + the weighted changes divided by `total` (default:
-- 1, for weights that already sum to 1).
function Averager:finish(groups, total)
  check_begun(self, groups, "averager:finish")
  total = total or 1
  if type(total) ~= "number" or total ~= total or total <= 0 or total == math.huge then
    error("averager:finish: total must be a positive finite number, got " .. tostring(total), 2)
  end
  for i, g in ipairs(groups) do
    if total ~= 1 then self.acc[i]:mul_(1 / total) end
    g.params:copy_(self.global[i]):add_(self.acc[i])
  end
  return self
end

-- ------------------------------------------------------------- the strategy

local Fed = { name = "federated" }
Fed.__index = Fed

local DEFAULTS = { clients = 4, alpha = 0.5, classes = false, rounds = 5, local_epochs = 1, local_steps = false,
  memory = 0, min_samples = 1, seed = false }

local function positive_integer(o, k, allow_zero)
  local v = o[k]
  if math.type(v) ~= "integer" or v < (allow_zero and 0 or 1) then
    error(string.format("federated: %s must be %s integer, got %s", k, allow_zero and "a non-negative" or "a positive",
      tostring(v)), 4)
  end
end

local function new(_, opts)
  local o = strategies.options("federated", opts, DEFAULTS, 3)
  positive_integer(o, "clients")
  positive_integer(o, "rounds")
  positive_integer(o, "local_epochs")
  positive_integer(o, "memory", true)
  positive_integer(o, "min_samples", true)
  if o.local_steps then positive_integer(o, "local_steps") end
  if o.classes then positive_integer(o, "classes") end
  if o.seed and math.type(o.seed) ~= "integer" then
    error("federated: seed must be an integer, got " .. tostring(o.seed), 3)
  end
  if type(o.alpha) ~= "number" or o.alpha ~= o.alpha or o.alpha <= 0 then
    error("federated: alpha must be a positive number (math.huge: equal shares), got " .. tostring(o.alpha), 3)
  end
  local options = { clients = o.clients, rounds = o.rounds, memory = o.memory }
  if o.classes then options.classes = o.classes else options.alpha = o.alpha end
  if o.local_steps then options.local_steps = o.local_steps else options.local_epochs = o.local_epochs end
  return setmetatable({ o = o, options = options }, Fed)
end

--- The name and options for results (also when scheduled).
function Fed:describe()
  local o = {}
  for k, v in pairs(self.options) do o[k] = v end
  return { name = "federated", options = o }
end

local TRAINING = { "before_batch", "loss", "after_backward", "after_step" }

-- True when strategy s is self or a schedule holding it.
local function holds(s, target)
  if s == target then return true end
  for _, m in ipairs(rawget(s, "members") or {}) do
    if holds(m, target) then return true end
  end
  return false
end

-- The other strategies' training hooks, in the learner's order; refuses the
-- compositions the clients' local steps cannot honour.
function Fed:before_run(ctx)
  local list = ctx.learner.strategies
  local me
  for i, s in ipairs(list) do
    if holds(s, self) then me = i end
  end
  local hooks = {}
  for _, h in ipairs(TRAINING) do hooks[h] = {} end
  for i, s in ipairs(list) do
    local name = tostring(s.name or "custom")
    if s.needs_task_grads then
      error("federated: " .. name .. " needs the learner's per-step penalty gradients (needs_task_grads, as SI " ..
        "does), which the clients' local steps do not keep; it cannot be used with federated", 0)
    end
    if type(s.before_epoch) == "function" or type(s.after_epoch) == "function" then
      error("federated: " .. name .. " has before_epoch/after_epoch hooks; the clients' local training has " ..
        "rounds, not the learner's epochs", 0)
    end
    if me and i > me and type(s.before_task) == "function" then
      error("federated: " .. name .. " is added after federated and has a before_task hook; add federated " ..
        "last (it runs the task's training in its before_task)", 0)
    end
    if s ~= self then
      for _, h in ipairs(TRAINING) do
        if type(s[h]) == "function" then hooks[h][#hooks[h] + 1] = s end
      end
    end
  end
  if self.o.memory > 0 and ctx.opts.heads then
    error("federated: memory (per-client replay) mixes tasks in a batch, which the learner's heads = true " ..
      "(a MultiHead switched per task) cannot route; use the heads strategy instead", 0)
  end
  self.hooks = hooks
  self.averager = federated.averager()
  self.memories, self.shards = {}, nil
  self.mem_gen = core.generator((self.o.seed or ctx.opts.seed) * 31 + 11)
  self.buf = { _px = {}, _py = {}, _bx = core.zeros(0), _by = core.zeros(0), _bt = core.zeros(0) }
  self.prog = require("engram.progress").new { quiet = ctx.opts.quiet }
  -- task-IL with masked logits: each task's classes, for replayed samples
  local scen = ctx.scenario
  self.task_masks = nil
  if scen.kind == "task" and not ctx.opts.heads and scen.num_classes then
    local masks = core.zeros(ctx.T, scen.num_classes)
    for t, tk in ipairs(ctx.tasks) do
      for _, c in ipairs(tk.active or {}) do masks:set(t, c + 1, 1) end
    end
    self.task_masks = masks
  end
  ctx.extra.federated = { options = self.options, tasks = {} }
end

local function dispatch(list, h, ctx)
  for i = 1, #list do
    local s = list[i]
    s[h](s, ctx)
  end
end

-- A non-finite input or loss in a client's step: an error naming where, or
-- with the learner's nonfinite = "skip" the step is left out.
local function nonfinite(ctx, where, what)
  if ctx.opts.nonfinite == "skip" then
    ctx.skipped = (ctx.skipped or 0) + 1
    ctx.log("skipped_batch", { task = ctx.t, round = where.round, client = where.client, reason = what })
    return nil
  end
  error(string.format("federated: %s at task %d, round %d, client %d, step %d; clean the data or lower the " ..
    "learning rate (or pass the learner nonfinite = 'skip')", what, ctx.t, where.round, where.client,
    where.step), 0)
end

-- One local step of client `where.client` on its batch (x, y): the learner's
-- step (docs/strategies.md) with the other strategies' hooks, plus the
-- client's own replay memory. Returns the loss (nil: skipped).
function Fed:_step(ctx, where, x, y)
  local model, crit, task, hooks = ctx.model, ctx.criterion, ctx.task, self.hooks
  if x:count_nonfinite() > 0 then return nonfinite(ctx, where, "NaN or infinite inputs") end
  y = ctx.learner:targets(task, y)
  ctx.task_x, ctx.task_y, ctx.x, ctx.y, ctx.sample_tasks = x, y, x, y, nil
  ctx.batch_task, ctx.penalty = task, 0
  local mem = self.memories[where.client]
  if mem and #mem > 0 then
    require("engram.strategies.replay").append(self.buf, ctx, mem:sample(math.min(x:size(1), #mem), self.mem_gen))
  end
  dispatch(hooks.before_batch, "before_batch", ctx)
  model:zero_grad()
  ctx.logits = model:forward(ctx.x)
  local masks = ctx.sample_tasks and self.task_masks
  if masks then crit:set_tasks(masks, ctx.sample_tasks) end
  ctx.loss, ctx.grad_logits = crit:forward_backward(ctx.logits, ctx.y)
  if masks then crit:set_tasks(nil) end
  ctx.task_loss = ctx.loss
  dispatch(hooks.loss, "loss", ctx)
  local l = ctx.loss
  if l ~= l or l == math.huge or l == -math.huge then return nonfinite(ctx, where, "the loss is " .. tostring(l)) end
  model:backward(ctx.x, ctx.grad_logits, false)
  dispatch(hooks.after_backward, "after_backward", ctx)
  ctx.optimizer:step()
  ctx.step, ctx.global_step = ctx.step + 1, ctx.global_step + 1
  dispatch(hooks.after_step, "after_step", ctx)
  return ctx.loss
end

-- Client k's local training in a round: local_steps steps, or local_epochs
-- passes over its share. Returns the sum of its losses, their number and
-- the samples seen.
function Fed:_client(ctx, where, it)
  local o = self.o
  local budget = o.local_steps or o.local_epochs * #it
  local lsum, nb, ns = 0, 0, 0
  for s = 1, budget do
    local x, y = it:next()
    if x == nil then x, y = it:next() end -- an epoch ended: the iterator starts the next
    where.step = s
    local l = self:_step(ctx, where, x, y)
    if l then lsum, nb = lsum + l, nb + 1 end
    ns = ns + x:size(1)
    if ctx.stop then break end
  end
  return lsum, nb, ns
end

function Fed:before_task(ctx)
  if ctx.skip_training then return end -- an earlier strategy (joint) skips it
  if ctx.train_parts then
    error("federated: another strategy set ctx.train_parts (batches of several tasks: joint or cumulative in " ..
      "task-IL); federated clients train on one dataset", 0)
  end
  local o, t, lo = self.o, ctx.t, ctx.opts
  local t0 = core.clock()
  local ok, shards, plan = pcall(federated.split, ctx.train_set, o.clients, { alpha = o.alpha,
    classes = o.classes or nil, min_samples = o.min_samples, seed = (o.seed or lo.seed) * 1000003 + t })
  if not ok then error(string.format("federated: task %d: %s", t, tostring(shards):gsub("^.-federated%.split: ", "")),
    0) end
  local K, N = #shards, #ctx.train_set
  local its, w = {}, {}
  for k, d in ipairs(shards) do
    -- client 1 of task t shuffles like the learner's own training of the task
    its[k] = d:batches { batch = lo.batch, shuffle = ctx.task.shuffle ~= false, flat = true,
      seed = lo.seed * 100003 + t * 101 + k }
    w[k] = #d / N
  end
  self.shards = { t = t, list = shards }
  local groups = {}
  for _, g in ipairs(ctx.model:groups()) do
    if not g.frozen then groups[#groups + 1] = g end
  end
  local rec = { task = t, clients = {}, rounds = {} }
  for k, d in ipairs(shards) do rec.clients[k] = { samples = #d, classes = plan.counts[k] } end
  ctx.extra.federated.tasks[#ctx.extra.federated.tasks + 1] = rec
  local where, avg = { round = 0, client = 0, step = 0 }, self.averager
  ctx.federated, ctx.stop = where, false
  for r = 1, o.rounds do
    local tr = core.clock()
    where.round, ctx.epoch = r, r
    if K > 1 then avg:begin(groups) end
    local lsum, nb, ns, weight = 0, 0, 0, 0
    for k = 1, K do
      if k > 1 then avg:restore(groups) end
      if ctx.optimizer.reset then ctx.optimizer:reset() end
      where.client = k
      local s, n, m = self:_client(ctx, where, its[k])
      lsum, nb, ns = lsum + s, nb + n, ns + m
      if K > 1 then avg:add(groups, w[k]) end
      weight = weight + w[k]
      if ctx.stop then break end
    end
    if K > 1 then avg:finish(groups, ctx.stop and weight or 1) end
    local loss, dt = nb > 0 and lsum / nb or nil, core.clock() - tr
    rec.rounds[r] = loss or 0 / 0
    ctx.log("round", { task = t, round = r, loss = loss, seconds = dt, clients = K })
    self.prog:message(string.format("%s  task %d/%d  round %d/%d  loss %.4f  %d clients  %.0f samples/s", lo.name, t,
      ctx.T, r, o.rounds, loss or 0 / 0, K, dt > 0 and ns / dt or 0))
    if ctx.stop then break end
  end
  ctx.skip_training, ctx.federated = true, nil
  ctx.train_seconds = ctx.train_seconds + (core.clock() - t0)
end

-- Every client offers its share of the task just trained to its own memory.
function Fed:after_task(ctx)
  local m = self.o.memory
  if m == 0 or not self.shards or self.shards.t ~= ctx.t then return end
  local cl = require("engram.cl")
  for k, d in ipairs(self.shards.list) do
    for x, y in d:chunks { batch = 1000, flat = true } do
      y = ctx.learner:targets(ctx.task, y)
      self.memories[k] = self.memories[k] or cl.memory(m, { dim = x:size(2) })
      self.memories[k]:add(x, y, ctx.t - 1, nil, self.mem_gen)
    end
  end
end

--- Bytes the clients' memories hold (capacity x (sample + label + task) floats).
function Fed:state_bytes()
  local n = 0
  for _, mem in pairs(self.memories or {}) do n = n + mem:capacity() * (mem:dim() + 2) * 4 end
  return n
end

return setmetatable(federated, { __call = new })
