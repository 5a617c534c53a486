--- (Internal) The learner's training loop: a task's phases, a phase's
-- epochs and batches, one optimisation step. engram.learner builds it once
-- with its own dispatch and label helpers:
--   local loop = require("engram.learner_loop") { dispatch = f, targets_of = f, active_of = f }
-- and uses loop.train_phases, loop.train_task, loop.make_optimizer,
-- loop.phase_optimizer and loop.DEFAULT_PHASE.
local core = require("engram.core")

return function(h)
local dispatch, targets_of, active_of = h.dispatch, h.targets_of, h.active_of

local function make_optimizer(model, o)
  local optim = require("engram.optim")
  if type(o.optimizer) == "function" then return o.optimizer(model) end
  if o.optimizer == "sgd" then return optim.SGD(model, { lr = o.lr, momentum = o.momentum }) end
  return optim.Adam(model, { lr = o.lr })
end

local function shuffle_in_place(t, gen)
  for i = #t, 2, -1 do
    local j = gen:randint(1, i)
    t[i], t[j] = t[j], t[i]
  end
end

local function snapshot_params(model)
  local s = {}
  for i, g in ipairs(model:groups()) do s[i] = g.params:clone() end
  return s
end

local function restore_params(model, s)
  for i, g in ipairs(model:groups()) do
    if s[i] then g.params:copy_(s[i]) end
  end
end

-- ------------------------------------------------------------- training

-- One optimisation step on the batch (x, y) of task `btask`.
-- Before backward the parameter gradients hold what the loss hooks added:
-- kept for strategies that need the task loss's gradient alone (SI).
local function keep_penalty_grads(ctx)
  if ctx.penalty == 0 then
    ctx.penalty_grads = nil
    return
  end
  local bufs = ctx._penalty_bufs
  for i, g in ipairs(ctx._task_groups) do
    local b = bufs[i]
    if not b or b:numel() ~= g.numel then
      b = core.zeros(g.numel)
      bufs[i] = b
    end
    b:copy_(g.grads)
  end
  ctx.penalty_grads = bufs
end

-- A batch with NaN or infinite inputs (bad > 0: their number; ReLU would
-- hide them from the loss), or a loss that is NaN or infinite: an error
-- naming where and why, or with nonfinite = "skip" the batch is left out.
local function nonfinite(self, ctx, bad)
  local l = ctx.loss
  local what = (bad > 0 or l ~= l) and "NaN" or "infinite"
  if self.opts.nonfinite == "skip" then
    ctx.skipped = (ctx.skipped or 0) + 1
    ctx.log("skipped_batch", { task = ctx.t, epoch = ctx.epoch, step = ctx.step,
      reason = bad > 0 and "inputs" or ("loss " .. what) })
    ctx.step, ctx.global_step = ctx.step + 1, ctx.global_step + 1 -- it counts against an iteration budget
    return nil
  end
  local where = string.format("task %d, epoch %d, step %d", ctx.t, ctx.epoch or 0, ctx.step + 1)
  local msg
  if bad > 0 then
    msg = string.format("learner: the batch at %s holds %d NaN or infinite inputs; clean the data, or pass " ..
      "nonfinite = 'skip' to leave such batches out", where, bad)
  elseif ctx.task_loss == ctx.task_loss and math.abs(ctx.task_loss) ~= math.huge then
    msg = string.format("learner: the loss is %s at %s: a strategy's penalty (%s) is not finite", what, where,
      tostring(ctx.penalty))
  else
    msg = string.format("learner: the loss is %s at %s: training diverged (lr %g); lower the learning rate, " ..
      "or pass nonfinite = 'skip' to leave such batches out", what, where, self.opts.lr)
  end
  error(msg, 0)
end

-- A step whose batch is empty after before_batch (a phase with data =
-- "none" whose strategies add their samples after the backward pass, as
-- generative replay does): no forward pass; the loss hooks (penalties) and
-- after_backward run, then the optimiser steps.
local function empty_step(self, ctx)
  ctx.logits, ctx.grad_logits, ctx.loss, ctx.task_loss = nil, nil, 0, 0
  dispatch(self, "loss", ctx)
  local l = ctx.loss
  if l ~= l or l == math.huge or l == -math.huge then return nonfinite(self, ctx, 0) end
  if ctx._task_grads then keep_penalty_grads(ctx) end
  dispatch(self, "after_backward", ctx)
  ctx.optimizer:step()
  ctx.step, ctx.global_step = ctx.step + 1, ctx.global_step + 1
  dispatch(self, "after_step", ctx)
  return ctx.loss
end

local function train_step(self, ctx, x, y, btask)
  local model, crit = self.model, ctx.criterion
  local bad = x:count_nonfinite()
  if bad > 0 then return nonfinite(self, ctx, bad) end
  y = targets_of(self, btask, y)
  if ctx.batch_task ~= btask then
    crit:set_active(active_of(self, btask))
    if self.opts.heads then model:set_head(btask.index) end
    ctx.batch_task = btask
  end
  ctx.task_x, ctx.task_y, ctx.x, ctx.y, ctx.sample_tasks = x, y, x, y, nil
  ctx.penalty = 0
  dispatch(self, "before_batch", ctx)
  model:zero_grad()
  if ctx.x:size(1) == 0 then return empty_step(self, ctx) end
  local logits = model:forward(ctx.x)
  ctx.logits = logits
  if ctx.sample_tasks and self.opts.heads then
    error("learner: a batch of several tasks (ctx.sample_tasks, e.g. replay) with per-task heads (heads = true) " ..
      "would need each sample routed to its own head, which engram does not do yet; use masked task-IL " ..
      "(heads = false)", 0)
  end
  local per_sample = ctx.sample_tasks and self._task_masks
  if per_sample then crit:set_tasks(self._task_masks, ctx.sample_tasks) end
  -- token windows (engram.text): targets [B, T] against logits [B*T, V]
  local yt = ctx.y:dim() == 2 and ctx.y:view(-1) or ctx.y
  ctx.loss, ctx.grad_logits = crit:forward_backward(logits, yt)
  if per_sample then crit:set_tasks(nil) end
  ctx.task_loss = ctx.loss
  dispatch(self, "loss", ctx)
  local l = ctx.loss
  if l ~= l or l == math.huge or l == -math.huge then return nonfinite(self, ctx, 0) end
  if ctx._task_grads then keep_penalty_grads(ctx) end
  model:backward(ctx.x, ctx.grad_logits, false)
  dispatch(self, "after_backward", ctx)
  ctx.optimizer:step()
  ctx.step, ctx.global_step = ctx.step + 1, ctx.global_step + 1
  dispatch(self, "after_step", ctx)
  return ctx.loss
end

-- The batch iterators of this task's training: one per part.
local function make_parts(self, ctx, ph, batch)
  local o = self.opts
  local parts
  local data = ph.data
  if data == nil or data == "task" then
    parts = ctx.train_parts or { { ds = ctx.train_set, task = ctx.task } }
  else
    local ds = data
    if type(data) == "function" then ds = data(ctx) end
    if not require("engram.data").is_dataset(ds) then
      error(string.format("learner: phase '%s' of task %d: its data function returned %s, not a dataset", ph.name,
        ctx.t, type(ds)), 0)
    end
    parts = { { ds = ds, task = ctx.task } }
  end
  -- the first phase of a task keeps the seeds runs without phases had
  local salt = (ctx.phase_index or 1) > 1 and ctx.phase_index * 7919 or 0
  for p, part in ipairs(parts) do
    if #part.ds == 0 then error(string.format("learner: task %d has an empty training set", ctx.t), 0) end
    part.it = part.ds:batches { batch = batch, shuffle = part.task.shuffle ~= false, flat = true,
      seed = o.seed * 100003 + ctx.t * 101 + p + salt }
  end
  return parts
end

-- The batches of a phase with data = "none": empty (0 samples of the task's
-- input size) for the strategies to fill.
local function empty_parts(ctx)
  local x = ctx.task.train:chunks { batch = 1, flat = true }:next()
  local e = { x = core.zeros(0, x:size(2)), y = core.zeros(0) }
  local it = { n = 0 }
  function it.next() return e.x, e.y end
  setmetatable(it, { __len = function() return math.huge end })
  return { { it = it, task = ctx.task, empty = true } }
end

local function train_task(self, ctx, prog, ph)
  local o, model = self.opts, self.model
  local batch = ph.batch or o.batch
  ctx.batch_size = batch
  local none = ph.data == "none"
  local parts = none and empty_parts(ctx) or make_parts(self, ctx, ph, batch)
  local per_epoch = 0 -- samples
  if not none then for _, p in ipairs(parts) do per_epoch = per_epoch + #p.ds end end
  local budget = ph.iterations or (not ph.epochs and o.iterations)
  local n_epochs = ph.epochs or o.epochs
  local epochs = budget and math.huge or n_epochs
  -- the progress line's state, one table for the whole task; done/total in samples
  local st = { task = ctx.t, tasks = ctx.T, epochs = budget and "-" or n_epochs,
    total = budget and budget * batch or per_epoch * n_epochs, done = 0 }
  local best, best_params, bad = -1, nil, 0
  local patience = o.patience and ctx.task.val and o.patience
  -- resuming from a checkpoint made inside this task (engram.checkpoint):
  -- the batch iterators replayed to where they were, the epoch's records
  local res = self._r and self._r.resume_at
  if res then self._r.resume_at = nil end
  for p, part in ipairs(parts) do
    part.calls = res and res.calls[p] or 0
    for _ = 1, part.calls do part.it:next() end
  end
  ctx.step, ctx.stop, ctx.batch_task = res and res.step or 0, false, nil
  st.done = res and res.done or 0
  local every = o.checkpoint_every
  model:train()
  local epoch = res and res.epoch - 1 or 0
  while epoch < epochs and not ctx.stop do
    epoch = epoch + 1
    ctx.epoch = epoch
    if not res then dispatch(self, "before_epoch", ctx) end
    local t0 = core.clock()
    local lsum, nb, ns = 0, 0, 0
    local order = {}
    if res then
      lsum, nb, ns, order = res.lsum, res.nb, res.ns, res.order
    elseif none then
      for _ = 1, budget do order[#order + 1] = 1 end
    else
      for p, part in ipairs(parts) do
        for _ = 1, #part.it do order[#order + 1] = p end
      end
    end
    if #parts > 1 and not res then shuffle_in_place(order, ctx.rng) end
    local from = res and res.pos + 1 or 1
    res = nil
    for i = from, #order do
      local part = parts[order[i]]
      local x, y = part.it:next()
      part.calls = part.calls + 1
      if x == nil then x, y = part.it:next(); part.calls = part.calls + 1 end
      ctx.batches = not part.empty and part.it or nil
      if x ~= nil then
        local l = train_step(self, ctx, x, y, part.task)
        if l then lsum, nb = lsum + l, nb + 1 end
        local b = none and ctx.x:size(1) or x:size(1)
        ns = ns + b
        st.epoch, st.done, st.loss = epoch, st.done + (none and batch or b), nb > 0 and lsum / nb or nil
        prog:update(st)
      end
      if ctx.stop or (budget and ctx.step >= budget) then break end
      if every and ctx.global_step % every == 0 then
        local calls = {}
        for p, q in ipairs(parts) do calls[p] = q.calls end
        require("engram.checkpoint").inside_task(self, { epoch = epoch, pos = i, order = order, calls = calls,
          lsum = lsum, nb = nb, ns = ns, done = st.done, step = ctx.step })
      end
    end
    if budget and ctx.step >= budget then ctx.stop = true end
    local dt = core.clock() - t0
    ctx.train_seconds = ctx.train_seconds + dt
    ctx.epoch_loss = nb > 0 and lsum / nb or nil
    local val
    if ctx.task.val and (o.validate or patience) then
      local te = core.clock()
      val = self:evaluate(ctx.task, ctx.task.val)
      ctx.eval_seconds = ctx.eval_seconds + (core.clock() - te)
      model:train()
      if patience then
        if val > best then
          best, bad, best_params = val, 0, snapshot_params(model)
        else
          bad = bad + 1
          if bad >= patience then ctx.stop = true end
        end
      end
    end
    ctx.val_acc = val
    dispatch(self, "after_epoch", ctx)
    ctx.log("epoch", { task = ctx.t, epoch = epoch, loss = ctx.epoch_loss, val_acc = val, seconds = dt,
      samples = ns, steps = nb, phase = ph.plan and ph.name or nil })
    prog:finish(string.format("%s  task %d/%d%s  epoch %s  loss %.4f%s  %.0f samples/s", self.opts.name, ctx.t, ctx.T,
      ph.plan and ("  " .. ph.name) or "", budget and tostring(epoch) or (epoch .. "/" .. n_epochs),
      ctx.epoch_loss or 0 / 0,
      val and string.format("  val %.1f%%", 100 * val) or "", dt > 0 and ns / dt or 0))
  end
  if best_params then
    restore_params(model, best_params)
    ctx.log("early_stop", { task = ctx.t, epochs = epoch, best_val_acc = best })
  end
end

-- The phase of a run without a plan: the task's data, the learner's budget.
local DEFAULT_PHASE = { name = "learn", data = "task" }

-- The optimiser of a plan's phase that names its own: made on first use,
-- kept across the tasks where the phase runs (checkpoints save it).
local function phase_optimizer(self, ph)
  self._phase_opts = self._phase_opts or {}
  local opt = self._phase_opts[ph]
  if not opt then
    local o = self.opts
    opt = make_optimizer(self.model, { optimizer = ph.optimizer, lr = ph.lr or o.lr, momentum = o.momentum })
    self._phase_opts[ph] = opt
  end
  return opt
end

-- Runs one phase of the current task: its optimiser settings and strategy
-- settings in force, before_phase, the training, after_phase, then the
-- settings put back.
local function run_phase(self, ctx, prog, ph, index)
  ctx.phase, ctx.phase_index = ph, index
  -- resuming inside this phase (engram.checkpoint): its settings again, not its start
  local resuming = self._r and self._r.resume_at ~= nil
  local opt0, lr0 = ctx.optimizer, nil
  if ph.optimizer then ctx.optimizer = phase_optimizer(self, ph) end
  if ph.lr then
    if type(ctx.optimizer.set_lr) ~= "function" then
      error(string.format("learner: phase '%s' sets lr but the optimiser has no set_lr", ph.name), 0)
    end
    lr0 = ctx.optimizer._base_lr
    ctx.optimizer:set_lr(ph.lr)
  end
  -- what a checkpoint inside the phase saves as the optimisers outside it
  ctx._outer_optimizer, ctx._outer_lr = opt0, lr0
  if ph.reset_optimizer and ctx.optimizer.reset and not resuming then ctx.optimizer:reset() end
  local undo = {}
  for i, e in ipairs(ph.set or {}) do
    local ok, prev = pcall(e.strategy.configure, e.strategy, e.opts)
    if not ok then error(string.format("learner: phase '%s': set %s: %s", ph.name, e.name, tostring(prev)), 0) end
    undo[i] = prev
  end
  if not resuming then dispatch(self, "before_phase", ctx) end
  train_task(self, ctx, prog, ph)
  dispatch(self, "after_phase", ctx)
  for i = #undo, 1, -1 do ph.set[i].strategy:configure(undo[i]) end
  if lr0 then ctx.optimizer:set_lr(lr0) end
  ctx.optimizer, ctx._outer_optimizer, ctx._outer_lr = opt0, nil, nil
end

-- Trains the current task: the default phase, or the plan's phases for the
-- task with the ones its rules add after each.
-- ctx._phase_at says where the task is in them, for a checkpoint inside a
-- phase: j, the scheduled phase; k, 0 for it or the k-th of the phases its
-- rules added (pending: their names); n, the phase's index in the task.
local function train_phases(self, ctx, prog)
  local plan = self._plan
  if not plan then return run_phase(self, ctx, prog, DEFAULT_PHASE, 1) end
  local at = self._r and self._r.resume_at and self._r.resume_at.phase -- resuming inside a phase
  local sched, n = plan:phases_for(ctx.t, ctx.T), 0
  local j0, k0 = 1, 0
  if at then j0, k0, n = at.j, at.k, at.n - 1 end
  for j = j0, #sched do
    local ph, names, pending = sched[j], {}, {}
    local resumed = j == j0 and k0 > 0
    if resumed then
      for i, name in ipairs(at.pending) do pending[i] = plan.phase_list[name] end
    else
      n = n + 1
      ctx._phase_at = { j = j, k = 0, n = n }
      run_phase(self, ctx, prog, ph, n)
      pending = plan:triggered(ctx, ph) or {}
    end
    for i, q in ipairs(pending) do names[i] = q.name end
    for k = resumed and k0 or 1, #pending do
      n = n + 1
      ctx._phase_at = { j = j, k = k, n = n, pending = names }
      run_phase(self, ctx, prog, pending[k], n)
    end
  end
  ctx.phase, ctx._phase_at = nil, nil
  plan:task_trained(ctx)
end


return { train_phases = train_phases, train_task = train_task, make_optimizer = make_optimizer,
  phase_optimizer = phase_optimizer, DEFAULT_PHASE = DEFAULT_PHASE }
end
