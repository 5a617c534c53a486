--- engram.text: tokenizers, datasets of token windows from text files, a
-- bigram baseline and a sampler for language models (docs/text.md).
--
--   local text = require "engram.text"         -- or engram.text
--   local tok = text.byte()                      -- vocabulary 256
--   local ids = tok:encode("int main")           -- tensor [8] of ids 0..255
--   print(tok:decode(ids))                       -- "int main"
--   local train, held = text.dataset{paths = {"/usr/share/common-licenses"}, ctx = 64}
--   local model = text.bigram(256, 64)           -- or engram.nn.gpt{...}
--   print(text.generate(model, tok, "int main", {tokens = 100, top_k = 20, seed = 1}))
--
-- The language-model contract every model here is used through: forward(ids)
-- takes ids [B, T] (float32 holding 0-based integral token ids, as
-- nn.Embedding takes them) and returns logits [B*T, V], row (b-1)*T + t
-- predicting the token after position t of sample b; backward(ids, grad_logits).
local core = require("engram.core")
local util = require("engram.util")
require("engram.data") -- the dataset methods written in Lua (batches, chunks)

local C = core._text
local Tokenizer = core.Tokenizer -- methods in C: encode, decode, vocab, kind, codepoints, release

local text = {}

-- ------------------------------------------------------------- tokenizers

--- A byte-level tokenizer: vocabulary 256, id = byte value; decode(encode(s)) == s for any s.
function text.byte() return C.byte_tokenizer() end

--- A char-level tokenizer. From a corpus (a string): the vocabulary is every
-- code point of the text read as UTF-8, plus U+FFFD, ascending. From a
-- tensor of code points: that vocabulary (ascending, holding 65533).
-- Unknown characters and invalid UTF-8 encode as the id of U+FFFD.
function text.char(corpus)
  if type(corpus) ~= "string" and not core.istensor(corpus) then
    error("text.char: expected a corpus (string) or a tensor of code points, got " .. type(corpus), 2)
  end
  local ok, tok = pcall(C.char_tokenizer, corpus)
  if not ok then error("text.char: " .. tostring(tok):gsub("^tokenizer: ", ""), 2) end
  return tok
end

--- True when v is a (live) tokenizer.
function text.is_tokenizer(v) return C.is_tokenizer(v) end

local function check_tok(who, tok, level)
  if not C.is_tokenizer(tok) then
    error(string.format("%s: expected a tokenizer (engram.text.byte() or .char(corpus)), got %s", who,
      type(tok)), level + 1)
  end
  return tok
end

--- tok:state() -> tensors, metadata: what a checkpoint stores for the tokenizer
-- (metadata "engram.tokenizer" = "byte" | "char"; tensor
-- "tokenizer.codepoints" for char-level). text.tokenizer_from reads it back.
function Tokenizer:state()
  check_tok("state", self, 2)
  local kind = self:kind()
  local tensors = {}
  if kind == "char" then tensors["tokenizer.codepoints"] = self:codepoints() end
  return tensors, { ["engram.tokenizer"] = kind, ["engram.tokenizer.vocab"] = tostring(self:vocab()) }
end

--- The tokenizer stored by tok:state() in (tensors, metadata), e.g. those of engram.io.load.
function text.tokenizer_from(tensors, meta)
  if type(tensors) ~= "table" or type(meta) ~= "table" then
    error("text.tokenizer_from: expected the tensors and the metadata of a file (engram.io.load)", 2)
  end
  local kind = meta["engram.tokenizer"]
  if kind == "byte" then return text.byte() end
  if kind == "char" then
    local cps = tensors["tokenizer.codepoints"]
    if not core.istensor(cps) then error("text.tokenizer_from: the tensor 'tokenizer.codepoints' is missing", 2) end
    local ok, tok = pcall(C.char_tokenizer, cps)
    if not ok then error("text.tokenizer_from: " .. tostring(tok):gsub("^tokenizer: ", ""), 2) end
    return tok
  end
  error("text.tokenizer_from: no tokenizer here (metadata 'engram.tokenizer' is " .. tostring(kind) .. ")", 2)
end

--- tok:save(path): the tokenizer alone in a safetensors file.
function Tokenizer:save(path)
  check_tok("save", self, 2)
  local tensors, meta = self:state()
  if next(tensors) == nil then tensors["tokenizer.none"] = core.zeros(1) end
  local ok, err = pcall(require("engram.io").save, path, tensors, meta)
  if not ok then error("tokenizer:save: " .. tostring(err):gsub("^io%.save: ", ""), 2) end
  return true
end

--- The tokenizer saved at path by tok:save (or in a checkpoint holding its state).
function text.load_tokenizer(path)
  local ok, tensors, meta = pcall(require("engram.io").load, path)
  if not ok then error("text.load_tokenizer: " .. tostring(tensors):gsub("^io%.load: ", ""), 2) end
  local ok2, tok = pcall(text.tokenizer_from, tensors, meta)
  if not ok2 then error((tostring(tok):gsub("^text%.tokenizer_from", "text.load_tokenizer: " .. path)), 2) end
  return tok
end

-- ------------------------------------------------------------- corpora

-- A shell glob on a file's base name ("*.h", "*.lua", "?.txt") as a Lua pattern.
local function glob_pattern(g)
  local p = g:gsub("[%^%$%(%)%%%.%[%]%+%-]", "%%%0"):gsub("%*", ".*"):gsub("%?", ".")
  return "^" .. p .. "$"
end

local function basename(p) return p:match("([^/]*)$") end

local READ_KNOWN = {
  paths = true, glob = true, accept = true, bytes = true, file_bytes = true, separator = true, seed = true,
  who = true,
}

--- Reads text files into one string: text.read{paths = {...}, ...} -> text, info.
-- paths: files and directories (directories are searched recursively; a
--   symbolic link to a directory is not followed).
-- glob [nil]: keep only directory entries whose base name matches ("*.h").
-- accept [nil]: function(path, head) -> bool, also for directory entries
--   (head: the file's first 256 bytes), e.g. to keep shell scripts.
-- bytes [1 MiB]: the total byte cap; file_bytes [64 KiB]: per-file cap (a
--   longer file contributes its first file_bytes).
-- separator ["\n"]: put between files. seed [1]: directory entries are
--   taken in a seeded random order until the cap is reached (so a cap keeps
--   a spread of the tree, not its first letters).
-- Errors (naming the path): a missing path, an empty or binary (holding a
-- NUL byte) file given by name, a directory with no file kept. Inside
-- directories, binary, empty and unreadable files are skipped and counted.
-- info: {files =, bytes =, skipped_binary =, skipped_empty =, skipped_unreadable =, truncated =, sources = {...}}
function text.read(opts)
  local who = type(opts) == "table" and opts.who or "text.read"
  opts = util.check_options(who, opts, READ_KNOWN, 2)
  local paths = opts.paths
  if type(paths) == "string" then paths = { paths } end
  if type(paths) ~= "table" or #paths == 0 then
    error(who .. ": paths must be a non-empty list of files or directories", 2)
  end
  local cap = opts.bytes or 1048576
  local fcap = opts.file_bytes or 65536
  for name, v in pairs { bytes = cap, file_bytes = fcap } do
    if math.type(v) ~= "integer" or v < 1 then
      error(string.format("%s: %s must be a positive integer, got %s", who, name, tostring(v)), 2)
    end
  end
  local sep = opts.separator or "\n"
  if type(sep) ~= "string" then error(who .. ": separator must be a string", 2) end
  if opts.glob ~= nil and type(opts.glob) ~= "string" then error(who .. ": glob must be a string like '*.h'", 2) end
  if opts.accept ~= nil and type(opts.accept) ~= "function" then
    error(who .. ": accept must be a function(path, head) -> boolean", 2)
  end
  local pat = opts.glob and glob_pattern(opts.glob)
  local info = { files = 0, bytes = 0, skipped_binary = 0, skipped_empty = 0, skipped_unreadable = 0, truncated = 0,
    sources = {} }
  local parts, total = {}, 0
  -- reads one file; named = given by name (errors) rather than found in a directory (skips)
  local function take(path, named)
    local f, err = io.open(path, "rb")
    if not f then
      if named then error(string.format("%s: %s", who, err), 3) end
      info.skipped_unreadable = info.skipped_unreadable + 1
      return
    end
    local room = math.min(fcap, cap - total - (#parts > 0 and #sep or 0))
    if room <= 0 then
      f:close()
      return
    end
    local ok, s = pcall(f.read, f, room)
    f:close()
    if not ok then -- e.g. reading a directory-like special file
      if named then error(string.format("%s: %s: %s", who, path, tostring(s)), 3) end
      info.skipped_unreadable = info.skipped_unreadable + 1
      return
    end
    s = s or ""
    if #s == 0 then
      if named then error(string.format("%s: %s is empty", who, path), 3) end
      info.skipped_empty = info.skipped_empty + 1
      return
    end
    if s:find("\0", 1, true) then
      if named then error(string.format("%s: %s is a binary file (it holds NUL bytes), not text", who, path), 3) end
      info.skipped_binary = info.skipped_binary + 1
      return
    end
    if opts.accept and not named and not opts.accept(path, s:sub(1, 256)) then return end
    if #s == room then
      local g = io.open(path, "rb")
      if g then
        if g:seek("end") > room then info.truncated = info.truncated + 1 end
        g:close()
      end
    end
    if #parts > 0 then
      parts[#parts + 1] = sep
      total = total + #sep
    end
    parts[#parts + 1] = s
    total = total + #s
    info.files = info.files + 1
  end
  local gen = core.generator(opts.seed or 1)
  for _, p in ipairs(paths) do
    if type(p) ~= "string" then error(who .. ": paths must be strings, got a " .. type(p), 2) end
    local f, err = io.open(p, "rb")
    if not f then error(string.format("%s: %s", who, tostring(err)), 2) end
    -- a directory opens on Linux but cannot be read
    local _, rerr, code = f:read(0)
    f:close()
    local is_dir = rerr ~= nil and code == 21
    local before = info.files
    if is_dir then
      local ok, files = pcall(C.list_files, p)
      if not ok then error(who .. ": " .. tostring(files):gsub("^list_files: ", ""), 2) end
      local kept = {}
      for _, fp in ipairs(files) do
        if not pat or basename(fp):match(pat) then kept[#kept + 1] = fp end
      end
      if #kept > 1 then
        local perm = gen:permutation(#kept)
        local shuffled = {}
        for i = 1, #kept do shuffled[i] = kept[math.tointeger(perm:get(i))] end
        kept = shuffled
      end
      for _, fp in ipairs(kept) do
        if total >= cap then break end
        take(fp, false)
      end
      if info.files == before and total < cap then
        error(string.format("%s: %s holds no text file%s (%d entries%s; skipped: %d binary, %d empty, %d unreadable)",
          who, p, opts.glob and (" matching " .. opts.glob) or "", #files,
          opts.glob and (", " .. #kept .. " matching") or "", info.skipped_binary, info.skipped_empty,
          info.skipped_unreadable), 2)
      end
    elseif total < cap then
      take(p, true)
    end
    info.sources[#info.sources + 1] = { path = p, files = info.files - before }
  end
  local s = table.concat(parts)
  info.bytes = #s
  return s, info
end

-- ------------------------------------------------------------- domains

-- A shell script: a first line "#!/bin/sh", "#!/usr/bin/bash", "#! /bin/dash",
-- "#!/usr/bin/env bash" and the like.
local SHELLS = { sh = true, bash = true, dash = true }
function text.is_shell_script(_, head)
  local line = head:match("^#![^\n]*")
  if not line then return false end
  local prog, arg1 = line:match("^#!%s*(%S+)%s*(%S*)")
  if not prog then return false end
  local name = prog:match("([^/]+)$")
  if name == "env" then name = arg1 end
  return SHELLS[name] == true
end

--- The built-in text domains: text every Debian machine with engram's
-- dependencies has (docs/text.md). Each is text.read's options.
--   prose  the licence texts of /usr/share/common-licenses (base-files)
--   c      C headers under /usr/include (libc6-dev and the -dev packages)
--   lua    Lua sources under /usr/share/lua/5.4 (lua-unit's luaunit.lua,
--          luarocks' modules: both installed by make deps)
--   shell  shell scripts in /usr/bin (gzip's zgrep, zdiff, ...; debianutils;
--          found by their #! line: sh, bash or dash)
text.DOMAINS = {
  prose = { paths = { "/usr/share/common-licenses" } },
  c = { paths = { "/usr/include" }, glob = "*.h" },
  lua = { paths = { "/usr/share/lua/5.4" }, glob = "*.lua" },
  shell = { paths = { "/usr/bin" }, accept = text.is_shell_script },
}

-- ------------------------------------------------------------- windows

local WIN_KNOWN = { tokenizer = true, ctx = true, stride = true, holdout = true, block = true }

local function check_int(who, name, v, lo, level)
  if math.type(v) ~= "integer" or v < lo then
    error(string.format("%s: %s must be an integer >= %d, got %s", who, name, lo, tostring(v)), level + 1)
  end
  return v
end

--- Windows of a text: text.windows(str, {tokenizer = text.byte(), ctx = 128,
-- stride = ctx, holdout = 0.1, block = 64 * (ctx + 1)}) -> train, held, info.
-- Samples are windows of ctx + 1 tokens: x = the first ctx, y = the next ctx
-- (x shifted by one). The token stream is cut into blocks of `block` tokens
-- and the last `holdout` share of every block is held out, so the held-out
-- text is spread over the corpus and no training window overlaps it.
-- info: {tokens =, train =, held =, ctx =, vocab =}.
function text.windows(str, opts)
  local who = "text.windows"
  if type(str) ~= "string" then error(who .. ": expected the text (a string), got " .. type(str), 2) end
  opts = util.check_options(who, opts, WIN_KNOWN, 2)
  local tok = opts.tokenizer or text.byte()
  check_tok(who, tok, 2)
  local ctx = check_int(who, "ctx", opts.ctx or 128, 1, 2)
  local stride = check_int(who, "stride", opts.stride or ctx, 1, 2)
  local block = check_int(who, "block", opts.block or 64 * (ctx + 1), 0, 2)
  local holdout = opts.holdout or 0.1
  if type(holdout) ~= "number" or not (holdout >= 0 and holdout < 1) then
    error(who .. ": holdout must be a share in [0, 1), got " .. tostring(holdout), 2)
  end
  local ok, train, held, n = pcall(C.windows, tok, str, ctx, stride, holdout, block)
  if not ok then error(who .. ": " .. tostring(train):gsub("^windows: ", ""), 2) end
  return train, held, { tokens = n, train = #train, held = #held, ctx = ctx, vocab = tok:vocab() }
end

--- Files to windows in one call: text.dataset{paths = ..., ctx = ..., ...}
-- takes text.read's options and text.windows' options; returns train, held, info
-- (info merges both, plus the text's byte count).
function text.dataset(opts)
  local who = "text.dataset"
  local known = {}
  for k in pairs(READ_KNOWN) do known[k] = true end
  for k in pairs(WIN_KNOWN) do known[k] = true end
  opts = util.check_options(who, opts, known, 2)
  local r, w = { who = who }, {}
  for k, v in pairs(opts) do
    if READ_KNOWN[k] then r[k] = v else w[k] = v end
  end
  local ok, s, rinfo = pcall(text.read, r)
  if not ok then error(s, 2) end
  local ok2, train, held, winfo = pcall(text.windows, s, w)
  if not ok2 then error((tostring(train):gsub("^text%.windows", who)), 2) end
  for k, v in pairs(winfo) do rinfo[k] = v end
  return train, held, rinfo
end

--- ctx (T) of a window dataset, or nil for any other dataset.
function text.window(ds)
  if not require("engram.data").is_dataset(ds) then error("text.window: expected a dataset, got " .. type(ds), 2) end
  return (C.window(ds))
end

-- ------------------------------------------------------------- models

local base = require("engram.nn.module")
local nn = require("engram.nn")

local TokenRows = base.class("TokenRows")
--- nn.TokenRows(): [B, T, D] -> [B*T, D] (a view, no parameters): what turns
-- per-position features into the rows of the language-model contract.
function nn.TokenRows() return base.new(TokenRows) end
function TokenRows:forward(x)
  if not core.istensor(x) or x:dim() < 2 then error("TokenRows: expected a tensor [B, T, ..., D]", 2) end
  self.output = x:view(-1, x:size(x:dim()))
  return self.output
end
function TokenRows:backward(x, gy)
  if not core.istensor(x) or not core.istensor(gy) or gy:numel() ~= x:numel() then
    error("TokenRows: backward expects the input [B, T, ..., D] and a gradient of as many elements", 2)
  end
  self.grad_input = gy:view(x:size())
  return self.grad_input
end

--- A bigram language model: Embedding(V, D), TokenRows, Linear(D, V). Each
-- position's logits depend on its own token only, so it honours the language
-- model contract for any T: the baseline every real model should beat.
function text.bigram(V, D)
  if math.type(V) ~= "integer" or V < 1 then error("text.bigram: V must be a positive integer (the vocabulary)", 2) end
  D = D or 64
  if math.type(D) ~= "integer" or D < 1 then error("text.bigram: D must be a positive integer (the width)", 2) end
  local m = nn.Sequential(nn.Embedding(V, D), nn.TokenRows(), nn.Linear(D, V))
  return m
end

-- ------------------------------------------------------------- sampling

local GEN_KNOWN = { tokens = true, temperature = true, top_k = true, seed = true, gen = true, ctx = true }

-- The context length of a model: opts.ctx, else model.ctx or model.config.ctx, else 128.
local function model_ctx(model, opts)
  if opts.ctx ~= nil then return opts.ctx end
  local c = rawget(model, "ctx")
  if c == nil and type(rawget(model, "config")) == "table" then c = model.config.ctx end
  return c or 128
end

--- Continues prompt with a language model: text.generate(model, tok, prompt,
-- {tokens = 200, temperature = 1, top_k = nil, seed = nil, gen = nil, ctx = nil})
-- -> the prompt followed by the new text, and the new text alone.
-- Each step feeds the last <= ctx tokens as ids [1, L], takes the logits of
-- the last position and samples one token in C: softmax(logits / temperature)
-- over the top_k largest (all when nil); temperature 0 is greedy (argmax).
-- Randomness: gen (a generator), else a new generator seeded with seed, else
-- the default generator (engram.seed(n)); the same generator state gives the
-- same text. The model is put in evaluate mode and back.
function text.generate(model, tok, prompt, opts)
  local who = "generate"
  if type(model) ~= "table" or type(model.forward) ~= "function" then
    error(who .. ": expected a model (forward) as argument 1", 2)
  end
  check_tok(who, tok, 2)
  if type(prompt) ~= "string" then error(who .. ": the prompt must be a string, got " .. type(prompt), 2) end
  opts = util.check_options(who, opts, GEN_KNOWN, 2)
  local n = check_int(who, "tokens", opts.tokens or 200, 0, 2)
  local temp = opts.temperature or 1
  if type(temp) ~= "number" or temp ~= temp or temp < 0 or temp == math.huge then
    error(who .. ": temperature must be a finite number >= 0, got " .. tostring(temp), 2)
  end
  local k = opts.top_k
  if k ~= nil then check_int(who, "top_k", k, 1, 2) end
  local ctx = check_int(who, "ctx", model_ctx(model, opts), 1, 2)
  local gen = opts.gen
  if gen == nil and opts.seed ~= nil then
    if math.type(opts.seed) ~= "integer" then error(who .. ": seed must be an integer", 2) end
    gen = core.generator(opts.seed)
  end
  local ids = tok:encode(prompt)
  local m = ids:numel()
  if m == 0 then error(who .. ": the prompt is empty (give at least one character to start from)", 2) end
  local seq = core.zeros(m + n)
  seq:narrow(1, 1, m):copy_(ids)
  local was = model.training
  if model.evaluate then model:evaluate() end
  local V
  for i = m + 1, m + n do
    local L = math.min(ctx, i - 1)
    local x = seq:narrow(1, i - L, L):view(1, L)
    local ok, logits = pcall(model.forward, model, x)
    if not ok then
      if was ~= false and model.train then model:train() end
      error(who .. ": the model's forward failed: " .. tostring(logits), 2)
    end
    V = V or logits:size(logits:dim())
    if logits:dim() ~= 2 or V ~= tok:vocab() or logits:size(1) ~= L then
      if was ~= false and model.train then model:train() end
      local dims = {}
      for d = 1, logits:dim() do dims[d] = tostring(logits:size(d)) end
      error(string.format("%s: the model returned logits [%s] for ids [1, %d]; a language model over this " ..
        "tokenizer returns [%d, %d]", who, table.concat(dims, ", "), L, L, tok:vocab()), 2)
    end
    local ok2, id = pcall(C.sample, logits, temp, k or 0, gen)
    if not ok2 then
      if was ~= false and model.train then model:train() end
      error(who .. ": " .. tostring(id):gsub("^sample: ", ""), 2)
    end
    seq:set(i, id)
  end
  if was ~= false and model.train then model:train() end
  local new = n > 0 and tok:decode(seq:narrow(1, m + 1, n)) or ""
  return prompt .. new, new
end

--- Attaches model:generate(prompt, opts) (text.generate with tok) and
-- model.tokenizer to a model; returns the model.
function text.attach(model, tok)
  if type(model) ~= "table" or type(model.forward) ~= "function" then
    error("text.attach: expected a model (forward) as argument 1", 2)
  end
  check_tok("text.attach", tok, 2)
  model.tokenizer = tok
  model.generate = function(self, prompt, opts)
    local ok, a, b = pcall(text.generate, self, tok, prompt, opts)
    if not ok then error(a, 2) end
    return a, b
  end
  return model
end

return text
