-- A randomized, seeded fuzzer of the Lua API of tensors, generators and
-- datasets. It calls every function and method with wrong types, odd numbers
-- (NaN, inf, negative, huge, non-integral), mismatched shapes, released or
-- closed objects, views whose parent was collected, zero-size, 0-dim and
-- large-rank tensors, and checks that every call either returns or raises a
-- Lua error whose message is a string naming the operation. A crash or a
-- sanitizer report ends the process, which is the point of running it under
-- the ASan build:
--
--   ASAN_OPTIONS=allocator_may_return_null=1:max_allocation_size_mb=512 \
--     build-asan/engram tests/lua/fuzz_api.lua [seed] [seconds]
--
-- As a module (require "fuzz_api"), run{seed=, seconds=, iterations=, safe=,
-- part=} returns the list of bad messages found; safe = true leaves out sizes
-- that a build without an allocation cap could really try to allocate.
-- part = "tensor" (default) fuzzes the above; part = "nn" the rest of
-- engram.core (layer kernels, losses, optimiser steps, parameter groups,
-- replay memories, penalties) and the Lua layers over it: modules and
-- containers (built, unbuilt, inside a model), criteria, optimisers,
-- schedules and their constructors. Lua-level calls get the right receiver
-- (a method called on a number fails in the caller, not in the library) and
-- their errors need only be strings without internal-error text.
-- part = "cl" fuzzes the continual-learning layers the same way: scenarios,
-- metrics, results documents, strategies, the learner (all but its training
-- runs), schedules, JSON, reports and the option helpers (functions that
-- write files or exit the process are left out), with JSON texts among the
-- strings.
--
--   build-asan/engram tests/lua/fuzz_api.lua [seed] [seconds] [tensor|nn|cl]
local core = require("engram.core")
local data = require("engram.data")

local M = {}

-- The module functions of tensors and generators (bindings/ltensor.c and
-- lrng.c); engram.core also holds other parts' functions (nn, optim, loss,
-- threads), which are theirs to fuzz.
local OWN = {}
for name in ([[tensor zeros ones full arange rand randn istensor mm dot add sub mul div pow maximum minimum
  clamp exp log sqrt abs tanh sigmoid relu sign floor sum mean max min argmax argmin norm equal allclose clone index
  cat generator seed default_generator randperm]]):gmatch("%S+") do OWN[name] = true end
-- fashion_mnist reads 50 MB: a path that exists would make the run slow.
local SKIP = { fashion_mnist = true }

-- Messages that betray a library bug rather than a checked argument.
local BAD_PATTERNS = { "attempt to index", "attempt to perform", "attempt to compare", "attempt to call",
  "attempt to concatenate", "attempt to get length", "stack overflow", "C stack", "table index is" }

local function method_caller(name)
  -- A real method call, so Lua's argument errors carry the method's name.
  return assert(load("return function(o, ...) return o:" .. name .. "(...) end"))()
end
local function field_caller(tname, name)
  return assert(load("local t = ... return function(...) return t." .. name .. "(...) end"))(tname)
end

local nn_pool, cl_pool -- defined below: the nn and cl parts' objects

local function new_state(rng, safe, part)
  local S = { rng = rng }
  local function R(n) return rng:randint(1, n) end
  S.R = R

  local numbers = { 0, 1, 2, 3, -1, -2, 0.5, -0.5, 1.5, 0 / 0, math.huge, -math.huge, 9, 2 ^ 53, -2 ^ 53,
    2 ^ 63, -2 ^ 63, 1e300, -1e300, math.maxinteger, math.mininteger, 2 ^ 41, 2 ^ 62, 1e-300, 4, 1 / 3 }
  if not safe then
    for _, v in ipairs { 2 ^ 31, 2 ^ 32, 2 ^ 24 + 1, 65536, 1e9, 2 ^ 40 } do numbers[#numbers + 1] = v end
  end
  S.numbers = numbers

  local pool = {}
  local function keep(v) pool[#pool + 1] = v; return v end
  S.pool = pool

  local function tensors()
    keep(core.zeros(3)); keep(core.ones(2, 3)); keep(core.randn(4, 2, rng)); keep(core.tensor(2.5))
    keep(core.zeros(0)); keep(core.zeros(2, 0, 3)); keep(core.arange(6):view(2, 3))
    keep(core.zeros(1, 1, 1, 1, 1, 1, 1, 1)); keep(core.tensor { { 1, 2 }, { 3, 4 } })
    keep(core.arange(12):view(3, 4):t()); keep(core.ones(3):view(3, 1):expand(3, 4))
    keep(core.tensor { 0 / 0, math.huge, -1, 2 })
    keep(core.arange(5):add(1)) -- 1-based indices
    -- a view whose parent was dropped and collected
    local v = core.randn(5, 5, rng):narrow(1, 2, 3):select(2, 1)
    collectgarbage(); keep(v)
    -- a released tensor
    local r = core.ones(2, 2); getmetatable(r).__close(r); keep(r)
  end
  tensors()
  keep(core.generator(7)); keep(core.default_generator())
  local ds = keep(data.blobs { n = 20, classes = 3, dim = 4, seed = 1 })
  keep(data.spirals { n = 12, classes = 2, seed = 2 })
  keep(ds:subset { labels = { 0, 1 } }); keep(ds:permuted(3)); keep(ds:normalized(0.5, 2))
  keep(data.from_tensors(core.zeros(6, 1, 3, 3), core.tensor { 0, 1, 2, 0, 1, 2 }))
  local dr = data.blobs { n = 5, seed = 3 }; dr:release(); keep(dr)
  keep(ds:batches { batch = 7, seed = 1 })
  local br = ds:batches { batch = 4 }; br:release(); keep(br)
  -- a batcher whose dataset handle was released: the batcher keeps its own reference
  local d2 = data.blobs { n = 9, seed = 4 }; keep(d2:batches { batch = 2 }); d2:release()
  keep(io.stdout); keep(coroutine.create(function() end))
  if part == "nn" then nn_pool(keep, rng) end
  if part == "cl" then S.strings = cl_pool(keep) end

  function S.value(depth)
    depth = depth or 0
    local k = R(20)
    if k <= 6 then return numbers[R(#numbers)]
    elseif k <= 11 then return pool[R(#pool)]
    elseif k == 12 then return nil
    elseif k == 13 then return R(2) == 1
    elseif k == 14 then
      if S.strings and R(2) == 1 then return S.strings[R(#S.strings)] end
      return ({ "", "abc", "1", "0x10", "sum", "nan", "-1", "uint8", "float32" })[R(9)]
    elseif k == 15 then return function() end
    elseif k <= 18 then -- small integers dominate real calls
      return R(7) - 3
    else -- tables: shapes, index lists, options, nested rows
      if depth > 2 then return {} end
      local n = R(5) - 1
      local t = {}
      if R(4) == 1 then
        for _ = 1, n do
          local keys = { "batch", "shuffle", "seed", "labels", "indices", "fractions", "n", "classes", "dim", "std",
            "ta", "tb", "alpha", "beta", "out", "flat", "drop_last", "header", "sep", "label_column", "turns",
            "noise", "path", "exponent", "bogus", "lr", "momentum", "nesterov", "weight_decay", "betas", "eps",
            "clip", "schedule", "bias", "stride", "padding", "activation", "dropout", "layernorm", "flatten",
            "T", "reduction", "logits", "balanced", "generator", "trainable", "steps", "gamma",
            "warmup", "total", "min_lr", "every", "active" }
          local key = keys[R(#keys)]
          t[key] = S.value(depth + 1)
        end
      else
        for i = 1, n do t[i] = S.value(depth + 1) end
      end
      if R(10) == 1 then setmetatable(t, { __len = function() return numbers[R(#numbers)] end }) end
      return t
    end
  end

  function S.refresh() -- replace a few pool entries by fresh objects
    for i = 1, #pool do if R(50) == 1 and core.istensor(pool[i]) then pool[i] = core.randn(R(3), R(3), rng) end end
  end
  return S
end

-- ---------------------------------------------------------------- nn part

local engram = require("engram")
local nn, loss, optim, cl = engram.nn, engram.loss, engram.optim, engram.cl

-- Objects of the nn part, for arguments and receivers: kernel buffers,
-- parameter groups (built or not), memories, modules of every kind (built,
-- unbuilt, a layer inside a model, a Lua-written one), criteria, optimisers.
function nn_pool(keep, rng)
  keep(core.nn_buffer()); keep(core.nn_buffer())
  local pg = core.param_group("g"); pg:declare("w", { 2, 3 }); pg:declare("b", { 2 }); pg:build(); keep(pg)
  local pu = core.param_group("u"); pu:declare("a", { 2 }); keep(pu)
  keep(cl.memory(8, { dim = 4 })); keep(cl.memory(6, { dim = 3, logits = 2, balanced = true }))
  local mlp = keep(nn.mlp { 4, 3, 2 }:build { seed = 1 })
  keep(mlp.modules[1]); keep(mlp.modules[2])
  keep(nn.Linear(3, 2)); keep(nn.Linear(4, 3, { bias = false }):build { seed = 2 })
  keep(nn.Conv2d(1, 2, 3, { padding = 1 })); keep(nn.MaxPool2d(2)); keep(nn.Flatten()); keep(nn.Reshape { 2, 2 })
  keep(nn.LayerNorm(3)); keep(nn.Embedding(5, 2)); keep(nn.Dropout(0.5)); keep(nn.LeakyReLU(0.1))
  keep(nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 4)))
  keep(nn.Concat(2, nn.Linear(4, 2), nn.Linear(4, 1)))
  local mh = keep(nn.MultiHead(nn.Sequential(nn.Linear(4, 3), nn.ReLU()), { nn.Linear(3, 2), nn.Linear(3, 2) }))
  mh:build { seed = 3 }
  keep(nn.Sequential(nn.Flatten(), nn.Linear(4, 2), nn.Softmax()))
  keep(nn.Sequential({ -- a Lua-written module with parameters
    params_spec = { { name = "weight", shape = { 2, 4 } } },
    forward = function(self, x)
      assert(core.istensor(x), "LuaModule: x must be a tensor")
      return x:mm(self.weight:t())
    end,
    backward = function(self, x, gy)
      assert(core.istensor(x) and core.istensor(gy), "LuaModule: x and gy must be tensors")
      self.grad_weight:add_(gy:t():mm(x))
      return gy:mm(self.weight)
    end,
  }))
  keep(loss.CrossEntropy()); keep(loss.MSE()); keep(loss.BCEWithLogits()); keep(loss.KLDistill { T = 2 })
  keep(optim.SGD(mlp, { lr = 0.1, momentum = 0.9 })); keep(optim.Adam(mh)); keep(optim.AdamW(mlp, { clip = 1 }))
  keep(optim.SGD({ { name = "x", params = core.zeros(3), grads = core.ones(3) } }))
  keep(optim.schedule.cosine { total = 10 })
  keep(core.randn(5, 4, rng)); keep(core.randn(2, 1, 4, 4, rng)); keep(core.tensor { 0, 1, 1, 0, 2 })
  keep(core.tensor { 1, 0 }); keep(core.randn(5, 2, rng)); keep(core.rand(5, 4, rng))
end

-- engram.core's functions of the other parts; set_threads is left out (it
-- would change the thread count for the rest of the process), and so are the
-- file writers (random paths would litter the working directory; they have
-- tests of their own).
local NN_SKIP = { set_threads = true, write_file_atomic = true, check_writable = true }
-- The file writers that are fuzzed all the same: a path they are given (a
-- string or a number: "-1", "0.5") is taken inside a temporary directory of
-- the run's, removed when the run ends, so that nothing lands in the working
-- directory; other arguments reach them unchanged.
local WRITERS = { mkdir_p = true, png_write = true, safetensors_save = true }
local sandbox_dir
local function writer_caller(name)
  return function(path, ...)
    if type(path) == "string" or type(path) == "number" then
      if not sandbox_dir then
        sandbox_dir = os.tmpname()
        os.remove(sandbox_dir)
        core.mkdir_p(sandbox_dir)
      end
      path = sandbox_dir .. "/" .. (tostring(path):gsub("%.%.", "__"))
    end
    return core[name](path, ...)
  end
end

-- The public methods of an object's class chain (tables of functions).
local function class_methods(obj)
  local names, seen = {}, {}
  local mt = getmetatable(obj)
  local t = type(mt) == "table" and mt.__index
  local depth = 0
  while type(t) == "table" and depth < 8 do
    for k, v in pairs(t) do
      if type(k) == "string" and type(v) == "function" and not k:match("^_") and not seen[k] then
        seen[k] = true; names[#names + 1] = k
      end
    end
    local m2 = getmetatable(t)
    t = type(m2) == "table" and m2.__index or nil
    depth = depth + 1
  end
  return names
end

local function is_criterion(v)
  return type(v) == "table" and type(v.forward_backward) == "function" and type(v.set_active) == "function"
end
local function is_optimizer(v) return type(v) == "table" and type(v.step) == "function" and v.kind ~= nil end
local function is_module(v)
  return type(v) == "table" and type(v.forward) == "function" and getmetatable(v) ~= nil and not is_criterion(v)
end
-- The kind of a result, for replacing pool entries of the same kind only.
local function kind_of(v)
  if core.istensor(v) then return "tensor" end
  if is_module(v) then return "module" end
  if is_optimizer(v) then return "optimizer" end
  if is_criterion(v) then return "criterion" end
  return "other"
end

local NN_KINDS = {
  module = is_module, criterion = is_criterion, optimizer = is_optimizer,
  memory = function(v) return type(v) == "userdata" and (getmetatable(v) or {}).__name == "engram.Memory" end,
  pgroup = function(v) return type(v) == "userdata" and (getmetatable(v) or {}).__name == "engram.ParamGroup" end,
}

local function nn_targets(add)
  for k, v in pairs(core) do
    if type(v) == "function" and not OWN[k] and not NN_SKIP[k] then
      add("engram." .. k, k, WRITERS[k] and writer_caller(k) or field_caller(core, k))
    end
  end
  local function ctors(label, T)
    for k, v in pairs(T) do
      if type(v) == "function" and not k:match("^_") then
        add(label .. "." .. k, k, field_caller(T, k), nil, true)
      end
    end
  end
  ctors("nn", nn); ctors("loss", loss); ctors("optim", optim); ctors("optim.schedule", optim.schedule)
  ctors("cl", cl)
  -- methods, by name, on a receiver of the right kind that has them
  local samples = {
    module = { nn.mlp { 2, 2 }, nn.Linear(1, 1), nn.Conv2d(1, 1, 1), nn.LayerNorm(1), nn.Embedding(1, 1),
      nn.Concat(1, nn.Identity()), nn.MultiHead(nn.Identity()), nn.Dropout(0.1), nn.MaxPool2d(1) },
    criterion = { loss.CrossEntropy() }, optimizer = { optim.SGD({}) },
    memory = { cl.memory(1, { dim = 1 }) }, pgroup = { core.param_group("s") },
  }
  for kind, objs in pairs(samples) do
    local names, seen = {}, {}
    for _, o in ipairs(objs) do
      for _, n in ipairs(class_methods(o)) do
        if not seen[n] then seen[n] = true; names[#names + 1] = n end
      end
    end
    for _, n in ipairs(names) do
      local f = method_caller(n)
      add(kind .. ":" .. n, n, function(o, ...)
        if type(o[n]) ~= "function" then return nil end -- not this receiver's method
        if n == "summary" then -- fuzzed on its input; it prints unless quiet
          local x = ...
          return f(o, x, { quiet = true })
        end
        return f(o, ...)
      end, kind, kind ~= "memory" and kind ~= "pgroup")
    end
  end
end

-- ---------------------------------------------------------------- cl part

local CL = {
  scenarios = engram.scenarios, metrics = engram.metrics, results = engram.results,
  strategies = engram.strategies, learner = engram.learner, schedule = engram.schedule, json = engram.json,
  report = engram.report, options = engram.options, progress = engram.progress,
}
-- Functions that write files, print pages or end the process, and the
-- learner's training runs (their length is the caller's to choose).
local CL_SKIP = {
  ["results.save"] = true, ["results.print"] = true, ["json.write_file"] = true, ["json.write_atomic"] = true,
  ["report.write"] = true, ["json.lines"] = true, ["options.parse"] = true, ["learner.compare"] = true,
  ["learner.select"] = true,
  -- reads this machine's text files (its bad input is tested in test_text.lua)
  ["scenarios.text_domains"] = true,
}

-- Objects of the cl part; returns JSON texts for the string pool.
function cl_pool(keep)
  local all = data.blobs { n = 60, classes = 6, dim = 4, seed = 9 }
  local train, test = all:split(0.75, 1)
  keep(train); keep(test)
  local scen = keep(engram.scenarios.split(train, test, { tasks = 3 }))
  keep(engram.scenarios.permuted(train, test, { tasks = 2 }))
  keep(scen[1]); keep(scen[2])
  local L = keep(engram.learner(nn.mlp { 4, 8, 6 }, { quiet = true, epochs = 1 }))
  L:use(engram.strategies.naive())
  keep(engram.learner(nn.mlp { 4, 6 }:build { seed = 1 }, { quiet = true }))
  keep(engram.strategies.replay { memory = 10 }); keep(engram.strategies.ewc { lambda = 1 })
  keep({ { 0.9, 0.1 }, { 0.5, 0.8 } }); keep({ { 1 } }); keep({ 0.2, 0.3 }); keep({ { 0.5, 0.5 }, { 0.5 } })
  local doc = keep(engram.results.new { acc = { { 0.9, 0.1 }, { 0.5, 0.8 } }, name = "naive" })
  keep({ doc, engram.results.new { acc = { { 0.95, 0.2 }, { 0.9, 0.85 } }, name = "replay" } })
  keep(engram.progress.new { quiet = true })
  local texts = {
    engram.json.encode(doc), engram.json.encode({ runs = { doc } }), "{\"acc\": [[0.5]]}", "[1e400, -0, 1e-400]",
    "{\"a\":", "\"\\ud800\"", "\"\\u0000\"", ("["):rep(600), "{\"acc\": [[0.5, 0.5], [1]]}", "null",
    "{\"runs\": {}}", "1,2", "\239\187\191{}",
  }
  for _, t in ipairs(texts) do keep(t) end
  return texts
end

local function is_learner(v) return type(v) == "table" and type(v.use) == "function" and type(v.run) == "function" end
NN_KINDS.learner = is_learner
NN_KINDS.scenario = function(v) return engram.scenarios.is_scenario(v) == true end

local function cl_targets(add)
  for lname, T in pairs(CL) do
    for k, v in pairs(T) do
      local label = lname .. "." .. k
      if type(v) == "function" and not k:match("^_") and not CL_SKIP[label] then
        add(label, k, field_caller(T, k), nil, true)
      end
    end
  end
  for _, name in ipairs(engram.strategies.names) do
    add("strategies." .. name, name, function(...) return engram.strategies[name](...) end, nil, true)
  end
  local L = engram.learner(nn.mlp { 2, 2 }, { quiet = true })
  for _, n in ipairs(class_methods(L)) do
    if n ~= "run" then
      local f = method_caller(n)
      add("learner:" .. n, n, function(o, ...) return f(o, ...) end, "learner", true)
    end
  end
  local tiny = function(n) return data.blobs { n = n, classes = 2, dim = 2 } end
  local sc = engram.scenarios.split(tiny(8), tiny(4), { tasks = 1 })
  for _, n in ipairs(class_methods(sc)) do
    local f = method_caller(n)
    add("scenario:" .. n, n, function(o, ...) return f(o, ...) end, "scenario", true)
  end
end

-- Every target: {label, op names accepted in its messages, caller, receiver
-- kind, loose (any string without internal-error text will do)}.
local function targets(part)
  local list = {}
  local function add(label, opname, f, kind, loose)
    list[#list + 1] = { label = label, op = opname, f = f, kind = kind, loose = loose or part ~= "tensor" }
  end
  if part == "nn" or part == "cl" then
    if part == "nn" then nn_targets(add) else cl_targets(add) end
    table.sort(list, function(x, y) return x.label < y.label end)
    return list
  end
  for k, v in pairs(core) do
    if type(v) == "function" and OWN[k] then
      add("engram." .. k, k, field_caller(core, k))
    end
  end
  for k, v in pairs(data) do
    if type(v) == "function" and not SKIP[k] then add("data." .. k, k, field_caller(data, k)) end
  end
  -- With the right kind of receiver, a method call (o:name(...)); with a
  -- wrong one, the method itself (T.name(o, ...)): o:name on a number would
  -- fail in the caller, not in the library.
  local function methods(label, T, kind)
    for k in pairs(T) do
      local as_method, as_field = method_caller(k), field_caller(T, k)
      add(label .. ":" .. k, k, function(o, ...)
        if M.right_receiver then return as_method(o, ...) end
        return as_field(o, ...)
      end, kind)
    end
  end
  methods("Tensor", core.Tensor, "tensor")
  methods("Generator", getmetatable(core.generator(1)).__index, "gen")
  methods("Dataset", core.Dataset, "dataset")
  methods("Batcher", getmetatable(data.blobs { n = 3 }:batches { batch = 2 }).__index, "batcher")
  -- metamethods and indexing
  local function mm(name, f) add("Tensor " .. name, name, f, "tensor") end
  mm("__add", function(a, b) return a + b end); mm("__sub", function(a, b) return a - b end)
  mm("__mul", function(a, b) return a * b end); mm("__div", function(a, b) return a / b end)
  mm("__pow", function(a, b) return a ^ b end); mm("__unm", function(a) return -a end)
  mm("__len", function(a) return #a end); mm("__tostring", function(a) return tostring(a) end)
  mm("__index", function(a, k) return a[k] end); mm("__newindex", function(a, k, v) a[k] = v end)
  add("Dataset __len", "__len", function(d) return #d end, "dataset")
  add("Dataset __tostring", "__tostring", function(d) return tostring(d) end, "dataset")
  add("Batcher __call", "__call", function(b2, ...) return b2(...) end, "batcher")
  table.sort(list, function(x, y) return x.label < y.label end)
  return list
end

-- What a good error message looks like: a string that names the operation
-- (as "op:" / "op " / "'op'"), or one of Lua's argument errors for it.
local function message_ok(msg, op, loose)
  if type(msg) ~= "string" then return false, "error value is a " .. type(msg) end
  for _, p in ipairs(BAD_PATTERNS) do
    if msg:find(p, 1, true) then return false, "internal error text" end
  end
  if loose then return true end
  local base = op:gsub("^__", ""):gsub("_$", "")
  local names = { op, base }
  if op == "__index" or op == "__newindex" then names = { "index", "tensor", "Tensor" } end
  if op == "__call" then names = { "batch", "next" } end
  if op == "__unm" then names = { "neg", "unm" } end
  if op == "batcher" then names[#names + 1] = "batches" end -- the method behind ds:batches and ds:chunks
  if op:match("^subset_") then names[#names + 1] = "subset" end
  if op == "__tostring" or op == "__len" then
    names = { "tostring", "len", "Tensor", "Dataset", "released", "closed" }
  end
  for _, n in ipairs(names) do
    if msg:find(n, 1, true) then return true end
  end
  return false, "does not name '" .. op .. "'"
end

local function receiver(S, kind, operator)
  local mtname = ({ tensor = "engram.Tensor", dataset = "engram.Dataset", gen = "engram.Generator",
    batcher = "engram.Batcher" })[kind]
  local want = NN_KINDS[kind] or function(v)
    local mt = getmetatable(v)
    return type(v) == "userdata" and type(mt) == "table" and mt.__name == mtname
  end
  if S.R(12) > 1 or operator or NN_KINDS[kind] then
    local fits = {}
    for _, v in ipairs(S.pool) do
      local ok, yes = pcall(want, v)
      if ok and yes then fits[#fits + 1] = v end
    end
    if #fits > 0 then M.right_receiver = true; return fits[S.R(#fits)] end
    if NN_KINDS[kind] then return nil, true end -- none left: skip the call
  end
  M.right_receiver = false -- sometimes the wrong receiver
  local v = S.value()
  if kind == "tensor" and not core.istensor(v) then v = S.pool[1] end -- operators need one tensor
  return v
end

local TRACE = os.getenv("FUZZ_TRACE")
local SLOW = tonumber(os.getenv("FUZZ_SLOW") or "") -- report calls slower than this many seconds

function M.run(opts)
  opts = opts or {}
  local seed = opts.seed or 1
  local rng = core.generator(seed)
  local part = opts.part or "tensor"
  assert(part == "tensor" or part == "nn" or part == "cl", "fuzz_api.run: part is tensor, nn or cl")
  local S = new_state(rng, opts.safe, part)
  local list = targets(part)
  local deadline = os.clock() + (opts.seconds or 20)
  local max_iter = opts.iterations or math.huge
  local problems, seen = {}, {}
  local calls, errors = 0, 0
  local iter = 0
  while iter < max_iter and os.clock() < deadline do
    iter = iter + 1
    local t = list[S.R(#list)]
    local args, n = {}, S.R(6) - 1
    local skip
    if t.kind then args[1], skip = receiver(S, t.kind, t.label:find(" ", 1, true)); n = n + 1 end
    if skip then goto continue end
    for i = (t.kind and 2 or 1), n do args[i] = S.value() end
    if TRACE then
      local shown = {}
      for i = 1, n do
        local ok, str = pcall(tostring, args[i])
        shown[i] = ok and type(str) == "string" and str:gsub("\n.*", "") or type(args[i])
      end
      io.stderr:write(iter, " ", t.label, "(", table.concat(shown, ", "), ")\n")
    end
    local t_call = SLOW and os.clock()
    local ok, res = pcall(t.f, table.unpack(args, 1, n))
    if SLOW and os.clock() - t_call > SLOW then
      local shown = {}
      for i = 1, n do
        local okk, str = pcall(tostring, args[i])
        shown[i] = okk and type(str) == "string" and str:gsub("\n.*", "") or type(args[i])
      end
      io.stderr:write(string.format("SLOW %.2f s %s(%s)\n", os.clock() - t_call, t.label, table.concat(shown, ", ")))
    end
    calls = calls + 1
    if not ok then
      errors = errors + 1
      local good, why = message_ok(res, t.op, t.loose)
      if not good then
        local key = t.label .. "|" .. why .. "|" .. tostring(res):gsub("0x%x+", "?"):gsub("%d+", "N")
        if not seen[key] then
          seen[key] = true
          local shown = {}
          for i = 1, n do
            local a = args[i]
            shown[i] = type(a) == "string" and string.format("%q", a) or
                (pcall(tostring, a) and tostring(a):gsub("\n.*", "") or type(a))
          end
          problems[#problems + 1] = string.format("%s(%s): %s -- %s", t.label, table.concat(shown, ", "), why,
            tostring(res))
        end
      end
    elseif (core.istensor(res) or (part == "nn" and kind_of(res) ~= "other")) and S.R(4) == 1 then
      local i = S.R(#S.pool) -- results feed later calls, replacing objects of their kind only
      if kind_of(S.pool[i]) == kind_of(res) then S.pool[i] = res end
    end
    if iter % 200 == 0 then S.refresh(); collectgarbage("step", 100) end
    ::continue::
  end
  collectgarbage()
  if sandbox_dir then
    os.execute("rm -rf '" .. sandbox_dir:gsub("'", "'\\''") .. "'")
    sandbox_dir = nil
  end
  return problems, { calls = calls, errors = errors, targets = #list }
end

-- Mutated files: valid IDX and CSV files with bytes flipped, inserted,
-- deleted or cut off must either load whole (a dataset whose every sample
-- and label can be read) or fail with an error naming the file.
function M.files(opts)
  opts = opts or {}
  local rng = core.generator(opts.seed or 1)
  local function R(n) return rng:randint(1, n) end
  local function be32(v) return string.char((v >> 24) & 255, (v >> 16) & 255, (v >> 8) & 255, v & 255) end
  local px = {}
  for i = 1, 4 * 3 * 3 do px[i] = string.char((i * 37) % 256) end
  local img = "\0\0\8\3" .. be32(4) .. be32(3) .. be32(3) .. table.concat(px)
  local lab = "\0\0\8\1" .. be32(4) .. "\0\1\2\1"
  local csv = "1.5,2,0\n-3,4e2,1\n5,6,2\n\n7,8,1\n"
  local base = os.tmpname()
  local paths = { img = base .. ".idx3", lab = base .. ".idx1", csv = base .. ".csv" }
  local function write(p, b) local f = assert(io.open(p, "wb")); f:write(b); f:close() end
  local function mutate(b)
    for _ = 1, R(3) do
      local k, i = R(4), R(#b + 1) - 1
      if k == 1 and #b > 0 then
        i = math.max(i, 1)
        b = b:sub(1, i - 1) .. string.char(R(256) - 1) .. b:sub(i + 1)
      elseif k == 2 then b = b:sub(1, i) .. string.char(R(256) - 1) .. b:sub(i + 1)
      elseif k == 3 then b = b:sub(1, i) .. b:sub(i + 2)
      else b = b:sub(1, i) end
    end
    return b
  end
  local problems, loaded, rejected = {}, 0, 0
  local function check(kind, path, ok, ds)
    if not ok then
      rejected = rejected + 1
      if type(ds) ~= "string" or not ds:find(path, 1, true) then
        problems[#problems + 1] = kind .. ": error does not name the file: " .. tostring(ds)
      end
      return
    end
    loaded = loaded + 1
    local good, err = pcall(function()
      local x, y = ds:tensors()
      assert(x:size(1) == #ds and y:numel() == #ds)
      for i = 1, #ds do assert(ds:label(i) >= 0 and ds:label(i) < ds:num_classes()) end
      for _ in ds:batches { batch = 3 } do end
    end)
    if not good then problems[#problems + 1] = kind .. ": loaded but unusable: " .. tostring(err) end
  end
  for _ = 1, opts.iterations or 300 do
    local which = R(3)
    if which == 1 then
      write(paths.img, mutate(img)); write(paths.lab, lab)
      check("idx images", paths.img, pcall(data.idx, paths.img, paths.lab))
    elseif which == 2 then
      write(paths.img, img); write(paths.lab, mutate(lab))
      check("idx labels", paths.lab, pcall(data.idx, paths.img, paths.lab))
    else
      write(paths.csv, mutate(csv))
      check("csv", paths.csv, pcall(data.csv, paths.csv))
    end
  end
  for _, p in pairs(paths) do os.remove(p) end
  os.remove(base)
  return problems, { loaded = loaded, rejected = rejected }
end

if arg and arg[0] and arg[0]:match("fuzz_api%.lua$") then
  local seed = tonumber(arg[1]) or os.time()
  local seconds = tonumber(arg[2]) or 20
  local part = arg[3] or "tensor"
  io.stdout:setvbuf("line")
  print(string.format("fuzz_api: seed %d, %g s, part %s", seed, seconds, part))
  -- The nn part builds models from the numbers it draws: without an
  -- allocation cap (ASan's max_allocation_size_mb) a width of 2^31 is real work.
  local safe = part ~= "tensor" and not (os.getenv("ASAN_OPTIONS") or ""):find("max_allocation_size_mb", 1, true)
  local problems, st = M.run { seed = seed, seconds = seconds, part = part, safe = safe }
  for _, p in ipairs(problems) do print("BAD " .. p) end
  print(string.format("fuzz_api: %d targets, %d calls, %d errors, %d bad messages", st.targets, st.calls, st.errors,
    #problems))
  local fproblems, fst = M.files { seed = seed, iterations = 2000 }
  for _, p in ipairs(fproblems) do print("BAD " .. p) end
  print(string.format("fuzz_api: mutated files: %d loaded whole, %d rejected, %d bad", fst.loaded, fst.rejected,
    #fproblems))
  os.exit((#problems == 0 and #fproblems == 0) and 0 or 1)
end

return M
