--- engram.lm: the seed article's measurements of a transformer language
-- model under continual learning (docs/lm.md): the entropy of every layer's
-- and head's attention and the representation drift of every block's output,
-- on a fixed probe set of windows from the first domain.
--
--   local lm = engram.lm
--   local x = lm.probe_set(scenario.tasks[1].test, 32)     -- ids [32, T]
--   local e = lm.attention_entropy(model, x)               -- e.entropy[layer][head] (nats)
--   local h1 = lm.block_outputs(model, x)                  -- a copy of every block's output
--   ... train ...
--   local d = lm.block_drift(model, x, h1)                 -- d[block], as engram.metrics.drift
--
--   -- or all of it inside a learner run, before training and after every task:
--   L:use(lm.observer { windows = 32 })                     -- results: extra.attention_entropy, extra.block_drift
--
-- Everything runs through whole-tensor calls: the entropies of the attention
-- rows come from one C call per layer (engram.core.nn_attn_entropy over
-- attn.probs [B, H, T, T]) and a matrix product; nothing loops over
-- positions or heads in Lua.
local core = require("engram.core")
local metrics = require("engram.metrics")

local lm = {}

local function modules_named(model, name)
  local walk = require("engram.nn.module").walk
  local out = {}
  walk(model, function(m) if type(m) == "table" and m.__name == name then out[#out + 1] = m end end, "")
  return out
end

--- The model's CausalSelfAttention modules in order (block by block); an
-- error naming the model when it has none.
function lm.attention_modules(model, who)
  who = who or "lm"
  if type(model) ~= "table" or type(model.forward) ~= "function" then
    error(string.format("%s: expected a model, got %s", who, type(model)), 3)
  end
  local found = modules_named(model, "CausalSelfAttention")
  if #found == 0 then
    error(string.format("%s: the model has no attention modules (CausalSelfAttention): attention entropy and " ..
      "block drift need a transformer such as engram.nn.gpt{...}", who), 3)
  end
  return found
end

--- The modules whose outputs block drift compares: the TransformerBlocks in
-- order, or the attention modules of a model without blocks.
function lm.blocks(model, who)
  local attn = lm.attention_modules(model, who)
  local blocks = modules_named(model, "TransformerBlock")
  return #blocks > 0 and blocks or attn
end

--- The paths of the Linear layers inside the model's TransformerBlocks
-- (each block's attention qkv and output projections and its two
-- feed-forward layers, block by block), a selector for model:wrap and
-- engram.strategies.lora{layers = lm.projections(model)}: the output head
-- and the embeddings are left out. An error when the model has no block.
function lm.projections(model)
  local walk = require("engram.nn.module").walk
  local paths = {}
  walk(model, function(m, path)
    if type(m) == "table" and m.__name == "TransformerBlock" then
      walk(m, function(c, sub)
        if type(c) == "table" and c.__name == "Linear" then paths[#paths + 1] = path .. "." .. sub end
      end, "")
    end
  end, "")
  if #paths == 0 then
    error("lm.projections: the model has no TransformerBlock with Linear layers (a GPT: engram.nn.gpt{...})", 2)
  end
  return paths
end

--- The first n windows of a dataset of token windows as ids [n', T]
-- (n' = min(n, #ds)); an error naming the dataset when it is empty or not
-- a dataset of windows.
function lm.probe_set(ds, n, who)
  who = who or "lm.probe_set"
  if not require("engram.data").is_dataset(ds) then
    error(string.format("%s: expected a dataset of token windows, got %s", who, type(ds)), 3)
  end
  if math.type(n) ~= "integer" or n < 1 then
    error(string.format("%s: the number of windows must be a positive integer, got %s", who, tostring(n)), 3)
  end
  if not core._text.window(ds) then
    error(string.format("%s: the probe set must be token windows (engram.text.windows), got another dataset", who), 3)
  end
  if #ds == 0 then
    error(string.format("%s: the dataset holds no windows (an empty domain or held-out part?)", who), 3)
  end
  return (ds:range(1, math.min(n, #ds), nil, nil, true))
end

local function check_ids(x, who)
  if not core.istensor(x) or x:dim() ~= 2 or x:size(1) < 1 then
    error(string.format("%s: the probe set must be ids [windows, T], got %s", who,
      core.istensor(x) and ("[" .. table.concat(x:size(), "x") .. "]") or type(x)), 3)
  end
end

-- Runs f(chunk) over the probe set in chunks of `batch` windows with the
-- model in evaluate mode (dropout off), and back in the mode it was in.
local function over_chunks(model, x, batch, f)
  local was = model.training
  if model.evaluate then model:evaluate() end
  local ok, err = pcall(function()
    local n = x:size(1)
    for i = 1, n, batch do
      local c = math.min(batch, n - i + 1)
      local xi = (i == 1 and c == n) and x or x:narrow(1, i, c):clone()
      model:forward(xi)
      f(xi)
    end
  end)
  if was ~= false and model.train then model:train() end
  if not ok then error(err, 0) end
end

local function posint_opt(o, k, min, who)
  local v = o[k]
  if math.type(v) ~= "integer" or v < min then
    error(string.format("%s: %s must be an integer >= %d, got %s", who, k, min, tostring(v)), 4)
  end
  return v
end

local function check_opts(opts, defaults, who)
  opts = opts or {}
  if type(opts) ~= "table" then error(who .. ": options must be a table, got " .. type(opts), 3) end
  local o, names = {}, {}
  for k in pairs(defaults) do names[#names + 1] = k end
  table.sort(names)
  for k in pairs(opts) do
    if defaults[k] == nil then
      error(string.format("%s: unknown option '%s' (known: %s)", who, tostring(k), table.concat(names, ", ")), 3)
    end
  end
  for k, v in pairs(defaults) do o[k] = opts[k] == nil and v or opts[k] end
  return o
end

--- Attention entropy of the model on ids x [N, T] (docs/lm.md):
-- {entropy = {[layer] = {[head] = nats}}, normalized = {[layer] = {[head] =
-- share of log(keys)}}, layer_entropy = {[layer] = mean over heads},
-- layer_normalized = {...}, rows = query positions counted per window,
-- windows = N, T = T, min_keys = ...}. Query position i (1-based) attends to
-- i keys; a row's entropy is -sum_j p_j log p_j over them, its normalised
-- entropy that divided by log(i). Both are averaged over the N windows and
-- the positions with at least min_keys keys (opts.min_keys [2]: the first
-- row, with one key, always has entropy 0 and no normalised value).
-- opts.batch [32]: windows per forward.
function lm.attention_entropy(model, x, opts)
  local who = "lm.attention_entropy"
  local o = check_opts(opts, { min_keys = 2, batch = 32 }, who)
  local attn = lm.attention_modules(model, who)
  check_ids(x, who)
  posint_opt(o, "min_keys", 2, who)
  posint_opt(o, "batch", 1, who)
  local N, T = x:size(1), x:size(2)
  if T < o.min_keys then
    error(string.format("%s: windows of %d tokens have no query position with min_keys = %d keys", who, T,
      o.min_keys), 2)
  end
  local sums, buf = {}, core.nn_buffer()
  over_chunks(model, x, o.batch, function()
    for l, a in ipairs(attn) do
      local e = core.nn_attn_entropy(buf, a.probs) -- [H, T]: each row's entropy summed over the chunk
      sums[l] = sums[l] and sums[l]:add_(e) or e:clone()
    end
  end)
  -- weights over query positions: the mean over windows and counted rows, and
  -- the same divided by log(keys) for the normalised entropy
  local rows = T - o.min_keys + 1
  local w, wn = core.zeros(T, 1), core.zeros(T, 1)
  for i = o.min_keys, T do
    w:set(i, 1, 1 / (N * rows))
    wn:set(i, 1, 1 / (N * rows * math.log(i)))
  end
  local r = { entropy = {}, normalized = {}, layer_entropy = {}, layer_normalized = {}, rows = rows, windows = N,
    T = T, min_keys = o.min_keys }
  for l, s in ipairs(sums) do
    local e, n = s:mm(w):view(-1):totable(), s:mm(wn):view(-1):totable()
    local se, sn = 0, 0
    for h = 1, #e do se, sn = se + e[h], sn + n[h] end
    r.entropy[l], r.normalized[l] = e, n
    r.layer_entropy[l], r.layer_normalized[l] = se / #e, sn / #n
  end
  return r
end

-- A block's output [B, T, D] as one row per token position.
local function token_rows(h)
  if h:dim() == 3 then return h:view(-1, h:size(3)) end
  return h
end

--- Every block's output on ids x, copied: {[block] = tensor [N*T, D]} (one
-- row per token position), the reference block_drift compares with.
function lm.block_outputs(model, x, opts)
  local who = "lm.block_outputs"
  local o = check_opts(opts, { batch = 32 }, who)
  local blocks = lm.blocks(model, who)
  check_ids(x, who)
  posint_opt(o, "batch", 1, who)
  local parts = {}
  over_chunks(model, x, o.batch, function()
    for b, m in ipairs(blocks) do
      parts[b] = parts[b] or {}
      table.insert(parts[b], token_rows(m.output):clone())
    end
  end)
  local out = {}
  for b, list in ipairs(parts) do out[b] = #list == 1 and list[1] or core.cat(list, 1) end
  return out
end

--- The drift of every block's output on ids x against `before`
-- (lm.block_outputs of the same x): {[block] = engram.metrics.drift over the
-- token positions}, i.e. the mean Euclidean distance of a position's output
-- now from then, over the mean norm then.
function lm.block_drift(model, x, before, opts)
  local who = "lm.block_drift"
  if type(before) ~= "table" or not core.istensor(before[1]) then
    error(who .. ": expected the reference outputs (lm.block_outputs) as argument 3", 2)
  end
  local now = lm.block_outputs(model, x, opts)
  if #now ~= #before then
    error(string.format("%s: the model has %d blocks, the reference %d", who, #now, #before), 2)
  end
  local d = {}
  for b = 1, #now do d[b] = lm.drift(now[b], before[b], who) end
  return d
end

--- engram.metrics.drift between two activations (metrics.activation_drift:
-- [B, T, D] or [B*T, D], one sample per token position); an error when it
-- is undefined (a reference of zero norm).
function lm.drift(now, before, who)
  who = who or "lm.drift"
  if not core.istensor(now) or not core.istensor(before) or now:numel() ~= before:numel() then
    error(who .. ": expected two activations of the same shape", 2)
  end
  local v, why = metrics.activation_drift(token_rows(now), token_rows(before))
  if v == nil then error(who .. ": " .. tostring(why), 2) end
  return v
end

-- ------------------------------------------------------------- observer

local Observer = {}
Observer.__index = Observer

local DEFINITION = "attention entropy: -sum_j p_j log p_j (nats) of each attention row over its keys j <= i, " ..
  "averaged over the probe windows and the query positions i with at least min_keys keys; normalized: each " ..
  "row's entropy over log(number of keys) before averaging (docs/lm.md)"

--- A strategy-like observer for learner:use: on a probe set of the first
-- task's held-out windows (its validation windows with eval_on = "val"), the
-- attention entropy before training (before_run) and after every task, and
-- every block's output drift after every task against the end of task 1.
-- Measured in after_eval of task 1, i.e. with the model as it is evaluated
-- on the first domain (a per-task LoRA set or head of task 1 active).
-- Fills ctx.extra.attention_entropy and ctx.extra.block_drift (the results'
-- extra, docs/results-schema.md). opts: windows [32], min_keys [2], batch
-- [32] (windows per forward), drift [true], entropy [true].
function lm.observer(opts)
  local who = "lm.observer"
  local o = check_opts(opts, { windows = 32, min_keys = 2, batch = 32, drift = true, entropy = true }, who)
  posint_opt(o, "windows", 1, who)
  posint_opt(o, "min_keys", 2, who)
  posint_opt(o, "batch", 1, who)
  if not o.drift and not o.entropy then error(who .. ": drift and entropy are both off: nothing to measure", 2) end
  return setmetatable({ name = "lm_probe", o = o, options = { windows = o.windows, min_keys = o.min_keys,
    drift = o.drift, entropy = o.entropy } }, Observer)
end

function Observer:before_run(ctx)
  local o, model = self.o, ctx.model
  local ok, err = pcall(lm.attention_modules, model, "lm.observer")
  if not ok then error(err, 0) end
  local task = ctx.tasks[1]
  local set = ctx.opts.eval_on == "val" and task.val or task.test
  ok, err = pcall(lm.probe_set, set, o.windows, "lm.observer")
  if not ok then error(tostring(err):gsub("lm.observer: ", "lm.observer: task 1 ('" .. tostring(task.name) ..
    "'): ", 1), 0) end
  self.x, self.h1 = err, nil
  local probe = { task = 1, part = ctx.opts.eval_on == "val" and "val" or "test", windows = self.x:size(1),
    T = self.x:size(2), min_keys = o.min_keys }
  if o.entropy then
    local e = lm.attention_entropy(model, self.x, { min_keys = o.min_keys, batch = o.batch })
    ctx.extra.attention_entropy = { definition = DEFINITION, probe = probe, layers = #e.entropy,
      heads = #e.entropy[1], before = { entropy = e.entropy, normalized = e.normalized }, after = {} }
  end
  if o.drift then
    ctx.extra.block_drift = { probe = probe, blocks = #lm.blocks(model), reference = "after task 1", after = {} }
  end
end

function Observer:after_eval(ctx)
  if ctx.eval_task ~= 1 or not self.x then return end
  local o, model, t = self.o, ctx.model, ctx.t
  if o.entropy and ctx.extra.attention_entropy then
    local e = lm.attention_entropy(model, self.x, { min_keys = o.min_keys, batch = o.batch })
    ctx.extra.attention_entropy.after[t] = { entropy = e.entropy, normalized = e.normalized }
  end
  if o.drift and ctx.extra.block_drift then
    if not self.h1 then
      self.h1 = lm.block_outputs(model, self.x, { batch = o.batch })
      local zero = {}
      for b = 1, #self.h1 do zero[b] = 0 end
      ctx.extra.block_drift.after[t] = zero
    else
      ctx.extra.block_drift.after[t] = lm.block_drift(model, self.x, self.h1, { batch = o.batch })
    end
  end
end

function Observer:describe() return { name = self.name, options = self.options } end

-- Checkpoints: the blocks' outputs after task 1 (the figures so far are in
-- ctx.extra, which a checkpoint keeps).
function Observer:state()
  local st = {}
  for b, h in ipairs(self.h1 or {}) do st["block" .. b] = h end
  return st
end

function Observer:load_state(tensors)
  local h1, b = {}, 1
  while tensors["block" .. b] do
    h1[b] = tensors["block" .. b]
    b = b + 1
  end
  self.h1 = #h1 > 0 and h1 or nil
end

--- The mean of an array of numbers (a layer's heads).
function lm.mean(v)
  local s = 0
  for _, x in ipairs(v) do s = s + x end
  return s / #v
end

--- The figures of a results document as text lines: attention entropy per
-- layer (mean over heads) before training and after every task, with the
-- factor after the last task over before and over after task 1, and each
-- block's drift after every task. {} when the document has neither.
function lm.summary_lines(doc)
  local ex = type(doc) == "table" and doc.extra or {}
  local lines = {}
  local ae = type(ex) == "table" and ex.attention_entropy
  local mean = lm.mean
  if type(ae) == "table" and type(ae.before) == "table" then
    local T = #ae.after
    local head = { string.format("%-8s %8s", "layer", "before") }
    for t = 1, T do head[#head + 1] = string.format("%8s", "task " .. t) end
    head[#head + 1] = string.format("%10s %10s", "x before", "x task 1")
    lines[#lines + 1] = string.format("attention entropy (nats, mean over heads; probe: %d windows of %d tokens " ..
      "from task 1, rows with >= %d keys)", ae.probe.windows, ae.probe.T, ae.probe.min_keys)
    lines[#lines + 1] = table.concat(head, " ")
    for l = 1, #ae.before.entropy do
      local b = mean(ae.before.entropy[l])
      local row = { string.format("%-8s %8.3f", tostring(l), b) }
      for t = 1, T do row[#row + 1] = string.format("%8.3f", mean(ae.after[t].entropy[l])) end
      local last = T > 0 and mean(ae.after[T].entropy[l])
      row[#row + 1] = string.format("%10s %10s", last and string.format("%.2fx", last / b) or "n/a",
        last and string.format("%.2fx", last / mean(ae.after[1].entropy[l])) or "n/a")
      lines[#lines + 1] = table.concat(row, " ")
    end
  end
  local bd = type(ex) == "table" and ex.block_drift
  if type(bd) == "table" and type(bd.after) == "table" and #bd.after > 0 then
    lines[#lines + 1] = "block drift (engram.metrics.drift of each block's output per token position against " ..
      "the end of task 1; 1 = 100%)"
    local head = { string.format("%-8s", "block") }
    for t = 1, #bd.after do head[#head + 1] = string.format("%8s", "task " .. t) end
    lines[#lines + 1] = table.concat(head, " ")
    for b = 1, #bd.after[1] do
      local row = { string.format("%-8s", tostring(b)) }
      for t = 1, #bd.after do row[#row + 1] = string.format("%8.3f", bd.after[t][b]) end
      lines[#lines + 1] = table.concat(row, " ")
    end
  end
  return lines
end

-- ------------------------------------------------------- recipes' setup

--- The options every language-model recipe shares (engram.options entries):
-- the domains (default `domains` or prose, c, lua), steps per domain, the
-- GPT's size, the bytes read and the held-out windows, the probe (with
-- probe = true); `extra` entries are appended.
function lm.recipe_options(extra, domains, probe)
  local o = {
    { "domains", domains or { "prose", "c", "lua" }, "domains in training order (prose, c, lua, shell)" },
    { "steps", 250, "training steps per domain" },
    { "ctx", 128, "context (window length in tokens)" },
    { "dim", 128, "model width" },
    { "layers", 4, "transformer blocks" },
    { "heads", 4, "attention heads" },
    { "bytes", 262144, "bytes read per domain" },
    { "test_windows", 64, "held-out windows evaluated per domain (0: all)" },
  }
  if probe then o[#o + 1] = { "probe", 32, "probe windows from the first domain (entropy, drift)" } end
  for _, e in ipairs(extra or {}) do o[#o + 1] = e end
  return o
end

--- What a language-model recipe does after parsing its options (opts from
-- engram.options.parse with lm.recipe_options): sets the threads, checks the
-- integers, reads the scenario. Returns the scenario and a table of the
-- checked integers plus make_model(), a new GPT of the options' size built
-- with the seed. A bad value ends the recipe through opts.fail.
function lm.recipe_setup(opts)
  if opts.threads then require("engram.core").set_threads(math.tointeger(opts.threads)) end
  local n = {}
  for _, name in ipairs { "steps", "ctx", "dim", "layers", "heads", "probe", "batch", "bytes" } do
    local v = opts[name]
    if name == "probe" and v == nil then goto next end
    if type(v) ~= "number" or v ~= math.floor(v) or v < 1 then
      opts.fail(string.format("--%s must be a positive integer, got %s", name:gsub("_", "-"), tostring(v)))
    end
    n[name] = math.tointeger(v)
    ::next::
  end
  local tw = math.tointeger(opts.test_windows)
  if not tw or tw < 0 then opts.fail("--test-windows must be an integer >= 0") end
  local engram = require("engram")
  local ok, scen = pcall(engram.scenarios.text_domains, { domains = opts.domains, ctx = n.ctx, bytes = n.bytes,
    seed = opts.seed, test_samples = tw > 0 and tw or nil, quiet = opts.quiet })
  if not ok then opts.fail(scen) end
  function n.make_model()
    engram.seed(opts.seed)
    local mok, model = pcall(engram.nn.gpt, { vocab = scen.num_classes, ctx = n.ctx, dim = n.dim, heads = n.heads,
      layers = n.layers })
    if not mok then opts.fail(model) end
    return model:build { seed = opts.seed }
  end
  return scen, n
end

--- Runs one language-model run of a recipe: a new GPT (n.make_model), a
-- learner named `name` with the recipe's steps, batch, lr and seed, the
-- strategies of `list` ({strategy, schedule options or nil} each, used in
-- that order), on scen, after a full garbage collection (so that a recipe's
-- runs do not add up their models' memory). The document gets extra.cpu_seconds and
-- extra.memory_bytes (the strategies' state_bytes added up); its tables are
-- printed. Returns the document, the learner and the model.
function lm.recipe_run(opts, n, scen, name, list)
  local engram = require("engram")
  -- the previous run's model and its activations are garbage now: free them
  -- before this one allocates (Lua does not see the C memory they hold)
  collectgarbage("collect")
  local model = n.make_model()
  local L = engram.learner(model, { name = name, iterations = n.steps, batch = n.batch, lr = opts.lr,
    seed = opts.seed, quiet = opts.quiet, log = opts.log or false })
  for _, e in ipairs(list or {}) do L:use(e[1], e[2]) end
  local t0 = os.clock()
  local doc = L:run(scen)
  doc.extra.cpu_seconds = os.clock() - t0
  local bytes = 0
  for _, e in ipairs(list or {}) do
    if e[1].state_bytes then bytes = bytes + e[1]:state_bytes() end
  end
  doc.extra.memory_bytes = bytes
  print()
  require("engram.results").print(doc)
  return doc, L, model
end

-- Forgetting in perplexity: the first domain's rise and the mean rise over the earlier domains.
local function rises(doc)
  local P = doc.perplexity
  local T, sum = #P, 0
  for d = 1, T - 1 do sum = sum + P[T][d] - P[d][d] end
  return P[T][1] - P[1][1], T > 1 and sum / (T - 1) or 0
end

--- The lines of a comparison of language-model runs (documents with
-- perplexity matrices over the same domains): per run the first domain's
-- perplexity right after it and at the end, its rise (forgetting in
-- perplexity) and the mean rise over the earlier domains, each with the
-- share of the `base` run's forgetting it avoids ("won back"), ACC, BWT,
-- extra.memory_bytes and extra.cpu_seconds when present.
function lm.compare_lines(docs, base)
  local results = require("engram.results")
  local b
  for _, d in ipairs(docs) do if d.name == base then b = d end end
  local bf, bm
  if b then bf, bm = rises(b) end
  local function won(r, ref) return ref and ref > 0 and string.format("%.0f%%", 100 * (1 - r / ref)) or "-" end
  local rows = { { "run", "right after", "at end", "rise", "won back", "mean rise", "won back", "ACC", "BWT", "memory",
    "CPU s" } }
  for _, d in ipairs(docs) do
    local f, m = rises(d)
    local e = d.extra or {}
    rows[#rows + 1] = { d.name, string.format("%.2f", d.perplexity[1][1]),
      string.format("%.2f", d.perplexity[#d.perplexity][1]), string.format("%.2f", f), won(f, bf),
      string.format("%.2f", m), won(m, bm), string.format("%.1f%%", 100 * d.avg_acc),
      string.format("%.1f", 100 * (d.bwt or 0)), e.memory_bytes and (results.thousands(e.memory_bytes) .. " B") or "-",
      e.cpu_seconds and string.format("%.0f", e.cpu_seconds) or "-" }
  end
  local lines = {}
  for line in results.columns(rows, { true }):gmatch("[^\n]+") do lines[#lines + 1] = line end
  return lines
end

--- A recipe's comparison of language-model runs: runs is a list of {key,
-- run name, function() -> strategy list (as recipe_run takes)}; the runs
-- --only selects are made and run in order (recipe_run), then a title and
-- compare_lines against "gpt-naive" are printed. Returns the documents and
-- them by key.
function lm.recipe_compare(opts, n, scen, runs)
  local docs, by = {}, {}
  for _, r in ipairs(runs) do
    if opts.selected(r[1]) then
      local doc = lm.recipe_run(opts, n, scen, r[2], r[3]())
      docs[#docs + 1], by[r[1]] = doc, doc
    end
  end
  print()
  print(string.format("%s's perplexity over %s, %d steps per domain (rise = forgetting in perplexity; 'won " ..
    "back' = the share of plain fine-tuning's forgetting avoided)", scen.tasks[1].name,
    table.concat(opts.domains, ", "), n.steps))
  for _, line in ipairs(lm.compare_lines(docs, "gpt-naive")) do print(line) end
  return docs, by
end

--- Writes a recipe's documents where --out and --report say (one document
-- alone when there is one), the report titled `title`.
function lm.recipe_save(opts, docs, title)
  local engram = require("engram")
  if opts.out then engram.results.save(opts.out, #docs == 1 and docs[1] or docs) end
  if opts.report then engram.report.write(opts.report, docs, { title = title }) end
end

--- Replay recipes' --share: checks it (a number in (0, 1]) and that the
-- scenario has at least two domains, through opts.fail; returns the stored
-- memory's capacity, ceil(share x the earlier domains' training windows).
function lm.replay_capacity(opts, scen)
  if type(opts.share) ~= "number" or opts.share <= 0 or opts.share > 1 then
    opts.fail("--share must be a number in (0, 1], got " .. tostring(opts.share))
  end
  local T = #scen.tasks
  if T < 2 then opts.fail("--domains: replay needs at least two domains") end
  local earlier = 0
  for t = 1, T - 1 do earlier = earlier + #scen.tasks[t].train end
  return math.max(1, math.ceil(opts.share * earlier))
end

return lm
