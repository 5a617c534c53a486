--- `engram report a.json b.json ... [-o report.html] [--title T]`: one
-- self-contained HTML page comparing the runs in the given results files
-- (each holding one run or {"runs": [...]}).
local report = require("engram.report")
local results = require("engram.results")

local cmd = {}

local USAGE = [[
usage: engram report [options] results.json...

Writes one self-contained HTML page (no network needed) comparing the runs in
the given results files: a metrics table, the average accuracy after each task
of every run on one chart, and a heatmap of each accuracy matrix. A file holds
one run or {"runs": [...]}.

options:
  -o, --output FILE  where to write the page (default: report.html)
  --title TEXT       the page title (default: engram report)
  --print            also print the comparison table to standard output
  -h, --help         show this help and exit
]]

--- Runs the command; args is the array of words after `report`. io (optional)
-- = {out=, err=} for tests. Returns the exit status (0 ok, 1 failure, 2 usage).
function cmd.main(args, io_)
  local out = io_ and io_.out or io.stdout
  local err = io_ and io_.err or io.stderr
  local function fail(status, msg)
    err:write("engram report: ", msg, "\n")
    return status
  end
  local files, output, title, print_table = {}, "report.html", nil, false
  local i = 1
  args = args or {}
  while i <= #args do
    local a = args[i]
    local opt, val = a:match("^(%-%-[%w-]+)=(.*)$")
    opt = opt or a
    if opt == "-h" or opt == "--help" then
      out:write(USAGE)
      return 0
    elseif opt == "-o" or opt == "--output" or opt == "--title" then
      if not val then
        i = i + 1
        val = args[i]
        if val == nil then return fail(2, "option " .. opt .. " needs a value") end
      end
      if opt == "--title" then title = val else output = val end
    elseif opt == "--print" then
      print_table = true
    elseif a:sub(1, 1) == "-" and a ~= "-" then
      return fail(2, "unknown option " .. a .. " (known: -o/--output, --title, --print, -h/--help)")
    else
      files[#files + 1] = a
    end
    i = i + 1
  end
  if #files == 0 then return fail(2, "no results files given (engram report --help for usage)") end
  local docs = {}
  for _, f in ipairs(files) do
    local runs, rerr = results.read(f)
    if not runs then return fail(1, rerr) end
    for _, d in ipairs(runs) do docs[#docs + 1] = d end
  end
  local ok, werr = pcall(report.write, output, docs, { title = title })
  if not ok then return fail(1, (tostring(werr):gsub("^[^:]*:%d+: ", ""):gsub("^report%.write: ", ""))) end
  if print_table then out:write(results.compare_table(docs)) end
  err:write(string.format("engram report: wrote %s (%d run%s)\n", output, #docs, #docs == 1 and "" or "s"))
  return 0
end

return cmd
