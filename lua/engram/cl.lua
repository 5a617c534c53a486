--- engram.cl: continual-learning primitives (thin wrappers over the C core).
--
--   local mem = engram.cl.memory(500, {dim = 784})   -- reservoir replay memory
--   mem:add(x, y, task)                              -- x [B,...] with 784 floats a row
--   local mx, my = mem:sample(32, gen)               -- borrowed buffers
--
--   engram.cl.sq_accumulate(F, g, 1/n)               -- F += g^2 / n   (Fisher)
--   local pen = engram.cl.quad_penalty(theta, anchor, F, lambda, grads)
--
-- Memory (engram.Memory, samples in C memory; core/cl.h):
--   memory(capacity, {dim = <required>, logits = 0, insert = "reservoir",
--                     per_class = nil, levels = nil})
--     capacity  samples in all; nil with per_class
--     per_class samples per class seen: the capacity grows as classes arrive
--     dim       floats per sample (e.g. 784 for 28x28 images)
--     logits    floats of stored logits per sample (DER); 0 stores none
--     insert    "reservoir": after n samples, each is held with probability
--               capacity/n; "balanced" (or balanced = true): class-balanced
--               reservoir, about capacity/C per class with C classes seen;
--               "score": keeps the highest scores given with the samples (in
--               all, or per class with per_class), ties decided by the generator
--     levels    uint8 storage: a tensor of 256 increasing levels, or
--               {scale =, offset =}, or a dataset's ds:quantization(); every
--               value added must be a level (x = levels[q]), and comes back
--               bit for bit; a quarter of the bytes
--   mem:add(x, y [, task [, logits [, gen [, weights [, scores]]]]])  offers a
--       batch. y holds class ids; task (an integer >= 0, default 0) is
--       stored with every sample; weights [B] (>= 0, default 1) each
--       sample's sampling weight; scores [B] for insert = "score".
--   mem:sample(k [, gen]) -> x, y, task [, logits]: k samples, uniform and
--       without replacement when k <= #mem while every weight is 1, else in
--       proportion to the weights (with replacement). BORROWED: the same
--       tensors are refilled by the next sample of the same size (clone to keep).
--   #mem, mem:capacity(), mem:seen(), mem:dim(), mem:clear(), mem:close(),
--   mem:policy(), mem:per_class(), mem:classes(), mem:uint8(), mem:bytes()
--   mem:weights() a view of the weights [#mem]; mem:set_weights(w) replaces them
--   mem:tensors() -> x, y, task [, logits]: views of everything stored (they
--       see later changes until a per-class capacity grows; 0 rows when
--       empty); in uint8 storage x is a dequantised copy.
--   mem:codes() -> codes [#mem, D] (0..255 as floats), levels [256]; nil
--       for float storage
--   mem:load(x, y [, task [, logits [, seen [, weights [, scores]]]]]):
--       replaces the contents with these samples, as after `seen` offers
--       (default: their number) — how a checkpoint's tensors() come back.
--   on_levels(x, levels) -> true when x could be stored as uint8 codes
--   sample_losses(logits, labels) -> each sample's cross-entropy [B]
-- x comes back with the sample shape of the last add ([k,1,28,28] after
-- adding [B,1,28,28]). Randomness uses gen or the default generator.
--
-- Penalties and importance, over flat tensors with a group's layout:
--   sq_accumulate(F, g [, scale = 1])            F += scale g^2
--   linear_sq_grad_accumulate(FW, Fb, delta, x [, scale = 1])
--       per-sample squared gradients of a linear layer in one product:
--       FW[out,in] += scale (delta^2)^T (x^2), Fb += scale sum_n delta_n^2
--   linear_abs_grad_accumulate(FW, Fb, delta, x [, scale = 1])
--       the same with absolute values (MAS): FW += scale |delta|^T |x|.
--       delta [B,...,out] and x [B,...,in] with positions inside a sample
--       (a sequence): each sample's gradient summed over them, then h
--   conv2d_h_grad_accumulate(FW, Fb, delta, x, stride, padding [, scale [, absolute]])
--   layernorm_h_grad_accumulate(Fw, Fb, delta, x, mean, rstd [, scale [, absolute]])
--   embedding_h_grad_accumulate(FW, delta, ids [, scale [, absolute]])
--       the same for a Conv2d, a LayerNorm (mean, rstd as its forward saved
--       them) and an Embedding (repeated ids in a sample add up first):
--       importance += scale * sum_n h(sample n's gradient), h the square, or
--       the absolute value when absolute (core/cl.h)
--   abs_accumulate(F, g [, scale = 1])           F += scale |g|
--   decay_accumulate(F, Fnew, gamma)              F = gamma F + Fnew (online EWC)
--   sample_labels(labels, logits [, mask [, gen]])  labels[n] ~ softmax(logits[n]) over
--       the classes mask selects (the sampled Fisher's labels)
--   si_accumulate(omega, prev, g, pg, theta)      SI, every step: omega -= (g - pg) (theta - prev);
--       prev = theta (pg, the penalties' share of g, may be nil)
--   si_consolidate(Omega, omega, start, theta, xi)
--       SI, each task's end: Omega += omega / ((theta - start)^2 + xi); omega = 0; start = theta
--   quad_penalty(theta, anchor, F, lambda [, grad]) -> (lambda/2) sum F (theta-anchor)^2,
--       and grad += lambda F (theta - anchor) when grad is given
--   quad_fold(A, B, C, F, anchor) -> C'       A += F, B += F anchor, C' = C + sum F anchor^2
--   quad_penalty_folded(theta, A, B, C, lambda [, grad])  the sum of the penalties of
--       every task folded in, in one pass: (lambda/2) (sum A theta^2 - 2 B theta + C),
--       grad += lambda (A theta - B)
--
-- Replay (A-GEM's projection; core/cl.h):
--   agem_project(grads, refs) -> projected, dot   grads and refs are lists of
--       flat tensors, one per parameter group; with dot = g.g_ref over all of
--       them, when dot < 0 every g -= (dot / g_ref.g_ref) g_ref (one C call)
local core = require("engram.core")

local cl = {}

local call = require("engram.util").call

local MEMORY_OPTS = { dim = true, logits = true, balanced = true, insert = true, per_class = true, levels = true }
local POLICIES = { reservoir = true, balanced = true, score = true }

--- The 256 levels of a uint8 memory from a dataset's quantization
-- ({levels = tensor} or {scale =, offset =}: levels[q] = q * scale + offset).
function cl.levels(q)
  if type(q) ~= "table" and not core.istensor(q) then
    error("levels: expected a tensor of 256 levels or {scale =, offset =}, got " .. type(q), 2)
  end
  if core.istensor(q) then return q end
  if q.levels then return q.levels end
  local scale, offset = q.scale, q.offset
  if type(scale) ~= "number" or type(offset) ~= "number" or scale ~= scale or scale <= 0 or scale == math.huge
    or offset ~= offset or math.abs(offset) == math.huge then
    error(string.format("levels: scale must be a finite number > 0 and offset a finite number, got %s and %s",
      tostring(scale), tostring(offset)), 2)
  end
  local t = {}
  for v = 0, 255 do t[v + 1] = v * scale + offset end
  return core.tensor(t)
end

--- A replay memory of `capacity` samples (see the header).
function cl.memory(capacity, opts)
  if type(opts) ~= "table" then error("memory: options {dim = ...} are required", 2) end
  for k in pairs(opts) do
    if not MEMORY_OPTS[k] then
      error(string.format("memory: unknown option '%s' (known: balanced, dim, insert, levels, logits, per_class)",
        tostring(k)), 2)
    end
  end
  local per_class = opts.per_class or 0
  if math.type(per_class) ~= "integer" or per_class < 0 then
    error("memory: per_class must be a positive integer, got " .. tostring(opts.per_class), 2)
  end
  if per_class > 0 then
    if capacity ~= nil and capacity ~= 0 then
      error("memory: give a capacity or per_class, not both (got " .. tostring(capacity) .. " and " ..
        per_class .. ")", 2)
    end
    capacity = 0
  elseif math.type(capacity) ~= "integer" or capacity < 1 then
    error("memory: capacity must be an integer >= 1, got " .. tostring(capacity), 2)
  end
  local dim, logits = opts.dim, opts.logits or 0
  if math.type(dim) ~= "integer" or dim < 1 then
    error("memory: 'dim' (floats per sample) must be an integer >= 1, got " .. tostring(dim), 2)
  end
  if math.type(logits) ~= "integer" or logits < 0 then
    error("memory: 'logits' must be an integer >= 0, got " .. tostring(logits), 2)
  end
  local insert = opts.insert or (opts.balanced and "balanced" or "reservoir")
  if not POLICIES[insert] then
    error("memory: insert must be 'reservoir', 'balanced' or 'score', got " .. tostring(insert), 2)
  end
  if opts.balanced and insert ~= "balanced" then
    error("memory: balanced = true is insert = 'balanced', not '" .. insert .. "'", 2)
  end
  local levels = opts.levels and cl.levels(opts.levels) or nil
  return call("memory", core.memory, capacity, dim, logits, insert, per_class, levels)
end

--- True when every value of x is one of the 256 levels (x could be stored as uint8).
function cl.on_levels(x, levels)
  return call("on_levels", core.on_levels, x, cl.levels(levels))
end

--- Each sample's cross-entropy: a new tensor [B] (score insertion's "loss").
function cl.sample_losses(logits, labels)
  return call("sample_losses", core.sample_losses, logits, labels)
end

function cl.sq_accumulate(F, g, scale)
  call("sq_accumulate", core.sq_accumulate, F, g, scale or 1)
end

function cl.linear_sq_grad_accumulate(FW, Fb, delta, x, scale)
  call("linear_sq_grad_accumulate", core.linear_sq_grad_accumulate, FW, Fb, delta, x, scale or 1)
end

function cl.linear_abs_grad_accumulate(FW, Fb, delta, x, scale)
  call("linear_abs_grad_accumulate", core.linear_abs_grad_accumulate, FW, Fb, delta, x, scale or 1)
end

function cl.conv2d_h_grad_accumulate(FW, Fb, delta, x, stride, padding, scale, absolute)
  call("conv2d_h_grad_accumulate", core.conv2d_h_grad_accumulate, FW, Fb, delta, x, stride or 1, padding or 0,
    scale or 1, absolute and true or false)
end

function cl.layernorm_h_grad_accumulate(Fw, Fb, delta, x, mean, rstd, scale, absolute)
  call("layernorm_h_grad_accumulate", core.layernorm_h_grad_accumulate, Fw, Fb, delta, x, mean, rstd, scale or 1,
    absolute and true or false)
end

function cl.embedding_h_grad_accumulate(FW, delta, ids, scale, absolute)
  call("embedding_h_grad_accumulate", core.embedding_h_grad_accumulate, FW, delta, ids, scale or 1,
    absolute and true or false)
end

function cl.abs_accumulate(F, g, scale)
  call("abs_accumulate", core.abs_accumulate, F, g, scale or 1)
end

function cl.sample_labels(labels, logits, mask, gen)
  call("sample_labels", core.sample_labels, labels, logits, mask, gen)
end

function cl.si_accumulate(omega, prev, g, pg, theta)
  call("si_accumulate", core.si_accumulate, omega, prev, g, pg, theta)
end

function cl.si_consolidate(Omega, omega, start, theta, xi)
  call("si_consolidate", core.si_consolidate, Omega, omega, start, theta, xi)
end

function cl.decay_accumulate(F, Fnew, gamma)
  call("decay_accumulate", core.decay_accumulate, F, Fnew, gamma)
end

function cl.quad_penalty(theta, anchor, F, lambda, grad)
  return call("quad_penalty", core.quad_penalty, theta, anchor, F, lambda, grad)
end

function cl.quad_penalty_folded(theta, A, B, C, lambda, grad)
  return call("quad_penalty_folded", core.quad_penalty_folded, theta, A, B, C, lambda, grad)
end

--- herding(features [n, d], m) -> the 1-based rows of m exemplars, in order of
-- choice: the running mean of the rows chosen stays closest to the mean of all.
function cl.herding(features, m)
  return call("herding", core.herding, features, m)
end

function cl.quad_fold(A, B, C, F, anchor)
  return call("quad_fold", core.quad_fold, A, B, C, F, anchor)
end

function cl.agem_project(grads, refs)
  return call("agem_project", core.agem_project, grads, refs)
end

return cl
