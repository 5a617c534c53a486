-- engram.image: grids of samples and the PNG they are written as, decoded
-- from outside by Python's zlib (tests/reference/check_png.py).
local lu = require("luaunit")
local engram = require("engram")
local helpers = require("helpers")

TestImage = {}

function TestImage.test_a_grid_tiles_the_images_row_by_row_with_padding()
  -- three 2x2 images with values 0..3, 4..7, 8..11 in a 2x2 grid, pad 1
  local x = engram.arange(12):view(3, 4)
  local g = engram.image.grid(x, { cols = 2, range = { 0, 11 } })
  lu.assertEquals(g:size(), { 7, 7 })
  local t = g:totable()
  lu.assertAlmostEquals(t[2][2], 0, 1e-7)
  lu.assertAlmostEquals(t[3][3], 3 / 11, 1e-6)       -- image 1, bottom right
  lu.assertAlmostEquals(t[2][5], 4 / 11, 1e-6)       -- image 2, top left
  lu.assertAlmostEquals(t[6][3], 11 / 11, 1e-6)      -- image 3, bottom right
  lu.assertEquals(t[1][1], 0)                        -- padding
  lu.assertEquals(t[5][6], 0)                        -- the empty fourth cell
  -- [n, 1, h, w] images and the automatic range
  local y = engram.tensor({ { { { 0, 1 }, { 2, 3 } } } })
  lu.assertTrue(engram.image.grid(y, { pad = 0 }):allclose(engram.tensor { { 0, 1 / 3 }, { 2 / 3, 1 } }, 1e-6))
end

function TestImage.test_the_png_decodes_to_the_grid_pixels()
  local g = engram.tensor { { 0, 0.5, 1 }, { 1, 0.25, 0 } }
  local path = helpers.tmpname(".png")
  engram.image.write(path, g)
  local p = io.popen("/usr/bin/python3 tests/reference/check_png.py " .. helpers.q(path) .. " 2>&1")
  local out = p:read("a")
  p:close()
  lu.assertEquals(out, "3x2\n0 128 255\n255 64 0\n")
  lu.assertEquals(engram.image.png(g), helpers.read_file(path))
  os.remove(path)
end

function TestImage.test_bad_grids_are_errors()
  local x = engram.rand(5, 16)
  lu.assertErrorMsgContains("image.grid: a grid of 4 x 2 cells for 5 images", engram.image.grid, x,
    { rows = 4, cols = 2 })
  lu.assertErrorMsgContains("image.grid: 5 images do not fit 2 x 2 cells", engram.image.grid, x, { rows = 2, cols = 2 })
  lu.assertErrorMsgContains("15 values per image are not a square", engram.image.grid, engram.rand(2, 15))
  lu.assertErrorMsgContains("image.grid: unknown option 'colums'", engram.image.grid, x, { colums = 2 })
  lu.assertErrorMsgContains("image.grid: range must be {lo, hi} with lo < hi", engram.image.grid, x,
    { range = { 1, 1 } })
  lu.assertErrorMsgContains("image.png: expected an image [H, W]", engram.image.png, engram.rand(2, 2, 2))
  lu.assertEquals(engram.image.grid(x, { max = 4 }):size(), { 11, 11 }) -- 2 x 2 images of 4 x 4, pad 1
end

function TestImage.test_base64_follows_rfc_4648()
  local b = engram.image.base64
  lu.assertEquals({ b(""), b("f"), b("fo"), b("foo"), b("foob"), b("fooba"), b("foobar") },
    { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy" })
  lu.assertEquals(b("\0\255\128"), "AP+A")
end
