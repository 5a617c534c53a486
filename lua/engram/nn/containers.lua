--- engram.nn.containers: Sequential, Concat and MultiHead. Errors inside a
-- container name the module that failed ("Linear(784->400) in module 1 of
-- Sequential: ...").
local core = require("engram.core")
local base = require("engram.nn.module")

local nn = base.nn
local class, new, buffer, walk, label = base.class, base.new, base.buffer, base.walk, base.label
local check_child, param_specs, ensure_built, fmtint = base.check_child, base.param_specs, base.ensure_built,
  base.fmtint

-- -------------------------------------------------------------- containers

-- "Linear(784->400) in module 1 of Sequential: input width 785 does not match 784"
local function wrap_error(self, err, i)
  if type(err) ~= "string" then return err end
  local m = i and self.modules[i]
  if not m then return string.format("%s: %s", self.__name or "container", err) end
  err = err:gsub("^[^\n:]-:%d+: ", "", 1) -- a position from an error() inside
  err = err:gsub("^%l[%w_]*: ", "", 1)   -- the kernel's own op name ("linear: ")
  err = err:gsub("^bad argument #%d+ to '[%w_?]+' %((.*)%)$", "%1", 1) -- internal kernel names say nothing
  return string.format("%s in module %d of %s: %s", label(m), i, self.__name or "container", err)
end

local Sequential = class("Sequential")
local append -- (self, module, who, level): below
--- Sequential(m1, m2, ...) (or Sequential{m1, m2, ...}): modules in a chain.
function nn.Sequential(...)
  local mods = { ... }
  if #mods == 1 and type(mods[1]) == "table" and getmetatable(mods[1]) == nil and mods[1].forward == nil then
    mods = mods[1]
  end
  local m = new(Sequential)
  m.modules, m._outs = {}, {}
  for _, x in ipairs(mods) do append(m, x, "Sequential", 3) end
  return m
end

-- Appends module x to Sequential self. Errors name `who`; `level` is as for
-- error() called in append (3: the caller of Sequential:add or nn.Sequential).
function append(self, x, who, level)
  if rawget(self, "_built") then
    error(who .. ": the model is already built; add modules in a new parameter group " ..
      "with model:add_group(name, module)", level)
  end
  if type(x) ~= "table" or type(x.forward) ~= "function" or type(x.backward) ~= "function" then
    error(who .. ": not a module (a table with forward and backward)", level)
  end
  check_child(self, x, who, level)
  self.modules[#self.modules + 1] = x
end

--- Appends a module; returns self. Not after build (use add_group).
function Sequential:add(m)
  append(self, m, "Sequential:add", 3)
  return self
end

function Sequential:_attach(m)
  self.modules[#self.modules + 1] = m
  return tostring(#self.modules), #self.modules
end

local function seq_forward(self, x, upto)
  local mods, outs = self.modules, self._outs
  for i = 1, upto do
    self._at = i
    x = mods[i]:forward(x)
    outs[i] = x
  end
  return x
end

local function seq_backward(self, x, gy, need)
  local mods, outs = self.modules, self._outs
  for i = #mods, 1, -1 do
    self._at = i
    if i > 1 then
      gy = mods[i]:backward(outs[i - 1], gy, true)
    else
      gy = mods[i]:backward(x, gy, need)
    end
  end
  return gy
end

function Sequential:forward(x)
  if not self._built then ensure_built(self) end
  local ok, y = pcall(seq_forward, self, x, #self.modules)
  if not ok then error(wrap_error(self, y, self._at), 2) end
  self.output = y
  return y
end

function Sequential:backward(x, gy, need)
  local ok, gx = pcall(seq_backward, self, x, gy, need)
  if not ok then error(wrap_error(self, gx, self._at), 2) end
  self.grad_input = gx
  return gx
end

--- Runs modules 1..k only and returns module k's output (a borrowed buffer).
function Sequential:forward_to(x, k)
  if not self._built then ensure_built(self) end
  if math.type(k) ~= "integer" or k < 1 or k > #self.modules then
    error(string.format("forward_to: module %s out of range 1..%d", tostring(k), #self.modules), 2)
  end
  local ok, y = pcall(seq_forward, self, x, k)
  if not ok then error(wrap_error(self, y, self._at), 2) end
  return y
end

local function count_params(m)
  local n = 0
  walk(m, function(x)
    for _, s in ipairs(param_specs(x) or {}) do
      local e = 1
      for _, d in ipairs(s.shape) do e = e * d end
      n = n + e
    end
  end, "")
  return n
end

local function tree(self, indent, title)
  local lines = { title }
  for i, m in ipairs(self.modules) do
    local s
    if type(m._repr) == "function" and m.modules then
      s = m:_repr(indent .. "  ")
    else
      s = label(m)
      local n = count_params(m)
      if n > 0 then s = s .. "  [" .. fmtint(n) .. "]" end
    end
    lines[#lines + 1] = string.format("%s  (%d) %s", indent, i, s)
  end
  return table.concat(lines, "\n")
end

function Sequential:_repr(indent)
  return tree(self, indent or "", string.format("Sequential (%s parameters)", fmtint(count_params(self))))
end

local Concat = class("Concat")
--- Concat(dim, m1, m2, ...): every branch gets the same input; their outputs
-- are concatenated along dim (1-based, negative from the end: -1 the last).
function nn.Concat(dim, ...)
  if math.type(dim) ~= "integer" then error("Concat: the first argument is the dimension", 2) end
  local m = new(Concat)
  m.dim, m.modules, m._outs, m._g = dim, {}, {}, {}
  for i, b in ipairs({ ... }) do
    if type(b) ~= "table" or type(b.forward) ~= "function" then
      error(string.format("Concat: argument %d is not a module", i + 1), 2)
    end
    check_child(m, b, "Concat", 2)
    m.modules[i], m._g[i] = b, buffer()
  end
  if #m.modules == 0 then error("Concat: no branches", 2) end
  return m
end
function Concat:_attach(m)
  self.modules[#self.modules + 1] = m
  self._g[#self.modules] = buffer()
  return tostring(#self.modules), #self.modules
end
local function concat_forward(self, x)
  for i, b in ipairs(self.modules) do
    self._at = i
    self._outs[i] = b:forward(x)
  end
  self._at = nil
  return core.nn_concat_forward(self.output, self.dim, table.unpack(self._outs, 1, #self.modules))
end
local function concat_backward(self, x, gy, need)
  local start = 1
  local gx = self.grad_input
  for i, b in ipairs(self.modules) do
    self._at = i
    local len = self._outs[i]:size(self.dim)
    local gi = core.nn_narrow_copy(self._g[i], gy, self.dim, start, len)
    start = start + len
    local gxi = b:backward(x, gi, need)
    if need ~= false and gxi then
      if i == 1 then core.nn_copy(gx, gxi) else core.nn_axpy(gx, 1, gxi) end
    end
  end
  if need == false then return nil end
  return gx
end
function Concat:forward(x)
  if not self._built then ensure_built(self) end
  local ok, y = pcall(concat_forward, self, x)
  if not ok then
    for i = #self._outs, 1, -1 do self._outs[i] = nil end -- a failed forward leaves nothing for backward
    if self._at then error(wrap_error(self, y, self._at), 2) end
    error(y, 2)
  end
  return y
end
function Concat:backward(x, gy, need)
  if #self._outs < #self.modules then error("Concat:backward: no forward before it", 2) end
  local ok, gx = pcall(concat_backward, self, x, gy, need)
  if not ok then error(wrap_error(self, gx, self._at), 2) end
  return gx
end
function Concat:_repr(indent)
  return tree(self, indent or "", string.format("Concat(dim %d) (%s parameters)", self.dim, fmtint(count_params(self))))
end

local MultiHead = class("MultiHead")
--- MultiHead(trunk, {head1, head2, ...}): a shared trunk and per-task heads;
-- forward runs the trunk and the selected head (model:set_head(k), default
-- 1). For task-incremental learning, add a head per task after build with
-- model:add_group("head" .. k, nn.Linear(400, 2)) (a new parameter group,
-- base untouched) and select it with model:set_head(k). modules[1] is the
-- trunk, modules[1 + k] head k.
function nn.MultiHead(trunk, heads)
  if type(trunk) ~= "table" or type(trunk.forward) ~= "function" then
    error("MultiHead: the trunk is not a module", 2)
  end
  heads = heads or {}
  if type(heads) ~= "table" then
    error(string.format("MultiHead: the heads must be a module or a list of modules, got %s", type(heads)), 2)
  end
  if getmetatable(heads) ~= nil or heads.forward then heads = { heads } end
  local m = new(MultiHead)
  m.modules, m.active, m._is_multihead = { trunk }, 1, true
  for i, h in ipairs(heads) do
    if type(h) ~= "table" or type(h.forward) ~= "function" then
      error(string.format("MultiHead: head %d is not a module", i), 2)
    end
    check_child(m, h, "MultiHead", 2)
    m.modules[#m.modules + 1] = h
  end
  return m
end
function MultiHead:_attach(m)
  self.modules[#self.modules + 1] = m
  return tostring(#self.modules), #self.modules - 1
end
function MultiHead:_select(k)
  local n = #self.modules - 1
  if math.type(k) ~= "integer" or k < 1 or k > n then
    error(string.format("set_head: head %s out of range 1..%d", tostring(k), n), 3)
  end
  self.active = k
end
function MultiHead:heads() return #self.modules - 1 end
local function mh_forward(self, x)
  self._at = 1
  local h = self.modules[1]:forward(x)
  self._h = h
  self._at = 1 + self.active
  return self.modules[1 + self.active]:forward(h)
end
local function mh_backward(self, x, gy, need)
  self._at = 1 + self.active
  local gh = self.modules[1 + self.active]:backward(self._h, gy, true)
  self._at = 1
  return self.modules[1]:backward(x, gh, need)
end
function MultiHead:forward(x)
  if not self._built then ensure_built(self) end
  if #self.modules < 2 then error("MultiHead: no heads", 2) end
  local ok, y = pcall(mh_forward, self, x)
  if not ok then error(wrap_error(self, y, self._at), 2) end
  self.output = y
  return y
end
function MultiHead:backward(x, gy, need)
  if #self.modules < 2 then error("MultiHead: no heads", 2) end
  local ok, gx = pcall(mh_backward, self, x, gy, need)
  if not ok then error(wrap_error(self, gx, self._at), 2) end
  self.grad_input = gx
  return gx
end
function MultiHead:_repr(indent)
  return tree(self, indent or "", string.format("MultiHead (head %d of %d; %s parameters)", self.active,
    #self.modules - 1, fmtint(count_params(self))))
end


return nn
