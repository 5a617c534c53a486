-- Generative replay's generators: the VAE's whole loss (reconstruction,
-- reparameterisation and KL) has the gradient central differences find,
-- with the mutation tests (tests/lua/gradcheck.lua), Bernoulli and Gaussian,
-- plain and class-conditional; it learns (the loss falls) and samples; bad
-- options and sampling from an untrained generator are errors naming them.
local lu = require("luaunit")
local engram = require("engram")
local gc = require("gradcheck")

TestGenerative = {}

-- the mean over features of each feature's standard deviation
local function mean_std(x)
  local n, d, total = x:size(1), x:size(2), 0
  for j = 1, d do
    local c = x:narrow(2, j, 1):contiguous()
    local m = c:sum() / n
    total = total + math.sqrt((c - m):square():sum() / n)
  end
  return total / d
end

local function vae_gradcheck(opts, y)
  local v = engram.nn.vae(opts)
  local x = engram.rand(3, opts.input)
  v._fixed_eps = false
  v:zero_grad()
  v:loss_backward(x, y) -- draws eps once
  v._fixed_eps = true
  v:zero_grad()
  v:loss_backward(x, y)
  local params, grads = v.net:flat()
  local ana = grads:clone()
  local function f()
    local l = v:loss_backward(x, y)
    return l
  end
  return gc.check("vae " .. opts.likelihood .. (opts.classes and " conditional" or ""), f, params, ana)
end

function TestGenerative.test_vae_loss_gradient_matches_central_differences()
  local base = { input = 5, latent = 2, hidden = { 4 }, activation = "tanh", seed = 3 }
  for _, lik in ipairs { "bernoulli", "gaussian" } do
    base.likelihood = lik
    local ok, msg = vae_gradcheck(base)
    lu.assertTrue(ok, msg)
  end
  base.classes, base.likelihood = 3, "bernoulli"
  local ok, msg = vae_gradcheck(base, engram.tensor { 0, 2, 1 })
  lu.assertTrue(ok, msg)
end

-- the gradient check fails when the KL term's gradient is left out: it checks the KL too
function TestGenerative.test_vae_gradcheck_fails_without_the_kl_gradient()
  local opts = { input = 5, latent = 2, hidden = { 4 }, activation = "tanh", seed = 3, likelihood = "gaussian" }
  local v = engram.nn.vae(opts)
  local x = engram.rand(3, 5)
  v:loss_backward(x)
  v._fixed_eps = true
  local withkl = (function() v:zero_grad(); v:loss_backward(x); return select(2, v.net:flat()):clone() end)()
  v.options.kl_weight = 0
  local nokl = (function() v:zero_grad(); v:loss_backward(x); return select(2, v.net:flat()):clone() end)()
  v.options.kl_weight = 1
  lu.assertFalse(withkl:allclose(nokl, 1e-4))
  local params = v.net:flat()
  local ok = gc.check("vae without KL gradient", function() return v:loss_backward(x) end, params, nokl)
  lu.assertFalse(ok)
end

function TestGenerative.test_vae_learns_and_samples()
  local all = engram.data.blobs { n = 600, classes = 3, dim = 6, std = 0.3, seed = 2 }
  -- inputs in [0, 1] for the Bernoulli likelihood
  local v = engram.nn.vae { input = 6, latent = 2, hidden = { 16 }, likelihood = "gaussian", lr = 1e-2 }
  local it = all:batches { batch = 64, shuffle = true, flat = true, seed = 1 }
  local first, last
  for i = 1, 300 do
    local x = it:next()
    if x == nil then x = it:next() end
    local l = v:train_batch(x)
    if i <= 10 then first = (first or 0) + l / 10 end
    if i > 290 then last = (last or 0) + l / 10 end
  end
  lu.assertTrue(last < first / 2, string.format("loss %.3f -> %.3f", first, last))
  local s = v:sample(500)
  lu.assertEquals(s:size(1), 500)
  lu.assertEquals(s:size(2), 6)
  -- samples spread like the data: their per-feature std is within a factor 2 of the data's
  local x = all:range(1, 600, nil, nil, true)
  local sd_data, sd_s = mean_std(x), mean_std(s)
  lu.assertTrue(sd_s > sd_data / 2 and sd_s < sd_data * 2, string.format("std %.3f vs data %.3f", sd_s, sd_data))
  lu.assertEquals(v.trained, 300)
  lu.assertNotNil(v:state()["encoder.1.weight"])
end

function TestGenerative.test_vae_bad_input_names_the_option()
  lu.assertErrorMsgContains("vae: latent (the size of the latent code) must be an integer > 0, got 0", engram.nn.vae,
    { input = 4, latent = 0 })
  lu.assertErrorMsgContains("vae: the option 'input' (floats per sample) is required", engram.nn.vae, { latent = 2 })
  lu.assertErrorMsgContains("vae: unknown option 'latnet'", engram.nn.vae, { input = 4, latnet = 2 })
  lu.assertErrorMsgContains("vae: likelihood must be 'bernoulli' or 'gaussian'", engram.nn.vae,
    { input = 4, likelihood = "poisson" })
  local v = engram.nn.vae { input = 4, latent = 2 }
  lu.assertErrorMsgContains("vae:sample: the VAE is untrained", v.sample, v, 3)
  local c = engram.nn.vae { input = 4, latent = 2, classes = 3 }
  lu.assertErrorMsgContains("needs a label per sample", c.loss_backward, c, engram.rand(2, 4))
  lu.assertErrorMsgContains("labels must be class ids in [0, 3)", c.loss_backward, c, engram.rand(2, 4),
    engram.tensor { 0, 3 })
end
