--- engram.loss: training criteria with forward and backward, and accuracy.
--
--   local loss = engram.loss
--   local ce = loss.CrossEntropy{active = {0, 1}}  -- class ids, as in the labels
--   local l = ce:forward(logits, labels)            -- mean over the batch
--   local gy = ce:backward(logits, labels)          -- d(mean loss)/d(logits)
--   local l, gy = ce:forward_backward(logits, labels) -- both, in one C call
--
-- Criteria:
--   CrossEntropy{active = nil}  logits [B,C], labels [B] holding class ids 0..C-1
--                               (float tensor of integers, like PyTorch);
--                               `active` restricts the softmax to those classes
--                               (the others get gradient 0), see :set_active.
--   MSE()                       mean over all elements of (input - target)^2
--   BCEWithLogits()             targets in [0, 1], mean over all elements
--   KLDistill{T = 2, active = nil}  T^2 * mean KL(softmax(target/T) || softmax(input/T)):
--                               input = student logits, target = teacher logits
--                               (Hinton's / LwF's scaling, so gradients keep their
--                               size across temperatures).
--
-- The gradient that backward returns is BORROWED: a buffer owned by the
-- criterion, overwritten by its next backward (clone() it to keep it). Each
-- call runs one C loop over the batch; forward_backward computes both at once.
local core = require("engram.core")
local util = require("engram.util")

local loss = {}

-- Runs a C function; its error is re-raised at the recipe's line.
local call = require("engram.util").call

local function check_opts(who, opts, defaults)
  local o = util.with_defaults(util.check_options(who, opts, defaults, 3), defaults)
  return o
end

local function same_shape(a, b)
  local n = a:dim()
  if n ~= b:dim() then return false end
  for d = 1, n do
    if a:size(d) ~= b:size(d) then return false end
  end
  return true
end

-- Validates a list of class ids; returns a sorted copy (nil means all classes).
local function check_classes(who, classes, level)
  if classes == nil or classes == false then return nil end
  if type(classes) ~= "table" then
    error(string.format("%s: active classes must be a list of class ids, got %s", who, type(classes)), level + 1)
  end
  if #classes == 0 then error(who .. ": the list of active classes is empty", level + 1) end
  local out = {}
  for i, c in ipairs(classes) do
    if type(c) ~= "number" or c ~= math.floor(c) or c < 0 or c >= 2 ^ 24 then
      error(string.format("%s: active class #%d (%s) is not a class id >= 0", who, i, tostring(c)), level + 1)
    end
    out[#out + 1] = math.tointeger(c)
  end
  table.sort(out)
  return out
end

-- A float mask of C entries, 1 for the classes listed.
local function class_mask(who, classes, C, level)
  local m = core.zeros(C)
  for _, c in ipairs(classes) do
    if c >= C then
      error(string.format("%s: active class %d out of range for %d classes", who, c, C), level + 1)
    end
    m:set(c + 1, 1)
  end
  return m
end

local Criterion = {}
Criterion.__index = Criterion

local function new(name, fields)
  fields.__name = name
  return setmetatable(fields, Criterion)
end

function Criterion:__tostring()
  local extra = {}
  if self.T then extra[#extra + 1] = "T=" .. tostring(self.T) end
  if self.active then extra[#extra + 1] = "active={" .. table.concat(self.active, ",") .. "}" end
  return "engram.loss." .. self.__name .. (#extra > 0 and "{" .. table.concat(extra, ", ") .. "}" or "()")
end

-- The arguments of the C function (criteria with extra ones override this).
function Criterion._args(_, input, target, g) return input, target, g end

-- The gradient buffer: the same tensor while the input's shape stays, a new
-- view of one growing storage when it changes (a batch of another size does
-- not allocate tensor storage once the largest has been seen).
function Criterion:_gradbuf(input)
  local g = self._grad
  if g and same_shape(g, input) then return g end
  local n = input:numel()
  local store = self._gstore
  if not store or store:numel() < n then
    store = core.zeros(math.max(n, 1))
    self._gstore = store
  end
  g = store:narrow(1, 1, n):view(input:size())
  self._grad = g
  return g
end

-- The active-class mask for C classes (nil when all are active).
function Criterion:_mask(input)
  if not self.active then return nil end
  local C = input:dim() == 2 and input:size(2) or 0
  if self._mask_C ~= C then
    self._maskt = class_mask(self.__name, self.active, C, 4)
    self._mask_C = C
  end
  return self._maskt
end

--- Restricts the classes that take part (a list of class ids; nil for all).
function Criterion:set_active(classes)
  if not self._has_active then error(self.__name .. ": this criterion has no active classes", 2) end
  self.active = check_classes(self.__name, classes, 2)
  self._mask_C, self._maskt = nil, nil
  return self
end

-- (a training step calls this every batch: the name is only built for the error)
local function check_input(self, input, target, method)
  if core.istensor(input) and core.istensor(target) then return end
  local who = self.__name .. ":" .. method
  util.check_tensor(who, input, "the input", 3)
  util.check_tensor(who, target, "the target", 3)
end

--- The mean loss (a number).
function Criterion:forward(input, target)
  check_input(self, input, target, "forward")
  return call(self._op, self._fn, self:_args(input, target, nil))
end

--- d(mean loss)/d(input), in a borrowed buffer.
function Criterion:backward(input, target)
  check_input(self, input, target, "backward")
  local g = self:_gradbuf(input)
  call(self._op, self._fn, self:_args(input, target, g))
  return g
end

--- Both at once: the mean loss and the (borrowed) gradient.
function Criterion:forward_backward(input, target)
  check_input(self, input, target, "forward_backward")
  local g = self:_gradbuf(input)
  return call(self._op, self._fn, self:_args(input, target, g)), g
end

--- Cross-entropy of softmax(logits) against integer labels.
function loss.CrossEntropy(opts)
  local o = check_opts("CrossEntropy", opts, { active = false })
  local c = new("CrossEntropy", { _op = "cross_entropy", _has_active = true })
  c.active = check_classes("CrossEntropy", o.active or nil, 2)
  c._fn = core.cross_entropy
  c._args = function(self, x, y, g)
    if self._task_masks then return x, y, self._task_masks, self._sample_tasks, g end
    return x, y, g, self:_mask(x)
  end
  return c
end

--- Per-sample active classes (task-IL replay): masks [T, C] (row t: 1 on the
-- classes of task t) and tasks [B] (each sample's 0-based task) replace the
-- active classes until set_tasks(nil). CrossEntropy only; the tensors are
-- used as they are (borrowed), not copied.
function Criterion:set_tasks(masks, tasks)
  if self.__name ~= "CrossEntropy" then error(self.__name .. ": set_tasks is for CrossEntropy", 2) end
  if masks == nil then
    self._task_masks, self._sample_tasks, self._fn = nil, nil, core.cross_entropy
    return self
  end
  util.check_tensor("set_tasks", masks, "the task masks", 2)
  util.check_tensor("set_tasks", tasks, "the sample tasks", 2)
  self._task_masks, self._sample_tasks, self._fn = masks, tasks, core.cross_entropy_tasks
  return self
end

--- Mean squared error.
function loss.MSE(opts)
  check_opts("MSE", opts, {})
  local c = new("MSE", { _op = "mse" })
  c._fn = core.mse
  return c
end

--- Binary cross-entropy on logits (a sigmoid inside, numerically stable).
function loss.BCEWithLogits(opts)
  check_opts("BCEWithLogits", opts, {})
  local c = new("BCEWithLogits", { _op = "bce_with_logits" })
  c._fn = core.bce_with_logits
  return c
end

--- Knowledge distillation from teacher logits (the target) at temperature T.
function loss.KLDistill(opts)
  local o = check_opts("KLDistill", opts, { T = 2, active = false })
  if type(o.T) ~= "number" or o.T ~= o.T or o.T <= 0 or o.T == math.huge then
    error("KLDistill: temperature T must be a positive number, got " .. tostring(o.T), 2)
  end
  local c = new("KLDistill", { _op = "kl_distill", _has_active = true, T = o.T })
  c.active = check_classes("KLDistill", o.active or nil, 2)
  c._fn = core.kl_distill
  c._args = function(self, s, t, g) return s, t, self.T, g, self:_mask(s) end
  return c
end

--- Fraction and number of rows whose argmax is the label:
--  acc, correct = engram.loss.accuracy(logits, labels [, active_classes])
function loss.accuracy(logits, labels, active)
  util.check_tensor("accuracy", logits, "the logits", 2)
  util.check_tensor("accuracy", labels, "the labels", 2)
  local mask
  if active ~= nil and active ~= false then
    local classes = check_classes("accuracy", active, 2)
    local C = logits:dim() == 2 and logits:size(2) or 0
    mask = class_mask("accuracy", classes, C, 2)
  end
  local n = call("accuracy", core.accuracy_count, logits, labels, mask)
  return n / logits:size(1), n
end

return loss
