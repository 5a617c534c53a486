-- train_fmnist.lua — trains mlp{784, 400, 400, 10} on Fashion-MNIST.
--
-- Shows the plain training loop engram's learner is built on: a model from
-- engram.nn, cross-entropy, an optimiser over the model's flat parameter
-- vector, batches from engram.data, evaluation in evaluate() mode.
--
--   build/engram recipes/train_fmnist.lua [--epochs 5] [--batch 128] [--lr 0.001]
--       [--optim adam|sgd] [--schedule cosine|constant] [--seed 1] [--threads 2]
--       [--out result.json] [--quiet] [--help]
--
-- Takes about 8 s on 2 cores (6 s of training, ~58,000 samples/s with
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
local opt = engram.options.parse(arg or {}, {
  name = "train_fmnist",
  description = "Trains mlp{784,400,400,10} on Fashion-MNIST and reports the test accuracy.",
  common = { "seed", "epochs", "batch", "lr", "out", "threads", "quiet" },
  options = {
    { "optim", "adam", "optimiser: adam | sgd" },
    { "schedule", "cosine", "learning rate over the run: cosine | constant" },
    { "lr", 0.0, "learning rate (default: 0.001 for adam, 0.05 for sgd)" },
    { "epochs", 5, "training epochs" },
  },
  defaults = { batch = 128, threads = 2 },
})
local fail = opt.fail
if opt.optim ~= "adam" and opt.optim ~= "sgd" then fail("--optim must be adam or sgd, got " .. opt.optim) end
if opt.schedule ~= "cosine" and opt.schedule ~= "constant" then
  fail("--schedule must be cosine or constant, got " .. opt.schedule)
end
for _, k in ipairs { "epochs", "batch", "threads" } do
  if math.type(opt[k]) ~= "integer" or opt[k] < 1 then fail("--" .. k .. " must be a positive integer") end
end
if opt.lr < 0 then fail("--lr must be positive") end
if opt.lr == 0 then opt.lr = opt.optim == "adam" and 1e-3 or 0.05 end -- 0: the optimiser's own default
local function say(...) if not opt.quiet then print(string.format(...)) end end

-- ------------------------------------------------------------- train
engram.core.set_threads(opt.threads)
engram.seed(opt.seed)
-- Standardised pixels (the training set's mean and standard deviation) train
-- faster than raw [0, 1] values.
local train, test = engram.data.fashion_mnist { normalize = true }
local model = nn.mlp { 784, 400, 400, 10 }:build { seed = opt.seed }
say("train_fmnist: %d training / %d test samples, %s, %s lr=%g batch=%d threads=%d",
  train:size(), test:size(), tostring(model):match("^[^\n]*"), opt.optim, opt.lr, opt.batch, opt.threads)

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
local sched = opt.schedule == "cosine" and engram.optim.schedule.cosine { total = opt.epochs * steps_per_epoch } or nil
local optim = (opt.optim == "adam" and engram.optim.Adam or engram.optim.SGD)(model, { lr = opt.lr, schedule = sched })
local crit = engram.loss.CrossEntropy()

local history, train_seconds, seen = {}, 0, 0
local acc
for epoch = 1, opt.epochs do
  local t0, lsum, nb, ns = clock(), 0, 0, 0
  for x, y in train:batches { batch = opt.batch, shuffle = true, seed = opt.seed * 1000 + epoch, flat = true } do
    model:zero_grad()
    local z = model:forward(x)
    local l, gz = crit:forward_backward(z, y)
    model:backward(x, gz, false)
    optim:step()
    lsum, nb, ns = lsum + l, nb + 1, ns + y:numel()
  end
  local dt = clock() - t0
  train_seconds, seen = train_seconds + dt, seen + ns
  acc = evaluate()
  history[epoch] = { loss = lsum / nb, test_accuracy = acc, samples_per_second = ns / dt }
  say("epoch %d/%d  loss %.4f  test accuracy %.2f%%  %.0f samples/s", epoch, opt.epochs, lsum / nb, 100 * acc,
    ns / dt)
end

-- ------------------------------------------------------------ result
local result = {
  recipe = "train_fmnist", model = "mlp{784,400,400,10}", optim = opt.optim, lr = opt.lr, schedule = opt.schedule,
  seed = opt.seed, threads = opt.threads, epochs = opt.epochs, batch = opt.batch, test_accuracy = acc,
  train_seconds = train_seconds, samples_per_second = seen / train_seconds, history = history,
}

if opt.out then
  local ok, err = pcall(engram.json.write_file, opt.out, result, { pretty = true })
  if not ok then fail(tostring(err)) end
  say("wrote %s", opt.out)
end
