-- Defects found by trying engram as a new user would (issue 15), each with
-- the test that failed before its fix.
local lu = require("luaunit")
local engram = require("engram")

TestHardening = {}

-- In-place binary operations on overlapping contiguous views read the
-- elements they had already overwritten (a fast path skipped the overlap
-- check that copy_ has): arange(8)[2..8] += arange(8)[1..7] gave 0,1,3,6,10.
function TestHardening.test_in_place_ops_on_overlapping_views_read_the_original_values()
  for _, op in ipairs({ "add_", "sub_", "mul_", "div_", "pow_", "maximum_", "minimum_" }) do
    for _, shift in ipairs({ 1, -1 }) do -- the operand before or after the output
      local a = engram.arange(8) + 1
      local ref = a:clone()
      local out, arg = a:narrow(1, 2, 7), a:narrow(1, 1, 7)
      local rout, rarg = ref:narrow(1, 2, 7), ref:narrow(1, 1, 7):clone()
      if shift < 0 then
        out, arg = a:narrow(1, 1, 7), a:narrow(1, 2, 7)
        rout, rarg = ref:narrow(1, 1, 7), ref:narrow(1, 2, 7):clone()
      end
      out[op](out, arg)
      rout[op](rout, rarg)
      lu.assertEquals(a:totable(), ref:totable(), op .. " shift " .. shift)
    end
  end
  local a = engram.arange(8)
  a:narrow(1, 2, 7):add_(a:narrow(1, 1, 7))
  lu.assertEquals(a:totable(), { 0, 1, 3, 5, 7, 9, 11, 13 })
  -- y += alpha x through the BLAS path
  a = engram.arange(8)
  a:narrow(1, 2, 7):add_(a:narrow(1, 1, 7), 2)
  lu.assertEquals(a:totable(), { 0, 1, 4, 7, 10, 13, 16, 19 })
  a = engram.arange(8)
  a:narrow(1, 2, 7):sub_(a:narrow(1, 1, 7), 0.5)
  lu.assertEquals(a:totable(), { 0, 1, 1.5, 2, 2.5, 3, 3.5, 4 })
end
