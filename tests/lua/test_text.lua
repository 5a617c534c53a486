-- engram.text and the text_domains scenario: tokenizers, token windows and
-- their held-out split, reading corpora and its errors, the learner's
-- next-token accuracy and perplexity on language, the sampler.
local lu = require("luaunit")
local engram = require("engram")
local text = require("engram.text")
local core = require("engram.core")

local helpers = require("helpers")
local write = helpers.write_file
local q = helpers.q

local function assertError(pattern, f, ...)
  local ok, err = pcall(f, ...)
  lu.assertFalse(ok, "expected an error matching " .. pattern)
  lu.assertStrContains(tostring(err), pattern)
end

local function tmpdir()
  local d = helpers.tmpname(".d")
  assert(os.execute("mkdir -p " .. q(d)))
  return d
end

local function rmdir(d) os.execute("rm -rf " .. q(d)) end

local markov_text = helpers.markov_text -- a seeded Markov text over an alphabet

-- ------------------------------------------------------------- tokenizers
TestTokenizers = {}

function TestTokenizers:test_byte_tokenizer_round_trips_every_byte()
  local tok = text.byte()
  lu.assertEquals(tok:vocab(), 256)
  lu.assertEquals(tok:kind(), "byte")
  local bytes = {}
  for b = 0, 255 do bytes[#bytes + 1] = string.char(b) end
  local s = table.concat(bytes)
  local ids = tok:encode(s)
  lu.assertEquals(ids:numel(), 256)
  for b = 0, 255 do lu.assertEquals(ids:get(b + 1), b) end
  lu.assertEquals(tok:decode(ids), s)
  lu.assertEquals(tok:decode({ 104, 105 }), "hi")
end

function TestTokenizers:test_char_tokenizer_builds_a_sorted_vocabulary_with_the_replacement_character()
  local corpus = "héllo wörld ☃"
  local tok = text.char(corpus)
  local cps = tok:codepoints()
  -- distinct code points of the corpus + U+FFFD
  local seen, n = {}, 0
  for _, c in utf8.codes(corpus) do
    if not seen[c] then seen[c], n = true, n + 1 end
  end
  lu.assertEquals(tok:vocab(), n + 1)
  for i = 2, cps:numel() do lu.assertTrue(cps:get(i) > cps:get(i - 1)) end
  lu.assertEquals(cps:get(cps:numel()), 0xFFFD)
  lu.assertEquals(tok:decode(tok:encode(corpus)), corpus)
  lu.assertEquals(tok:encode(corpus):numel(), utf8.len(corpus))
end

function TestTokenizers:test_char_tokenizer_maps_unknown_and_invalid_utf8_to_the_replacement_id()
  local tok = text.char("abc")
  local unk = tok:vocab() - 1 -- U+FFFD sorts last here
  local ids = tok:encode("aZ\xff€")
  lu.assertEquals(ids:numel(), 4)
  lu.assertEquals(ids:get(1), 0)
  lu.assertEquals(ids:get(2), unk)
  lu.assertEquals(ids:get(3), unk)
  lu.assertEquals(ids:get(4), unk)
  lu.assertEquals(tok:decode(ids), "a\u{FFFD}\u{FFFD}\u{FFFD}")
end

function TestTokenizers:test_tokenizers_save_and_load_with_their_vocabulary()
  local tok = text.char("zebra ∑ quilt")
  local p = helpers.tmpname(".safetensors")
  tok:save(p)
  local back = text.load_tokenizer(p)
  os.remove(p)
  lu.assertEquals(back:kind(), "char")
  lu.assertEquals(back:codepoints():totable(), tok:codepoints():totable())
  lu.assertEquals(back:decode(back:encode("a∑z")), "a∑z")
  local pb = helpers.tmpname(".safetensors")
  text.byte():save(pb)
  lu.assertEquals(text.load_tokenizer(pb):kind(), "byte")
  os.remove(pb)
  -- the state a checkpoint carries
  local tensors, meta = tok:state()
  lu.assertEquals(meta["engram.tokenizer"], "char")
  lu.assertEquals(text.tokenizer_from(tensors, meta):vocab(), tok:vocab())
end

function TestTokenizers:test_bad_ids_and_vocabularies_are_errors_naming_them()
  local tok = text.byte()
  assertError("id 256 at position 2", tok.decode, tok, core.tensor({ 1, 256 }))
  assertError("not a token id", tok.decode, tok, core.tensor({ 1.5 }))
  assertError("expected a tensor or a table", tok.decode, tok, "abc")
  assertError("lacks U+FFFD", text.char, core.tensor({ 97, 98 }))
  assertError("ascending", text.char, core.tensor({ 98, 97, 65533 }))
  assertError("expected a corpus", text.char, 42)
  assertError("no tokenizer here", text.tokenizer_from, {}, {})
end

-- ------------------------------------------------------------- windows
TestTextWindows = {}

function TestTextWindows:test_y_is_x_shifted_by_one_token()
  local s = markov_text("abcdefghij", 3000, 1)
  local train, held = text.windows(s, { ctx = 16, stride = 5, holdout = 0.1 })
  lu.assertTrue(#train > 0 and #held > 0)
  local x, y = train:range(1, #train)
  lu.assertEquals(x:size(2), 16)
  lu.assertEquals(y:size(2), 16)
  -- y[t] = x[t+1] inside a window, and x[1] of window i+1 is 5 tokens later
  lu.assertEquals(x:narrow(2, 2, 15):totable(), y:narrow(2, 1, 15):totable())
  local first = s:sub(1, 17)
  lu.assertEquals(text.byte():decode(x[1]:clone()), first:sub(1, 16))
  lu.assertEquals(text.byte():decode(y[1]:clone()), first:sub(2, 17))
  lu.assertEquals(text.byte():decode(x[2]:clone()), s:sub(6, 21))
  -- a batch gives x, y [B, T]
  local bx, by = train:batches { batch = 4, seed = 1 }:next()
  lu.assertEquals({ bx:size(1), bx:size(2), by:size(1), by:size(2) }, { 4, 16, 4, 16 })
  local gx, gy = train:get(3)
  lu.assertEquals(gx:dim(), 1)
  lu.assertEquals(gy:narrow(1, 1, 15):totable(), gx:narrow(1, 2, 15):totable())
end

function TestTextWindows:test_held_out_text_never_appears_in_a_training_window()
  -- every position of the text is its own character, so its id tells where it is
  local cps = {}
  for p = 0, 4999 do cps[#cps + 1] = utf8.char(0x4E00 + p) end
  local s = table.concat(cps)
  local tok = text.char(s)
  local train, held = text.windows(s, { tokenizer = tok, ctx = 8, stride = 3, holdout = 0.2, block = 500 })
  local in_train = {}
  local x, y = train:range(1, #train)
  for _, row in ipairs(x:totable()) do for _, v in ipairs(row) do in_train[v] = true end end
  for _, row in ipairs(y:totable()) do for _, v in ipairs(row) do in_train[v] = true end end
  local hx, hy = held:range(1, #held)
  local blocks = {}
  for i, row in ipairs(hx:totable()) do
    for t, v in ipairs(row) do
      lu.assertNil(in_train[v], "held-out token " .. v .. " is in a training window")
      if t > 1 then lu.assertEquals(v, row[t - 1] + 1) end
    end
    lu.assertNil(in_train[hy[i]:get(8)])
    blocks[row[1] // 500] = true
  end
  -- the held-out part is spread over the blocks, not only the end of the text
  local nb = 0
  for _ in pairs(blocks) do nb = nb + 1 end
  lu.assertEquals(nb, 10)
  -- and about a fifth of the text is held out
  local ntrain = 0
  for _ in pairs(in_train) do ntrain = ntrain + 1 end
  lu.assertTrue(ntrain >= 0.75 * 5000 and ntrain <= 0.8 * 5000, "training tokens: " .. ntrain)
end

function TestTextWindows:test_window_datasets_are_compact_and_refuse_image_transforms()
  local train = text.windows(markov_text("abc", 2000, 2), { ctx = 10, holdout = 0 })
  lu.assertEquals(text.window(train), 10)
  lu.assertNil(text.window(engram.data.blobs { n = 10 }))
  lu.assertStrContains(tostring(train), "uint8 stream of 2000 tokens")
  lu.assertEquals(train:num_classes(), 256)
  assertError("not a label", train.label, train, 1)
  assertError("not defined for a text window dataset", train.permuted, train, 1)
  assertError("not defined for a text window dataset", train.normalized, train, 0, 1)
  -- class counts count the target tokens
  local counts = train:class_counts()
  local total = 0
  for _, c in pairs(counts) do total = total + c end
  lu.assertEquals(total, #train * 10)
  -- subsets and concatenation of different streams keep the windows
  local other = text.windows(markov_text("xyz", 500, 3), { ctx = 10, holdout = 0 })
  local both = train:subset { indices = { 1, 2 } }:concat(other)
  lu.assertEquals(#both, 2 + #other)
  local bx, by = both:range(3, 1)
  local ox, oy = other:range(1, 1)
  lu.assertEquals(bx:totable(), ox:totable())
  lu.assertEquals(by:totable(), oy:totable())
end

function TestTextWindows:test_bad_window_options_are_errors()
  assertError("ctx must be an integer >= 1", text.windows, "abc", { ctx = 0 })
  assertError("holdout must be a share", text.windows, "abc", { holdout = 1 })
  assertError("unknown option 'ctxx'", text.windows, "abc", { ctxx = 3 })
  assertError("expected a tokenizer", text.windows, "abc", { tokenizer = "byte" })
end

-- ------------------------------------------------------------- corpora
TestTextCorpora = {}

function TestTextCorpora:setUp()
  self.dir = tmpdir()
  write(self.dir .. "/a.txt", "alpha text\n")
  write(self.dir .. "/b.md", "beta text\n")
  write(self.dir .. "/blob.bin", "bin\0ary")
  write(self.dir .. "/empty.txt", "")
  assert(os.execute("mkdir -p " .. q(self.dir .. "/sub")))
  write(self.dir .. "/sub/c.txt", "gamma\n")
  write(self.dir .. "/run.sh", "#!/bin/sh\necho hi\n")
  write(self.dir .. "/tool.py", "#!/usr/bin/env python3\nprint(1)\n")
  write(self.dir .. "/env.sh", "#! /usr/bin/env bash\nls\n")
end

function TestTextCorpora:tearDown() rmdir(self.dir) end

function TestTextCorpora:test_directories_are_read_recursively_skipping_binary_and_empty_files()
  local s, info = text.read { paths = { self.dir }, glob = "*.txt" }
  lu.assertEquals(info.files, 2)
  lu.assertEquals(info.skipped_empty, 1)
  lu.assertStrContains(s, "alpha text")
  lu.assertStrContains(s, "gamma")
  lu.assertNil(s:find("beta", 1, true))
  local _, all = text.read { paths = { self.dir } }
  lu.assertEquals(all.skipped_binary, 1)
  lu.assertEquals(all.files, 6)
end

function TestTextCorpora:test_byte_caps_and_separator()
  local s, info = text.read { paths = { self.dir .. "/a.txt", self.dir .. "/b.md" }, separator = "|" }
  lu.assertEquals(s, "alpha text\n|beta text\n")
  lu.assertEquals(info.bytes, #s)
  local c = text.read { paths = { self.dir .. "/a.txt", self.dir .. "/b.md" }, bytes = 15, separator = "|" }
  lu.assertEquals(c, "alpha text\n|bet")
  local f, finfo = text.read { paths = { self.dir .. "/a.txt" }, file_bytes = 5 }
  lu.assertEquals(f, "alpha")
  lu.assertEquals(finfo.truncated, 1)
end

function TestTextCorpora:test_shell_scripts_are_found_by_their_first_line()
  local s, info = text.read { paths = { self.dir }, accept = text.is_shell_script }
  lu.assertEquals(info.files, 2)
  lu.assertStrContains(s, "echo hi")
  lu.assertStrContains(s, "ls")
  lu.assertNil(s:find("print(1)", 1, true))
end

function TestTextCorpora:test_missing_empty_and_binary_sources_are_errors_naming_the_path()
  assertError(self.dir .. "/nope: No such file", text.read, { paths = { self.dir .. "/nope" } })
  assertError(self.dir .. "/empty.txt is empty", text.read, { paths = { self.dir .. "/empty.txt" } })
  assertError(self.dir .. "/blob.bin is a binary file", text.read, { paths = { self.dir .. "/blob.bin" } })
  assertError(self.dir .. " holds no text file matching *.c", text.read, { paths = { self.dir }, glob = "*.c" })
  local S = engram.scenarios
  assertError("domain 'x': " .. self.dir .. "/blob.bin is a binary file", S.text_domains,
    { domains = { { name = "x", paths = { self.dir .. "/blob.bin" } } }, quiet = true })
  assertError("domain 'y': " .. self.dir .. "/gone: No such file", S.text_domains,
    { domains = { { name = "y", paths = { self.dir .. "/gone" } } }, quiet = true })
  assertError("unknown domain 'poetry'", S.text_domains, { domains = { "poetry" }, quiet = true })
  assertError("gives 0 training", S.text_domains,
    { domains = { { name = "tiny", paths = { self.dir .. "/a.txt" } } }, ctx = 64, quiet = true })
end

-- ------------------------------------------------------------- scenario and learner
TestTextDomains = {}

function TestTextDomains:setUp()
  self.dir = tmpdir()
  assert(os.execute("mkdir -p " .. q(self.dir .. "/first") .. " " .. q(self.dir .. "/second")))
  for i = 1, 3 do
    write(string.format("%s/first/f%d.txt", self.dir, i), markov_text("abcdefghijklm", 4000, i))
    write(string.format("%s/second/s%d.txt", self.dir, i), markov_text("nopqrstuvwxyz", 4000, 10 + i))
  end
  write(self.dir .. "/second/junk.bin", "\0\1\2")
end

function TestTextDomains:tearDown() rmdir(self.dir) end

function TestTextDomains:scenario(extra)
  local o = { domains = { { name = "first", paths = { self.dir .. "/first" } },
    { name = "second", paths = { self.dir .. "/second" } } }, ctx = 16, quiet = true }
  for k, v in pairs(extra or {}) do o[k] = v end
  return engram.scenarios.text_domains(o)
end

function TestTextDomains:test_a_scenario_from_small_files_has_one_task_per_domain()
  local s = self:scenario()
  lu.assertEquals(#s.tasks, 2)
  lu.assertEquals(s.kind, "domain")
  lu.assertEquals(s.num_classes, 256)
  lu.assertEquals(s.tasks[1].name, "first")
  lu.assertEquals(s.sources[2].files, 3)
  lu.assertEquals(s.sources[2].skipped, 1)
  lu.assertEquals(s.sources[1].bytes, 3 * 4000 + 2)
  lu.assertEquals(text.window(s.tasks[1].train), 16)
  local d = s:describe()
  lu.assertEquals(d.options.tokenizer, "byte")
  lu.assertEquals(d.tasks[2].source.name, "second")
  local c = self:scenario { tokenizer = "char", samples = 50 }
  lu.assertEquals(c.num_classes, 28) -- 26 letters, the separator "\n", U+FFFD
  lu.assertEquals(#c.tasks[1].train, 50)
end

function TestTextDomains:test_the_learner_fills_accuracy_and_perplexity_and_shows_forgetting()
  engram.seed(3)
  local s = self:scenario()
  local model = text.bigram(256, 16)
  local L = engram.learner(model, { batch = 16, lr = 0.02, epochs = 2, quiet = true, eval_batch = 256 })
  local doc = L:run(s)
  lu.assertTrue(engram.results.validate(doc))
  lu.assertEquals(#doc.acc, 2)
  local P = doc.perplexity
  lu.assertEquals(#P, 2)
  -- learning: each domain right after it is far better than untrained and than chance
  for j = 1, 2 do
    lu.assertTrue(P[j][j] < 0.2 * doc.baseline_perplexity[j], "perplexity " .. P[j][j])
    lu.assertTrue(doc.acc[j][j] > 0.5, "next-token accuracy " .. doc.acc[j][j])
  end
  -- forgetting: the first domain's perplexity rises after training the second
  lu.assertTrue(P[2][1] > 1.2 * P[1][1], string.format("first domain %.3f -> %.3f", P[1][1], P[2][1]))
  lu.assertAlmostEquals(doc.perplexity_ratio[1], P[2][1] / P[1][1], 1e-12)
  -- representation drift on a probe of the first domain's held-out windows (probe counts tokens)
  lu.assertEquals(doc.extra.drift_layer, 2)
  -- (the bigram's hidden layer is the embedding of the first domain's letters,
  -- which the second domain's disjoint letters leave as they were)
  lu.assertEquals(doc.extra.drift, { 0, 0 })
  lu.assertTrue(doc.bwt < 0)
  -- accuracy counts tokens: a multiple of 1/(windows * T)
  local n = #s.tasks[1].test * 16
  lu.assertAlmostEquals(doc.acc[1][1] * n, math.floor(doc.acc[1][1] * n + 0.5), 1e-6)
  -- the results file and the report carry the perplexity matrix
  local p = helpers.tmpname(".json")
  engram.results.save(p, doc)
  local back = engram.results.load(p)[1]
  os.remove(p)
  lu.assertEquals(back.perplexity, doc.perplexity)
  lu.assertStrContains(engram.results.format(doc), "held-out perplexity")
  lu.assertStrContains(engram.report.html({ doc }), "Held-out perplexity")
end

function TestTextDomains:test_regularisation_distillation_and_agem_train_on_token_windows()
  local s = self:scenario { samples = 60, test_samples = 20 }
  local S = engram.strategies
  for _, st in ipairs { S.ewc { lambda = 10 }, S.si {}, S.mas {}, S.lwf {}, S.agem { memory = 50, batch = 8 } } do
    engram.seed(2)
    local L = engram.learner(text.bigram(256, 8), { batch = 16, lr = 0.02, quiet = true })
    L:use(st)
    local doc = L:run(s)
    lu.assertTrue(engram.results.validate(doc), st.name)
    lu.assertTrue(doc.perplexity[2][2] < doc.baseline_perplexity[2], st.name)
  end
end

function TestTextDomains:test_replay_of_stored_windows_keeps_the_first_domain_and_resumes_exactly()
  local s = self:scenario()
  local function run(st, opts)
    engram.seed(3)
    local o = { batch = 16, lr = 0.02, epochs = 2, quiet = true, eval_batch = 256, name = "r" }
    for k, v in pairs(opts or {}) do o[k] = v end
    local L = engram.learner(text.bigram(256, 16), o)
    L:use(st)
    return L:run(s)
  end
  local naive = run(engram.strategies.naive())
  local replay = run(engram.strategies.replay { memory = 100 })
  local rise_naive = naive.perplexity[2][1] / naive.perplexity[1][1]
  local rise_replay = replay.perplexity[2][1] / replay.perplexity[1][1]
  lu.assertTrue(rise_replay < 1 + 0.5 * (rise_naive - 1), string.format("rise %.3f with replay, %.3f naive",
    rise_replay, rise_naive))
  lu.assertTrue(replay.perplexity[2][2] < 0.2 * replay.baseline_perplexity[2])
  -- the memory holds windows of T + 1 tokens and survives a checkpoint
  local dir = tmpdir()
  lu.assertErrorMsgContains("stopped after task 1", function()
    run(engram.strategies.replay { memory = 100 }, { checkpoint = dir, stop_task = 1 })
  end)
  local resumed = run(engram.strategies.replay { memory = 100 }, { checkpoint = dir, resume = true })
  rmdir(dir)
  lu.assertEquals(resumed.perplexity, replay.perplexity)
  assertError("token windows take 'reservoir'", run, engram.strategies.replay { memory = 10, insert = "score" })
end

function TestTextDomains:test_a_run_stopped_after_the_first_domain_resumes_with_its_perplexity_rows()
  local s = self:scenario { samples = 60, test_samples = 20 }
  local function run(opts)
    engram.seed(4)
    local o = { batch = 16, lr = 0.02, quiet = true, name = "lm" }
    for k, v in pairs(opts or {}) do o[k] = v end
    local L = engram.learner(text.bigram(256, 8), o)
    L:use(engram.strategies.naive())
    return L:run(s)
  end
  local whole = run()
  local dir = tmpdir()
  lu.assertErrorMsgContains("stopped after task 1", function() run { checkpoint = dir, stop_task = 1 } end)
  local resumed = run { checkpoint = dir, resume = true }
  rmdir(dir)
  -- a model carrying its tokenizer puts it in the checkpoint
  local tok = text.char("abcdefghijklmnopqrstuvwxyz\n")
  local cdir = tmpdir()
  engram.seed(4)
  local model = text.attach(text.bigram(256, 8), tok)
  engram.learner(model, { batch = 16, lr = 0.02, quiet = true, checkpoint = cdir }):use(engram.strategies.naive())
    :run(s)
  local back = text.load_tokenizer(cdir .. "/checkpoint.safetensors")
  lu.assertEquals(back:codepoints():totable(), tok:codepoints():totable())
  -- and a run resumed from it reads the file (the tokenizer's tensor is known)
  engram.seed(4)
  local again = engram.learner(text.attach(text.bigram(256, 8), tok), { batch = 16, lr = 0.02, quiet = true,
    checkpoint = cdir, resume = true }):use(engram.strategies.naive()):run(s)
  rmdir(cdir)
  lu.assertEquals(#again.perplexity, 2)
  lu.assertEquals(resumed.perplexity, whole.perplexity)
  lu.assertEquals(resumed.baseline_perplexity, whole.baseline_perplexity)
  lu.assertEquals(resumed.acc, whole.acc)
end

function TestTextDomains:test_results_refuse_a_bad_perplexity_matrix()
  local doc = engram.results.new { acc = { { 0.5, 0.1 }, { 0.4, 0.6 } }, perplexity = { { 2, 9 }, { 3, 2.5 } } }
  lu.assertTrue(engram.results.validate(doc))
  lu.assertEquals(doc.perplexity_ratio, { 1.5 })
  doc.perplexity[2][1] = 0.5
  local ok, err = engram.results.validate(doc)
  lu.assertNil(ok)
  lu.assertStrContains(err, "perplexity'[2][1] is 0.5")
  assertError("perplexity[1]", engram.results.new, { acc = { { 0.5 } }, perplexity = { { 0 } } })
  -- a comparison shows the mean final perplexity and the mean rise
  doc.perplexity[2][1] = 3
  local other = engram.results.new { acc = { { 0.5, 0.1 }, { 0.4, 0.6 } }, name = "image" }
  local tab = engram.results.compare_table { doc, other }
  lu.assertStrContains(tab, "ppl rise")
  lu.assertNotNil(tab:match("\nrun .- 2%.75%s+1%.50x"), tab)
  lu.assertNotNil(tab:match("\nimage .-n/a%s+n/a%s+n/a%s+n/a\n$"), tab)
end

-- ------------------------------------------------------------- sampling
TestTextSampling = {}

function TestTextSampling:test_top_k_only_draws_the_k_largest_logits()
  local logits = core.tensor({ 0.1, 3, -1, 2.5, 2.9, 0 })
  local g = core.generator(5)
  local seen = {}
  for _ = 1, 400 do
    local id = core._text.sample(logits, 1, 3, g)
    seen[id] = (seen[id] or 0) + 1
  end
  -- ids are 0-based: the three largest are 1 (3), 4 (2.9), 3 (2.5)
  lu.assertEquals({ seen[1] ~= nil, seen[4] ~= nil, seen[3] ~= nil }, { true, true, true })
  for id in pairs(seen) do lu.assertTrue(id == 1 or id == 3 or id == 4, "drew id " .. id) end
  lu.assertEquals(core._text.sample(logits, 0, nil, g), 1)
  lu.assertEquals(core._text.sample(logits, 5, 1, g), 1)
  -- a 2-D input samples from its last row
  lu.assertEquals(core._text.sample(core.tensor({ { 9, 0 }, { 0, 9 } }), 0, nil, g), 1)
  assertError("temperature", core._text.sample, logits, -1, nil, g)
end

function TestTextSampling:test_generate_is_deterministic_for_a_seed_and_attaches_to_a_model()
  local corpus = markov_text("abcdefgh", 3000, 4)
  local tok = text.char(corpus)
  local train = text.windows(corpus, { tokenizer = tok, ctx = 16, holdout = 0 })
  engram.seed(1)
  local model = text.bigram(tok:vocab(), 16)
  local L = engram.learner(model, { batch = 16, lr = 0.02, quiet = true })
  local s = engram.scenarios.from_tasks({ { train = train, test = train, name = "abc" } }, { scenario = "domain" })
  L:run(s)
  local a, new = text.generate(model, tok, "abc", { tokens = 40, seed = 7 })
  lu.assertEquals(a, "abc" .. new)
  lu.assertEquals(utf8.len(new), 40)
  lu.assertEquals(text.generate(model, tok, "abc", { tokens = 40, seed = 7 }), a)
  lu.assertNotEquals(text.generate(model, tok, "abc", { tokens = 40, seed = 8 }), a)
  -- greedy decoding of a trained bigram follows the chain a -> b -> c ...
  local greedy = text.generate(model, tok, "a", { tokens = 7, temperature = 0 })
  lu.assertEquals(greedy, "abcdefgh")
  lu.assertEquals(text.generate(model, tok, "a", { tokens = 7, top_k = 1, seed = 3 }), greedy)
  -- a generator's state decides the text
  local g1, g2 = core.generator(11), core.generator(11)
  lu.assertEquals(text.generate(model, tok, "d", { tokens = 20, gen = g1 }),
    text.generate(model, tok, "d", { tokens = 20, gen = g2 }))
  text.attach(model, tok)
  lu.assertEquals(model:generate("abc", { tokens = 40, seed = 7 }), a)
  lu.assertTrue(model.training)
  assertError("the prompt is empty", text.generate, model, tok, "")
  assertError("unknown option 'tokenz'", text.generate, model, tok, "a", { tokenz = 3 })
  assertError("the model's forward failed", text.generate, model, text.byte(), "a", { tokens = 2 })
  assertError("a language model over this tokenizer", text.generate, text.bigram(300, 4), text.byte(), "a",
    { tokens = 2 })
end

-- ------------------------------------------------------------- the recipe
TestTextRecipe = {}

local BIN = os.getenv("ENGRAM_BIN") or "build/engram"

function TestTextRecipe:test_help_names_the_options()
  local out, _, code = helpers.run(BIN, "recipes/text_domains.lua --help")
  lu.assertEquals(code, 0)
  for _, o in ipairs { "--domains", "--ctx", "--bytes", "--tokenizer" } do lu.assertStrContains(out, o) end
end

function TestTextRecipe:test_a_tiny_run_on_this_machines_prose_and_c_prints_the_perplexity_table()
  local p = helpers.tmpname(".json")
  local out, err, code = helpers.run(BIN, "recipes/text_domains.lua --domains prose,c --bytes 16384 --ctx 32 " ..
    "--generate 10 --replay 20 --quiet --out " .. q(p))
  lu.assertEquals(code, 0, err)
  lu.assertStrContains(out, "text_domains: prose")
  lu.assertStrContains(out, "held-out perplexity")
  lu.assertStrContains(out, "sampled from 'int '")
  lu.assertStrContains(out, "ppl rise")
  local docs = engram.results.load(p)
  os.remove(p)
  lu.assertEquals(#docs, 2)
  lu.assertEquals(docs[2].strategies[1].name, "replay")
  local doc = docs[1]
  lu.assertEquals(#doc.perplexity, 2)
  lu.assertEquals(doc.scenario.details.tasks[1].source.name, "prose")
  lu.assertTrue(doc.scenario.details.tasks[2].source.files > 0)
end

-- ------------------------------------------------------------- validation
TestTextValidation = {}

function TestTextValidation:test_a_validation_part_sits_between_training_and_held_out_text()
  local cps = {}
  for p = 0, 2999 do cps[#cps + 1] = utf8.char(0x4E00 + p) end
  local s = table.concat(cps)
  local tok = text.char(s)
  local train, held, info, val = text.windows(s, { tokenizer = tok, ctx = 4, holdout = 0.1, validation = 0.2,
    block = 300 })
  lu.assertEquals(info.val, #val)
  local owner = {}
  local function mark(ds, name)
    local x, y = ds:range(1, #ds)
    for _, t in ipairs { x:totable(), y:totable() } do
      for _, row in ipairs(t) do
        for _, v in ipairs(row) do
          lu.assertTrue(owner[v] == nil or owner[v] == name, "token " .. v .. " in " .. name .. " and " ..
            tostring(owner[v]))
          owner[v] = name
        end
      end
    end
  end
  mark(train, "train"); mark(val, "val"); mark(held, "held")
  -- within each block of 300: training, then validation (60), then held-out (30)
  for v, name in pairs(owner) do
    local at = v % 300 -- ids are positions here (the vocabulary is sorted, U+FFFD last)
    local want = at < 210 and "train" or (at < 270 and "val" or "held")
    lu.assertEquals(name, want, "position " .. v)
  end
  lu.assertNil(select(4, text.windows(s, { tokenizer = tok, ctx = 4 })))
  assertError("validation must be a share", text.windows, s, { validation = 0.95 })
end

function TestTextValidation:test_the_learner_scores_on_validation_parts_with_eval_on_val()
  local dir = tmpdir()
  write(dir .. "/a.txt", markov_text("abcdef", 6000, 1))
  write(dir .. "/b.txt", markov_text("uvwxyz", 6000, 2))
  local s = engram.scenarios.text_domains { domains = { { name = "a", paths = { dir .. "/a.txt" } },
    { name = "b", paths = { dir .. "/b.txt" } } }, ctx = 16, validation = 0.1, quiet = true }
  rmdir(dir)
  lu.assertTrue(#s.tasks[1].val > 0)
  engram.seed(1)
  local doc = engram.learner(text.bigram(256, 8), { batch = 16, lr = 0.02, quiet = true, eval_on = "val" }):run(s)
  lu.assertEquals(doc.extra.options.eval_on, "val")
  lu.assertEquals(#doc.perplexity, 2)
end
