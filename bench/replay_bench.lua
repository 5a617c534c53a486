-- replay_bench.lua — what experience replay costs beside naive fine-tuning,
-- in time and in memory: Split Fashion-MNIST class-IL (5 tasks of 2
-- classes), mlp{784, 400, 400, 10}, Adam 1e-3, batch 128, evaluation after
-- every task included, each run in a process of its own so that its peak
-- resident memory (VmHWM) is its own. Targets (issue 12): replay's time at
-- most 1.5x naive's; replay's peak RSS at most (naive's + the memory's
-- reported bytes) + 10%.
--
--   build/engram bench/replay_bench.lua [--epochs 1] [--iterations 0] [--threads 2]
--       [--rounds 2] [--only naive,replay,replay-uint8]
--
-- The runs alternate (naive, replay, replay-uint8, naive, ...) for --rounds
-- rounds, and each keeps its best time and its largest peak RSS: the machine
-- is shared, and a slow spell should not land on one side only. Takes about
-- 10 s with one epoch per task and two rounds (2 cores). The child processes
-- are this script with --child NAME; ENGRAM_BIN names the command (default
-- build/engram).
local engram = require("engram")
local S = engram.strategies

local opts = engram.options.parse(arg or {}, {
  name = "replay_bench",
  description = "Time and peak RSS of experience replay beside naive fine-tuning (separate processes).",
  defaults = { batch = 128, lr = 0.001, threads = 2, quiet = true },
  options = {
    { "iterations", 0, "steps per task (0: --epochs instead)" },
    { "memory", 1000, "replay memory, samples" },
    { "rounds", 2, "alternating rounds of every run; the best time of each, the largest RSS" },
    { "child", "", "internal: run this one configuration and print its figures" },
  },
  runs = { "naive", "replay", "replay-uint8" },
})

local make = {
  naive = function() return S.naive() end,
  replay = function(o) return S.replay { memory = o.memory } end,
  ["replay-uint8"] = function(o) return S.replay { memory = o.memory, storage = "uint8" } end,
}

if opts.child ~= "" then
  engram.core.set_threads(math.tointeger(opts.threads))
  local train, test = engram.data.fashion_mnist { normalize = true }
  local scen = engram.scenarios.split(train, test, { tasks = 5, scenario = "class", seed = opts.seed })
  local model = engram.nn.mlp { 784, 400, 400, 10 }:build { seed = opts.seed }
  local it = math.tointeger(opts.iterations)
  local L = engram.learner(model, { epochs = opts.epochs, iterations = it > 0 and it or nil,
    batch = opts.batch, lr = opts.lr, quiet = true, drift_layer = false, name = opts.child, optimizer = "adam" })
  local s = make[opts.child](opts)
  L:use(s)
  local t = engram.clock()
  local doc = L:run(scen)
  print(string.format("child %s total %.3f train %.3f acc %.4f rss %.1f bytes %d", opts.child, engram.clock() - t,
    doc.train_seconds, doc.avg_acc, engram.results.peak_rss_mb(), s.state_bytes and s:state_bytes() or 0))
  return
end

local bin = os.getenv("ENGRAM_BIN") or "build/engram"
local function child(name)
  local cmd = string.format("%s bench/replay_bench.lua --child %s --epochs %d --iterations %d --threads %d " ..
    "--memory %d --seed %d", bin, name, opts.epochs, opts.iterations, opts.threads, opts.memory, opts.seed)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  local total, train, acc, rss, bytes = out:match("total (%S+) train (%S+) acc (%S+) rss (%S+) bytes (%d+)")
  if not total then error("replay_bench: the run '" .. name .. "' printed no figures:\n" .. out, 0) end
  return { total = tonumber(total), train = tonumber(train), acc = tonumber(acc), rss = tonumber(rss),
    bytes = tonumber(bytes) }
end

print(string.format("replay_bench: Split Fashion-MNIST class-IL, 5 tasks, %s per task, batch %d, %d thread(s)",
  opts.iterations > 0 and (opts.iterations .. " steps") or (opts.epochs .. " epoch(s)"), opts.batch, opts.threads))
local names, best = {}, {}
for _, name in ipairs { "naive", "replay", "replay-uint8" } do
  if opts.selected(name) then names[#names + 1] = name end
end
for _ = 1, math.max(1, math.tointeger(opts.rounds)) do
  for _, name in ipairs(names) do
    local r, b = child(name), best[name]
    if not b then
      best[name] = r
    else
      if r.total < b.total then b.total, b.train = r.total, r.train end
      b.rss = math.max(b.rss, r.rss)
    end
  end
end
local base = best.naive
for _, name in ipairs(names) do
  local r = best[name]
  local line = string.format("%-13s %7.2f s (train %.2f s)  ACC %5.1f%%  peak RSS %6.1f MB  memory %8d bytes", name,
    r.total, r.train, 100 * r.acc, r.rss, r.bytes)
  if name ~= "naive" and base then
    local bound = (base.rss + r.bytes / 2 ^ 20) * 1.10
    line = line .. string.format("  time %.2fx naive [<= 1.5x: %s]  RSS +%.1f MB [<= %.1f MB: %s]",
      r.total / base.total, r.total / base.total <= 1.5 and "met" or "MISSED", r.rss - base.rss, bound,
      r.rss <= bound and "met" or "MISSED")
  end
  print(line)
end
