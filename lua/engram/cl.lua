--- engram.cl: continual-learning primitives (thin wrappers over the C core).
--
--   local mem = engram.cl.memory(500, {dim = 784})   -- reservoir replay memory
--   mem:add(x, y, task)                              -- x [B,...] with 784 floats a row
--   local mx, my = mem:sample(32, gen)               -- borrowed buffers
--
--   engram.cl.sq_accumulate(F, g, 1/n)               -- F += g^2 / n   (Fisher)
--   local pen = engram.cl.quad_penalty(theta, anchor, F, lambda, grads)
--
-- Memory (engram.Memory, samples in C memory):
--   memory(capacity, {dim = <required>, logits = 0, balanced = false})
--     dim       floats per sample (e.g. 784 for 28x28 images)
--     logits    floats of stored logits per sample (DER); 0 stores none
--     balanced  class-balanced reservoir: with C classes seen, about
--               capacity/C samples per class (classes may arrive over time)
--   mem:add(x, y [, task [, logits [, gen]]])  offers a batch; plain mode is
--       reservoir sampling: after n samples, each is held with probability
--       capacity/n. y holds class ids; task (an integer >= 0, default 0) is
--       stored with every sample.
--   mem:sample(k [, gen]) -> x, y, task [, logits]: k samples, without
--       replacement when k <= #mem. BORROWED: the same tensors are refilled
--       by the next sample of the same size (clone to keep).
--   #mem, mem:capacity(), mem:seen(), mem:dim(), mem:clear(), mem:close()
--   mem:tensors() -> x, y, task [, logits]: views of everything stored (they
--       see later changes; 0 rows when empty).
--   mem:load(x, y [, task [, logits [, seen]]]): replaces the contents with
--       these samples, as after `seen` offers (default: their number) — how
--       a checkpoint's tensors() come back.
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

local MEMORY_OPTS = { dim = true, logits = true, balanced = true }

--- A replay memory of `capacity` samples (see the header).
function cl.memory(capacity, opts)
  if math.type(capacity) ~= "integer" or capacity < 1 then
    error("memory: capacity must be an integer >= 1, got " .. tostring(capacity), 2)
  end
  if type(opts) ~= "table" then error("memory: options {dim = ...} are required", 2) end
  for k in pairs(opts) do
    if not MEMORY_OPTS[k] then
      error(string.format("memory: unknown option '%s' (known: balanced, dim, logits)", tostring(k)), 2)
    end
  end
  local dim, logits = opts.dim, opts.logits or 0
  if math.type(dim) ~= "integer" or dim < 1 then
    error("memory: 'dim' (floats per sample) must be an integer >= 1, got " .. tostring(dim), 2)
  end
  if math.type(logits) ~= "integer" or logits < 0 then
    error("memory: 'logits' must be an integer >= 0, got " .. tostring(logits), 2)
  end
  return call("memory", core.memory, capacity, dim, logits, opts.balanced and true or false)
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
