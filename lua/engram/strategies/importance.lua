--- Per-sample importance of every parameter, the estimate EWC and MAS share:
--
--   Ω = (1/N) Σₙ h(∂ℓₙ/∂θ)      over N samples of a task, h(g) = g² or |g|
--
-- where ℓₙ is one sample's own objective, given by its gradient with respect
-- to the model's output: EWC's empirical Fisher takes the cross-entropy of
-- the data label (h = square), MAS the squared L2 norm of the output
-- (∂‖f‖²/∂f = 2f, h = absolute value). Never the square of a batch-mean
-- gradient: each sample's gradient is taken on its own.
--
-- Two paths, the same numbers (tested against each other):
--   "batched": a Sequential of Linear layers and element-wise activations in
--     one parameter group: per chunk of samples one forward, one backward,
--     and per Linear layer one product, h(δ)ᵀ h(x) (core eg_linear_*_grad_
--     accumulate; h(ab) = h(a) h(b) for both h);
--   "loop": one backward pass per sample, any model and any groups.
-- "auto" takes the batched path when the model allows it.
local core = require("engram.core")
local cl = require("engram.cl")

local importance = {}

local ELEMENTWISE = { ReLU = true, LeakyReLU = true, Tanh = true, Sigmoid = true, GELU = true, Identity = true,
  Dropout = true }

--- For the batched path: the Linear layers of a plain Sequential with their
-- offsets in the (only) parameter group, or nil when the model does not fit.
function importance.linear_layout(model)
  local mods = rawget(model, "modules")
  if type(mods) ~= "table" or #mods == 0 or type(model.groups) ~= "function" then return nil end
  local groups = model:groups()
  if #groups ~= 1 then return nil end
  local params = groups[1].params
  local layers, off = {}, 0
  for k, m in ipairs(mods) do
    if m.in_features and m.out_features and m.weight then
      local nw = m.weight:numel()
      local l = { index = k, w_off = off, w_n = nw, out = m.out_features, inp = m.in_features }
      off = off + nw
      if m.bias then
        l.b_off, l.b_n = off, m.bias:numel()
        off = off + l.b_n
      end
      -- the arena layout must be what we assume: weight then bias, in module order
      if not params:narrow(1, l.w_off + 1, nw):equal(m.weight:view(nw)) then return nil end
      if l.b_off and not params:narrow(1, l.b_off + 1, l.b_n):equal(m.bias) then return nil end
      layers[#layers + 1] = l
    else
      local name = tostring(m):match("^(%a+)")
      local has_params = rawget(m, "_pspec") or rawget(m, "params_spec")
      if has_params or not ELEMENTWISE[name] then return nil end
    end
  end
  if off ~= params:numel() or #layers == 0 then return nil end
  return layers
end

--- A [K] mask of the output units: 1 on the class ids in `active`, 0
-- elsewhere (nil when active is nil: every unit counts).
function importance.class_mask(active, K)
  if not active then return nil end
  local m = core.zeros(K)
  for _, c in ipairs(active) do m:set(c + 1, 1) end
  return m
end

local function relabel(task, y, targets)
  if targets then return targets(task, y) end
  if task.label_map then return task.label_map:index(y:add_(1)) end
  return y
end

-- One backward pass per sample (and pass).
local function loop(model, task, ds, F, o)
  local N, groups = #ds, model:groups()
  local acc = o.power == "abs" and cl.abs_accumulate or cl.sq_accumulate
  for x, y in ds:chunks { batch = 1, flat = true } do
    y = relabel(task, y, o.targets)
    local logits = model:forward(x)
    for k = 1, o.passes(logits) do
      model:zero_grad()
      model:backward(x, o.output_grad(logits, y, k), false)
      for i, grp in ipairs(groups) do
        if not grp.frozen then acc(F[i], grp.grads, 1 / N) end
      end
    end
  end
end

-- Per Linear layer: Σₙ h(δₙ xₙᵀ) = h(δ)ᵀ h(x), one product per layer and chunk.
local function batched(model, task, ds, layers, F, o)
  local N, mods = #ds, model.modules
  local acc = o.power == "abs" and cl.linear_abs_grad_accumulate or cl.linear_sq_grad_accumulate
  for x, y in ds:chunks { batch = 256, flat = true } do
    y = relabel(task, y, o.targets)
    local logits = model:forward(x)
    for pass = 1, o.passes(logits) do
      local g = o.output_grad(logits, y, pass)
      model:backward(x, g, false)
      for _, l in ipairs(layers) do
        local k = l.index
        local input = k == 1 and x or mods[k - 1].output
        local delta = k == #mods and g or mods[k + 1].grad_input
        local FW = F:narrow(1, l.w_off + 1, l.w_n):view(l.out, l.inp)
        local Fb = l.b_off and F:narrow(1, l.b_off + 1, l.b_n) or nil
        acc(FW, Fb, delta, input, 1 / N)
      end
    end
  end
end

--- Estimates the importance of every parameter of `model` on task `task`:
-- a new array of flat tensors, one per parameter group (zeros for frozen
-- groups), and the path taken ("batched" or "loop"). The model is evaluated
-- (no dropout) and its gradients are zero afterwards.
-- opts:
--   output_grad  function(logits, y, pass) -> [B, K]: each sample's own
--                gradient with respect to the output (NOT divided by the
--                batch size); the model's state is that of forward(x)
--   passes       [1] output gradients per sample, each accumulated on its
--                own (the expected Fisher: one per class, weighted); a
--                number or function(logits) -> number
--   power        "sq" | "abs"
--   samples      [1000] a seeded subset of the task's training data; "all"
--   seed         [1] the subset's seed
--   path         ["auto"] | "batched" | "loop"
--   targets      function(task, y) -> labels (default the task's label map)
--   who          the caller's name for errors ["importance"]
function importance.per_sample(model, task, opts)
  local who = opts.who or "importance"
  local samples, path, seed = opts.samples or 1000, opts.path or "auto", opts.seed or 1
  local ds = task.train
  if samples ~= "all" and #ds > samples then ds = ds:split(samples / #ds, seed) end
  local F = {}
  for i, g in ipairs(model:groups()) do F[i] = core.zeros(g.numel) end
  local was_training = model.training
  model:evaluate()
  local layers = path ~= "loop" and importance.linear_layout(model) or nil
  if path == "batched" and not layers then
    if was_training ~= false then model:train() end
    error(string.format("%s: the batched path needs a Sequential of Linear layers and element-wise " ..
      "activations with one parameter group (use 'loop')", who), 3)
  end
  local o = { output_grad = opts.output_grad, power = opts.power, targets = opts.targets, passes = opts.passes }
  if type(o.passes) == "number" then
    local n = o.passes
    o.passes = function() return n end
  elseif o.passes == nil then
    o.passes = function() return 1 end
  end
  if layers then batched(model, task, ds, layers, F[1], o) else loop(model, task, ds, F, o) end
  model:zero_grad()
  if was_training ~= false then model:train() end
  return F, layers and "batched" or "loop"
end

return importance
