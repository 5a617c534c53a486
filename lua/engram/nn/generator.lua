--- engram.nn.generator: what the VAE and the GAN share — their options'
-- checks, labels for a conditional generator, fit, copy_from, clone, state
-- and the parameter methods (both keep their parameters in one arena,
-- self.net, with two parts: `parts` names them in state()).
local core = require("engram.core")

local generator = {}

--- Checks v as an integer > 0 (>= 0 with allow_zero), naming who and name.
function generator.posint(who, v, name, allow_zero)
  if math.type(v) ~= "integer" or v < (allow_zero and 0 or 1) then
    error(string.format("%s: %s must be an integer %s, got %s", who, name, allow_zero and ">= 0" or "> 0",
      tostring(v)), 0)
  end
end

--- The options table checked against defaults (an unknown key names the
-- known ones; input required), with input, latent, classes, hidden (default
-- default_hidden), lr and seed checked. Returns a new table.
function generator.options(who, opts, defaults, default_hidden, latent_what)
  if type(opts) ~= "table" then error(who .. ": expected an options table {input = ..., latent = ...}", 0) end
  local o = {}
  for k, v in pairs(opts) do
    if defaults[k] == nil then
      local names = {}
      for n in pairs(defaults) do names[#names + 1] = n end
      table.sort(names)
      error(string.format("%s: unknown option '%s' (known: %s)", who, tostring(k), table.concat(names, ", ")), 0)
    end
    o[k] = v
  end
  for k, v in pairs(defaults) do if o[k] == nil then o[k] = v end end
  if not o.input then error(who .. ": the option 'input' (floats per sample) is required", 0) end
  generator.posint(who, o.input, "input (floats per sample)")
  generator.posint(who, o.latent, "latent (" .. latent_what .. ")")
  generator.posint(who, o.classes, "classes", true)
  o.hidden = o.hidden or default_hidden
  if type(o.hidden) ~= "table" or #o.hidden == 0 then
    error(string.format("%s: hidden must be a list of sizes, e.g. {%s}", who, table.concat(default_hidden, ", ")), 0)
  end
  for i, h in ipairs(o.hidden) do generator.posint(who, h, "hidden[" .. i .. "]") end
  if type(o.lr) ~= "number" or o.lr ~= o.lr or o.lr <= 0 or o.lr == math.huge then
    error(who .. ": lr must be a positive finite number, got " .. tostring(o.lr), 0)
  end
  generator.posint(who, o.seed, "seed", true)
  return o
end

--- The one-hot rows of C classes (for conditional generators).
function generator.eye(C)
  if C == 0 then return nil end
  local e = core.zeros(C, C)
  for c = 1, C do e:set(c, c, 1) end
  return e
end

--- Adds the shared methods to class cls (who: "vae" or "gan"; new: the
-- class's constructor from options; parts: the names of net's two modules).
function generator.install(cls, who, new, parts)
  local WHO = who:upper()
  -- Checks y as n class ids of a conditional generator (the error at level).
  function cls:_check_labels(n, y, method, level)
    local C = self.options.classes
    if not core.istensor(y) or y:numel() ~= n then
      error(string.format("%s:%s: a conditional %s (classes = %d) needs a label per sample", who, method, WHO, C),
        level)
    end
    local ymin, ymax = y:min(), y:max()
    if ymin < 0 or ymax >= C then
      error(string.format("%s:%s: labels must be class ids in [0, %d), got %g..%g", who, method, C, ymin, ymax), level)
    end
  end

  -- x with the one-hot labels y joined (conditional), or x.
  function cls:_with_label(x, y, method)
    if self.options.classes == 0 then return x end
    self:_check_labels(x:size(1), y, method, 4)
    return core.cat({ x, self._eye:index(y:view(-1) + 1) }, 2)
  end

  -- n labels drawn uniformly from the classes (a conditional sample without labels).
  function cls:_random_labels(n)
    local labels = core.zeros(n)
    for i = 1, n do labels:set(i, self.rng:randint(1, self.options.classes) - 1) end
    return labels
  end

  -- Checks sample's arguments.
  function cls:_check_sample(n)
    if math.type(n) ~= "integer" or n < 1 then
      error(string.format("%s:sample: n must be a positive integer, got %s", who, tostring(n)), 3)
    end
    if self.trained == 0 then
      error(string.format("%s:sample: the %s is untrained (train it first: %s:fit(ds), %s:train_batch(x) or " ..
        "copy_from)", who, WHO, who, who), 3)
    end
  end

  --- Trains on a dataset: opts.iterations [1000] steps of opts.batch [128]
  -- samples (seeded by opts.seed or the generator's). Returns the last
  -- step's losses.
  function cls:fit(ds, opts)
    if not require("engram.data").is_dataset(ds) then
      error(string.format("%s:fit: expected a dataset, got %s", who, type(ds)), 2)
    end
    opts = opts or {}
    local iterations, batch = opts.iterations or 1000, opts.batch or 128
    generator.posint(who, iterations, "fit's iterations")
    generator.posint(who, batch, "fit's batch")
    local it = ds:batches { batch = batch, shuffle = true, flat = true, seed = opts.seed or self.options.seed }
    local last = {}
    for _ = 1, iterations do
      local x, y = it:next()
      if x == nil then x, y = it:next() end
      last = table.pack(self:train_batch(x, y))
    end
    return table.unpack(last, 1, last.n)
  end

  function cls:copy_from(other)
    if getmetatable(other) ~= cls then error(string.format("%s:copy_from: expected a %s", who, WHO), 2) end
    self.net:copy_params(other.net)
    self.trained = other.trained
  end

  --- A generator with the same options and parameters (its own arena and optimisers).
  function cls:clone()
    local o = {}
    for k, v in pairs(self.options) do o[k] = v end
    local c = new(o)
    c:copy_from(self)
    return c
  end

  --- The parameters as named tensors ("<part 1>.1.weight", "<part 2>.3.bias", ...).
  function cls:state()
    local out = {}
    for _, p in ipairs(self.net:parameters()) do
      out[(p.name:gsub("^1%.", parts[1] .. "."):gsub("^2%.", parts[2] .. "."))] = p.value
    end
    return out
  end

  --- What a checkpoint needs to continue training exactly: the parameters
  -- (state()) and the optimisers' buffers ("optim.<optimiser>.<group>.<m|v|buf>")
  -- as tensors; the optimisers' scalars, the noise generator's state and the
  -- steps taken as a JSON value. load_checkpoint puts them back.
  function cls:checkpoint()
    local tensors, meta = self:state(), { trained = self.trained, rng = self.rng:state(), optim = {} }
    for oname, opt in pairs(self:_optimizers()) do
      local sd = opt:state_dict()
      local m = { kind = sd.kind, step = sd.step, lr = sd.lr, groups = {} }
      for g, e in pairs(sd.groups) do
        m.groups[g] = e.t
        for _, k in ipairs { "buf", "m", "v" } do
          if e[k] then tensors["optim." .. oname .. "." .. g .. "." .. k] = e[k] end
        end
      end
      meta.optim[oname] = m
    end
    return tensors, meta
  end

  --- Restores what checkpoint() gave; everything is checked before anything
  -- changes (an error naming the problem, prefixed with who).
  function cls:load_checkpoint(tensors, meta, caller)
    local function bad(msg) error(string.format("%s: %s", caller, msg), 0) end
    if type(meta) ~= "table" or math.type(meta.trained) ~= "integer" or type(meta.rng) ~= "string" or
        type(meta.optim) ~= "table" then
      bad("the " .. WHO .. "'s records (steps, noise generator, optimisers) are missing")
    end
    local params = self:state()
    for name, p in pairs(params) do
      local t = tensors[name]
      if not t then bad("the checkpoint lacks " .. name) end
      if t:numel() ~= p:numel() then
        bad(string.format("%s has %d values, the %s %d", name, t:numel(), WHO, p:numel()))
      end
    end
    local sds = {}
    for oname in pairs(self:_optimizers()) do
      local m = meta.optim[oname]
      if type(m) ~= "table" or type(m.groups) ~= "table" then bad("the optimiser '" .. oname .. "' is missing") end
      local sd = { kind = m.kind, step = m.step, lr = m.lr, groups = {} }
      for g, t in pairs(m.groups) do sd.groups[g] = { t = t } end
      sds[oname] = sd
    end
    for name, t in pairs(tensors) do
      local oname, g, k = name:match("^optim%.(%w+)%.(.+)%.(%a+)$")
      if oname then
        if not sds[oname] or not sds[oname].groups[g] then bad("optimiser tensor '" .. name .. "' has no group") end
        sds[oname].groups[g][k] = t
      elseif not params[name] then
        bad("unknown tensor '" .. name .. "'")
      end
    end
    local opts = self:_optimizers()
    for oname, sd in pairs(sds) do
      local ok, err = pcall(opts[oname].load_state_dict, opts[oname], sd)
      if not ok then bad(tostring(err)) end
    end
    for name, p in pairs(params) do p:copy_(tensors[name]) end
    self.rng:set_state(meta.rng)
    self.trained = meta.trained
  end

  function cls:parameters() return self.net:parameters() end
  function cls:groups() return self.net:groups() end
  function cls:numel() return self.net:numel() end
  function cls:zero_grad() self.net:zero_grad() end
end

return generator
