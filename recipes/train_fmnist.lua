-- train_fmnist.lua — trains mlp{784, 400, 400, 10} on Fashion-MNIST.
--
-- Shows the plain training loop engram's learner is built on: a model from
-- engram.nn, cross-entropy, an optimiser over the model's flat parameter
-- vector, batches from engram.data, evaluation in evaluate() mode.
--
--   build/engram recipes/train_fmnist.lua [--epochs 5] [--batch 128] [--lr 0.001]
--       [--optim adam|sgd] [--seed 1] [--threads 2] [--out result.json] [--help]
--
-- Takes about 15 s on 2 cores (11 s of training, ~27,000 samples/s with
-- data loading). With the defaults (Adam, lr 1e-3 on a cosine schedule,
-- batch 128, standardised pixels) expect about 89% test accuracy after 5
-- epochs (seed 1: 89.10%; seed 2: 89.1%; a constant rate gives about 88%).
-- Prints one line per epoch: mean training loss, test accuracy, samples/s.
-- --out writes a JSON document with test_accuracy (0..1), epochs, batch,
-- train_seconds, samples_per_second and the per-epoch history.
local engram = require("engram")
local nn = engram.nn
local clock = engram.clock

-- ------------------------------------------------------------ options
local defaults = { epochs = 5, batch = 128, lr = false, optim = "adam", schedule = "cosine", seed = 1, threads = 2,
  out = false }
local usage = [[
usage: engram recipes/train_fmnist.lua [options]
  --epochs N       training epochs (5)
  --batch N        batch size (128)
  --lr X           learning rate (0.001 for adam, 0.05 for sgd)
  --optim NAME     adam | sgd (adam)
  --schedule NAME  cosine | constant learning rate over the run (cosine)
  --seed N         seed for initialisation and shuffling (1)
  --threads N      BLAS threads (2)
  --out FILE       write the result as JSON to FILE
  --help           this text]]

-- A minimal parser (engram.options, the shared one, did not exist yet when
-- this recipe was written).
local function parse(argv)
  local o = {}
  for k, v in pairs(defaults) do o[k] = v end
  local i = 1
  while argv[i] do
    local a = argv[i]
    if a == "--help" or a == "-h" then
      print(usage)
      os.exit(0)
    end
    local key, val = a:match("^%-%-([%w_]+)=(.*)$")
    if not key then
      key = a:match("^%-%-([%w_]+)$")
      val = argv[i + 1]
      i = i + 1
    end
    if not key or defaults[key] == nil then
      io.stderr:write("train_fmnist: unknown option " .. a .. "\n" .. usage .. "\n")
      os.exit(2)
    end
    if val == nil then
      io.stderr:write("train_fmnist: option --" .. key .. " needs a value\n")
      os.exit(2)
    end
    if key == "optim" or key == "out" or key == "schedule" then
      o[key] = val
    else
      o[key] = tonumber(val)
      if not o[key] then
        io.stderr:write("train_fmnist: --" .. key .. " needs a number, got " .. val .. "\n")
        os.exit(2)
      end
    end
    i = i + 1
  end
  return o
end

local opt = parse(arg or {})
if opt.optim ~= "adam" and opt.optim ~= "sgd" then
  io.stderr:write("train_fmnist: --optim must be adam or sgd\n")
  os.exit(2)
end
if opt.schedule ~= "cosine" and opt.schedule ~= "constant" then
  io.stderr:write("train_fmnist: --schedule must be cosine or constant\n")
  os.exit(2)
end
opt.lr = opt.lr or (opt.optim == "adam" and 1e-3 or 0.05)
for _, k in ipairs { "epochs", "batch", "threads" } do
  if opt[k] < 1 or opt[k] ~= math.floor(opt[k]) then
    io.stderr:write("train_fmnist: --" .. k .. " must be a positive integer\n")
    os.exit(2)
  end
  opt[k] = math.tointeger(opt[k])
end

-- ------------------------------------------------ loss and optimiser
-- engram.loss / engram.optim when present; small local versions otherwise.
local function cross_entropy()
  local ok, loss = pcall(require, "engram.loss")
  if ok and type(loss) == "table" and type(loss.CrossEntropy) == "function" and engram.core.cross_entropy then
    local crit = loss.CrossEntropy()
    return function(z, y) return crit:forward_backward(z, y) end
  end
  local g = engram.core.nn_buffer()
  return function(z, y) -- softmax - onehot, over the batch
    engram.core.nn_softmax_forward(g, z, false)
    local B, l = z:size(1), 0
    for r = 1, B do
      local c = y:get(r) + 1
      local p = g:get(r, c)
      l = l - math.log(math.max(p, 1e-30))
      g:set(r, c, p - 1)
    end
    g:mul_(1 / B)
    return l / B, g
  end
end

-- total: the number of steps of the run (for the cosine schedule).
local function optimiser(model, total)
  local ok, optim = pcall(require, "engram.optim")
  if ok and type(optim) == "table" and optim.Adam and engram.core.adam_step then
    local sched = opt.schedule == "cosine" and optim.schedule.cosine { total = total } or nil
    local o = (opt.optim == "adam" and optim.Adam or optim.SGD)(model, { lr = opt.lr, schedule = sched })
    o.scheduled = true
    return o
  end
  local p, g = model:flat()
  if opt.optim == "sgd" then
    return { lr = opt.lr, step = function(self) engram.core.nn_axpy(p, -self.lr, g) end }
  end
  local m, v, t = engram.zeros(p:numel()), engram.zeros(p:numel()), 0
  local b1, b2, eps = 0.9, 0.999, 1e-8
  return {
    lr = opt.lr,
    step = function(self)
      t = t + 1
      m:mul_(b1):add_(g * (1 - b1))
      v:mul_(b2):add_(g:square():mul_(1 - b2))
      local a = self.lr * math.sqrt(1 - b2 ^ t) / (1 - b1 ^ t)
      p:sub_((m * a):div_(v:sqrt():add_(eps * math.sqrt(1 - b2 ^ t))))
    end,
  }
end

-- ------------------------------------------------------------- train
engram.core.set_threads(opt.threads)
engram.seed(opt.seed)
-- Standardised pixels (the training set's mean and standard deviation) train
-- faster than raw [0, 1] values.
local MEAN, STD = 0.2860, 0.3530
local train, test = engram.data.fashion_mnist()
train, test = train:normalized(MEAN, STD), test:normalized(MEAN, STD)
local model = nn.mlp { 784, 400, 400, 10 }:build { seed = opt.seed }
print(string.format("train_fmnist: %d training / %d test samples, %s, %s lr=%g batch=%d threads=%d",
  train:size(), test:size(), tostring(model):match("^[^\n]*"), opt.optim, opt.lr, opt.batch, opt.threads))

local function evaluate()
  model:evaluate()
  local correct, n = 0, 0
  for x, y in test:batches { batch = 1000, flat = true } do
    local z = model:forward(x)
    correct = correct + (z:argmax(2) - 1):eq(y):sum()
    n = n + y:numel()
  end
  model:train()
  return correct / n
end

-- The cosine schedule lowers the rate from lr to 0 over the run, batch by
-- batch: the last epochs settle instead of bouncing (about +1% test accuracy
-- at 5 epochs over a constant rate).
local steps_per_epoch = (train:size() + opt.batch - 1) // opt.batch
local total_steps, step_no = opt.epochs * steps_per_epoch, 0
local ce, optim = cross_entropy(), optimiser(model, total_steps)
local function set_lr() -- only for the local fallback optimisers
  if optim.scheduled or opt.schedule ~= "cosine" then return end
  optim.lr = 0.5 * opt.lr * (1 + math.cos(math.pi * step_no / total_steps))
end

local history, train_seconds, seen = {}, 0, 0
local acc
for epoch = 1, opt.epochs do
  local t0, lsum, nb, ns = clock(), 0, 0, 0
  for x, y in train:batches { batch = opt.batch, shuffle = true, seed = opt.seed * 1000 + epoch, flat = true } do
    model:zero_grad()
    local z = model:forward(x)
    local l, gz = ce(z, y)
    model:backward(x, gz, false)
    set_lr()
    optim:step()
    step_no = step_no + 1
    lsum, nb, ns = lsum + l, nb + 1, ns + y:numel()
  end
  local dt = clock() - t0
  train_seconds, seen = train_seconds + dt, seen + ns
  acc = evaluate()
  history[epoch] = { loss = lsum / nb, test_accuracy = acc, samples_per_second = ns / dt }
  print(string.format("epoch %d/%d  loss %.4f  test accuracy %.2f%%  %.0f samples/s", epoch, opt.epochs,
    lsum / nb, 100 * acc, ns / dt))
end

-- ------------------------------------------------------------ result
local result = {
  recipe = "train_fmnist", model = "mlp{784,400,400,10}", optim = opt.optim, lr = opt.lr, schedule = opt.schedule,
  seed = opt.seed, threads = opt.threads, epochs = opt.epochs, batch = opt.batch, test_accuracy = acc,
  train_seconds = train_seconds, samples_per_second = seen / train_seconds, history = history,
}

local function to_json(v)
  local t = type(v)
  if t == "table" then
    local parts = {}
    if #v > 0 or next(v) == nil then
      for _, x in ipairs(v) do parts[#parts + 1] = to_json(x) end
      return "[" .. table.concat(parts, ",") .. "]"
    end
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys)
    for _, k in ipairs(keys) do parts[#parts + 1] = string.format("%q:%s", k, to_json(v[k])) end
    return "{" .. table.concat(parts, ",") .. "}"
  elseif t == "number" then
    if math.type(v) == "integer" then return tostring(v) end
    return string.format("%.17g", v)
  elseif t == "string" then
    return '"' .. v:gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end) .. '"'
  end
  return tostring(v)
end

if opt.out then
  local ok, json = pcall(require, "engram.json")
  local text = (ok and type(json) == "table" and type(json.encode) == "function") and json.encode(result)
    or to_json(result)
  local f = assert(io.open(opt.out .. ".tmp", "w"))
  f:write(text, "\n")
  f:close()
  assert(os.rename(opt.out .. ".tmp", opt.out))
  print("wrote " .. opt.out)
end
