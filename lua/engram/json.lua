--- JSON for results files and event logs (RFC 8259), in plain Lua.
--
--   local json = require "engram.json"
--   local s = json.encode({acc = {{0.9}}, name = "naive"}, {pretty = true})
--   local v = json.decode(s)
--
-- Encoding rules (chosen so result files diff cleanly and round-trip):
--   * object keys are sorted; keys must be strings;
--   * a table whose keys are exactly 1..n is an array, anything else an object;
--     a table with both kinds of keys, or sparse integer keys, is an error;
--   * an empty table encodes as `{}` unless it is marked with json.array()
--     (or came from decoding `[]`), or opts.empty = "array";
--   * integers print as integers; floats print with the fewest of 15, 16 or 17
--     significant digits that read back to the same double; a float with an
--     integral value prints like an integer (3.0 -> 3);
--   * NaN and +-infinity have no JSON form: they encode as null (the value is
--     unknown, and a results file must stay readable), or raise an error when
--     opts.nan = "error";
--   * json.null encodes as null; functions, userdata and cycles are errors.
-- Decoding is strict: no comments, trailing commas, NaN, leading zeros, raw
-- control characters or trailing text; lone surrogates are errors. Errors name
-- the line, column and byte offset. null decodes to json.null (so arrays keep
-- their length) unless opts.null supplies another value (nil drops it).
local json = {}

-- A unique value for JSON null: nil cannot live in an array.
json.null = setmetatable({}, {
  __tostring = function() return "json.null" end,
  __name = "json.null",
})

local array_mt = { __jsontype = "array" }
local object_mt = { __jsontype = "object" }

--- Marks t (a new table when nil) as a JSON array, so it encodes as [] when empty.
function json.array(t) return setmetatable(t or {}, array_mt) end

--- Marks t (a new table when nil) as a JSON object, so it encodes as {} when empty.
function json.object(t) return setmetatable(t or {}, object_mt) end

-- encoding ---------------------------------------------------------------

local escapes = {
  ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
}

local function quote(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return escapes[c] or string.format("\\u%04x", c:byte())
  end) .. '"'
end

local function number_text(x, opts, path)
  if math.type(x) == "integer" then return string.format("%d", x) end
  if x ~= x or x == math.huge or x == -math.huge then
    if opts.nan == "error" then
      error(string.format("json.encode: %s is %s, which JSON cannot represent", path, tostring(x)), 0)
    end
    return "null"
  end
  if x == math.floor(x) and math.abs(x) < 2^53 then
    return string.format("%d", math.tointeger(x))
  end
  for _, fmt in ipairs({ "%.15g", "%.16g", "%.17g" }) do
    local s = string.format(fmt, x)
    if tonumber(s) == x then return s end
  end
  return string.format("%.17g", x)
end

-- Returns "array", n or "object", sorted keys; raises on keys JSON cannot hold.
local function classify(t, opts, path)
  local n, count, has_string = 0, 0, false
  for k in pairs(t) do
    count = count + 1
    if math.type(k) == "integer" and k >= 1 then
      if k > n then n = k end
    elseif type(k) == "string" then
      has_string = true
    else
      error(string.format("json.encode: %s has a key of type %s (%s); JSON keys are strings",
        path, math.type(k) or type(k), tostring(k)), 0)
    end
  end
  if count == 0 then
    local mt = getmetatable(t)
    local kind = mt and mt.__jsontype or opts.empty or "object"
    return kind, 0
  end
  if not has_string then
    if n ~= count then
      error(string.format("json.encode: %s is a sparse array (%d values, largest index %d)", path, count, n), 0)
    end
    return "array", n
  end
  if n > 0 then
    error(string.format("json.encode: %s mixes array indices and string keys", path), 0)
  end
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  return "object", keys
end

-- How deep arrays and objects may nest, both ways (deeper would run Lua's
-- C stack out).
local MAX_DEPTH = 512

local function encode_value(v, opts, out, depth, seen, path)
  local tv = type(v)
  if v == json.null or v == nil then
    out[#out + 1] = "null"
  elseif tv == "boolean" then
    out[#out + 1] = v and "true" or "false"
  elseif tv == "number" then
    out[#out + 1] = number_text(v, opts, path)
  elseif tv == "string" then
    out[#out + 1] = quote(v)
  elseif tv == "table" then
    if seen[v] then error("json.encode: " .. path .. " contains a cycle", 0) end
    if depth >= MAX_DEPTH then
      error(string.format("json.encode: nesting deeper than %d at %s", MAX_DEPTH, path:sub(1, 60) ..
        (#path > 60 and "..." or "")), 0)
    end
    seen[v] = true
    local kind, info = classify(v, opts, path)
    local ind = opts.indent
    local nl_in = ind and ("\n" .. ind:rep(depth + 1)) or ""
    local nl_out = ind and ("\n" .. ind:rep(depth)) or ""
    local colon = ind and ": " or ":"
    if kind == "array" then
      if info == 0 then
        out[#out + 1] = "[]"
      else
        out[#out + 1] = "["
        -- Arrays of scalars stay on one line when pretty: matrices stay readable.
        local flat = true
        for i = 1, info do if type(v[i]) == "table" and v[i] ~= json.null then flat = false break end end
        for i = 1, info do
          if i > 1 then out[#out + 1] = (ind and flat) and ", " or "," end
          if not flat then out[#out + 1] = nl_in end
          encode_value(v[i], opts, out, depth + 1, seen, path .. "[" .. i .. "]")
        end
        if not flat then out[#out + 1] = nl_out end
        out[#out + 1] = "]"
      end
    else
      if info == 0 then
        out[#out + 1] = "{}"
      else
        out[#out + 1] = "{"
        for i, k in ipairs(info) do
          if i > 1 then out[#out + 1] = "," end
          out[#out + 1] = nl_in
          out[#out + 1] = quote(k)
          out[#out + 1] = colon
          encode_value(v[k], opts, out, depth + 1, seen, path .. "." .. k)
        end
        out[#out + 1] = nl_out
        out[#out + 1] = "}"
      end
    end
    seen[v] = nil
  else
    error(string.format("json.encode: %s is a %s, which JSON cannot represent", path, tv), 0)
  end
end

--- Encodes v as a JSON string (a new string).
-- opts: pretty (boolean, indent by two spaces), indent (number of spaces or a
-- string; implies pretty), empty ("object" (default) or "array": how an
-- unmarked empty table encodes), nan ("null" (default) or "error").
function json.encode(v, opts)
  opts = opts or {}
  for k in pairs(opts) do
    if k ~= "pretty" and k ~= "indent" and k ~= "empty" and k ~= "nan" then
      error("json.encode: unknown option '" .. tostring(k) .. "' (known: empty, indent, nan, pretty)", 2)
    end
  end
  local o = { empty = opts.empty, nan = opts.nan }
  if opts.indent then
    o.indent = type(opts.indent) == "number" and (" "):rep(opts.indent) or tostring(opts.indent)
  elseif opts.pretty then
    o.indent = "  "
  end
  if o.empty and o.empty ~= "object" and o.empty ~= "array" then
    error("json.encode: option empty must be 'object' or 'array'", 2)
  end
  local out = {}
  local ok, err = pcall(encode_value, v, o, out, 0, {}, "$")
  if not ok then error(err, 2) end
  return table.concat(out)
end

-- decoding ---------------------------------------------------------------

local function where(s, pos)
  local line, i = 1, 1
  while true do
    local nl = s:find("\n", i, true)
    if not nl or nl >= pos then break end
    line = line + 1
    i = nl + 1
  end
  return string.format("line %d column %d (byte %d)", line, pos - i + 1, pos)
end

local function fail(s, pos, msg)
  error({ json_error = "json.decode: " .. msg .. " at " .. where(s, pos) }, 0)
end

local function skip(s, pos)
  return s:find("[^ \t\r\n]", pos) or #s + 1
end

local decode_value

local function decode_string(s, pos)
  -- pos is at the opening quote
  local parts = {}
  local i = pos + 1
  while true do
    local j = s:find('["\\%c]', i)
    if not j then fail(s, pos, "unterminated string") end
    parts[#parts + 1] = s:sub(i, j - 1)
    local c = s:sub(j, j)
    if c == '"' then
      return table.concat(parts), j + 1
    elseif c == "\\" then
      local e = s:sub(j + 1, j + 1)
      local simple = ({ ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" })[e]
      if simple then
        parts[#parts + 1] = simple
        i = j + 2
      elseif e == "u" then
        local hex = s:match("^%x%x%x%x", j + 2)
        if not hex then fail(s, j, "bad \\u escape (four hex digits expected)") end
        local cp = tonumber(hex, 16)
        i = j + 6
        if cp >= 0xD800 and cp <= 0xDBFF then
          local hex2 = s:match("^\\u(%x%x%x%x)", i)
          local lo = hex2 and tonumber(hex2, 16)
          if not lo or lo < 0xDC00 or lo > 0xDFFF then
            fail(s, j, "high surrogate \\u" .. hex .. " not followed by a low surrogate")
          end
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00)
          i = i + 6
        elseif cp >= 0xDC00 and cp <= 0xDFFF then
          fail(s, j, "lone low surrogate \\u" .. hex)
        end
        parts[#parts + 1] = utf8.char(cp)
      else
        fail(s, j, "bad escape \\" .. (e == "" and "<end>" or e))
      end
    else
      fail(s, j, string.format("raw control character 0x%02x in string (escape it)", c:byte()))
    end
  end
end

local function decode_number(s, pos)
  -- -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?
  local i = pos
  if s:sub(i, i) == "-" then i = i + 1 end
  local int = s:match("^0", i) or s:match("^[1-9]%d*", i)
  local bad = function()
    fail(s, pos, "malformed number '" .. (s:match("^[-+%w.]+", pos) or s:sub(pos, pos)) .. "'")
  end
  if not int then bad() end
  i = i + #int
  local integral = true
  if s:sub(i, i) == "." then
    local frac = s:match("^%d+", i + 1)
    if not frac then bad() end
    i = i + 1 + #frac
    integral = false
  end
  if s:match("^[eE]", i) then
    local exp = s:match("^[-+]?%d+", i + 1)
    if not exp then bad() end
    i = i + 1 + #exp
    integral = false
  end
  if s:match("^[%w.]", i) then bad() end
  local text = s:sub(pos, i - 1)
  local v = integral and math.tointeger(tonumber(text)) or nil
  if not v then v = tonumber(text) + 0.0 end
  return v, i
end

function decode_value(s, pos, opts, depth)
  pos = skip(s, pos)
  if depth > MAX_DEPTH then fail(s, pos, "nesting deeper than " .. MAX_DEPTH) end
  local c = s:sub(pos, pos)
  if c == "{" then
    local t = setmetatable({}, object_mt)
    pos = skip(s, pos + 1)
    if s:sub(pos, pos) == "}" then return t, pos + 1 end
    while true do
      if s:sub(pos, pos) ~= '"' then fail(s, pos, "expected a string key") end
      local k
      k, pos = decode_string(s, pos)
      pos = skip(s, pos)
      if s:sub(pos, pos) ~= ":" then fail(s, pos, "expected ':' after key \"" .. k .. "\"") end
      local v
      v, pos = decode_value(s, pos + 1, opts, depth + 1)
      if v == json.null then v = opts.null end
      t[k] = v
      pos = skip(s, pos)
      local d = s:sub(pos, pos)
      if d == "}" then return t, pos + 1 end
      if d ~= "," then fail(s, pos, "expected ',' or '}' in object") end
      pos = skip(s, pos + 1)
    end
  elseif c == "[" then
    local t = setmetatable({}, array_mt)
    pos = skip(s, pos + 1)
    if s:sub(pos, pos) == "]" then return t, pos + 1 end
    local n = 0
    while true do
      local v
      v, pos = decode_value(s, pos, opts, depth + 1)
      n = n + 1
      if v == json.null then v = opts.null end
      t[n] = v
      pos = skip(s, pos)
      local d = s:sub(pos, pos)
      if d == "]" then return t, pos + 1 end
      if d ~= "," then fail(s, pos, "expected ',' or ']' in array") end
      pos = pos + 1
    end
  elseif c == '"' then
    return decode_string(s, pos)
  elseif c == "-" or c:match("%d") then
    return decode_number(s, pos)
  elseif s:sub(pos, pos + 3) == "true" then
    return true, pos + 4
  elseif s:sub(pos, pos + 4) == "false" then
    return false, pos + 5
  elseif s:sub(pos, pos + 3) == "null" then
    return json.null, pos + 4
  elseif c == "" then
    fail(s, pos, "unexpected end of input")
  else
    fail(s, pos, "unexpected character '" .. c .. "'")
  end
end

--- Decodes a JSON text into Lua values (new tables); raises an error with the
-- line, column and byte on malformed input. null decodes to json.null, or to
-- opts.null when given (e.g. false), or to nil with opts.drop_null = true
-- (object keys with null values then vanish and arrays may get holes).
function json.decode(s, opts)
  if type(s) ~= "string" then error("json.decode: expected a string, got " .. type(s), 2) end
  opts = opts or {}
  if type(opts) ~= "table" then error("json.decode: options must be a table, got " .. type(opts), 2) end
  local o = { null = json.null }
  if opts.drop_null then o.null = nil elseif opts.null ~= nil then o.null = opts.null end
  local ok, v, pos = pcall(decode_value, s, 1, o, 0)
  if not ok then
    if type(v) == "table" and v.json_error then error(v.json_error, 2) end
    error(v, 0)
  end
  pos = skip(s, pos)
  if pos <= #s then
    local ok2, err = pcall(fail, s, pos, "unexpected text after the JSON value")
    if not ok2 then error(err.json_error, 2) end
  end
  if v == json.null then v = o.null end
  return v
end

--- Like json.decode but returns nil, message instead of raising.
function json.try_decode(s, opts)
  local ok, v = pcall(json.decode, s, opts)
  if ok then return v end
  return nil, (tostring(v):gsub("^[^:]*:%d+: ", ""))
end

-- files ------------------------------------------------------------------

--- Writes text to path atomically (core/io.h): a temporary file in the same
-- directory, flushed to disk, then renamed over the target, so a reader never
-- sees half a file; a symbolic link keeps pointing at the new file, and a
-- special file such as /dev/null is written, not replaced. Returns true or
-- nil, message.
function json.write_atomic(path, text)
  if type(path) ~= "string" then return nil, "cannot write: the path is a " .. type(path) .. ", expected a string" end
  if type(text) ~= "string" then return nil, "cannot write " .. path .. ": the text is a " .. type(text) end
  local ok, err = pcall(require("engram.core").write_file_atomic, path, text)
  if not ok then return nil, (tostring(err):gsub("^write_file_atomic: ", "")) end
  return true
end

--- Encodes v (pretty by default) and writes it to path atomically; raises on failure.
function json.write_file(path, v, opts)
  opts = opts or { pretty = true }
  local ok, err = json.write_atomic(path, json.encode(v, opts) .. "\n")
  if not ok then error("json.write_file: " .. err, 2) end
  return true
end

--- Reads and decodes path; raises "json.read_file: path: message" on failure.
function json.read_file(path, opts)
  local f, err = io.open(path, "rb")
  if not f then error("json.read_file: " .. tostring(err), 2) end
  local s = f:read("a")
  f:close()
  local v, derr = json.try_decode(s, opts)
  if v == nil and derr then error("json.read_file: " .. path .. ": " .. derr, 2) end
  return v
end

-- JSON Lines ---------------------------------------------------------------

local Lines = {}
Lines.__index = Lines

--- Writes one value as one compact line and flushes (so a crash loses at most
-- the line being written). Returns self.
function Lines:write(v)
  if not self.file then error("json.lines: attempt to use a closed writer", 2) end
  local ok, s = pcall(json.encode, v, self.opts)
  if not ok then error(s, 2) end
  self.file:write(s, "\n")
  self.file:flush()
  self.count = self.count + 1
  return self
end

--- Closes the file if the writer opened it; idempotent.
function Lines:close()
  if self.file and self.owned then self.file:close() end
  self.file = nil
end
Lines.__close = Lines.close
Lines.__gc = Lines.close

--- A JSON Lines (one JSON value per line) writer for event logs. target is a
-- path (opened for appending, or truncated with opts.mode = "w") or an open
-- file (not closed by :close()). The writer owns the file it opens.
function json.lines(target, opts)
  opts = opts or {}
  local file, owned = target, false
  if type(target) == "string" then
    local f, err = io.open(target, opts.mode or "a")
    if not f then error("json.lines: " .. tostring(err), 2) end
    file, owned = f, true
  elseif io.type(target) ~= "file" then
    error("json.lines: expected a path or an open file, got " .. type(target), 2)
  end
  return setmetatable({ file = file, owned = owned, count = 0, opts = { nan = opts.nan, empty = opts.empty } }, Lines)
end

--- Reads a JSON Lines file into an array of values (blank lines skipped).
function json.read_lines(path)
  local f, err = io.open(path, "rb")
  if not f then error("json.read_lines: " .. tostring(err), 2) end
  local out, n = {}, 0
  for line in f:lines() do
    n = n + 1
    if line:match("%S") then
      local v, derr = json.try_decode(line)
      if v == nil and derr then f:close(); error(string.format("json.read_lines: %s:%d: %s", path, n, derr), 2) end
      out[#out + 1] = v
    end
  end
  f:close()
  return out
end

return json
