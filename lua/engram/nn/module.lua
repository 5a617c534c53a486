--- engram.nn.module: the Module base class and what every model shares --
-- the tree of modules, the parameter groups (flat arenas) it builds, scopes
-- of modules inside a model, freezing, clone and growth (add_group). The
-- manual is engram.nn's header (lua/engram/nn/init.lua); the layers and the
-- containers are in engram.nn.layers and engram.nn.containers, which take
-- the helpers below from the table this file returns.
local core = require("engram.core")
local util = require("engram.util")

local nn = {} -- the public engram.nn table; layers and containers add to it

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
    -- the same slices as before when the module's place in its group has not
    -- moved: optimisers key their state by them (a GAN's Adam on its
    -- generator would otherwise start afresh whenever any model is built)
    local old
    for _, q in ipairs(cached and cached.parts or {}) do
      if q.rec == part.rec and q.base == part.rec.params and q.lo == lo and q.numel == n then old = q end
    end
    if old then
      part.params, part.grads = old.params, old.grads
    else
      part.params, part.grads = part.rec.params:narrow(1, lo + 1, n), part.rec.grads:narrow(1, lo + 1, n)
    end
    part.numel, part.lo, part.base = n, lo, part.rec.params
  end
  scopes[self] = { layout = layout, parts = out }
  return out
end

-- The element mask of a root group (freeze_layers, freeze_params; 1 train,
-- 0 keep), which optimisers honour; a scope of a module inside a model has none.
local function own_mask(g)
  return g.rec == g and g.mask or nil
end

--- Array of {name=, params=, grads=, frozen=, numel=, mask=?} ("base" first). For a
-- module inside a model: the slices of the model's groups its parameters take.
function Module:groups()
  local out = {}
  for i, g in ipairs(scope(self)) do
    out[i] = { name = g.name, params = g.params, grads = g.grads, frozen = g.rec.frozen or g.rec.all_masked == true,
               numel = g.numel,
               mask = own_mask(g) }
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
    if not (o.trainable and g.rec.frozen) then
      local mask = o.trainable and own_mask(g)
      n = n + (mask and math.tointeger(mask:sum()) or g.numel)
    end
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
  for _, m in ipairs(g.modules) do m._frozen = (flag or rawget(m, "_lfrozen")) or nil end
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


return {
  nn = nn, Module = Module, class = class, new = new, buffer = buffer, options = options, posint = posint,
  fmtint = fmtint, walk = walk, label = label, check_child = check_child, param_specs = param_specs,
  ensure_built = ensure_built, make_group = make_group, generator_of = generator_of, root_groups = root_groups,
  contains = contains, children = children,
  invalidate = function() layout = layout + 1 end, -- the tree changed: scopes are stale
}
