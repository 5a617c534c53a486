-- reg_bench.lua — what the regularisation strategies add to a training step:
-- mlp{784,400,400,10}, batch 128, Adam, the learner's step (zero_grad,
-- forward, cross-entropy, loss hooks, backward, after_backward, optimiser
-- step, after_step), side by side in one loop:
--   plain        no strategy
--   ewc5         EWC's penalty with 5 past tasks (5 Fishers and anchors)
--   online-ewc   one running Fisher and anchor
--   si-book      SI's per-step bookkeeping alone: the learner's copy of the
--                penalty gradients, SI's task gradient and its path integral
--                (no penalty: what SI adds beyond any quadratic penalty)
--   si           SI with its penalty (a past task consolidated)
-- The penalties and SI's path integral are fused into the optimiser's step
-- (optim's penalise, track_path); "-sep" rows run the same with an optimiser
-- that does not fuse them (separate passes over the arena, as before).
-- Targets (issue 11): the EWC penalty with 5 past tasks adds at most 5% to a
-- step; SI's per-step bookkeeping at most 5%.
--
--   build/engram bench/reg_bench.lua [--batch 128] [--threads 2] [--seconds 1] [--rounds 3]
--
-- The settings take turns window by window (~2048 samples each; the machine
-- is shared), for about `seconds` per setting and round, in `rounds` rounds;
-- the best window of each is kept.
local engram = require("engram")
local core, clock = engram.core, engram.clock
local S = engram.strategies

local opts = engram.options.parse(arg or {}, {
  name = "reg_bench",
  description = "What the regularisation strategies add to a training step (issue 11).",
  options = { { "seconds", 1.0, "time per setting and round" },
              { "rounds", 3, "rounds of alternating windows, the best window is kept" } },
  defaults = { batch = 128, threads = 2 },
})
local B, T = math.tointeger(opts.batch), math.tointeger(opts.threads)
local seconds, rounds = opts.seconds, math.tointeger(opts.rounds)
core.set_threads(T)

local xs, ys = {}, {}
for k = 1, 16 do
  xs[k] = engram.rand(B, 784)
  ys[k] = (engram.rand(B) * 10):floor():clamp(0, 9)
end

-- A state for a quadratic strategy: n past tasks of random importances,
-- consolidated as after_task would (anchors at the parameters then), the
-- parameters moved a little after each.
local function past_tasks(s, model, n)
  local g = model:groups()[1]
  local ctx = { model = model, log = function() end }
  for t = 1, n do
    ctx.t = t
    s:consolidate(ctx, { engram.rand(g.numel) })
    g.params:add_(engram.randn(g.numel) * 0.01)
  end
end

-- The learner's step with the strategies' hooks (lua/engram/learner.lua's
-- train_step and keep_penalty_grads).
local function make(kind)
  local model = engram.nn.mlp { 784, 400, 400, 10 }:build { seed = 1 }
  local opt = engram.optim.Adam(model, { lr = 1e-3 })
  local sep = kind:match("%-sep$")
  kind = kind:gsub("%-sep$", "")
  if sep then -- hides penalise and track_path
    local o = opt
    opt = { step = function() o:step() end }
  end
  local crit = engram.loss.CrossEntropy()
  local strategies = {}
  if kind == "ewc5" then
    local s = S.ewc { lambda = 100 }
    past_tasks(s, model, 5)
    strategies[1] = s
  elseif kind == "online-ewc" then
    local s = S.ewc { lambda = 100, online = true }
    past_tasks(s, model, 1)
    strategies[1] = s
  elseif kind == "si" or kind == "si-book" then
    local s = S.si { c = kind == "si" and 1 or 0 }
    if kind == "si" then past_tasks(s, model, 1) end
    strategies[1] = s
  end
  local hooks = { after_backward = {} }
  for _, s in ipairs(strategies) do
    if s.after_backward then hooks.after_backward[#hooks.after_backward + 1] = s end
  end
  local ctx = { model = model, optimizer = opt, learner = { _hooks = hooks }, step = 0, t = 2, loss = 0, penalty = 0,
    log = function() end }
  local task_grads = strategies[1] and strategies[1].needs_task_grads
  local groups, bufs = model:groups(), {}
  for _, s in ipairs(strategies) do if s.before_task then s:before_task(ctx) end end
  return function(k)
    local x, y = xs[k], ys[k]
    ctx.penalty = 0
    model:zero_grad()
    local z = model:forward(x)
    ctx.logits = z
    ctx.loss, ctx.grad_logits = crit:forward_backward(z, y)
    for _, s in ipairs(strategies) do if s.loss then s:loss(ctx) end end
    if task_grads then
      if ctx.penalty == 0 then
        ctx.penalty_grads = nil
      else
        for gi, g in ipairs(groups) do
          bufs[gi] = bufs[gi] or engram.zeros(g.numel)
          bufs[gi]:copy_(g.grads)
        end
        ctx.penalty_grads = bufs
      end
    end
    model:backward(x, ctx.grad_logits, false)
    for _, s in ipairs(strategies) do if s.after_backward then s:after_backward(ctx) end end
    opt:step()
    ctx.step = ctx.step + 1
    for _, s in ipairs(strategies) do if s.after_step then s:after_step(ctx) end end
  end
end

local kinds = { "plain", "ewc5", "ewc5-sep", "online-ewc", "online-ewc-sep", "si-book", "si-book-sep", "si", "si-sep" }
local steps, best = {}, {}
for _, k in ipairs(kinds) do
  steps[k], best[k] = make(k), math.huge
  for j = 1, 10 do steps[k](j % 16 + 1) end
end
local chunk = math.max(2, 2048 // B)
local count = {}
for _, k in ipairs(kinds) do count[k] = 0 end
for _ = 1, rounds do
  local start = clock()
  repeat -- one window of each setting in turn: a burst of other work hits them alike
    for _, k in ipairs(kinds) do
      local t0 = clock()
      for _ = 1, chunk do
        steps[k](count[k] % 16 + 1)
        count[k] = count[k] + 1
      end
      best[k] = math.min(best[k], (clock() - t0) / chunk)
    end
  until clock() - start >= seconds * #kinds
end
print(string.format("regularisation step cost: mlp{784,400,400,10}, batch %d, Adam, %d BLAS thread(s), core %s",
  B, T, tostring(core.blas_core)))
print(string.format("%-14s %10s %9s  %s", "setting", "us/step", "vs plain", "target"))
local target = { ewc5 = "<= +5% (EWC, 5 past tasks)", ["si-book"] = "<= +5% (SI bookkeeping)" }
for _, k in ipairs(kinds) do
  local r = best[k] / best.plain - 1
  local t = target[k]
  local verdict = t and ((r <= 0.05) and "  met" or "  MISSED") or ""
  print(string.format("%-14s %10.1f %+8.1f%%  %s%s", k, best[k] * 1e6, 100 * r, t or "", verdict))
end
