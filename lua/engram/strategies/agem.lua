--- Averaged gradient episodic memory, A-GEM (Chaudhry et al. 2019, ICLR).
--
--   learner:use(engram.strategies.agem{memory = 1000, batch = 256})
--
-- A reservoir memory of past tasks' samples in C (engram.cl.memory, filled
-- at each task's end like replay's default). After every backward from task
-- 2 on, the reference gradient g_ref of the loss on a memory batch is taken
-- (the step's gradients are kept aside, one forward and backward on the
-- memory batch, then put back), and when the step's gradient g conflicts
-- with it, g·g_ref < 0, it is projected: g ← g − (g·g_ref / g_ref·g_ref) g_ref,
-- over all trainable parameter groups at once (cl.agem_project: one dot
-- product pass and one axpy per group in C). The step then does not raise
-- the memory's loss (to first order). Buffers are allocated once per group.
--
-- Options (defaults in brackets):
--   memory [1000]   capacity in samples
--   batch [256]     memory samples for the reference gradient (the paper's 256)
--   seed [nil]      the sampling generator's seed (default: the run's ctx.rng)
--
-- Hooks: after_backward (reference gradient, projection), after_task (fill).
-- The reference loss is the cross-entropy over all outputs: meant for class-
-- and domain-IL. The memory batch's forward overwrites the model's output
-- buffer: ctx.logits is not the step's output after this hook.
-- ctx.extra.agem = {projected = steps projected, steps = steps with a
-- reference} is saved in the results.
local cl = require("engram.cl")
local core = require("engram.core")
local loss = require("engram.loss")
local strategies = require("engram.strategies")
local replay = require("engram.strategies.replay")

local AGEM = {}
AGEM.__index = AGEM

local function new(opts)
  local o = strategies.options("agem", opts, { memory = 1000, batch = 256, seed = false }, 3)
  if math.type(o.memory) ~= "integer" or o.memory < 1 then
    error("agem: memory (capacity in samples) must be a positive integer, got " .. tostring(o.memory), 3)
  end
  if math.type(o.batch) ~= "integer" or o.batch < 1 then
    error("agem: batch (memory samples per reference gradient) must be a positive integer, got " ..
      tostring(o.batch), 3)
  end
  return setmetatable({ name = "agem", options = o, crit = loss.CrossEntropy() }, AGEM)
end

function AGEM:describe()
  return { name = "agem", options = { memory = self.options.memory, batch = self.options.batch } }
end

function AGEM:before_run(ctx)
  self.mem, self._for = nil, nil
  self.gen = self.options.seed and core.generator(self.options.seed) or ctx.rng
  self.stats = { projected = 0, steps = 0 }
  ctx.extra.agem = self.stats
end

-- The trainable groups and a saved-gradient and a reference buffer for each
-- (again only when the groups change, e.g. a head was added).
function AGEM:before_task(ctx)
  if ctx.opts.heads then
    error("agem: per-task heads (the learner's heads = true) are not supported: the memory batch would go " ..
      "through the current task's head; use class- or domain-IL", 0)
  end
  local groups = {}
  for _, g in ipairs(ctx.model:groups()) do
    if not g.frozen then groups[#groups + 1] = g end
  end
  self._groups, self._save, self._ref, self._g = groups, self._save or {}, self._ref or {}, {}
  for i, g in ipairs(groups) do
    if not self._save[i] or self._save[i]:numel() ~= g.numel then
      self._save[i], self._ref[i] = core.zeros(g.numel), core.zeros(g.numel)
    end
    self._g[i] = g.grads
  end
end

-- resuming inside a task (engram.checkpoint): the memory is in state(); the buffers again
AGEM.resume_task = AGEM.before_task

function AGEM:after_backward(ctx)
  local mem = self.mem
  if not mem or #mem == 0 then return end
  local model, groups, save, ref = ctx.model, self._groups, self._save, self._ref
  for i, g in ipairs(groups) do save[i]:copy_(g.grads) end
  model:zero_grad()
  local mx, my = mem:sample(math.min(self.options.batch, #mem), self.gen)
  if ctx.y:dim() == 2 then -- token windows, stored as rows of T + 1 tokens (replay.window_rows)
    local T = ctx.y:size(2)
    mx, my = mx:narrow(2, 1, T):contiguous(), mx:narrow(2, 2, T):contiguous():view(-1)
  end
  local logits = model:forward(mx)
  local _, gl = self.crit:forward_backward(logits, my)
  model:backward(mx, gl, false)
  for i, g in ipairs(groups) do
    ref[i]:copy_(g.grads)
    g.grads:copy_(save[i])
  end
  local projected = cl.agem_project(self._g, ref)
  local st = self.stats
  st.steps = st.steps + 1
  if projected then st.projected = st.projected + 1 end
end

-- Offers every training sample of the finished task to the reservoir.
function AGEM:after_task(ctx)
  local task = ctx.task
  for x, y in task.train:chunks { batch = 1000, flat = true } do
    y = ctx.learner:targets(task, y)
    if y:dim() == 2 then x, y = replay.window_rows(self, x, y) end
    self.mem = self.mem or cl.memory(self.options.memory, { dim = x:size(2) })
    self.mem:add(x, y, ctx.t - 1, nil, self.gen)
  end
end

--- The memory's contents as named tensors: memory.x, memory.y,
-- memory.task, memory.weights, memory.order, memory.seen.
function AGEM:state()
  return replay.memory_state(self.mem)
end

--- Restores what state() gave: the memory draws the same samples from the same generator.
function AGEM:load_state(t, ctx, meta)
  -- the counts in the results: the checkpoint's records (ctx.extra) are the ones to go on counting in
  if ctx and type(ctx.extra.agem) == "table" then self.stats = ctx.extra.agem end
  if self.options.seed and type(meta) == "table" and type(meta.gen) == "string" then self.gen:set_state(meta.gen) end
  if next(t) == nil then -- saved inside the first task: no memory yet
    self.mem = nil
    return self
  end
  self.mem = replay.load_memory(self.mem, t, function(dim) return cl.memory(self.options.memory, { dim = dim }) end,
    "memory.", "agem")
  return self
end

--- The state of its own generator (with the seed option; otherwise it draws from ctx.rng, saved by the learner).
function AGEM:state_meta()
  return { gen = self.options.seed and self.gen:state() or nil }
end

--- Bytes the memory holds in C.
function AGEM:state_bytes() return self.mem and self.mem:bytes() or 0 end

return setmetatable({ AGEM = AGEM }, { __call = function(_, opts)
  local s = new(opts)
  return s
end })
