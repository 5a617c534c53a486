--- Dark experience replay, DER and DER++ (Buzzega et al. 2020, NeurIPS).
--
--   learner:use(engram.strategies.der{memory = 1000, alpha = 0.3, beta = 0.5})  -- DER++
--   learner:use(engram.strategies.der{memory = 1000, alpha = 0.3})              -- DER (beta = 0)
--
-- A reservoir memory over the training stream in C (engram.cl.memory with
-- logits): after every step's backward, the stream's batch is offered to it
-- together with the logits the model gave it in that step's forward. Once
-- the memory holds samples, every step also trains on memory batches:
--
--   α · MSE(f(x'), z')        x' a memory batch, z' the logits stored with it
--   β · CE(f(x''), y'')       DER++ only: the labels of a second memory batch
--
-- both in one extra forward and backward on [x'; x''] whose gradients add to
-- the step's (after_backward), and added to ctx.loss and ctx.penalty. The
-- MSE is the mean over the batch's logits (as the authors' code has it); x'
-- and x'' are drawn together without replacement.
--
-- Options (defaults in brackets):
--   memory [1000]   capacity in samples
--   alpha [0.3]     weight α of the logit matching (> 0)
--   beta [0]        weight β of the replayed labels' cross-entropy (0: DER)
--   batch [nil]     samples per memory batch (default: the stream's batch size)
--   seed [nil]      the sampling generator's seed (default: the run's ctx.rng)
--
-- Meant for class- and domain-IL (the cross-entropy is over all outputs).
-- The memory batch's forward overwrites the model's output buffer:
-- ctx.logits is not the step's output after this hook. Its state is the
-- memory (s:state(), s:load_state(t)): memory.x, memory.y, memory.task,
-- memory.logits, memory.weights, memory.order, memory.seen.
local cl = require("engram.cl")
local core = require("engram.core")
local loss = require("engram.loss")
local strategies = require("engram.strategies")
local replay = require("engram.strategies.replay")

local DER = {}
DER.__index = DER

local function weight(name, v, positive)
  if type(v) ~= "number" or v ~= v or v < 0 or v == math.huge or (positive and v == 0) then
    error(string.format("der: %s must be a finite number %s, got %s", name, positive and "> 0" or ">= 0",
      tostring(v)), 4)
  end
end

local function new(opts)
  local o = strategies.options("der", opts, { memory = 1000, alpha = 0.3, beta = 0, batch = false, seed = false }, 3)
  if math.type(o.memory) ~= "integer" or o.memory < 1 then
    error("der: memory (capacity in samples) must be a positive integer, got " .. tostring(o.memory), 3)
  end
  if o.batch and (math.type(o.batch) ~= "integer" or o.batch < 1) then
    error("der: batch must be a positive integer, got " .. tostring(o.batch), 3)
  end
  weight("alpha", o.alpha, true)
  weight("beta", o.beta, false)
  local s = setmetatable({ name = o.beta > 0 and "der++" or "der", options = o, mse = loss.MSE(),
    ce = loss.CrossEntropy(), _g = core.zeros(0) }, DER)
  return s
end

function DER:describe()
  local o = self.options
  return { name = self.name, options = { memory = o.memory, alpha = o.alpha, beta = o.beta, batch = o.batch or nil } }
end

function DER:before_run(ctx)
  self.mem = nil
  self.gen = self.options.seed and core.generator(self.options.seed) or ctx.rng
end

-- resuming inside a task (engram.checkpoint): the memory and its draws are in state()
function DER.resume_task(s, ctx) DER.before_task(s, ctx) end

function DER.before_task(_, ctx)
  if ctx.opts.heads then
    error("der: per-task heads (the learner's heads = true) are not supported: the memory batch would go " ..
      "through the current task's head; use class- or domain-IL", 0)
  end
end

function DER:after_backward(ctx)
  local o, model = self.options, ctx.model
  local x, y = ctx.task_x, ctx.task_y
  local B = x:size(1)
  local logits = ctx.logits:narrow(1, 1, B) -- the stream's rows (another strategy may have appended some)
  local mem = self.mem
  if not mem then
    mem = cl.memory(o.memory, { dim = x:numel() // B, logits = logits:size(2) })
    self.mem = mem
  end
  local mx, my, mz, _
  local k, n = 0, 0
  if #mem > 0 then
    k = math.min(o.batch or B, #mem)
    n = o.beta > 0 and math.min(2 * k, #mem) or k
    if n == k and o.beta > 0 then k = n // 2 end -- a small memory: split what there is
    mx, my, _, mz = mem:sample(n, self.gen)
  end
  -- the stream's batch and this step's logits go in (after the draw, as the authors do)
  mem:add(x, y, ctx.t - 1, logits, self.gen)
  if n == 0 or k == 0 then return end
  local out = model:forward(mx)
  local K = out:size(2)
  local g = self._g
  if g:numel() ~= n * K then
    g = core.zeros(n, K)
    self._g = g
  end
  local lm, gm = self.mse:forward_backward(out:narrow(1, 1, k), mz:narrow(1, 1, k))
  g:narrow(1, 1, k):copy_(gm):mul_(o.alpha)
  local total = o.alpha * lm
  if n > k then
    local lc, gc = self.ce:forward_backward(out:narrow(1, k + 1, n - k), my:narrow(1, k + 1, n - k))
    g:narrow(1, k + 1, n - k):copy_(gc):mul_(o.beta)
    total = total + o.beta * lc
  end
  model:backward(mx, g, false)
  ctx.loss, ctx.penalty = ctx.loss + total, ctx.penalty + total
end

--- The memory as named tensors: memory.x, memory.y, memory.task,
-- memory.logits, memory.weights, memory.order, memory.seen.
function DER:state()
  return replay.memory_state(self.mem)
end

--- Restores what state() gave: the memory draws the same samples from the same generator.
function DER:load_state(t, _, meta)
  if self.options.seed and type(meta) == "table" and type(meta.gen) == "string" then self.gen:set_state(meta.gen) end
  self.mem = replay.load_memory(self.mem, t, function(dim)
    local z = t["memory.logits"]
    if not z then error("der: load_state needs the tensor 'memory.logits'", 3) end
    return cl.memory(self.options.memory, { dim = dim, logits = z:size(2) })
  end, "memory.", "der")
  return self
end

--- The state of its own generator (with the seed option; otherwise it draws from ctx.rng, saved by the learner).
function DER:state_meta()
  return { gen = self.options.seed and self.gen:state() or nil }
end

--- Bytes the memory holds in C.
function DER:state_bytes() return self.mem and self.mem:bytes() or 0 end

return setmetatable({ DER = DER }, { __call = function(_, opts)
  local s = new(opts)
  return s
end })
