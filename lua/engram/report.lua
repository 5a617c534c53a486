--- A self-contained HTML report (inline CSS and SVG, no scripts, no network)
-- of one or more results documents: a metrics table, the average accuracy
-- after each task of every run on one chart, and a heatmap of each accuracy
-- matrix.
--
--   local html = report.html(docs, {title = "Split MNIST"})
--   report.write("report.html", docs)
local results = require("engram.results")
local metrics = require("engram.metrics")
local json = require("engram.json")

local report = {}

local ESC = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&#39;" }

--- Escapes text for HTML element content and attribute values.
function report.escape(s)
  return (tostring(s):gsub("[&<>\"']", ESC))
end
local esc = report.escape

-- Distinct colours for the runs' lines (Okabe-Ito, readable by colour-blind eyes).
local PALETTE = { "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#999999" }

local function lerp(a, b, t) return a + (b - a) * t end

-- The heatmap colour of an accuracy in [0, 1]: a sequential scale from pale
-- yellow (0) through green to dark blue (1), like viridis reversed.
local STOPS = {
  { 0.00, 255, 255, 217 }, { 0.25, 199, 233, 180 }, { 0.50, 65, 182, 196 },
  { 0.75, 34, 94, 168 }, { 1.00, 8, 29, 88 },
}
function report.color(v)
  if type(v) ~= "number" then error("report.color: expected a number in [0, 1], got " .. type(v), 2) end
  if v ~= v then v = 0 end
  v = math.max(0, math.min(1, v))
  for k = 2, #STOPS do
    local a, b = STOPS[k - 1], STOPS[k]
    if v <= b[1] then
      local t = (v - a[1]) / (b[1] - a[1])
      return string.format("#%02x%02x%02x", math.floor(lerp(a[2], b[2], t) + 0.5),
        math.floor(lerp(a[3], b[3], t) + 0.5), math.floor(lerp(a[4], b[4], t) + 0.5))
    end
  end
  return "#081d58"
end

local function num(x) return string.format("%.1f", x) end

local function pct(v) return v == nil and "n/a" or string.format("%.1f%%", 100 * v) end
local function pp(v) return v == nil and "n/a" or string.format("%+.1f", 100 * v) end
local function pts(v) return v == nil and "n/a" or string.format("%.1f", 100 * v) end
local function ratio(v) return v == nil and "n/a" or string.format("%.2f", v) end

local function strategies_text(doc)
  local names = {}
  for _, s in ipairs(doc.strategies or {}) do
    local opts = {}
    local keys = {}
    for k in pairs(s.options or {}) do keys[#keys + 1] = k end
    table.sort(keys)
    for _, k in ipairs(keys) do
      local v = s.options[k]
      opts[#opts + 1] = k .. "=" .. (type(v) == "table" and json.encode(v) or tostring(v))
    end
    names[#names + 1] = s.name .. (#opts > 0 and (" (" .. table.concat(opts, ", ") .. ")") or "")
  end
  return #names > 0 and table.concat(names, " + ") or "–"
end

--- One accuracy matrix as an SVG heatmap with cell values and a colour scale.
local scale_ids = 0
function report.heatmap_svg(doc, label)
  local ok, why = results.validate(doc)
  if not ok then error("report.heatmap_svg: " .. why, 2) end
  scale_ids = scale_ids + 1
  local scale_id = "scale" .. scale_ids
  local R = doc.acc
  local T = #R
  local cell = T <= 6 and 56 or (T <= 12 and 40 or 26)
  local left, top = 78, 44
  local w = left + T * cell + 90
  -- room for the rotated axis title and the colour scale even for one task
  local ph = math.max(T * cell, 130)
  local h = top + ph + 12
  local out = {}
  out[#out + 1] = string.format(
    '<svg class="heatmap" xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" ' ..
      'role="img" aria-label="accuracy matrix of %s">',
    w, h, w, h, esc(label))
  out[#out + 1] = string.format('<text x="%d" y="14" class="axis-title" text-anchor="middle">evaluated on task</text>',
    left + T * cell // 2)
  for j = 1, T do
    out[#out + 1] = string.format('<text x="%d" y="%d" text-anchor="middle" class="tick">%d</text>',
      left + (j - 1) * cell + cell // 2, top - 8, j)
  end
  out[#out + 1] = string.format(
    '<text x="14" y="%d" class="axis-title" text-anchor="middle" transform="rotate(-90 14 %d)">' ..
      'after training task</text>',
    top + ph // 2, top + ph // 2)
  for i = 1, T do
    local y = top + (i - 1) * cell
    out[#out + 1] = string.format('<text x="%d" y="%d" text-anchor="end" class="tick">%d</text>',
      left - 8, y + cell // 2 + 4, i)
    for j = 1, T do
      local v = R[i][j]
      local x = left + (j - 1) * cell
      local fill = report.color(v)
      local ink = v > 0.55 and "#ffffff" or "#111111"
      out[#out + 1] = string.format(
        '<rect class="cell%s" x="%d" y="%d" width="%d" height="%d" fill="%s">' ..
          '<title>after task %d, task %d: %.2f%%</title></rect>',
        j > i and " future" or "", x, y, cell - 1, cell - 1, fill, i, j, 100 * v)
      if cell >= 34 then
        out[#out + 1] = string.format('<text x="%d" y="%d" text-anchor="middle" class="val" fill="%s">%s</text>',
          x + cell // 2, y + cell // 2 + 4, ink, num(100 * v))
      end
    end
  end
  -- diagonal outline: each task right after training it
  for i = 1, T do
    out[#out + 1] = string.format(
      '<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#e41a1c" stroke-width="1.5"/>',
      left + (i - 1) * cell, top + (i - 1) * cell, cell - 1, cell - 1)
  end
  -- colour scale
  local sx, sh = left + T * cell + 24, ph
  out[#out + 1] = string.format('<defs><linearGradient id="%s" x1="0" y1="1" x2="0" y2="0">', scale_id)
  for _, s in ipairs(STOPS) do
    out[#out + 1] = string.format('<stop offset="%g" stop-color="%s"/>', s[1], report.color(s[1]))
  end
  out[#out + 1] = "</linearGradient></defs>"
  out[#out + 1] = string.format('<rect x="%d" y="%d" width="14" height="%d" fill="url(#%s)" stroke="#888"/>',
    sx, top, sh, scale_id)
  for _, v in ipairs({ 0, 50, 100 }) do
    out[#out + 1] = string.format('<text x="%d" y="%d" class="tick">%d%%</text>',
      sx + 20, top + sh - sh * v // 100 + 4, v)
  end
  out[#out + 1] = "</svg>"
  return table.concat(out, "\n")
end

--- The average accuracy after each task of every run, on one SVG line chart.
function report.curves_svg(docs, labels)
  if type(docs) ~= "table" then error("report.curves_svg: expected an array of results documents", 2) end
  for i, d in ipairs(docs) do
    local ok, why = results.validate(d)
    if not ok then error(string.format("report.curves_svg: document %d: %s", i, why), 2) end
  end
  if labels ~= nil and type(labels) ~= "table" then error("report.curves_svg: labels must be an array", 2) end
  local named = {}
  for k, d in ipairs(docs) do
    local l = labels and labels[k]
    named[k] = type(l) == "string" and l or (type(d.name) == "string" and d.name) or ("run " .. k)
  end
  labels = named
  local W, H = 920, 380
  local ml, mr, mt, mb = 60, 250, 20, 50
  local pw, ph = W - ml - mr, H - mt - mb
  local Tmax = 1
  for _, d in ipairs(docs) do Tmax = math.max(Tmax, #d.acc) end
  local function X(t)
    if Tmax == 1 then return ml + pw / 2 end
    return ml + (t - 1) / (Tmax - 1) * pw
  end
  local function Y(v) return mt + (1 - v) * ph end
  local out = {}
  out[#out + 1] = string.format(
    '<svg class="curves" xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" ' ..
      'role="img" aria-label="average accuracy after each task">',
    W, H, W, H)
  for v = 0, 100, 10 do
    local y = Y(v / 100)
    out[#out + 1] = string.format('<line x1="%d" y1="%s" x2="%d" y2="%s" class="grid"/>', ml, num(y), ml + pw, num(y))
    out[#out + 1] = string.format('<text x="%d" y="%s" text-anchor="end" class="tick">%d%%</text>',
      ml - 6, num(y + 4), v)
  end
  for t = 1, Tmax do
    local x = X(t)
    out[#out + 1] = string.format('<line x1="%s" y1="%d" x2="%s" y2="%d" class="axis"/>', num(x), mt + ph, num(x),
      mt + ph + 5)
    out[#out + 1] = string.format('<text x="%s" y="%d" text-anchor="middle" class="tick">%d</text>', num(x),
      mt + ph + 18, t)
  end
  out[#out + 1] = string.format('<line x1="%d" y1="%d" x2="%d" y2="%d" class="axis"/>', ml, mt, ml, mt + ph)
  out[#out + 1] = string.format('<line x1="%d" y1="%d" x2="%d" y2="%d" class="axis"/>', ml, mt + ph, ml + pw, mt + ph)
  out[#out + 1] = string.format('<text x="%d" y="%d" text-anchor="middle" class="axis-title">tasks learned</text>',
    ml + pw // 2, H - 8)
  out[#out + 1] = string.format(
    '<text x="16" y="%d" text-anchor="middle" class="axis-title" transform="rotate(-90 16 %d)">' ..
      'average accuracy on tasks so far</text>',
    mt + ph // 2, mt + ph // 2)
  for k, d in ipairs(docs) do
    local color = PALETTE[(k - 1) % #PALETTE + 1]
    local a = d.avg_acc_per_task or metrics.avg_acc_per_task(d.acc)
    local points = {}
    for t = 1, #a do points[#points + 1] = num(X(t)) .. "," .. num(Y(a[t])) end
    out[#out + 1] = string.format(
      '<polyline class="run-line" points="%s" fill="none" stroke="%s" stroke-width="2.5"%s>' ..
        '<title>%s</title></polyline>',
      table.concat(points, " "), color, k > #PALETTE and ' stroke-dasharray="6 3"' or "", esc(labels[k]))
    for t = 1, #a do
      out[#out + 1] = string.format(
        '<circle cx="%s" cy="%s" r="3.5" fill="%s"><title>%s after task %d: %.1f%%</title></circle>',
        num(X(t)), num(Y(a[t])), color, esc(labels[k]), t, 100 * a[t])
    end
    local ly = mt + 10 + (k - 1) * 20
    local lx = ml + pw + 20
    out[#out + 1] = string.format('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2.5"/>',
      lx, ly, lx + 22, ly, color)
    local text = labels[k]
    if utf8.len(text) and utf8.len(text) > 30 then text = text:sub(1, utf8.offset(text, 30) - 1) .. "…" end
    out[#out + 1] = string.format('<text x="%d" y="%d" class="legend">%s</text>', lx + 28, ly + 4, esc(text))
  end
  out[#out + 1] = "</svg>"
  return table.concat(out, "\n")
end

local CSS = [[
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1b1b1b; margin: 20px 24px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
h3 { font-size: 15px; margin: 0 0 4px; }
.meta { color: #666; font-size: 12px; }
table.metrics { border-collapse: collapse; font-variant-numeric: tabular-nums; }
.table-wrap { overflow-x: auto; }
table.metrics { font-size: 13px; }
table.metrics th, table.metrics td { padding: 4px 7px; border-bottom: 1px solid #e5e5e5; text-align: right;
  white-space: nowrap; vertical-align: top; }
table.metrics td.wrap { white-space: normal; min-width: 90px; max-width: 200px; }
table.metrics th { background: #f4f4f4; font-weight: 600; }
table.metrics td.name, table.metrics th.name { text-align: left; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 6px; }
.grid-runs { display: flex; flex-wrap: wrap; gap: 18px 28px; align-items: flex-start; }
.run { border: 1px solid #e3e3e3; border-radius: 6px; padding: 10px 12px; }
svg text { font-family: system-ui, sans-serif; }
svg.curves { max-width: 100%; height: auto; }
svg .tick { font-size: 11px; fill: #444; }
svg .val { font-size: 11px; }
svg .axis-title { font-size: 12px; fill: #333; }
svg .legend { font-size: 12px; fill: #222; }
svg .grid { stroke: #e8e8e8; }
svg .axis { stroke: #555; }
svg rect.future { opacity: 0.55; }
.note { color: #666; font-size: 12px; max-width: 900px; }
]]

local known = { title = true, created = true }

--- The report page for an array of documents (a new string). opts: title,
-- created (a timestamp text; default now). Raises on an invalid document.
-- The sample grids runs recorded (engram.image.record: extra.grids), as
-- images embedded in the page; anything that is not base64 is left out.
local perplexity_html -- (out, docs, labels): below
local function grids_html(out, docs, labels)
  local any = false
  for k, d in ipairs(docs) do
    local grids = type(d.extra) == "table" and d.extra.grids
    if type(grids) == "table" and #grids > 0 then
      if not any then
        out[#out + 1] = "<h2>What is replayed</h2>"
        out[#out + 1] = '<p class="note">Samples a strategy stored or generated, after each task.</p>'
        any = true
      end
      out[#out + 1] = string.format('<div class="run"><h3>%s</h3><div class="grid-runs">', esc(labels[k]))
      for _, g in ipairs(grids) do
        if type(g) == "table" and type(g.png) == "string" and g.png:match("^[%w+/]+=*$") then
          out[#out + 1] = string.format('<figure><img alt="%s" src="data:image/png;base64,%s">' ..
            "<figcaption>%s, after task %s</figcaption></figure>", esc(tostring(g.name or "samples")), g.png,
            esc(tostring(g.name or "samples")), esc(tostring(g.task or "?")))
        end
      end
      out[#out + 1] = "</div></div>"
    end
  end
end

--- A language-modelling run's perplexity matrix (doc.perplexity) as an HTML
-- table: rows after each task, columns the tasks evaluated, the untrained
-- row and each task's rise by the end; "" when the document has none.
function report.perplexity_table(doc)
  local P = type(doc) == "table" and doc.perplexity
  if type(P) ~= "table" or #P == 0 then return "" end
  local T = #P
  local tasks = type(doc.scenario) == "table" and type(doc.scenario.details) == "table" and doc.scenario.details.tasks
  local out = { '<table class="metrics"><tr><th class="name">after</th>' }
  for j = 1, T do
    local tj = type(tasks) == "table" and tasks[j]
    out[#out + 1] = "<th>" .. esc(type(tj) == "table" and type(tj.name) == "string" and tj.name or ("task " .. j)) ..
      "</th>"
  end
  out[#out + 1] = "</tr>"
  local function row(name, v, fmt)
    local cells = { '<tr><td class="name">' .. esc(name) .. "</td>" }
    for j = 1, #v do cells[#cells + 1] = "<td>" .. esc(string.format(fmt, v[j])) .. "</td>" end
    return table.concat(cells) .. "</tr>"
  end
  for i = 1, T do out[#out + 1] = row("task " .. i, P[i], "%.2f") end
  if type(doc.baseline_perplexity) == "table" and #doc.baseline_perplexity == T then
    out[#out + 1] = row("untrained", doc.baseline_perplexity, "%.2f")
  end
  if type(doc.perplexity_ratio) == "table" and #doc.perplexity_ratio > 0 then
    out[#out + 1] = row("rise", doc.perplexity_ratio, "%.2f×")
  end
  out[#out + 1] = "</table>"
  return table.concat(out, "\n")
end

--- A language-model run's attention entropy (extra.attention_entropy,
-- engram.lm) as an HTML table: a row per layer and head, columns before
-- training and after each task, cells in nats coloured by the normalised
-- entropy (1: uniform over the keys); "" when the document has none.
function report.entropy_table(doc)
  local ae = type(doc) == "table" and type(doc.extra) == "table" and doc.extra.attention_entropy
  if type(ae) ~= "table" or type(ae.before) ~= "table" or type(ae.after) ~= "table" then return "" end
  local cols = { ae.before }
  for t = 1, #ae.after do cols[#cols + 1] = ae.after[t] end
  local out = { '<table class="metrics"><tr><th class="name">layer, head</th><th>before</th>' }
  for t = 1, #ae.after do out[#out + 1] = "<th>task " .. t .. "</th>" end
  out[#out + 1] = "</tr>"
  for l, heads in ipairs(ae.before.entropy or {}) do
    for h = 1, #heads do
      local cells = { string.format('<tr><td class="name">%d, %d</td>', l, h) }
      for _, c in ipairs(cols) do
        local v = c.entropy and c.entropy[l] and c.entropy[l][h]
        local n = c.normalized and c.normalized[l] and c.normalized[l][h]
        if type(v) == "number" and type(n) == "number" then
          cells[#cells + 1] = string.format('<td style="background:%s;color:%s" title="normalised %.3f">%.3f</td>',
            report.color(n), n > 0.55 and "#ffffff" or "#111111", n, v)
        else
          cells[#cells + 1] = "<td>n/a</td>"
        end
      end
      out[#out + 1] = table.concat(cells) .. "</tr>"
    end
  end
  out[#out + 1] = "</table>"
  return table.concat(out, "\n")
end

--- Each block's drift (extra.block_drift, engram.lm) as an HTML table, "" without it.
function report.block_drift_table(doc)
  local bd = type(doc) == "table" and type(doc.extra) == "table" and doc.extra.block_drift
  if type(bd) ~= "table" or type(bd.after) ~= "table" or #bd.after == 0 then return "" end
  local out = { '<table class="metrics"><tr><th class="name">block</th>' }
  for t = 1, #bd.after do out[#out + 1] = "<th>task " .. t .. "</th>" end
  out[#out + 1] = "</tr>"
  for b = 1, #(bd.after[1] or {}) do
    local cells = { string.format('<td class="name">%d</td>', b) }
    for t = 1, #bd.after do
      local v = bd.after[t] and bd.after[t][b]
      cells[#cells + 1] = "<td>" .. (type(v) == "number" and string.format("%.0f%%", 100 * v) or "n/a") .. "</td>"
    end
    out[#out + 1] = "<tr>" .. table.concat(cells) .. "</tr>"
  end
  out[#out + 1] = "</table>"
  return table.concat(out, "\n")
end

-- The language-model section: attention entropy and block drift per run.
local function lm_html(out, docs, labels)
  local any = false
  for k, d in ipairs(docs) do
    local e, b = report.entropy_table(d), report.block_drift_table(d)
    if e ~= "" or b ~= "" then
      if not any then
        out[#out + 1] = "<h2>Attention entropy and block drift</h2>"
        out[#out + 1] = '<p class="note">On a fixed probe set of the first task\'s held-out windows (docs/lm.md). ' ..
            "Attention entropy: the mean over windows and query positions of each attention row's entropy, in " ..
            "nats, per layer and head, before training and after each task; colour: the normalised entropy " ..
            "(over log of the number of keys; dark = near uniform). Block drift: the mean distance of each " ..
            "block's output per token position from its output after task 1, over its mean norm then.</p>"
        out[#out + 1] = '<div class="grid-runs">'
        any = true
      end
      out[#out + 1] = string.format('<div class="run"><h3>%s</h3>%s%s%s</div>', esc(labels[k]),
        e ~= "" and "<h4>Attention entropy</h4>" .. e or "", b ~= "" and "<h4>Block drift</h4>" or "", b)
    end
  end
  if any then out[#out + 1] = "</div>" end
end

-- The perplexity section: one table per language-modelling run.
perplexity_html = function(out, docs, labels)
  local any = false
  for k, d in ipairs(docs) do
    local t = report.perplexity_table(d)
    if t ~= "" then
      if not any then
        out[#out + 1] = "<h2>Held-out perplexity</h2>"
        out[#out + 1] = '<p class="note">Row i, column j: perplexity on task j\'s held-out text after training ' ..
            "task i (exp of the mean cross-entropy per token; lower is better). Rise: the perplexity after the " ..
            "last task over the one right after learning the task (forgetting shows as a rise above 1).</p>"
        out[#out + 1] = '<div class="grid-runs">'
        any = true
      end
      out[#out + 1] = string.format('<div class="run"><h3>%s</h3>%s</div>', esc(labels[k]), t)
    end
  end
  if any then out[#out + 1] = "</div>" end
end

function report.html(docs, opts)
  opts = opts or {}
  for k in pairs(opts) do
    if not known[k] then error("report.html: unknown option '" .. tostring(k) .. "' (known: created, title)", 2) end
  end
  if type(docs) ~= "table" or #docs == 0 then error("report.html: expected a non-empty array of results", 2) end
  local labels, seen = {}, {}
  for k, d in ipairs(docs) do
    local ok, err = results.validate(d)
    if not ok then error(string.format("report.html: run %d: %s", k, err), 2) end
    local label = tostring(d.name or ("run " .. k))
    if seen[label] then label = label .. " #" .. k end
    seen[label] = true
    labels[k] = label
  end
  local title = opts.title or "engram report"
  local out = {}
  out[#out + 1] = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">"
  out[#out + 1] = "<title>" .. esc(title) .. "</title>"
  out[#out + 1] = "<style>\n" .. CSS .. "</style>\n</head>\n<body>"
  out[#out + 1] = "<h1>" .. esc(title) .. "</h1>"
  out[#out + 1] = string.format('<p class="meta">%d run%s · generated %s</p>', #docs, #docs == 1 and "" or "s",
    esc(opts.created or os.date("!%Y-%m-%d %H:%M UTC")))

  out[#out + 1] = "<h2>Metrics</h2>"
  out[#out + 1] = '<div class="table-wrap"><table class="metrics">\n' ..
      '<tr><th class="name">run</th><th class="name">scenario</th>' ..
      '<th class="name">strategies</th><th>tasks</th><th>seed</th><th>ACC</th><th>BWT</th><th>FWT</th>' ..
      '<th>forgetting</th><th>RKR</th><th>NAR</th><th>CER</th><th>train s</th><th>eval s</th>' ..
      '<th>params</th><th>peak MB</th></tr>'
  for k, d in ipairs(docs) do
    local sc = d.scenario and (d.scenario.name .. (d.scenario.kind and (" (" .. d.scenario.kind .. ")") or "")) or "–"
    local function cell(v) return "<td>" .. esc(v) .. "</td>" end
    out[#out + 1] = table.concat({
      "<tr>",
      string.format('<td class="name wrap"><span class="swatch" style="background:%s"></span>%s</td>',
        PALETTE[(k - 1) % #PALETTE + 1], esc(labels[k])),
      '<td class="name wrap">' .. esc(sc) .. "</td>",
      '<td class="name wrap">' .. esc(strategies_text(d)) .. "</td>",
      cell(#d.acc), cell(d.seed ~= nil and tostring(d.seed) or "–"),
      cell(pct(d.avg_acc or metrics.acc(d.acc))), cell(pp(d.bwt)), cell(pp(d.fwt)), cell(pts(d.forgetting)),
      cell(ratio(d.rkr)), cell(ratio(d.nar)), cell(pp(d.cer)),
      cell(results.seconds(d.train_seconds)), cell(results.seconds(d.eval_seconds)),
      cell(results.thousands(d.trainable_params)),
      cell(d.peak_rss_mb and string.format("%.0f", d.peak_rss_mb) or "n/a"),
      "</tr>",
    })
  end
  out[#out + 1] = "</table></div>"
  out[#out + 1] = '<p class="note">ACC: mean accuracy over all tasks after the last one. ' ..
      'BWT, FWT, forgetting and CER in percentage points; BWT &lt; 0 means forgetting. ' ..
      'RKR: retained fraction of each task\'s accuracy; NAR: accuracy ' ..
      'right after training relative to training the task alone. n/a: undefined for this run (see the JSON\'s ' ..
      '"undefined").</p>'

  local iso_rows = {}
  for k, d in ipairs(docs) do
    local iso = type(d.extra) == "table" and d.extra.isolation
    if type(iso) == "table" and type(iso.per_task) == "table" then
      for t, p in ipairs(iso.per_task) do
        if type(p) == "table" and type(p.trainable) == "number" then
          iso_rows[#iso_rows + 1] = string.format("<tr><td class=\"name\">%s</td><td>%d</td><td>%s</td><td>%s</td>" ..
            "<td>%s</td><td>%s</td><td>%s</td></tr>", esc(labels[k]), t, esc(results.thousands(p.trainable)),
            esc(results.thousands(p.total)), esc(string.format("%.2f%%", 100 * (p.share or 0))),
            esc(results.thousands(p.bytes)), esc(results.thousands(p.full_bytes)))
        end
      end
    end
  end
  if #iso_rows > 0 then
    out[#out + 1] = "<h2>Parameter isolation</h2>"
    out[#out + 1] = '<div class="table-wrap"><table class="metrics">\n<tr><th class="name">run</th><th>task</th>' ..
        "<th>trained params</th><th>params</th><th>share</th><th>bytes stored</th><th>full copy bytes</th></tr>"
    out[#out + 1] = table.concat(iso_rows, "\n")
    out[#out + 1] = "</table></div>"
    out[#out + 1] = '<p class="note">Per task: the parameters it trained (the rest frozen or another task\'s), ' ..
        'their share of the model at that time, the float32 bytes kept for the task beside the shared rest, and ' ..
        'those of a full copy of the model.</p>'
  end

  out[#out + 1] = "<h2>Average accuracy after each task</h2>"
  out[#out + 1] = report.curves_svg(docs, labels)

  out[#out + 1] = "<h2>Accuracy matrices</h2>"
  out[#out + 1] = '<p class="note">Row i, column j: accuracy on task j after training task i, in %. ' ..
      'Outlined: each task right after training it; faded: tasks not trained yet.</p>'
  out[#out + 1] = '<div class="grid-runs">'
  for k, d in ipairs(docs) do
    out[#out + 1] = '<div class="run">'
    out[#out + 1] = string.format("<h3>%s</h3>", esc(labels[k]))
    out[#out + 1] = report.heatmap_svg(d, labels[k])
    out[#out + 1] = "</div>"
  end
  out[#out + 1] = "</div>"
  perplexity_html(out, docs, labels)
  lm_html(out, docs, labels)
  grids_html(out, docs, labels)
  out[#out + 1] = "</body>\n</html>\n"
  return table.concat(out, "\n")
end

--- Writes report.html(docs, opts) to path atomically; raises on failure.
function report.write(path, docs, opts)
  local ok, html = pcall(report.html, docs, opts)
  if not ok then error(html, 2) end
  local wok, err = json.write_atomic(path, html)
  if not wok then error("report.write: " .. err, 2) end
  return true
end

return report
