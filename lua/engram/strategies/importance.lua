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
-- Two paths, the same numbers (tested against each other and against
-- gradients taken one sample at a time, tests/lua/test_importance.lua):
--   "batched": per chunk of 256 samples one forward and one backward (per
--     pass), and per layer with parameters one C call that forms every
--     sample's own gradient from the layer's input and δ (the gradient with
--     respect to its output, which the next module leaves in grad_input) and
--     adds h of it (core/cl_importance.c): a Linear is one product h(δ)ᵀh(x)
--     for the chunk ([B, in] inputs) or one per sample ([B, T, in]: a
--     sample's positions add up before h); a Conv2d one product per sample
--     over its im2col patches; LayerNorm and Embedding sums per sample. The
--     model is a chain: a Sequential (nested ones too) or a MultiHead (its
--     trunk, then the selected head) of Linear, Conv2d, LayerNorm, Embedding
--     (first, or after modules without parameters), element-wise activations,
--     Softmax, LogSoftmax, Dropout (evaluated: the identity), Flatten,
--     Reshape, MaxPool2d and Identity, with any number of parameter groups.
--     The backward runs with the layers' own parameter gradients switched
--     off: only δ is needed. With several passes (the expected Fisher) a
--     Linear over [B, in] sums h(δ) over the passes and takes one product.
--   "loop": one backward pass per sample, any model.
-- Frozen groups get zeros on both paths (so do the heads a MultiHead did not
-- select, whose gradients are zero). "auto" takes the batched path when the
-- model allows it; when it does not (a Concat, a module written in Lua, ...)
-- it takes the loop and says so once per process and reason on stderr:
--   "ewc: per-sample gradients one sample at a time (slower): the batched
--    path does not take Concat(dim 2) (module 2 of Sequential)"
-- unless the caller is quiet (opts.quiet; the strategies pass the learner's
-- quiet option). importance.write(line) prints it; replace it to redirect.
local core = require("engram.core")
local cl = require("engram.cl")
local nn = require("engram.nn")

local importance = {}

-- engram's own module classes, by metatable (a module written in Lua that
-- borrows a name is not one of them); made on first use.
local CLASSES
local function class_of(m)
  if not CLASSES then
    local make = {
      Linear = function() return nn.Linear(1, 1) end, Conv2d = function() return nn.Conv2d(1, 1, 1) end,
      LayerNorm = function() return nn.LayerNorm(1) end, Embedding = function() return nn.Embedding(1, 1) end,
      ReLU = nn.ReLU, LeakyReLU = nn.LeakyReLU, Tanh = nn.Tanh, Sigmoid = nn.Sigmoid, GELU = nn.GELU,
      Softmax = nn.Softmax, LogSoftmax = nn.LogSoftmax, Dropout = nn.Dropout, Flatten = nn.Flatten,
      Reshape = function() return nn.Reshape { 1 } end, MaxPool2d = function() return nn.MaxPool2d(1) end,
      Identity = nn.Identity, Sequential = nn.Sequential,
      MultiHead = function() return nn.MultiHead(nn.Identity()) end,
    }
    CLASSES = {}
    for name, f in pairs(make) do CLASSES[getmetatable(f())] = name end
  end
  return type(m) == "table" and CLASSES[getmetatable(m)] or nil
end

local WITH_PARAMS = { Linear = true, Conv2d = true, LayerNorm = true, Embedding = true }

local function label(m)
  if type(m) ~= "table" or type(m._repr) ~= "function" then
    return type(m) == "table" and type(m.name) == "string" and m.name or "a module written in Lua"
  end
  local ok, s = pcall(tostring, m)
  if not ok or type(s) ~= "string" then return "a module" end
  return (s:match("^[^\n]*"):gsub(" %([%d,]+ parameters%)", ""))
end

-- Appends the modules of the chain m to `out`, in the order data flows;
-- false and the module that breaks the chain otherwise.
local function chain(m, out, where)
  local kind = class_of(m)
  if kind == "Sequential" then
    for i, c in ipairs(m.modules) do
      local ok, why = chain(c, out, string.format("module %d of Sequential", i))
      if not ok then return false, why end
    end
    return true
  elseif kind == "MultiHead" then
    local ok, why = chain(m.modules[1], out, "the trunk of MultiHead")
    if not ok then return false, why end
    return chain(m.modules[1 + m.active], out, string.format("head %d of MultiHead", m.active))
  elseif kind then
    out[#out + 1] = { module = m, kind = kind }
    return true
  end
  return false, string.format("%s (%s)", label(m), where or "the model")
end

--- For the batched path: the modules of model as a chain, those with
-- parameters carrying where their weight (w) and bias (b) sit in their
-- group's flat arena ({group = index, off = offset, n = numel}); or nil and
-- what the path cannot take.
function importance.layout(model)
  if type(model) ~= "table" or type(model.groups) ~= "function" or type(model.parameters) ~= "function" then
    return nil, "a model without groups()"
  end
  local mods = {}
  local ok, why = chain(model, mods)
  if not ok then return nil, why end
  local groups, gindex, where, offs = model:groups(), {}, {}, {}
  for i, g in ipairs(groups) do gindex[g.name] = i end
  for _, p in ipairs(model:parameters()) do
    local gi = gindex[p.group]
    local off, n = offs[gi] or 0, p.value:numel()
    where[p.value] = { group = gi, off = off, n = n }
    offs[gi] = off + n
  end
  local seen_params = false
  for _, l in ipairs(mods) do
    local m = l.module
    if WITH_PARAMS[l.kind] and rawget(m, "weight") then
      if l.kind == "Embedding" and seen_params then
        return nil, label(m) .. " after a module with parameters"
      end
      l.w, l.b = where[m.weight], m.bias and where[m.bias] or nil
      if not l.w or (m.bias and not l.b) then return nil, label(m) .. " (its parameters are not the model's)" end
      -- the arena layout must be what parameters() says
      local p = groups[l.w.group].params
      if not p:narrow(1, l.w.off + 1, l.w.n):equal(m.weight:view(l.w.n)) then
        return nil, label(m) .. " (its weight is not where parameters() puts it)"
      end
      l.frozen = groups[l.w.group].frozen
      seen_params = true
    end
  end
  return mods
end

--- A [K] mask of the output units: 1 on the class ids in `active`, 0
-- elsewhere (nil when active is nil: every unit counts).
function importance.class_mask(active, K)
  if not active then return nil end
  local m = core.zeros(K)
  for _, c in ipairs(active) do m:set(c + 1, 1) end
  return m
end

--- Prints a note (the loop's); replaceable (tests, or a log of one's own).
function importance.write(line) io.stderr:write(line, "\n") end

local noted = {}
local function note(who, why)
  local line = string.format("%s: per-sample gradients one sample at a time (slower): the batched path does not " ..
    "take %s", who, why)
  if noted[line] then return end
  noted[line] = true
  importance.write(line)
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

local function slice(F, at, ...)
  return F[at.group]:narrow(1, at.off + 1, at.n):view(...)
end

-- Adds h of each sample's gradient of module l's parameters.
local function accumulate(l, F, input, delta, scale, absolute)
  local m = l.module
  local Fb = l.b and F[l.b.group]:narrow(1, l.b.off + 1, l.b.n) or nil
  if l.kind == "Linear" then
    local FW = slice(F, l.w, m.out_features, m.in_features)
    if absolute then
      cl.linear_abs_grad_accumulate(FW, Fb, delta, input, scale)
    else
      cl.linear_sq_grad_accumulate(FW, Fb, delta, input, scale)
    end
  elseif l.kind == "Conv2d" then
    local FW = slice(F, l.w, m.out_channels, m.in_channels, m.kernel, m.kernel)
    cl.conv2d_h_grad_accumulate(FW, Fb, delta, input, m.stride, m.padding, scale, absolute)
  elseif l.kind == "LayerNorm" then
    cl.layernorm_h_grad_accumulate(slice(F, l.w, l.w.n), Fb, delta, input, m._mean, m._rstd, scale, absolute)
  else -- Embedding
    cl.embedding_h_grad_accumulate(slice(F, l.w, m.num, m.dim), delta, input, scale, absolute)
  end
end

-- With several passes per sample (the expected Fisher: one per class), a
-- Linear with one position per sample needs no product per pass: its input
-- is the same in every pass, so Σ_pass h(δ)ᵀ h(x) = (Σ_pass h(δ))ᵀ h(x).
-- The sum of h(δ) is kept here and handed to the layer's one product after
-- the last pass as δ' with h(δ') = Σ h(δ): √Σδ² for the square, Σ|δ| for
-- the absolute value.
local function pool(sums, i, delta, pass, absolute)
  local s = sums[i]
  if not s or s.sum:numel() ~= delta:numel() then
    s = { sum = core.zeros(table.unpack(delta:size())), tmp = core.zeros(table.unpack(delta:size())) }
    sums[i] = s
  end
  if pass == 1 then s.sum:zero_() end
  s.tmp:copy_(delta)
  if absolute then s.tmp:abs_() else s.tmp:mul_(delta) end
  s.sum:add_(s.tmp)
end

-- Per chunk: one forward, one backward per pass without parameter gradients
-- (the layers skip them as for a frozen group; only δ is needed), and one C
-- call per layer with parameters (and pass, but for pooled Linear layers).
local function batched(model, task, ds, mods, F, o)
  local N, absolute = #ds, o.power == "abs"
  local todo = {}
  for i, l in ipairs(mods) do
    if l.w and not l.frozen then todo[#todo + 1] = i end
  end
  local function input_of(i, x) return i == 1 and x or mods[i - 1].module.output end
  local sums = {}
  local frozen_before = {}
  for _, i in ipairs(todo) do frozen_before[i] = rawget(mods[i].module, "_frozen") end
  local function run()
    for _, i in ipairs(todo) do mods[i].module._frozen = true end
    for x, y in ds:chunks { batch = 256, flat = true } do
      y = relabel(task, y, o.targets)
      local logits = model:forward(x)
      local npass = o.passes(logits)
      local pooled = {}
      for pass = 1, npass do
        local g = o.output_grad(logits, y, pass)
        model:backward(x, g, false)
        for _, i in ipairs(todo) do
          local input = input_of(i, x)
          local delta = i == #mods and g or mods[i + 1].module.grad_input
          if npass > 1 and mods[i].kind == "Linear" and input:dim() == 2 then
            pool(sums, i, delta, pass, absolute)
            pooled[#pooled + 1] = pass == 1 and i or nil
          else
            accumulate(mods[i], F, input, delta, 1 / N, absolute)
          end
        end
      end
      for _, i in ipairs(pooled) do
        local d = sums[i].sum
        if not absolute then d:sqrt_() end
        accumulate(mods[i], F, input_of(i, x), d, 1 / N, absolute)
      end
    end
  end
  local ok, err = pcall(run)
  for _, i in ipairs(todo) do mods[i].module._frozen = frozen_before[i] end
  if not ok then error(err, 0) end
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
--   who          the caller's name for errors and the note ["importance"]
--   quiet        [false] no note when "auto" falls back to the loop
function importance.per_sample(model, task, opts)
  local who = opts.who or "importance"
  local samples, path, seed = opts.samples or 1000, opts.path or "auto", opts.seed or 1
  local ds = task.train
  if samples ~= "all" and #ds > samples then ds = ds:split(samples / #ds, seed) end
  local F = {}
  for i, g in ipairs(model:groups()) do F[i] = core.zeros(g.numel) end
  local mods, why
  if path ~= "loop" then mods, why = importance.layout(model) end
  if path == "batched" and not mods then
    error(string.format("%s: the batched path does not take %s; use 'loop' (it takes a Sequential or MultiHead " ..
      "of Linear, Conv2d, LayerNorm, Embedding, activations, Dropout, Flatten, Reshape, MaxPool2d and Identity)",
      who, why), 3)
  end
  if path == "auto" and not mods and not opts.quiet then note(who, why) end
  local o = { output_grad = opts.output_grad, power = opts.power, targets = opts.targets, passes = opts.passes }
  if type(o.passes) == "number" then
    local n = o.passes
    o.passes = function() return n end
  elseif o.passes == nil then
    o.passes = function() return 1 end
  end
  local was_training = model.training
  model:evaluate()
  local ok, err
  if mods then
    ok, err = pcall(batched, model, task, ds, mods, F, o)
  else
    ok, err = pcall(loop, model, task, ds, F, o)
  end
  model:zero_grad()
  if was_training ~= false then model:train() end
  if not ok then error(err, 0) end
  return F, mods and "batched" or "loop"
end

return importance
