/* The installed public API: compiled against a staged `make install-headers`
** tree with only -I<stage>/include (no -Icore), once as C and once as C++
** (the extern "C" guards); it reaches everything through <engram/core.h>.
** It also covers the exported functions that the bindings do not call but a
** C host needs: storages over memory the host owns, eg_put, eg_realloc,
** eg_binop_name, eg_dataset_retain, eg_fill_bernoulli_scaled and the
** version check. */
#include <engram/core.h>

#include "check.h"

#ifdef __cplusplus
#define SUITE "c/header (C++)"
#else
#define SUITE "c/header"
#endif

static void test_the_linked_library_matches_the_header(void) {
  CHECK(eg_version() == EG_VERSION_NUM);
  CHECK(strcmp(eg_errstr(EG_ENOMEM), "out of memory") == 0);
  CHECK(strcmp(eg_binop_name(EG_MAXIMUM), "maximum") == 0);
  CHECK(strcmp(eg_binop_name((eg_binop)99), "binary") == 0);
}

/* A host's own memory as a tensor: the free function runs at the last release. */
static int host_frees;
static void host_free(void *ud, float *data) {
  (void)data;
  host_frees += *(int *)ud;
}

static void test_a_storage_over_host_memory_lives_until_its_last_view(void) {
  static float mem[6] = {1, 2, 3, 4, 5, 6};
  int one = 1;
  host_frees = 0;
  eg_storage *s = eg_storage_wrap(mem, 6, host_free, &one);
  CHECK(s != NULL);
  eg_tensor t = EG_TENSOR_INIT, row = EG_TENSOR_INIT;
  int64_t shape[] = {2, 3}, idx[] = {1, 2};
  CHECK_OK(eg_tensor_from_storage(&t, s, 0, 2, shape, NULL));
  eg_storage_release(s); /* t holds the storage now */
  CHECK_OK(eg_select(&row, &t, 0, 1));
  CHECK_OK(eg_put(&t, idx, 60.0f));
  CHECK(mem[5] == 60.0f);
  float v = 0;
  int64_t last[] = {2};
  CHECK_OK(eg_get(&row, last, &v));
  CHECK(v == 60.0f);
  int64_t out_of_range[] = {2, 0};
  CHECK_ERR(eg_put(&t, out_of_range, 1.0f), EG_ERANGE);
  eg_tensor_release(&t);
  CHECK(host_frees == 0); /* row still views it */
  eg_storage_retain(row.storage);
  eg_storage *kept = row.storage;
  eg_tensor_release(&row);
  CHECK(host_frees == 0);
  eg_storage_release(kept);
  CHECK(host_frees == 1);
}

static void test_storages_and_the_allocator_are_counted(void) {
  int64_t before = eg_storage_live_bytes();
  uint64_t allocs = eg_alloc_count();
  eg_storage *s = eg_storage_new(256);
  CHECK(s != NULL && s->size == 256 && s->data[255] == 0.0f);
  CHECK(eg_storage_live_bytes() == before + 256 * (int64_t)sizeof(float));
  eg_storage_release(s);
  CHECK(eg_storage_live_bytes() == before);
  CHECK(eg_storage_new(-1) == NULL && strstr(eg_errmsg(), "negative") != NULL);
  float *p = (float *)eg_malloc(2 * sizeof(float));
  CHECK(p != NULL);
  p[1] = 7.0f;
  p = (float *)eg_realloc(p, 1024 * sizeof(float));
  CHECK(p != NULL && p[1] == 7.0f);
  eg_free(p);
  CHECK(eg_alloc_count() >= allocs + 3);
}

static void test_a_dataset_lives_until_its_last_owner_releases_it(void) {
  eg_dataset *ds = NULL;
  CHECK_OK(eg_dataset_blobs(&ds, 12, 3, 2, 0.1, 7));
  eg_dataset_retain(ds); /* a second owner */
  eg_dataset_release(ds);
  CHECK(eg_dataset_size(ds) == 12 && eg_dataset_nclasses(ds) == 3);
  eg_dataset_release(ds);
}

static void test_a_dropout_mask_keeps_with_the_given_probability(void) {
  eg_rng r;
  eg_rng_seed(&r, 3);
  eg_tensor m = EG_TENSOR_INIT;
  int64_t n[] = {4000};
  CHECK_OK(eg_tensor_new(&m, 1, n));
  CHECK_OK(eg_fill_bernoulli_scaled(&m, &r, 0.25f));
  int kept = 0, other = 0;
  for (int i = 0; i < 4000; i++) {
    float v = eg_data(&m)[i];
    if (v == 4.0f) kept++;
    else if (v != 0.0f) other++;
  }
  CHECK(other == 0);
  CHECK(kept > 850 && kept < 1150);
  double mean = 0;
  CHECK_OK(eg_reduce_all(&mean, &m, EG_MEAN));
  CHECK_NEAR(mean, 1.0, 0.15); /* the mask keeps the expected activation */
  eg_tensor_release(&m);
}

int main(void) {
  RUN(test_the_linked_library_matches_the_header);
  RUN(test_a_storage_over_host_memory_lives_until_its_last_view);
  RUN(test_storages_and_the_allocator_are_counted);
  RUN(test_a_dataset_lives_until_its_last_owner_releases_it);
  RUN(test_a_dropout_mask_keeps_with_the_given_probability);
  return CHECK_DONE(SUITE);
}
