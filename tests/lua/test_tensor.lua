-- engram.Tensor from Lua: construction, inspection, views, arithmetic,
-- reductions, printing, errors and memory. Integer data (labels, indices) are
-- float tensors holding exact integers; indices are 1-based on this side.
local lu = require("luaunit")
local engram = require("engram")

local T = engram.tensor

-- math.tanh is a compatibility extra some Lua builds leave out.
local function tanh(x) return (math.exp(2 * x) - 1) / (math.exp(2 * x) + 1) end

-- Asserts that t has the shape and the values of the nested table want.
local function assertTensor(t, want, tol)
  lu.assertTrue(engram.istensor(t), "not a tensor")
  local got = t:totable()
  if tol then
    lu.assertTrue(t:allclose(T(want), tol), "values differ:\n" .. tostring(t))
  else
    lu.assertEquals(got, want)
  end
end

-- ------------------------------------------------------------ construction
TestTensorCreate = {}

function TestTensorCreate.test_tensor_from_nested_tables_keeps_shape_and_values()
  local t = T{{1, 2, 3}, {4, 5, 6}}
  lu.assertEquals(t:shape(), {2, 3})
  lu.assertEquals(t:totable(), {{1, 2, 3}, {4, 5, 6}})
end

function TestTensorCreate.test_tensor_from_three_levels()
  local t = T{{{1, 2}, {3, 4}}, {{5, 6}, {7, 8}}}
  lu.assertEquals(t:shape(), {2, 2, 2})
  lu.assertEquals(t:get(2, 1, 2), 6)
end

function TestTensorCreate.test_tensor_of_a_number_is_a_zero_dim_scalar()
  local t = T(3.5)
  lu.assertEquals(t:dim(), 0)
  lu.assertEquals(t:numel(), 1)
  lu.assertEquals(t:item(), 3.5)
end

function TestTensorCreate.test_tensor_of_an_empty_table_is_empty_1d()
  local t = T{}
  lu.assertEquals(t:shape(), {0})
  lu.assertEquals(t:numel(), 0)
end

function TestTensorCreate.test_tensor_of_a_tensor_is_an_independent_copy()
  local a = T{1, 2}
  local b = T(a)
  b[1] = 9
  lu.assertEquals(a[1], 1)
end

function TestTensorCreate.test_tensor_rejects_ragged_rows()
  lu.assertErrorMsgContains("tensor: row 2 has 3 elements, expected 2", T, {{1, 2}, {3, 4, 5}})
end

function TestTensorCreate.test_tensor_rejects_non_numbers()
  lu.assertErrorMsgContains("expected a number", T, {1, "x", 3})
  lu.assertErrorMsgContains("expected a number", T, {{1, 2}, {3, {4}}})
  lu.assertErrorMsgContains("expected a table", T, {{1, 2}, 3})
end

function TestTensorCreate.test_zeros_accepts_sizes_as_arguments_or_table()
  local a, b = engram.zeros(2, 3), engram.zeros({2, 3})
  lu.assertEquals(a:shape(), {2, 3})
  lu.assertEquals(b:shape(), {2, 3})
  lu.assertEquals(a:sum(), 0)
end

function TestTensorCreate.test_ones_and_full()
  lu.assertEquals(engram.ones(2, 2):totable(), {{1, 1}, {1, 1}})
  lu.assertEquals(engram.full({2, 3}, 7):totable(), {{7, 7, 7}, {7, 7, 7}})
  lu.assertEquals(engram.full(3, -1.5):totable(), {-1.5, -1.5, -1.5})
end

function TestTensorCreate.test_arange_excludes_the_end_like_pytorch()
  lu.assertEquals(engram.arange(4):totable(), {0, 1, 2, 3})
  lu.assertEquals(engram.arange(2, 5):totable(), {2, 3, 4})
  lu.assertEquals(engram.arange(0, 1, 0.25):totable(), {0, 0.25, 0.5, 0.75})
  lu.assertEquals(engram.arange(5, 1, -2):totable(), {5, 3})
  lu.assertEquals(engram.arange(3, 3):numel(), 0)
end

function TestTensorCreate.test_arange_rejects_zero_step()
  lu.assertErrorMsgContains("arange: step is zero", engram.arange, 0, 1, 0)
end

function TestTensorCreate.test_zeros_rejects_negative_nan_and_fractional_sizes()
  lu.assertErrorMsgContains("zeros: size -1 is negative", engram.zeros, -1)
  lu.assertErrorMsgContains("zeros: size is NaN", engram.zeros, 2, 0 / 0)
  lu.assertErrorMsgContains("zeros: size 1.5 is not an integer", engram.zeros, 1.5)
  lu.assertErrorMsgContains("zeros: size #1 is a string", engram.zeros, "a")
end

function TestTensorCreate.test_huge_sizes_are_a_clean_out_of_memory_error()
  lu.assertErrorMsgContains("zeros: out of memory", engram.zeros, 1e12, 1e12)
  lu.assertErrorMsgContains("out of memory", engram.ones, 1e6, 1e6, 1e6)
end

function TestTensorCreate.test_too_many_dimensions_is_an_error()
  lu.assertErrorMsgContains("at most 8", engram.zeros, 1, 1, 1, 1, 1, 1, 1, 1, 1)
end

function TestTensorCreate.test_rand_is_in_unit_interval_and_randn_roughly_standard()
  local u = engram.rand(1000)
  lu.assertTrue(u:min() >= 0 and u:max() < 1)
  local n = engram.randn(100, 100)
  lu.assertAlmostEquals(n:mean(), 0, 0.05)
  lu.assertAlmostEquals(math.sqrt((n * n):mean()), 1, 0.05)
end

function TestTensorCreate.test_randn_takes_an_explicit_generator_as_last_argument()
  local a = engram.randn(2, 3, engram.generator(7))
  local b = engram.randn({2, 3}, engram.generator(7))
  lu.assertEquals(a:shape(), {2, 3})
  lu.assertTrue(a:equal(b))
end

-- ------------------------------------------------------------- inspection
TestTensorInspect = {}

function TestTensorInspect.test_shape_size_numel_dim_and_length()
  local t = engram.zeros(4, 3)
  lu.assertEquals(t:shape(), {4, 3})
  lu.assertEquals(t:size(), {4, 3})
  lu.assertEquals(t:size(1), 4)
  lu.assertEquals(t:size(2), 3)
  lu.assertEquals(t:size(-1), 3)
  lu.assertEquals(t:numel(), 12)
  lu.assertEquals(t:dim(), 2)
  lu.assertEquals(#t, 4)
end

function TestTensorInspect.test_size_rejects_a_bad_dimension()
  lu.assertErrorMsgContains("dimension 3 out of range for a 2-dimensional tensor", function()
    return engram.zeros(2, 2):size(3)
  end)
end

function TestTensorInspect.test_get_and_set_are_one_based_with_negative_from_end()
  local t = T{{1, 2, 3}, {4, 5, 6}}
  lu.assertEquals(t:get(1, 1), 1)
  lu.assertEquals(t:get(2, 3), 6)
  lu.assertEquals(t:get(-1, -1), 6)
  lu.assertEquals(t:get(-2, 2), 2)
  lu.assertIs(t:set(2, 2, 50), t)
  lu.assertEquals(t:get(2, 2), 50)
end

function TestTensorInspect.test_get_rejects_out_of_range_and_wrong_index_count()
  local t = engram.zeros(3)
  lu.assertErrorMsgContains("get: index 7 out of range for dimension 1 of size 3", t.get, t, 7)
  lu.assertErrorMsgContains("get: index 0 out of range", t.get, t, 0)
  lu.assertErrorMsgContains("get: index 1.5 is not an integer", t.get, t, 1.5)
  lu.assertErrorMsgContains("get: expected 1 indices", t.get, t, 1, 1)
  lu.assertErrorMsgContains("set: index 4 out of range", t.set, t, 4, 0)
end

function TestTensorInspect.test_indexing_a_vector_gives_numbers()
  local v = T{10, 20, 30}
  lu.assertEquals(v[1], 10)
  lu.assertEquals(v[3], 30)
  lu.assertEquals(v[-1], 30)
  v[2] = 25
  lu.assertEquals(v:totable(), {10, 25, 30})
end

function TestTensorInspect.test_indexing_a_matrix_gives_a_row_view()
  local m = T{{1, 2}, {3, 4}}
  local row = m[2]
  lu.assertEquals(row:totable(), {3, 4})
  row[1] = 30
  lu.assertEquals(m:get(2, 1), 30)
  lu.assertEquals(m[2][2], 4)
end

function TestTensorInspect.test_assigning_a_row_fills_or_copies()
  local m = engram.zeros(2, 3)
  m[1] = 5
  m[2] = T{1, 2, 3}
  lu.assertEquals(m:totable(), {{5, 5, 5}, {1, 2, 3}})
end

function TestTensorInspect.test_index_out_of_range_is_an_error()
  local v = T{1, 2, 3}
  lu.assertErrorMsgContains("index 4 out of range for dimension 1 of size 3", function() return v[4] end)
  lu.assertErrorMsgContains("index 0 out of range", function() v[0] = 1 end)
end

function TestTensorInspect.test_unknown_fields_are_nil_and_cannot_be_set()
  local t = engram.zeros(2)
  lu.assertNil(t.nosuchmethod)
  lu.assertErrorMsgContains("cannot set field 'foo'", function() t.foo = 1 end)
end

function TestTensorInspect.test_item_needs_exactly_one_element()
  lu.assertEquals(T{{4}}:item(), 4)
  lu.assertErrorMsgContains("item: tensor [2] has 2 elements, expected 1", function() return T{1, 2}:item() end)
end

function TestTensorInspect.test_totable_of_scalar_is_a_number()
  lu.assertEquals(T(2):totable(), 2)
end

function TestTensorInspect.test_istensor_and_type_name()
  lu.assertTrue(engram.istensor(engram.zeros(1)))
  lu.assertFalse(engram.istensor({}))
  lu.assertEquals(engram.zeros(1):type(), "engram.Tensor")
  lu.assertEquals(getmetatable(engram.zeros(1)).__name, "engram.Tensor")
end

-- ------------------------------------------------------------------- views
TestTensorViews = {}

function TestTensorViews.test_view_shares_storage_and_infers_minus_one()
  local a = engram.arange(6)
  local v = a:view(2, -1)
  lu.assertEquals(v:shape(), {2, 3})
  v:set(2, 3, 99)
  lu.assertEquals(a[6], 99)
  lu.assertEquals(a:view({3, 2}):shape(), {3, 2})
end

function TestTensorViews.test_view_rejects_a_wrong_element_count()
  lu.assertErrorMsgContains("view: cannot view [3x4] (12 elements) as [5] (5 elements)", function()
    return engram.zeros(3, 4):view(5)
  end)
end

function TestTensorViews.test_view_of_non_contiguous_is_an_error_but_reshape_copies()
  local t = engram.arange(6):view(2, 3):t()
  lu.assertFalse(t:is_contiguous())
  lu.assertErrorMsgContains("not contiguous", t.view, t, 6)
  local r = t:reshape(6)
  lu.assertEquals(r:totable(), {0, 3, 1, 4, 2, 5})
end

function TestTensorViews.test_reshape_of_contiguous_is_a_view()
  local a = engram.zeros(2, 3)
  a:reshape(6)[4] = 1
  lu.assertEquals(a:get(2, 1), 1)
end

function TestTensorViews.test_writing_through_narrow_changes_the_parent()
  local a = engram.zeros(4, 3)
  local n = a:narrow(1, 2, 2)
  lu.assertEquals(n:shape(), {2, 3})
  n:fill_(7)
  lu.assertEquals(a:sum(), 42)
  lu.assertEquals(a:get(1, 1), 0)
  lu.assertEquals(a:get(3, 3), 7)
  lu.assertEquals(a:get(4, 1), 0)
end

function TestTensorViews.test_narrow_rejects_out_of_range()
  local a = engram.zeros(4)
  lu.assertErrorMsgContains("narrow: elements 3..6 out of range for dimension 1 of size 4", a.narrow, a, 1, 3, 4)
  lu.assertErrorMsgContains("narrow: length -1 is negative", a.narrow, a, 1, 1, -1)
end

function TestTensorViews.test_select_removes_a_dimension()
  local m = T{{1, 2, 3}, {4, 5, 6}}
  lu.assertEquals(m:select(2, 3):totable(), {3, 6})
  lu.assertEquals(m:select(1, -1):totable(), {4, 5, 6})
  m:select(2, 1):fill_(0)
  lu.assertEquals(m:totable(), {{0, 2, 3}, {0, 5, 6}})
end

function TestTensorViews.test_transpose_and_t_swap_dimensions_without_copying()
  local m = T{{1, 2, 3}, {4, 5, 6}}
  local tt = m:t()
  lu.assertEquals(tt:totable(), {{1, 4}, {2, 5}, {3, 6}})
  tt:set(3, 1, 30)
  lu.assertEquals(m:get(1, 3), 30)
  local x = engram.zeros(2, 3, 4)
  lu.assertEquals(x:transpose(1, 3):shape(), {4, 3, 2})
  lu.assertErrorMsgContains("use transpose", x.t, x)
end

function TestTensorViews.test_contiguous_returns_self_or_a_copy()
  local m = engram.zeros(2, 3)
  lu.assertIs(m:contiguous(), m)
  local c = m:t():contiguous()
  lu.assertTrue(c:is_contiguous())
  lu.assertEquals(c:shape(), {3, 2})
  c:fill_(1)
  lu.assertEquals(m:sum(), 0)
end

function TestTensorViews.test_expand_broadcasts_without_copying()
  local r = T{{1, 2, 3}}
  local e = r:expand(4, 3)
  lu.assertEquals(e:shape(), {4, 3})
  lu.assertEquals(e:sum(), 24)
end

function TestTensorViews.test_unsqueeze_and_squeeze_are_views()
  local v = T{1, 2, 3}
  local row, col = v:unsqueeze(1), v:unsqueeze(2)
  lu.assertEquals(row:shape(), {1, 3})
  lu.assertEquals(col:shape(), {3, 1})
  lu.assertEquals((col + row):shape(), {3, 3})
  col:set(2, 1, 20)
  lu.assertEquals(v[2], 20)
  lu.assertEquals(engram.zeros(1, 3, 1):squeeze():shape(), {3})
  lu.assertEquals(engram.zeros(1, 3, 1):squeeze(3):shape(), {1, 3})
  lu.assertErrorMsgContains("squeeze: dimension 2 of [1x3x1] has size 3, not 1", function()
    return engram.zeros(1, 3, 1):squeeze(2)
  end)
  lu.assertEquals(engram.zeros(2, 3):t():unsqueeze(2):squeeze():shape(), {3, 2})
end

function TestTensorViews.test_cat_joins_along_a_dimension()
  local a, b = T{{1, 2}}, T{{3, 4}, {5, 6}}
  lu.assertEquals(engram.cat({a, b}):totable(), {{1, 2}, {3, 4}, {5, 6}})
  lu.assertEquals(engram.cat({b, b:t()}, 2):totable(), {{3, 4, 3, 5}, {5, 6, 4, 6}})
  lu.assertEquals(engram.cat({T{1}, T{2, 3}}):totable(), {1, 2, 3})
  lu.assertErrorMsgContains("cat: tensor 2 has size [3], which does not fit [1x2] along dimension 1", engram.cat,
    {a, T{1, 2, 3}})
  lu.assertErrorMsgContains("cat: element 2 of the list is not an engram.Tensor", engram.cat, {a, 5})
end

function TestTensorViews.test_index_gathers_rows_with_one_based_indices()
  local m = T{{1, 1}, {2, 2}, {3, 3}}
  lu.assertEquals(m:index(T{3, 1, 3}):totable(), {{3, 3}, {1, 1}, {3, 3}})
  lu.assertEquals(m:index({2}):totable(), {{2, 2}})
  lu.assertEquals(T{10, 20, 30}:index({3, 2}):totable(), {30, 20})
  -- a copy, not a view
  local g = m:index({1})
  g:fill_(0)
  lu.assertEquals(m:get(1, 1), 1)
end

function TestTensorViews.test_index_rejects_out_of_range_and_fractional_indices()
  local m = engram.zeros(3, 2)
  lu.assertErrorMsgContains("index: index 4 at position 2 out of range for 3 rows", m.index, m, {1, 4})
  lu.assertErrorMsgContains("out of range", m.index, m, {0})
  lu.assertErrorMsgContains("out of range", m.index, m, T{1.5})
  lu.assertErrorMsgContains("expected a number", m.index, m, {"a"})
end

function TestTensorViews.test_a_view_outlives_its_parent_after_collection()
  local v
  do
    local parent = engram.arange(1000):view(10, 100)
    v = parent:narrow(1, 10, 1)
  end
  collectgarbage()
  collectgarbage()
  local junk = {}
  for i = 1, 50 do junk[i] = engram.full({10, 100}, -1) end -- reuse freed memory, if any was freed
  lu.assertEquals(junk[50]:sum(), -1000)
  lu.assertEquals(v:get(1, 1), 900)
  lu.assertEquals(v:get(1, 100), 999)
  lu.assertEquals(v:sum(), (900 + 999) * 100 / 2)
end

-- ------------------------------------------------------------- arithmetic
TestTensorArith = {}

function TestTensorArith.test_operators_with_tensors_and_scalars_on_either_side()
  local a = T{1, 2, 4}
  assertTensor(a + 1, {2, 3, 5})
  assertTensor(1 + a, {2, 3, 5})
  assertTensor(a - 1, {0, 1, 3})
  assertTensor(10 - a, {9, 8, 6})
  assertTensor(a * 2, {2, 4, 8})
  assertTensor(2 * a, {2, 4, 8})
  assertTensor(a / 2, {0.5, 1, 2})
  assertTensor(8 / a, {8, 4, 2})
  assertTensor(a ^ 2, {1, 4, 16})
  assertTensor(-a, {-1, -2, -4})
  assertTensor(a + a, {2, 4, 8})
  assertTensor(a * a, {1, 4, 16})
  assertTensor(a - a, {0, 0, 0})
  assertTensor(a / a, {1, 1, 1})
end

function TestTensorArith.test_star_is_elementwise_not_matrix_product()
  local m = T{{1, 2}, {3, 4}}
  assertTensor(m * m, {{1, 4}, {9, 16}})
end

function TestTensorArith.test_broadcasting_a_row_over_a_matrix()
  local m = engram.zeros(4, 3)
  local row = T{1, 2, 3}
  local r = m + row
  lu.assertEquals(r:shape(), {4, 3})
  lu.assertEquals(r[4]:totable(), {1, 2, 3})
  local r2 = m + T{{1, 2, 3}}
  lu.assertTrue(r:equal(r2))
  local col = T{{1}, {2}, {3}, {4}}
  lu.assertEquals((m + col):select(2, 3):totable(), {1, 2, 3, 4})
  lu.assertEquals((col * row):shape(), {4, 3})
end

function TestTensorArith.test_shapes_that_do_not_broadcast_are_an_error()
  lu.assertErrorMsgContains("add: shapes [4x3] and [4] do not broadcast", function()
    return engram.zeros(4, 3) + engram.zeros(4)
  end)
end

function TestTensorArith.test_operands_must_be_tensors_or_numbers()
  local a = engram.zeros(2)
  lu.assertErrorMsgContains("bad argument #1 to 'add' (engram.Tensor expected, got table)", function()
    return engram.add({}, a)
  end)
  lu.assertErrorMsgContains("engram.Tensor or number expected, got string", function() return a + "x" end)
  lu.assertErrorMsgContains("engram.Tensor or number expected, got table", function() return a:mul({}) end)
end

function TestTensorArith.test_add_and_sub_with_alpha()
  local a, b = T{1, 1}, T{2, 3}
  assertTensor(a:add(b, 10), {21, 31})
  assertTensor(a:sub(b, 2), {-3, -5})
  assertTensor(a:add(b), {3, 4})
  assertTensor(a:add(1, 3), {4, 4})
  assertTensor(engram.zeros(2, 2):add(T{1, 2}, 2), {{2, 4}, {2, 4}})
  assertTensor(a, {1, 1})
end

function TestTensorArith.test_in_place_forms_modify_and_return_self()
  local a = T{1, 2, 3}
  lu.assertIs(a:add_(1), a)
  assertTensor(a, {2, 3, 4})
  lu.assertIs(a:mul_(2), a)
  assertTensor(a, {4, 6, 8})
  a:sub_(T{1, 1, 1})
  assertTensor(a, {3, 5, 7})
  a:div_(T{3, 5, 7})
  assertTensor(a, {1, 1, 1})
  a:add_(T{1, 2, 3}, -2)
  assertTensor(a, {-1, -3, -5})
  a:sub_(T{1, 1, 1}, -1)
  assertTensor(a, {0, -2, -4})
  lu.assertIs(a:fill_(3), a)
  assertTensor(a, {3, 3, 3})
  lu.assertIs(a:zero_(), a)
  assertTensor(a, {0, 0, 0})
end

function TestTensorArith.test_in_place_broadcasts_the_other_operand_only()
  local m = engram.ones(2, 3)
  m:add_(T{1, 2, 3})
  assertTensor(m, {{2, 3, 4}, {2, 3, 4}})
  lu.assertErrorMsgContains("add: output [3] does not match the broadcast shape", function()
    T{1, 2, 3}:add_(engram.ones(2, 3))
  end)
end

function TestTensorArith.test_in_place_on_a_view_writes_the_parent()
  local m = engram.zeros(3, 3)
  m:t():select(1, 2):add_(5) -- column 2 of m
  assertTensor(m, {{0, 5, 0}, {0, 5, 0}, {0, 5, 0}})
end

function TestTensorArith.test_copy_and_fill_write_into_self()
  local a = engram.zeros(2, 2)
  lu.assertIs(a:copy(T{1, 2, 3, 4}), a)
  assertTensor(a, {{1, 2}, {3, 4}})
  a:copy_(T{{5, 6}, {7, 8}})
  assertTensor(a, {{5, 6}, {7, 8}})
  lu.assertIs(a:fill(0), a)
  lu.assertEquals(a:sum(), 0)
  lu.assertErrorMsgContains("copy: [2x2] has 4 elements, source [3] has 3", a.copy, a, engram.zeros(3))
end

function TestTensorArith.test_clone_is_independent()
  local a = T{1, 2}
  local c = a:clone()
  c[1] = 5
  lu.assertEquals(a[1], 1)
  lu.assertTrue(a:t():clone():is_contiguous())
end

function TestTensorArith.test_pow_with_scalar_and_tensor_exponents()
  assertTensor(T{2, 3}:pow(2), {4, 9})
  assertTensor(T{2, 3}:pow(T{3, 2}), {8, 9})
  local a = T{4, 9}
  a:pow_(0.5)
  assertTensor(a, {2, 3})
end

function TestTensorArith.test_elementwise_functions()
  local x = T{-2, -0.5, 0, 0.5, 2}
  assertTensor(x:abs(), {2, 0.5, 0, 0.5, 2})
  assertTensor(x:neg(), {2, 0.5, 0, -0.5, -2})
  assertTensor(x:relu(), {0, 0, 0, 0.5, 2})
  assertTensor(x:sign(), {-1, -1, 0, 1, 1})
  assertTensor(x:floor(), {-2, -1, 0, 0, 2})
  assertTensor(x:clamp(-1, 1), {-1, -0.5, 0, 0.5, 1})
  assertTensor(x:clamp(0), {0, 0, 0, 0.5, 2})
  assertTensor(x:clamp(nil, 0), {-2, -0.5, 0, 0, 0})
  assertTensor(T{0, 1}:exp(), {1, math.exp(1)}, 1e-6)
  assertTensor(T{1, math.exp(2)}:log(), {0, 2}, 1e-6)
  assertTensor(T{4, 9}:sqrt(), {2, 3})
  assertTensor(T{0, 1}:tanh(), {0, tanh(1)}, 1e-6)
  assertTensor(T{0, 100, -100}:sigmoid(), {0.5, 1, 0}, 1e-6)
  lu.assertEquals(engram.exp(T{0}):item(), 1)
end

function TestTensorArith.test_elementwise_in_place_forms()
  local x = T{-1, 0, 1}
  lu.assertIs(x:exp_(), x)
  assertTensor(x, {math.exp(-1), 1, math.exp(1)}, 1e-6)
  x:log_()
  assertTensor(x, {-1, 0, 1}, 1e-6)
  x:clamp_(0, 0.5)
  assertTensor(x, {0, 0, 0.5}, 1e-6)
  x:neg_():abs_():sqrt_()
  assertTensor(x, {0, 0, math.sqrt(0.5)}, 1e-6)
  local y = T{-3, 3}
  y:relu_():tanh_():sigmoid_()
  assertTensor(y, {0.5, 1 / (1 + math.exp(-tanh(3)))}, 1e-6)
end

function TestTensorArith.test_clamp_rejects_inverted_bounds()
  lu.assertErrorMsgContains("clamp: lower bound 1 is above upper bound 0", function() return T{1}:clamp(1, 0) end)
end

function TestTensorArith.test_comparisons_give_float_masks()
  local a = T{1, 2, 3}
  assertTensor(a:gt(2), {0, 0, 1})
  assertTensor(a:lt(2), {1, 0, 0})
  assertTensor(a:ge(2), {0, 1, 1})
  assertTensor(a:le(2), {1, 1, 0})
  assertTensor(a:eq(2), {0, 1, 0})
  assertTensor(a:ne(2), {1, 0, 1})
  assertTensor(a:gt(T{3, 2, 1}), {0, 0, 1})
  assertTensor(T{{1}, {3}}:lt(T{2, 2}), {{1, 1}, {0, 0}})
end

function TestTensorArith.test_double_equals_is_object_identity()
  local a, b = T{1}, T{1}
  lu.assertFalse(a == b)
  lu.assertTrue(a == a)
  lu.assertTrue(a:equal(b))
end

function TestTensorArith.test_equal_and_allclose()
  lu.assertTrue(T{1, 2}:equal(T{1, 2}))
  lu.assertFalse(T{1, 2}:equal(T{1, 3}))
  lu.assertFalse(T{1, 2}:equal(T{{1, 2}}))
  lu.assertFalse(T{0 / 0}:equal(T{0 / 0}))
  lu.assertTrue(T{1, 2}:allclose(T{1, 2 + 1e-6}))
  lu.assertFalse(T{1, 2}:allclose(T{1, 2.1}))
  lu.assertTrue(T{1, 2}:allclose(T{1, 2.1}, 0.1))
  lu.assertFalse(T{1}:allclose(T{1, 1}))
end

function TestTensorArith.test_maximum_and_minimum()
  assertTensor(T{1, 5}:maximum(T{3, 2}), {3, 5})
  assertTensor(T{1, 5}:minimum(3), {1, 3})
end

-- ---------------------------------------------------------- linear algebra
TestTensorMM = {}

function TestTensorMM.test_mm_multiplies_matrices()
  local a = T{{1, 2}, {3, 4}, {5, 6}}
  local b = T{{1, 0, 2}, {0, 1, 3}}
  assertTensor(a:mm(b), {{1, 2, 8}, {3, 4, 18}, {5, 6, 28}})
  assertTensor(engram.mm(a, b), {{1, 2, 8}, {3, 4, 18}, {5, 6, 28}})
end

function TestTensorMM.test_tmm_and_mmt_transpose_one_operand()
  local a = engram.randn(4, 3)
  local b = engram.randn(4, 5)
  lu.assertTrue(a:tmm(b):allclose(a:t():mm(b), 1e-5))
  lu.assertEquals(a:tmm(b):shape(), {3, 5})
  local c = engram.randn(5, 3)
  lu.assertTrue(a:mmt(c):allclose(a:mm(c:t()), 1e-5))
  lu.assertTrue(engram.mm(a, c, {tb = true}):allclose(a:mmt(c), 1e-6))
  lu.assertTrue(engram.mm(b, a, {ta = true}):allclose(b:t():mm(a), 1e-5))
end

function TestTensorMM.test_mm_writes_into_a_preallocated_output()
  local a, b = engram.randn(3, 4), engram.randn(4, 2)
  local out = engram.full({3, 2}, 99)
  lu.assertIs(engram.mm(a, b, out), out)
  lu.assertTrue(out:allclose(a:mm(b), 1e-6))
  local out2 = engram.zeros(3, 2)
  lu.assertIs(out2:mm_(a, b), out2)
  lu.assertTrue(out2:allclose(out, 1e-6))
  lu.assertIs(engram.mm(a, b, {out = out2, alpha = 2}), out2)
  lu.assertTrue(out2:allclose(out * 2, 1e-5))
end

function TestTensorMM.test_mm_accumulates_with_beta()
  local a, b = engram.randn(3, 4), engram.randn(4, 2)
  local acc = engram.ones(3, 2)
  acc:mm_(a, b, {beta = 1})
  lu.assertTrue(acc:allclose(a:mm(b) + 1, 1e-5))
  lu.assertErrorMsgContains("beta needs an out tensor", engram.mm, a, b, {beta = 1})
end

function TestTensorMM.test_mm_rejects_mismatched_inner_sizes()
  lu.assertErrorMsgContains("mm: inner sizes differ ([3x4] * [5x6])", function()
    return engram.zeros(3, 4):mm(engram.zeros(5, 6))
  end)
  lu.assertErrorMsgContains("mm: output [2x2] does not match the product's [3x6]", function()
    return engram.zeros(2, 2):mm_(engram.zeros(3, 4), engram.zeros(4, 6))
  end)
  lu.assertErrorMsgContains("mm: expected 2-D tensors", function()
    return engram.zeros(3):mm(engram.zeros(3, 1))
  end)
end

function TestTensorMM.test_mm_rejects_unknown_options()
  lu.assertErrorMsgContains("mm: unknown option 'transpose' (known: ta, tb, alpha, beta, out)", engram.mm,
    engram.zeros(2, 2), engram.zeros(2, 2), {transpose = true})
end

function TestTensorMM.test_mm_of_views_matches_mm_of_copies()
  local big = engram.randn(6, 6)
  local a = big:narrow(1, 2, 3):narrow(2, 1, 4) -- strided 3x4
  local b = big:t():narrow(1, 1, 4)              -- transposed layout 4x6
  lu.assertTrue(a:mm(b):allclose(a:clone():mm(b:clone()), 1e-5))
end

function TestTensorMM.test_dot_sums_products()
  lu.assertEquals(T{1, 2, 3}:dot(T{4, 5, 6}), 32)
  lu.assertEquals(engram.dot(T{{1, 2}}, T{{3, 4}}), 11)
  lu.assertErrorMsgContains("dot:", function() return T{1}:dot(T{1, 2}) end)
end

-- -------------------------------------------------------------- reductions
TestTensorReduce = {}

function TestTensorReduce.test_reductions_without_dim_give_numbers()
  local t = T{{1, 5}, {-3, 2}}
  lu.assertEquals(t:sum(), 5)
  lu.assertEquals(t:mean(), 1.25)
  lu.assertEquals(t:max(), 5)
  lu.assertEquals(t:min(), -3)
  lu.assertEquals(t:prod(), -30)
  lu.assertAlmostEquals(t:norm(), math.sqrt(1 + 25 + 9 + 4), 1e-6)
  lu.assertEquals(t:argmax(), 2)
  lu.assertEquals(t:argmin(), 3)
  lu.assertEquals(engram.sum(t), 5)
end

function TestTensorReduce.test_reductions_along_a_dimension_remove_it()
  local t = T{{1, 5, 0}, {-3, 2, 4}}
  assertTensor(t:sum(1), {-2, 7, 4})
  assertTensor(t:sum(2), {6, 3})
  assertTensor(t:mean(2), {2, 1})
  assertTensor(t:sum(-1), {6, 3})
  assertTensor(t:prod(1), {-3, 10, 0})
  lu.assertEquals(t:sum(2, true):shape(), {2, 1})
  assertTensor(t - t:mean(2, true), {{-1, 3, -2}, {-4, 1, 3}})
end

function TestTensorReduce.test_max_and_min_return_values_and_one_based_indices()
  local t = T{{1, 5, 0}, {-3, 2, 4}}
  local v, i = t:max(2)
  assertTensor(v, {5, 4})
  assertTensor(i, {2, 3})
  v, i = t:min(1)
  assertTensor(v, {-3, 2, 0})
  assertTensor(i, {2, 2, 1})
  assertTensor(t:argmax(2), {2, 3})
  assertTensor(t:argmin(2), {3, 1})
end

function TestTensorReduce.test_argmax_indices_select_the_max_values()
  local t = engram.randn(5, 7)
  local v, i = t:max(2)
  for r = 1, 5 do lu.assertEquals(t:get(r, i[r]), v[r]) end
end

function TestTensorReduce.test_reducing_an_empty_dimension_with_max_is_an_error()
  lu.assertErrorMsgContains("max:", function() return engram.zeros(0):max() end)
  lu.assertEquals(engram.zeros(0):sum(), 0)
end

function TestTensorReduce.test_reduction_rejects_a_bad_dimension()
  lu.assertErrorMsgContains("dimension 3 out of range", function() return engram.zeros(2, 2):sum(3) end)
end

-- ---------------------------------------------------------------- printing
TestTensorPrint = {}

function TestTensorPrint.test_footer_names_type_and_size()
  local s = tostring(engram.zeros(2, 3))
  lu.assertStrContains(s, "[engram.Tensor of size 2x3]")
  local lines = {}
  for l in s:gmatch("[^\n]+") do lines[#lines + 1] = l end
  lu.assertEquals(#lines, 3) -- two rows and the footer
end

function TestTensorPrint.test_integers_print_without_decimals_and_fractions_with()
  local s = tostring(T{{1, 2}, {3, 40}})
  lu.assertStrContains(s, " 40")
  lu.assertNotStrContains(s:match("^(.*)%[engram"), ".")
  lu.assertStrContains(tostring(T{0.5, 1}), "0.5000")
end

function TestTensorPrint.test_wide_ranges_print_in_scientific_notation()
  lu.assertStrContains(tostring(T{1e-7, 1}), "e-07")
  lu.assertStrContains(tostring(T{1e10, 1.5}), "e+10")
end

function TestTensorPrint.test_non_finite_values_print()
  local s = tostring(T{0 / 0, 1 / 0, -1 / 0, 1.5})
  lu.assertStrContains(s, "nan")
  lu.assertStrContains(s, "-inf")
end

function TestTensorPrint.test_large_tensors_are_summarised()
  local s = tostring(engram.zeros(1000, 1000))
  lu.assertTrue(#s < 2000, "printed " .. #s .. " characters")
  lu.assertStrContains(s, "...")
  lu.assertStrContains(s, "[engram.Tensor of size 1000x1000]")
  local v = tostring(engram.arange(100000))
  lu.assertTrue(#v < 200)
  lu.assertStrContains(v, "99999")
end

function TestTensorPrint.test_small_tensors_print_every_value()
  local s = tostring(engram.arange(12):view(3, 4))
  for k = 0, 11 do lu.assertStrContains(s, tostring(k)) end
  lu.assertNotStrContains(s, "...")
end

function TestTensorPrint.test_three_dimensional_tensors_print_slices()
  local s = tostring(engram.zeros(2, 2, 2))
  lu.assertStrContains(s, "(1,.,.) =")
  lu.assertStrContains(s, "(2,.,.) =")
end

function TestTensorPrint.test_wide_matrices_wrap_into_column_blocks()
  local s = tostring(engram.randn(2, 30))
  lu.assertStrContains(s, "Columns 1 to")
  for l in s:gmatch("[^\n]+") do lu.assertTrue(#l <= 80, "line too long: " .. l) end
end

function TestTensorPrint.test_scalar_and_empty_tensors_print()
  lu.assertStrContains(tostring(T(2.5)), "2.5000")
  lu.assertStrContains(tostring(T(2.5)), "[engram.Tensor of size []]")
  lu.assertEquals(tostring(engram.zeros(0, 3)), "[engram.Tensor of size 0x3]")
end

-- ------------------------------------------------------------------ memory
TestTensorMemory = {}

local function rss_kb()
  local f = io.open("/proc/self/statm")
  if not f then return nil end
  local _, res = f:read("n", "n")
  f:close()
  return res * 4 -- pages of 4 KiB
end

function TestTensorMemory.test_a_loop_of_large_temporaries_stays_bounded()
  -- AddressSanitizer keeps freed memory in quarantine, so resident size says nothing there.
  if os.getenv("ENGRAM_ASAN") then lu.skip("resident size is meaningless under AddressSanitizer") end
  collectgarbage()
  local before = rss_kb()
  if not before then lu.skip("no /proc/self/statm") end
  for _ = 1, 150 do
    local t = engram.ones(1000, 1000) -- 4 MB touched each time: 600 MB if never freed
    t:add_(1)
  end
  local grown = (rss_kb() - before) / 1024
  lu.assertTrue(grown < 200, string.format("resident memory grew by %.0f MB", grown))
end

function TestTensorMemory.test_close_releases_and_further_use_is_an_error()
  local kept
  do
    local t <close> = engram.ones(3)
    kept = t
  end
  lu.assertErrorMsgContains("released tensor", kept.sum, kept)
  lu.assertStrContains(tostring(kept), "released")
end

TestTensorInPlace = {}

function TestTensorInPlace.test_relabel_maps_class_ids_in_place()
  local y = engram.tensor { 0, 2, 1, 2 }
  local m = engram.tensor { 5, 6, 7 }
  lu.assertIs(y:relabel_(m), y)
  lu.assertEquals(y:totable(), { 5, 7, 6, 7 })
  local bad = engram.tensor { 0, 3 }
  lu.assertErrorMsgContains("relabel_: label 3.0 at position 2 is not a class id of the map (0..2)", bad.relabel_,
    bad, m)
  lu.assertEquals(bad:totable(), { 0, 3 }) -- nothing written
  lu.assertErrorMsgContains("expected 1-D labels and a 1-D map", y.relabel_, engram.zeros(2, 2), m)
end

function TestTensorInPlace.test_cat_into_a_given_output_reuses_its_storage()
  local a, b = engram.tensor { { 1, 2 } }, engram.tensor { { 3, 4 }, { 5, 6 } }
  local out = engram.zeros(4, 2)
  local n0 = engram.core.alloc_count()
  lu.assertIs(engram.cat({ a, b }, 1, out), out)
  lu.assertEquals(out:totable(), { { 1, 2 }, { 3, 4 }, { 5, 6 } })
  lu.assertEquals(engram.core.alloc_count(), n0) -- 6 values fit the 8 it had
  lu.assertErrorMsgContains("cat: the output shares storage with tensor 1", engram.cat, { out, a }, 1, out)
  lu.assertErrorMsgContains("engram.Tensor (the output) or nil", engram.cat, { a, b }, 1, 5)
end
