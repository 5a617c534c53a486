--- engram.image: what a replay memory holds or a generator makes, as a
-- picture: a grid of samples, written as an 8-bit grayscale PNG.
--
--   local x = mem:tensors()                          -- [n, 784]
--   engram.image.grid(x, {file = "memory.png"})      -- 28x28 images, about square
--   local g = engram.image.grid(x, {rows = 4, size = {28, 28}})   -- a tensor [H, W]
--   local bytes = engram.image.png(g)                -- the PNG file's bytes (for HTML)
--
-- grid(x, opts): x [n, h*w], [n, h, w] or [n, 1, h, w]. opts (defaults in brackets):
--   size [square]    {h, w} of one image when x is flat (n x 784 -> 28 x 28)
--   rows, cols       the grid (default: cols = ceil(sqrt(n)), rows to fit); a
--                    grid with more cells than images needs is an error
--   pad [1]          pixels between and around the images
--   range [auto]     {lo, hi} mapped to black and white; default the images' own
--   max [nil]        take the first max images only
--   file [nil]       also write the grid as a PNG there
-- Returns the grid, a tensor [H, W] in [0, 1].
local core = require("engram.core")
local util = require("engram.util")

local image = {}

local OPTS = { size = true, rows = true, cols = true, pad = true, range = true, max = true, file = true }

local function posint(v, what)
  if math.type(v) ~= "integer" or v < 1 then
    error(string.format("image.grid: %s must be a positive integer, got %s", what, tostring(v)), 3)
  end
  return v
end

function image.grid(x, opts)
  util.check_tensor("image.grid", x, "the images", 2)
  opts = opts or {}
  if type(opts) ~= "table" then error("image.grid: options must be a table", 2) end
  for k in pairs(opts) do
    if not OPTS[k] then
      error("image.grid: unknown option '" .. tostring(k) .. "' (known: cols, file, max, pad, range, rows, size)", 2)
    end
  end
  if x:dim() < 2 then error("image.grid: expected images [n, h*w], [n, h, w] or [n, 1, h, w]", 2) end
  local n = x:size(1)
  if opts.max then n = math.min(n, posint(opts.max, "max")); x = x:narrow(1, 1, n) end
  if n < 1 then error("image.grid: no images", 2) end
  local h, w
  if opts.size then
    if type(opts.size) ~= "table" then error("image.grid: size must be {h, w}", 2) end
    h, w = posint(opts.size[1], "size[1]"), posint(opts.size[2], "size[2]")
  elseif x:dim() >= 3 then
    h, w = x:size(x:dim() - 1), x:size(x:dim())
  else
    local d = x:size(2)
    h = math.tointeger(math.floor(math.sqrt(d) + 0.5))
    if h * h ~= d then
      error(string.format("image.grid: %d values per image are not a square; give size = {h, w}", d), 2)
    end
    w = h
  end
  local cols = opts.cols and posint(opts.cols, "cols")
  local rows = opts.rows and posint(opts.rows, "rows")
  if not cols and not rows then cols = math.tointeger(math.ceil(math.sqrt(n))) end
  if not cols then cols = math.tointeger(math.ceil(n / rows)) end
  rows = rows or math.tointeger(math.ceil(n / cols))
  local pad = opts.pad == nil and 1 or opts.pad
  if math.type(pad) ~= "integer" then error("image.grid: pad must be an integer", 2) end
  local lo, hi = 0, 0
  if opts.range then
    if type(opts.range) ~= "table" or type(opts.range[1]) ~= "number" or type(opts.range[2]) ~= "number" or
        opts.range[1] >= opts.range[2] or opts.range[1] ~= opts.range[1] then
      error("image.grid: range must be {lo, hi} with lo < hi", 2)
    end
    lo, hi = opts.range[1], opts.range[2]
  end
  local ok, g = pcall(core.image_grid, x, h, w, rows, cols, pad, lo, hi)
  if not ok then error((tostring(g):gsub("^[^:]*:%d+: ", ""):gsub("^image_grid: ", "image.grid: ")), 2) end
  if opts.file then image.write(opts.file, g) end
  return g
end

--- The bytes of an 8-bit grayscale PNG of img [H, W] (values in [0, 1]).
function image.png(img)
  util.check_tensor("image.png", img, "the image", 2)
  local ok, s = pcall(core.png_encode, img)
  if not ok then error((tostring(s):gsub("^[^:]*:%d+: ", ""):gsub("^png: ", "image.png: ")), 2) end
  return s
end

--- Writes img [H, W] as a PNG file (atomically).
function image.write(path, img)
  if type(path) ~= "string" then error("image.write: the path must be a string", 2) end
  util.check_tensor("image.write", img, "the image", 2)
  local ok, err = pcall(core.png_write, path, img)
  if not ok then error((tostring(err):gsub("^[^:]*:%d+: ", ""):gsub("^png: ", "image.write: ")), 2) end
  return true
end

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

--- The base64 text of a byte string (for PNGs in JSON and HTML).
function image.base64(bytes)
  if type(bytes) ~= "string" then error("image.base64: expected a string, got " .. type(bytes), 2) end
  local out = {}
  for i = 1, #bytes, 3 do
    local a, b, c = bytes:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local q1, q2, q3, q4 = n >> 18, (n >> 12) & 63, (n >> 6) & 63, n & 63
    out[#out + 1] = B64:sub(q1 + 1, q1 + 1) .. B64:sub(q2 + 1, q2 + 1) ..
        (b and B64:sub(q3 + 1, q3 + 1) or "=") .. (c and B64:sub(q4 + 1, q4 + 1) or "=")
  end
  return table.concat(out)
end

--- Records a grid of samples x for the run's report: ctx.extra.grids gets
-- {task = ctx.t, name = name, png = base64 PNG}, shown by engram report;
-- opts.file (a pattern with %d for the task, e.g. "replay-task%d.png") also
-- writes it as a file; other opts go to image.grid (max, size, range, ...).
function image.record(ctx, name, x, opts)
  opts = opts or {}
  local gopts = {}
  for k, v in pairs(opts) do if k ~= "file" then gopts[k] = v end end
  local g = image.grid(x, gopts)
  if opts.file then image.write(string.format(opts.file, ctx.t), g) end
  ctx.extra.grids = ctx.extra.grids or {}
  table.insert(ctx.extra.grids, { task = ctx.t, name = name, png = image.base64(image.png(g)) })
  return g
end

return image
