--- What the parameter-isolation strategies (lora, adapters, freeze, heads,
-- progressive) share: the per-task figures they put in the results
-- document, and their state as named tensors.
--
-- ctx.extra.isolation = {
--   total_params = N,  full_bytes = 4 N          (the model after the last task)
--   per_task = { {task = t, trainable = n, total = N_t, share = n / N_t,
--                 bytes = 4 n, full_bytes = 4 N_t, groups = {"lora.task2", ...}}, ... }
-- }
-- trainable: the parameters task t trained (unfrozen, unmasked), measured
-- after the task; bytes: what must be kept to restore task t beside the
-- shared rest (float32), full_bytes: a full copy of the model at that time.
local iso = {}

local function record(ctx)
  local x = ctx.extra.isolation
  if not x then
    x = { per_task = {} }
    ctx.extra.isolation = x
  end
  if not ctx._isolation_groups then ctx._isolation_groups = {} end
  return x
end

--- Notes that group gname was made for task t.
function iso.note(ctx, t, gname)
  record(ctx)
  local groups = ctx._isolation_groups
  groups[t] = groups[t] or {}
  for _, g in ipairs(groups[t]) do
    if g == gname then return end
  end
  table.insert(groups[t], gname)
end

--- Measures task ctx.t (in after_task: what the task trained).
function iso.measure(ctx)
  local x, m, t = record(ctx), ctx.model, ctx.t
  local n, N = m:numel { trainable = true }, m:numel()
  x.per_task[t] = { task = t, trainable = n, total = N, share = N > 0 and n / N or 0, bytes = 4 * n,
    full_bytes = 4 * N, groups = ctx._isolation_groups[t] or {} }
  x.total_params, x.full_bytes = N, 4 * N
end

--- The parameters of the named groups as name -> tensor (views shaped like
-- the parameters): "lora.task2.1.2.A" is the A factor of task 2 in the
-- LoRA at path 1.
function iso.group_state(model, gnames, out)
  out = out or {}
  if not model then return out end
  local want = {}
  for _, g in ipairs(gnames) do want[g] = true end
  for _, p in ipairs(model:parameters()) do
    if want[p.group] then out[p.group .. "." .. p.name] = p.value end
  end
  return out
end

--- Bytes of the tensors of a state table.
function iso.bytes(state)
  local n = 0
  for _, t in pairs(state) do n = n + t:numel() end
  return 4 * n
end

--- A strategy class with state_bytes and the after_task measure.
function iso.class(name)
  local c = { name = name }
  c.__index = c
  function c:state_bytes() return iso.bytes(self:state()) end
  function c.after_task(_, ctx) iso.measure(ctx) end
  return c
end

--- Makes a per-task strategy class (lora, adapters, heads) resumable from
-- a checkpoint (engram.checkpoint): state_meta() lists the tasks it made a
-- set for (self.order); on resume rebuild_task(ctx, meta, t) re-creates task
-- t's set by running before_task with ctx.t, ctx.task set to t (the
-- checkpoint calls it task by task, strategy by strategy, in the order the
-- sets were first made), so the model has the same groups and modules; their
-- values come with the model's parameters, loaded after load_state, which
-- checks the names.
function iso.resumable(c)
  function c:state_meta()
    local tasks = {}
    for _, k in ipairs(self.order or {}) do
      if math.type(k) == "integer" then tasks[#tasks + 1] = k end
    end
    return { tasks = tasks }
  end
  function c:rebuild_task(ctx, meta, t)
    for _, k in ipairs(type(meta) == "table" and type(meta.tasks) == "table" and meta.tasks or {}) do
      if k == t then
        local t0, task0 = ctx.t, ctx.task
        ctx.t, ctx.task = t, ctx.tasks[t]
        self:before_task(ctx)
        ctx.t, ctx.task = t0, task0
        return
      end
    end
  end
  -- inside a task (engram.checkpoint): the task's set was re-created with the
  -- earlier ones (rebuild_task up to the task under way); selecting it and
  -- freezing the others again is what before_task does for an existing set
  function c:resume_task(ctx) self:before_task(ctx) end
  function c:load_state(st)
    local now = self:state()
    for name in pairs(st) do
      if not now[name] then error(string.format("%s: load_state: the checkpoint has %s, which the re-created sets " ..
        "do not", self.name, name), 0) end
    end
    for name in pairs(now) do
      if not st[name] then error(string.format("%s: load_state: the checkpoint lacks %s", self.name, name), 0) end
    end
  end
  return c
end

return iso
