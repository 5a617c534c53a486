--- engram.nn.isolation: modules for parameter isolation -- LoRA around a
-- Linear, bottleneck adapters, a per-task Switch, progressive columns. Each
-- keeps one set of parameters per task (a key); a set is a child module
-- whose parameters go into a parameter group of their own with
-- model:new_group(name, {modules...}) (the strategies in
-- engram.strategies.{lora,adapters,heads,progressive} do this per task).
-- The manual is docs/isolation.md; the matrix products are the core's
-- Linear kernels on the module's own buffers (a warm step allocates nothing).
local core = require("engram.core")
local base = require("engram.nn.module")

local nn = base.nn
local class, new, buffer, options, posint = base.class, base.new, base.buffer, base.options, base.posint
local label, ensure_built = base.label, base.ensure_built

local function class_name(m)
  local mt = getmetatable(m)
  return (mt and mt.__name) or "LuaModule"
end

local function key_str(k) return type(k) == "string" and ("'" .. k .. "'") or tostring(k) end

local function check_key(who, key, level)
  if (math.type(key) ~= "integer" and type(key) ~= "string") or key == "" then
    error(string.format("%s: a set's key is an integer (the task) or a non-empty string, got %s", who,
      tostring(key)), level + 1)
  end
end

-- ------------------------------------------------------------------ LoRA

local LoRAFactors = class("LoRAFactors")
-- One task's factors of a LoRA: A [rank, in] and B [out, rank], delta W = scale B A.
local function factors(nin, nout, rank, scale)
  local f = new(LoRAFactors)
  f.rank, f.scale, f.in_features, f.out_features = rank, scale, nin, nout
  f._pspec = { { name = "A", shape = { rank, nin } }, { name = "B", shape = { nout, rank } } }
  f._h1, f._gh1, f._ws, f._ws2 = buffer(), buffer(), buffer(), buffer()
  return f
end
-- A like a Linear's weight (PyTorch's default, as PEFT does), B zero: the
-- product is zero and training starts exactly from the base model.
function LoRAFactors:reset(gen)
  local b = 1 / math.sqrt(self.in_features)
  core.nn_init_uniform(self.A, -b, b, gen)
  self.B:fill_(0)
end
-- forward(x) -> the low-rank term scale (x A^T) B^T [..., out]; backward(x,
-- gy, need) accumulates the factors' gradients and returns its part of the
-- input gradient. The LoRA adds both to its Linear's.
function LoRAFactors:forward(x)
  if not self.A then error("LoRA: a set has no parameters yet (model:new_group)", 2) end
  local h = core.nn_linear_forward(self._h1, x, self.A, nil, self._ws)
  if self.scale ~= 1 then h:mul_(self.scale) end
  return core.nn_linear_forward(self.output, h, self.B, nil, self._ws2)
end
function LoRAFactors:backward(x, gy, need)
  local gA, gB = self.grad_A, self.grad_B
  if self._frozen then gA, gB = nil, nil end
  local gh = core.nn_linear_backward(self._gh1, gB, nil, gy, self._h1, self.B)
  if self.scale ~= 1 then gh:mul_(self.scale) end
  local gx = core.nn_linear_backward(need ~= false and self.grad_input, gA, nil, gh, x, self.A)
  return need ~= false and gx or nil
end
function LoRAFactors:_repr()
  return string.format("LoRAFactors(rank %d, scale %g)", self.rank, self.scale)
end

local LoRA = class("LoRA")
--- LoRA(linear, {rank = 8, alpha = rank}): y = linear(x) + (alpha/rank) x A^T B^T
-- with the active set's factors (Hu et al. 2021). The Linear keeps its
-- weights; sets are added per task with add_set(key) and selected with
-- activate(key) (nil: the base alone). modules[1] is the Linear, then the sets.
function nn.LoRA(layer, opts)
  local o = options(opts, { rank = 8, alpha = false }, "LoRA")
  if type(layer) ~= "table" or class_name(layer) ~= "Linear" then
    error(string.format("LoRA: wraps a Linear, got %s", type(layer) == "table" and label(layer) or type(layer)), 2)
  end
  local rank = posint(o.rank, "rank", "LoRA")
  local most = math.min(layer.in_features, layer.out_features)
  if rank > most then
    error(string.format("LoRA: rank %d is larger than the layer (%s: at most %d)", rank, label(layer), most), 2)
  end
  local alpha = o.alpha or rank
  if type(alpha) ~= "number" or alpha ~= alpha or alpha <= 0 or alpha == math.huge then
    error("LoRA: alpha must be a positive number, got " .. tostring(alpha), 2)
  end
  local m = new(LoRA)
  m.modules, m.rank, m.alpha, m.sets = { layer }, rank, alpha, {}
  m.in_features, m.out_features = layer.in_features, layer.out_features
  if rawget(layer, "_built") then m._built = true end
  return m
end

--- lora:add_set(key, {rank = self.rank, alpha = self.alpha}) -> the factors
-- module, placed in the tree; give it a group with model:new_group.
function LoRA:add_set(key, opts)
  check_key("LoRA:add_set", key, 2)
  local o = options(opts, { rank = self.rank, alpha = false, scale = false }, "LoRA:add_set")
  if self.sets[key] then error(string.format("LoRA:add_set: a set %s exists already", key_str(key)), 2) end
  local rank = posint(o.rank, "rank", "LoRA:add_set")
  local scale = o.scale or (o.alpha or self.alpha * rank / self.rank) / rank
  local f = factors(self.in_features, self.out_features, rank, scale)
  self.modules[#self.modules + 1] = f
  self.sets[key] = f
  f.key = key
  return f
end

--- lora:activate(key) selects a set (nil: none, the base model alone).
function LoRA:activate(key)
  if key ~= nil and not self.sets[key] then
    error(string.format("LoRA:activate: %s has no set %s (sets: %s)", label(self.modules[1]), key_str(key),
      self:_keys()), 2)
  end
  if self.merged ~= nil and key ~= self.merged then
    error(string.format("LoRA:activate: set %s is merged into the weights; unmerge() first", key_str(self.merged)), 2)
  end
  self.active = key
  return self
end

function LoRA:_keys()
  local ks = {}
  for _, f in ipairs(self.modules) do
    if f.key ~= nil then ks[#ks + 1] = key_str(f.key) end
  end
  return #ks > 0 and table.concat(ks, ", ") or "none"
end

function LoRA:forward(x)
  if not self._built then ensure_built(self) end
  local y = self.modules[1]:forward(x)
  local f = self.active ~= nil and self.merged == nil and self.sets[self.active]
  if f then
    if not f.A then
      error(string.format("LoRA: set %s has no parameters yet (model:new_group)", key_str(self.active)), 2)
    end
    core.nn_axpy(y, 1, f:forward(x))
  end
  self.output = y
  return y
end

function LoRA:backward(x, gy, need)
  local layer = self.modules[1]
  local f = self.active ~= nil and self.sets[self.active]
  if self.merged ~= nil and (not layer._frozen or (f and not f._frozen)) then
    error(string.format("LoRA: set %s is merged into %s; unmerge() before training", key_str(self.merged),
      label(layer)), 2)
  end
  local gx = layer:backward(x, gy, need)
  if f and self.merged == nil and not (f._frozen and need == false) then
    local gxl = f:backward(x, gy, need)
    if need ~= false then core.nn_axpy(gx, 1, gxl) end
  end
  self.grad_input = gx
  return gx
end

local function check_fits(self, f, who, level)
  local A, B = f.A, f.B
  if A:size(2) ~= self.in_features or B:size(1) ~= self.out_features or A:size(1) ~= B:size(2) then
    error(string.format("%s: set %s has A %s and B %s; %s needs A [r, %d] and B [%d, r]", who, key_str(f.key),
      table.concat(A:size(), "x"), table.concat(B:size(), "x"), label(self.modules[1]), self.in_features,
      self.out_features), level + 1)
  end
end

--- lora:merge(key = active): W += scale B A in place, after keeping a copy
-- of W; forward is then the base Linear's alone. unmerge() copies W back:
-- bit-identical to the weights before merge.
function LoRA:merge(key)
  if key == nil then key = self.active end
  if key == nil then error("LoRA:merge: no set given and none active", 2) end
  local f = self.sets[key]
  if not f then
    error(string.format("LoRA:merge: %s has no set %s (sets: %s)", label(self.modules[1]), key_str(key),
      self:_keys()), 2)
  end
  if self.merged ~= nil then error(string.format("LoRA:merge: set %s is merged already", key_str(self.merged)), 2) end
  check_fits(self, f, "LoRA:merge", 2)
  local W = self.modules[1].weight
  self._saved = self._saved or core.zeros(table.unpack(W:size()))
  self._saved:copy_(W)
  core.mm(f.B, f.A, { out = W, alpha = f.scale, beta = 1 })
  self.merged, self.active = key, key
  return self
end

--- lora:fold(key): adds key's set into the base weights for good
-- (W += scale B A) and zeroes its B: the layer then computes with the base
-- alone what it computed with the set active. Unlike merge, nothing to undo.
function LoRA:fold(key)
  local f = self.sets[key]
  if not f then
    error(string.format("LoRA:fold: %s has no set %s (sets: %s)", label(self.modules[1]), key_str(key),
      self:_keys()), 2)
  end
  if self.merged ~= nil then
    error(string.format("LoRA:fold: set %s is merged; unmerge() first", key_str(self.merged)), 2)
  end
  check_fits(self, f, "LoRA:fold", 2)
  core.mm(f.B, f.A, { out = self.modules[1].weight, alpha = f.scale, beta = 1 })
  f.B:zero_()
  return self
end

--- lora:unmerge(): the weights as they were before merge (bit-identical).
function LoRA:unmerge()
  if self.merged == nil then error("LoRA:unmerge: no set is merged", 2) end
  self.modules[1].weight:copy_(self._saved)
  self.merged = nil
  return self
end

--- lora:load_set(key, A, B): copies factors into an existing set (shapes checked).
function LoRA:load_set(key, A, B)
  local f = self.sets[key]
  if not f or not f.A then error(string.format("LoRA:load_set: no built set %s", key_str(key)), 2) end
  if not core.istensor(A) or not core.istensor(B) then error("LoRA:load_set: A and B must be tensors", 2) end
  check_fits(self, { A = A, B = B, key = key }, "LoRA:load_set", 2)
  if A:size(1) ~= f.rank then
    error(string.format("LoRA:load_set: set %s has rank %d, A has %d rows", key_str(key), f.rank, A:size(1)), 2)
  end
  f.A:copy_(A)
  f.B:copy_(B)
  return self
end

--- lora:fill_weighted(key, keys, weights): set `key` (added with rank =
-- the sum of the sets' ranks and scale = 1) becomes sum_i w_i scale_i B_i A_i,
-- exactly (PEFT's add_weighted_adapter with combination_type "cat"):
-- A = [w_1 s_1 A_1; w_2 s_2 A_2; ...], B = [B_1, B_2, ...].
function LoRA:fill_weighted(key, keys, weights)
  local f = self.sets[key]
  if not f or not f.A then error(string.format("LoRA:fill_weighted: no built set %s", key_str(key)), 2) end
  if type(keys) ~= "table" or type(weights) ~= "table" or #keys ~= #weights or #keys == 0 then
    error("LoRA:fill_weighted: expected a list of set keys and a list of as many weights", 2)
  end
  local total = 0
  for i, k in ipairs(keys) do
    local s = self.sets[k]
    if not s then
      error(string.format("LoRA:fill_weighted: %s has no set %s (sets: %s)", label(self.modules[1]), key_str(k),
        self:_keys()), 2)
    end
    if type(weights[i]) ~= "number" then error("LoRA:fill_weighted: weights must be numbers", 2) end
    total = total + s.rank
  end
  if total ~= f.rank then
    error(string.format("LoRA:fill_weighted: the sets' ranks add up to %d, set %s has rank %d", total, key_str(key),
      f.rank), 2)
  end
  local row = 1
  for i, k in ipairs(keys) do
    local s = self.sets[k]
    local a = f.A:narrow(1, row, s.rank)
    a:copy_(s.A)
    a:mul_(weights[i] * s.scale)
    f.B:narrow(2, row, s.rank):copy_(s.B)
    row = row + s.rank
  end
  return self
end

function LoRA:_repr()
  local act = self.merged ~= nil and ("merged " .. key_str(self.merged))
    or (self.active ~= nil and ("active " .. key_str(self.active)) or "base only")
  return string.format("LoRA(rank %d, alpha %g, %s) around %s", self.rank, self.alpha, act, label(self.modules[1]))
end

-- -------------------------------------------------------------- adapters

local Adapter = class("Adapter")
local ACT = { relu = nn.ReLU, tanh = nn.Tanh, gelu = nn.GELU, sigmoid = nn.Sigmoid }
local ACT_KIND = { relu = 0, tanh = 2, sigmoid = 3, gelu = 4 }
--- Adapter(dim, {bottleneck = 64, activation = "relu", init = 1e-3}): the
-- bottleneck adapter of Houlsby et al. (2019), y = x + up(act(down(x))),
-- down dim -> bottleneck, up bottleneck -> dim (parameters down_weight
-- [bottleneck, dim], down_bias, up_weight [dim, bottleneck], up_bias). The
-- down-projection starts like a Linear's, the up-projection with weights
-- U(-init, init) and bias 0: the adapter starts near the identity (init =
-- 0: exactly the identity).
function nn.Adapter(dim, opts)
  local o = options(opts, { bottleneck = 64, activation = "relu", init = 1e-3 }, "Adapter")
  dim = posint(dim, "size", "Adapter")
  local b = posint(o.bottleneck, "bottleneck", "Adapter")
  if not ACT_KIND[o.activation] then
    error(string.format("Adapter: unknown activation '%s' (relu, tanh, gelu, sigmoid)", tostring(o.activation)), 2)
  end
  if type(o.init) ~= "number" or o.init < 0 or o.init ~= o.init then
    error("Adapter: init must be a number >= 0, got " .. tostring(o.init), 2)
  end
  local m = new(Adapter)
  m.dim, m.bottleneck, m.init, m.activation, m._kind = dim, b, o.init, o.activation, ACT_KIND[o.activation]
  m._pspec = { { name = "down_weight", shape = { b, dim } }, { name = "down_bias", shape = { b } },
    { name = "up_weight", shape = { dim, b } }, { name = "up_bias", shape = { dim } } }
  m._z, m._a, m._u, m._ga, m._gz, m._gx = buffer(), buffer(), buffer(), buffer(), buffer(), buffer()
  m._ws, m._ws2 = buffer(), buffer()
  return m
end
function Adapter:reset(gen)
  local bd = 1 / math.sqrt(self.dim)
  core.nn_init_uniform(self.down_weight, -bd, bd, gen)
  core.nn_init_uniform(self.down_bias, -bd, bd, gen)
  if self.init > 0 then core.nn_init_uniform(self.up_weight, -self.init, self.init, gen)
  else self.up_weight:fill_(0) end
  self.up_bias:fill_(0)
end
function Adapter:forward(x)
  if not self._built then ensure_built(self) end
  local z = core.nn_linear_forward(self._z, x, self.down_weight, self.down_bias, self._ws)
  local a = core.nn_act_forward(self._a, z, self._kind)
  local u = core.nn_linear_forward(self._u, a, self.up_weight, self.up_bias, self._ws2)
  core.nn_copy(self.output, x)
  core.nn_axpy(self.output, 1, u)
  return self.output
end
function Adapter:backward(x, gy)
  local f = self._frozen
  local ga = core.nn_linear_backward(self._ga, not f and self.grad_up_weight or nil, not f and self.grad_up_bias or nil,
    gy, self._a, self.up_weight)
  local gz = core.nn_act_backward(self._gz, ga, self._z, self._a, self._kind)
  local gx = core.nn_linear_backward(self._gx, not f and self.grad_down_weight or nil,
    not f and self.grad_down_bias or nil, gz, x, self.down_weight)
  core.nn_copy(self.grad_input, gy)
  core.nn_axpy(self.grad_input, 1, gx)
  return self.grad_input
end
function Adapter:_repr()
  return string.format("Adapter(%d->%d->%d, %s)", self.dim, self.bottleneck, self.dim, self.activation)
end

-- ---------------------------------------------------------------- Switch

local Switch = class("Switch")
--- Switch{passthrough = true}: one module per key (a task), forward runs the
-- selected one; with none selected (or none yet) the input passes through
-- when passthrough, else it is an error. Per-task adapters sit in Switches
-- after chosen layers; per-task heads in a Switch in the output layer's place.
function nn.Switch(opts)
  local o = options(opts, { passthrough = true }, "Switch")
  local m = new(Switch)
  m.modules, m.keys, m.passthrough = {}, {}, o.passthrough
  return m
end
--- switch:add(key, module): adds the module for key (give it a group with
-- model:new_group when the switch is in a built model). Returns the module.
function Switch:add(key, m)
  check_key("Switch:add", key, 2)
  if type(m) ~= "table" or type(m.forward) ~= "function" then error("Switch:add: not a module", 2) end
  for _, k in ipairs(self.keys) do
    if k == key then error(string.format("Switch:add: a module for %s exists already", key_str(key)), 2) end
  end
  base.check_child(self, m, "Switch:add", 2)
  local n = #self.modules + 1
  self.modules[n], self.keys[n] = m, key
  return m
end
function Switch:_index(key)
  for i, k in ipairs(self.keys) do
    if k == key then return i end
  end
end
function Switch:has(key) return self:_index(key) ~= nil end
--- switch:select(key): the module for key runs (nil: none).
function Switch:select(key)
  if key ~= nil and not self:_index(key) then
    local ks = {}
    for i, k in ipairs(self.keys) do ks[i] = key_str(k) end
    error(string.format("Switch:select: no module for %s (keys: %s)", key_str(key),
      #ks > 0 and table.concat(ks, ", ") or "none"), 2)
  end
  self.active = key
  return self
end
function Switch:_current()
  local i = self.active ~= nil and self:_index(self.active)
  if i then return self.modules[i] end
  if not self.passthrough then error("Switch: no module selected", 3) end
end
--- switch:route(keys): per-sample routing for the following forwards and
-- backwards: keys [B] (numbers: each sample's key) sends each sample
-- through its own key's module (a batch mixing tasks, as replay makes:
-- per-task heads judge each sample with its own head); nil goes back to the
-- selected module. The rows are gathered per key and put back in order.
-- A function instead of keys is asked at every forward in training mode
-- (evaluation uses the selected module): fn() -> keys or nil.
function Switch:route(keys)
  if keys ~= nil and not core.istensor(keys) and type(keys) ~= "function" then
    error("Switch:route: keys must be a tensor of one key per sample, a function returning one, or nil", 2)
  end
  self._route = keys
  return self
end
local function route_keys(self)
  local r = self._route
  if type(r) == "function" then return self.training and r() or nil end
  return r
end
-- The rows of each key present, in order of first appearance, and the
-- permutation that puts the joined outputs back in the batch's order.
local function route_plan(self, B, keys)
  if keys:numel() ~= B then
    error(string.format("Switch: %d routing keys for a batch of %d", keys:numel(), B), 3)
  end
  local groups, order, back = {}, {}, {}
  for i, k in ipairs(keys:view(-1):totable()) do
    local key = math.tointeger(k) or k
    if not groups[key] then
      if not self:_index(key) and not self.passthrough then
        error(string.format("Switch: no module for %s (a routed sample)", key_str(key)), 3)
      end
      groups[key], order[#order + 1] = {}, key
    end
    local g = groups[key]
    g[#g + 1] = i
  end
  local at = 0
  for _, key in ipairs(order) do
    for _, r in ipairs(groups[key]) do at = at + 1; back[r] = at end
  end
  return { groups = groups, order = order, back = back, x = {} }
end
local function routed_forward(self, x, keys)
  local plan = route_plan(self, x:size(1), keys)
  local parts = {}
  for i, key in ipairs(plan.order) do
    local xk = x:index(plan.groups[key])
    local j = self:_index(key)
    plan.x[i] = xk
    parts[i] = j and self.modules[j]:forward(xk) or xk
  end
  self._plan = plan
  return core.cat(parts, 1):index(plan.back)
end
local function routed_backward(self, gy, need)
  local plan = self._plan
  if not plan then error("Switch: backward of a routed batch without its forward", 3) end
  local parts = {}
  for i, key in ipairs(plan.order) do
    local gk = gy:index(plan.groups[key])
    local j = self:_index(key)
    parts[i] = j and self.modules[j]:backward(plan.x[i], gk, need) or gk
  end
  if need == false then return nil end
  return core.cat(parts, 1):index(plan.back)
end
function Switch:forward(x)
  if not self._built then ensure_built(self) end
  local keys = self._route and route_keys(self)
  if keys then
    self.output = routed_forward(self, x, keys)
    return self.output
  end
  self._plan = nil
  local m = self:_current()
  self.output = m and m:forward(x) or x
  return self.output
end
function Switch:backward(x, gy, need)
  if self._plan then
    self.grad_input = routed_backward(self, gy, need)
    return self.grad_input
  end
  local m = self:_current()
  self.grad_input = m and m:backward(x, gy, need) or gy
  return self.grad_input
end
function Switch:_repr()
  local ks = {}
  for i, k in ipairs(self.keys) do ks[i] = key_str(k) end
  return string.format("Switch(%s; active %s)", #ks > 0 and table.concat(ks, ", ") or "empty",
    self.active ~= nil and key_str(self.active) or "none")
end

-- ------------------------------------------------------------ progressive

local Column = class("Column")
local Progressive = class("Progressive")

local function column(sizes, k, act)
  local c = new(Column)
  c.index, c.modules, c.layers, c.acts, c.lat = k, {}, {}, {}, {}
  local n = #sizes - 1
  for i = 1, n do
    c.layers[i] = nn.Linear(sizes[i], sizes[i + 1])
    c.modules[#c.modules + 1] = c.layers[i]
    if i < n then
      c.acts[i] = act()
      c.modules[#c.modules + 1] = c.acts[i]
    end
    c.lat[i] = {}
    if i > 1 then
      for j = 1, k - 1 do
        c.lat[i][j] = nn.Linear(sizes[i], sizes[i + 1], { bias = false })
        c.modules[#c.modules + 1] = c.lat[i][j]
      end
    end
  end
  c._g = {}
  for i = 1, n do c._g[i] = buffer() end
  return c
end
function Column.forward(_, x) return x end -- run by the Progressive
function Column.backward(_, _, gy) return gy end
function Column:_repr()
  local n = 0
  for _, l in pairs(self.lat) do
    for _ in pairs(l) do n = n + 1 end
  end
  return string.format("Column %d (%d lateral layers)", self.index, n)
end

--- Progressive(sizes, {activation = "relu"}): progressive networks (Rusu et
-- al. 2016) over MLP columns of the given sizes, e.g. {784, 100, 100, 10}.
-- Column k's layer i > 1 adds lateral Linears (no bias) from the hidden
-- activation i-1 of every earlier column. Column 1 is built with the model;
-- add_column() adds the next (group it with model:new_group), select(k)
-- chooses the column whose output is the model's output.
function nn.Progressive(sizes, opts)
  local o = options(opts, { activation = "relu" }, "Progressive")
  if type(sizes) ~= "table" or #sizes < 2 then error("Progressive: expected sizes, e.g. {784, 100, 10}", 2) end
  for i, s in ipairs(sizes) do posint(s, "size " .. i, "Progressive") end
  local act = ACT[o.activation]
  if not act then error("Progressive: unknown activation '" .. tostring(o.activation) .. "'", 2) end
  local m = new(Progressive)
  m.sizes, m.act, m.activation, m.active = sizes, act, o.activation, 1
  m.modules = { column(sizes, 1, act) }
  return m
end
function Progressive:columns() return #self.modules end
function Progressive:add_column()
  local c = column(self.sizes, #self.modules + 1, self.act)
  self.modules[#self.modules + 1] = c
  return c
end
function Progressive:select(k)
  if math.type(k) ~= "integer" or k < 1 or k > #self.modules then
    error(string.format("Progressive:select: column %s out of range 1..%d", tostring(k), #self.modules), 2)
  end
  self.active = k
  return self
end

-- h(c, i): column c's activation after layer i (i = 0: the input).
function Progressive:forward(x)
  if not self._built then ensure_built(self) end
  local a, n = self.active, #self.sizes - 1
  local cols = self.modules
  self._x = x
  for k = 1, a do
    local c = cols[k]
    local last = (k == a) and n or n - 1 -- earlier columns' outputs are not used
    local h = x
    for i = 1, last do
      local z = c.layers[i]:forward(h)
      for j = 1, k - 1 do
        if i > 1 then core.nn_axpy(z, 1, c.lat[i][j]:forward(cols[j].acts[i - 1].output)) end
      end
      h = i < n and c.acts[i]:forward(z) or z
    end
  end
  self.output = cols[a].layers[n].output
  return self.output
end

-- Gradients reach every column that is not frozen (and the input when
-- asked); frozen earlier columns are skipped when the input gradient is not
-- needed, so training column k costs its own backward only.
function Progressive:backward(x, gy, need)
  local a, n, cols = self.active, #self.sizes - 1, self.modules
  local lo = a
  for k = 1, a - 1 do
    if need ~= false then lo = 1; break end
    for _, l in ipairs(cols[k].layers) do
      if not l._frozen then lo = math.min(lo, k) end
    end
  end
  -- g[k][i]: d loss / d (column k's activation after layer i), summed from the
  -- layer above and the laterals of later columns; filled[k][i] says it holds one
  local filled = self._filled or {}
  self._filled = filled
  for k = lo, a do
    filled[k] = filled[k] or {}
    for i = 1, n do filled[k][i] = false end
  end
  local function add(k, i, g)
    local buf = cols[k]._g[i]
    if filled[k][i] then core.nn_axpy(buf, 1, g) else core.nn_copy(buf, g); filled[k][i] = true end
  end
  local gx = self.grad_input
  local gx_filled = false
  for k = a, lo, -1 do
    local c = cols[k]
    local top = (k == a) and n or n - 1
    for i = top, 1, -1 do
      local gz
      if i == n then
        gz = gy
      else
        if not filled[k][i] then goto continue end
        gz = c.acts[i]:backward(c.layers[i].output, c._g[i])
      end
      do
        local hin = i > 1 and c.acts[i - 1].output or x
        local want = i > 1 or need ~= false
        local g = c.layers[i]:backward(hin, gz, want)
        if i > 1 then
          add(k, i - 1, g)
          for j = 1, k - 1 do
            if j >= lo then
              add(j, i - 1, c.lat[i][j]:backward(cols[j].acts[i - 1].output, gz, true))
            else
              c.lat[i][j]:backward(cols[j].acts[i - 1].output, gz, false)
            end
          end
        elseif need ~= false then
          if gx_filled then core.nn_axpy(gx, 1, g) else core.nn_copy(gx, g); gx_filled = true end
        end
      end
      ::continue::
    end
  end
  if need == false then return nil end
  return gx
end
function Progressive:_repr()
  return string.format("Progressive(%s; %d columns, column %d active)", table.concat(self.sizes, "-"),
    #self.modules, self.active)
end

return nn
