/*
** test_budget.c — allocation budgets (eg_base.h), the memory cap the
** embedding API builds on: core allocations on the thread are charged and
** given back, an allocation past the limit fails cleanly as EG_ENOMEM, and
** budgets nest.
*/
#include "check.h"
#include "tensor.h"

static void test_tensors_are_charged_and_given_back(void) {
  eg_budget b = {0};
  eg_tensor t = EG_TENSOR_INIT;
  int64_t sh[2] = {100, 100};
  CHECK(eg_budget_use(&b) == NULL);
  CHECK_OK(eg_tensor_new(&t, 2, sh));
  CHECK(b.used >= 100 * 100 * sizeof(float));
  CHECK(b.used < 100 * 100 * sizeof(float) + 1024);
  eg_tensor_release(&t);
  CHECK(b.used == 0);
  CHECK(b.peak >= 100 * 100 * sizeof(float));
  CHECK(!b.refused);
  CHECK(eg_budget_use(NULL) == &b);
}

static void test_allocation_past_the_limit_is_enomem_and_charges_nothing(void) {
  eg_budget b = {0};
  eg_tensor t = EG_TENSOR_INIT, small = EG_TENSOR_INIT;
  int64_t big[1] = {1000000}, little[1] = {1000};
  b.limit = 1 << 20; /* 1 MiB: 4 MB of floats do not fit, 4 KB do */
  eg_budget_use(&b);
  CHECK_ERR(eg_tensor_new(&t, 1, big), EG_ENOMEM);
  CHECK(strstr(eg_errmsg(), "out of memory") != NULL);
  CHECK(b.refused);
  CHECK(b.used == 0);
  CHECK(t.storage == NULL);
  CHECK_OK(eg_tensor_new(&small, 1, little));
  eg_tensor_release(&small);
  CHECK(b.used == 0);
  /* a size whose byte count overflows is refused too, not wrapped around */
  CHECK(eg_calloc(SIZE_MAX / 2, 4) == NULL);
  eg_budget_use(NULL);
}

static void test_realloc_charges_the_difference(void) {
  eg_budget b = {0};
  b.limit = 1 << 16;
  eg_budget_use(&b);
  char *p = eg_malloc(1000);
  CHECK(p != NULL);
  size_t after_malloc = b.used;
  char *q = eg_realloc(p, 30000);
  CHECK(q != NULL);
  CHECK(b.used >= 30000 && b.used < 30000 + 1024);
  CHECK(after_malloc < b.used);
  CHECK(eg_realloc(q, 1 << 20) == NULL); /* refused: q is still valid and charged */
  CHECK(b.used >= 30000);
  eg_free(q);
  CHECK(b.used == 0);
  eg_budget_use(NULL);
}

static void test_budgets_nest_and_memory_from_before_is_not_refunded(void) {
  eg_budget outer = {0}, inner = {0};
  char *before = eg_malloc(5000); /* no budget yet */
  eg_budget_use(&outer);
  char *a = eg_malloc(100);
  CHECK(eg_budget_use(&inner) == &outer);
  char *c = eg_malloc(200);
  CHECK(inner.used >= 200 && inner.used < 1024);
  eg_free(before); /* not charged to inner: used stays >= 0 */
  CHECK(inner.used == 0);
  CHECK(eg_budget_use(&outer) == &inner);
  eg_free(a);
  CHECK(outer.used == 0);
  eg_budget_use(NULL);
  eg_free(c);
  CHECK(eg_budget_take(&outer, 10) && outer.used == 10);
  outer.limit = 15;
  CHECK(!eg_budget_take(&outer, 10) && outer.used == 10 && outer.refused);
  eg_budget_give(&outer, 100);
  CHECK(outer.used == 0);
}

int main(void) {
  RUN(test_tensors_are_charged_and_given_back);
  RUN(test_allocation_past_the_limit_is_enomem_and_charges_nothing);
  RUN(test_realloc_charges_the_difference);
  RUN(test_budgets_nest_and_memory_from_before_is_not_refunded);
  return CHECK_DONE("budget");
}
