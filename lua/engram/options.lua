--- The command-line option parser shared by recipes.
--
--   local opts = engram.options.parse(arg, {
--     description = "EWC vs replay on Split MNIST",
--     options = { {"memory", 1000, "replay memory size"},
--                 {"strategies", "naive,ewc", "strategies to compare"} },
--     defaults = { epochs = 1 },
--   })
--   if opts.selected("ewc") then ... end
--
-- Every recipe knows the common options (--seed --epochs --batch --lr
-- --scenario --tasks --out --log --quiet --threads --only --checkpoint
-- --resume --start-task --stop-task --help) plus its own. The checkpoint
-- options reach every learner the recipe makes (engram.checkpoint): each run
-- saves after every task in DIR/<run name>/.
-- A value's type comes from its default (number, string, boolean, or a table
-- for a comma-separated list), or from an explicit `type` field in the option
-- entry ({"out", nil, "file", type = "string"}). Accepted forms: --key value,
-- --key=value, --flag, --no-flag; --some-key sets opts.some_key. Words that are
-- not options are collected in opts.args; "--" ends the options.
local options = {}

-- The common options: name, default, help, type (when the default is nil).
local common = {
  { "seed", 1, "random seed" },
  { "epochs", 1, "epochs per task" },
  { "batch", 64, "minibatch size" },
  { "lr", 0.01, "learning rate" },
  { "scenario", nil, "scenario to run (the recipe says which it knows)", type = "string" },
  { "tasks", nil, "number of tasks (default: the scenario's)", type = "number" },
  { "out", nil, "write the results JSON to this file", type = "string" },
  { "log", nil, "append JSON Lines events to this file", type = "string" },
  { "quiet", false, "no progress output" },
  { "threads", nil, "BLAS threads (OpenBLAS chooses when not given)", type = "number" },
  { "only", {}, "run only these runs of a comparison (comma-separated)" },
  { "checkpoint", nil, "save every run after every task in this directory (DIR/<run>/)", type = "string" },
  { "resume", nil, "continue the runs saved in this directory (and keep saving there)", type = "string" },
  { "start_task", nil, "with --resume: the task the runs must start at", type = "number" },
  { "stop_task", nil, "end each run after this task (its checkpoint saved; continue with --resume)",
    type = "number" },
  { "checkpoint_every", nil, "also save every N steps inside a task (with --checkpoint or --resume)",
    type = "number" },
  { "help", false, "show this help and exit" },
}

local function key_of(name) return (name:gsub("-", "_")) end
local function flag_of(key) return (key:gsub("_", "-")) end

local function kind_of(default, explicit)
  if explicit then return explicit end
  local t = type(default)
  if t == "table" then return "list" end
  if t == "number" or t == "string" or t == "boolean" then return t end
  return "string"
end

--- Splits "a,b, c" into a new array {"a", "b", "c"} (empty items dropped).
function options.split(s)
  local out = {}
  for item in tostring(s):gmatch("[^,]+") do
    item = item:match("^%s*(.-)%s*$")
    if item ~= "" then out[#out + 1] = item end
  end
  return out
end

local function copy_list(t)
  local c = {}
  for i, v in ipairs(t) do c[i] = v end
  return c
end

local function build_spec(spec)
  local list, by_key = {}, {}
  local function add(entry, default_override, has_override)
    local name, default, help = entry[1], entry[2], entry[3]
    if type(name) ~= "string" or name == "" then
      error("options.parse: every option needs a name as its first value", 4)
    end
    local key = key_of(name)
    local kind = kind_of(default, entry.type)
    if has_override then default = default_override end
    local o = by_key[key]
    if not o then
      o = { key = key }
      list[#list + 1] = o
      by_key[key] = o
    end
    o.kind, o.default, o.help = kind, default, help or o.help or ""
  end
  local defaults = spec.defaults or {}
  local wanted -- spec.common: the common options this recipe takes (default: all)
  if spec.common ~= nil then
    if type(spec.common) ~= "table" then
      error("options.parse: 'common' is a list of common option names, got " .. type(spec.common), 3)
    end
    local known, names = {}, {}
    for _, e in ipairs(common) do known[e[1]], names[#names + 1] = true, e[1] end
    wanted = { help = true }
    for _, n in ipairs(spec.common) do
      if not known[n] then
        error("options.parse: unknown common option '" .. tostring(n) .. "' (known: " ..
          table.concat(names, ", ") .. ")", 3)
      end
      wanted[n] = true
    end
  end
  for _, e in ipairs(common) do
    local k = key_of(e[1])
    if not wanted or wanted[e[1]] then add(e, defaults[k], defaults[k] ~= nil) end
  end
  for _, e in ipairs(spec.options or {}) do
    if type(e) ~= "table" then error("options.parse: each option is a table {name, default, help}", 3) end
    add(e, defaults[key_of(e[1])], defaults[key_of(e[1])] ~= nil)
  end
  for k in pairs(defaults) do
    if not by_key[key_of(k)] then
      error("options.parse: a default is given for unknown option '" .. k .. "'", 3)
    end
  end
  table.sort(list, function(a, b) return a.key < b.key end)
  return list, by_key
end

local function show_default(o)
  if o.default == nil then return "" end
  -- Help text that already names its default (e.g. "... (default: 2)") is not told twice.
  if o.help and o.help:find("%(default:") then return "" end
  if o.kind == "list" then
    if #o.default == 0 then return "" end
    return " (default: " .. table.concat(o.default, ",") .. ")"
  end
  if o.kind == "boolean" then return o.default and " (default: on)" or "" end
  return " (default: " .. tostring(o.default) .. ")"
end

local function placeholder(o)
  if o.kind == "boolean" then return "" end
  if o.kind == "number" then return " N" end
  if o.kind == "list" then return " A,B" end
  return " S"
end

--- The generated help text for a spec (a new string).
function options.help(spec)
  spec = spec or {}
  if type(spec) ~= "table" then error("options.help: expected a spec table, got " .. type(spec), 2) end
  local list = build_spec(spec)
  local name = spec.name or "recipe"
  local lines = {}
  lines[#lines + 1] = "usage: " .. (spec.usage or (name .. " [options]"))
  if spec.description then lines[#lines + 1] = ""; lines[#lines + 1] = spec.description end
  lines[#lines + 1] = ""
  lines[#lines + 1] = "options:"
  local rows, width = {}, 0
  for _, o in ipairs(list) do
    local left = "--" .. flag_of(o.key) .. placeholder(o)
    if o.kind == "boolean" and o.key ~= "help" then left = "--[no-]" .. flag_of(o.key) end
    rows[#rows + 1] = { left, o.help .. show_default(o) }
    if #left > width then width = #left end
  end
  for _, r in ipairs(rows) do
    lines[#lines + 1] = string.format("  %-" .. width .. "s  %s", r[1], r[2])
  end
  return table.concat(lines, "\n") .. "\n"
end

local function convert(o, text, flag)
  if o.kind == "number" then
    local v = tonumber(text)
    if v == nil or v ~= v then
      return nil, string.format("bad value for %s: '%s' is not a number", flag, text)
    end
    if math.type(o.default) == "integer" or (o.default == nil and math.tointeger(v)) then
      local iv = math.tointeger(v)
      if not iv and math.type(o.default) == "integer" then
        return nil, string.format("bad value for %s: '%s' is not an integer", flag, text)
      end
      v = iv or v
    end
    return v
  elseif o.kind == "boolean" then
    local t = text:lower()
    if t == "true" or t == "yes" or t == "on" or t == "1" then return true end
    if t == "false" or t == "no" or t == "off" or t == "0" then return false end
    return nil, string.format("bad value for %s: '%s' is not a boolean (true/false)", flag, text)
  elseif o.kind == "list" then
    return options.split(text)
  end
  return text
end

local function known_list(list)
  local names = {}
  for _, o in ipairs(list) do names[#names + 1] = "--" .. flag_of(o.key) end
  return table.concat(names, ", ")
end

-- Parses argv; returns opts, or nil, message, status (0 for --help).
local function parse(argv, spec)
  local list, by_key = build_spec(spec)
  local opts = { args = {} }
  for _, o in ipairs(list) do
    opts[o.key] = o.kind == "list" and copy_list(o.default or {}) or o.default
  end
  local i, n = 1, #argv
  local rest = false
  while i <= n do
    local a = tostring(argv[i])
    if not rest and a == "-h" then
      opts.help = true
    elseif not rest and a:match("^%-%a") then
      return nil, string.format("unknown option %s (known: %s)", a, known_list(list)), 2
    elseif rest or a:sub(1, 2) ~= "--" then
      opts.args[#opts.args + 1] = a
    elseif a == "--" then
      rest = true
    else
      local body = a:sub(3)
      local name, value = body:match("^([^=]+)=(.*)$")
      name = name or body
      local key = key_of(name)
      local o = by_key[key]
      local negated = false
      if not o and key:sub(1, 3) == "no_" and by_key[key:sub(4)] and by_key[key:sub(4)].kind == "boolean" then
        o, negated = by_key[key:sub(4)], true
      end
      if not o then
        return nil, string.format("unknown option --%s (known: %s)", name, known_list(list)), 2
      end
      local flag = "--" .. flag_of(o.key)
      local v, err
      if o.kind == "boolean" then
        if negated then
          if value then return nil, "option --" .. name .. " takes no value", 2 end
          v = false
        elseif value then
          v, err = convert(o, value, flag)
        else
          v = true
        end
      else
        if not value then
          if i == n then return nil, "option " .. flag .. " needs a value", 2 end
          i = i + 1
          value = tostring(argv[i])
        end
        v, err = convert(o, value, flag)
      end
      if err then return nil, err, 2 end
      opts[o.key] = v
    end
    i = i + 1
  end
  if opts.help then return nil, options.help(spec), 0 end
  if spec.runs and opts.only then
    local valid = {}
    for _, r in ipairs(spec.runs) do valid[r] = true end
    for _, r in ipairs(opts.only) do
      if not valid[r] then
        return nil, string.format("--only: unknown run '%s' (known: %s)", r, table.concat(spec.runs, ", ")), 2
      end
    end
  end
  local only = {}
  for _, r in ipairs(opts.only or {}) do only[r] = true end
  opts.only_set = only
  -- selected(name): true when --only was not given or names this run.
  opts.selected = function(name)
    return next(only) == nil or only[name] == true
  end
  return opts
end

local spec_keys = {
  description = true, usage = true, options = true, defaults = true, name = true,
  exit = true, out = true, err = true, runs = true, common = true,
}

--- Parses a recipe's argument array (usually the global `arg`) against spec;
-- returns a new options table. spec: description, usage, name (for messages;
-- default: "recipe"), options (array of {name, default, help[, type=]}),
-- defaults (overrides of common defaults), common (the names of the common
-- options the recipe takes; default: all of them; --help always), runs (the run names --only may
-- name), out/err (files for help and errors; io.stdout/io.stderr), exit
-- (function(status), default os.exit; false: print nothing and return
-- nil, message, status instead). --help prints the help and exits 0; an
-- unknown option or bad value prints "name: message" and exits 2, and so does
-- opts.fail(message) for values the recipe checks itself.
-- The results and log files are checked before any work starts: a path that
-- cannot be written is an error now, not after an hour of training. A file
-- that did not exist is not left behind by the check.
local function check_writable(opts)
  if type(opts.out) == "string" then
    -- the results file is replaced atomically at the end: its directory must
    -- take a new file (and some bytes: a full disk shows now)
    local ok, err = require("engram.core").check_writable(opts.out)
    if not ok then return "--out: " .. tostring(err) end
  end
  if type(opts.log) == "string" then -- the log is appended to as the run goes
    local path = opts.log
    local probe = io.open(path, "r")
    local existed = probe ~= nil
    if probe then probe:close() end
    local f, err = io.open(path, "a")
    if not f then return string.format("--log: cannot write %s", err or path) end
    f:close()
    if not existed then os.remove(path) end
  end
end

-- The checkpoint options: checked, then handed to engram.checkpoint (which
-- makes the directory now, so a path that cannot be written fails before
-- any training). Returns an error message or nil.
local function checkpoint_session(opts, spec)
  local ck = require("engram.checkpoint")
  ck.configure(nil)
  local dir, resume = opts.checkpoint, opts.resume
  if dir == nil and resume == nil then
    if opts.start_task ~= nil or opts.stop_task ~= nil then
      return "--start-task and --stop-task need --checkpoint DIR or --resume DIR"
    end
    if opts.checkpoint_every ~= nil then return "--checkpoint-every needs --checkpoint DIR or --resume DIR" end
    return nil
  end
  if dir and resume and dir ~= resume then
    return "--checkpoint and --resume name different directories (--resume DIR keeps saving in DIR)"
  end
  for _, k in ipairs { "start_task", "stop_task", "checkpoint_every" } do
    local v = opts[k]
    if v ~= nil and (math.type(v) ~= "integer" or v < 1) then
      return string.format("--%s must be a positive integer, got %s", flag_of(k), tostring(v))
    end
  end
  if opts.start_task and opts.start_task > 1 and not resume then
    return "--start-task needs --resume DIR (the tasks before it come from the checkpoints)"
  end
  if resume then
    local f = io.open(resume .. "/.", "r")
    if not f then return "--resume: no directory " .. resume end
    f:close()
  else
    local ok, err = pcall(require("engram.core").mkdir_p, dir)
    if not ok then return "--checkpoint: " .. tostring(err):gsub("^mkdir: ", "") end
  end
  local kept = {}
  for k, v in pairs(opts) do if type(v) ~= "function" then kept[k] = v end end
  ck.configure { dir = resume or dir, resume = resume ~= nil, start_task = opts.start_task,
    stop_task = opts.stop_task, every = opts.checkpoint_every, recipe = spec.name, options = kept }
end

function options.parse(argv, spec)
  spec = spec or {}
  if type(argv) ~= "table" then error("options.parse: expected the argument array, got " .. type(argv), 2) end
  for k in pairs(spec) do
    if not spec_keys[k] then
      error("options.parse: unknown spec key '" .. tostring(k) ..
        "' (known: common, defaults, description, err, exit, name, options, out, runs, usage)", 2)
    end
  end
  local name, exit = spec.name or "recipe", spec.exit or os.exit
  local opts, msg, status = parse(argv, spec)
  if opts then
    msg = check_writable(opts) or checkpoint_session(opts, spec)
    if msg then opts, status = nil, 2 end
  end
  if opts then
    -- fail(message): a bad option value found by the recipe itself, reported
    -- like the parser's own: "name: message" and exit status 2 (raised as a
    -- Lua error when spec.exit is false).
    opts.fail = function(message)
      if spec.exit == false then error(name .. ": " .. tostring(message), 2) end
      (spec.err or io.stderr):write(name .. ": " .. tostring(message) .. "\n")
      exit(2)
    end
    return opts
  end
  if spec.exit == false then return nil, msg, status end
  if status == 0 then
    (spec.out or io.stdout):write(msg)
  else
    (spec.err or io.stderr):write(name .. ": " .. msg .. "\n")
  end
  exit(status)
  return nil, msg, status
end

return options
