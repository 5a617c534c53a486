-- engram.lm: attention entropy against hand computations (uniform causal
-- attention gives log(keys) per row; any GPT against a direct loop over its
-- attn.probs), block drift as engram.metrics.drift, the observer in a
-- learner run (before training, after every task, the results and the
-- report), per-domain LoRA on a tiny GPT exact through the learner, and bad
-- input with clear errors.
local lu = require("luaunit")
local engram = require("engram")
local core = require("engram.core")
local lm = require("engram.lm")
local text = require("engram.text")
local nn = engram.nn

local helpers = require("helpers")

local function assertError(pattern, f, ...)
  local ok, err = pcall(f, ...)
  lu.assertFalse(ok, "expected an error matching " .. pattern)
  lu.assertStrContains(tostring(err), pattern)
end

local function tiny_gpt(seed, o)
  o = o or {}
  return nn.gpt { vocab = o.vocab or 256, ctx = o.ctx or 12, dim = o.dim or 16, heads = o.heads or 2,
    layers = o.layers or 2 }:build { seed = seed or 1 }
end

local function random_ids(N, T, V, seed)
  local g = core.generator(seed)
  local x = core.zeros(N, T)
  for n = 1, N do
    for t = 1, T do x:set(n, t, g:randint(0, V - 1)) end
  end
  return x
end

local markov_text = helpers.markov_text -- a seeded Markov text over an alphabet

-- ------------------------------------------------------------- entropy
TestLmEntropy = {}

function TestLmEntropy.test_uniform_causal_attention_gives_log_keys_per_row()
  -- zero qkv weights and biases: every score is 0, every row uniform over its keys
  local m = tiny_gpt(1, { ctx = 10 })
  for _, a in ipairs(m:attention()) do
    a.modules[1].weight:fill_(0)
    a.modules[1].bias:fill_(0)
  end
  local T = 10
  local x = random_ids(3, T, 256, 5)
  for _, min_keys in ipairs { 2, 4 } do
    local e = lm.attention_entropy(m, x, { min_keys = min_keys })
    local want = 0
    for k = min_keys, T do want = want + math.log(k) end
    want = want / (T - min_keys + 1)
    lu.assertEquals(#e.entropy, 2)
    for l = 1, 2 do
      lu.assertEquals(#e.entropy[l], 2)
      for h = 1, 2 do
        lu.assertAlmostEquals(e.entropy[l][h], want, 1e-5)
        lu.assertAlmostEquals(e.normalized[l][h], 1, 1e-5)
      end
      lu.assertAlmostEquals(e.layer_entropy[l], want, 1e-5)
    end
    lu.assertEquals(e.rows, T - min_keys + 1)
    lu.assertEquals(e.windows, 3)
  end
end

function TestLmEntropy.test_a_trained_pattern_matches_a_direct_loop_over_attn_probs()
  local m = tiny_gpt(3, { ctx = 8, heads = 4, dim = 16 })
  -- sharpen the attention so rows differ from uniform
  for _, a in ipairs(m:attention()) do a.modules[1].weight:mul_(25) end
  local N, T, H = 5, 8, 4
  local x = random_ids(N, T, 256, 7)
  -- chunks of 2 windows: the sums over chunks must be those of one pass
  local e = lm.attention_entropy(m, x, { min_keys = 3, batch = 2 })
  m:evaluate()
  m:forward(x)
  for l, a in ipairs(m:attention()) do
    local p = a.probs
    for h = 1, H do
      local s, sn = 0, 0
      for n = 1, N do
        for i = 3, T do
          local r = 0
          for j = 1, i do
            local v = p:get(n, h, i, j)
            if v > 0 then r = r - v * math.log(v) end
          end
          s, sn = s + r, sn + r / math.log(i)
        end
      end
      local rows = N * (T - 2)
      lu.assertAlmostEquals(e.entropy[l][h], s / rows, 1e-5)
      lu.assertAlmostEquals(e.normalized[l][h], sn / rows, 1e-5)
      lu.assertTrue(e.normalized[l][h] < 0.99, "sharpened attention is below uniform")
    end
  end
end

-- ------------------------------------------------------------- drift
TestLmDrift = {}

function TestLmDrift.test_block_drift_is_metrics_drift_over_token_positions()
  local m = tiny_gpt(2)
  local x = random_ids(4, 12, 256, 3)
  local h1 = lm.block_outputs(m, x, { batch = 3 })
  lu.assertEquals(#h1, 2)
  lu.assertEquals(h1[1]:size(), { 4 * 12, 16 })
  -- unchanged model: no drift
  for _, v in ipairs(lm.block_drift(m, x, h1)) do lu.assertEquals(v, 0) end
  -- perturb the second block's feed-forward: block 1 keeps its outputs
  local ff = m.modules[4].modules[2].modules[4].modules[3]
  ff.weight:add_(core.ones(ff.weight:size()):mul_(0.05))
  local d = lm.block_drift(m, x, h1)
  lu.assertEquals(d[1], 0)
  m:forward(x)
  local out2 = m.modules[4].modules[2].output
  local now, before = {}, {}
  for r = 1, 48 do
    local b, t = (r - 1) // 12 + 1, (r - 1) % 12 + 1
    local a, c = {}, {}
    for k = 1, 16 do a[k], c[k] = out2:get(b, t, k), h1[2]:get(r, k) end
    now[r], before[r] = a, c
  end
  lu.assertAlmostEquals(d[2], engram.metrics.drift(now, before), 1e-5)
  lu.assertTrue(d[2] > 0)
end

-- ------------------------------------------------------------- through the learner
TestLmLearner = {}

function TestLmLearner:setUp() self.dir = helpers.markov_domains() end

function TestLmLearner:tearDown() os.execute("rm -rf " .. helpers.q(self.dir)) end

function TestLmLearner:scenario(n) return helpers.markov_scenario(self.dir, n, 48, 8) end

function TestLmLearner:test_the_observer_fills_entropy_and_drift_before_and_after_every_task()
  local s = self:scenario(2)
  local m = tiny_gpt(4)
  local init = lm.attention_entropy(m, lm.probe_set(s.tasks[1].test, 6))
  local L = engram.learner(m, { batch = 8, lr = 0.01, iterations = 12, quiet = true })
  local obs = lm.observer { windows = 6 }
  L:use(obs)
  local doc = L:run(s)
  lu.assertTrue(engram.results.validate(doc))
  local ae, bd = doc.extra.attention_entropy, doc.extra.block_drift
  lu.assertEquals(ae.probe, { task = 1, part = "test", windows = 6, T = 12, min_keys = 2 })
  lu.assertEquals(ae.before.entropy, init.entropy) -- measured before any training
  lu.assertEquals(#ae.after, 2)
  lu.assertEquals(ae.layers, 2)
  lu.assertEquals(ae.heads, 2)
  lu.assertNotEquals(ae.after[1].entropy, ae.before.entropy) -- training moved the attention
  -- the last entry is the final model's entropy on the probe
  local x = lm.probe_set(s.tasks[1].test, 6)
  lu.assertEquals(ae.after[2].entropy, lm.attention_entropy(m, x).entropy)
  -- drift: 0 at the reference (task 1), then the final model against the outputs kept after task 1
  lu.assertEquals(bd.after[1], { 0, 0 })
  local ref = { obs:state().block1, obs:state().block2 }
  lu.assertEquals(bd.after[2], lm.block_drift(m, x, ref))
  lu.assertTrue(bd.after[2][1] > 0 and bd.after[2][2] > 0)
  -- the learner's own probe works on a GPT too (its final LayerNorm, per token position)
  lu.assertTrue(type(doc.extra.drift[2]) == "number" and doc.extra.drift[2] > 0)
  -- the results file, the summary and the report carry them
  local p = helpers.tmpname(".json")
  engram.results.save(p, doc)
  local back = engram.results.load(p)[1]
  os.remove(p)
  lu.assertEquals(back.extra.block_drift.after[2][2], bd.after[2][2])
  local lines = table.concat(lm.summary_lines(doc), "\n")
  lu.assertStrContains(lines, "attention entropy")
  lu.assertStrContains(lines, "block drift")
  local html = engram.report.html { doc }
  lu.assertStrContains(html, "Attention entropy")
  lu.assertStrContains(html, "Block drift")
end

function TestLmLearner:test_a_run_stopped_after_task_2_and_resumed_ends_with_the_same_figures()
  local s = self:scenario(3)
  local function learner(dir, extra)
    local o = { batch = 8, lr = 0.01, iterations = 6, quiet = true, checkpoint = dir }
    for k, v in pairs(extra or {}) do o[k] = v end
    local L = engram.learner(tiny_gpt(6), o)
    L:use(lm.observer { windows = 4 })
    return L
  end
  local whole = learner(false):run(s)
  local dir = helpers.tmpname(".ck")
  lu.assertErrorMsgContains("stopped after task 2 of 3", function() learner(dir, { stop_task = 2 }):run(s) end)
  local resumed = learner(dir, { resume = true }):run(s)
  os.execute("rm -rf " .. helpers.q(dir))
  lu.assertEquals(resumed.extra.attention_entropy, whole.extra.attention_entropy)
  lu.assertEquals(resumed.extra.block_drift, whole.extra.block_drift)
  lu.assertTrue(whole.extra.block_drift.after[3][1] > 0)
end

function TestLmLearner:test_lora_per_domain_keeps_the_first_domain_bit_identical()
  local s = self:scenario(3)
  local function run(with_lora)
    engram.seed(1)
    local m = tiny_gpt(5)
    local L = engram.learner(m, { batch = 8, lr = 0.01, iterations = 15, quiet = true })
    local lora
    if with_lora then
      lora = engram.strategies.lora { rank = 2, layers = lm.projections(m), freeze = "base" }
      L:use(lora, { tasks = "2-" })
      L:use(require("engram.recipe").lr_after_first(0.01, 0.05))
    end
    return L:run(s), L, lora, m
  end
  local naive = run(false)
  local doc, L, lora, m = run(true)
  local P, N = doc.perplexity, naive.perplexity
  -- not vacuous: the same training without LoRA changes the first domain
  lu.assertNotEquals(N[2][1], N[1][1])
  lu.assertEquals(P[1][1], N[1][1]) -- task 1 trains the whole model either way
  -- with a set per later domain the first domain's figures are bit-identical
  lu.assertEquals(P[2][1], P[1][1])
  lu.assertEquals(P[3][1], P[1][1])
  lu.assertEquals(doc.acc[3][1], doc.acc[1][1])
  -- and the later sets learnt their domains
  for j = 2, 3 do
    lu.assertTrue(P[j][j] < 0.9 * P[j - 1][j], string.format("domain %d: %.2f -> %.2f", j, P[j - 1][j], P[j][j]))
  end
  -- switching a set on changes the outputs; switching back gives the same bits
  -- (after the run the set of the last task evaluated is active)
  lora:activate(nil)
  local _, base_nll = L:evaluate(s.tasks[1])
  lu.assertEquals(math.exp(base_nll), P[1][1])
  lora:activate(3)
  local _, nll3 = L:evaluate(s.tasks[1])
  lu.assertNotEquals(nll3, base_nll)
  lora:activate(nil)
  local _, again = L:evaluate(s.tasks[1])
  lu.assertEquals(again, base_nll)
  lu.assertEquals(math.exp(again), P[1][1])
  -- only the projections of the blocks were wrapped: 4 per block
  lu.assertEquals(#lm.projections(m), 8)
  lu.assertEquals(doc.extra.isolation.per_task[2].trainable, 2 * (2 * (16 + 48) + 2 * (16 + 16) + 2 * (16 + 64) * 2))
end

-- ------------------------------------------------------------- bad input
TestLmErrors = {}

function TestLmErrors.test_bad_input_gives_clear_errors()
  local mlp = nn.mlp { 4, 8, 2 }:build { seed = 1 }
  assertError("the model has no attention modules (CausalSelfAttention)", lm.attention_entropy, mlp,
    core.zeros(2, 4))
  assertError("no TransformerBlock", lm.projections, mlp)
  local train, held = text.windows(markov_text("abc", 300, 1), { ctx = 8, holdout = 0 })
  lu.assertEquals(#held, 0)
  assertError("holds no windows", lm.probe_set, held, 4)
  assertError("expected a dataset of token windows", lm.probe_set, {}, 4)
  assertError("positive integer", lm.probe_set, train, 0)
  local m = tiny_gpt(1, { ctx = 8 })
  assertError("ids [windows, T]", lm.attention_entropy, m, core.zeros(8))
  assertError("no query position with min_keys = 9", lm.attention_entropy, m, core.zeros(2, 8), { min_keys = 9 })
  assertError("min_keys must be an integer >= 2", lm.attention_entropy, m, core.zeros(2, 8), { min_keys = 1 })
  assertError("unknown option 'windowz'", lm.observer, { windowz = 3 })
  assertError("nothing to measure", lm.observer, { drift = false, entropy = false })
  assertError("expected the reference outputs", lm.block_drift, m, core.zeros(2, 8), {})
end

function TestLmLearner:test_the_observer_refuses_a_model_without_attention_and_an_empty_probe()
  local s = self:scenario(2)
  local L = engram.learner(text.bigram(256, 8), { batch = 8, iterations = 2, quiet = true })
  L:use(lm.observer {})
  assertError("lm.observer: the model has no attention modules", L.run, L, s)
  -- a first domain whose held-out part is empty
  local _, held = text.windows(markov_text("abc", 300, 1), { ctx = 8, holdout = 0 })
  local obs = lm.observer {}
  assertError("lm.observer: task 1 ('d1'): the dataset holds no windows", obs.before_run, obs,
    { model = tiny_gpt(1), tasks = { { name = "d1", test = held } }, opts = { eval_on = "test" }, extra = {} })
end

-- ------------------------------------------------------------- the recipes
TestLmRecipes = {}

local BIN = os.getenv("ENGRAM_BIN") or "build/engram"
local TINY = "--domains prose,c --bytes 16384 --ctx 32 --dim 16 --layers 2 --heads 2 --steps 4 --batch 4 " ..
  "--test-windows 4 --probe 4 --quiet"

function TestLmRecipes.test_help_names_the_options()
  for _, r in ipairs { "lm_forgetting", "lm_lora" } do
    local out, _, code = helpers.run(BIN, "recipes/" .. r .. ".lua --help")
    lu.assertEquals(code, 0)
    for _, o in ipairs { "--steps", "--dim", "--bytes", "--out", "--report", "--probe" } do
      lu.assertStrContains(out, o)
    end
  end
end

function TestLmRecipes.test_tiny_runs_print_perplexity_entropy_drift_and_write_the_report()
  local p, h = helpers.tmpname(".json"), helpers.tmpname(".html")
  local out, err, code = helpers.run(BIN, "recipes/lm_forgetting.lua " .. TINY .. " --out " .. helpers.q(p) ..
    " --report " .. helpers.q(h))
  lu.assertEquals(code, 0, err)
  for _, s in ipairs { "held-out perplexity", "prose: perplexity", "attention entropy", "block drift",
    "seed article: attention entropy rises 2-3x", "more than 300%" } do
    lu.assertStrContains(out, s)
  end
  local doc = engram.results.load(p)[1]
  lu.assertEquals(#doc.extra.attention_entropy.after, 2)
  lu.assertEquals(#doc.extra.block_drift.after[2], 2)
  local f = assert(io.open(h))
  lu.assertStrContains(f:read("a"), "Attention entropy and block drift")
  f:close()
  out, err, code = helpers.run(BIN, "recipes/lm_lora.lua " .. TINY .. " --rank 2 --out " .. helpers.q(p))
  lu.assertEquals(code, 0, err)
  lu.assertStrContains(out, "bit-identical")
  lu.assertStrContains(out, "trainable share per domain")
  doc = engram.results.load(p)[1]
  lu.assertEquals(doc.perplexity[2][1], doc.perplexity[1][1])
  os.remove(p)
  os.remove(h)
  local _, e2, c2 = helpers.run(BIN, "recipes/lm_lora.lua " .. TINY .. " --rank 40")
  lu.assertNotEquals(c2, 0)
  lu.assertStrContains(e2, "--rank 40 is larger than the projections' width 16")
end

local TINY_NOPROBE = "--domains prose,c --bytes 16384 --ctx 32 --dim 16 --layers 2 --heads 2 --steps 4 " ..
  "--batch 4 --test-windows 4 --quiet"

function TestLmRecipes.test_replay_and_mix_recipes_print_their_comparison()
  local p = helpers.tmpname(".json")
  local out, err, code = helpers.run(BIN, "recipes/lm_replay.lua " .. TINY_NOPROBE .. " --out " ..
    helpers.q(p))
  lu.assertEquals(code, 0, err)
  for _, s in ipairs { "gpt-naive", "gpt-replay", "gpt-self-replay", "won back", "self-generated pseudo-text" } do
    lu.assertStrContains(out, s)
  end
  local docs = engram.results.load(p)
  lu.assertEquals(#docs, 3)
  lu.assertEquals(docs[3].strategies[1].name, "self_replay")
  lu.assertTrue(docs[3].extra.memory_bytes > 0)
  out, err, code = helpers.run(BIN, "recipes/lm_mix.lua " .. TINY_NOPROBE ..
    " --fisher-samples 4 --only replay,mix --out " .. helpers.q(p))
  lu.assertEquals(code, 0, err)
  lu.assertStrContains(out, "gpt-replay+ewc")
  docs = engram.results.load(p)
  lu.assertEquals(#docs, 2)
  lu.assertEquals(docs[2].strategies[2].name, "ewc")
  os.remove(p)
  local _, e2, c2 = helpers.run(BIN, "recipes/lm_mix.lua " .. TINY_NOPROBE .. " --lambda -1")
  lu.assertNotEquals(c2, 0)
  lu.assertStrContains(e2, "--lambda must be a number >= 0")
  _, e2, c2 = helpers.run(BIN, "recipes/lm_replay.lua " .. TINY_NOPROBE .. " --share 0")
  lu.assertNotEquals(c2, 0)
  lu.assertStrContains(e2, "--share must be a number in (0, 1]")
end
