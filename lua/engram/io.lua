--- engram.io: named tensors in files, in the safetensors layout (the format
-- of engram's checkpoints; PyTorch's safetensors package and numpy read it).
--
--   engram.io.save("state.safetensors", {["fc1.weight"] = W, ["fc1.bias"] = b},
--                  {epoch = "3"})                      -- metadata: strings only
--   local tensors, meta, names = engram.io.load("state.safetensors")
--   tensors["fc1.weight"]                              -- a new float32 tensor
--
-- save writes the tensors in the order of their sorted names (a stable
-- file for the same contents), as float32, little-endian, and replaces the
-- file atomically. load checks the whole file before it returns anything: a
-- truncated, corrupt or foreign file (another dtype, offsets that do not fit)
-- is an error naming the file and the problem (core/safetensors.h).
local core = require("engram.core")

local io_ = {}

local function fail(who, err, level)
  error(who .. ": " .. tostring(err):gsub("^[^:]*:%d+: ", ""):gsub("^safetensors_%a+: ", ""), level + 1)
end

--- Writes the tensors (a table name -> tensor) and optional metadata (a
-- table of strings) to path.
function io_.save(path, tensors, meta)
  if type(path) ~= "string" then error("io.save: the path must be a string, got " .. type(path), 2) end
  if type(tensors) ~= "table" then error("io.save: expected a table of name -> tensor, got " .. type(tensors), 2) end
  if meta ~= nil and type(meta) ~= "table" then error("io.save: metadata must be a table of strings", 2) end
  local names, list = {}, {}
  for k, v in pairs(tensors) do
    if type(k) ~= "string" then error("io.save: tensor names must be strings, got a " .. type(k), 2) end
    if not core.istensor(v) then error(string.format("io.save: '%s' is a %s, not a tensor", k, type(v)), 2) end
    names[#names + 1] = k
  end
  table.sort(names)
  for i, k in ipairs(names) do list[i] = tensors[k] end
  local m = {}
  for k, v in pairs(meta or {}) do
    if type(k) ~= "string" or (type(v) ~= "string" and type(v) ~= "number" and type(v) ~= "boolean") then
      error("io.save: metadata keys must be strings and values strings, numbers or booleans", 2)
    end
    m[k] = tostring(v)
  end
  local ok, err = pcall(core.safetensors_save, path, names, list, m)
  if not ok then fail("io.save", err, 2) end
  return true
end

--- Reads path: tensors (name -> tensor), metadata (key -> string) and the
-- names in file order.
function io_.load(path)
  if type(path) ~= "string" then error("io.load: the path must be a string, got " .. type(path), 2) end
  local ok, tensors, names, meta = pcall(core.safetensors_load, path)
  if not ok then fail("io.load", tensors, 2) end
  return tensors, meta, names
end

return io_
