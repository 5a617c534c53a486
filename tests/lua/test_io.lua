-- engram.io: named tensors in the safetensors layout. A round trip, the
-- layout read and written by Debian's python3 and numpy from the published
-- description (tests/reference/check_safetensors.py), and corrupt files
-- rejected with a message naming the file.
local lu = require("luaunit")
local engram = require("engram")
local helpers = require("helpers")

local PY = "/usr/bin/python3"

local function sh(cmd)
  local p = io.popen(cmd .. " 2>&1")
  local out = p:read("a")
  local ok = p:close()
  return out, ok
end

TestIO = {}

function TestIO.test_save_and_load_keep_names_shapes_values_and_metadata()
  local path = helpers.tmpname(".safetensors")
  local w = engram.randn(4, 3)
  engram.io.save(path, { ["fc.weight"] = w, ["fc.bias"] = engram.zeros(4), step = engram.tensor(12) },
    { task = 3, note = "ok" })
  local t, meta, names = engram.io.load(path)
  lu.assertEquals(names, { "fc.bias", "fc.weight", "step" })
  lu.assertTrue(t["fc.weight"]:equal(w))
  lu.assertEquals(t["fc.bias"]:size(), { 4 })
  lu.assertEquals(t.step:item(), 12)
  lu.assertEquals(meta, { task = "3", note = "ok" })
  os.remove(path)
end

function TestIO.test_numpy_reads_engram_files_by_the_published_layout()
  local path = helpers.tmpname(".safetensors")
  engram.io.save(path, { b = engram.arange(6):view(2, 3), a = engram.tensor { 1, 2.5 }, s = engram.tensor(-3) },
    { epoch = "2" })
  local out, ok = sh(PY .. " tests/reference/check_safetensors.py read " .. helpers.q(path))
  lu.assertTrue(ok, out)
  lu.assertEquals(out, "a 2 3.500000\nb 2x3 15.000000\ns scalar -3.000000\nmeta epoch=2\n")
  os.remove(path)
end

function TestIO.test_engram_reads_files_numpy_wrote()
  local path = helpers.tmpname(".safetensors")
  local out, ok = sh(PY .. " tests/reference/check_safetensors.py write " .. helpers.q(path))
  lu.assertTrue(ok, out)
  local t, meta, names = engram.io.load(path)
  lu.assertEquals(names, { "s", "z.last", "a.first" }) -- file order
  lu.assertEquals(t["a.first"]:totable(), { 1.5, -2, 3.25 })
  lu.assertEquals(t["z.last"]:totable(), { { 0, 0.5, 1 }, { 1.5, 2, 2.5 } })
  lu.assertEquals(t.s:item(), 7)
  lu.assertEquals(meta.from, "numpy")
  os.remove(path)
end

function TestIO.test_corrupt_and_foreign_files_are_errors_naming_the_file()
  local path = helpers.tmpname(".safetensors")
  engram.io.save(path, { w = engram.ones(8) })
  local bytes = helpers.read_file(path)
  helpers.write_file(path, bytes:sub(1, #bytes - 4))
  lu.assertErrorMsgContains("io.load: safetensors: " .. path ..
    ": the tensors cover 32 bytes of data, the file holds 28", engram.io.load, path)
  helpers.write_file(path, bytes:gsub("F32", "F64", 1))
  lu.assertErrorMsgContains("dtype F64; engram reads F32 only", engram.io.load, path)
  helpers.write_file(path, "not a safetensors file")
  lu.assertErrorMsgContains("io.load: safetensors: " .. path, engram.io.load, path)
  lu.assertErrorMsgContains("io.load: safetensors: cannot open /nonexistent/x", engram.io.load, "/nonexistent/x")
  lu.assertErrorMsgContains("io.save: 'w' is a number, not a tensor", engram.io.save, path, { w = 1 })
  lu.assertErrorMsgContains("io.save: cannot write /nonexistent/dir/x", engram.io.save, "/nonexistent/dir/x",
    { w = engram.ones(1) })
  os.remove(path)
end
