--- engram.util: small helpers the library modules share (not a public API).
local core = require("engram.core")

local util = {}

--- Checks that every key of opts is known. `known` is a table whose keys are
-- the allowed names (its values do not matter), or an array of such tables.
-- An unknown key raises "<who>: unknown option 'k' (known: a, b, ...)".
-- level counts as for error(), from the caller of check_options (1 = the
-- caller). Returns opts, or a new empty table when opts is nil.
function util.check_options(who, opts, known, level)
  level = (level or 1) + 1
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    error(string.format("%s: options must be a table, got %s", who, type(opts)), level)
  end
  if type(known) ~= "table" then error(string.format("%s: the known options must be a table", who), level) end
  local sets = (known[1] ~= nil and type(known[1]) == "table") and known or { known }
  for i, set in ipairs(sets) do
    if type(set) ~= "table" then
      error(string.format("%s: the known options must be tables (set %d is a %s)", who, i, type(set)), level)
    end
  end
  for k in pairs(opts) do
    local ok = false
    for _, set in ipairs(sets) do
      if set[k] ~= nil then ok = true; break end
    end
    if not ok then
      local names = {}
      for _, set in ipairs(sets) do
        for name in pairs(set) do names[#names + 1] = tostring(name) end
      end
      table.sort(names)
      if #names == 0 then
        error(string.format("%s: unknown option '%s' (it takes none)", who, tostring(k)), level)
      end
      error(string.format("%s: unknown option '%s' (known: %s)", who, tostring(k), table.concat(names, ", ")), level)
    end
  end
  return opts
end

--- A new table: opts' values where given, the defaults elsewhere; a default
-- equal to `none` (if given) means "no default" and is left out.
function util.with_defaults(opts, defaults, none)
  local o = {}
  for k, v in pairs(defaults) do
    if opts[k] ~= nil then
      o[k] = opts[k]
    elseif none == nil or v ~= none then
      o[k] = v
    end
  end
  return o
end

--- Raises "<who>: <what> must be a tensor, got <type>" unless v is a tensor
-- (level as for error(), from the caller of check_tensor). Returns v.
function util.check_tensor(who, v, what, level)
  if not core.istensor(v) then
    error(string.format("%s: %s must be a tensor, got %s", who, what, type(v)), (level or 1) + 1)
  end
  return v
end

--- Calls a C function f(...); its error is re-raised at the line that called
-- the caller of util.call (a library function's caller: the recipe), with
-- Lua's "bad argument #1 to '?'" naming op.
function util.call(op, f, ...)
  local ok, a, b = pcall(f, ...)
  if not ok then
    if type(a) == "string" then a = a:gsub("to '%?'", "to '" .. op .. "'", 1) end
    error(a, 3)
  end
  return a, b
end

return util
