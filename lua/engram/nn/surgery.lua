--- engram.nn.surgery: changing a built model in place -- wrap a layer,
-- insert a module after one, replace or remove one, freeze layers or
-- parameters by path or pattern -- and model:summary(). The manual is
-- engram.nn's header (lua/engram/nn/init.lua) and docs/isolation.md.
--
-- Selectors name modules of the tree:
--   "3"            the path of a module: module 3 of the root container
--   "encoder.2"    module 2 of the child named "encoder" (a child's `name`
--                  field; a segment is an index or a name)
--   "Linear"       every module of that class (not the root)
--   function(m, path) -> true for the modules wanted
--   {"1", "3"}     a list of selectors
-- A selector that matches nothing is an error naming it.
--
-- Arenas are never re-flattened: the parameters of new modules go into a
-- new parameter group (opts.group names it), the groups already there keep
-- their storage, and a removed or replaced layer's parameters stay in their
-- group, unused (their gradients stay zero).
local core = require("engram.core")
local base = require("engram.nn.module")

local Module = base.Module
local walk, label, children, contains = base.walk, base.label, base.children, base.contains
local fmtint, param_specs, ensure_built = base.fmtint, base.param_specs, base.ensure_built

local surgery = {}

local function class_name(m)
  local mt = getmetatable(m)
  return (mt and mt.__name) or rawget(m, "name") or "LuaModule"
end

-- Every module of the tree but the root: {module=, path=, parent=, index=}.
local function all_entries(root)
  local out = {}
  local function rec(m, path)
    for i, c in ipairs(children(m)) do
      local p = path == "" and tostring(i) or (path .. "." .. i)
      out[#out + 1] = { module = c, path = p, parent = m, index = i }
      rec(c, p)
    end
  end
  rec(root, "")
  return out
end

-- The module at a path ("3", "encoder.2"), or nil and where it stopped.
local function by_path(root, path)
  local m, parent, idx, canon = root, nil, nil, {}
  for seg in path:gmatch("[^%.]+") do
    local kids, found = children(m), nil
    local k = math.tointeger(tonumber(seg))
    if k and tostring(k) == seg then
      if kids[k] then found = k end
    else
      for i, c in ipairs(kids) do
        if rawget(c, "name") == seg then found = i; break end
      end
    end
    if not found then
      local where = #canon == 0 and "the root" or ("'" .. table.concat(canon, ".") .. "'")
      return nil, string.format("%s (%s) has %s; no module '%s' there", where, label(m),
        #kids == 0 and "no modules" or (#kids .. " module" .. (#kids == 1 and "" or "s")), seg)
    end
    parent, idx, m = m, found, kids[found]
    canon[#canon + 1] = tostring(found)
  end
  if not parent then return nil, "an empty path" end
  return { module = m, parent = parent, index = idx, path = table.concat(canon, ".") }
end

local function is_path(s) return s:match("^[%w_]+$") or s:match("^[%w_]+[%.%w_]*[%w_]$") end

-- The entries a selector names (in tree order, each once), or nil and an error message.
local function resolve_(root, sel, who)
  local out, seen = {}, {}
  local function add(e)
    if not seen[e.module] then seen[e.module] = true; out[#out + 1] = e end
  end
  local function one(s)
    if type(s) == "string" then
      local e, why = nil, nil
      if is_path(s) then e, why = by_path(root, s) end
      if e then return add(e) end
      local any = false
      for _, x in ipairs(all_entries(root)) do
        if class_name(x.module) == s then add(x); any = true end
      end
      if not any then
        if s:match("^[%d%.]+$") or s:find("%.") then
          error(string.format("%s: no module at path '%s': %s", who, s, why or "not a path"), 0)
        end
        error(string.format("%s: '%s' matches no module (neither a path like \"3\" or \"encoder.2\" nor the class " ..
          "of a module, like \"Linear\")", who, s), 0)
      end
    elseif type(s) == "function" then
      local any = false
      for _, x in ipairs(all_entries(root)) do
        if s(x.module, x.path) then add(x); any = true end
      end
      if not any then error(string.format("%s: the selector function matches no module", who), 0) end
    elseif type(s) == "table" and getmetatable(s) == nil and #s > 0 then
      for _, x in ipairs(s) do one(x) end
    else
      error(string.format("%s: a selector is a path (\"3\", \"encoder.2\"), a class name (\"Linear\"), a " ..
        "function(module, path) or a list of them; got %s", who, type(s)), 0)
    end
  end
  one(sel)
  return out
end

-- resolve_ raising at `level` (1: the caller of resolve's caller).
local function resolve(root, sel, who, level)
  local ok, out = pcall(resolve_, root, sel, who)
  if not ok then error(out, level + 2) end
  return out
end
surgery.resolve = resolve

local function check_root(self, who, level)
  ensure_built(self)
  base.root_groups(self, who, level + 1)
end

local function check_module(m, who, what, level)
  if type(m) ~= "table" or type(m.forward) ~= "function" or type(m.backward) ~= "function" then
    error(string.format("%s: %s is not a module (a table with forward and backward), got %s", who, what, type(m)),
      level + 1)
  end
end

local op_counts = setmetatable({}, { __mode = "k" })
-- A new group's name: opts.group, or op .. n for the first unused n.
local function group_name(self, op, opts)
  if opts.group ~= nil then
    if type(opts.group) ~= "string" or opts.group == "" then
      error(string.format("%s: group must be a non-empty string, got %s", op, tostring(opts.group)), 4)
    end
    for _, g in ipairs(rawget(self, "_groups")) do
      if g.name == opts.group then error(string.format("%s: a group '%s' already exists", op, opts.group), 4) end
    end
    return opts.group
  end
  local names = {}
  for _, g in ipairs(rawget(self, "_groups")) do names[g.name] = true end
  local c = op_counts[self] or {}
  op_counts[self] = c
  local n = c[op] or 0
  repeat n = n + 1 until not names[op .. n]
  c[op] = n
  return op .. n
end

local OPTS = { group = false, seed = false, generator = false, again = false }

local function check_opts(opts, who)
  return base.options(opts, OPTS, who)
end

-- The path of module m in root's tree (nil when it is not there).
local function path_of(root, m)
  local found
  walk(root, function(x, p) if x == m then found = p end end, "")
  return found
end

-- After new modules were placed: one new group for their parameters (none
-- when they declare none), built flags, the training mode. On failure the
-- placement is undone by `undo` and the error raised at `level`.
local function adopt(self, op, mods, opts, undo, level)
  base.invalidate()
  local needs = false
  for _, m in ipairs(mods) do
    walk(m, function(x)
      local specs = param_specs(x)
      if specs and #specs > 0 and not rawget(x, "_group") then needs = true end
    end, "")
  end
  local gname
  if needs then
    gname = group_name(self, op, opts)
    local paths = {}
    for i, m in ipairs(mods) do paths[i] = path_of(self, m) end
    local ok, err = pcall(base.make_group, self, gname, mods, base.generator_of({ seed = opts.seed,
      generator = opts.generator }, op), paths)
    if not ok then
      undo()
      base.invalidate()
      error(string.format("%s: %s", op, tostring(err)), level + 1)
    end
  end
  for _, m in ipairs(mods) do
    walk(m, function(x) x._built = true; x.training = self.training end, "")
  end
  return gname
end

--- model:find(sel) -> { {path=, module=}, ... } in tree order.
function Module:find(sel)
  check_root(self, "find", 2)
  local out = {}
  for i, e in ipairs(resolve(self, sel, "find", 1)) do out[i] = { path = e.path, module = e.module } end
  return out
end

--- model:get(path) -> the module at a path ("3", "encoder.2").
function Module:get(path)
  if type(path) ~= "string" then error("get: the path must be a string like \"3\" or \"encoder.2\"", 2) end
  local e, why = by_path(self, path)
  if not e then error(string.format("get: no module at path '%s': %s", path, why), 2) end
  return e.module
end

-- A wrapper made by wrap, or a module inside one.
local function wrapped_by(root, e)
  if rawget(e.module, "_wrapper") then return e.module, e.path end
  if rawget(e.parent, "_wrapper") then return e.parent, path_of(root, e.parent) end
end

--- model:wrap(sel, fn, opts): for each module matched, fn(layer, path) must
-- return a module that holds the layer (e.g. nn.LoRA(layer, {rank = 8})); it
-- takes the layer's place. New parameters go into one new group (opts.group,
-- default "wrap1", "wrap2", ...; opts.seed / opts.generator initialise them).
-- Wrapping a wrapper or a module inside one is an error unless opts.again.
-- Returns the list of wrappers.
function Module:wrap(sel, fn, opts)
  check_root(self, "wrap", 2)
  local o = check_opts(opts, "wrap")
  if type(fn) ~= "function" then error("wrap: the second argument must be a function(layer, path) -> module", 2) end
  local list = resolve(self, sel, "wrap", 1)
  if not o.again then
    for _, e in ipairs(list) do
      local w, wp = wrapped_by(self, e)
      if w then
        error(string.format("wrap: %s at '%s' is already wrapped (%s at '%s'); pass again = true to wrap it again",
          label(e.module == w and e.module.modules[1] or e.module), e.path, label(w), wp), 2)
      end
    end
  end
  local placed = {}
  local function undo()
    for i = #placed, 1, -1 do
      local p = placed[i]
      p.parent.modules[p.index] = p.old
      p.new._wrapper = nil
    end
  end
  for _, e in ipairs(list) do
    local ok, w = pcall(fn, e.module, e.path)
    if not ok then undo(); error(string.format("wrap: at '%s': %s", e.path, tostring(w)), 2) end
    local okm = pcall(check_module, w, "wrap", "", 1)
    if not okm or w == e.module or not contains(w, e.module) then
      undo()
      error(string.format("wrap: the function must return a new module holding the layer (at '%s' it returned %s)",
        e.path, okm and label(w) or type(w)), 2)
    end
    if contains(self, w) then undo(); error(string.format("wrap: %s is already in the model", label(w)), 2) end
    e.parent.modules[e.index] = w
    w._wrapper = true
    placed[#placed + 1] = { parent = e.parent, index = e.index, old = e.module, new = w }
  end
  local mods = {}
  for i, p in ipairs(placed) do mods[i] = p.new end
  adopt(self, "wrap", mods, o, undo, 2)
  return mods
end

local function make_new(x, e, who, level)
  local m = x
  if type(x) == "function" then
    local ok, r = pcall(x, e.module, e.path)
    if not ok then error(string.format("%s: at '%s': %s", who, e.path, tostring(r)), level + 1) end
    m = r
  end
  check_module(m, who, "the new module", level + 1)
  return m
end

--- model:insert_after(sel, m, opts): puts a module after each module matched
-- (in its Sequential). m is a module (one match only) or a function(layer,
-- path) -> module. New parameters: one new group as in wrap ("insert1", ...).
-- Returns the list of modules inserted.
function Module:insert_after(sel, m, opts)
  check_root(self, "insert_after", 2)
  local o = check_opts(opts, "insert_after")
  local list = resolve(self, sel, "insert_after", 1)
  if type(m) ~= "function" and #list > 1 then
    error(string.format("insert_after: %d modules match; give a function(layer, path) -> module to make one " ..
      "for each", #list), 2)
  end
  local news = {}
  for i, e in ipairs(list) do
    if class_name(e.parent) ~= "Sequential" then
      error(string.format("insert_after: %s at '%s' is in a %s; modules are inserted in a Sequential", label(e.module),
        e.path, class_name(e.parent)), 2)
    end
    news[i] = make_new(m, e, "insert_after", 2)
    if contains(self, news[i]) then
      error(string.format("insert_after: %s is already in the model", label(news[i])), 2)
    end
  end
  -- from the last to the first, so earlier indices stay valid
  for i = #list, 1, -1 do table.insert(list[i].parent.modules, list[i].index + 1, news[i]) end
  adopt(self, "insert", news, o, function()
    for i, e in ipairs(list) do
      for k, x in ipairs(e.parent.modules) do
        if x == news[i] then table.remove(e.parent.modules, k); break end
      end
    end
  end, 2)
  return news
end

--- model:replace(sel, m, opts): the module matched is replaced by m (a
-- module, or a function(layer, path) -> module). The old module's
-- parameters stay in their group, unused. Returns the list of new modules.
function Module:replace(sel, m, opts)
  check_root(self, "replace", 2)
  local o = check_opts(opts, "replace")
  local list = resolve(self, sel, "replace", 1)
  if type(m) ~= "function" and #list > 1 then
    error(string.format("replace: %d modules match; give a function(layer, path) -> module", #list), 2)
  end
  local news, placed = {}, {}
  local function undo()
    for i = #placed, 1, -1 do placed[i].parent.modules[placed[i].index] = placed[i].old end
  end
  for i, e in ipairs(list) do
    news[i] = make_new(m, e, "replace", 2)
    if contains(self, news[i]) then
      undo()
      error(string.format("replace: %s is already in the model", label(news[i])), 2)
    end
    e.parent.modules[e.index] = news[i]
    placed[#placed + 1] = { parent = e.parent, index = e.index, old = e.module }
  end
  adopt(self, "replace", news, o, undo, 2)
  return news
end

--- model:remove(sel): takes the modules matched out of their containers.
-- Their parameters stay in their groups, unused. Returns the removed modules.
function Module:remove(sel)
  check_root(self, "remove", 2)
  local list = resolve(self, sel, "remove", 1)
  for _, e in ipairs(list) do
    if #e.parent.modules == 1 then
      error(string.format("remove: %s at '%s' is the only module of its %s", label(e.module), e.path,
        class_name(e.parent)), 2)
    end
  end
  local out = {}
  for i = #list, 1, -1 do
    local e = list[i]
    table.remove(e.parent.modules, e.index)
    out[i] = e.module
  end
  base.invalidate()
  return out
end

--- model:new_group(gname, {m1, m2, ...}, {seed=, generator=}): the
-- parameters of modules already placed in the tree (by a container's own
-- method: LoRA:add_set, Switch:add, Progressive:add_column) and in no group
-- yet go into a new group gname, one arena; the others are untouched.
-- Returns the group's name.
function Module:new_group(gname, mods, opts)
  check_root(self, "new_group", 2)
  if type(gname) ~= "string" or gname == "" then error("new_group: the group needs a name", 2) end
  local o = base.options(opts, { seed = false, generator = false }, "new_group")
  o.group = gname
  if type(mods) ~= "table" or getmetatable(mods) ~= nil or #mods == 0 then
    error("new_group: expected a list of modules", 2)
  end
  for i, m in ipairs(mods) do
    check_module(m, "new_group", "entry " .. i, 2)
    if not path_of(self, m) then error(string.format("new_group: %s is not in the model", label(m)), 2) end
    if rawget(m, "_group") then
      error(string.format("new_group: %s has its parameters in group '%s' already", label(m), m._group.name), 2)
    end
  end
  local okn, err = pcall(group_name, self, "new_group", o)
  if not okn then error(err, 2) end
  return adopt(self, "new_group", mods, o, function() end, 2)
end

-- ------------------------------------------------------------- freezing

-- Sets the mask of group rec over entry e to v (creating or dropping it).
local function mask_entry(rec, e, v)
  local _, shape, off = rec.pg:info(e.index)
  local k = 1
  for _, d in ipairs(shape) do k = k * d end
  if not rec.mask then
    if v == 1 then return end
    rec.mask = core.ones(rec.numel)
  end
  rec.mask:narrow(1, off + 1, k):fill_(v)
end

local function tidy(rec)
  if rec.mask and rec.mask:sum() == rec.numel then rec.mask = nil end
  -- a group masked whole counts as frozen: optimisers skip it in one test
  rec.all_masked = (rec.mask ~= nil and rec.mask:sum() == 0) or nil
  for _, m in ipairs(rec.modules) do
    local all = rec.mask ~= nil
    if all then
      for _, e in ipairs(rec.entries) do
        if e.module == m then
          local _, shape, off = rec.pg:info(e.index)
          local k = 1
          for _, d in ipairs(shape) do k = k * d end
          if rec.mask:narrow(1, off + 1, k):sum() ~= 0 then all = false end
        end
      end
    end
    m._lfrozen = all or nil
    m._frozen = (rec.frozen or all) or nil
  end
end

local function set_layers(self, sel, v, who)
  check_root(self, who, 3)
  local touched = {}
  for _, e in ipairs(resolve(self, sel, who, 2)) do
    walk(e.module, function(m)
      local rec = rawget(m, "_group")
      if rec then
        for _, en in ipairs(rec.entries) do
          if en.module == m then mask_entry(rec, en, v) end
        end
        touched[rec] = true
      end
    end, "")
  end
  for rec in pairs(touched) do tidy(rec) end
  return self
end

--- model:freeze_layers(sel) / model:unfreeze_layers(sel): the parameters of
-- the modules matched (and of their children) are kept (masked in their
-- group: optimisers leave them and the layers skip their gradients).
function Module:freeze_layers(sel) return set_layers(self, sel, 0, "freeze_layers") end
function Module:unfreeze_layers(sel) return set_layers(self, sel, 1, "unfreeze_layers") end

local function set_params(self, pattern, v, who)
  check_root(self, who, 3)
  if type(pattern) ~= "string" then
    error(string.format("%s: expected a Lua pattern over parameter names (e.g. \"bias$\"), got %s", who,
      type(pattern)), 3)
  end
  local any = false
  for _, rec in ipairs(rawget(self, "_groups")) do
    local hit = false
    for _, e in ipairs(rec.entries) do
      local full = rec.name .. "." .. e.name
      if e.name:find(pattern) or full:find(pattern) then mask_entry(rec, e, v); hit = true end
    end
    if hit then tidy(rec); any = true end
  end
  if not any then
    error(string.format("%s: no parameter name matches '%s' (names look like \"1.weight\" or \"base.1.bias\")", who,
      pattern), 3)
  end
  return self
end

--- model:freezing() -> {group name = {frozen = bool, mask = tensor or nil}}:
-- how every group is frozen (whole, or its element mask: 1 train, 0 keep;
-- the masks are the model's own: clone them to keep them). For checkpoints.
function Module:freezing()
  check_root(self, "freezing", 2)
  local out = {}
  for _, rec in ipairs(rawget(self, "_groups")) do
    out[rec.name] = { frozen = rec.frozen and true or false, mask = rec.mask }
  end
  return out
end

--- model:set_freezing(st): puts back what freezing() gave, for every group
-- st names (the masks copied). Checked whole before anything changes.
function Module:set_freezing(st)
  check_root(self, "set_freezing", 2)
  if type(st) ~= "table" then error("set_freezing: expected {group name = {frozen =, mask =}}", 2) end
  local groups, byname = rawget(self, "_groups"), {}
  for _, rec in ipairs(groups) do byname[rec.name] = rec end
  for name, e in pairs(st) do
    local rec = byname[name]
    if not rec then error(string.format("set_freezing: no parameter group '%s'", tostring(name)), 2) end
    if type(e) ~= "table" or type(e.frozen) ~= "boolean" then
      error(string.format("set_freezing: group '%s': expected {frozen = bool, mask = tensor or nil}", name), 2)
    end
    if e.mask ~= nil and (not core.istensor(e.mask) or e.mask:numel() ~= rec.numel) then
      error(string.format("set_freezing: group '%s' has %d parameters, the mask %s values", name, rec.numel,
        core.istensor(e.mask) and tostring(e.mask:numel()) or "no"), 2)
    end
  end
  for name, e in pairs(st) do
    local rec = byname[name]
    rec.mask = e.mask and e.mask:contiguous():view(-1):clone() or nil
    tidy(rec)
    if e.frozen then self:freeze(name) else self:unfreeze(name) end
  end
  return self
end

--- model:freeze_params(pattern) / model:unfreeze_params(pattern): the
-- parameters whose name ("1.weight") or group-qualified name
-- ("base.1.weight") matches the Lua pattern.
function Module:freeze_params(pattern) return set_params(self, pattern, 0, "freeze_params") end
function Module:unfreeze_params(pattern) return set_params(self, pattern, 1, "unfreeze_params") end

-- ------------------------------------------------------------- summary

local function own_numel(m)
  local n = 0
  for _, s in ipairs(param_specs(m) or {}) do
    local e = 1
    for _, d in ipairs(s.shape) do e = e * d end
    n = n + e
  end
  return n
end

local function trainable_of(m)
  local rec = rawget(m, "_group")
  if not rec then return nil end
  if rec.frozen or rawget(m, "_lfrozen") then return "no" end
  if rec.mask then
    for _, e in ipairs(rec.entries) do
      if e.module == m then
        local _, shape, off = rec.pg:info(e.index)
        local k = 1
        for _, d in ipairs(shape) do k = k * d end
        if rec.mask:narrow(1, off + 1, k):sum() ~= k then return "partly" end
      end
    end
  end
  return "yes"
end

--- model:summary(input, opts) -> text, printed unless opts.quiet: the tree
-- with each module's output shape (from one forward in evaluation mode on
-- zeros of the input shape, e.g. {1, 784}, or on a given tensor; "-" for
-- modules the forward did not run: inactive heads or adapter sets),
-- parameter count, group and trainable flag, then the totals and the groups.
function Module:summary(input, opts)
  local o = base.options(opts, { quiet = false }, "summary")
  check_root(self, "summary", 2)
  local shapes = {}
  if input ~= nil then
    local x = input
    if type(input) == "table" then
      for i, d in ipairs(input) do base.posint(d, "input size " .. i, "summary") end
      x = core.zeros(table.unpack(input))
    elseif not core.istensor(input) then
      error("summary: the input is a shape like {1, 784} or a tensor", 2)
    end
    local patched = {}
    walk(self, function(m)
      local own = rawget(m, "forward")
      local f = m.forward
      patched[#patched + 1] = { m = m, own = own }
      m.forward = function(mm, ...)
        local y = f(mm, ...)
        if core.istensor(y) then shapes[mm] = table.concat(y:size(), "x") end
        return y
      end
    end, "")
    local was = self.training
    self:evaluate()
    local ok, err = pcall(self.forward, self, x)
    if was ~= false then self:train() end
    for _, p in ipairs(patched) do rawset(p.m, "forward", p.own) end
    if not ok then error("summary: the forward failed: " .. tostring(err), 2) end
  end
  local rows = { { "Layer (path)", "Output shape", "Params", "Group", "Trainable" } }
  walk(self, function(m, path)
    local depth = path == "" and 0 or select(2, path:gsub("%.", "")) + 1
    local name = string.rep("  ", depth) .. label(m) .. (path == "" and "" or (" (" .. path .. ")"))
    local n = own_numel(m)
    local rec = rawget(m, "_group")
    rows[#rows + 1] = { name, input ~= nil and (shapes[m] or "-") or "", n > 0 and fmtint(n) or "",
      n > 0 and rec and rec.name or "", n > 0 and trainable_of(m) or "" }
  end, "")
  local w = {}
  for _, r in ipairs(rows) do
    for i, c in ipairs(r) do w[i] = math.max(w[i] or 0, utf8.len(c) or #c) end
  end
  local lines = {}
  local function line(r)
    local cells = {}
    for i, c in ipairs(r) do
      local pad = string.rep(" ", w[i] - (utf8.len(c) or #c))
      cells[i] = (i == 3) and (pad .. c) or (c .. pad)
    end
    lines[#lines + 1] = (table.concat(cells, "  "):gsub("%s+$", ""))
  end
  local total = 0
  for i, r in ipairs(rows) do
    line(r)
    if i == 1 then
      total = 0
      for _, x in ipairs(w) do total = total + x + 2 end
      lines[#lines + 1] = string.rep("=", total - 2)
    end
  end
  lines[#lines + 1] = string.rep("=", total - 2)
  local all, tr = self:numel(), self:numel { trainable = true }
  lines[#lines + 1] = string.format("Total params: %s (%s bytes)", fmtint(all), fmtint(4 * all))
  lines[#lines + 1] = string.format("Trainable params: %s (%.2f%%)", fmtint(tr), all > 0 and 100 * tr / all or 0)
  lines[#lines + 1] = string.format("Non-trainable params: %s", fmtint(all - tr))
  for _, g in ipairs(self:groups()) do
    local gt = g.frozen and 0 or (g.mask and math.tointeger(g.mask:sum()) or g.numel)
    lines[#lines + 1] = string.format("  group %-12s %12s params  %s", g.name, fmtint(g.numel),
      g.frozen and "frozen" or (gt == g.numel and "trainable" or (fmtint(gt) .. " trainable")))
  end
  local text = table.concat(lines, "\n")
  if not o.quiet then print(text) end
  return text
end

return surgery
