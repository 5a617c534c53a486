--- engram.nn: layers, containers and models.
--
--   local nn = require "engram.nn"            -- or engram.nn
--   local model = nn.mlp{784, 400, 400, 10}    -- Linear/ReLU/Linear/ReLU/Linear
--   local y  = model:forward(x)                -- x [B,784] -> y [B,10]
--   local gx = model:backward(x, gy)           -- after forward on the same x
--
-- MODULES. Every module has forward(x) -> y and backward(x, gy[, need_gx]) -> gx.
-- Parameter gradients ACCUMULATE until zero_grad(); gx is recomputed.
-- backward's third argument, when false, lets the first layer skip the
-- gradient with respect to the model input (returns nil): training loops
-- should pass false, it saves one matrix product per step.
--
-- BORROWED RESULTS. forward returns the module's own output buffer and
-- backward its grad_input buffer: both are overwritten by the next call. Use
-- y:clone() to keep one. Every module, in training and in evaluation mode,
-- leaves what forward returned in self.output and what backward returned in
-- self.grad_input (a module that passes its input through, like Identity or
-- Dropout in evaluation, leaves the input itself there). Buffers only grow, so a warm training step
-- allocates nothing (engram.core.alloc_count() does not move).
--
-- PARAMETERS live in flat arenas ("parameter groups", core/params.h): when a
-- model is built (model:build{seed=1}, or automatically at the first forward
-- or parameters call) ALL declared parameters of the tree get one contiguous
-- float vector, and their gradients another of the same layout; each layer's
-- weight is a view into it from birth. Initialisation follows PyTorch's
-- defaults: Linear and Conv2d weights and biases U(-1/sqrt(fan_in),
-- 1/sqrt(fan_in)), LayerNorm 1 and 0, Embedding N(0, 1).
-- Growing a built model makes a NEW group: model:add_group(name, module...)
-- (a Sequential appends the modules, a MultiHead adds them as heads).
--
-- The model interface (any module, usually the root container):
--   model:forward(x) -> y                  model:backward(x, gy[, need_gx]) -> gx
--   model:zero_grad()                      model:build{seed=, generator=}
--   model:parameters() -> { {name=, shape=, value=view, grad=view, group=gname}, ... }
--   model:groups()     -> { {name=, params=flat, grads=flat, frozen=bool, numel=n}, ... } ("base" first)
--   model:flat()       -> params, grads of the only group (error with several groups)
--   model:numel{trainable=false}           model:freeze(gname) / model:unfreeze(gname)
--   model:train() / model:evaluate()       (return self; model.training)
--   model:clone()      parameters in arenas of its own (gradients zero), frozen
--                      flags and configuration; no activations, no gradients;
--                      generators shared (see Module:clone)
--   model:load_flat(t) copies t into the base group's parameters
--   dst:copy_params(src)                   same architecture
--   model:add_group(name, m...)            new modules with parameters in a new group
--   model:set_head(k)  selects head k of the MultiHead in the tree
--   model:forward_to(x, k) -> output of module k of a Sequential;
--   model.modules[k].output is module k's output after a forward
--   tostring(model)    the tree with sizes and parameter counts
-- A module inside a model (model.modules[3]) answers parameters, groups, flat,
-- numel, zero_grad, load_flat and copy_params for its own subtree, as views
-- into the model's arenas: engram.optim.SGD(model.modules[3]) trains that
-- layer only. freeze and add_group act on whole groups: call them on the model.
--
-- LUA-WRITTEN MODULES: any table with forward(self, x) and backward(self, x, gy)
-- can sit in a container. It may declare parameters with
--   params_spec = { {name = "weight", shape = {4, 3}}, ... }
-- and then finds self.weight / self.grad_weight (views into the arena) after
-- build; it is initialised by its reset(self, generator) if it has one,
-- otherwise like a Linear weight (fan_in = product of sizes after the first;
-- 1-D entries start at zero). Its backward must accumulate into grad_*.
--
-- ERRORS name the layer: "Linear(784->400) in module 1 of Sequential: input
-- width 785 does not match 784".
local core = require("engram.core")
local util = require("engram.util")

local nn = {}

local ACT = { relu = 0, leaky_relu = 1, tanh = 2, sigmoid = 3, gelu = 4 }

local function fmtint(n)
  local s = tostring(math.tointeger(n) or n)
  local r
  repeat
    s, r = s:gsub("^(-?%d+)(%d%d%d)", "%1,%2")
  until r == 0
  return s
end

-- Checks an options table against the known keys and fills in defaults.
local function options(opts, defaults, who)
  local o = {}
  if opts ~= nil and type(opts) ~= "table" then error(who .. ": options must be a table", 3) end
  for k, v in pairs(opts or {}) do
    if defaults[k] == nil then
      local known = {}
      for name in pairs(defaults) do known[#known + 1] = name end
      table.sort(known)
      error(string.format("%s: unknown option '%s' (known: %s)", who, tostring(k), table.concat(known, ", ")), 3)
    end
    o[k] = v
  end
  for k, v in pairs(defaults) do
    if o[k] == nil and v ~= false then o[k] = v end
  end
  return o
end
nn._options = options

local function posint(v, what, who)
  if math.type(v) ~= "integer" then
    if type(v) == "number" and v == math.floor(v) then v = math.tointeger(v) end
    if math.type(v) ~= "integer" then error(string.format("%s: %s must be an integer", who, what), 3) end
  end
  if v < 1 then error(string.format("%s: %s must be positive, got %d", who, what, v), 3) end
  return v
end

-- ------------------------------------------------------------------ classes

local Module = {}
Module.__index = Module
Module.__name = "Module"
nn.Module = Module

local function class(name, parent)
  parent = parent or Module
  local c = setmetatable({}, { __index = parent })
  c.__index = c
  c.__name = name
  c.__tostring = parent.__tostring
  nn[name] = c
  return c
end

-- Scratch buffers: outputs, input gradients and what forward saves for
-- backward. They only grow, and clone() gives the copy empty ones of its own.
local scratch = setmetatable({}, { __mode = "k" })
local function buffer()
  local b = core.nn_buffer()
  scratch[b] = true
  return b
end
--- nn.buffer(): an empty scratch tensor for a Lua-written module (kernels
-- resize it in place; clone() does not copy it).
nn.buffer = buffer

local function new(cls)
  return setmetatable({
    training = true,
    output = buffer(),
    grad_input = buffer(),
  }, cls)
end

function Module:__tostring() return self:_repr("") end
function Module:_repr() return self.__name or "Module" end
function Module:_label() return self:_repr("") end

-- ------------------------------------------------------------- tree walking

local function children(m) return rawget(m, "modules") or {} end

local function walk(m, f, path)
  f(m, path)
  for i, c in ipairs(children(m)) do walk(c, f, path == "" and tostring(i) or (path .. "." .. i)) end
end

-- A module's name for messages: the first line of its description.
local function label(m)
  if type(m._repr) == "function" then return (tostring(m:_repr("")):match("^[^\n]*")) end
  return m.name or "LuaModule"
end

local function contains(root, m)
  if root == m then return true end
  for _, c in ipairs(children(root)) do
    if contains(c, m) then return true end
  end
  return false
end

-- A module sits in one place of one tree: it keeps its own output and
-- gradient buffers, so a second place would overwrite what the first saved
-- for backward, and a container inside itself would never end.
local function check_child(container, m, who, level)
  if contains(m, container) then
    error(string.format("%s: %s contains this container (a module cannot hold itself)", who, label(m)), level + 1)
  end
  if contains(container, m) then
    error(string.format("%s: %s is already in this container; a module sits in one place (use another, or a clone)",
      who, label(m)), level + 1)
  end
end

-- ---------------------------------------------------------- parameter groups

local function param_specs(m)
  return rawget(m, "_pspec") or m.params_spec
end

local function default_init(m, gen)
  for _, s in ipairs(param_specs(m)) do
    local t = m[s.name]
    if #s.shape >= 2 then
      local fan = 1
      for d = 2, #s.shape do fan = fan * s.shape[d] end
      local b = 1 / math.sqrt(math.max(fan, 1))
      core.nn_init_uniform(t, -b, b, gen)
    end
  end
end

-- Slices of the groups for modules inside a model (see scope below), cached
-- weakly (clone does not copy them) until a group is made anywhere:
-- optimisers key their state by the params tensor, so it must stay the same.
local scopes, layout = setmetatable({}, { __mode = "k" }), 0

-- Declares the parameters of the (unassigned) modules of the given subtrees
-- in a new group, builds it, binds the views and initialises them.
local function make_group(root, gname, subtrees, gen, prefix)
  local pg = core.param_group(gname)
  local rec = { name = gname, pg = pg, entries = {}, modules = {}, frozen = false }
  -- Modules join the group only once it is built: a build that fails (a
  -- declaration out of range, no memory) leaves them as they were.
  local taken = {}
  for si, sub in ipairs(subtrees) do
    local base = prefix and prefix[si] or ""
    walk(sub, function(m, path)
      local specs = param_specs(m)
      if specs and #specs > 0 and not rawget(m, "_group") and not taken[m] then
        taken[m] = true
        rec.modules[#rec.modules + 1] = m
        for _, s in ipairs(specs) do
          local name = (path == "" and "" or (path .. ".")) .. s.name
          local idx = pg:declare(name, s.shape)
          rec.entries[#rec.entries + 1] = { name = name, shape = s.shape, module = m, field = s.name, index = idx }
        end
      end
    end, base)
  end
  pg:build()
  rec.rec, rec.numel = rec, pg:numel() -- a group is its own scope record (see scope)
  for _, m in ipairs(rec.modules) do m._group = rec end
  for _, e in ipairs(rec.entries) do
    local v, g = pg:entry(e.index)
    e.module[e.field], e.module["grad_" .. e.field] = v, g
  end
  rec.params, rec.grads = pg:flat()
  for _, m in ipairs(rec.modules) do
    if type(m.reset) == "function" then m:reset(gen) else default_init(m, gen) end
  end
  root._groups = root._groups or {}
  root._groups[#root._groups + 1] = rec
  layout = layout + 1 -- cached scopes of modules inside models are stale
  return rec
end

local function generator_of(opts, who)
  local o = options(opts, { seed = false, generator = false }, who)
  if o.generator then return o.generator end
  if o.seed then return core.generator(o.seed) end
  return nil -- the engine's default generator
end

--- Allocates and initialises the arena for every declared parameter.
-- opts: seed (a generator seeded with it) or generator (default: the
-- engine's default generator). Returns self. Called automatically at the
-- first forward/parameters call.
function Module:build(opts)
  if rawget(self, "_built") then error("build: the model is already built", 2) end
  local gen = generator_of(opts, "build")
  local placed = {}
  walk(self, function(m)
    if placed[m] then
      error(string.format("build: %s sits in two places of the model; a module keeps its own buffers " ..
        "(use another, or a clone)", label(m)), 0)
    end
    placed[m] = true
  end, "")
  -- groups of sub-models that were built on their own come first
  local seen, groups = {}, {}
  walk(self, function(m)
    local g = rawget(m, "_group")
    if g and not seen[g] then seen[g] = true; groups[#groups + 1] = g end
  end, "")
  self._groups = groups
  local gname = "base"
  for _, g in ipairs(groups) do
    if g.name == "base" then gname = "base" .. (#groups + 1) end
  end
  make_group(self, gname, { self }, gen)
  -- "base" first
  table.insert(self._groups, 1, table.remove(self._groups))
  walk(self, function(m) m._built = true end, "")
  return self
end

local function ensure_built(self)
  if not rawget(self, "_built") then Module.build(self) end
end
nn._ensure_built = ensure_built

-- The parameter groups a module answers for: a root model's own groups, or,
-- for a module inside a model, one record per group its subtree has
-- parameters in, over the slice of that group's arenas they take (a
-- subtree's entries are declared one after another, so the slice is
-- contiguous). Records: {name=, params=, grads=, numel=, entries=, rec=}, rec
-- the group (whose frozen is current); a root's groups are their own records.
local function scope(self)
  ensure_built(self)
  local own = rawget(self, "_groups")
  if own then return own end
  local cached = scopes[self]
  if cached and cached.layout == layout then return cached.parts end
  local parts, out = {}, {}
  walk(self, function(m)
    local g = rawget(m, "_group")
    if not g then return end
    local part = parts[g]
    if not part then
      part = { name = g.name, entries = {}, rec = g }
      parts[g], out[#out + 1] = part, part
    end
    for _, e in ipairs(g.entries) do
      if e.module == m then part.entries[#part.entries + 1] = e end
    end
  end, "")
  for _, part in ipairs(out) do
    local lo, hi, n = math.huge, 0, 0
    for _, e in ipairs(part.entries) do
      local _, shape, off = part.rec.pg:info(e.index)
      local k = 1
      for _, d in ipairs(shape) do k = k * d end
      lo, hi, n = math.min(lo, off), math.max(hi, off + k), n + k
    end
    if n ~= hi - lo then
      error(string.format("%s: its parameters in group '%s' are not contiguous", label(self), part.name), 3)
    end
    part.params, part.grads, part.numel = part.rec.params:narrow(1, lo + 1, n), part.rec.grads:narrow(1, lo + 1, n), n
  end
  scopes[self] = { layout = layout, parts = out }
  return out
end

--- Array of {name=, params=, grads=, frozen=, numel=} ("base" first). For a
-- module inside a model: the slices of the model's groups its parameters take.
function Module:groups()
  local out = {}
  for i, g in ipairs(scope(self)) do
    out[i] = { name = g.name, params = g.params, grads = g.grads, frozen = g.rec.frozen, numel = g.numel }
  end
  return out
end

-- Root only: groups are frozen, grown and looked up on the model that holds them.
local function root_groups(self, who, level)
  ensure_built(self)
  local groups = rawget(self, "_groups")
  if not groups then
    error(string.format("%s: %s is inside a model; call %s on the model that holds its parameters",
      who, label(self), who), level + 1)
  end
  return groups
end

local function find_group(self, gname, who)
  local groups = root_groups(self, who, 3)
  for _, g in ipairs(groups) do
    if g.name == gname then return g end
  end
  local names = {}
  for _, g in ipairs(groups) do names[#names + 1] = g.name end
  error(string.format("%s: no parameter group '%s' (groups: %s)", who, tostring(gname), table.concat(names, ", ")), 3)
end

--- Array of {name=, shape=, value=view, grad=view, group=gname}, in arena order
-- (for a module inside a model: its subtree's parameters, named as in the model).
function Module:parameters()
  local out = {}
  for _, g in ipairs(scope(self)) do
    for _, e in ipairs(g.entries) do
      out[#out + 1] = { name = e.name, shape = e.shape, value = e.module[e.field],
                        grad = e.module["grad_" .. e.field], group = g.name }
    end
  end
  return out
end

--- The flat parameter and gradient vectors of a one-group model.
function Module:flat()
  local groups = scope(self)
  if #groups ~= 1 then
    error(string.format("flat: %s has %s; use groups()", label(self),
      #groups == 0 and "no parameters" or (#groups .. " parameter groups")), 2)
  end
  return groups[1].params, groups[1].grads
end

--- Number of parameters; {trainable=true} counts unfrozen groups only.
function Module:numel(opts)
  local o = options(opts, { trainable = false }, "numel")
  local n = 0
  for _, g in ipairs(scope(self)) do
    if not (o.trainable and g.rec.frozen) then n = n + g.numel end
  end
  return n
end

--- Zeroes the parameter gradients (one memset per group; for a module inside
-- a model, those of its subtree).
function Module:zero_grad()
  ensure_built(self)
  local groups = rawget(self, "_groups")
  if groups then
    for _, g in ipairs(groups) do g.pg:zero_grad() end
  else
    for _, g in ipairs(scope(self)) do g.grads:zero_() end
  end
  return self
end

local function set_frozen(self, gname, flag, who)
  local g = find_group(self, gname or "base", who)
  g.frozen = flag
  g.pg:frozen(flag)
  for _, m in ipairs(g.modules) do m._frozen = flag or nil end
  return self
end
--- Frozen groups keep their values: layers skip their parameter gradients
-- and optimisers skip them.
function Module:freeze(gname) return set_frozen(self, gname, true, "freeze") end
function Module:unfreeze(gname) return set_frozen(self, gname, false, "unfreeze") end

function Module:train()
  walk(self, function(m) m.training = true end, "")
  return self
end
function Module:evaluate()
  walk(self, function(m) m.training = false end, "")
  return self
end

--- Copies the 1-D tensor t (numel of the base group) into the base group.
function Module:load_flat(t)
  util.check_tensor("load_flat", t, "the values", 2)
  local groups = scope(self)
  if #groups == 0 then error(string.format("load_flat: %s has no parameters", label(self)), 2) end
  local p = groups[1].params
  if t:numel() ~= p:numel() then
    error(string.format("load_flat: %d values for %d parameters", t:numel(), p:numel()), 2)
  end
  p:copy_(t)
  return self
end

--- Copies every group's values from src, a model of the same architecture.
function Module:copy_params(src)
  if type(src) ~= "table" or type(src.forward) ~= "function" or type(src.parameters) ~= "function" then
    error(string.format("copy_params: the source must be a module, got %s", type(src)), 2)
  end
  local mine, theirs = scope(self), scope(src)
  if #mine ~= #theirs then
    error(string.format("copy_params: %d groups here, %d in the source", #mine, #theirs), 2)
  end
  for i, g in ipairs(mine) do
    local s = theirs[i]
    local ok, err = true, nil
    if rawget(self, "_groups") and rawget(src, "_groups") then
      ok, err = pcall(g.rec.pg.copy_from, g.rec.pg, s.rec.pg)
    elseif #g.entries ~= #s.entries or g.numel ~= s.numel then
      ok, err = false, string.format("group '%s': %d entries (%d values) here, %d (%d) in the source",
        g.name, #g.entries, g.numel, #s.entries, s.numel)
    else
      for k, e in ipairs(g.entries) do
        if table.concat(e.shape, "x") ~= table.concat(s.entries[k].shape, "x") then
          ok, err = false, string.format("%s is %s here, %s in the source", e.name, table.concat(e.shape, "x"),
            table.concat(s.entries[k].shape, "x"))
          break
        end
      end
      if ok then g.params:copy_(s.params) end
    end
    if not ok then error("copy_params: " .. tostring(err), 2) end
  end
  return self
end

-- What a module holds only between a forward and its backward, or as a
-- borrowed reference to another module's buffer: a clone starts without it.
-- "buffer": an empty buffer of its own; "table": an empty table; "drop": nil.
local TRANSIENT = { output = "buffer", grad_input = "buffer", _outs = "table", _h = "drop", _at = "drop",
                    _active = "drop" }

-- Deep copy of v for clone: tables are copied (memoised); scratch buffers and
-- a module's transient fields start empty; other tensors are cloned;
-- everything else (generators, functions, loaded library modules, parameter
-- group handles) is shared. Fields for which skip(table, key) is true are
-- left out. Returns the copy, the memo (original -> copy) and the group
-- records met.
local function deep_copy(v, skip)
  local shared = {}
  for _, x in pairs(package.loaded) do
    if type(x) == "table" then shared[x] = true end
  end
  local memo, groups = {}, {}
  local copy
  local function field(k, y, is_module)
    local tr = is_module and TRANSIENT[k]
    if not tr then return copy(y) end
    if tr == "table" then return {} end
    if tr == "buffer" then return (core.istensor(y) and scratch[y]) and copy(y) or buffer() end
    return nil
  end
  function copy(x)
    local tx = type(x)
    if tx == "table" then
      if shared[x] then return x end
      if memo[x] then return memo[x] end
      local mt = getmetatable(x)
      if x.pg and x.entries and x.modules then groups[#groups + 1] = x end
      local c = {}
      memo[x] = c
      local is_module = type(x.forward) == "function"
      for k, y in pairs(x) do
        if not (skip and skip(x, k)) then c[copy(k)] = field(k, y, is_module) end
      end
      return setmetatable(c, mt)
    elseif tx == "userdata" and core.istensor(x) then
      if memo[x] then return memo[x] end
      local c
      if scratch[x] then
        c = buffer()
      else
        local ok, t = pcall(x.clone, x)
        c = ok and t or buffer()
      end
      memo[x] = c
      return c
    end
    return x
  end
  return copy(v), memo, groups
end

-- The fields clone binds anew instead of copying: every module's parameter
-- and gradient views, and a group record's flat vectors. inside: also the
-- place of a module inside a model in that model's groups.
local function rebound_fields(self, inside)
  local own = {} -- module -> its parameter and gradient fields
  walk(self, function(m)
    local f = {}
    for _, sp in ipairs(param_specs(m) or {}) do f[sp.name], f["grad_" .. sp.name] = true, true end
    own[m] = f
  end, "")
  return function(t, k)
    local f = own[t]
    if f == nil then
      return rawget(t, "pg") ~= nil and rawget(t, "entries") ~= nil and (k == "params" or k == "grads")
    end
    return f[k] == true or (inside and (k == "_group" or k == "_built" or k == "_groups"))
  end
end

--- A copy that holds the parameters (in arenas of its own, built if the
-- original was; gradients zero), the frozen flags and the configuration, and
-- nothing of the last forward or backward: outputs, input gradients and saved
-- intermediates start empty. Generators (a Dropout's), functions and loaded
-- library modules are shared, not copied. A module inside a model becomes a
-- model of its own, with only its subtree's parameters.
function Module:clone()
  if rawget(self, "_built") and not rawget(self, "_groups") then
    local parts = scope(self)
    if #parts == 1 then
      local c = deep_copy(self, rebound_fields(self, true))
      -- the values come from the original; the initialisation only fills the
      -- new arena first (with a generator of its own: the default one is untouched)
      Module.build(c, { generator = core.generator(0) })
      c._groups[1].params:copy_(parts[1].params)
      if parts[1].rec.frozen then c:freeze("base") end
      return c
    end
  end
  local c, memo, groups = deep_copy(self, rebound_fields(self, false))
  for _, g in ipairs(groups) do
    local cg = memo[g]
    local pg = core.param_group(g.pg:name())
    for i = 1, g.pg:count() do
      local name, shape = g.pg:info(i)
      pg:declare(name, shape)
    end
    pg:build()
    pg:copy_from(g.pg)
    pg:frozen(g.frozen)
    cg.pg = pg
    for _, e in ipairs(cg.entries) do
      local v, gr = pg:entry(e.index)
      e.module[e.field], e.module["grad_" .. e.field] = v, gr
    end
    cg.params, cg.grads = pg:flat()
    cg.grads:zero_()
  end
  return c
end

--- Adds modules whose parameters live in a new group gname (the model must
-- be built; its existing arenas are untouched). A Sequential appends them, a
-- MultiHead adds them as heads. opts.seed / opts.generator as in build; pass
-- them as a last table argument. Returns the position of the last module
-- added: its module index in a Sequential, its head number in a MultiHead
-- (ready for model:set_head).
function Module:add_group(gname, ...)
  if type(gname) ~= "string" then error("add_group: the group needs a name", 2) end
  for _, g in ipairs(root_groups(self, "add_group", 2)) do
    if g.name == gname then error("add_group: a group '" .. gname .. "' already exists", 2) end
  end
  local mods, opts = { ... }, nil
  if #mods > 0 and type(mods[#mods]) == "table" and getmetatable(mods[#mods]) == nil and mods[#mods].forward == nil then
    opts = table.remove(mods)
  end
  if #mods == 0 then error("add_group: no modules given", 2) end
  local target
  walk(self, function(m) if not target and m._attach then target = m end end, "")
  if not target then error("add_group: the model has no container to attach modules to", 2) end
  local paths, slot = {}, nil
  for i, m in ipairs(mods) do
    if type(m) ~= "table" or type(m.forward) ~= "function" then
      error(string.format("add_group: argument %d is not a module", i + 1), 2)
    end
    if contains(self, m) or contains(m, self) then
      error(string.format("add_group: %s is already in the model; a module sits in one place (use another, or a clone)",
        label(m)), 2)
    end
    for j = 1, i - 1 do
      if contains(mods[j], m) or contains(m, mods[j]) then
        error(string.format("add_group: %s is given twice", label(m)), 2)
      end
    end
  end
  for i, m in ipairs(mods) do paths[i], slot = target:_attach(m) end
  make_group(self, gname, mods, generator_of(opts, "add_group"), paths)
  for _, m in ipairs(mods) do
    walk(m, function(x) x._built = true; x.training = self.training end, "")
  end
  return slot
end

--- Selects head k of the first MultiHead in the tree. Returns self.
function Module:set_head(k)
  local mh
  walk(self, function(m) if not mh and m._is_multihead then mh = m end end, "")
  if not mh then error("set_head: the model has no MultiHead", 2) end
  mh:_select(k)
  return self
end

-- ----------------------------------------------------------------- layers

local Linear = class("Linear")
--- Linear(in, out, {bias=true}): y = x W^T + b, W [out, in] (PyTorch layout).
-- x may have leading dimensions; its last must be in.
function nn.Linear(nin, nout, opts)
  local o = options(opts, { bias = true }, "Linear")
  local m = new(Linear)
  m.in_features, m.out_features = posint(nin, "input size", "Linear"), posint(nout, "output size", "Linear")
  m._ws = buffer() -- small batches run faster as (W x^T)^T (see eg_linear_forward_ws)
  m._pspec = { { name = "weight", shape = { m.out_features, m.in_features } } }
  if o.bias then m._pspec[2] = { name = "bias", shape = { m.out_features } } end
  return m
end
-- reset(gen) re-initialises a built module's parameters in place.
local function need_params(self)
  if not rawget(self, "weight") then
    error(string.format("%s:reset: the module is not built (build the model first)", label(self)), 3)
  end
end

function Linear:reset(gen)
  need_params(self)
  local b = 1 / math.sqrt(self.in_features)
  core.nn_init_uniform(self.weight, -b, b, gen)
  if self.bias then core.nn_init_uniform(self.bias, -b, b, gen) end
end
function Linear:forward(x)
  if not self._built then ensure_built(self) end
  return core.nn_linear_forward(self.output, x, self.weight, self.bias, self._ws)
end
function Linear:backward(x, gy, need)
  if self._frozen then
    return core.nn_linear_backward(need ~= false and self.grad_input, nil, nil, gy, x, self.weight)
  end
  return core.nn_linear_backward(need ~= false and self.grad_input, self.grad_weight, self.grad_bias, gy, x,
    self.weight)
end
function Linear:_repr()
  return string.format("Linear(%d->%d%s)", self.in_features, self.out_features,
    self._pspec[2] and "" or ", no bias")
end

-- Element-wise activations: backward from the saved output (GELU from the input).
local function activation(name, kind, text)
  local cls = class(name)
  cls._kind = kind
  cls.forward = function(self, x) return core.nn_act_forward(self.output, x, kind, self.alpha) end
  cls.backward = function(self, x, gy)
    return core.nn_act_backward(self.grad_input, gy, x, self.output, kind, self.alpha)
  end
  cls._repr = function(self) return self.alpha and string.format("%s(%g)", text, self.alpha) or text end
  return cls
end
local ReLU = activation("ReLU", ACT.relu, "ReLU")
local LeakyReLU = activation("LeakyReLU", ACT.leaky_relu, "LeakyReLU")
local Tanh = activation("Tanh", ACT.tanh, "Tanh")
local Sigmoid = activation("Sigmoid", ACT.sigmoid, "Sigmoid")
local GELU = activation("GELU", ACT.gelu, "GELU")
function nn.ReLU() return new(ReLU) end
--- LeakyReLU(slope = 0.01)
function nn.LeakyReLU(slope)
  local m = new(LeakyReLU)
  m.alpha = slope or 0.01
  if type(m.alpha) ~= "number" then error("LeakyReLU: slope must be a number", 2) end
  return m
end
function nn.Tanh() return new(Tanh) end
function nn.Sigmoid() return new(Sigmoid) end
--- GELU, tanh approximation (PyTorch's gelu(approximate="tanh")).
function nn.GELU() return new(GELU) end

local Softmax = class("Softmax")
local LogSoftmax = class("LogSoftmax")
--- Softmax and LogSoftmax over the last dimension.
function nn.Softmax() return new(Softmax) end
function nn.LogSoftmax() return new(LogSoftmax) end
function Softmax:forward(x) return core.nn_softmax_forward(self.output, x, false) end
function Softmax:backward(_, gy) return core.nn_softmax_backward(self.grad_input, gy, self.output, false) end
function LogSoftmax:forward(x) return core.nn_softmax_forward(self.output, x, true) end
function LogSoftmax:backward(_, gy) return core.nn_softmax_backward(self.grad_input, gy, self.output, true) end

local Dropout = class("Dropout")
--- Dropout(p = 0.5, {generator=g}): in training mode zeroes each element
-- with probability p and scales the rest by 1/(1-p), with masks drawn from
-- the generator (default: the engine's default generator, so engram.seed
-- makes runs repeatable); the identity in evaluation mode.
function nn.Dropout(p, opts)
  local o = options(opts, { generator = false }, "Dropout")
  p = p or 0.5
  if type(p) ~= "number" or p < 0 or p >= 1 then error("Dropout: p must be in [0, 1)", 2) end
  local m = new(Dropout)
  m.p, m.generator, m._mask = p, o.generator or nil, buffer()
  m._out, m._gin = m.output, m.grad_input -- its own buffers; output is x itself when it passes x through
  return m
end
function Dropout:forward(x)
  if self.training and self.p > 0 then
    self._active = true
    self.output = core.nn_dropout_forward(self._out, self._mask, x, self.p, self.generator)
  else
    self._active = false
    self.output = x
  end
  return self.output
end
function Dropout:backward(_, gy)
  if self._active then
    self.grad_input = core.nn_dropout_backward(self._gin, gy, self._mask)
  else
    self.grad_input = gy
  end
  return self.grad_input
end
function Dropout:_repr() return string.format("Dropout(%g)", self.p) end

local LayerNorm = class("LayerNorm")
--- LayerNorm(D, {eps=1e-5, affine=true}) over the last dimension.
function nn.LayerNorm(D, opts)
  local o = options(opts, { eps = 1e-5, affine = true }, "LayerNorm")
  local m = new(LayerNorm)
  m.dim, m.eps, m.affine = posint(D, "size", "LayerNorm"), o.eps, o.affine
  m._mean, m._rstd = buffer(), buffer()
  if o.affine then
    m._pspec = { { name = "weight", shape = { m.dim } }, { name = "bias", shape = { m.dim } } }
  else
    m._ones = core.ones(m.dim)
  end
  return m
end
function LayerNorm:reset()
  need_params(self)
  self.weight:fill_(1)
  self.bias:fill_(0)
end
function LayerNorm:forward(x)
  if not self._built and self.affine then ensure_built(self) end
  return core.nn_layernorm_forward(self.output, self._mean, self._rstd, x, self.weight or self._ones, self.bias,
    self.eps)
end
function LayerNorm:backward(x, gy, need)
  local gw, gb = self.grad_weight, self.grad_bias
  if self._frozen then gw, gb = nil, nil end
  return core.nn_layernorm_backward(need ~= false and self.grad_input, gw, gb, gy, x, self._mean, self._rstd,
    self.weight or self._ones)
end
function LayerNorm:_repr() return string.format("LayerNorm(%d)", self.dim) end

local Flatten = class("Flatten")
--- Flatten(): [N, ...] -> [N, rest] (a view; 2-D input passes unchanged).
function nn.Flatten() return new(Flatten) end
function Flatten:forward(x) return core.nn_flatten(self.output, x) end
function Flatten:backward(x, gy) return core.nn_view_as(self.grad_input, gy, x) end

local Reshape = class("Reshape")
--- Reshape{1, 28, 28}: [N, ...] -> [N, 1, 28, 28] (a view; one size may be -1).
function nn.Reshape(shape)
  if type(shape) ~= "table" or #shape == 0 then error("Reshape: give the per-sample shape as a table", 2) end
  local m = new(Reshape)
  m.shape = shape
  return m
end
function Reshape:forward(x) return core.nn_reshape(self.output, x, self.shape) end
function Reshape:backward(x, gy) return core.nn_view_as(self.grad_input, gy, x) end
function Reshape:_repr() return "Reshape(" .. table.concat(self.shape, "x") .. ")" end

local Identity = class("Identity")
function nn.Identity() return new(Identity) end
function Identity:forward(x)
  self.output = x
  return x
end
function Identity:backward(_, gy)
  self.grad_input = gy
  return gy
end

local Conv2d = class("Conv2d")
--- Conv2d(in_channels, out_channels, kernel, {stride=1, padding=0, bias=true})
-- over [N, C, H, W]; square kernels; im2col + one sgemm per image.
function nn.Conv2d(cin, cout, k, opts)
  local o = options(opts, { stride = 1, padding = 0, bias = true }, "Conv2d")
  local m = new(Conv2d)
  m.in_channels = posint(cin, "input channels", "Conv2d")
  m.out_channels = posint(cout, "output channels", "Conv2d")
  m.kernel = posint(k, "kernel size", "Conv2d")
  m.stride = posint(o.stride, "stride", "Conv2d")
  m.padding = o.padding
  if math.type(m.padding) ~= "integer" or m.padding < 0 then error("Conv2d: padding must be an integer >= 0", 2) end
  m._cols = buffer()
  m._pspec = { { name = "weight", shape = { m.out_channels, m.in_channels, m.kernel, m.kernel } } }
  if o.bias then m._pspec[2] = { name = "bias", shape = { m.out_channels } } end
  return m
end
function Conv2d:reset(gen)
  need_params(self)
  local b = 1 / math.sqrt(self.in_channels * self.kernel * self.kernel)
  core.nn_init_uniform(self.weight, -b, b, gen)
  if self.bias then core.nn_init_uniform(self.bias, -b, b, gen) end
end
function Conv2d:forward(x)
  if not self._built then ensure_built(self) end
  return core.nn_conv2d_forward(self.output, self._cols, x, self.weight, self.bias, self.stride, self.padding)
end
function Conv2d:backward(x, gy, need)
  local gW, gb = self.grad_weight, self.grad_bias
  if self._frozen then gW, gb = nil, nil end
  return core.nn_conv2d_backward(need ~= false and self.grad_input, gW, gb, self._cols, gy, x, self.weight,
    self.stride, self.padding)
end
function Conv2d:_repr()
  return string.format("Conv2d(%d->%d, %dx%d, stride %d, padding %d)", self.in_channels, self.out_channels,
    self.kernel, self.kernel, self.stride, self.padding)
end

local MaxPool2d = class("MaxPool2d")
--- MaxPool2d(k, {stride=k, padding=0}) over [N, C, H, W].
function nn.MaxPool2d(k, opts)
  local o = options(opts, { stride = false, padding = 0 }, "MaxPool2d")
  local m = new(MaxPool2d)
  m.kernel = posint(k, "kernel size", "MaxPool2d")
  m.stride = posint(o.stride or m.kernel, "stride", "MaxPool2d")
  m.padding = o.padding
  m._idx = buffer()
  return m
end
function MaxPool2d:forward(x)
  return core.nn_maxpool2d_forward(self.output, self._idx, x, self.kernel, self.stride, self.padding)
end
function MaxPool2d:backward(x, gy) return core.nn_maxpool2d_backward(self.grad_input, gy, self._idx, x) end
function MaxPool2d:_repr() return string.format("MaxPool2d(%d, stride %d)", self.kernel, self.stride) end

local Embedding = class("Embedding")
--- Embedding(V, D): ids (float tensor of 0-based integral ids in [0, V),
-- like PyTorch; any shape) -> ids' shape followed by D. No input gradient.
function nn.Embedding(V, D)
  local m = new(Embedding)
  m.num, m.dim = posint(V, "vocabulary size", "Embedding"), posint(D, "width", "Embedding")
  m._pspec = { { name = "weight", shape = { m.num, m.dim } } }
  return m
end
function Embedding:reset(gen)
  need_params(self)
  core.nn_init_normal(self.weight, 0, 1, gen)
end
function Embedding:forward(ids)
  if not self._built then ensure_built(self) end
  return core.nn_embedding_forward(self.output, ids, self.weight)
end
function Embedding:backward(ids, gy)
  if not self._frozen then core.nn_embedding_backward(self.grad_weight, gy, ids) end
  return nil
end
function Embedding:_repr() return string.format("Embedding(%d, %d)", self.num, self.dim) end

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

-- ---------------------------------------------------------------- builders

local activations = {
  relu = nn.ReLU, tanh = nn.Tanh, sigmoid = nn.Sigmoid, gelu = nn.GELU, leaky_relu = nn.LeakyReLU,
}

--- mlp{784, 400, 400, 10, activation="relu", dropout=0, layernorm=false, flatten=false}
-- Linear layers between the sizes with the activation (relu, tanh, sigmoid,
-- gelu, leaky_relu) after every hidden one, then Dropout(p) when dropout > 0,
-- and LayerNorm before the activation when layernorm. flatten=true starts
-- with Flatten (for [N,1,28,28] images).
function nn.mlp(spec)
  if type(spec) ~= "table" then error("mlp: expected a table of sizes, e.g. mlp{784, 400, 10}", 2) end
  local sizes, opts = {}, {}
  for k, v in pairs(spec) do
    if math.type(k) == "integer" then sizes[k] = v else opts[k] = v end
  end
  local o = options(opts, { activation = "relu", dropout = 0, layernorm = false, flatten = false }, "mlp")
  if #sizes < 2 then error("mlp: needs at least two sizes (input and output)", 2) end
  local act = activations[o.activation]
  if not act then
    error("mlp: unknown activation '" .. tostring(o.activation) .. "' (relu, tanh, sigmoid, gelu, leaky_relu)", 2)
  end
  local m = nn.Sequential()
  if o.flatten then m:add(nn.Flatten()) end
  for i = 1, #sizes - 1 do
    m:add(nn.Linear(sizes[i], sizes[i + 1]))
    if i < #sizes - 1 then
      if o.layernorm then m:add(nn.LayerNorm(sizes[i + 1])) end
      m:add(act())
      if o.dropout > 0 then m:add(nn.Dropout(o.dropout)) end
    end
  end
  return m
end

--- cnn{input={1, 28, 28}, channels={16, 32}, hidden=128, classes=10, dropout=0}
-- Reshape to the input shape (so [N,784] and [N,1,28,28] both work), then per
-- entry of channels: Conv2d 3x3 padding 1, ReLU, MaxPool2d 2; then Flatten,
-- Linear(hidden), ReLU, [Dropout], Linear(classes).
function nn.cnn(opts)
  local o = options(opts, { input = { 1, 28, 28 }, channels = { 16, 32 }, hidden = 128, classes = 10, dropout = 0 },
    "cnn")
  if type(o.input) ~= "table" or #o.input ~= 3 then
    error("cnn: input must be {channels, height, width}", 2)
  end
  local c, h, w = posint(o.input[1], "input channels", "cnn"), posint(o.input[2], "input height", "cnn"),
    posint(o.input[3], "input width", "cnn")
  if type(o.channels) ~= "table" then error("cnn: channels must be a list of channel counts", 2) end
  for i, ch in ipairs(o.channels) do posint(ch, "channels[" .. i .. "]", "cnn") end
  posint(o.hidden, "hidden", "cnn"); posint(o.classes, "classes", "cnn")
  if type(o.dropout) ~= "number" then error("cnn: dropout must be a number in [0, 1)", 2) end
  local m = nn.Sequential(nn.Reshape({ c, h, w }))
  for _, ch in ipairs(o.channels) do
    m:add(nn.Conv2d(c, ch, 3, { padding = 1 })):add(nn.ReLU()):add(nn.MaxPool2d(2))
    c, h, w = ch, h // 2, w // 2
  end
  m:add(nn.Flatten()):add(nn.Linear(c * h * w, o.hidden)):add(nn.ReLU())
  if o.dropout > 0 then m:add(nn.Dropout(o.dropout)) end
  m:add(nn.Linear(o.hidden, o.classes))
  return m
end

return nn
