-- engram.report and `engram report`: a self-contained page with one heatmap
-- per run, one polyline per run, the metrics table, escaping, and the
-- command's options and errors.
local lu = require("luaunit")
local report = require("engram.report")
local results = require("engram.results")
local cmd = require("engram.cmd.report")

local DATA = "tests/lua/data/"

local function count(s, pattern)
  local n = 0
  for _ in s:gmatch(pattern) do n = n + 1 end
  return n
end

local helpers = require("helpers")
local read = helpers.read_file
local write = helpers.write_file
local sink = helpers.sink

local function all_docs()
  local docs = results.load(DATA .. "naive_vs_replay.json")
  docs[#docs + 1] = results.load(DATA .. "ewc_permuted.json")[1]
  return docs
end

TestReport = {}

function TestReport.test_one_heatmap_and_one_polyline_per_run()
  local docs = all_docs()
  local html = report.html(docs, { title = "Split MNIST", created = "today" })
  lu.assertEquals(count(html, '<svg class="heatmap"'), 3)
  lu.assertEquals(count(html, '<polyline class="run%-line"'), 3)
  lu.assertEquals(count(html, '<svg class="curves"'), 1)
  -- 5x5 + 5x5 + 3x3 cells
  lu.assertEquals(count(html, '<rect class="cell'), 59)
  lu.assertStrContains(html, "<title>Split MNIST</title>")
  lu.assertStrContains(html, "generated today")
end

function TestReport.test_page_is_self_contained()
  local html = report.html(all_docs())
  lu.assertStrContains(html, "<!DOCTYPE html>")
  lu.assertStrContains(html, "<style>")
  lu.assertNil(html:find("<script", 1, true))
  lu.assertNil(html:find("https?://[^\"]*%.css"))
  lu.assertNil(html:find(" src=", 1, true))
  lu.assertNil(html:find("<link", 1, true))
end

function TestReport.test_metrics_table_and_curve_values()
  local docs = all_docs()
  local html = report.html(docs)
  -- naive: ACC 19.8%, BWT -99.4; replay: ACC 87.5%, CER +44.3
  lu.assertStrContains(html, "<td>19.8%</td><td>-99.4</td>")
  lu.assertStrContains(html, "<td>87.5%</td>")
  lu.assertStrContains(html, "<td>+44.3</td>")
  lu.assertStrContains(html, "<td>478,410</td>")
  lu.assertStrContains(html, "replay (batch=64, memory=1000)")
  -- the naive curve ends at 19.8% after task 5
  lu.assertStrContains(html, "naive after task 5: 19.8%")
  -- the heatmap has cell values
  lu.assertStrContains(html, ">99.9</text>")
end

function TestReport.test_names_from_json_are_escaped()
  local docs = all_docs()
  local html = report.html(docs)
  lu.assertNil(html:find("<lambda=5000>", 1, true))
  lu.assertStrContains(html, "ewc &lt;lambda=5000&gt; &amp; &quot;online&quot;")
  local evil = results.new{ name = "</title><script>alert(1)</script>", acc = { { 1 } },
    strategies = { { name = "<b>", options = { ["k<"] = "v>" } } }, scenario = { name = "a&b" } }
  html = report.html({ evil }, { title = "<i>t</i>" })
  lu.assertNil(html:find("<script>", 1, true))
  lu.assertNil(html:find("<b>", 1, true))
  lu.assertNil(html:find("<i>", 1, true))
  lu.assertStrContains(html, "&lt;/title&gt;&lt;script&gt;")
  lu.assertStrContains(html, "a&amp;b")
  lu.assertEquals(report.escape([[<a href="x">'&']]), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;")
end

function TestReport.test_duplicate_names_get_distinct_labels()
  local a = results.new{ name = "x", acc = { { 1 } } }
  local b = results.new{ name = "x", acc = { { 0.5 } } }
  local html = report.html({ a, b })
  lu.assertStrContains(html, "<h3>x</h3>")
  lu.assertStrContains(html, "<h3>x #2</h3>")
end

function TestReport.test_colour_scale_is_monotone_from_light_to_dark()
  local function lum(c)
    local r, g, b = c:match("#(%x%x)(%x%x)(%x%x)")
    return 0.3 * tonumber(r, 16) + 0.59 * tonumber(g, 16) + 0.11 * tonumber(b, 16)
  end
  local prev = math.huge
  for v = 0, 1, 0.05 do
    local l = lum(report.color(v))
    lu.assertTrue(l < prev)
    prev = l
  end
  lu.assertEquals(report.color(-1), report.color(0))
  lu.assertEquals(report.color(2), report.color(1))
end

function TestReport.test_invalid_documents_are_errors()
  local ok, err = pcall(report.html, { { name = "no acc" } })
  lu.assertFalse(ok)
  lu.assertStrContains(err, "run 1: field 'acc'")
  ok, err = pcall(report.html, {})
  lu.assertFalse(ok)
  lu.assertStrContains(err, "non-empty")
end

TestReportCommand = {}

function TestReportCommand.test_writes_the_page_from_files()
  local out_path = os.tmpname()
  local out, err = sink(), sink()
  local status = cmd.main({ DATA .. "naive_vs_replay.json", DATA .. "ewc_permuted.json", "-o", out_path,
    "--title", "cmp", "--print" }, { out = out, err = err })
  lu.assertEquals(status, 0)
  lu.assertStrContains(err.text, "wrote " .. out_path .. " (3 runs)")
  lu.assertStrMatches(out.text, "run%s+ACC.*naive.*replay.*ewc.*")
  local html = read(out_path)
  lu.assertEquals(count(html, '<svg class="heatmap"'), 3)
  lu.assertStrContains(html, "<h1>cmp</h1>")
  os.remove(out_path)
end

function TestReportCommand.test_output_equals_form_and_default_title()
  local out_path = os.tmpname()
  local status = cmd.main({ "--output=" .. out_path, DATA .. "ewc_permuted.json" }, { out = sink(), err = sink() })
  lu.assertEquals(status, 0)
  lu.assertStrContains(read(out_path), "<h1>engram report</h1>")
  os.remove(out_path)
end

function TestReportCommand.test_help()
  local out = sink()
  lu.assertEquals(cmd.main({ "--help" }, { out = out, err = sink() }), 0)
  lu.assertStrContains(out.text, "usage: engram report [options] results.json...")
  lu.assertStrContains(out.text, "-o, --output FILE")
end

function TestReportCommand.test_errors()
  local err = sink()
  lu.assertEquals(cmd.main({ "/nonexistent/a.json" }, { out = sink(), err = err }), 1)
  lu.assertStrContains(err.text, "engram report: /nonexistent/a.json: No such file")

  local bad = os.tmpname()
  write(bad, '{"acc": [[1]')
  err = sink()
  lu.assertEquals(cmd.main({ bad, "-o", os.tmpname() }, { out = sink(), err = err }), 1)
  lu.assertStrContains(err.text, bad .. ": invalid JSON: json.decode: expected ',' or ']'")

  write(bad, '{"name": "x"}')
  err = sink()
  lu.assertEquals(cmd.main({ bad }, { out = sink(), err = err }), 1)
  lu.assertStrContains(err.text, bad .. ": field 'acc' (the accuracy matrix) is missing")
  os.remove(bad)

  err = sink()
  lu.assertEquals(cmd.main({}, { out = sink(), err = err }), 2)
  lu.assertStrContains(err.text, "no results files given")
  err = sink()
  lu.assertEquals(cmd.main({ "--bogus", "x.json" }, { out = sink(), err = err }), 2)
  lu.assertStrContains(err.text, "unknown option --bogus")
  err = sink()
  lu.assertEquals(cmd.main({ DATA .. "ewc_permuted.json", "-o" }, { out = sink(), err = err }), 2)
  lu.assertStrContains(err.text, "-o needs a value")
  err = sink()
  lu.assertEquals(cmd.main({ DATA .. "ewc_permuted.json", "-o", "/nonexistent/r.html" },
    { out = sink(), err = err }), 1)
  lu.assertStrContains(err.text, "cannot write /nonexistent/r.html")
end
