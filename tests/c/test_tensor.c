/* Core tensor tests: links libengram only (no Lua). */
#include <stdlib.h>

#include "check.h"
#include "rng.h"
#include "tensor.h"

static eg_tensor mk(int ndim, const int64_t *shape) {
  eg_tensor t = EG_TENSOR_INIT;
  eg_tensor_new(&t, ndim, shape);
  return t;
}

static void test_new_is_zeroed_and_contiguous(void) {
  int64_t sh[] = {3, 4};
  eg_tensor t = mk(2, sh);
  CHECK(eg_numel(&t) == 12);
  CHECK(eg_is_contiguous(&t));
  CHECK(t.stride[0] == 4 && t.stride[1] == 1);
  for (int i = 0; i < 12; i++) CHECK(eg_data(&t)[i] == 0.0f);
  eg_tensor_release(&t);
  eg_tensor_release(&t); /* idempotent */
  CHECK(t.storage == NULL);
}

static void test_negative_and_huge_sizes_are_errors(void) {
  eg_tensor t = EG_TENSOR_INIT;
  int64_t neg[] = {2, -1};
  CHECK_ERR(eg_tensor_new(&t, 2, neg), EG_EINVAL);
  CHECK(strstr(eg_errmsg(), "negative") != NULL);
  int64_t huge[] = {1000000000000LL, 1000000000000LL};
  CHECK_ERR(eg_tensor_new(&t, 2, huge), EG_ENOMEM);
  CHECK(t.storage == NULL);
}

/* An empty tensor's other sizes are bounded like a full one's: before, a
** zero let any sizes through, and the strides of {0, 2^32, 2^31} overflowed
** (UBSan: signed integer overflow in set_contiguous). expand is bounded too. */
static void test_empty_tensors_and_expand_have_bounded_sizes(void) {
  eg_tensor t = EG_TENSOR_INIT, v = EG_TENSOR_INIT;
  int64_t huge[] = {0, (int64_t)1 << 32, (int64_t)1 << 31};
  CHECK_ERR(eg_tensor_new(&t, 3, huge), EG_ENOMEM);
  CHECK(t.storage == NULL);
  int64_t ok[] = {0, (int64_t)1 << 20, (int64_t)1 << 19};
  CHECK_OK(eg_tensor_new(&t, 3, ok));
  CHECK(eg_numel(&t) == 0);
  CHECK(eg_is_contiguous(&t));
  CHECK(t.stride[0] == ((int64_t)1 << 39) && t.stride[2] == 1);
  int64_t one[] = {1};
  eg_tensor s = mk(1, one);
  int64_t big[] = {(int64_t)1 << 41};
  CHECK_ERR(eg_expand(&v, &s, 1, big), EG_ENOMEM);
  int64_t fine[] = {(int64_t)1 << 30};
  CHECK_OK(eg_expand(&v, &s, 1, fine));
  CHECK(eg_numel(&v) == ((int64_t)1 << 30) && v.stride[0] == 0);
  eg_tensor_release(&v);
  eg_tensor_release(&s);
  eg_tensor_release(&t);
}

static void test_views_share_storage_and_outlive_parent(void) {
  int64_t sh[] = {3, 4};
  eg_tensor t = mk(2, sh), row = EG_TENSOR_INIT, col = EG_TENSOR_INIT, tr = EG_TENSOR_INIT;
  eg_fill_range(&t, 0, 1);
  CHECK_OK(eg_select(&row, &t, 0, 1));
  CHECK(row.ndim == 1 && row.shape[0] == 4 && eg_data(&row)[0] == 4.0f);
  CHECK_OK(eg_narrow(&col, &t, 1, 2, 1));
  CHECK(col.shape[0] == 3 && col.shape[1] == 1);
  CHECK_OK(eg_transpose(&tr, &t, 0, 1));
  int64_t ix[] = {3, 2};
  float v;
  CHECK_OK(eg_get(&tr, ix, &v));
  CHECK(v == 11.0f);
  eg_fill(&col, -1);
  int64_t ix2[] = {2, 2};
  CHECK_OK(eg_get(&t, ix2, &v));
  CHECK(v == -1.0f);
  eg_tensor_release(&t);
  CHECK(eg_data(&row)[2] == -1.0f); /* storage still alive through the view */
  eg_tensor_release(&row);
  eg_tensor_release(&col);
  eg_tensor_release(&tr);
}

static void test_view_rejects_wrong_count_and_noncontiguous(void) {
  int64_t sh[] = {3, 4}, bad[] = {5}, inf[] = {2, -1};
  eg_tensor t = mk(2, sh), v = EG_TENSOR_INIT, tr = EG_TENSOR_INIT;
  CHECK_ERR(eg_view(&v, &t, 1, bad), EG_ESHAPE);
  CHECK(strstr(eg_errmsg(), "[3x4] (12 elements) as [5] (5 elements)") != NULL);
  CHECK_OK(eg_view(&v, &t, 2, inf));
  CHECK(v.shape[1] == 6);
  eg_transpose(&tr, &t, 0, 1);
  CHECK_ERR(eg_view(&v, &tr, 2, inf), EG_ESHAPE);
  eg_tensor_release(&t);
  eg_tensor_release(&v);
  eg_tensor_release(&tr);
}

static void test_out_of_range_index_is_an_error(void) {
  int64_t sh[] = {3};
  eg_tensor t = mk(1, sh);
  int64_t ix[] = {3};
  float v;
  CHECK_ERR(eg_get(&t, ix, &v), EG_ERANGE);
  CHECK(strstr(eg_errmsg(), "index 4 out of range for dimension 1 of size 3") != NULL);
  eg_tensor_release(&t);
}

static void test_broadcast_row_over_matrix(void) {
  int64_t sh[] = {2, 3}, rs[] = {3};
  eg_tensor a = mk(2, sh), r = mk(1, rs), o = mk(2, sh);
  eg_fill_range(&a, 0, 1);
  eg_fill_range(&r, 10, 10);
  CHECK_OK(eg_binary(&o, &a, &r, EG_ADD));
  const float want[] = {10, 21, 32, 13, 24, 35};
  for (int i = 0; i < 6; i++) CHECK(eg_data(&o)[i] == want[i]);
  int64_t bad[] = {4};
  eg_tensor b = mk(1, bad);
  CHECK_ERR(eg_binary(&o, &a, &b, EG_ADD), EG_ESHAPE);
  CHECK(strstr(eg_errmsg(), "add:") == eg_errmsg());
  eg_tensor_release(&a);
  eg_tensor_release(&r);
  eg_tensor_release(&o);
  eg_tensor_release(&b);
}

static void test_inplace_on_transposed_alias(void) {
  int64_t sh[] = {2, 2};
  eg_tensor a = mk(2, sh), t = EG_TENSOR_INIT;
  eg_fill_range(&a, 1, 1); /* 1 2 / 3 4 */
  eg_transpose(&t, &a, 0, 1);
  /* a = a + a^T must read a before writing it. */
  CHECK_OK(eg_binary(&a, &a, &t, EG_ADD));
  const float want[] = {2, 5, 5, 8};
  for (int i = 0; i < 4; i++) CHECK(eg_data(&a)[i] == want[i]);
  eg_tensor_release(&a);
  eg_tensor_release(&t);
}

static void naive_mm(const eg_tensor *a, const eg_tensor *b, int ta, int tb, float *out) {
  int64_t m = ta ? a->shape[1] : a->shape[0], k = ta ? a->shape[0] : a->shape[1];
  int64_t n = tb ? b->shape[0] : b->shape[1];
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < n; j++) {
      double s = 0;
      for (int64_t p = 0; p < k; p++) {
        int64_t ia[2] = {ta ? p : i, ta ? i : p}, ib[2] = {tb ? j : p, tb ? p : j};
        s += (double)eg_data(a)[eg_offset_of(a, ia)] * eg_data(b)[eg_offset_of(b, ib)];
      }
      out[i * n + j] = (float)s;
    }
}

static void test_mm_matches_naive_for_all_layouts(void) {
  eg_rng r;
  eg_rng_seed(&r, 7);
  int64_t as[] = {5, 7}, bs[] = {7, 3};
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++) {
      int64_t ash[] = {ta ? as[1] : as[0], ta ? as[0] : as[1]}, bsh[] = {tb ? bs[1] : bs[0], tb ? bs[0] : bs[1]};
      eg_tensor a = mk(2, ash), b = mk(2, bsh), o = EG_TENSOR_INIT, at = EG_TENSOR_INIT;
      eg_fill_normal(&a, &r, 0, 1);
      eg_fill_normal(&b, &r, 0, 1);
      int64_t os[] = {5, 3};
      eg_tensor_new(&o, 2, os);
      CHECK_OK(eg_mm(&o, &a, &b, ta, tb, 1, 0));
      float want[15];
      naive_mm(&a, &b, ta, tb, want);
      for (int i = 0; i < 15; i++) CHECK_NEAR(eg_data(&o)[i], want[i], 1e-4);
      /* A transposed view as operand (strided the other way) gives the same. */
      eg_tensor ac = EG_TENSOR_INIT;
      eg_transpose(&at, &a, 0, 1);
      eg_clone(&ac, &at);
      eg_transpose(&at, &ac, 0, 1);
      CHECK_OK(eg_mm(&o, &at, &b, ta, tb, 1, 0));
      for (int i = 0; i < 15; i++) CHECK_NEAR(eg_data(&o)[i], want[i], 1e-4);
      eg_tensor_release(&a);
      eg_tensor_release(&b);
      eg_tensor_release(&o);
      eg_tensor_release(&at);
      eg_tensor_release(&ac);
    }
}

static void test_mm_rejects_mismatched_inner_sizes(void) {
  int64_t as[] = {3, 4}, bs[] = {5, 6}, os[] = {3, 6};
  eg_tensor a = mk(2, as), b = mk(2, bs), o = mk(2, os);
  CHECK_ERR(eg_mm(&o, &a, &b, 0, 0, 1, 0), EG_ESHAPE);
  CHECK(strcmp(eg_errmsg(), "mm: inner sizes differ ([3x4] * [5x6])") == 0);
  eg_tensor_release(&a);
  eg_tensor_release(&b);
  eg_tensor_release(&o);
}

static void test_reduce_along_dim(void) {
  int64_t sh[] = {2, 3}, os[] = {2}, cs[] = {3};
  eg_tensor a = mk(2, sh), o = mk(1, os), ix = mk(1, os), c = mk(1, cs);
  float vals[] = {1, 5, 3, 7, 2, 9};
  memcpy(eg_data(&a), vals, sizeof vals);
  CHECK_OK(eg_reduce(&o, &ix, &a, 1, EG_MAX));
  CHECK(eg_data(&o)[0] == 5 && eg_data(&o)[1] == 9);
  CHECK(eg_data(&ix)[0] == 1 && eg_data(&ix)[1] == 2);
  CHECK_OK(eg_reduce(&c, NULL, &a, 0, EG_SUM));
  CHECK(eg_data(&c)[0] == 8 && eg_data(&c)[1] == 7 && eg_data(&c)[2] == 12);
  CHECK_OK(eg_reduce(&c, NULL, &a, 0, EG_MEAN));
  CHECK(eg_data(&c)[2] == 6);
  double all;
  CHECK_OK(eg_reduce_all(&all, &a, EG_ARGMIN));
  CHECK(all == 0);
  CHECK_OK(eg_reduce_all(&all, &a, EG_SUM));
  CHECK(all == 27);
  CHECK_ERR(eg_reduce(&c, NULL, &a, 2, EG_SUM), EG_ERANGE);
  eg_tensor_release(&a);
  eg_tensor_release(&o);
  eg_tensor_release(&ix);
  eg_tensor_release(&c);
}

static void test_index_rows_gathers_and_checks_every_index_first(void) {
  int64_t sh[] = {4, 2}, is[] = {3}, os[] = {3, 2};
  eg_tensor a = mk(2, sh), idx = mk(1, is), o = mk(2, os);
  eg_fill_range(&a, 0, 1);
  float iv[] = {3, 0, 3};
  memcpy(eg_data(&idx), iv, sizeof iv);
  CHECK_OK(eg_index_rows(&o, &a, &idx));
  const float want[] = {6, 7, 0, 1, 6, 7};
  for (int i = 0; i < 6; i++) CHECK(eg_data(&o)[i] == want[i]);
  eg_fill(&o, -5);
  eg_data(&idx)[2] = 4;
  CHECK_ERR(eg_index_rows(&o, &a, &idx), EG_ERANGE);
  CHECK(eg_data(&o)[0] == -5); /* nothing written */
  eg_data(&idx)[2] = 1.5f;
  CHECK_ERR(eg_index_rows(&o, &a, &idx), EG_ERANGE);
  eg_tensor_release(&a);
  eg_tensor_release(&idx);
  eg_tensor_release(&o);
}

static void test_resize_reuses_storage_without_allocating(void) {
  int64_t big[] = {128, 64}, small[] = {16, 64};
  eg_tensor t = mk(2, big);
  uint64_t before = eg_alloc_count();
  CHECK_OK(eg_tensor_resize(&t, 2, small));
  CHECK_OK(eg_tensor_resize(&t, 2, big));
  CHECK(eg_alloc_count() == before);
  eg_tensor_release(&t);
}

/* Shared storage: resize takes new storage (the view keeps its values),
** resize_buffer keeps it (a borrowed buffer is overwritten by design). */
static void test_resize_of_shared_storage_and_borrowed_buffers(void) {
  int64_t big[] = {8, 4}, small[] = {2, 4};
  eg_tensor t = mk(2, big), v = EG_TENSOR_INIT;
  CHECK_OK(eg_narrow(&v, &t, 0, 0, 2));
  const eg_storage *s0 = t.storage;
  CHECK_OK(eg_tensor_resize_buffer(&t, 2, small));
  CHECK(t.storage == s0 && t.shape[0] == 2 && t.stride[0] == 4);
  CHECK_OK(eg_tensor_resize(&t, 2, big));
  CHECK(t.storage != s0 && v.storage == s0);
  int64_t negative[] = {-1, 4};
  CHECK_ERR(eg_tensor_resize_buffer(&t, 2, negative), EG_EINVAL);
  eg_tensor_release(&v);
  eg_tensor_release(&t);
}

static void test_rng_is_deterministic_and_uniform_in_range(void) {
  eg_rng a, b;
  eg_rng_seed(&a, 42);
  eg_rng_seed(&b, 42);
  for (int i = 0; i < 100; i++) CHECK(eg_rng_u64(&a) == eg_rng_u64(&b));
  double s = 0, s2 = 0;
  for (int i = 0; i < 100000; i++) {
    double n = eg_rng_normal(&a);
    s += n;
    s2 += n * n;
    double u = eg_rng_uniform(&b);
    CHECK(u >= 0 && u < 1);
  }
  CHECK_NEAR(s / 100000, 0, 0.02);
  CHECK_NEAR(s2 / 100000, 1, 0.02);
  int64_t p[10];
  for (int i = 0; i < 10; i++) p[i] = i;
  eg_rng_shuffle(&a, p, 10);
  int seen = 0;
  for (int i = 0; i < 10; i++) seen |= 1 << p[i];
  CHECK(seen == 1023);
}

static void test_copy_between_shapes_with_same_count(void) {
  int64_t s1[] = {2, 3}, s2[] = {3, 2};
  eg_tensor a = mk(2, s1), b = mk(2, s2), t = EG_TENSOR_INIT;
  eg_fill_range(&a, 0, 1);
  eg_transpose(&t, &a, 0, 1); /* [3x2] non-contiguous */
  CHECK_OK(eg_copy(&b, &t));
  const float want[] = {0, 3, 1, 4, 2, 5};
  for (int i = 0; i < 6; i++) CHECK(eg_data(&b)[i] == want[i]);
  int64_t s3[] = {7};
  eg_tensor c = mk(1, s3);
  CHECK_ERR(eg_copy(&c, &a), EG_ESHAPE);
  eg_tensor_release(&a);
  eg_tensor_release(&b);
  eg_tensor_release(&c);
  eg_tensor_release(&t);
}

int main(void) {
  RUN(test_new_is_zeroed_and_contiguous);
  RUN(test_negative_and_huge_sizes_are_errors);
  RUN(test_empty_tensors_and_expand_have_bounded_sizes);
  RUN(test_views_share_storage_and_outlive_parent);
  RUN(test_view_rejects_wrong_count_and_noncontiguous);
  RUN(test_out_of_range_index_is_an_error);
  RUN(test_broadcast_row_over_matrix);
  RUN(test_inplace_on_transposed_alias);
  RUN(test_mm_matches_naive_for_all_layouts);
  RUN(test_mm_rejects_mismatched_inner_sizes);
  RUN(test_reduce_along_dim);
  RUN(test_index_rows_gathers_and_checks_every_index_first);
  RUN(test_resize_reuses_storage_without_allocating);
  RUN(test_resize_of_shared_storage_and_borrowed_buffers);
  RUN(test_rng_is_deterministic_and_uniform_in_range);
  RUN(test_copy_between_shapes_with_same_count);
  return CHECK_DONE("c/tensor");
}
