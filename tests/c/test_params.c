/*
** test_params.c — parameter groups: one arena, views from birth, two phases.
*/
#include "check.h"
#include "params.h"

static eg_param_group *mlp_group(void) {
  eg_param_group *g = NULL;
  eg_params_new(&g, "base");
  eg_params_declare(g, "1.weight", 2, (int64_t[]){4, 3}, NULL);
  eg_params_declare(g, "1.bias", 1, (int64_t[]){4}, NULL);
  eg_params_declare(g, "2.weight", 2, (int64_t[]){2, 4}, NULL);
  return g;
}

static void test_entries_are_views_into_one_flat_arena(void) {
  eg_param_group *g = mlp_group();
  CHECK(eg_params_numel(g) == 12 + 4 + 8);
  CHECK(!eg_params_built(g));
  CHECK_OK(eg_params_build(g));
  eg_tensor flat = EG_TENSOR_INIT, gflat = EG_TENSOR_INIT, b = EG_TENSOR_INIT, gb = EG_TENSOR_INIT;
  CHECK_OK(eg_params_flat(g, &flat, &gflat));
  CHECK(flat.ndim == 1 && flat.shape[0] == 24);
  CHECK_OK(eg_params_entry(g, 1, &b, &gb));
  CHECK(b.ndim == 1 && b.shape[0] == 4);
  CHECK(b.storage == flat.storage && gb.storage == gflat.storage && b.storage != gb.storage);
  eg_data(&b)[2] = 7.0f; /* writing through the entry shows in the flat vector at its offset */
  CHECK(eg_data(&flat)[12 + 2] == 7.0f);
  eg_data(&gflat)[12 + 3] = 5.0f;
  CHECK(eg_data(&gb)[3] == 5.0f);
  int nd;
  int64_t sh[EG_MAXDIM], off;
  CHECK(strcmp(eg_params_entry_info(g, 2, &nd, sh, &off), "2.weight") == 0);
  CHECK(nd == 2 && sh[0] == 2 && sh[1] == 4 && off == 16);
  CHECK(eg_params_entry_info(g, 3, &nd, sh, &off) == NULL);
  CHECK_OK(eg_params_zero_grad(g));
  CHECK(eg_data(&gb)[3] == 0.0f);
  eg_tensor_release(&flat), eg_tensor_release(&gflat), eg_tensor_release(&b), eg_tensor_release(&gb);
  eg_params_free(g);
}

static void test_declaring_after_build_is_an_error(void) {
  eg_param_group *g = mlp_group();
  CHECK_OK(eg_params_build(g));
  CHECK_ERR(eg_params_declare(g, "head.weight", 1, (int64_t[]){3}, NULL), EG_ESTATE);
  CHECK(strstr(eg_errmsg(), "new group") != NULL);
  CHECK_ERR(eg_params_build(g), EG_ESTATE);
  eg_params_free(g);
}

static void test_duplicate_and_bad_declarations_are_rejected(void) {
  eg_param_group *g = mlp_group();
  CHECK_ERR(eg_params_declare(g, "1.bias", 1, (int64_t[]){4}, NULL), EG_EINVAL);
  CHECK_ERR(eg_params_declare(g, "x", 1, (int64_t[]){-1}, NULL), EG_EINVAL);
  CHECK_ERR(eg_params_declare(g, "y", 2, (int64_t[]){1 << 30, 1 << 30}, NULL), EG_ENOMEM);
  int idx = -1;
  CHECK_OK(eg_params_declare(g, "z", 0, NULL, &idx));
  CHECK(idx == 3 && eg_params_numel(g) == 25);
  eg_tensor v = EG_TENSOR_INIT;
  CHECK_ERR(eg_params_entry(g, 0, &v, NULL), EG_ESTATE); /* not built */
  eg_params_free(g);
}

static void test_views_keep_the_arena_alive_after_the_group_is_freed(void) {
  eg_param_group *g = mlp_group();
  CHECK_OK(eg_params_build(g));
  eg_tensor w = EG_TENSOR_INIT;
  CHECK_OK(eg_params_entry(g, 0, &w, NULL));
  eg_params_free(g);
  eg_data(&w)[11] = 3.0f; /* still valid memory (ASan would catch otherwise) */
  CHECK(eg_data(&w)[11] == 3.0f);
  eg_tensor_release(&w);
}

static void test_copy_between_groups_needs_the_same_layout(void) {
  eg_param_group *a = mlp_group(), *b = mlp_group(), *c = NULL;
  eg_params_new(&c, "other");
  eg_params_declare(c, "w", 1, (int64_t[]){24}, NULL);
  CHECK_OK(eg_params_build(a));
  CHECK_OK(eg_params_build(b));
  CHECK_OK(eg_params_build(c));
  eg_tensor fa = EG_TENSOR_INIT, fb = EG_TENSOR_INIT;
  eg_params_flat(a, &fa, NULL), eg_params_flat(b, &fb, NULL);
  eg_fill_range(&fa, 0, 1);
  CHECK_OK(eg_params_copy(b, a));
  CHECK(eg_data(&fb)[23] == 23.0f);
  CHECK_ERR(eg_params_copy(c, a), EG_ESHAPE);
  CHECK(!eg_params_frozen(a));
  eg_params_set_frozen(a, 1);
  CHECK(eg_params_frozen(a));
  eg_tensor_release(&fa), eg_tensor_release(&fb);
  eg_params_free(a), eg_params_free(b), eg_params_free(c), eg_params_free(NULL);
}

int main(void) {
  RUN(test_entries_are_views_into_one_flat_arena);
  RUN(test_declaring_after_build_is_an_error);
  RUN(test_duplicate_and_bad_declarations_are_rejected);
  RUN(test_views_keep_the_arena_alive_after_the_group_is_freed);
  RUN(test_copy_between_groups_needs_the_same_layout);
  return CHECK_DONE("params");
}
