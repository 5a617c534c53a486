--- engram.data: datasets in C memory, their readers, transforms and batches.
--
--   local data = require "engram.data"          -- or engram.data
--   local train, test = data.fashion_mnist()
--   local task = train:subset{labels = {0, 1}}:permuted(42)
--   for x, y in task:batches{batch = 128, seed = 1} do ... end
--
-- A dataset is an immutable handle on samples stored in C (uint8 images or
-- float32 rows) with int class labels 0..C-1. Subsets, splits, permutations,
-- normalisation and noise share the stored samples (no copy); rotation and
-- concatenation of differing datasets copy once. Images have sample shape
-- 1xHxW, so batches are [B,1,H,W] (pass flat = true for [B, H*W]).
--
-- At batch time a sample becomes floats in this order: stored value (uint8
-- divided by 255), pixel permutation, normalisation, noise. Transforms
-- compose in call order (normalized after noisy also scales the noise). Noise
-- is fixed per sample by its seed, so a noisy dataset is a fixed domain.
--
-- Indices on this side are 1-based (ds:get(1) is the first sample); class
-- labels are the class ids 0..C-1, as in PyTorch. Seeds may be integers or
-- engram generators; a missing seed draws one from the default generator,
-- so engram.seed(n) makes runs repeatable.
local core = require("engram.core")

local C = core._data
local Dataset = core.Dataset -- methods table shared by every dataset

local data = {}

-- Raises an error naming op and the known keys when opts has an unknown key.
local function check_opts(op, opts, known, level)
  local o = require("engram.util").check_options(op, opts, known, level + 1)
  return o
end

-- Runs a C function, re-raising its error at the caller's caller (the recipe
-- line). Called through pcall, a C function's argument errors cannot find its
-- name ("bad argument #1 to '?'"), so op is put in.
local call = require("engram.util").call

-- The receiver of a method written in Lua: a live dataset, or an error naming
-- op (instead of "attempt to index a nil value" from inside this file).
local function check_self(op, self)
  if not C.is_dataset(self) then
    local what = type(self)
    local mt = what == "userdata" and getmetatable(self)
    if type(mt) == "table" and type(mt.__name) == "string" then
      what = mt.__name == "engram.Dataset" and "a released dataset" or mt.__name
    end
    error(string.format("%s: expected a dataset as self (use ds:%s), got %s", op, op, what), 3)
  end
end

local function opt(v, default)
  if v == nil then return default end
  return v
end

local function check_number(op, name, v, level)
  if type(v) ~= "number" then
    error(string.format("%s: %s must be a number, got %s", op, name, type(v)), level + 1)
  end
  return v
end

--- Fashion-MNIST: train (60000) and test (10000) sets of 1x28x28 uint8 images, 10 classes.
-- opts.path: the directory holding {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]
-- (default: $ENGRAM_DATA/fashion-mnist, or $ENGRAM_DATA, when ENGRAM_DATA is set,
-- else /usr/share/datasets/fashion-mnist from the Debian package dataset-fashion-mnist).
-- opts.normalize: both sets standardised with the training set's pixel mean
-- and standard deviation (data.FASHION_MNIST_MEAN/STD, on the [0, 1] scale).
data.FASHION_MNIST_MEAN, data.FASHION_MNIST_STD = 0.2860, 0.3530
function data.fashion_mnist(opts)
  if type(opts) == "string" then opts = {path = opts} end
  opts = check_opts("fashion_mnist", opts, {path = true, normalize = true}, 2)
  if opts.path ~= nil and type(opts.path) ~= "string" then
    error("fashion_mnist: path must be a string, got " .. type(opts.path), 2)
  end
  local train, test = call("fashion_mnist", C.fashion_mnist, opts.path)
  if opts.normalize then
    local m, sd = data.FASHION_MNIST_MEAN, data.FASHION_MNIST_STD
    train, test = train:normalized(m, sd), test:normalized(m, sd)
  end
  return train, test
end

--- A dataset from an IDX image file and an IDX label file (gzipped or plain).
function data.idx(images_path, labels_path)
  if type(images_path) ~= "string" or type(labels_path) ~= "string" then
    error("idx: expected two file names (images, labels)", 2)
  end
  return call("idx", C.idx, images_path, labels_path)
end

--- A float32 dataset from a CSV file of numbers (one sample per line).
-- opts.label_column: 1-based column (negative from the end; default -1, the
--   last), a column name (needs header), or false for no labels (all 0).
-- opts.header: the first line holds column names (default false).
-- opts.sep: the field separator (default ",").
function data.csv(path, opts)
  if type(path) ~= "string" then error("csv: expected a file name, got " .. type(path), 2) end
  opts = check_opts("csv", opts, {label_column = true, header = true, sep = true}, 2)
  local label = opts.label_column
  if label == true then error("csv: label_column must be a column number, a name or false", 2) end
  if type(label) == "string" and not opts.header then
    error("csv: label_column by name ('" .. label .. "') needs header = true", 2)
  end
  return call("csv", C.csv, path, opts.header and true or false, opt(label, -1), opts.sep or ",")
end

--- Gaussian blobs: n samples of `dim` features in `classes` classes (sample i
-- has class (i-1) % classes), centres uniform in [-4, 4]^dim, spread std.
-- Defaults: n = 1000, classes = 3, dim = 2, std = 1.
function data.blobs(opts)
  opts = check_opts("blobs", opts, {n = true, classes = true, dim = true, std = true, seed = true}, 2)
  return call("blobs", C.blobs, opt(opts.n, 1000), opt(opts.classes, 3), opt(opts.dim, 2),
    check_number("blobs", "std", opt(opts.std, 1.0), 2), opts.seed)
end

--- Interleaved spirals in 2-D (the two-spirals problem for classes = 2):
-- arms from the centre to radius 1 making `turns` turns, plus noise * N(0, 1).
-- Defaults: n = 1000, classes = 2, turns = 1.5, noise = 0.05.
function data.spirals(opts)
  opts = check_opts("spirals", opts, {n = true, classes = true, turns = true, noise = true, seed = true}, 2)
  return call("spirals", C.spirals, opt(opts.n, 1000), opt(opts.classes, 2),
    check_number("spirals", "turns", opt(opts.turns, 1.5), 2),
    check_number("spirals", "noise", opt(opts.noise, 0.05), 2), opts.seed)
end

--- A float32 dataset copying x ([n, ...]) and class ids y ([n]).
-- opts.classes: the number of classes (default max(y) + 1).
function data.from_tensors(x, y, opts)
  opts = check_opts("from_tensors", opts, {classes = true}, 2)
  return call("from_tensors", C.from_tensors, x, y, opts.classes or 0)
end

--- True when v is a (live) dataset.
function data.is_dataset(v) return C.is_dataset(v) end

--- Per-class fractions of a Zipf long tail: class c keeps (c + 1)^-exponent,
-- so class 0 is whole and later classes thin out. Keys are class ids.
function data.zipf_fractions(classes, exponent)
  if math.type(classes) ~= "integer" or classes < 1 or classes > 16777216 then
    error("zipf_fractions: classes must be an integer in [1, 2^24], got " .. tostring(classes), 2)
  end
  exponent = exponent or 1
  if type(exponent) ~= "number" or exponent ~= exponent then
    error("zipf_fractions: exponent must be a number, got " .. tostring(exponent), 2)
  end
  local f = {}
  for c = 0, classes - 1 do f[c] = (c + 1) ^ -exponent end
  return f
end

-- ---------------------------------------------------------------- methods
-- Methods implemented in C (bindings/ldata.c); i is 1-based, c a class id:
--   #ds, ds:size()          number of samples
--   ds:shape()              sample shape, e.g. {1, 28, 28}; ds:numel() its product
--   ds:num_classes()        C (subsets keep their parent's C)
--   ds:classes()            {class ids present, ascending}, C
--   ds:class_counts()       {[c] = count} for c = 0..C-1 (keys from 0: use pairs)
--   ds:dtype()              "uint8" (images) or "float32"
--   ds:quantization()       {scale =, offset =, levels = tensor [256]} when every
--                           value is a uint8 code q through an affine map
--                           (x = q * scale + offset; levels[q + 1] is the exact
--                           float a batch holds), e.g. Fashion-MNIST normalized:
--                           scale = 1/(255 std), offset = -mean/std; nil for
--                           float32 or noisy data. Replay memories use it to
--                           store uint8 (engram.strategies.replay{storage = ...})
--   ds:label(i)             class id of sample i; ds:labels() a new tensor [n]
--   ds:get(i)               x (new tensor of the sample shape), class id
--   ds:gather(idx [, x, y [, flat]])    samples idx (table or tensor of
--                           1-based positions) into x, y (reused when given)
--   ds:range(i, count [, x, y [, flat]])  samples i..i+count-1, for chunked evaluation
--   ds:tensors([flat])      the whole set as new tensors X [n, ...], Y [n]
--   ds:split(fraction [, seed])  random split: round(fraction*n) samples, the rest
--   ds:concat(other)        samples of ds then other (copies unless they share storage)
--   ds:permuted([seed | perm])  a fixed pixel permutation, from a seed or given as
--                           1-based positions (out[j] = in[perm[j]]); ds:permutation()
--                           returns it as a tensor (nil when none)
--   ds:rotated(degrees)     images rotated counter-clockwise (materialised, uint8)
--   ds:normalized(mean, std)  (x - mean) / std at batch time
--   ds:noisy(std [, seed])  + std * N(0, 1), fixed per sample
--   ds:release()            frees the handle now (also on garbage collection)
-- The ones below take options tables.

--- ds:subset{labels = {0, 1}} | {indices = tensor_or_table} | {fractions = {[c] = f}, seed = s}
-- labels: class ids to keep (order kept); indices: 1-based positions
-- (duplicates allowed); fractions: keep about f of class c (absent classes
-- whole), chosen at random with seed — for class imbalance.
function Dataset:subset(opts)
  check_self("subset", self)
  opts = check_opts("subset", opts, {labels = true, indices = true, fractions = true, seed = true}, 2)
  local n = (opts.labels ~= nil and 1 or 0) + (opts.indices ~= nil and 1 or 0) + (opts.fractions ~= nil and 1 or 0)
  if n ~= 1 then error("subset: give exactly one of labels, indices or fractions", 2) end
  if opts.seed ~= nil and opts.fractions == nil then error("subset: seed only applies to fractions", 2) end
  if opts.labels ~= nil then
    local labels = opts.labels
    if type(labels) == "number" then labels = {labels} end
    return call("subset", self.subset_labels, self, labels)
  elseif opts.indices ~= nil then
    return call("subset", self.subset_indices, self, opts.indices)
  end
  return call("subset", self.subset_fractions, self, opts.fractions, opts.seed)
end

--- ds:long_tail{exponent = 1, seed = s}: a Zipf-imbalanced subset (see data.zipf_fractions).
function Dataset:long_tail(opts)
  check_self("long_tail", self)
  opts = check_opts("long_tail", opts, {exponent = true, seed = true}, 2)
  local e = check_number("long_tail", "exponent", opt(opts.exponent, 1), 2)
  return call("long_tail", self.subset_fractions, self, data.zipf_fractions(self:num_classes(), e), opts.seed)
end

--- ds:batches{batch = 128, shuffle = true, seed = nil, drop_last = false, flat = false}
-- Returns a batch iterator: `for x, y in ds:batches{...} do ... end`. x is
-- [B, ...sample shape] ([B, numel] with flat) and y the labels as floats [B].
-- x and y are BORROWED: the same two tensors are refilled on every step
-- (clone() what you keep). The iterator can be kept and looped over again:
-- each loop is one epoch, reshuffled from the seeded generator (same seed,
-- same sequence of epochs); after the last batch the next loop starts a new
-- epoch. Methods: #it (batches per epoch), it:epoch(), it:indices() (1-based
-- dataset positions of the last batch), it:rewind(), it:next().
function Dataset:batches(opts)
  check_self("batches", self)
  opts = check_opts("batches", opts,
    {batch = true, batch_size = true, shuffle = true, seed = true, drop_last = true, flat = true}, 2)
  local batch = opts.batch or opts.batch_size or 128
  if math.type(batch) ~= "integer" or batch < 1 then
    error("batches: batch size must be a positive integer, got " .. tostring(batch), 2)
  end
  local shuffle = opt(opts.shuffle, true)
  return call("batches", self.batcher, self, batch, shuffle, opts.drop_last and true or false, opts.seed,
    opts.flat and true or false)
end

--- ds:chunks{batch = 1000, flat = false}: in-order batches for evaluation.
function Dataset:chunks(opts)
  check_self("chunks", self)
  opts = check_opts("chunks", opts, {batch = true, flat = true}, 2)
  return call("chunks", self.batcher, self, opts.batch or 1000, false, false, nil, opts.flat and true or false)
end

return data
