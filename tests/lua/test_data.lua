-- engram.data from Lua: constructors, dataset methods, transforms, batch
-- iterators, their argument errors, and real Fashion-MNIST when installed.
local lu = require("luaunit")
local engram = require("engram")
local data = require("engram.data")

local helpers = require("helpers")
local tmpname = helpers.tmpname
local write = helpers.write_file
local be32 = helpers.be32

-- A plain IDX pair: n images HxW (pixel q of image i is (i*7+q) % 256), labels i % 3.
local function write_idx(n, h, w)
  local ip, lp = tmpname(".idx3"), tmpname(".idx1")
  local px = {}
  for i = 0, n - 1 do
    for q = 0, h * w - 1 do px[#px + 1] = string.char((i * 7 + q) % 256) end
  end
  write(ip, "\0\0\8\3" .. be32(n) .. be32(h) .. be32(w) .. table.concat(px))
  local lb = {}
  for i = 0, n - 1 do lb[#lb + 1] = string.char(i % 3) end
  write(lp, "\0\0\8\1" .. be32(n) .. table.concat(lb))
  return ip, lp
end

local function assertError(pattern, f, ...)
  local ok, err = pcall(f, ...)
  lu.assertFalse(ok, "expected an error matching " .. pattern)
  lu.assertStrContains(tostring(err), pattern)
end

-- ----------------------------------------------------------------- readers
TestDataReaders = {}

function TestDataReaders:test_idx_loads_images_as_1xHxW_uint8()
  local ip, lp = write_idx(6, 4, 5)
  local ds = data.idx(ip, lp)
  lu.assertEquals(#ds, 6)
  lu.assertEquals(ds:size(), 6)
  lu.assertEquals(ds:shape(), {1, 4, 5})
  lu.assertEquals(ds:dtype(), "uint8")
  lu.assertEquals(ds:num_classes(), 3)
  lu.assertEquals(tostring(ds), "Dataset(6 samples, 1x4x5 uint8, 3 classes)")
  local x, y = ds:get(2)
  lu.assertEquals(x:shape(), {1, 4, 5})
  lu.assertAlmostEquals(x:get(1, 1, 2), (7 + 1) / 255, 1e-6)
  lu.assertEquals(y, 1)
  os.remove(ip); os.remove(lp)
end

function TestDataReaders:test_idx_rejects_truncated_file_and_wrong_magic()
  local ip, lp = write_idx(6, 4, 5)
  local f = assert(io.open(ip, "rb")); local bytes = f:read("a"); f:close()
  write(ip, bytes:sub(1, #bytes - 3))
  assertError("truncated", data.idx, ip, lp)
  write(ip, "\1\2" .. bytes:sub(3))
  assertError("magic", data.idx, ip, lp)
  assertError("expected two file names", data.idx, ip)
  os.remove(ip); os.remove(lp)
end

function TestDataReaders:test_csv_reads_label_column_by_number_or_name()
  local p = tmpname(".csv")
  write(p, "x1,x2,y\n0.5,1,2\n-1,3,0\n")
  local ds = data.csv(p, {header = true})
  lu.assertEquals(#ds, 2)
  lu.assertEquals(ds:shape(), {2})
  lu.assertEquals(ds:dtype(), "float32")
  local x, y = ds:tensors()
  lu.assertEquals(x:totable(), {{0.5, 1}, {-1, 3}})
  lu.assertEquals(y:totable(), {2, 0})
  local by_name = data.csv(p, {header = true, label_column = "x2"})
  lu.assertEquals(by_name:label(2), 3)
  local first = data.csv(p, {header = true, label_column = 2})
  lu.assertEquals(first:label(1), 1)
  local none = data.csv(p, {header = true, label_column = false})
  lu.assertEquals(none:shape(), {3})
  assertError("unknown option 'labels'", data.csv, p, {labels = 1})
  assertError("needs header", data.csv, p, {label_column = "y"})
  os.remove(p)
end

function TestDataReaders:test_csv_reports_bad_field_with_line_and_column()
  local p = tmpname(".csv")
  write(p, "1,2,0\n3,oops,1\n")
  assertError("line 2 column 2", data.csv, p)
  os.remove(p)
end

-- ---------------------------------------------------------------- synthetic
TestDataSynthetic = {}

function TestDataSynthetic:test_blobs_are_seeded_and_balanced()
  local a = data.blobs{n = 60, classes = 3, dim = 4, std = 0.5, seed = 7}
  local b = data.blobs{n = 60, classes = 3, dim = 4, std = 0.5, seed = 7}
  local c = data.blobs{n = 60, classes = 3, dim = 4, std = 0.5, seed = 8}
  lu.assertEquals(a:shape(), {4})
  local xa, ya = a:tensors()
  local xb = b:tensors()
  local xc = c:tensors()
  lu.assertTrue(xa:equal(xb))
  lu.assertFalse(xa:equal(xc))
  lu.assertEquals(a:class_counts(), {[0] = 20, 20, 20})
  lu.assertEquals(ya:get(5), 1)
  assertError("unknown option 'classs'", data.blobs, {classs = 3})
end

function TestDataSynthetic:test_spirals_have_two_arms_within_unit_radius()
  local s = data.spirals{n = 100, noise = 0, seed = 1}
  lu.assertEquals(s:num_classes(), 2)
  local x = s:tensors()
  local maxr = 0
  for i = 1, 100 do maxr = math.max(maxr, math.sqrt(x:get(i, 1) ^ 2 + x:get(i, 2) ^ 2)) end
  lu.assertAlmostEquals(maxr, 1, 1e-5)
end

function TestDataSynthetic:test_from_tensors_copies_rows_and_labels()
  local x = engram.tensor{{1, 2}, {3, 4}, {5, 6}}
  local y = engram.tensor{0, 2, 1}
  local ds = data.from_tensors(x, y)
  lu.assertEquals(ds:num_classes(), 3)
  x:fill(0)
  local gx, gy = ds:gather({3, 1})
  lu.assertEquals(gx:totable(), {{5, 6}, {1, 2}})
  lu.assertEquals(gy:totable(), {1, 0})
end

-- ------------------------------------------------------------ subsets etc.
TestDataSubsets = {}

function TestDataSubsets:test_subset_by_labels_keeps_class_ids_and_count()
  local ds = data.blobs{n = 90, classes = 3, seed = 1}
  local s = ds:subset{labels = {2, 0}}
  lu.assertEquals(#s, 60)
  local present, n = s:classes()
  lu.assertEquals(present, {0, 2})
  lu.assertEquals(n, 3)
  assertError("not a class of this dataset", ds.subset, ds, {labels = {5}})
  assertError("exactly one of", ds.subset, ds, {})
end

function TestDataSubsets:test_subset_by_indices_is_one_based_and_checked()
  local ds = data.blobs{n = 10, classes = 5, seed = 1}
  local s = ds:subset{indices = {1, 10, -1}}
  lu.assertEquals(#s, 3)
  lu.assertEquals({s:label(1), s:label(2), s:label(3)}, {0, 4, 4})
  local t = ds:subset{indices = engram.tensor{2, 3}}
  lu.assertEquals(t:label(2), 2)
  assertError("out of range", ds.subset, ds, {indices = {11}})
  assertError("not an integer", ds.subset, ds, {indices = {1.5}})
end

function TestDataSubsets:test_split_partitions_and_concat_rejoins()
  local ds = data.blobs{n = 50, classes = 5, seed = 2}
  local a, b = ds:split(0.8, 3)
  lu.assertEquals(#a, 40)
  lu.assertEquals(#b, 10)
  local both = a:concat(b)
  lu.assertEquals(#both, 50)
  local counts = both:class_counts()
  for c = 0, 4 do lu.assertEquals(counts[c], 10) end
  assertError("fraction", ds.split, ds, 1.5)
  assertError("sample shapes differ", ds.concat, ds, data.blobs{n = 5, dim = 3, seed = 1})
end

function TestDataSubsets:test_fractions_and_long_tail_make_imbalance()
  local ds = data.blobs{n = 300, classes = 3, seed = 2}
  local s = ds:subset{fractions = {[1] = 0.5, [2] = 0.1}, seed = 4}
  lu.assertEquals(s:class_counts(), {[0] = 100, 50, 10})
  local lt = ds:long_tail{exponent = 1, seed = 1}
  lu.assertEquals(lt:class_counts(), {[0] = 100, 50, 33})
end

-- --------------------------------------------------------------- transforms
TestDataTransforms = {}

function TestDataTransforms:test_permuted_moves_pixels_and_inverse_restores()
  local ip, lp = write_idx(4, 3, 3)
  local ds = data.idx(ip, lp)
  local p = ds:permuted(5)
  local perm = p:permutation()
  lu.assertEquals(#perm, 9)
  lu.assertIsNil(ds:permutation())
  local x = ds:tensors(true)
  local xp = p:tensors(true)
  for j = 1, 9 do lu.assertEquals(xp:get(2, j), x:get(2, perm:get(j))) end
  local inv = {}
  for j = 1, 9 do inv[perm:get(j)] = j end
  lu.assertTrue(p:permuted(inv):tensors(true):equal(x))
  lu.assertTrue(ds:permuted(5):permutation():equal(perm))
  assertError("permutation", ds.permuted, ds, {1, 1, 2, 3, 4, 5, 6, 7, 8})
  assertError("9 pixel positions", ds.permuted, ds, {1, 2})
  os.remove(ip); os.remove(lp)
end

function TestDataTransforms:test_rotated_by_90_moves_top_right_to_top_left()
  local ip, lp = write_idx(2, 5, 5)
  local ds = data.idx(ip, lp)
  local r = ds:rotated(90)
  lu.assertEquals(r:shape(), {1, 5, 5})
  local x = ds:get(2)
  local xr = r:get(2)
  lu.assertEquals(xr:get(1, 1, 1), x:get(1, 1, 5))
  lu.assertEquals(xr:get(1, 5, 1), x:get(1, 1, 1))
  lu.assertTrue(ds:rotated(0):tensors():equal(ds:tensors()))
  assertError("needs images", data.blobs{n = 4}.rotated, data.blobs{n = 4}, 30)
  os.remove(ip); os.remove(lp)
end

function TestDataTransforms:test_normalized_and_noisy_apply_at_batch_time()
  local ip, lp = write_idx(4, 3, 3)
  local ds = data.idx(ip, lp)
  local x = ds:tensors()
  local n = ds:normalized(0.5, 0.25)
  lu.assertTrue(n:tensors():allclose((x - 0.5) / 0.25, 1e-5))
  local z1 = ds:noisy(0.1, 3):tensors()
  local z2 = ds:noisy(0.1, 3):tensors()
  lu.assertTrue(z1:equal(z2))
  lu.assertFalse(z1:equal(x))
  lu.assertStrContains(tostring(n:noisy(0.1, 1)), "normalized, noisy")
  assertError("std > 0", ds.normalized, ds, 0, 0)
  assertError("standard deviation", ds.noisy, ds, -1)
  os.remove(ip); os.remove(lp)
end

-- ------------------------------------------------------------------ batches
TestDataBatches = {}

function TestDataBatches:test_batches_cover_each_sample_once_per_epoch()
  local ds = data.blobs{n = 23, classes = 2, dim = 3, seed = 1}
  local it = ds:batches{batch = 5, seed = 9}
  lu.assertEquals(#it, 5)
  local seen, sizes = {}, {}
  for x, y in it do
    sizes[#sizes + 1] = x:size(1)
    lu.assertEquals(y:size(1), x:size(1))
    local idx = it:indices()
    for k = 1, #idx do
      local i = idx:get(k)
      seen[i] = (seen[i] or 0) + 1
      lu.assertEquals(y:get(k), ds:label(i))
    end
  end
  lu.assertEquals(sizes, {5, 5, 5, 5, 3})
  for i = 1, 23 do lu.assertEquals(seen[i], 1) end
  lu.assertEquals(it:epoch(), 1)
end

function TestDataBatches:test_same_seed_same_order_and_reused_tensors()
  local ds = data.blobs{n = 20, classes = 2, seed = 1}
  local function order(it)
    local o, xs = {}, {}
    for x in it do
      xs[x] = true
      local idx = it:indices()
      for k = 1, #idx do o[#o + 1] = idx:get(k) end
    end
    local nx = 0
    for _ in pairs(xs) do nx = nx + 1 end
    return o, nx
  end
  local a, nx = order(ds:batches{batch = 6, seed = 4})
  local b = order(ds:batches{batch = 6, seed = 4})
  lu.assertEquals(a, b)
  lu.assertEquals(nx, 1) -- one borrowed x tensor, refilled
  local it = ds:batches{batch = 6, seed = 4}
  local e1 = order(it)
  local e2 = order(it)
  lu.assertEquals(e1, a)
  lu.assertNotEquals(e2, e1)
  lu.assertEquals(it:epoch(), 2)
  local inorder = order(ds:batches{batch = 6, shuffle = false})
  for i = 1, 20 do lu.assertEquals(inorder[i], i) end
end

function TestDataBatches:test_drop_last_flat_and_option_errors()
  local ip, lp = write_idx(7, 2, 2)
  local ds = data.idx(ip, lp)
  local n = 0
  for x in ds:batches{batch = 3, drop_last = true, flat = true, seed = 1} do
    lu.assertEquals(x:shape(), {3, 4})
    n = n + 1
  end
  lu.assertEquals(n, 2)
  local first = ds:batches{batch = 4, shuffle = false}:next()
  lu.assertEquals(first:shape(), {4, 1, 2, 2})
  assertError("unknown option 'size'", ds.batches, ds, {size = 3})
  assertError("positive integer", ds.batches, ds, {batch = 0})
  os.remove(ip); os.remove(lp)
end

function TestDataBatches:test_range_and_gather_reuse_given_tensors()
  local ds = data.blobs{n = 10, classes = 2, dim = 3, seed = 1}
  local x, y = ds:range(1, 4)
  lu.assertEquals(x:shape(), {4, 3})
  local x2, y2 = ds:range(5, 2, x, y)
  lu.assertTrue(rawequal(x, x2) and rawequal(y, y2))
  lu.assertEquals(x:shape(), {2, 3})
  local all = ds:tensors()
  lu.assertTrue(x:equal(all:narrow(1, 5, 2)))
  assertError("out of range", ds.range, ds, 9, 5)
  assertError("out of range", ds.gather, ds, {0})
end

function TestDataBatches:test_released_dataset_is_an_error()
  local ds = data.blobs{n = 4, seed = 1}
  ds:release()
  assertError("released dataset", ds.size, ds)
  lu.assertEquals(tostring(ds), "Dataset (released)")
end

-- ---------------------------------------------------------- Fashion-MNIST
TestDataFashionMNIST = {}

function TestDataFashionMNIST:test_loads_60000_and_10000_with_6000_per_class()
  local f = io.open("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz", "rb")
  if not f then lu.skip("dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)") end
  f:close()
  local train, test = data.fashion_mnist()
  lu.assertEquals(#train, 60000)
  lu.assertEquals(#test, 10000)
  lu.assertEquals(train:num_classes(), 10)
  lu.assertEquals(train:shape(), {1, 28, 28})
  local counts = train:class_counts()
  for c = 0, 9 do lu.assertEquals(counts[c], 6000) end
  lu.assertEquals(tostring(train), "Dataset(60000 samples, 1x28x28 uint8, 10 classes)")
end

function TestDataFashionMNIST:test_normalize_standardises_with_the_training_statistics()
  local f = io.open("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz", "rb")
  if not f then lu.skip("dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)") end
  f:close()
  local train = data.fashion_mnist { normalize = true }
  local x = train:batches { batch = 20000, flat = true }()
  local mean = x:mean()
  local std = math.sqrt(((x - mean) ^ 2):mean())
  lu.assertAlmostEquals(mean, 0, 0.01)
  lu.assertAlmostEquals(std, 1, 0.01)
end

function TestDataFashionMNIST:test_missing_directory_says_which_package_to_install()
  assertError("apt-get install dataset-fashion-mnist", data.fashion_mnist, {path = "/nonexistent/dir"})
  assertError("unknown option 'dir'", data.fashion_mnist, {dir = "/x"})
end

function TestDataBatches:test_warm_epoch_allocates_nothing()
  if not engram.alloc_count then lu.skip("engram.alloc_count is not available") end
  local ip, lp = write_idx(10, 4, 4)
  local ds = data.idx(ip, lp):permuted(1):normalized(0.5, 0.5)
  local it = ds:batches{batch = 4, seed = 2}
  for _ in it do end -- warm: x and y reach full size
  local before = engram.alloc_count()
  local n = 0
  for _ in it do n = n + 1 end
  lu.assertEquals(n, 3)
  lu.assertEquals(engram.alloc_count() - before, 0)
  os.remove(ip); os.remove(lp)
end
