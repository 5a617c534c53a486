-- engram.optim: optimisers over parameter groups (plain lists and engram.nn
-- models), steps worked out by hand, schedules, masks, clipping, state.
local lu = require("luaunit")
local engram = require("engram")
local optim = engram.optim

local function group(name, p, g, extra)
  local t = { name = name, params = engram.tensor(p), grads = engram.tensor(g), frozen = false }
  for k, v in pairs(extra or {}) do t[k] = v end
  return t
end

TestOptim = {}

function TestOptim.test_sgd_momentum_steps_by_hand()
  local gs = { group("a", { 1, -2 }, { 1, 0.5 }) }
  local opt = optim.SGD(gs, { lr = 0.1, momentum = 0.9 })
  opt:step() -- buf = g: p = 1 - 0.1, -2 - 0.05
  lu.assertAlmostEquals(gs[1].params:get(1), 0.9, 1e-6)
  lu.assertAlmostEquals(gs[1].params:get(2), -2.05, 1e-6)
  opt:step() -- buf = 0.9*1 + 1 = 1.9: p = 0.9 - 0.19
  lu.assertAlmostEquals(gs[1].params:get(1), 0.71, 1e-6)
  opt:step() -- buf = 2.71
  lu.assertAlmostEquals(gs[1].params:get(1), 0.439, 1e-6)
  lu.assertEquals(opt:steps(), 3)
end

function TestOptim.test_sgd_nesterov_and_weight_decay_by_hand()
  local a = { group("a", { 1 }, { 1 }) }
  local opt = optim.SGD(a, { lr = 0.1, momentum = 0.9, nesterov = true })
  opt:step(); opt:step() -- 1 - 0.19 = 0.81, then 0.81 - 0.271
  lu.assertAlmostEquals(a[1].params:get(1), 0.539, 1e-6)
  local b = { group("b", { 2 }, { 0.5 }) }
  opt = optim.SGD(b, { lr = 0.1, weight_decay = 0.1 })
  opt:step(); opt:step() -- d = 0.7 -> 1.93; d = 0.693 -> 1.8607
  lu.assertAlmostEquals(b[1].params:get(1), 1.8607, 1e-6)
end

function TestOptim.test_adam_and_adamw_two_steps_by_hand()
  local a, w = { group("a", { 1 }, { 0.5 }) }, { group("w", { 1 }, { 0.5 }) }
  local adam = optim.Adam(a, { lr = 0.1 })
  local adamw = optim.AdamW(w, { lr = 0.1, weight_decay = 0.1 })
  adam:step(); adamw:step()
  lu.assertAlmostEquals(a[1].params:get(1), 0.9, 1e-6) -- m^ / sqrt(v^) = 1
  lu.assertAlmostEquals(w[1].params:get(1), 0.89, 1e-6) -- 1*(1 - 0.01) - 0.1
  a[1].grads:set(1, -1); w[1].grads:set(1, -1)
  adam:step(); adamw:step()
  -- m = 0.045 - 0.1, v = 0.00024975 + 0.001; bias corrections 0.19 and 0.001999
  local upd = 0.1 * (-0.055 / 0.19) / (math.sqrt(0.00124975 / 0.001999) + 1e-8)
  lu.assertAlmostEquals(a[1].params:get(1), 0.9 - upd, 2e-6)
  lu.assertAlmostEquals(w[1].params:get(1), 0.89 * 0.99 - upd, 2e-6)
end

function TestOptim.test_frozen_groups_and_masked_elements_do_not_move()
  local gs = { group("base", { 1, 1 }, { 1, 1 }), group("head", { 1 }, { 1 }, { frozen = true }),
               group("m", { 1, 1 }, { 1, 1 }, { mask = engram.tensor{ 0, 1 } }) }
  local opt = optim.Adam(gs, { lr = 0.1 }):set_mask("base", engram.tensor{ 1, 0 })
  opt:step(); opt:step()
  lu.assertTrue(gs[1].params:get(1) < 1)
  lu.assertEquals(gs[1].params:get(2), 1)
  lu.assertEquals(gs[2].params:get(1), 1)
  lu.assertEquals(gs[3].params:get(1), 1)
  lu.assertTrue(gs[3].params:get(2) < 1)
  opt:set_mask("base", nil):step()
  lu.assertTrue(gs[1].params:get(2) < 1)
end

function TestOptim.test_groups_added_later_get_state_at_their_first_step()
  local gs = { group("base", { 1 }, { 1 }) }
  local opt = optim.SGD(gs, { lr = 0.1, momentum = 0.9 })
  opt:step(); opt:step()
  gs[2] = group("head", { 1 }, { 1 })
  opt:step()
  -- the new group's first step uses buf = g (PyTorch's first step), not the old count
  lu.assertAlmostEquals(gs[2].params:get(1), 0.9, 1e-6)
  lu.assertAlmostEquals(gs[1].params:get(1), 0.439, 1e-6)
end

function TestOptim.test_reset_drops_the_state()
  local gs = { group("a", { 1 }, { 1 }) }
  local opt = optim.SGD(gs, { lr = 0.1, momentum = 0.9 })
  opt:step(); opt:step()
  opt:reset()
  gs[1].params:set(1, 1)
  opt:step() -- as a first step again
  lu.assertAlmostEquals(gs[1].params:get(1), 0.9, 1e-6)
  lu.assertEquals(opt:steps(), 1)
end

function TestOptim.test_state_dict_round_trip_continues_identically()
  local g1, g2 = { group("a", { 1, 2 }, { 0.3, -0.2 }) }, { group("a", { 1, 2 }, { 0.3, -0.2 }) }
  local o1, o2 = optim.Adam(g1, { lr = 0.05 }), optim.Adam(g2, { lr = 0.05 })
  o1:step(); o2:step()
  local sd = o1:state_dict()
  local o3 = optim.Adam(g2, { lr = 0.05 }):load_state_dict(sd)
  o1:step(); o3:step()
  lu.assertTrue(g1[1].params:equal(g2[1].params))
  lu.assertErrorMsgContains("not a SGD state", function() optim.SGD(g2):load_state_dict(sd) end)
end

function TestOptim.test_clip_scales_gradients_of_trainable_groups_jointly()
  local gs = { group("a", { 0, 0 }, { 3, 0 }), group("b", { 0 }, { 4 }), group("c", { 0 }, { 100 }, { frozen = true }) }
  local opt = optim.SGD(gs, { lr = 1, clip = 1 })
  opt:step()
  lu.assertAlmostEquals(opt.last_grad_norm, 5, 1e-6)
  lu.assertAlmostEquals(gs[1].params:get(1), -0.6, 1e-5)
  lu.assertAlmostEquals(gs[2].params:get(1), -0.8, 1e-5)
  lu.assertEquals(gs[3].params:get(1), 0)
end

function TestOptim.test_schedules_give_the_expected_rates()
  local s = optim.schedule
  local st = s.step{ every = 10, gamma = 0.5 }
  lu.assertAlmostEquals(st:lr_at(0, 1), 1, 1e-12)
  lu.assertAlmostEquals(st:lr_at(9, 1), 1, 1e-12)
  lu.assertAlmostEquals(st:lr_at(10, 1), 0.5, 1e-12)
  lu.assertAlmostEquals(st:lr_at(25, 0.4), 0.1, 1e-12)
  local c = s.cosine{ total = 100, min = 0.1 }
  lu.assertAlmostEquals(c:lr_at(0, 1), 1, 1e-12)
  lu.assertAlmostEquals(c:lr_at(50, 1), 0.55, 1e-12)
  lu.assertAlmostEquals(c:lr_at(100, 1), 0.1, 1e-12)
  lu.assertAlmostEquals(c:lr_at(500, 1), 0.1, 1e-12)
  lu.assertAlmostEquals(c:lr_at(25, 1), 0.1 + 0.9 * (1 + math.cos(math.pi / 4)) / 2, 1e-12)
  local w = s.warmup{ steps = 4, after = s.step{ every = 2, gamma = 0.1 } }
  lu.assertAlmostEquals(w:lr_at(0, 1), 0.25, 1e-12)
  lu.assertAlmostEquals(w:lr_at(3, 1), 1, 1e-12)
  lu.assertAlmostEquals(w:lr_at(4, 1), 1, 1e-12)
  lu.assertAlmostEquals(w:lr_at(6, 1), 0.1, 1e-12)
  lu.assertAlmostEquals(s.warmup{ steps = 2 }:lr_at(7, 0.3), 0.3, 1e-12)
  lu.assertErrorMsgContains("unknown option 'step_size' (known: every, gamma)", s.step, { step_size = 3 })
  lu.assertErrorMsgContains("'total' must be an integer >= 1", s.cosine, {})
end

function TestOptim.test_optimiser_follows_its_schedule()
  local gs = { group("a", { 0 }, { 1 }) }
  local opt = optim.SGD(gs, { lr = 1, schedule = optim.schedule.warmup{ steps = 2 } })
  lu.assertAlmostEquals(opt:lr(), 0.5, 1e-12)
  opt:step()                                 -- lr 0.5
  lu.assertAlmostEquals(gs[1].params:get(1), -0.5, 1e-6)
  opt:step()                                 -- lr 1
  lu.assertAlmostEquals(gs[1].params:get(1), -1.5, 1e-6)
  opt:set_lr(2)
  opt:step()                                 -- lr 2
  lu.assertAlmostEquals(gs[1].params:get(1), -3.5, 1e-6)
  opt:reset()
  lu.assertAlmostEquals(opt:lr(), 1, 1e-12)  -- the schedule restarts
end

function TestOptim.test_bad_options_are_errors_naming_the_known_keys()
  local gs = { group("a", { 0 }, { 1 }) }
  lu.assertErrorMsgContains("SGD: unknown option 'momentun' (known: clip, dampening, lr, momentum, nesterov, "
    .. "schedule, weight_decay)", optim.SGD, gs, { momentun = 0.9 })
  lu.assertErrorMsgContains("SGD: lr must be a number >= 0, got -0.1", optim.SGD, gs, { lr = -0.1 })
  lu.assertErrorMsgContains("SGD: momentum 1.5 must be in [0, 1)", optim.SGD, gs, { momentum = 1.5 })
  lu.assertErrorMsgContains("Nesterov momentum needs momentum > 0", optim.SGD, gs, { nesterov = true })
  lu.assertErrorMsgContains("Adam: beta1 1 must be in [0, 1)", optim.Adam, gs, { betas = { 1, 0.999 } })
  lu.assertErrorMsgContains("AdamW: eps must be a number > 0", optim.AdamW, gs, { eps = 0 })
  lu.assertErrorMsgContains("group #1 needs tensors 'params' and 'grads'", optim.SGD, { { params = 1 } })
  lu.assertErrorMsgContains("set_lr: lr must be a number >= 0", function() optim.SGD(gs):set_lr(-1) end)
  local ok, err = pcall(function() local o = optim.Adam(gs, { lr = -1 }); return o end)
  lu.assertFalse(ok)
  lu.assertStrContains(err, "test_optim.lua:")
  ok, err = pcall(function() local o = optim.SGD(gs, { momentum = 2 }); return o end)
  lu.assertFalse(ok)
  lu.assertStrContains(err, "test_optim.lua:")
  -- a gradient that does not match its parameters
  local bad = { { name = "x", params = engram.zeros(3), grads = engram.zeros(2) } }
  lu.assertErrorMsgContains("sgd: gradients has 2 elements, the parameters have 3", function()
    optim.SGD(bad):step()
  end)
  -- nothing to train is an error, not a silent no-op
  lu.assertErrorMsgContains("Adam: nothing to train: the model has no parameters", function()
    optim.Adam(engram.nn.ReLU()):step()
  end)
  lu.assertErrorMsgContains("SGD: nothing to train", function() optim.SGD({}):step() end)
  lu.assertErrorMsgContains("SGD:set_mask: the group name must be a string, got number",
    function() optim.SGD(gs):set_mask(0 / 0, engram.ones(1)) end)
end

function TestOptim.test_a_bad_state_is_rejected_whole()
  local gs = { group("a", { 1, 2 }, { 1, 1 }) }
  local opt = optim.SGD(gs, { lr = 0.1, momentum = 0.9 })
  opt:step()
  local good = opt:state_dict()
  local function bad(sd, msg)
    lu.assertErrorMsgContains(msg, function() opt:load_state_dict(sd) end)
    lu.assertEquals(opt:steps(), 1) -- the optimiser is as it was
    lu.assertEquals((opt:state_dict().groups.a.buf - good.groups.a.buf):abs():max(), 0)
  end
  bad(optim.SGD(gs), "SGD:load_state_dict: not a SGD state") -- an optimiser is not its state
  bad({ kind = "SGD", groups = { a = { t = 1, buf = engram.zeros(3) } } }, "group 'a' has 2 parameters, the state 3")
  bad({ kind = "SGD", groups = { a = { t = 1, buf = "x" } } }, "group 'a': buf must be a tensor, got string")
  bad({ kind = "SGD", groups = { a = { t = -1 } } }, "group 'a': not a state")
  bad({ kind = "SGD", step = 1.5, groups = {} }, "step must be an integer >= 0, got 1.5")
  bad({ kind = "SGD", groups = { a = { t = 1, m = engram.zeros(2) } } }, "this SGD keeps no 'm'")
  -- a state from SGD with momentum into SGD without: named, not a crash
  lu.assertErrorMsgContains("this SGD keeps no 'buf'", function() optim.SGD(gs):load_state_dict(good) end)
end

function TestOptim.test_trains_an_nn_model_through_its_groups()
  engram.seed(3)
  local model = engram.nn.mlp{ 4, 8, 3 }
  model:build{ seed = 1 }
  local x = engram.randn(12, 4)
  local y = engram.tensor{ 0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2 }
  local ce = engram.loss.CrossEntropy()
  local opt = optim.Adam(model, { lr = 0.05 })
  local first, last
  for it = 1, 60 do
    opt:zero_grad()
    local l, gy = ce:forward_backward(model:forward(x), y)
    model:backward(x, gy, false)
    opt:step()
    if it == 1 then first = l end
    last = l
  end
  lu.assertTrue(last < 0.5 * first, string.format("loss %g -> %g", first, last))
  -- the grads were zeroed through the model
  opt:zero_grad()
  for _, g in ipairs(model:groups()) do lu.assertEquals(g.grads:abs():sum(), 0) end
end

function TestOptim.test_a_warm_step_allocates_nothing()
  local gs = { group("a", { 1, 2, 3 }, { 1, 1, 1 }), group("b", { 1 }, { 1 }) }
  local opt = optim.AdamW(gs, { lr = 0.01, clip = 1 })
  opt:step()
  local before = engram.core.alloc_count()
  for _ = 1, 5 do opt:step() end
  lu.assertEquals(engram.core.alloc_count(), before)
end

-- ------------------------------------------------------------ fused terms

-- Three groups (one over several of the fused loop's blocks with a ragged
-- tail, one small, one frozen) trained twice from the same values and
-- gradients: "unfused" adds the penalties to the gradients (cl.quad_penalty*),
-- steps (clipping in place) and then integrates SI's path (cl.si_accumulate);
-- "fused" hands the same terms to the optimiser (penalise, track_path).
-- g holds a task gradient plus pg, the share of an unfused penalty.
local function fused_and_unfused(make, opts)
  opts = opts or {}
  local cl = engram.cl
  local sizes = { 5133, 7, 5 }
  local function groups()
    engram.seed(11)
    local gs = {}
    for i, n in ipairs(sizes) do
      gs[i] = { name = "g" .. i, params = engram.randn(n), grads = engram.zeros(n), frozen = i == 3 }
    end
    return gs
  end
  local U, Fz = groups(), groups()
  local ou, of = make(U), make(Fz)
  if opts.mask then
    local mask = engram.tensor { 1, 0, 1, 1, 0, 1, 1 }
    ou:set_mask("g2", mask); of:set_mask("g2", mask)
  end
  engram.seed(12)
  local F, anchor, A, B = engram.rand(7), engram.randn(7), engram.rand(5133) * 3, engram.randn(5133)
  local C = 2.5
  local omu, omf = { engram.zeros(5133), engram.zeros(7) }, { engram.zeros(5133), engram.zeros(7) }
  local folded = { A = A, B = B, C = C, lambda = 0.7 }
  local anch = { F = F, anchor = anchor, lambda = 0.7 }
  local frozen = { F = engram.ones(5), anchor = engram.zeros(5), lambda = 1 }
  local frozen_before = Fz[3].params:clone()
  for _ = 1, opts.steps or 4 do
    local pg, raw, prev = {}, {}, {}
    for i, n in ipairs(sizes) do
      pg[i] = engram.randn(n) * 0.1
      local g = engram.randn(n) + pg[i]
      U[i].grads:copy_(g); Fz[i].grads:copy_(g)
      raw[i], prev[i] = g:clone(), U[i].params:clone()
    end
    -- unfused
    local vu1 = cl.quad_penalty_folded(U[1].params, A, B, C, 0.7, U[1].grads)
    local vu2 = cl.quad_penalty(U[2].params, anchor, F, 0.7, U[2].grads)
    ou:step()
    -- group 2's path without pg: SI's task gradient is then the whole of g
    for i = 1, 2 do cl.si_accumulate(omu[i], prev[i], raw[i], i == 1 and pg[i] or nil, U[i].params) end
    -- fused
    lu.assertTrue(of:penalise(Fz[1].params, folded))
    lu.assertTrue(of:penalise(Fz[2].params, anch))
    lu.assertTrue(of:penalise(Fz[3].params, frozen))
    for i = 1, 2 do lu.assertTrue(of:track_path(Fz[i].params, omf[i], i == 1 and pg[i] or nil)) end
    of:step()
    lu.assertEquals(folded.value, vu1)
    lu.assertEquals(anch.value, vu2)
    lu.assertEquals(frozen.value, 0) -- a frozen group is neither stepped nor penalised
    if opts.clip then lu.assertEquals(of.last_grad_norm, ou.last_grad_norm) end
    for i = 1, 2 do
      lu.assertTrue(Fz[i].params:equal(U[i].params), "parameters of group " .. i)
      lu.assertTrue(omf[i]:equal(omu[i]), "path integral of group " .. i)
      lu.assertTrue(Fz[i].grads:equal(raw[i]), "the fused step leaves the gradients as they were")
    end
  end
  lu.assertTrue(Fz[3].params:equal(frozen_before))
  lu.assertTrue(Fz[1].params:equal(U[1].params))
end

function TestOptim.test_fused_terms_give_the_same_bits_as_separate_passes_with_sgd()
  fused_and_unfused(function(gs) return optim.SGD(gs, { lr = 0.05 }) end)
  fused_and_unfused(function(gs) return optim.SGD(gs, { lr = 0.05, momentum = 0.9, weight_decay = 0.01 }) end)
  fused_and_unfused(function(gs) return optim.SGD(gs, { lr = 0.05, momentum = 0.9, nesterov = true }) end)
  fused_and_unfused(function(gs) return optim.SGD(gs, { lr = 0.05, momentum = 0.8, dampening = 0.5 }) end,
    { mask = true })
end

function TestOptim.test_fused_terms_give_the_same_bits_as_separate_passes_with_adam_and_adamw()
  fused_and_unfused(function(gs) return optim.Adam(gs, { lr = 0.01 }) end)
  fused_and_unfused(function(gs) return optim.Adam(gs, { lr = 0.01, weight_decay = 0.05 }) end, { mask = true })
  fused_and_unfused(function(gs) return optim.AdamW(gs, { lr = 0.01, weight_decay = 0.1 }) end)
end

function TestOptim.test_fused_terms_give_the_same_bits_as_separate_passes_with_clipping()
  -- the penalties' gradients count in the norm, as when they are in the gradients
  fused_and_unfused(function(gs) return optim.SGD(gs, { lr = 0.05, momentum = 0.9, clip = 1 }) end)
  fused_and_unfused(function(gs) return optim.Adam(gs, { lr = 0.01, clip = 1 }) end, { mask = true })
  fused_and_unfused(function(gs) return optim.AdamW(gs, { lr = 0.01, clip = 1e6 }) end) -- under the norm: no scaling
end

function TestOptim.test_fused_terms_last_one_step_and_one_penalty_per_group()
  local gs = { group("a", { 1, 2 }, { 0, 0 }) }
  local opt = optim.SGD(gs, { lr = 0.1 })
  local pen = { F = engram.tensor { 1, 1 }, anchor = engram.tensor { 0, 0 }, lambda = 1 }
  lu.assertTrue(opt:penalise(gs[1].params, pen))
  lu.assertFalse(opt:penalise(gs[1].params, { F = pen.F, anchor = pen.anchor, lambda = 2 }), "the slot is taken")
  opt:step() -- g = p: p = 0.9 (1, 2)
  lu.assertAlmostEquals(pen.value, 0.5 * (1 + 4), 1e-12)
  lu.assertAlmostEquals(gs[1].params:get(2), 1.8, 1e-6)
  lu.assertEquals(gs[1].grads:get(2), 0) -- the gradient was not written
  opt:step() -- no penalty any more: g = 0
  lu.assertAlmostEquals(gs[1].params:get(2), 1.8, 1e-6)
  local om = engram.zeros(2)
  lu.assertTrue(opt:track_path(gs[1].params, om))
  lu.assertFalse(opt:track_path(gs[1].params, engram.zeros(2)))
end

function TestOptim.test_fused_terms_reject_bad_input_naming_it()
  local gs = { group("a", { 1, 2 }, { 0, 0 }) }
  local opt = optim.Adam(gs)
  lu.assertErrorMsgContains("Adam:penalise: the group's parameters must be a tensor", opt.penalise, opt, {}, {})
  lu.assertErrorMsgContains("Adam:penalise: pen.lambda must be a finite number", opt.penalise, opt,
    gs[1].params, { F = engram.ones(2), anchor = engram.ones(2), lambda = 0 / 0 })
  lu.assertErrorMsgContains("Adam:penalise: pen.anchor must be a tensor of 2 values, got 3 values", opt.penalise,
    opt, gs[1].params, { F = engram.ones(2), anchor = engram.ones(3), lambda = 1 })
  lu.assertErrorMsgContains("Adam:penalise: pen.B must be a tensor of 2 values, got nil", opt.penalise,
    opt, gs[1].params, { A = engram.ones(2), lambda = 1 })
  lu.assertErrorMsgContains("Adam:track_path: omega (and pg, if given) must be tensors of 2 values",
    opt.track_path, opt, gs[1].params, engram.zeros(3))
  lu.assertErrorMsgContains("adam: penalty form must be 'anchor' or 'folded'", engram.core.adam_step,
    gs[1].params, gs[1].grads, engram.zeros(2), engram.zeros(2), 0.1, 0.9, 0.999, 1e-8, 0, false, 1, nil,
    { penalty = "cubic" })
  lu.assertErrorMsgContains("sgd: clipping scale 2 must be in (0, 1]", engram.core.sgd_step,
    gs[1].params, gs[1].grads, nil, 0.1, 0, 0, false, 0, 1, nil, { scale = 2 })
  lu.assertErrorMsgContains("sgd: path integral has 3 elements, the parameters have 2", engram.core.sgd_step,
    gs[1].params, gs[1].grads, nil, 0.1, 0, 0, false, 0, 1, nil, { omega = engram.zeros(3) })
end

function TestOptim.test_an_optimiser_of_a_module_inside_a_model_keeps_its_state_when_another_model_is_built()
  -- (a GAN's Adam on its generator lost its moments whenever any model was
  -- built, e.g. the learner's copy of the old model after every task)
  local nn = engram.nn
  local net = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 2)):build { seed = 1 }
  local first = net.modules[1]
  local opt = optim.Adam(first, { lr = 0.1 })
  local x = engram.ones(4, 3)
  local function step()
    net:zero_grad()
    net:backward(x, net:forward(x), false)
    opt:step()
  end
  step()
  lu.assertEquals(opt:state_dict().groups.base.t, 1)
  nn.mlp { 3, 2 }:build { seed = 2 }
  step()
  lu.assertEquals(opt:state_dict().groups.base.t, 2, "the moments carried on")
end
