-- engram.strategies.defaults: EWC, online EWC, SI, MAS and LwF take the
-- strength for the scenario's kind when none is given; a given option wins;
-- an unknown kind keeps the constructor default; describe() (and so the
-- results document) reports the value used. The class-IL note is printed
-- once per run for a regulariser alone, never in quiet mode or with replay.
local lu = require("luaunit")
local engram = require("engram")
local helpers = require("helpers")
local S = engram.strategies
local D = S.defaults

-- 4 blobs in 8-D, 2 tasks of 2 classes, in the given kind
local function blobs_scenario(kind)
  local all = engram.data.blobs { n = 400, classes = 4, dim = 8, std = 1.0, seed = 3 }
  local train, test = all:split(0.8, 1)
  return engram.scenarios.split(train, test, { tasks = 2, scenario = kind })
end

local function run(strategies, kind, lopts)
  local o = { iterations = 2, batch = 32, quiet = true, drift_layer = false }
  for k, v in pairs(lopts or {}) do o[k] = v end
  local scen = blobs_scenario(kind)
  local L = engram.learner(engram.nn.mlp { 8, 16, scen.num_classes }:build { seed = 1 }, o)
  for _, s in ipairs(strategies) do L:use(s) end
  return L:run(scen), L
end

-- strategy name, constructor, strength option, constructor default
local CASES = {
  { "ewc", function(o) return S.ewc(o) end, "lambda", 1000 },
  { "online-ewc", function(o) o = o or {}; o.online = true; return S.ewc(o) end, "lambda", 1000 },
  { "si", function(o) return S.si(o) end, "c", 1 },
  { "mas", function(o) return S.mas(o) end, "lambda", 1 },
  { "lwf", function(o) return S.lwf(o) end, "alpha", 1 },
}

TestDefaults = {}

function TestDefaults.test_every_regulariser_has_a_positive_default_per_kind()
  for _, c in ipairs(CASES) do
    for _, kind in ipairs { "domain", "task", "class" } do
      local v = D[c[1]][kind][c[3]]
      lu.assertTrue(type(v) == "number" and v > 0, c[1] .. " " .. kind)
    end
  end
  local names = {}
  for k in pairs(D) do names[#names + 1] = k end
  table.sort(names)
  lu.assertEquals(names, { "ewc", "lwf", "mas", "online-ewc", "si" })
end

function TestDefaults.test_the_default_for_the_scenario_kind_applies_when_no_strength_is_given()
  for _, kind in ipairs { "class", "task", "domain" } do
    for _, c in ipairs(CASES) do
      local s = c[2]()
      local doc = run({ s }, kind)
      local want = D[c[1]][kind][c[3]]
      lu.assertEquals(s:describe().options[c[3]], want, c[1] .. " in " .. kind .. "-IL")
      lu.assertEquals(s:describe().options.default_for, kind .. "-IL")
      lu.assertEquals(doc.strategies[1].options[c[3]], want)
      if c[1] ~= "lwf" then lu.assertEquals(s._strength, want) else lu.assertEquals(s._alpha, want) end
    end
  end
end

function TestDefaults.test_a_given_strength_wins_over_the_default()
  for _, c in ipairs(CASES) do
    local s = c[2] { [c[3]] = 0.25 }
    local doc = run({ s }, "task")
    lu.assertEquals(s:describe().options[c[3]], 0.25, c[1])
    lu.assertNil(s:describe().options.default_for)
    lu.assertEquals(doc.strategies[1].options[c[3]], 0.25)
  end
end

function TestDefaults.test_an_unknown_kind_keeps_the_constructor_default()
  for _, c in ipairs(CASES) do
    local s = c[2]()
    lu.assertEquals(s:describe().options[c[3]], c[4], c[1] .. " before any run")
    s:before_run { scenario = { kind = "stream" } }
    lu.assertEquals(s:describe().options[c[3]], c[4], c[1] .. " after an unknown kind")
    lu.assertNil(s:describe().options.default_for)
  end
  lu.assertEquals(D.strength("ewc", nil, "lambda", 7), 7)
  lu.assertEquals(D.strength("replay", "class", "memory", 5), 5)
  lu.assertEquals({ D.strength("ewc", "task", "lambda", 7) }, { D.ewc.task.lambda, "task" })
end

function TestDefaults.test_a_strategy_reused_in_another_kind_takes_that_kinds_default()
  local s = S.si()
  run({ s }, "class")
  lu.assertEquals(s:describe().options.c, D.si.class.c)
  run({ s }, "domain")
  lu.assertEquals(s:describe().options.c, D.si.domain.c)
end

-- ------------------------------------------------------------ class-IL note

local function note_count(strategies, kind, lopts)
  -- the learner's progress reporter writes to io.stderr as it is when the run starts
  local saved, sink = io.stderr, helpers.sink()
  io.stderr = sink -- luacheck: ignore 122
  local ok, err = pcall(run, strategies, kind, lopts)
  io.stderr = saved -- luacheck: ignore 122
  if not ok then error(err, 0) end
  local n = 0
  for _ in sink.text:gmatch("note: in class%-IL") do n = n + 1 end
  return n, sink.text
end

function TestDefaults.test_the_class_il_note_is_printed_once_for_a_regulariser_alone()
  for _, c in ipairs(CASES) do
    local n, text = note_count({ c[2]() }, "class", { quiet = false })
    lu.assertEquals(n, 1, c[1] .. ": " .. text)
  end
  local n, text = note_count({ S.ewc { lambda = 10 } }, "class", { quiet = false })
  lu.assertEquals(n, 1)
  lu.assertStrContains(text, D.NOTE .. "\n")
  lu.assertStrContains(text, "replay")
end

function TestDefaults.test_the_class_il_note_sees_through_schedules()
  local n = note_count({ engram.schedule { { tasks = "2-", use = { S.si() } } } }, "class", { quiet = false })
  lu.assertEquals(n, 1)
end

function TestDefaults.test_no_class_il_note_when_quiet_with_replay_outside_class_il_or_without_a_regulariser()
  lu.assertEquals(note_count({ S.ewc() }, "class", { quiet = true }), 0)
  lu.assertEquals(note_count({ S.replay { memory = 50 }, S.ewc() }, "class", { quiet = false }), 0)
  lu.assertEquals(note_count({ engram.schedule { { tasks = "2-", use = { S.replay { memory = 50 } } } }, S.lwf() },
    "class", { quiet = false }), 0)
  lu.assertEquals(note_count({ S.ewc() }, "task", { quiet = false }), 0)
  lu.assertEquals(note_count({ S.ewc() }, "domain", { quiet = false }), 0)
  lu.assertEquals(note_count({ S.naive() }, "class", { quiet = false }), 0)
end
