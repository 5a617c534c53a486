--- Experience replay (Chaudhry et al. 2019, "On tiny episodic memories"):
-- a reservoir memory of past samples held in C (engram.cl.memory); every
-- training batch becomes the current batch plus a memory batch of the same
-- size (one combined forward/backward, so both halves weigh the same).
--
--   learner:use(engram.strategies.replay{memory = 1000})
--
-- Options (defaults in brackets):
--   memory [1000]        capacity in samples
--   batch [nil]          memory samples per batch (default: the current batch's size)
--   update ["task_end"]  "task_end": after each task its training samples are
--                        offered to the reservoir (the memory holds past tasks
--                        only while a task trains); "stream": every batch is
--                        offered after its step (memory includes the current task;
--                        scheduled with tasks = ..., it fills only while it acts:
--                        after_step is a training hook, after_task observes every task)
--   balanced [false]     class-balanced reservoir (about capacity/C per class)
--   seed [nil]           the sampling generator's seed (default: the run's ctx.rng)
--   grid [nil]           after each task, a grid of the first n stored samples in
--                        the results (extra.grids; engram report shows it)
--   grid_file [nil]      ... and as a PNG file: a pattern with %d for the task
--
-- Hooks: before_batch (append a memory batch), after_step (stream) or
-- after_task (task_end). Per batch: one sample call and four copies in C.
-- Every scenario: each sample of the combined batch carries its task
-- (ctx.sample_tasks), so in task-IL with masked logits a stored sample is
-- judged under its own task's classes. Per-task heads (the learner's heads =
-- true) would need each sample routed to its task's head: not yet.
local core = require("engram.core")
local strategies = require("engram.strategies")

local Replay = {}
Replay.__index = Replay

local function new(opts)
  local o = strategies.options("replay", opts,
    { memory = 1000, batch = false, update = "task_end", balanced = false, seed = false, grid = false,
      grid_file = false }, 3)
  if math.type(o.memory) ~= "integer" or o.memory < 1 then
    error("replay: memory must be a positive integer, got " .. tostring(o.memory), 3)
  end
  if o.batch and (math.type(o.batch) ~= "integer" or o.batch < 1) then
    error("replay: batch must be a positive integer, got " .. tostring(o.batch), 3)
  end
  if o.grid and (math.type(o.grid) ~= "integer" or o.grid < 1) then
    error("replay: grid must be a number of samples to show, got " .. tostring(o.grid), 3)
  end
  if o.grid_file and (type(o.grid_file) ~= "string" or not o.grid_file:find("%d", 1, true)) then
    error("replay: grid_file must be a file name pattern with %d for the task, got " .. tostring(o.grid_file), 3)
  end
  if o.update ~= "task_end" and o.update ~= "stream" then
    error("replay: update must be 'task_end' or 'stream', got " .. tostring(o.update), 3)
  end
  local s = setmetatable({ name = "replay", options = o, _px = {}, _py = {}, _bx = core.zeros(0), _by = core.zeros(0),
    _bt = core.zeros(0) },
    Replay)
  if o.update == "stream" then
    s.after_step = Replay._stream_add
  else
    s.after_task = Replay._task_add
  end
  return s
end

function Replay:describe()
  local o = self.options
  return { name = "replay", options = { memory = o.memory, batch = o.batch or nil, update = o.update,
    balanced = o.balanced or nil } }
end

function Replay:_memory(dim)
  if not self.mem then
    self.mem = require("engram.cl").memory(self.options.memory, { dim = dim, balanced = self.options.balanced })
  end
  return self.mem
end

function Replay:before_run(ctx)
  self.mem = nil
  self.gen = self.options.seed and core.generator(self.options.seed) or ctx.rng
end

-- Appends k memory samples to the batch: ctx.x, ctx.y become [B+k, ...].
function Replay:before_batch(ctx)
  local mem = self.mem
  if not mem or #mem == 0 then return end
  local B = ctx.x:size(1)
  local k = math.min(self.options.batch or B, #mem)
  Replay.append(self, ctx, mem:sample(k, self.gen)) -- [k, D], [k], [k]: the memory holds flat rows
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

--- Bytes the memory holds in C: capacity x (sample + label + task) floats.
function Replay:state_bytes()
  local mem = self.mem
  if not mem then return 0 end
  return mem:capacity() * (mem:dim() + (mem:logits_dim() or 0) + 2) * 4
end

function Replay:_stream_add(ctx)
  local x = ctx.task_x
  self:_memory(x:size(2)):add(x, ctx.task_y, ctx.t - 1, nil, self.gen)
end

-- Offers every training sample of the finished task to the reservoir.
function Replay:_task_add(ctx)
  local task = ctx.task
  local mem
  for x, y in task.train:chunks { batch = 1000, flat = true } do
    y = ctx.learner:targets(task, y)
    mem = mem or self:_memory(x:size(2))
    mem:add(x, y, ctx.t - 1, nil, self.gen)
  end
  ctx.extra.replay_memory = { size = mem and #mem or 0, capacity = self.options.memory,
    seen = mem and mem:seen() or 0 }
  local o = self.options
  if (o.grid or o.grid_file) and mem and #mem > 0 then
    local x = mem:tensors()
    require("engram.image").record(ctx, "replay memory", x, { max = o.grid or 64, file = o.grid_file or nil })
  end
end

return setmetatable({ Replay = Replay, append = Replay.append }, { __call = function(_, opts)
  local s = new(opts)
  return s
end })
