--- Training progress: one live line per task and epoch on a terminal (samples/s,
-- loss, ETA, rewritten with \r at most `rate` times a second), one plain line
-- per epoch otherwise, nothing when quiet.
--
--   local p = progress.new{quiet = opts.quiet}
--   p:update{task = 1, tasks = 5, epoch = 1, epochs = 2, done = 640, total = 12000, loss = 0.41}
--   p:finish()                       -- or p:finish("task 1 epoch 1: acc 98.2%")
--
-- `done` and `total` count samples (or any unit: the rate shown is `done`'s
-- per second since the task or epoch changed, unless samples_per_s is given).
-- The state table may be reused from update to update (no allocation per batch).
local core = require("engram.core")

local progress = {}

local Progress = {}
Progress.__index = Progress

-- Decided once per process: whether stderr is a terminal.
local tty_cache
local function detect_tty()
  if tty_cache == nil then tty_cache = core.isatty(2) and true or false end
  return tty_cache
end

local function duration(s)
  if s ~= nil and type(s) ~= "number" then error("progress.duration: expected seconds, got " .. type(s), 2) end
  if s == nil or s ~= s or s == math.huge or s < 0 then return "?" end
  s = math.floor(s + 0.5)
  if s >= 3600 then return string.format("%dh%02dm", s // 3600, s % 3600 // 60) end
  if s >= 60 then return string.format("%dm%02ds", s // 60, s % 60) end
  return string.format("%ds", s)
end
progress.duration = duration

local known = { quiet = true, out = true, tty = true, clock = true, rate = true, width = true }

--- A new progress reporter. opts: quiet (print nothing), out (a file,
-- default io.stderr), tty (boolean; default: detected once), clock (a
-- function returning seconds; default engram.core.clock), rate
-- (live updates per second, default 10), width (line width, default 100).
function progress.new(opts)
  opts = opts or {}
  for k in pairs(opts) do
    if not known[k] then
      error("progress.new: unknown option '" .. tostring(k) .. "' (known: clock, out, quiet, rate, tty, width)", 2)
    end
  end
  local tty = opts.tty
  if tty == nil and not opts.quiet then tty = detect_tty() end
  return setmetatable({
    quiet = opts.quiet and true or false,
    out = opts.out or io.stderr,
    tty = tty and true or false,
    clock = opts.clock or core.clock,
    interval = 1 / (opts.rate or 10),
    width = opts.width or 100,
    last_draw = nil,
    state = nil,
    live = false,
    started = nil, -- clock and done when the current task/epoch began
    done0 = 0,
    cur_task = nil,
    cur_epoch = nil,
  }, Progress)
end

-- The text of a line for state s.
function Progress:line(s)
  s = s or self.state or {}
  local parts = {}
  if s.task then parts[#parts + 1] = string.format("task %d/%s", s.task, tostring(s.tasks or "?")) end
  if s.epoch then parts[#parts + 1] = string.format("epoch %d/%s", s.epoch, tostring(s.epochs or "?")) end
  if s.done and s.total and s.total > 0 then
    parts[#parts + 1] = string.format("%3d%%", math.floor(100 * s.done / s.total))
  end
  if s.loss then parts[#parts + 1] = string.format("loss %.4f", s.loss) end
  if s.acc then parts[#parts + 1] = string.format("acc %.1f%%", 100 * s.acc) end
  local rate = s.samples_per_s
  local elapsed = self.started and (self.clock() - self.started) or nil
  if not rate and s.done and s.done > self.done0 and elapsed and elapsed > 0 then
    rate = (s.done - self.done0) / elapsed
  end
  if rate then parts[#parts + 1] = string.format("%.0f samples/s", rate) end
  if rate and rate > 0 and s.done and s.total then
    parts[#parts + 1] = "ETA " .. duration((s.total - s.done) / rate)
  end
  return table.concat(parts, "  ")
end

--- Records the current state; on a terminal redraws the line (rate-limited).
-- Fields: task, tasks, epoch, epochs, done, total, loss, acc, samples_per_s.
function Progress:update(s)
  if type(s) ~= "table" then error("progress:update: expected a table", 2) end
  if not self.started or self.cur_task ~= s.task or self.cur_epoch ~= s.epoch then
    self.started, self.done0 = self.clock(), s.done or 0
    self.cur_task, self.cur_epoch = s.task, s.epoch
  end
  self.state = s
  if self.quiet or not self.tty then return self end
  local now = self.clock()
  if self.last_draw and now - self.last_draw < self.interval and not (s.total and s.done == s.total) then
    return self
  end
  self.last_draw = now
  local text = self:line(s)
  if #text > self.width - 1 then text = text:sub(1, self.width - 1) end
  self.out:write("\r", text, "\27[K")
  self.out:flush()
  self.live = true
  return self
end

--- Ends the current epoch's line: the given text, or the last state's line.
-- On a terminal it replaces the live line; otherwise it is the one line printed.
function Progress:finish(text)
  self.started = nil
  if self.quiet then self.state = nil; return self end
  text = text or self:line()
  if self.tty then self.out:write("\r", text, "\27[K\n") else self.out:write(text, "\n") end
  self.out:flush()
  self.live, self.state, self.last_draw = false, nil, nil
  return self
end

--- Prints a message on its own line without breaking a live line.
function Progress:message(text)
  if self.quiet then return self end
  if self.live then self.out:write("\r\27[K") end
  self.out:write(text, "\n")
  if self.live and self.state then self.out:write(self:line()) end
  self.out:flush()
  return self
end

return progress
