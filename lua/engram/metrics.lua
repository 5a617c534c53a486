--- Continual-learning metrics over the accuracy matrix, exactly as defined in
-- ALGORITHMS.md ("Metrics").
--
-- R is a T×T Lua array of arrays: R[i][j] is the test accuracy on task j after
-- training task i (1-based). Accuracies are fractions in [0, 1]; every metric
-- is in the same unit as R (a difference of accuracies or a ratio).
-- A metric that is undefined for the given inputs (one task, a missing
-- reference, a zero divisor) returns nil and a reason; it is never invented.
local metrics = {}

local function check_matrix(R, level)
  level = (level or 1) + 1
  if type(R) ~= "table" or #R == 0 then
    error("metrics: the accuracy matrix must be a non-empty array of rows", level)
  end
  local T = #R
  for i = 1, T do
    local row = R[i]
    if type(row) ~= "table" or #row ~= T then
      error(string.format("metrics: row %d of the accuracy matrix must have %d values (the matrix is %dx%d)",
        i, T, T, T), level)
    end
    for j = 1, T do
      if type(row[j]) ~= "number" or row[j] ~= row[j] then
        error(string.format("metrics: R[%d][%d] is %s, not a number", i, j, tostring(row[j])), level)
      end
    end
  end
  return T
end

local function check_vector(v, T, what, level)
  if type(v) ~= "table" or #v ~= T then
    error(string.format("metrics: %s must be an array of %d numbers", what, T), level + 1)
  end
  for j = 1, T do
    if type(v[j]) ~= "number" then
      error(string.format("metrics: %s[%d] is %s, not a number", what, j, tostring(v[j])), level + 1)
    end
  end
end

--- Checks that R is a square matrix of numbers and returns T; raises otherwise.
function metrics.check(R) return check_matrix(R, 2) end

--- Average accuracy after each task: a[i] = (1/i) Σ_{j≤i} R[i][j] (a new array).
function metrics.avg_acc_per_task(R)
  local T = check_matrix(R, 2)
  local a = {}
  for i = 1, T do
    local s = 0
    for j = 1, i do s = s + R[i][j] end
    a[i] = s / i
  end
  return a
end

--- Final average accuracy ACC = (1/T) Σ_j R[T][j].
function metrics.acc(R)
  local T = check_matrix(R, 2)
  local s = 0
  for j = 1, T do s = s + R[T][j] end
  return s / T
end

--- Backward transfer BWT = 1/(T−1) Σ_{j<T} (R[T][j] − R[j][j]); nil, reason when T = 1.
function metrics.bwt(R)
  local T = check_matrix(R, 2)
  if T < 2 then return nil, "needs at least 2 tasks" end
  local s = 0
  for j = 1, T - 1 do s = s + (R[T][j] - R[j][j]) end
  return s / (T - 1)
end

--- Forward transfer FWT = 1/(T−1) Σ_{j≥2} (R[j−1][j] − b[j]); nil, reason when
-- T = 1 or the untrained accuracies b are missing.
function metrics.fwt(R, b)
  local T = check_matrix(R, 2)
  if T < 2 then return nil, "needs at least 2 tasks" end
  if b == nil then return nil, "needs the untrained model's accuracies (baseline_acc)" end
  check_vector(b, T, "baseline accuracies", 2)
  local s = 0
  for j = 2, T do s = s + (R[j - 1][j] - b[j]) end
  return s / (T - 1)
end

--- Forgetting of task j: max_{l<T} R[l][j] − R[T][j] (a new array of T−1 values);
-- nil, reason when T = 1.
function metrics.forgetting_per_task(R)
  local T = check_matrix(R, 2)
  if T < 2 then return nil, "needs at least 2 tasks" end
  local f = {}
  for j = 1, T - 1 do
    local best = -math.huge
    for l = 1, T - 1 do
      if R[l][j] > best then best = R[l][j] end
    end
    f[j] = best - R[T][j]
  end
  return f
end

--- Average forgetting over j < T (Chaudhry et al. 2018); nil, reason when T = 1.
function metrics.forgetting(R)
  local f, why = metrics.forgetting_per_task(R)
  if not f then return nil, why end
  local s = 0
  for j = 1, #f do s = s + f[j] end
  return s / #f
end

--- Knowledge retention rate RKR = 1/(T−1) Σ_{j<T} R[T][j] / R[j][j]; nil, reason
-- when T = 1 or some R[j][j] is 0.
function metrics.rkr(R)
  local T = check_matrix(R, 2)
  if T < 2 then return nil, "needs at least 2 tasks" end
  local s = 0
  for j = 1, T - 1 do
    if R[j][j] == 0 then
      return nil, string.format("task %d had accuracy 0 right after training it", j)
    end
    s = s + R[T][j] / R[j][j]
  end
  return s / (T - 1)
end

--- New-knowledge absorption rate NAR = (1/T) Σ_j R[j][j] / A[j], A the per-task
-- reference accuracies (each task trained alone from scratch); nil, reason
-- when A is missing or has a zero.
function metrics.nar(R, A)
  local T = check_matrix(R, 2)
  if A == nil then return nil, "needs per-task reference accuracies (reference_acc)" end
  check_vector(A, T, "reference accuracies", 2)
  local s = 0
  for j = 1, T do
    if A[j] == 0 then return nil, string.format("reference accuracy of task %d is 0", j) end
    s = s + R[j][j] / A[j]
  end
  return s / T
end

--- Compute efficiency ratio CER = (ACC − ACC_naive) / (cost / cost_naive); nil,
-- reason when the naive run's ACC or either cost is missing or a cost is not positive.
function metrics.cer(acc, acc_naive, cost, cost_naive)
  local args = { acc, acc_naive, cost, cost_naive }
  for i = 1, 4 do
    if args[i] ~= nil and type(args[i]) ~= "number" then
      error(string.format("metrics.cer: argument %d must be a number, got %s", i, type(args[i])), 2)
    end
  end
  if acc == nil then return nil, "needs this run's ACC" end
  if acc_naive == nil then return nil, "needs the naive run's ACC" end
  if cost == nil or cost_naive == nil then return nil, "needs this run's and the naive run's training cost" end
  if not (cost > 0 and cost_naive > 0) then return nil, "training costs must be positive" end
  return (acc - acc_naive) / (cost / cost_naive)
end

-- The Euclidean distance between two samples (arrays of numbers of one
-- length), or with b == nil the norm of a; nil for anything else.
local function euclid(a, b)
  if type(a) ~= "table" or (b ~= nil and (type(b) ~= "table" or #b ~= #a)) then return nil end
  local s = 0
  for k = 1, #a do
    local x, y = a[k], b and b[k] or 0
    if type(x) ~= "number" or type(y) ~= "number" then return nil end
    s = s + (x - y) ^ 2
  end
  return math.sqrt(s)
end

-- The sum of the numbers in list (distances or norms); errors name the first that is not one.
local function sum_of(list)
  local s = 0
  for n = 1, #list do
    if type(list[n]) ~= "number" then
      error(string.format("metrics.drift: distance or norm %d is not a number", n), 3)
    end
    s = s + list[n]
  end
  return s
end

--- Representation drift: mean distance between activations now and then over
-- a probe set, relative to their mean norm then.
-- Either drift(now, before, {dist=, norm=}) with two arrays of samples (each a
-- number array, or anything dist/norm accept), or drift{distances=, norms=}
-- with the per-sample distances and norms already computed. dist defaults to
-- the Euclidean distance, norm to the Euclidean norm. nil, reason when the
-- mean norm is 0 or there are no samples.
function metrics.drift(now, before, opts)
  local dists, norms
  if before == nil and type(now) == "table" and now.distances then
    dists, norms = now.distances, now.norms
    if type(dists) ~= "table" or type(norms) ~= "table" then
      error("metrics.drift: distances and norms must be arrays", 2)
    end
  else
    if type(now) ~= "table" or type(before) ~= "table" or #now ~= #before then
      error("metrics.drift: expected two arrays of samples of the same length", 2)
    end
    opts = opts or {}
    if type(opts) ~= "table" then error("metrics.drift: options must be a table, got " .. type(opts), 2) end
    local dist, norm = opts.dist or euclid, opts.norm or euclid
    if type(dist) ~= "function" or type(norm) ~= "function" then
      error("metrics.drift: dist and norm must be functions", 2)
    end
    dists, norms = {}, {}
    for n = 1, #now do
      local d, r = dist(now[n], before[n]), norm(before[n])
      if d == nil or r == nil then
        error(string.format("metrics.drift: sample %d is not two arrays of numbers of the same length " ..
          "(give dist and norm for other samples)", n), 2)
      end
      dists[n], norms[n] = d, r
    end
  end
  local sd, sn = sum_of(dists), sum_of(norms)
  if #dists == 0 or #norms == 0 then return nil, "no probe samples" end
  if sn == 0 then return nil, "the activations before have zero norm" end
  return (sd / #dists) / (sn / #norms)
end

--- The drift of an activation tensor against the same one then (what the
-- learner's probe and engram.lm measure): metrics.drift over its samples,
-- one a row: [N, D] as is; a sequence model's [B, T, D] one sample per token
-- position (B*T rows of D); any other shape one sample per index of its
-- first dimension. nil, reason as metrics.drift.
function metrics.activation_drift(now, before)
  local core = require("engram.core")
  if not core.istensor(now) or not core.istensor(before) or now:numel() ~= before:numel()
      or now:dim() ~= before:dim() then
    error("metrics.activation_drift: expected two tensors of the same shape", 2)
  end
  local function rows(h)
    if h:dim() == 2 then return h end
    if h:dim() == 3 then return h:contiguous():view(-1, h:size(3)) end
    return h:contiguous():view(h:size(1), -1)
  end
  now, before = rows(now), rows(before)
  return metrics.drift { distances = (now - before):norm(2):totable(), norms = before:norm(2):totable() }
end

local known = { baseline = true, reference = true, naive_acc = true, cost = true, naive_cost = true }

--- Every metric at once. opts: baseline (b, untrained accuracies), reference
-- (A, for NAR), naive_acc and naive_cost with cost (for CER). Returns a new
-- table {acc, avg_acc_per_task, bwt, fwt, forgetting, rkr, nar, cer,
-- undefined = {metric = reason}} in which undefined metrics are nil.
function metrics.all(R, opts)
  opts = opts or {}
  for k in pairs(opts) do
    if not known[k] then
      error("metrics.all: unknown option '" .. tostring(k) ..
        "' (known: baseline, cost, naive_acc, naive_cost, reference)", 2)
    end
  end
  check_matrix(R, 2)
  local m = { undefined = {} }
  m.acc = metrics.acc(R)
  m.avg_acc_per_task = metrics.avg_acc_per_task(R)
  local function put(name, v, why)
    m[name] = v
    if v == nil then m.undefined[name] = why end
  end
  put("bwt", metrics.bwt(R))
  put("fwt", metrics.fwt(R, opts.baseline))
  put("forgetting", metrics.forgetting(R))
  put("rkr", metrics.rkr(R))
  put("nar", metrics.nar(R, opts.reference))
  put("cer", metrics.cer(m.acc, opts.naive_acc, opts.cost, opts.naive_cost))
  return m
end

--- Checks a perplexity matrix P (T×T, P[i][j] = perplexity on task j after
-- training task i: finite numbers >= 1); returns T, or nil and a message.
function metrics.check_perplexity(P, T)
  if type(P) ~= "table" or #P ~= T then return nil, string.format(" must be an array of %d rows", T) end
  for i = 1, T do
    if type(P[i]) ~= "table" or #P[i] ~= T then
      return nil, string.format("[%d] must be an array of %d numbers", i, T)
    end
    for j = 1, T do
      local v = P[i][j]
      if type(v) ~= "number" or v ~= v or v == math.huge or v < 1 then
        return nil, string.format("[%d][%d] is %s, not a perplexity (a finite number >= 1)", i, j, tostring(v))
      end
    end
  end
  return T
end

--- Checks a vector of T perplexities; returns true, or nil and a message.
function metrics.check_perplexities(v, T)
  if type(v) ~= "table" or #v ~= T then return nil, string.format(" must be an array of %d numbers", T) end
  for j = 1, T do
    if type(v[j]) ~= "number" or v[j] ~= v[j] or v[j] == math.huge or v[j] < 1 then
      return nil, string.format("[%d] is %s, not a perplexity (a finite number >= 1)", j, tostring(v[j]))
    end
  end
  return true
end

--- Perplexity forgetting: how much each task's perplexity rose by the end,
-- r[j] = P[T][j] / P[j][j] for j < T (1: kept; 2: doubled). nil, reason when T = 1.
function metrics.perplexity_ratio(P)
  local T = type(P) == "table" and #P or 0
  local ok, err = metrics.check_perplexity(P, T)
  if not ok or T == 0 then error("metrics: the perplexity matrix" .. tostring(err or " is empty"), 2) end
  if T < 2 then return nil, "needs at least 2 tasks" end
  local r = {}
  for j = 1, T - 1 do r[j] = P[T][j] / P[j][j] end
  return r
end

return metrics
