/* Text tests: tokenizers, window datasets and their held-out split, the
** sampler. Core only. */
#include <stdlib.h>

#include "check.h"
#include "text.h"

static void test_byte_tokenizer_round_trips_every_byte(void) {
  eg_tokenizer *tk;
  CHECK_OK(eg_tokenizer_byte(&tk));
  char s[256], back[4 * 256];
  int32_t ids[256];
  float f[256];
  for (int i = 0; i < 256; i++) s[i] = (char)i;
  int64_t n;
  eg_tokenizer_encode(tk, s, 256, ids, &n);
  CHECK(n == 256);
  for (int i = 0; i < 256; i++) {
    CHECK(ids[i] == i);
    f[i] = (float)ids[i];
  }
  size_t len;
  CHECK_OK(eg_tokenizer_decode(tk, f, 256, back, &len));
  CHECK(len == 256 && memcmp(s, back, 256) == 0);
  f[3] = 256;
  CHECK_ERR(eg_tokenizer_decode(tk, f, 256, back, &len), EG_ERANGE);
  f[3] = 2.5f;
  CHECK_ERR(eg_tokenizer_decode(tk, f, 256, back, &len), EG_ERANGE);
  eg_tokenizer_free(tk);
}

static void test_char_tokenizer_decodes_utf8_and_maps_the_unknown(void) {
  const char *corpus = "a\xc3\xa9\xe2\x98\x83"; /* a, e-acute, snowman */
  eg_tokenizer *tk;
  CHECK_OK(eg_tokenizer_char_from_text(&tk, corpus, strlen(corpus)));
  CHECK(eg_tokenizer_vocab(tk) == 4); /* + U+FFFD */
  CHECK(eg_tokenizer_symbol(tk, 0) == 'a' && eg_tokenizer_symbol(tk, 1) == 0xE9);
  CHECK(eg_tokenizer_symbol(tk, 2) == 0x2603 && eg_tokenizer_symbol(tk, 3) == EG_TOKEN_REPLACEMENT);
  CHECK(eg_tokenizer_symbol(tk, 4) == -1);
  /* b is unknown; \xff and a truncated sequence are invalid UTF-8; an overlong '/' too */
  const char *s = "ab\xff\xc3\xe2\x98\x83\xc0\xaf";
  int32_t ids[16];
  int64_t n;
  eg_tokenizer_encode(tk, s, strlen(s), ids, &n);
  int32_t want[] = {0, 3, 3, 3, 2, 3, 3};
  CHECK(n == 7);
  for (int i = 0; i < 7 && i < n; i++) CHECK(ids[i] == want[i]);
  float f[3] = {1, 2, 0};
  char buf[12];
  size_t len;
  CHECK_OK(eg_tokenizer_decode(tk, f, 3, buf, &len));
  CHECK(len == 6 && memcmp(buf, "\xc3\xa9\xe2\x98\x83" "a", 6) == 0);
  eg_tokenizer_free(tk);
  int32_t bad1[] = {97, 98}, bad2[] = {98, 97, 0xFFFD}, bad3[] = {97, 0xD800, 0xFFFD};
  CHECK_ERR(eg_tokenizer_char(&tk, bad1, 2), EG_EINVAL);
  CHECK_ERR(eg_tokenizer_char(&tk, bad2, 3), EG_EINVAL);
  CHECK_ERR(eg_tokenizer_char(&tk, bad3, 3), EG_EINVAL);
}

static void test_windows_shift_by_one_and_keep_held_out_tokens_apart(void) {
  enum { N = 1000 };
  int32_t tok[N];
  for (int i = 0; i < N; i++) tok[i] = (i * 7) % 200;
  eg_dataset *tr, *he;
  /* blocks of 100 tokens, the last 20 of each held out; windows of 8 (+1) every 4 */
  CHECK_OK(eg_dataset_windows(&tr, &he, tok, N, 256, 8, 4, 0.2, 100));
  /* per block: training part [0, 80) gives starts 0..68 (18), held-out [80, 100) gives 80, 84, 88 (3) */
  CHECK(eg_dataset_size(tr) == 10 * 18);
  CHECK(eg_dataset_size(he) == 10 * 3);
  CHECK(eg_dataset_window(tr) == 8 && eg_dataset_stream_tokens(he) == N);
  CHECK(eg_dataset_nclasses(tr) == 256 && eg_dataset_label(tr, 0) == -1);
  eg_tensor x = EG_TENSOR_INIT, y = EG_TENSOR_INIT;
  CHECK_OK(eg_dataset_range(tr, 0, eg_dataset_size(tr), &x, &y, 0));
  CHECK(x.ndim == 2 && x.shape[1] == 8 && y.ndim == 2 && y.shape[1] == 8);
  const float *xd = eg_data(&x), *yd = eg_data(&y);
  for (int64_t i = 0; i < eg_dataset_size(tr); i++) {
    int64_t s = (i / 18) * 100 + (i % 18) * 4; /* the window's first token */
    for (int t = 0; t < 8; t++) {
      CHECK(xd[i * 8 + t] == (float)tok[s + t]);
      CHECK(yd[i * 8 + t] == (float)tok[s + t + 1]);
      CHECK((s + t + 1) % 100 < 80); /* never a held-out position */
    }
  }
  CHECK_OK(eg_dataset_range(he, 0, eg_dataset_size(he), &x, &y, 0));
  xd = eg_data(&x);
  for (int64_t i = 0; i < eg_dataset_size(he); i++) CHECK(xd[i * 8] == (float)tok[(i / 3) * 100 + 80 + (i % 3) * 4]);
  /* class counts are target-token counts */
  int64_t *counts = calloc(256, sizeof *counts);
  eg_dataset_class_counts(he, counts);
  int64_t total = 0;
  for (int c = 0; c < 256; c++) total += counts[c];
  CHECK(total == 30 * 8);
  free(counts);
  /* image transforms refuse; concatenation copies the windows of another stream */
  eg_dataset *o;
  CHECK_ERR(eg_dataset_permuted(&o, tr, NULL, 1), EG_EINVAL);
  CHECK_ERR(eg_dataset_noisy(&o, tr, 1, 1), EG_EINVAL);
  int lab = 0;
  CHECK_ERR(eg_dataset_subset_labels(&o, tr, &lab, 1), EG_EINVAL);
  eg_dataset *tr2, *he2, *cat;
  CHECK_OK(eg_dataset_windows(&tr2, &he2, tok + 1, 300, 256, 8, 8, 0, 0));
  CHECK(eg_dataset_size(he2) == 0 && eg_dataset_size(tr2) == 37); /* starts 0, 8, ..., 288 */
  CHECK_OK(eg_dataset_concat(&cat, he, tr2));
  CHECK(eg_dataset_size(cat) == 30 + 37);
  eg_tensor x2 = EG_TENSOR_INIT, y2 = EG_TENSOR_INIT;
  CHECK_OK(eg_dataset_range(cat, 31, 1, &x2, &y2, 0));
  CHECK(eg_data(&x2)[0] == (float)tok[1 + 8] && eg_data(&y2)[7] == (float)tok[1 + 16]);
  eg_tensor_release(&x);
  eg_tensor_release(&y);
  eg_tensor_release(&x2);
  eg_tensor_release(&y2);
  eg_dataset_release(cat);
  eg_dataset_release(tr2);
  eg_dataset_release(he2);
  eg_dataset_release(tr);
  eg_dataset_release(he);
}

static void test_windows_reject_bad_arguments(void) {
  int32_t tok[4] = {1, 2, 300, 4};
  eg_dataset *tr, *he;
  CHECK_ERR(eg_dataset_windows(&tr, &he, tok, 4, 256, 2, 1, 0, 0), EG_ERANGE);
  CHECK_ERR(eg_dataset_windows(&tr, &he, tok, 4, 70000, 2, 1, 0, 0), EG_EINVAL);
  CHECK_ERR(eg_dataset_windows(&tr, &he, tok, 2, 256, 0, 1, 0, 0), EG_EINVAL);
  CHECK_ERR(eg_dataset_windows(&tr, &he, tok, 2, 256, 1, 0, 0, 0), EG_EINVAL);
  CHECK_ERR(eg_dataset_windows(&tr, &he, tok, 2, 256, 1, 1, 1.0, 0), EG_EINVAL);
  CHECK(tr == NULL && he == NULL);
}

static void test_sampler_top_k_temperature_and_determinism(void) {
  float logits[6] = {0.1f, 3, -1, 2.5f, 2.9f, 0};
  eg_rng r;
  eg_rng_seed(&r, 5);
  int seen[6] = {0};
  for (int k = 0; k < 500; k++) {
    int64_t id;
    CHECK_OK(eg_sample_logits(logits, 6, 1.0, 3, &r, &id));
    if (id >= 0 && id < 6) seen[id]++;
  }
  CHECK(seen[1] > 0 && seen[3] > 0 && seen[4] > 0);
  CHECK(seen[0] == 0 && seen[2] == 0 && seen[5] == 0);
  CHECK(seen[1] > seen[3]); /* the largest logit is drawn most */
  int64_t id;
  CHECK_OK(eg_sample_logits(logits, 6, 0.0, 0, &r, &id));
  CHECK(id == 1);
  /* same seed, same draws */
  eg_rng a, b;
  eg_rng_seed(&a, 9);
  eg_rng_seed(&b, 9);
  for (int k = 0; k < 50; k++) {
    int64_t i1, i2;
    CHECK_OK(eg_sample_logits(logits, 6, 2.0, 0, &a, &i1));
    CHECK_OK(eg_sample_logits(logits, 6, 2.0, 0, &b, &i2));
    CHECK(i1 == i2);
  }
  CHECK_ERR(eg_sample_logits(logits, 6, -1.0, 0, &r, &id), EG_EINVAL);
  logits[2] = NAN;
  CHECK_ERR(eg_sample_logits(logits, 6, 1.0, 0, &r, &id), EG_EINVAL);
}

int main(void) {
  RUN(test_byte_tokenizer_round_trips_every_byte);
  RUN(test_char_tokenizer_decodes_utf8_and_maps_the_unknown);
  RUN(test_windows_shift_by_one_and_keep_held_out_tokens_apart);
  RUN(test_windows_reject_bad_arguments);
  RUN(test_sampler_top_k_temperature_and_determinism);
  return CHECK_DONE("text");
}
