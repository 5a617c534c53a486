--- Self-generated replay for language models: the model writes its own
-- pseudo-text of each domain and replays it with its own next-token
-- distributions as soft targets (LAMOL, Sun et al. 2020, with the soft
-- targets of its distillation variant). No real window is kept.
--
--   learner:use(engram.strategies.self_replay{share = 0.1})
--
-- After each task t (except the last of the run: nothing would replay it),
-- the model as it is then writes n = ceil(share · #task.train) windows of T
-- tokens (T: the scenario's context), starting from `prompt` (one token,
-- default a newline) and sampling every next token from its own distribution
-- (temperature, top_k), in evaluate mode, all windows of a chunk at once.
-- The logits of its last forward (the full windows) are kept with them: for
-- every position, the distribution the model that knew the domain best gave
-- the next token. While later tasks train, every step also draws `batch`
-- pseudo-windows uniformly from the pool (every earlier domain, in proportion
-- to its share) and adds
--
--   w · T² KL(softmax(z/T) ‖ softmax(f(x')/T))      mean over the batch's tokens
--
-- to the step's loss with the current batch's loss scaled by 1 − w (w =
-- weight, 0.5: what stored replay of a same-sized batch gives each), in one
-- extra forward and backward whose gradients add to the step's.
--
-- Options (defaults in brackets):
--   share [0.1]        pseudo-windows per task, as a share of its training windows (0 < share)
--   windows [nil]      or that many per task (overrides share)
--   weight [0.5]       the replayed part's weight w in the loss, in (0, 1)
--   T [1]              the distillation temperature (> 0; 1: the distributions themselves)
--   temperature [1]    the sampling temperature (>= 0; 0: greedy)
--   top_k [nil]        sample among the k most likely tokens (all when nil)
--   prompt ["\n"]      the text every pseudo-window starts from (its first token is used)
--   batch [nil]        pseudo-windows per step (default: the batch size)
--   chunk [64]         windows generated together (one forward per position)
--   seed [1]           the generator of the sampled tokens and of the draws
--
-- Language models only (token windows: a task's y is [B, T]); per-task heads
-- are refused. Memory: the pool holds, per pseudo-window, T token ids and
-- T·V float32 logits (128 KiB at T 128, V 256; state_bytes()). Checkpoints:
-- state() gives pool.x [N, T], pool.logits [N·T, V] and pool.task [N];
-- state_meta() the generator. ctx.extra.self_replay: windows per task, the
-- seconds spent generating, and the start of one pseudo-window per task
-- (decoded with the scenario's tokenizer, when it has one).
local core = require("engram.core")
local loss = require("engram.loss")
local strategies = require("engram.strategies")

local SR = {}
SR.__index = SR

local function new(opts)
  local o = strategies.options("self_replay", opts, { share = 0.1, windows = false, weight = 0.5, T = 1,
    temperature = 1, top_k = false, prompt = "\n", batch = false, chunk = 64, seed = 1 }, 3)
  local function bad(msg) error("self_replay: " .. msg, 4) end
  local function finite(v) return type(v) == "number" and v == v and v ~= math.huge and v ~= -math.huge end
  local function posint(name)
    local v = o[name]
    if v and (math.type(v) ~= "integer" or v < 1) then
      bad(name .. " must be a positive integer, got " .. tostring(v))
    end
  end
  if not finite(o.share) or o.share <= 0 then bad("share must be a number > 0, got " .. tostring(o.share)) end
  posint("windows")
  posint("batch")
  posint("chunk")
  posint("top_k")
  if not finite(o.weight) or o.weight <= 0 or o.weight >= 1 then
    bad("weight must be a number in (0, 1), got " .. tostring(o.weight))
  end
  if not finite(o.T) or o.T <= 0 then bad("temperature T must be a finite number > 0, got " .. tostring(o.T)) end
  if not finite(o.temperature) or o.temperature < 0 then
    bad("temperature (sampling) must be a finite number >= 0, got " .. tostring(o.temperature))
  end
  if type(o.prompt) ~= "string" or o.prompt == "" then bad("prompt must be a non-empty string") end
  if math.type(o.seed) ~= "integer" then bad("seed must be an integer, got " .. tostring(o.seed)) end
  return setmetatable({ name = "self_replay", options = o, crit = loss.KLDistill { T = o.T } }, SR)
end

function SR:describe()
  local o = self.options
  return { name = "self_replay", options = { share = not o.windows and o.share or nil, windows = o.windows or nil,
    weight = o.weight, T = o.T, temperature = o.temperature, top_k = o.top_k or nil, batch = o.batch or nil } }
end

function SR:before_run(ctx)
  self.gen = core.generator(self.options.seed)
  self.x, self.z, self.task = nil, nil, nil
  ctx.extra.self_replay = { windows = {}, seconds = {}, sample = {} }
end

function SR.before_task(_, ctx)
  if ctx.opts.heads then
    error("self_replay: per-task heads (the learner's heads = true) are not supported; it replays language " ..
      "models' token windows", 0)
  end
end

-- The first token of the prompt, through the scenario's tokenizer (bytes otherwise).
local function start_id(o, ctx)
  local tok = ctx.scenario.tokenizer
  if tok then return tok:encode(o.prompt):get(1) end
  return o.prompt:byte(1)
end

--- Writes n pseudo-windows of T tokens with the model: ids [n, T] and the
-- logits of the last forward [n·T, V] (new tensors). The model is put in
-- evaluate mode and back.
function SR:generate(model, n, T, first)
  local o = self.options
  local was = model.training
  model:evaluate()
  local X, Z
  local done = 0
  while done < n do
    local G = math.min(o.chunk, n - done)
    local seq = core.zeros(G, T)
    seq:narrow(2, 1, 1):fill_(first)
    local ids = core.zeros(G)
    local logits
    for L = 1, T do
      local x = L == T and seq or seq:narrow(2, 1, L):clone()
      logits = model:forward(x)
      local V = logits:size(2)
      if L < T then
        local last = logits:view(G, L, V):select(2, L) -- [G, V], row stride L·V
        core._text.sample_rows(last, o.temperature, o.top_k or 0, self.gen, ids)
        seq:narrow(2, L + 1, 1):copy_(ids:view(G, 1))
      end
    end
    if not X then
      X, Z = core.zeros(n, T), core.zeros(n * T, logits:size(2))
    end
    X:narrow(1, done + 1, G):copy_(seq)
    Z:narrow(1, done * T + 1, G * T):copy_(logits)
    done = done + G
  end
  if was ~= false then model:train() end
  return X, Z
end

function SR:after_task(ctx)
  if ctx.t >= #ctx.tasks then return end -- nothing trains after the last task
  local o, task = self.options, ctx.task
  local T = ctx.scenario.ctx
  if math.type(T) ~= "integer" then
    error("self_replay: language models only: the scenario has no token windows (its ctx is not set; see " ..
      "engram.scenarios.text_domains)", 0)
  end
  local n = o.windows or math.max(1, math.ceil(o.share * #task.train))
  local t0 = os.clock()
  local X, Z = self:generate(ctx.model, n, T, start_id(o, ctx))
  local secs = os.clock() - t0
  local tk = core.full({ n }, ctx.t - 1)
  if self.x then
    self.x, self.z, self.task = core.cat({ self.x, X }, 1), core.cat({ self.z, Z }, 1), core.cat({ self.task, tk }, 1)
  else
    self.x, self.z, self.task = X, Z, tk
  end
  local e = ctx.extra.self_replay
  e.windows[ctx.t], e.seconds[ctx.t] = n, secs
  local tok = ctx.scenario.tokenizer
  if tok then
    local txt = tok:decode(X:select(1, 1))
    -- kept in the results (JSON): bytes that are not UTF-8 become '?'
    e.sample[ctx.t] = utf8.len(txt) and txt or txt:gsub("[\128-\255]", "?")
  end
  if not ctx.opts.quiet then
    io.stderr:write(string.format("self_replay: %d pseudo-windows of %s written in %.1f s of CPU\n", n,
      task.name or ("task " .. ctx.t), secs))
  end
end

function SR.loss(s, ctx)
  if not s.x or not ctx.grad_logits then return end
  local keep = 1 - s.options.weight
  ctx.grad_logits:mul_(keep)
  ctx.loss = ctx.loss * keep
end

function SR:after_backward(ctx)
  if not self.x then return end
  local o, model = self.options, ctx.model
  local N, T = self.x:size(1), self.x:size(2)
  local k = o.batch or math.max(1, ctx.task_x:size(1))
  local xr, zr = self._xr, self._zr
  if not xr or xr:size(1) ~= k then
    xr, zr = core.zeros(k, T), core.zeros(k * T, self.z:size(2))
    self._xr, self._zr = xr, zr
  end
  local gen = self.gen
  for j = 1, k do
    local i = gen:randint(1, N)
    xr:select(1, j):copy_(self.x:select(1, i))
    zr:narrow(1, (j - 1) * T + 1, T):copy_(self.z:narrow(1, (i - 1) * T + 1, T))
  end
  local l, g = self.crit:forward_backward(model:forward(xr), zr)
  g:mul_(o.weight)
  model:backward(xr, g, false)
  local add = o.weight * l
  ctx.loss, ctx.penalty = ctx.loss + add, ctx.penalty + add
end

--- The pool as named tensors: pool.x [N, T] (ids), pool.logits [N·T, V], pool.task [N] (0-based).
function SR:state()
  if not self.x then return {} end
  return { ["pool.x"] = self.x, ["pool.logits"] = self.z, ["pool.task"] = self.task }
end

function SR:state_meta() return { gen = self.gen and self.gen:state() or nil } end

function SR:load_state(st, _, meta)
  local x, z, t = st["pool.x"], st["pool.logits"], st["pool.task"]
  if x == nil and z == nil and t == nil then
    self.x, self.z, self.task = nil, nil, nil
  else
    if not (x and z and t) then error("self_replay: load_state: pool.x, pool.logits and pool.task go together", 0) end
    local N = x:size(1)
    if x:dim() ~= 2 or z:dim() ~= 2 or z:size(1) ~= N * x:size(2) or t:numel() ~= N then
      error("self_replay: load_state: the pool's tensors disagree in size", 0)
    end
    self.x, self.z, self.task = x:clone(), z:clone(), t:clone()
  end
  if type(meta) == "table" and type(meta.gen) == "string" then
    self.gen = self.gen or core.generator(self.options.seed)
    self.gen:set_state(meta.gen)
  end
  return self
end

--- Bytes the pool holds (ids and logits, float32).
function SR:state_bytes()
  return self.x and 4 * (self.x:numel() + self.z:numel() + self.task:numel()) or 0
end

return setmetatable({ SR = SR }, { __call = function(_, opts) return new(opts) end })
