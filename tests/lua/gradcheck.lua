-- The Lua suites' finite-difference gradient check, shared by test_nn,
-- test_loss and test_cl; the same reference, measure and mutation tests as
-- the C suites' tests/c/gradcheck.h (which explains the numbers at length).
--
-- Reference: num[i] = (L(v_i + h) - L(v_i - h)) / (v_i+ - v_i-), L a Lua
-- number (double; tensor:dot sums in double), the divisor the step actually
-- taken in float32, h = 1e-2 * max(1, |v_i|): truncation (h^2 |L'''| / 6,
-- ~2e-5 relative) and float32 rounding of the forward pass (~u |L| / h,
-- ~1e-5) are both small there, and the step keeps its size against the
-- float32 spacing of large values.
--
-- Measure, per tensor and per element (s = the tensor's largest |num_i| or
-- |ana_i|):
--   ||num - ana|| / max(||num||, ||ana||) <= 2e-3
--   |num_i - ana_i| <= 2e-3 |num_i| + 5e-4 s
-- about 8x above the worst unmutated result (2.5e-4) and 5x below what the
-- mutation tests make of it: the gradient scaled by 1.01 (tensor measure
-- 9.9e-3) and each element in turn moved by 1% of s (element measure 1e-2 s
-- against at most 2.5e-3 s) must both FAIL, so every check is shown to be
-- able to fail.
--
--   local gc = require("gradcheck")
--   local bad = gc.module(model, x)     -- {} when every check went as expected
--   local ok, msg = gc.check("what", f, t, ana)   -- f() -> L; ana: dL/dt
-- GRADCHECK_VERBOSE=1 prints every check's relative error.
local engram = require("engram")

local gc = {
  STEP = 1e-2, RTOL = 2e-3, RTOL_E = 2e-3, ATOL_E = 5e-4, MUTATE_SCALE = 1.01, MUTATE_ELEM = 1e-2,
}

local verbose = (os.getenv("GRADCHECK_VERBOSE") or "0") ~= "0"

--- dL/dt by central differences (a list of numbers); t is restored after.
-- t must be contiguous (its view(-1) shares its storage).
function gc.numeric(f, t)
  local tf, num = t:view(-1), {}
  for i = 1, tf:numel() do
    local old = tf:get(i)
    local h = gc.STEP * math.max(1, math.abs(old))
    tf:set(i, old + h)
    local up, lp = tf:get(i), f()
    tf:set(i, old - h)
    local dn, lm = tf:get(i), f()
    tf:set(i, old)
    num[i] = (lp - lm) / (up - dn)
  end
  return num
end

--- The verdict on ana (a list) against num: {ok, rel, elem, worst}; elem is
-- the worst element's error as a fraction of its tolerance (> 1 fails).
function gc.compare(num, ana)
  local dd, nn, aa, s = 0, 0, 0, 0
  for i = 1, #num do
    local d = num[i] - ana[i]
    dd, nn, aa = dd + d * d, nn + num[i] * num[i], aa + ana[i] * ana[i]
    s = math.max(s, math.abs(num[i]), math.abs(ana[i]))
  end
  local den = math.sqrt(math.max(nn, aa))
  local v = { rel = den > 0 and math.sqrt(dd) / den or 0, elem = 0, worst = 1 }
  for i = 1, #num do
    local allow = gc.RTOL_E * math.abs(num[i]) + gc.ATOL_E * s
    local d = math.abs(num[i] - ana[i])
    local e = allow > 0 and d / allow or (d > 0 and math.huge or 0)
    -- luacheck: ignore 581 (not (e <= elem) is also true for NaN, which must fail)
    if not (e <= v.elem) then v.elem, v.worst = e, i end
  end
  v.ok = v.rel <= gc.RTOL and v.elem <= 1
  return v
end

local function list(t)
  local tf, a = t:contiguous():view(-1), {}
  for i = 1, tf:numel() do a[i] = tf:get(i) end
  return a
end

--- Runs the check of the analytic gradient ana (a tensor) against num, then
-- the mutations. Returns true, or false and what went unexpectedly.
function gc.expect(what, num, ana)
  local a = list(ana)
  if #a ~= #num then return false, string.format("%s: %d analytic elements for %d values", what, #a, #num) end
  if #a == 0 then return false, what .. ": no elements" end
  local msgs = {}
  local v = gc.compare(num, a)
  local line = string.format("%s: %s, rel %.2e, worst element [%d] %.2f of its tolerance (analytic %.8g, " ..
    "numeric %.8g)", what, v.ok and "ok" or "FAILED", v.rel, v.worst, v.elem, a[v.worst], num[v.worst])
  if verbose then io.stderr:write("  gradcheck ", line, "\n") end
  if not v.ok then msgs[#msgs + 1] = line end
  local s = 0
  for i = 1, #a do s = math.max(s, math.abs(a[i])) end
  if s > 0 then -- an all-zero gradient cannot be scaled; the elements below still move
    local m = {}
    for i = 1, #a do m[i] = a[i] * gc.MUTATE_SCALE end
    local mv = gc.compare(num, m)
    if mv.ok then
      msgs[#msgs + 1] = string.format("%s: the gradient scaled by %g passed (rel %.2e)", what, gc.MUTATE_SCALE, mv.rel)
    end
  end
  local step, passed, first = gc.MUTATE_ELEM * (s > 0 and s or 1), 0, nil
  for i = 1, #a do
    local old = a[i]
    for _, sign in ipairs({ -1, 1 }) do
      a[i] = old + sign * step
      if gc.compare(num, a).ok then passed, first = passed + 1, first or i end
    end
    a[i] = old
  end
  if passed > 0 then
    msgs[#msgs + 1] = string.format("%s: %d one-element mutations passed (first at [%d])", what, passed, first)
  end
  if #msgs > 0 then return false, table.concat(msgs, "; ") end
  return true
end

--- numeric and expect in one: f() -> L at the current values, t the tensor
-- varied, ana the analytic dL/dt.
function gc.check(what, f, t, ana)
  return gc.expect(what, gc.numeric(f, t), ana)
end

--- Checks a built module: L = sum(y * r) for a smooth random r in [-1, 1]
-- (in double), the input gradient from backward(x, r) (unless opts.no_input)
-- and every parameter group's gradient. opts.before() runs before every
-- forward (to reseed a dropout mask); opts.what names the model in messages
-- (default: its first line, or its only module's). Returns the list of what went
-- unexpectedly ({} when all is well).
function gc.module(model, x, opts)
  opts = opts or {}
  local before = opts.before or function() end
  before()
  local r = engram.rand(table.unpack(model:forward(x):size())) * 2 - 1
  local function L()
    before()
    return model:forward(x):dot(r)
  end
  model:zero_grad()
  before()
  model:forward(x)
  local gx = model:backward(x, r)
  gx = gx and gx:clone()
  local bad, checked = {}, 0
  local mods = rawget(model, "modules")
  local name = opts.what or tostring(mods and #mods == 1 and mods[1] or model):match("^[^\n]*")
  local function run(what, t, ana)
    local ok, msg = gc.check(name .. " " .. what, L, t, ana)
    if not ok then bad[#bad + 1] = msg end
    checked = checked + 1
  end
  if not opts.no_input then run("x", x, gx) end
  for _, g in ipairs(model:groups()) do -- a model without parameters has one empty group
    if g.params:numel() > 0 then run(g.name, g.params, g.grads:clone()) end
  end
  L() -- leave the saved buffers at the unperturbed point
  if checked == 0 then bad[#bad + 1] = "nothing to check" end
  return bad
end

return gc
