--- engram.strategies.defaults: the regularisation strengths that work, per
-- scenario kind. They differ by orders of magnitude between domain-, task-
-- and class-IL, so one constructor default cannot serve all three.
--
--   defaults[strategy][kind] = {option = value}
--   engram.strategies.defaults.ewc.domain.lambda        --> EWC's λ in domain-IL
--
-- EWC, online EWC, SI, MAS and LwF take the value for ctx.scenario.kind in
-- their before_run when the user gave no strength; an option given wins, and
-- the constructor default stays for a scenario of unknown kind. describe()
-- reports the value used (and `default_for = "<kind>-IL"` when it came from
-- here).
--
-- class_il_note(ctx, out), called by the learner as a run starts, says once
-- that these methods alone do not solve class-IL when a class-IL run uses one
-- without replay (not in quiet mode).
--
-- The values were chosen on validation splits, never on the test sets:
-- recipes/choose_defaults.lua (mlp{784, 400, 400, 10}, Fashion-MNIST, 5 tasks,
-- 2 epochs, seed 1; domain = Permuted, task/class = Split; the best average
-- validation accuracy after the last task). docs/defaults.md records the grid,
-- every validation score and the command.
local defaults = {
  ewc = {
    domain = { lambda = 100 },   -- validation ACC 81.2%
    task = { lambda = 1000 },    -- 98.9%
    class = { lambda = 10000 },  -- 27.7% (class-IL: near chance whatever λ)
  },
  ["online-ewc"] = {
    domain = { lambda = 10 },    -- 81.5%
    task = { lambda = 100000 },  -- 98.8%
    class = { lambda = 100000 }, -- 23.3%
  },
  si = {
    domain = { c = 1 },          -- 82.8%
    task = { c = 1000 },         -- 99.0%
    class = { c = 10000 },       -- 29.1%
  },
  mas = {
    domain = { lambda = 0.01 },  -- 82.0%
    task = { lambda = 100 },     -- 98.9%
    class = { lambda = 0.1 },    -- 20.3%
  },
  lwf = {
    domain = { alpha = 0.5 },    -- 64.3% (below naive fine-tuning at every α tried)
    task = { alpha = 1 },        -- 99.1%
    class = { alpha = 0.1 },     -- 20.0%
  },
}

-- Functions live behind the metatable: pairs(defaults) lists strategies only.
local fn = {}

--- The strength `key` of strategy `name` for scenario kind `kind` ("domain",
-- "task" or "class"): the value and the kind, or `fallback` and nil when
-- there is no default for them.
function fn.strength(name, kind, key, fallback)
  local per = rawget(defaults, name)
  local d = per and kind and per[kind]
  if d and d[key] ~= nil then return d[key], kind end
  return fallback, nil
end

-- Regularisation strategies the class-IL note is about, and the strategies
-- that keep or revisit old data (any of them silences the note).
local REGULARISERS = { ewc = true, ["online-ewc"] = true, si = true, mas = true, lwf = true }
local REPLAY_FAMILY = { replay = true, cumulative = true, joint = true, agem = true, ["a-gem"] = true, der = true,
  ["der++"] = true, dgr = true, ["generative-replay"] = true, generative_replay = true, bir = true, icarl = true }

-- The names of the strategies in list, looking into schedules' phases.
local function names_in(list, out)
  for _, s in ipairs(list) do
    if type(s) == "table" then
      if type(s.phases) == "table" then
        for _, ph in ipairs(s.phases) do names_in(ph.use or {}, out) end
      end
      if type(s.name) == "string" then out[s.name] = true end
    end
  end
  return out
end

fn.NOTE = "note: in class-IL, EWC, SI, MAS and LwF alone score near plain fine-tuning (van de Ven & Tolias 2019);" ..
  " add replay (engram.strategies.replay) to keep old classes"

--- Prints fn.NOTE once through `out` (a progress reporter, whose quiet mode
-- silences it, or a file) when the run is class-IL and uses a regularisation
-- strategy without any replay-family one. Returns true when it printed.
function fn.class_il_note(ctx, out)
  if ctx.opts and ctx.opts.quiet then return false end
  if not (ctx.scenario and ctx.scenario.kind == "class") then return false end
  local names = names_in(ctx.learner and ctx.learner.strategies or {}, {})
  local reg = false
  for n in pairs(names) do
    if REPLAY_FAMILY[n] then return false end
    if REGULARISERS[n] then reg = true end
  end
  if not reg then return false end
  out = out or io.stderr
  if type(out.message) == "function" then out:message(fn.NOTE) else out:write(fn.NOTE, "\n") end
  return true
end

return setmetatable(defaults, { __index = fn })
