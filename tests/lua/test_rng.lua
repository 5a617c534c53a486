-- engram.Generator and the default generator: seeding, determinism, ranges.
-- Permutations are 1-based index tensors (floats holding exact integers).
local lu = require("luaunit")
local engram = require("engram")

local function draws(g, n, what)
  local out = {}
  for i = 1, n do out[i] = g[what](g) end
  return out
end

TestRng = {}

function TestRng.test_same_seed_gives_the_same_numbers()
  local a, b = engram.generator(123), engram.generator(123)
  lu.assertEquals(draws(a, 20, "uniform"), draws(b, 20, "uniform"))
  lu.assertEquals(draws(a, 21, "normal"), draws(b, 21, "normal"))
end

function TestRng.test_different_seeds_give_different_numbers()
  lu.assertNotEquals(draws(engram.generator(1), 5, "uniform"), draws(engram.generator(2), 5, "uniform"))
end

function TestRng.test_reseeding_a_generator_restarts_its_sequence()
  local g = engram.generator(9)
  local first = draws(g, 5, "normal")
  lu.assertIs(g:seed(9), g)
  lu.assertEquals(draws(g, 5, "normal"), first)
  lu.assertEquals(g:seed(), 9)
end

-- An independent xoshiro256** seeded through splitmix64, in Lua's wrapping
-- 64-bit integers: the sequence is fixed by the algorithm, not the platform.
local function reference_uniforms(seed, n)
  local x = seed
  local function splitmix()
    x = x + 0x9e3779b97f4a7c15
    local z = x
    z = (z ~ (z >> 30)) * 0xbf58476d1ce4e5b9
    z = (z ~ (z >> 27)) * 0x94d049bb133111eb
    return z ~ (z >> 31)
  end
  local s = {splitmix(), splitmix(), splitmix(), splitmix()}
  local function rotl(v, k) return (v << k) | (v >> (64 - k)) end
  local out = {}
  for i = 1, n do
    local result = rotl(s[2] * 5, 7) * 9
    local t = s[2] << 17
    s[3] = s[3] ~ s[1]
    s[4] = s[4] ~ s[2]
    s[2] = s[2] ~ s[3]
    s[1] = s[1] ~ s[4]
    s[3] = s[3] ~ t
    s[4] = rotl(s[4], 45)
    out[i] = (result >> 11) * 0x1.0p-53
  end
  return out
end

function TestRng.test_uniform_matches_an_independent_xoshiro256starstar()
  for _, seed in ipairs({0, 42, 123456789}) do
    lu.assertEquals(draws(engram.generator(seed), 10, "uniform"), reference_uniforms(seed, 10))
  end
end

function TestRng.test_engram_seed_resets_the_default_generator()
  engram.seed(5)
  local a = engram.randn(3, 3)
  local r1 = engram.rand(4)
  engram.seed(5)
  lu.assertTrue(engram.randn(3, 3):equal(a))
  lu.assertTrue(engram.rand(4):equal(r1))
  engram.seed(6)
  lu.assertFalse(engram.randn(3, 3):equal(a))
end

function TestRng.test_default_generator_is_a_generator_in_the_registry()
  local d = engram.default_generator()
  lu.assertEquals(getmetatable(d).__name, "engram.Generator")
  lu.assertIs(engram.default_generator(), d)
  engram.seed(77)
  lu.assertEquals(d:seed(), 77)
end

function TestRng.test_explicit_generator_does_not_touch_the_default()
  engram.seed(3)
  local expected = engram.rand(5)
  engram.seed(3)
  local g = engram.generator(100)
  engram.randn(10, g)
  g:uniform()
  lu.assertTrue(engram.rand(5):equal(expected))
end

function TestRng.test_generator_without_seed_follows_engram_seed()
  engram.seed(11)
  local a = engram.generator():uniform()
  engram.seed(11)
  lu.assertEquals(engram.generator():uniform(), a)
end

function TestRng.test_uniform_and_normal_take_ranges()
  local g = engram.generator(1)
  for _ = 1, 200 do
    local x = g:uniform(-2, 3)
    lu.assertTrue(x >= -2 and x < 3)
  end
  local s = 0
  for _ = 1, 2000 do s = s + g:normal(10, 0.1) end
  lu.assertAlmostEquals(s / 2000, 10, 0.02)
  lu.assertErrorMsgContains("normal: standard deviation", g.normal, g, 0, -1)
end

function TestRng.test_randint_covers_one_to_n_and_nothing_else()
  local g = engram.generator(4)
  local seen = {}
  for _ = 1, 600 do
    local k = g:randint(6)
    lu.assertEquals(math.type(k), "integer")
    lu.assertTrue(k >= 1 and k <= 6)
    seen[k] = true
  end
  for k = 1, 6 do lu.assertTrue(seen[k], "never drew " .. k) end
  for _ = 1, 50 do
    local k = g:randint(-2, 2)
    lu.assertTrue(k >= -2 and k <= 2)
  end
  lu.assertEquals(g:randint(1), 1)
  lu.assertErrorMsgContains("randint: empty range 1..0", g.randint, g, 0)
end

function TestRng.test_permutation_is_a_one_based_index_tensor()
  local g = engram.generator(8)
  local p = g:permutation(10)
  lu.assertEquals(p:shape(), {10})
  local t = p:totable()
  table.sort(t)
  for i = 1, 10 do lu.assertEquals(t[i], i) end
  -- usable directly as a minibatch index
  local data = engram.arange(10):view(10, 1)
  lu.assertTrue(data:index(p):view(10):equal(p - 1))
  lu.assertTrue(engram.generator(8):permutation(10):equal(p))
  lu.assertEquals(g:permutation(0):numel(), 0)
end

function TestRng.test_randperm_uses_the_default_or_a_given_generator()
  lu.assertTrue(engram.randperm(7, engram.generator(2)):equal(engram.generator(2):permutation(7)))
  engram.seed(1)
  local a = engram.randperm(5)
  engram.seed(1)
  lu.assertTrue(engram.randperm(5):equal(a))
end

function TestRng.test_seed_must_be_an_integer()
  lu.assertErrorMsgContains("seed must be an integer", engram.seed, 1.5)
  lu.assertErrorMsgContains("integer seed expected", engram.generator, "x")
end

function TestRng.test_random_tensors_with_the_same_generator_seed_match()
  local a = engram.rand(3, 4, engram.generator(21))
  local b = engram.rand({3, 4}, engram.generator(21))
  lu.assertTrue(a:equal(b))
  lu.assertErrorMsgContains("randn: size #2 is a table", function() return engram.randn(2, {}) end)
end

function TestRng.test_tostring_shows_the_seed()
  lu.assertEquals(tostring(engram.generator(5)), "engram.Generator (seed 5)")
end

function TestRng.test_a_restored_state_continues_the_same_sequence()
  local g = engram.generator(31)
  draws(g, 3, "uniform")
  g:normal() -- a cached spare normal is part of the state
  local s = g:state()
  lu.assertEquals(type(s), "string")
  local want = { draws(g, 5, "normal"), draws(g, 5, "uniform"), g:permutation(10):totable() }
  local h = engram.generator(1)
  lu.assertIs(h:set_state(s), h)
  lu.assertEquals({ draws(h, 5, "normal"), draws(h, 5, "uniform"), h:permutation(10):totable() }, want)
  lu.assertEquals(h:state(), g:state())
end

function TestRng.test_set_state_rejects_a_foreign_string_and_keeps_the_generator()
  local g = engram.generator(4)
  local before = g:state()
  lu.assertErrorMsgContains("set_state: rng state: not a generator state", g.set_state, g, "hello")
  lu.assertErrorMsgContains("word 2", g.set_state, g, (before:gsub("^(xoshiro256ss:%x+:)%x", "%1z")))
  lu.assertEquals(g:state(), before)
end
