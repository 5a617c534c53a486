/* The generator's state as text (eg_rng_get_state / eg_rng_set_state): what
** checkpoints save so that a resumed run draws the same numbers. */
#include "check.h"
#include "rng.h"

static void test_a_restored_generator_continues_the_same_sequence(void) {
  eg_rng a, b;
  char buf[EG_RNG_STATE_LEN];
  eg_rng_seed(&a, 12345);
  for (int i = 0; i < 7; i++) (void)eg_rng_u64(&a);
  (void)eg_rng_normal(&a); /* leaves a cached spare normal: part of the state */
  eg_rng_get_state(&a, buf);
  CHECK(strlen(buf) == EG_RNG_STATE_LEN - 1);
  eg_rng_seed(&b, 999);
  CHECK_OK(eg_rng_set_state(&b, buf));
  CHECK(eg_rng_normal(&a) == eg_rng_normal(&b)); /* the spare, bit for bit */
  int same = 1;
  for (int i = 0; i < 1000; i++) same &= eg_rng_u64(&a) == eg_rng_u64(&b);
  CHECK(same);
  CHECK(eg_rng_normal(&a) == eg_rng_normal(&b));
  char again[EG_RNG_STATE_LEN];
  eg_rng_get_state(&a, buf);
  eg_rng_get_state(&b, again);
  CHECK(strcmp(buf, again) == 0);
}

static void test_set_state_rejects_what_is_not_a_state_and_keeps_the_generator(void) {
  eg_rng a, b;
  char good[EG_RNG_STATE_LEN], bad[EG_RNG_STATE_LEN + 8];
  eg_rng_seed(&a, 7);
  eg_rng_get_state(&a, good);
  eg_rng_seed(&b, 8);
  uint64_t before = b.s[0];
  CHECK_ERR(eg_rng_set_state(&b, NULL), EG_EFORMAT);
  CHECK_ERR(eg_rng_set_state(&b, ""), EG_EFORMAT);
  CHECK_ERR(eg_rng_set_state(&b, "pcg32:0123"), EG_EFORMAT);
  snprintf(bad, sizeof bad, "%s", good);
  bad[strlen(bad) - 1] = '\0'; /* truncated */
  CHECK_ERR(eg_rng_set_state(&b, bad), EG_EFORMAT);
  snprintf(bad, sizeof bad, "%s", good);
  bad[20] = 'G'; /* not hex */
  CHECK_ERR(eg_rng_set_state(&b, bad), EG_EFORMAT);
  CHECK(strstr(eg_errmsg(), "word 1") != NULL);
  snprintf(bad, sizeof bad, "%s", good);
  bad[EG_RNG_STATE_LEN - 2] = '2'; /* the cached flag is 0 or 1 */
  CHECK_ERR(eg_rng_set_state(&b, bad), EG_EFORMAT);
  snprintf(bad, sizeof bad, "xoshiro256ss:%016d:%016d:%016d:%016d:%016d:%016d", 0, 0, 0, 0, 0, 0);
  CHECK_ERR(eg_rng_set_state(&b, bad), EG_EFORMAT);
  CHECK(strstr(eg_errmsg(), "all-zero") != NULL);
  CHECK(b.s[0] == before); /* nothing changed */
}

int main(void) {
  RUN(test_a_restored_generator_continues_the_same_sequence);
  RUN(test_set_state_rejects_what_is_not_a_state_and_keeps_the_generator);
  return CHECK_DONE("c/rng");
}
