/* Joining tensors (eg_cat, eg_cat_shape) and random permutations
** (eg_randperm): operations the Lua bindings call, tested from C alone. */
#include "check.h"
#include "rng.h"
#include "tensor.h"

static eg_tensor ranged(int ndim, const int64_t *shape, double start) {
  eg_tensor t = EG_TENSOR_INIT;
  eg_tensor_new(&t, ndim, shape);
  eg_fill_range(&t, start, 1);
  return t;
}

static void test_cat_joins_along_the_first_and_a_later_dimension(void) {
  int64_t s1[] = {1, 2}, s2[] = {2, 2};
  eg_tensor a = ranged(2, s1, 1), b = ranged(2, s2, 3), out = EG_TENSOR_INIT;
  const eg_tensor *parts[] = {&a, &b};
  int nd = 0, bad = 7;
  int64_t sh[EG_MAXDIM];
  CHECK_OK(eg_cat_shape(&nd, sh, parts, 2, 0, &bad));
  CHECK(nd == 2 && sh[0] == 3 && sh[1] == 2 && bad == -1);
  CHECK_OK(eg_tensor_new(&out, nd, sh));
  CHECK_OK(eg_cat(&out, parts, 2, 0));
  for (int i = 0; i < 6; i++) CHECK(eg_data(&out)[i] == (float)(i + 1));
  /* Along dimension 2, with a transposed (non-contiguous) part: [b, b'] */
  eg_tensor bt = EG_TENSOR_INIT;
  CHECK_OK(eg_transpose(&bt, &b, 0, 1));
  const eg_tensor *cols[] = {&b, &bt};
  CHECK_OK(eg_cat_shape(&nd, sh, cols, 2, 1, NULL));
  CHECK(nd == 2 && sh[0] == 2 && sh[1] == 4);
  CHECK_OK(eg_tensor_resize(&out, nd, sh));
  CHECK_OK(eg_cat(&out, cols, 2, 1));
  const float want[] = {3, 4, 3, 5, 5, 6, 4, 6};
  for (int i = 0; i < 8; i++) CHECK(eg_data(&out)[i] == want[i]);
  eg_tensor_release(&a);
  eg_tensor_release(&b);
  eg_tensor_release(&bt);
  eg_tensor_release(&out);
}

static void test_cat_writes_into_its_output_without_allocating(void) {
  int64_t s1[] = {2}, s2[] = {3}, s5[] = {5};
  eg_tensor a = ranged(1, s1, 0), b = ranged(1, s2, 2), out = EG_TENSOR_INIT;
  CHECK_OK(eg_tensor_new(&out, 1, s5));
  const eg_tensor *parts[] = {&a, &b};
  uint64_t n0 = eg_alloc_count();
  CHECK_OK(eg_cat(&out, parts, 2, 0));
  CHECK(eg_alloc_count() == n0);
  for (int i = 0; i < 5; i++) CHECK(eg_data(&out)[i] == (float)i);
  eg_tensor_release(&a);
  eg_tensor_release(&b);
  eg_tensor_release(&out);
}

static void test_cat_names_what_does_not_fit(void) {
  int64_t s1[] = {1, 2}, s3[] = {3}, s0[] = {0};
  eg_tensor a = ranged(2, s1, 0), v = ranged(1, s3, 0), empty = EG_TENSOR_INIT, scalar = EG_TENSOR_INIT;
  int nd, bad = 0;
  int64_t sh[EG_MAXDIM];
  const eg_tensor *misfit[] = {&a, &v};
  CHECK_ERR(eg_cat_shape(&nd, sh, misfit, 2, 0, &bad), EG_ESHAPE);
  CHECK(bad == 1);
  CHECK(strcmp(eg_errmsg(), "cat: tensor 2 has size [3], which does not fit [1x2] along dimension 1") == 0);
  CHECK_ERR(eg_cat_shape(&nd, sh, misfit, 0, 0, &bad), EG_EINVAL);
  CHECK(bad == -1 && strcmp(eg_errmsg(), "cat: expected a non-empty list of tensors") == 0);
  const eg_tensor *released[] = {&a, &empty};
  CHECK_ERR(eg_cat_shape(&nd, sh, released, 2, 0, NULL), EG_ESTATE);
  CHECK(strstr(eg_errmsg(), "cat: empty or released tensor") != NULL);
  CHECK_OK(eg_tensor_new(&scalar, 0, s0));
  const eg_tensor *scalars[] = {&scalar};
  CHECK_ERR(eg_cat_shape(&nd, sh, scalars, 1, 0, NULL), EG_ESHAPE);
  CHECK(strcmp(eg_errmsg(), "cat: cannot join 0-dimensional tensors") == 0);
  const eg_tensor *one[] = {&a};
  CHECK_ERR(eg_cat_shape(&nd, sh, one, 1, 2, NULL), EG_ERANGE);
  CHECK(strstr(eg_errmsg(), "dimension 3 out of range") != NULL);
  eg_tensor_release(&a);
  eg_tensor_release(&v);
  eg_tensor_release(&scalar);
}

static void test_cat_rejects_an_output_of_another_shape_or_sharing_a_part(void) {
  int64_t s2[] = {2}, s4[] = {4}, s5[] = {5};
  eg_tensor a = ranged(1, s2, 0), out = EG_TENSOR_INIT, view = EG_TENSOR_INIT;
  const eg_tensor *parts[] = {&a, &a};
  CHECK_OK(eg_tensor_new(&out, 1, s5));
  CHECK_ERR(eg_cat(&out, parts, 2, 0), EG_ESHAPE);
  CHECK(strcmp(eg_errmsg(), "cat: output [5] does not match the joined shape [4]") == 0);
  CHECK_OK(eg_tensor_new(&out, 1, s4));
  CHECK_OK(eg_narrow(&view, &out, 0, 1, 2)); /* a part that is a view of the output */
  const eg_tensor *aliased[] = {&a, &view};
  CHECK_ERR(eg_cat(&out, aliased, 2, 0), EG_EINVAL);
  CHECK(strcmp(eg_errmsg(), "cat: the output shares storage with tensor 2") == 0);
  eg_tensor_release(&a);
  eg_tensor_release(&out);
  eg_tensor_release(&view);
}

static void test_randperm_is_the_shuffle_of_the_same_draws(void) {
  enum { N = 50 };
  int64_t sn[] = {N};
  eg_tensor t = EG_TENSOR_INIT;
  CHECK_OK(eg_tensor_new(&t, 1, sn));
  eg_rng r1, r2;
  eg_rng_seed(&r1, 42);
  eg_rng_seed(&r2, 42);
  uint64_t n0 = eg_alloc_count();
  CHECK_OK(eg_randperm(&t, &r1));
  CHECK(eg_alloc_count() == n0);
  int64_t want[N];
  int seen[N] = {0};
  for (int64_t i = 0; i < N; i++) want[i] = i;
  eg_rng_shuffle(&r2, want, N);
  for (int i = 0; i < N; i++) {
    float v = eg_data(&t)[i];
    CHECK(v == (float)want[i]);
    if (v >= 0 && v < N) seen[(int)v]++;
  }
  for (int i = 0; i < N; i++) CHECK(seen[i] == 1);
  CHECK(eg_rng_u64(&r1) == eg_rng_u64(&r2)); /* the same number of draws */
  eg_tensor_release(&t);
}

static void test_randperm_checks_its_tensor(void) {
  eg_rng r;
  eg_rng_seed(&r, 1);
  eg_tensor t = EG_TENSOR_INIT, big = EG_TENSOR_INIT;
  CHECK_ERR(eg_randperm(&t, &r), EG_ESTATE);
  int64_t s2[] = {2, 2}, s1[] = {1}, huge[] = {((int64_t)1 << 24) + 1};
  CHECK_OK(eg_tensor_new(&t, 2, s2));
  CHECK_ERR(eg_randperm(&t, &r), EG_ESHAPE);
  CHECK(strcmp(eg_errmsg(), "randperm: expected a 1-D tensor, got [2x2]") == 0);
  CHECK_OK(eg_tensor_new(&t, 1, s1));
  CHECK_OK(eg_expand(&big, &t, 1, huge)); /* 2^24 + 1 elements, one float of memory */
  CHECK_ERR(eg_randperm(&big, &r), EG_EINVAL);
  CHECK(strstr(eg_errmsg(), "above 2^24") != NULL);
  eg_tensor_release(&t);
  eg_tensor_release(&big);
}

int main(void) {
  RUN(test_cat_joins_along_the_first_and_a_later_dimension);
  RUN(test_cat_writes_into_its_output_without_allocating);
  RUN(test_cat_names_what_does_not_fit);
  RUN(test_cat_rejects_an_output_of_another_shape_or_sharing_a_part);
  RUN(test_randperm_is_the_shuffle_of_the_same_draws);
  RUN(test_randperm_checks_its_tensor);
  return CHECK_DONE("c/cat");
}
